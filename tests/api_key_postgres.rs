//! The PostgreSQL API key store against a real server: SQL-side filtering,
//! the unique digest index, batched last-used writes, and failing closed
//! when the database was never reachable. A database that goes away and
//! comes back is in `fault_postgres.rs`.
#![cfg(feature = "postgres")]

mod api_key_support;
mod support;

use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use api_key_support::{NOW, TestSchema, app, client, mint, serve};
use keystile::api_key::{
    ApiKeyAdmin, ApiKeyStore, CreateError, KeyDigest, LastUse, PostgresApiKeyStore,
    postgres::migrator,
};
use keystile::clock::ManualClock;
use keystile::store::StoreError;
use reqwest::StatusCode;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

#[tokio::test]
async fn unreachable_database_from_the_start_is_503() {
    // A port nobody listens on: bind one, then free it.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let options =
        PgConnectOptions::from_str(&format!("postgres://postgres@{closed}/test")).unwrap();
    let pool = PgPoolOptions::new()
        .acquire_timeout(Duration::from_millis(500))
        .connect_lazy_with(options);
    let clock = ManualClock::at_unix(NOW);
    let store = Arc::new(PostgresApiKeyStore::new(pool).clock(clock.shared()));
    let (key, _) = keystile::api_key::NewApiKey::new(
        keystile::api_key::KeyPrefix::new("sk_test").unwrap(),
        "acme",
    )
    .mint(&keystile::random::OsRandom, NOW)
    .unwrap();
    assert!(matches!(
        store.lookup(&key.digest()).await,
        Err(StoreError::Timeout | StoreError::Backend(_))
    ));
    let base = serve(app(store, &clock, None)).await;
    let r = client()
        .get(format!("{base}/whoami"))
        .header("authorization", format!("Bearer {}", key.as_str()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn migrations_are_idempotent_and_digest_is_unique() {
    let schema = TestSchema::create("apikey_schema").await;
    migrator().run(&schema.pool).await.unwrap();
    let clock = ManualClock::at_unix(NOW);
    let store = schema.store(&clock);
    let (_, record) = mint(&store, "a", None).await;

    let mut same_digest = record.clone();
    same_digest.id = "another-id".into();
    assert!(matches!(
        store.create(same_digest).await,
        Err(CreateError::Duplicate)
    ));
    let mut same_id = record.clone();
    same_id.digest = KeyDigest::of("other");
    assert!(matches!(
        store.create(same_id).await,
        Err(CreateError::Duplicate)
    ));

    let unique_index: (bool,) = sqlx::query_as(
        "SELECT i.indisunique FROM pg_index i \
         JOIN pg_class c ON c.oid = i.indexrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND c.relname = 'keystile_api_keys_digest'",
    )
    .bind(&schema.name)
    .fetch_one(&schema.pool)
    .await
    .unwrap();
    assert!(unique_index.0);
}

#[tokio::test]
async fn records_round_trip_and_sql_filters_expired_and_revoked() {
    let schema = TestSchema::create("apikey_rows").await;
    let clock = ManualClock::at_unix(NOW);
    let store = schema.store(&clock);
    let (key, record) = mint(&store, "reports:read *", Some(NOW + 10)).await;

    let found = store.lookup(&key.digest()).await.unwrap().unwrap();
    assert_eq!(*found, record, "every field survives the round trip");
    assert!(
        store
            .lookup(&KeyDigest::of("unknown"))
            .await
            .unwrap()
            .is_none()
    );

    clock.advance(Duration::from_secs(10));
    assert!(
        store.lookup(&key.digest()).await.unwrap().is_none(),
        "expired in SQL"
    );
    clock.rewind(Duration::from_secs(10));

    assert!(store.revoke(&record.id, NOW + 5).await.unwrap());
    assert!(
        !store.revoke(&record.id, NOW + 6).await.unwrap(),
        "already revoked"
    );
    assert!(!store.revoke("no-such-id", NOW).await.unwrap());
    assert!(
        store.lookup(&key.digest()).await.unwrap().is_some(),
        "revoked from NOW + 5"
    );
    clock.advance(Duration::from_secs(5));
    assert!(
        store.lookup(&key.digest()).await.unwrap().is_none(),
        "revoked in SQL"
    );

    let listed = store.list("acme").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].revoked_at, Some(NOW + 5));
    assert!(store.list("nobody").await.unwrap().is_empty());
}

#[tokio::test]
async fn last_used_batches_are_one_update_and_never_go_backwards() {
    let schema = TestSchema::create("apikey_used").await;
    let clock = ManualClock::at_unix(NOW);
    let store = schema.store(&clock);
    let (a, _) = mint(&store, "", None).await;
    let (b, _) = mint(&store, "", None).await;
    store
        .record_use(&[
            LastUse {
                digest: a.digest(),
                at: NOW + 50,
            },
            LastUse {
                digest: b.digest(),
                at: NOW + 20,
            },
            LastUse {
                digest: KeyDigest::of("unknown"),
                at: NOW,
            },
        ])
        .await
        .unwrap();
    store
        .record_use(&[LastUse {
            digest: a.digest(),
            at: NOW + 40,
        }])
        .await
        .unwrap();
    store.record_use(&[]).await.unwrap();
    let used = |k: &keystile::api_key::MintedKey| {
        let store = store.clone();
        let digest = k.digest();
        async move { store.lookup(&digest).await.unwrap().unwrap().last_used_at }
    };
    assert_eq!(used(&a).await, Some(NOW + 50));
    assert_eq!(used(&b).await, Some(NOW + 20));
}
