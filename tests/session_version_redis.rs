//! Session-version caches on real Redis: two instances sharing one Redis,
//! invalidation over pub/sub, and Redis going down (through a proxy this
//! test owns, never the shared server).
#![cfg(feature = "redis")]

mod session_version_support;
mod support;

use std::time::Duration;

use keystile::session_version::{
    MemorySessionVersionCache, RedisSessionVersionCache, SessionVersionCache,
    SessionVersionValidator, Stored, TieredSessionVersionCache, UserinfoFetcher,
};
use session_version_support::{Idp, ResourceServer, reason, token};
use support::proxy::Proxy;

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

fn userinfo(idp: &Idp) -> UserinfoFetcher {
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    UserinfoFetcher::new(&idp.userinfo_url)
        .unwrap()
        .client(client)
}

/// A Redis cache on the shared server under a prefix and channel of its own.
async fn redis_cache(url: &str, namespace: &str) -> RedisSessionVersionCache {
    RedisSessionVersionCache::builder(url)
        .key_prefix(format!("{namespace}:"))
        .channel(format!("{namespace}:invalidate"))
        .command_timeout(Duration::from_millis(500))
        .connect()
        .await
        .expect("Redis must be reachable for this test")
}

/// An in-process tier whose TTL is far longer than the test, so only an
/// invalidation can explain a refusal.
fn long_lived_memory() -> MemorySessionVersionCache {
    MemorySessionVersionCache::new().ttl(Duration::from_secs(3_600))
}

/// A proxy of this test's own in front of the test Redis.
async fn redis_proxy() -> Proxy {
    Proxy::in_front_of(&support::redis_url()).await
}

/// The test Redis URL, credentials and database kept, pointed at `proxy`.
fn through(proxy: &Proxy) -> String {
    proxy.url_for(&support::redis_url())
}

#[tokio::test]
async fn invalidate_on_one_instance_makes_the_other_refuse_the_stale_token_at_once() {
    let namespace = support::unique("sv_tiered");
    let idp = Idp::start().await;
    idp.set_version("alice", 1);
    let url = support::redis_url();
    let cache_a = TieredSessionVersionCache::connect(
        redis_cache(&url, &namespace).await,
        long_lived_memory(),
    )
    .await
    .unwrap();
    let cache_b = TieredSessionVersionCache::connect(
        redis_cache(&url, &namespace).await,
        long_lived_memory(),
    )
    .await
    .unwrap();
    let validator_a = SessionVersionValidator::new(cache_a.clone(), userinfo(&idp));
    let validator_b = SessionVersionValidator::new(cache_b.clone(), userinfo(&idp));
    let a = ResourceServer::start(validator_a.clone()).await;
    let b = ResourceServer::start(validator_b).await;
    let client = client();
    let old = token("alice", Some(1));

    // A fetches and fills Redis; B learns the version from Redis and keeps
    // its own in-process copy.
    assert_eq!(a.me(&client, &old).await.status(), 200);
    assert_eq!(b.me(&client, &old).await.status(), 200);
    assert_eq!(b.me(&client, &old).await.status(), 200);
    assert_eq!(idp.calls(), 1, "B was served from the shared cache");

    // Break-glass, handled by instance A only.
    idp.set_version("alice", 2);
    let mut applied_b = cache_b.applied_invalidations();
    validator_a.invalidate("alice").await.unwrap();
    tokio::time::timeout(Duration::from_secs(2), applied_b.wait_for(|n| *n >= 1))
        .await
        .expect("B receives the invalidation")
        .unwrap();

    let response = b.me(&client, &old).await;
    assert_eq!(response.status(), 401);
    assert_eq!(reason(response).await, "session_revoked");
    assert_eq!(a.me(&client, &old).await.status(), 401);
    assert_eq!(b.me(&client, &token("alice", Some(2))).await.status(), 200);
}

