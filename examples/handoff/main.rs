//! The handoff example: `cargo run --example handoff`, then open
//! <http://localhost:3000/> in Chromium or Firefox and click "Impersonate".
//!
//! Environment (all optional):
//!
//! - `PORT`: the port to listen on (default 3000; on 127.0.0.1).
//! - `KEYSTILE_SECRET`: the signing secret (`keystile secret generate`).
//!   Without it a secret is generated at startup: links and sessions then
//!   die with the process, and two processes cannot share them.
//! - `KEYSTILE_REDIS_URL`: burn handoff tokens in Redis instead of memory
//!   (needs `--features redis`), so several processes started with the same
//!   secret and Redis refuse a link already redeemed on another.
//! - `RUST_LOG`: log filter (default `info`). No access log is installed:
//!   a URI-logging trace layer would record the handoff token.

mod app;

use std::process::ExitCode;

use keystile::keys::Keyring;
use keystile::replay::SharedReplayStore;
use tracing_subscriber::EnvFilter;

use crate::app::{AppConfig, TENANTS, app};

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!("{message}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let port = match std::env::var("PORT") {
        Ok(port) => port
            .parse::<u16>()
            .map_err(|_| format!("PORT must be a port number, not {port:?}"))?,
        Err(_) => 3000,
    };
    let keyring = Keyring::from_env_or_generate().map_err(|e| e.to_string())?;
    let mut config = AppConfig::new(keyring, port);
    if let Some(replay) = redis_replay_store().await? {
        config.replay = replay;
    }
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| format!("cannot listen on 127.0.0.1:{port}: {e}"))?;
    tracing::info!("operator console: http://localhost:{port}/");
    for tenant in TENANTS {
        tracing::info!("{tenant} admin:        http://{tenant}.localhost:{port}/admin/");
    }
    axum::serve(listener, app(config))
        .await
        .map_err(|e| e.to_string())
}

#[cfg(feature = "redis")]
async fn redis_replay_store() -> Result<Option<SharedReplayStore>, String> {
    let Ok(url) = std::env::var("KEYSTILE_REDIS_URL") else {
        return Ok(None);
    };
    let store = keystile::replay::RedisReplayStore::connect(&url)
        .await
        .map_err(|e| format!("KEYSTILE_REDIS_URL: {e}"))?
        .prefix("keystile-example:handoff:");
    tracing::info!("replay store: Redis");
    Ok(Some(std::sync::Arc::new(store)))
}

#[cfg(not(feature = "redis"))]
async fn redis_replay_store() -> Result<Option<SharedReplayStore>, String> {
    if std::env::var_os("KEYSTILE_REDIS_URL").is_some() {
        return Err(
            "KEYSTILE_REDIS_URL is set but this build has no Redis support: \
                    run `cargo run --example handoff --features redis`"
                .into(),
        );
    }
    Ok(None)
}
