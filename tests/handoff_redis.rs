//! Handoff redemption across processes: two app instances sharing one
//! real Redis, and a Redis that dies. Needs Redis (see `support`); fails,
//! never skips, when it is unreachable.
#![cfg(feature = "redis")]

#[allow(dead_code)]
#[path = "../examples/handoff/app.rs"]
mod app;
mod handoff_support;
mod support;

use std::net::TcpListener as StdListener;
use std::sync::Arc;
use std::time::Duration;

use keystile::clock::{Clock, SystemClock};
use keystile::keys::{Keyring, SigningKey};
use keystile::replay::{Redemption, RedisReplayStore, ReplayStore};
use keystile::store::StoreError;
use reqwest::StatusCode;

use handoff_support::*;
use support::redis_server::ThrowawayRedis;

fn keyring() -> Keyring {
    Keyring::new(SigningKey::from_bytes(&[77; 32]).expect("32-byte key"))
}

async fn store_at(url: &str, prefix: &str) -> RedisReplayStore {
    RedisReplayStore::connect(url)
        .await
        .unwrap_or_else(|e| panic!("Redis at {url} must be reachable for this test: {e}"))
        .prefix(prefix)
}

/// An app instance of its own (own listener, own Redis connection).
async fn instance(store: RedisReplayStore) -> u16 {
    serve_app(keyring(), Arc::new(store)).await
}

#[tokio::test]
async fn a_token_redeemed_on_one_instance_is_refused_on_the_other() {
    let prefix = format!("{}:", support::unique("handoff"));
    let a = instance(store_at(&support::redis_url(), &prefix).await).await;
    let b = instance(store_at(&support::redis_url(), &prefix).await).await;

    let url = mint_on(&client(a), a).await;
    let on_b = redeem_on(b, &url).await;
    assert_eq!(on_b.status(), StatusCode::SEE_OTHER);
    assert!(set_cookie(&on_b).is_some());
    for port in [a, b] {
        let again = redeem_on(port, &url).await;
        assert_eq!(again.status(), StatusCode::GONE, "replay on port {port}");
        assert!(set_cookie(&again).is_none());
        assert_no_referrer_no_store(&again);
    }
}

#[tokio::test]
async fn redis_store_sets_the_key_once_with_an_absolute_expiry() {
    let prefix = format!("{}:", support::unique("replay"));
    let store = store_at(&support::redis_url(), &prefix).await;
    let expires_at = SystemClock.unix_seconds() + 120;
    assert_eq!(
        store.redeem("jti-1", expires_at).await.unwrap(),
        Redemption::First
    );
    assert_eq!(
        store.redeem("jti-1", expires_at).await.unwrap(),
        Redemption::AlreadyUsed
    );
    assert_eq!(
        store.redeem("jti-2", expires_at).await.unwrap(),
        Redemption::First
    );

    let client = redis::Client::open(support::redis_url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let expire_time: i64 = redis::cmd("EXPIRETIME")
        .arg(format!("{prefix}jti-1"))
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(expire_time, i64::try_from(expires_at).unwrap());
}

/// Connects to a Redis of this test's own with a short timeout.
async fn own_store(redis: &ThrowawayRedis, prefix: &str) -> RedisReplayStore {
    store_at(&redis.url(), prefix)
        .await
        .timeout(Duration::from_millis(500))
}

#[tokio::test]
async fn redis_down_fails_closed_with_503() {
    let mut redis = ThrowawayRedis::start().await;
    let store = own_store(&redis, "down:").await;
    let port = instance(store.clone()).await;
    let client = client(port);

    let before = mint_on(&client, port).await;
    assert_eq!(
        redeem_on(port, &before).await.status(),
        StatusCode::SEE_OTHER
    );

    let url = mint_on(&client, port).await;
    redis.stop();
    let response = redeem_on(port, &url).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(set_cookie(&response).is_none(), "nothing admitted");
    assert!(header(&response, "retry-after").is_some());
    assert_no_referrer_no_store(&response);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("backend_unavailable")
    );

    // The store itself reports a backend failure, not an outcome.
    match store.redeem("after-stop", u64::MAX / 2).await {
        Err(StoreError::Backend(_) | StoreError::Timeout) => {}
        other => panic!("expected a backend failure, got {other:?}"),
    }
}

#[tokio::test]
async fn connecting_to_an_unreachable_redis_is_an_error() {
    let port = StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    // Nothing listens on the port once the probe listener is dropped.
    let result = RedisReplayStore::connect(&format!("redis://127.0.0.1:{port}")).await;
    assert!(result.is_err());
}
