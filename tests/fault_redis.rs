//! Redis killed in the middle of a bounded request load, then started again
//! on the same port: every request that could not be checked is a 503 (never
//! a success), and the same app — not restarted — admits again once Redis is
//! back. Covers the Redis replay store (handoff redemption), the Redis
//! revocation list (bearer tokens) and the Redis session-version cache. A
//! Redis proxy that delays instead of dying makes requests fail with 503
//! within the configured timeout instead of hanging.
//!
//! Each test runs a redis-server of its own (killed on drop, whatever way
//! the test ends); the shared server is never stopped.
#![cfg(feature = "redis")]

#[allow(dead_code)]
#[path = "../examples/handoff/app.rs"]
mod app;
mod handoff_support;
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use keystile::Scopes;
use keystile::auth::Principal;
use keystile::bearer::{BearerLayer, BearerTokens, Grant, RedisRevocationList, TokenLifecycle};
use keystile::clock::ManualClock;
use keystile::keys::{Keyring, SigningKey};
use keystile::replay::{Redemption, RedisReplayStore, ReplayStore};
use keystile::session_version::{
    FetchRequest, RedisSessionVersionCache, SessionVersionLayer, SessionVersionValidator,
};
use keystile::store::StoreError;

use handoff_support::{client, mint_on, redeem_with, serve_app, set_cookie};
use support::outage::{Answer, Request, outage_under_load};
use support::proxy::Proxy;
use support::redis_server::ThrowawayRedis;

/// The timeout every Redis command of these tests is given.
const COMMAND_TIMEOUT: Duration = Duration::from_millis(300);

fn keyring() -> Keyring {
    Keyring::new(SigningKey::from_bytes(&[41; 32]).expect("32-byte key"))
}

async fn replay_store(url: &str) -> RedisReplayStore {
    RedisReplayStore::connect(url)
        .await
        .unwrap_or_else(|e| panic!("Redis at {url} must be reachable for this test: {e}"))
        .prefix(format!("{}:", support::unique("fault_replay")))
        .timeout(COMMAND_TIMEOUT)
}

/// The handoff example app on its own port, burning ids in `store`.
async fn handoff_instance(store: impl ReplayStore) -> u16 {
    serve_app(keyring(), Arc::new(store)).await
}

/// A fresh handoff minted and redeemed on the instance on `port`.
fn handoff_request(port: u16) -> Request {
    let client = client(port);
    Arc::new(move || {
        let client = client.clone();
        Box::pin(async move {
            let url = mint_on(&client, port).await;
            let response = redeem_with(&client, port, &url).await;
            Answer {
                status: response.status().as_u16(),
                admitted: set_cookie(&response).is_some(),
                retry_after: response.headers().contains_key("retry-after"),
            }
        })
    })
}

#[tokio::test]
async fn handoff_redemptions_fail_closed_while_redis_is_down_and_recover_when_it_returns() {
    let mut redis = ThrowawayRedis::start().await;
    let port = handoff_instance(replay_store(&redis.url()).await).await;
    let report = outage_under_load(&mut redis, handoff_request(port), 303).await;
    assert!(report.refused > 0 && report.after > 0, "{report:?}");
}

/// A replay store that admits when Redis cannot answer: the bug the
/// outage check exists to catch.
struct FailOpen(RedisReplayStore);

#[async_trait::async_trait]
impl ReplayStore for FailOpen {
    async fn redeem(&self, id: &str, expires_at: u64) -> Result<Redemption, StoreError> {
        Ok(self
            .0
            .redeem(id, expires_at)
            .await
            .unwrap_or(Redemption::First))
    }
}

#[tokio::test]
#[should_panic(expected = "admitted")]
async fn the_outage_check_catches_a_store_that_admits_when_redis_is_down() {
    let mut redis = ThrowawayRedis::start().await;
    let port = handoff_instance(FailOpen(replay_store(&redis.url()).await)).await;
    outage_under_load(&mut redis, handoff_request(port), 303).await;
}

