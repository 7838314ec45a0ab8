//! Access logs of the hardened example never hold a credential: every
//! credential form goes through the real server and the captured `tracing`
//! output is searched for it. Its own test binary: tracing caches
//! per-callsite interest globally, so tests running on other threads without
//! a subscriber could hide events from this one.

#[allow(dead_code)]
#[path = "../examples/hardened/app.rs"]
mod app;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keystile::api_key::{ApiKeyAdmin, KeyPrefix, MemoryApiKeyStore, NewApiKey};
use keystile::random::OsRandom;
use keystile::scopes::Scopes;
use tokio::net::TcpListener;

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// The example app with one demo key; returns its port and the key.
async fn example() -> (u16, String, ()) {
    let store = Arc::new(MemoryApiKeyStore::new());
    let (key, record) = NewApiKey::new(KeyPrefix::new("sk_test").unwrap(), "demo")
        .with_scopes(Scopes::parse("reports:read"))
        .mint(&OsRandom, 1_700_000_000)
        .unwrap();
    store.create(record).await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let router = app::app(app::AppConfig::new(store as Arc<dyn ApiKeyAdmin>, port)).unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap()
    });
    (port, key.as_str().to_owned(), ())
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn access_logs_never_hold_a_credential() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("keystile=trace,tower_http=trace")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let (port, key, _) = example().await;
    let base = format!("http://127.0.0.1:{port}");
    let c = client();
    let secrets = [
        "SECRET-QUERY-TOKEN",
        "SECRET-ENCODED-NAME",
        "SECRET-ACCESS-TOKEN",
        "SECRET-CODE",
        "SECRET-COOKIE",
        "SECRET-BEARER",
    ];
    let sent = [
        c.get(format!("{base}/api/me?token=SECRET-QUERY-TOKEN")),
        c.get(format!("{base}/api/me?%74oken=SECRET-ENCODED-NAME&page=2")),
        c.get(format!("{base}/?access_token=SECRET-ACCESS-TOKEN")),
        c.get(format!("{base}/?CODE=SECRET-CODE")),
        c.get(format!("{base}/"))
            .header("cookie", "keystile_session=SECRET-COOKIE"),
        c.get(format!("{base}/api/me"))
            .header("authorization", "Bearer SECRET-BEARER"),
        c.get(format!("{base}/api/me")).header("x-api-key", &key),
        c.get(format!("{base}/api/me"))
            .header("authorization", format!("Bearer {key}")),
    ];
    for request in sent {
        request.send().await.unwrap();
    }
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    for secret in secrets.iter().copied().chain([key.as_str()]) {
        assert!(!log.contains(secret), "{secret} is in the log:\n{log}");
    }
    // ... while the log still says what happened.
    assert!(log.contains("query=\"token=[redacted]\""), "{log}");
    assert!(log.contains("query=\"%74oken=[redacted]&page=2\""), "{log}");
    assert!(log.contains("principal=\"demo\""), "{log}");
    assert!(log.contains("auth=\"api_key\""), "{log}");
    assert!(
        log.contains("status=200") && log.contains("status=401"),
        "{log}"
    );
}
