//! Rate limits: one budget per client address on an open route, one per API
//! key behind authentication.
//!
//! ```text
//! cargo run --example rate_limits                    # in memory; prints two demo keys
//! KEYSTILE_REDIS_URL=redis://127.0.0.1:6379 \
//!   cargo run --example rate_limits --features redis # one budget across every instance
//! ```
//!
//! Routes:
//!
//! - `GET /limited` — no key needed; 5 requests per 10 s per client address.
//! - `GET /api/limited` — needs an API key (`X-API-Key` or
//!   `Authorization: Bearer`); 3 requests per 10 s per key.
//!
//! A request over its budget is 429 with `Retry-After`; every answer carries
//! the `RateLimit-Policy` and `RateLimit` headers (docs/rate-limits.md).
//!
//! Environment:
//!
//! - `PORT`: the port to listen on (default 3005; on 127.0.0.1).
//! - `KEYSTILE_REDIS_URL`: keep the budgets in Redis (needs
//!   `--features redis`), so several processes share them.
//! - `RUST_LOG`: log filter (default `info`).
//!
//! Two demo keys, owned by `alice` and `bob`, are minted at start-up and
//! printed as `KEY_A=…` and `KEY_B=…`, with curl lines that run into the
//! limits.

use std::error::Error;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use keystile::api_key::{
    ApiKeyAdmin, ApiKeyLayer, ApiKeys, KeyPrefix, MemoryApiKeyStore, NewApiKey,
};
use keystile::auth::Principal;
use keystile::client_ip::ClientIp;
use keystile::clock::{Clock as _, SystemClock};
use keystile::random::OsRandom;
use keystile::rate_limit::{KeyBy, Limit, Limiter, MemoryLimiter, Policy, RateLimitLayer};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

const DEFAULT_PORT: u16 = 3005;

async fn hello(who: Principal) -> String {
    format!("hello, {}\n", who.subject)
}

fn app(per_ip: impl Limiter, per_key: impl Limiter, keys: ApiKeys) -> Router {
    let open = Router::new()
        .route("/limited", get(|| async { "ok\n" }))
        // Traffic: if the limiter fails, requests go on (with a warning).
        .route_layer(RateLimitLayer::new(Policy::traffic(
            "per-ip",
            per_ip,
            KeyBy::ClientIp(ClientIp::new()),
        )));
    let api = Router::new()
        .route("/api/limited", get(hello))
        .route_layer(RateLimitLayer::new(Policy::traffic(
            "per-key",
            per_key,
            KeyBy::Principal,
        )))
        // The last route_layer runs first: the key is checked before the
        // limit, so the Principal it counts by is there.
        .route_layer(ApiKeyLayer::new(keys).realm("api"));
    open.merge(api)
}

/// Mints a key for `owner` into `store`; the key, to print.
async fn demo_key(store: &MemoryApiKeyStore, owner: &str) -> Result<String, Box<dyn Error>> {
    let (key, record) = NewApiKey::new(KeyPrefix::new("sk_test")?, owner)
        .with_name("demo")
        .mint(&OsRandom, SystemClock.unix_seconds())?;
    store.create(record).await?;
    Ok(key.as_str().to_owned())
}

#[cfg(feature = "redis")]
async fn on_redis(
    url: &str,
    per_ip: Limit,
    per_key: Limit,
    keys: ApiKeys,
) -> Result<Router, Box<dyn Error>> {
    use keystile::rate_limit::RedisLimiter;

    let connection = keystile::store::redis::connect(url, Duration::from_secs(2))
        .await
        .map_err(|e| format!("KEYSTILE_REDIS_URL: {e}"))?;
    tracing::info!("limiters: Redis");
    // A prefix per policy: under one prefix, two policies counting the
    // same key would share one Redis key, and one GCRA state for two limits.
    Ok(app(
        RedisLimiter::new(connection.clone(), per_ip).prefix("keystile-example:rate:per-ip:"),
        RedisLimiter::new(connection, per_key).prefix("keystile-example:rate:per-key:"),
        keys,
    ))
}

#[cfg(not(feature = "redis"))]
async fn on_redis(_: &str, _: Limit, _: Limit, _: ApiKeys) -> Result<Router, Box<dyn Error>> {
    Err(
        "KEYSTILE_REDIS_URL is set but this build has no Redis support: \
         run `cargo run --example rate_limits --features redis`"
            .into(),
    )
}

async fn run() -> Result<(), Box<dyn Error>> {
    let port = match std::env::var("PORT") {
        Ok(port) => port
            .parse::<u16>()
            .map_err(|_| format!("PORT must be a port number, not {port:?}"))?,
        Err(_) => DEFAULT_PORT,
    };
    let per_ip = Limit::per(5, Duration::from_secs(10))?;
    let per_key = Limit::per(3, Duration::from_secs(10))?;
    // Two owners: `KeyBy::Principal` counts by the key's owner, so keys of
    // one owner would share a budget.
    let store = Arc::new(MemoryApiKeyStore::new());
    let key_a = demo_key(&store, "alice").await?;
    let key_b = demo_key(&store, "bob").await?;
    let keys = ApiKeys::new(store);
    let router = match std::env::var("KEYSTILE_REDIS_URL") {
        Ok(url) => on_redis(&url, per_ip, per_key, keys).await?,
        Err(_) => {
            tracing::info!("limiters: memory");
            app(
                MemoryLimiter::new(per_ip),
                MemoryLimiter::new(per_key),
                keys,
            )
        }
    };

    let listener = TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| format!("cannot listen on 127.0.0.1:{port}: {e}"))?;
    let base = format!("http://{}", listener.local_addr()?);
    println!("listening on {base}");
    println!("demo API keys (owners alice and bob, 3 requests per 10 s each):");
    println!("KEY_A={key_a}");
    println!("KEY_B={key_b}");
    let status = "curl -s -o /dev/null -w '%{http_code}\\n'";
    println!("for i in 1 2 3 4 5 6; do {status} {base}/limited; done   # 5 × 200, then 429");
    println!("curl -si {base}/limited   # Retry-After, RateLimit-Policy, RateLimit");
    println!(
        "for i in 1 2 3 4; do {status} -H \"X-API-Key: $KEY_A\" {base}/api/limited; done   # 3 × 200, then 429"
    );
    println!("curl -s -H \"X-API-Key: $KEY_B\" {base}/api/limited   # bob's budget is his own");
    // The client address comes from the connection.
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}

/// Serves until stopped. `pub` because tests/example_rate_limits.rs runs
/// this very `main` in a child process.
#[tokio::main]
pub async fn main() -> ExitCode {
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
