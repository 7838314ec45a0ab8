//! The bearer example: `cargo run --example bearer`, then
//!
//! ```text
//! TOKEN=$(curl -s localhost:3002/idp/token -d '{"sub":"alice"}' \
//!           -H 'content-type: application/json' | jq -r .access_token)
//! curl -s localhost:3002/api/me -H "authorization: Bearer $TOKEN"     # 200, the claims
//! curl -s -X POST localhost:3002/idp/break-glass/alice                # alice's sessions die
//! curl -s localhost:3002/api/me -H "authorization: Bearer $TOKEN"     # 401 session_revoked
//! ```
//!
//! Environment (all optional):
//!
//! - `PORT`: the port to listen on (default 3002; on 127.0.0.1).
//! - `KEYSTILE_SECRET`: the signing secret (`keystile secret generate`).
//!   Without it a secret is generated at startup: tokens then die with the
//!   process, and two processes cannot share them.
//! - `KEYSTILE_REDIS_URL`: keep the replay store, the revocation list, the
//!   identity provider's session versions and the session-version cache
//!   (tiered, with pub/sub invalidation) in Redis (needs `--features redis`),
//!   so several processes with the same secret and Redis act as one.
//! - `RUST_LOG`: log filter (default `info`).

mod app;

use std::process::ExitCode;

use keystile::clock::SharedClock;
use keystile::keys::Keyring;
use tracing_subscriber::EnvFilter;

use crate::app::{AppConfig, Backends, app};

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
        Err(_) => 3002,
    };
    let keyring = Keyring::from_env_or_generate().map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| format!("cannot listen on 127.0.0.1:{port}: {e}"))?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let mut config = AppConfig::new(keyring, port);
    if let Some(backends) = redis_backends(&config.clock).await? {
        config.backends = backends;
    }
    if let Some(mut applied) = config.backends.invalidations_applied.clone() {
        // Shows break-glass from other instances arriving over pub/sub.
        tokio::spawn(async move {
            while applied.changed().await.is_ok() {
                let count = *applied.borrow_and_update();
                tracing::info!(count, "session-version invalidation applied");
            }
        });
    }
    tracing::info!(
        "identity provider: POST http://127.0.0.1:{port}/idp/token {{\"sub\":\"alice\"}}"
    );
    tracing::info!("resource server:   GET  http://127.0.0.1:{port}/api/me");
    axum::serve(listener, app(config)?)
        .await
        .map_err(|e| e.to_string())
}

#[cfg(feature = "redis")]
async fn redis_backends(clock: &SharedClock) -> Result<Option<Backends>, String> {
    let Ok(url) = std::env::var("KEYSTILE_REDIS_URL") else {
        return Ok(None);
    };
    let backends = Backends::redis(&url, "keystile-example:bearer:", clock).await?;
    tracing::info!("stores: Redis");
    Ok(Some(backends))
}

#[cfg(not(feature = "redis"))]
async fn redis_backends(_clock: &SharedClock) -> Result<Option<Backends>, String> {
    if std::env::var_os("KEYSTILE_REDIS_URL").is_some() {
        return Err(
            "KEYSTILE_REDIS_URL is set but this build has no Redis support: \
             run `cargo run --example bearer --features redis`"
                .into(),
        );
    }
    Ok(None)
}
