//! The hardened example served for a test: one demo API key, a report
//! endpoint that keeps what it receives, and the allow list the test picks.
#![allow(dead_code)]

#[path = "../../examples/hardened/app.rs"]
pub mod app;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keystile::api_key::{ApiKeyAdmin, KeyPrefix, MemoryApiKeyStore, NewApiKey};
use keystile::csp_report::{CspReports, CspViolation};
use keystile::random::OsRandom;
use keystile::scopes::Scopes;
use tokio::net::TcpListener;

/// Loopback, IPv4 and IPv6: the example's own allow list.
pub const LOOPBACK: [&str; 2] = ["127.0.0.0/8", "::1/128"];

/// A client that ignores environment proxies; the timeout only stops a hung
/// test.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// A running example.
pub struct Example {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// A key `/api/me` accepts.
    pub key: String,
    /// Every CSP violation the report endpoint accepted.
    pub reports: Arc<Mutex<Vec<CspViolation>>>,
}

/// Serves the example, with connection info, allowing `allow`.
pub async fn example(allow: &[&str]) -> Example {
    let store = Arc::new(MemoryApiKeyStore::new());
    let (key, record) = NewApiKey::new(KeyPrefix::new("sk_test").unwrap(), "demo")
        .with_scopes(Scopes::parse("reports:read"))
        .mint(&OsRandom, 1_700_000_000)
        .unwrap();
    store.create(record).await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let reports = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&reports);
    let mut config = app::AppConfig::new(store as Arc<dyn ApiKeyAdmin>, port);
    config.reports = CspReports::new().on_violation(move |v| sink.lock().unwrap().push(v.clone()));
    config.allow = allow.iter().map(|s| (*s).to_owned()).collect();
    let router = app::app(config).unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap()
    });
    Example {
        port,
        key: key.as_str().to_owned(),
        reports,
    }
}