/// Bearer tokens checked against a Redis revocation list (and their refresh
/// ids burned in a Redis replay store), then their session version against
/// a Redis session-version cache: `/api/me` needs all of Redis.
async fn bearer_instance(url: &str, clock: &ManualClock) -> (TokenLifecycle, String) {
    let revocations = RedisRevocationList::connect(url)
        .await
        .unwrap_or_else(|e| panic!("Redis at {url} must be reachable for this test: {e}"))
        .prefix(format!("{}:", support::unique("fault_revoked")))
        .timeout(COMMAND_TIMEOUT)
        .clock(clock.shared());
    let tokens = TokenLifecycle::builder(keyring())
        .replay_store(Arc::new(replay_store(url).await))
        .revocation_list(Arc::new(revocations))
        .clock(clock.shared())
        .issuer("https://idp.test")
        .audience("reports")
        .build()
        .expect("a valid lifecycle");
    let namespace = support::unique("fault_sv");
    let cache = RedisSessionVersionCache::builder(url)
        .key_prefix(format!("{namespace}:"))
        .channel(format!("{namespace}:invalidate"))
        .command_timeout(COMMAND_TIMEOUT)
        .connect()
        .await
        .unwrap_or_else(|e| panic!("Redis at {url} must be reachable for this test: {e}"));
    // The identity provider itself stays up: only Redis goes away.
    let fetcher = |_: FetchRequest<'_>| async { Ok(3) };
    let validator = SessionVersionValidator::new(cache, fetcher);
    let router = Router::new()
        .route(
            "/api/me",
            get(|who: Principal| async move { who.subject.to_string() }),
        )
        .route_layer(SessionVersionLayer::new(validator))
        .route_layer(
            BearerLayer::new(BearerTokens::new(Arc::new(tokens.clone()))).realm("reports"),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (tokens, base)
}

fn bearer_request(base: String, access_token: String) -> Request {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    Arc::new(move || {
        let (client, base, token) = (client.clone(), base.clone(), access_token.clone());
        Box::pin(async move {
            let response = client
                .get(format!("{base}/api/me"))
                .bearer_auth(token)
                .send()
                .await
                .expect("the app answers");
            let status = response.status().as_u16();
            let retry_after = response.headers().contains_key("retry-after");
            let body = response.text().await.unwrap_or_default();
            Answer {
                status,
                admitted: body == "alice",
                retry_after,
            }
        })
    })
}

#[tokio::test]
async fn bearer_requests_fail_closed_while_redis_is_down_and_recover_when_it_returns() {
    let clock = ManualClock::starting_now();
    let mut redis = ThrowawayRedis::start().await;
    let (tokens, base) = bearer_instance(&redis.url(), &clock).await;
    let grant = Grant::new("alice")
        .scopes(Scopes::parse("reports:read"))
        .session_version(3);
    let pair = tokens.issue(&grant).expect("a token pair");
    let request = bearer_request(base, pair.access_token().to_owned());
    let report = outage_under_load(&mut redis, request, 200).await;
    assert!(report.refused > 0 && report.after > 0, "{report:?}");
}

#[tokio::test]
async fn a_redis_slower_than_the_timeout_is_503_within_a_bound_not_a_hang() {
    let redis = ThrowawayRedis::start().await;
    let proxy = Proxy::in_front_of(&redis.url()).await;
    let port = handoff_instance(replay_store(&proxy.url_for(&redis.url())).await).await;
    let request = handoff_request(port);
    assert_eq!(request().await.status, 303, "fast Redis admits");

    proxy.delay(Duration::from_secs(2));
    // A liveness bound, not a performance figure: five times the timeout.
    let bound = COMMAND_TIMEOUT * 5;
    for _ in 0..3 {
        let started = Instant::now();
        let answer = request().await;
        let took = started.elapsed();
        assert_eq!(answer.status, 503, "a slow Redis fails closed");
        assert!(!answer.admitted && answer.retry_after);
        assert!(took < bound, "took {took:?}, bound {bound:?}");
    }

    proxy.delay(Duration::ZERO);
    // The answers queued behind the delay still arrive late (the proxy holds
    // each chunk in turn); a bounded number of tries lets them drain.
    let mut recovered = false;
    for _ in 0..100 {
        if request().await.status == 303 {
            recovered = true;
            break;
        }
    }
    assert!(recovered, "admits again once Redis is fast again");
}
