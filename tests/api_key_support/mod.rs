//! Shared pieces of the API key integration tests: the app under test, a
//! store that counts lookups, a PostgreSQL schema per test, and a TCP proxy
//! that can be cut to take "the database" down without touching the shared
//! server.
#![allow(dead_code)]

#[cfg(feature = "postgres")]
use std::str::FromStr as _;
use std::sync::Arc;
#[cfg(feature = "postgres")]
use std::time::Duration;

use axum::routing::get;
use axum::{Json, Router};
#[cfg(feature = "postgres")]
use keystile::api_key::PostgresApiKeyStore;
use keystile::api_key::{
    ApiKey, ApiKeyAdmin, ApiKeyLayer, ApiKeyRecord, ApiKeys, KeyPrefix, LastUsedRecorder,
    MintedKey, NewApiKey,
};
use keystile::auth::{RequireScopeLayer, Scoped};
use keystile::clock::{Clock as _, ManualClock};
use keystile::random::OsRandom;
use keystile::scopes::Scopes;
use serde_json::{Value, json};
#[cfg(feature = "postgres")]
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use tokio::net::TcpListener;

#[cfg(feature = "postgres")]
use crate::support::{database_url, unique};

pub const REALM: &str = "keystile-test";
pub const NOW: u64 = 1_700_000_000;

keystile::auth::scope!(
    /// The typed scope the `/typed` route requires.
    pub ReportsRead = "reports:read"
);

/// The app under test: the routes of `examples/api_keys.rs`, plus a typed
/// scope route.
pub fn app(
    store: Arc<dyn ApiKeyAdmin>,
    clock: &ManualClock,
    recorder: Option<LastUsedRecorder>,
) -> Router {
    let mut keys = ApiKeys::new(store).clock(clock.shared());
    if let Some(recorder) = recorder {
        keys = keys.last_used(recorder);
    }
    let layer = ApiKeyLayer::new(keys).realm(REALM);
    let reads = Router::new()
        .route("/reports", get(|| async { "reports" }))
        .route_layer(RequireScopeLayer::new("reports:read").expect("a valid scope"));
    let writes = Router::new()
        .route("/reports", axum::routing::post(|| async { "created" }))
        .route_layer(RequireScopeLayer::new("reports:write").expect("a valid scope"));
    Router::new()
        .route("/whoami", get(whoami))
        .route(
            "/typed",
            get(|who: Scoped<ReportsRead>| async move { who.subject.to_string() }),
        )
        .merge(reads)
        .merge(writes)
        .route_layer(layer)
}

async fn whoami(key: ApiKey) -> Json<Value> {
    Json(json!({
        "key_id": key.id,
        "prefix": key.prefix,
        "owner": &*key.owner,
        "scopes": key.scopes,
    }))
}

/// Serves `app` on a fresh loopback port.
pub async fn serve(app: Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    format!("http://{addr}")
}

/// A client that never goes through a proxy from the environment.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// Mints a key and stores its record.
pub async fn mint(
    store: &dyn ApiKeyAdmin,
    scopes: &str,
    expires_at: Option<u64>,
) -> (MintedKey, ApiKeyRecord) {
    let mut new = NewApiKey::new(KeyPrefix::new("sk_test").unwrap(), "acme")
        .with_name("ci")
        .with_scopes(Scopes::parse(scopes));
    if let Some(at) = expires_at {
        new = new.expires_at(at);
    }
    let (key, record) = new.mint(&OsRandom, NOW).unwrap();
    store.create(record.clone()).await.unwrap();
    (key, record)
}

/// Wraps a store and counts lookups and last-used writes: the shared test
/// double, over whichever store the test runs against.
pub type Counting = keystile_core::testing::CountingStore<Arc<dyn ApiKeyAdmin>>;

/// A [`Counting`] wrapper around `inner`.
pub fn counting(inner: Arc<dyn ApiKeyAdmin>) -> Arc<Counting> {
    Arc::new(Counting::new(inner))
}

#[cfg(feature = "postgres")]
/// A PostgreSQL schema of its own, migrated, dropped when this is dropped.
pub struct TestSchema {
    pub name: String,
    pub pool: PgPool,
}

#[cfg(feature = "postgres")]
impl TestSchema {
    /// Creates and migrates a fresh schema. Panics (fails the test) when
    /// PostgreSQL is unreachable: these tests never skip.
    pub async fn create(tag: &str) -> Self {
        Self::create_via(tag, &database_url()).await
    }

    /// Like [`create`](Self::create), with the store's pool connecting
    /// through `url` (e.g. a proxy in front of the server).
    pub async fn create_via(tag: &str, url: &str) -> Self {
        let name = unique(tag);
        let admin = PgPool::connect(&database_url())
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {} unreachable: {e}", database_url()));
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}")))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
        let options = PgConnectOptions::from_str(url)
            .unwrap()
            .options([("search_path", name.as_str())]);
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(2))
            .connect_with(options)
            .await
            .unwrap();
        PostgresApiKeyStore::new(pool.clone())
            .migrate()
            .await
            .unwrap();
        Self { name, pool }
    }

    /// A store over this schema, deciding expiry with `clock`.
    pub fn store(&self, clock: &ManualClock) -> PostgresApiKeyStore {
        PostgresApiKeyStore::new(self.pool.clone()).clock(clock.shared())
    }

    /// The schema-qualified URL the CLI can use.
    pub fn url(&self) -> String {
        let url = database_url();
        let joiner = if url.contains('?') { '&' } else { '?' };
        format!("{url}{joiner}options=-c%20search_path%3D{}", self.name)
    }
}

#[cfg(feature = "postgres")]
impl Drop for TestSchema {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs inside the test's runtime: clean up on a thread with a
        // runtime of its own, so a failed test leaves nothing behind either.
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(admin) = PgPool::connect(&database_url()).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP SCHEMA IF EXISTS {name} CASCADE"
                    )))
                    .execute(&admin)
                    .await;
                    admin.close().await;
                }
            });
        });
        let _ = cleanup.join();
    }
}

/// The current time of `clock` (used to stamp revocations).
pub fn now(clock: &ManualClock) -> u64 {
    clock.unix_seconds()
}