#[tokio::test]
async fn two_redis_caches_share_versions_and_invalidations() {
    let namespace = support::unique("sv_redis");
    let idp = Idp::start().await;
    idp.set_version("alice", 1);
    let url = support::redis_url();
    let validator_a =
        SessionVersionValidator::new(redis_cache(&url, &namespace).await, userinfo(&idp));
    let validator_b =
        SessionVersionValidator::new(redis_cache(&url, &namespace).await, userinfo(&idp));
    let a = ResourceServer::start(validator_a.clone()).await;
    let b = ResourceServer::start(validator_b).await;
    let client = client();
    let old = token("alice", Some(1));

    assert_eq!(a.me(&client, &old).await.status(), 200);
    assert_eq!(b.me(&client, &old).await.status(), 200);
    assert_eq!(idp.calls(), 1);

    idp.set_version("alice", 2);
    validator_a.invalidate("alice").await.unwrap();
    assert_eq!(b.me(&client, &old).await.status(), 401);
    assert_eq!(idp.calls(), 2);
}

#[tokio::test]
async fn a_redis_set_with_a_generation_from_before_an_invalidation_is_refused() {
    let namespace = support::unique("sv_generation");
    let url = support::redis_url();
    let cache = redis_cache(&url, &namespace).await;
    let other_process = redis_cache(&url, &namespace).await;

    let before = cache.get("alice").await.unwrap();
    assert_eq!(before.version, None);
    other_process.invalidate("alice").await.unwrap();
    assert_eq!(
        cache.set("alice", 1, before.generation).await.unwrap(),
        Stored::Invalidated
    );
    assert_eq!(cache.get("alice").await.unwrap().version, None);

    let after = cache.get("alice").await.unwrap();
    assert_ne!(after.generation, before.generation);
    assert_eq!(
        cache.set("alice", 2, after.generation).await.unwrap(),
        Stored::Yes
    );
    assert_eq!(other_process.get("alice").await.unwrap().version, Some(2));
}

#[tokio::test]
async fn redis_down_is_503() {
    let namespace = support::unique("sv_down");
    let proxy = redis_proxy().await;
    let idp = Idp::start().await;
    idp.set_version("alice", 1);
    let cache = redis_cache(&through(&proxy), &namespace).await;
    let server = ResourceServer::start(SessionVersionValidator::new(cache, userinfo(&idp))).await;
    let client = client();
    assert_eq!(
        server.me(&client, &token("alice", Some(1))).await.status(),
        200
    );

    proxy.cut();
    let response = server.me(&client, &token("alice", Some(1))).await;
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(reason(response).await, "backend_unavailable");
}

#[tokio::test]
async fn a_tiered_cache_stops_trusting_its_local_copies_when_redis_goes_down() {
    let namespace = support::unique("sv_tiered_down");
    let proxy = redis_proxy().await;
    let idp = Idp::start().await;
    idp.set_version("alice", 1);
    let url = through(&proxy);
    let cache = TieredSessionVersionCache::connect(
        redis_cache(&url, &namespace).await,
        long_lived_memory(),
    )
    .await
    .unwrap();
    let server =
        ResourceServer::start(SessionVersionValidator::new(cache.clone(), userinfo(&idp))).await;
    let client = client();
    assert_eq!(
        server.me(&client, &token("alice", Some(1))).await.status(),
        200
    );
    assert!(cache.is_subscribed());
    let hit = SessionVersionCache::get(&cache, "alice").await;
    assert_eq!(hit.expect("no store error").version, Some(1));

    // With the subscription gone, invalidations could be missed: the local
    // copy must not admit anyone.
    proxy.cut();
    for _ in 0..2_000 {
        if !cache.is_subscribed() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(!cache.is_subscribed());
    assert!(
        SessionVersionCache::get(&cache, "alice").await.is_err(),
        "an untrusted local copy must not answer"
    );
    let response = server.me(&client, &token("alice", Some(1))).await;
    assert_eq!(response.status(), 503);
}

#[tokio::test]
async fn connecting_to_an_unreachable_redis_fails() {
    let proxy = redis_proxy().await;
    proxy.cut();
    let result = RedisSessionVersionCache::builder(through(&proxy))
        .command_timeout(Duration::from_millis(300))
        .connect()
        .await;
    assert!(result.is_err());
}
