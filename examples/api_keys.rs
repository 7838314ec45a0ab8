//! API keys in front of a small reports API.
//!
//! ```text
//! cargo run --example api_keys                         # in-memory, two demo keys
//! DATABASE_URL=postgres://… cargo run --example api_keys --features postgres
//! PORT=8080 cargo run --example api_keys
//! ```
//!
//! Routes (every one needs a key, in `Authorization: Bearer …` or
//! `X-API-Key`):
//!
//! - `GET /whoami` — any valid key: `{"key_id","prefix","owner","scopes"}`
//! - `GET /reports` — needs `reports:read`
//! - `POST /reports` — needs `reports:write`
//!
//! In memory, two demo keys are minted at startup and printed as
//! `demo key <scopes>: <key>`. With `DATABASE_URL` set the migrations run and
//! keys come from PostgreSQL (mint them with `keystile key mint …
//! --database-url`), behind a cache that lets a revoked key live at most 30 s.
//!
//! ```text
//! curl -H "Authorization: Bearer $KEY" localhost:3001/whoami
//! curl -X POST -H "X-API-Key: $KEY" localhost:3001/reports
//! ```

use std::sync::Arc;
use std::time::Duration;

use axum::routing::{get, post};
use axum::{Json, Router};
use keystile::api_key::{
    ApiKey, ApiKeyAdmin, ApiKeyLayer, ApiKeys, KeyPrefix, LastUsedRecorder, MemoryApiKeyStore,
    NewApiKey,
};
use keystile::auth::{RequireScopeLayer, Scoped, scope};
use keystile::clock::{Clock as _, SystemClock};
use keystile::random::OsRandom;
use keystile::scopes::Scopes;
use serde_json::{Value, json};

scope!(
    /// May create reports.
    ReportsWrite = "reports:write"
);

async fn whoami(key: ApiKey) -> Json<Value> {
    Json(json!({
        "key_id": key.id,
        "prefix": key.prefix,
        "owner": &*key.owner,
        "scopes": key.scopes,
    }))
}

async fn list_reports(key: ApiKey) -> Json<Value> {
    Json(json!({ "owner": &*key.owner, "reports": ["q1", "q2"] }))
}

// The scope can also be required in the handler's signature.
async fn create_report(who: Scoped<ReportsWrite>) -> Json<Value> {
    Json(json!({ "created": true, "by": &*who.subject }))
}

async fn store() -> Result<Arc<dyn ApiKeyAdmin>, Box<dyn std::error::Error>> {
    if let Ok(url) = std::env::var("DATABASE_URL") {
        return postgres_store(&url).await;
    }
    let store = Arc::new(MemoryApiKeyStore::new());
    let now = SystemClock.unix_seconds();
    for scopes in ["reports:read", "reports:read,reports:write"] {
        let (key, record) = NewApiKey::new(KeyPrefix::new("sk_test")?, "demo")
            .with_name("demo")
            .with_scopes(Scopes::parse(scopes))
            .mint(&OsRandom, now)?;
        store.create(record).await?;
        println!("demo key {scopes}: {}", key.as_str());
    }
    Ok(store)
}

#[cfg(feature = "postgres")]
async fn postgres_store(url: &str) -> Result<Arc<dyn ApiKeyAdmin>, Box<dyn std::error::Error>> {
    use keystile::api_key::{CachedApiKeyStore, PostgresApiKeyStore};

    let store = PostgresApiKeyStore::connect(url).await?;
    store.migrate().await?;
    println!("using PostgreSQL; mint keys with `keystile key mint --database-url …`");
    Ok(Arc::new(CachedApiKeyStore::new(store)))
}

#[cfg(not(feature = "postgres"))]
async fn postgres_store(_: &str) -> Result<Arc<dyn ApiKeyAdmin>, Box<dyn std::error::Error>> {
    Err("DATABASE_URL is set, but this example was built without `--features postgres`".into())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();

    let store = store().await?;
    let recorder = LastUsedRecorder::spawn(store.clone(), Duration::from_secs(30));
    // The realm is set once: every challenge on these routes names it.
    let auth = ApiKeyLayer::new(ApiKeys::new(store).last_used(recorder.clone())).realm("reports");

    let app = Router::new()
        .route("/whoami", get(whoami))
        .merge(
            Router::new()
                .route("/reports", get(list_reports))
                .route_layer(RequireScopeLayer::new("reports:read")?),
        )
        .route("/reports", post(create_report))
        // route_layer: unknown paths stay 404 rather than 401.
        .route_layer(auth);

    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3001);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    recorder.flush().await?;
    Ok(())
}
