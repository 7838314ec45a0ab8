//! The hardened example: `cargo run --example hardened`, then open
//! <http://localhost:3004/> in Chromium: the nonce'd script runs, the
//! injected one is blocked, and the violation report shows in the log.
//!
//! ```text
//! curl -i localhost:3004/                                  # every security header
//! curl -H "X-API-Key: $KEY" localhost:3004/api/me          # a demo key is printed at startup
//! curl -i 'localhost:3004/api/me?token=hunter2'            # 401; the log shows token=[redacted]
//! ```
//!
//! Environment: `PORT` (default 3004, on 127.0.0.1), `RUST_LOG` (default
//! `info`).

mod app;

use std::net::SocketAddr;
use std::sync::Arc;

use keystile::api_key::{ApiKeyAdmin, KeyPrefix, MemoryApiKeyStore, NewApiKey};
use keystile::clock::{Clock as _, SystemClock};
use keystile::random::OsRandom;
use keystile::scopes::Scopes;
use tracing_subscriber::EnvFilter;

use crate::app::{AppConfig, app};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let port: u16 = match std::env::var("PORT") {
        Ok(port) => port
            .parse()
            .map_err(|_| format!("PORT must be a port number, not {port:?}"))?,
        Err(_) => 3004,
    };
    let store = Arc::new(MemoryApiKeyStore::new());
    let (key, record) = NewApiKey::new(KeyPrefix::new("sk_test")?, "demo")
        .with_name("demo")
        .with_scopes(Scopes::parse("reports:read"))
        .mint(&OsRandom, SystemClock.unix_seconds())?;
    store.create(record).await?;
    println!("demo key: {}", key.as_str());
    let router = app(AppConfig::new(store, port))?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    tracing::info!("hardened example: http://localhost:{port}/");
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}
