//! The Redis-backed one-time store against a real Redis: the guarantees of
//! the in-memory store, held across independent store instances (as two
//! processes would hold them), and failing closed when Redis goes away.
#![cfg(feature = "redis")]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use keystile::clock::{ManualClock, SystemClock};
use keystile::one_time::{
    KeyPrefixError, OneTimeConfig, OneTimeError, OneTimeStore, RedisOneTimeStore,
};
use keystile::random::{OsRandom, RandomError, RandomSource as _, SharedRandom};
use support::proxy::Proxy;

const ALICE: &[u8] = b"reset:alice";
const BOB: &[u8] = b"reset:bob";

async fn store_with(prefix: &str, config: OneTimeConfig) -> RedisOneTimeStore {
    RedisOneTimeStore::connect(&support::redis_url(), config)
        .await
        .expect("Redis must be reachable for this test")
        .prefix(prefix)
        .expect("valid prefix")
}

/// Two independent stores (separate connections) sharing one Redis and
/// prefix: what two processes of one fleet see.
async fn two_instances(config: OneTimeConfig) -> (RedisOneTimeStore, RedisOneTimeStore) {
    let prefix = support::unique("onetime");
    let a = store_with(&prefix, config.clone()).await;
    let b = store_with(&prefix, config).await;
    (a, b)
}

/// Every key in Redis under the one-time store prefix `prefix` (whose keys
/// all carry the hash tag `{prefix}`).
async fn keys_under(prefix: &str) -> Vec<String> {
    let client = redis::Client::open(support::redis_url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("KEYS")
        .arg(format!("{{{prefix}}}:*"))
        .query_async(&mut connection)
        .await
        .unwrap()
}

/// A source that yields the same bytes for its first `repeats` draws, then
/// fresh ones, counting every draw.
fn repeating_source(repeats: u32, draws: Arc<AtomicU32>) -> SharedRandom {
    Arc::new(move |dest: &mut [u8]| {
        if draws.fetch_add(1, Ordering::SeqCst) < repeats {
            dest.fill(0x42);
            Ok(())
        } else {
            OsRandom.fill(dest)
        }
    })
}

#[tokio::test]
async fn token_issued_on_one_instance_is_consumed_once_on_another() {
    let (a, b) = two_instances(OneTimeConfig::default()).await;
    let token = a.issue(ALICE).await.unwrap();
    b.consume(token.expose_secret(), ALICE).await.unwrap();
    assert!(matches!(
        a.consume(token.expose_secret(), ALICE).await,
        Err(OneTimeError::NotPending)
    ));
    assert!(matches!(
        b.consume(token.expose_secret(), ALICE).await,
        Err(OneTimeError::NotPending)
    ));
    assert_eq!(a.pending().await.unwrap(), 0);
}

#[tokio::test]
async fn mismatched_binding_consumes_nothing_across_instances() {
    let (a, b) = two_instances(OneTimeConfig::default()).await;
    let token = a.issue(ALICE).await.unwrap();
    assert!(matches!(
        b.consume(token.expose_secret(), BOB).await,
        Err(OneTimeError::Mismatch)
    ));
    assert_eq!(b.pending().await.unwrap(), 1);
    a.consume(token.expose_secret(), ALICE).await.unwrap();
}

#[tokio::test]
async fn token_presented_after_its_clock_expiry_is_expired_then_gone() {
    let clock = ManualClock::starting_now();
    let (a, b) = two_instances(OneTimeConfig::default().clock(clock.shared())).await;
    let token = a.issue(ALICE).await.unwrap();
    clock.advance(Duration::from_millis(29_999));
    assert_eq!(b.pending().await.unwrap(), 1);
    clock.advance(Duration::from_millis(1));
    assert!(matches!(
        b.consume(token.expose_secret(), ALICE).await,
        Err(OneTimeError::Expired)
    ));
    assert!(matches!(
        a.consume(token.expose_secret(), ALICE).await,
        Err(OneTimeError::NotPending)
    ));
    assert_eq!(a.pending().await.unwrap(), 0);
}

#[tokio::test]
async fn redis_drops_an_unused_token_at_its_px_expiry() {
    let store = store_with(
        &support::unique("onetime_px"),
        OneTimeConfig::default()
            .clock(SystemClock::shared())
            .ttl(Duration::from_millis(150)),
    )
    .await;
    let token = store.issue(ALICE).await.unwrap();
    // The only real wait in this file: Redis's own expiry is what is tested.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(matches!(
        store.consume(token.expose_secret(), ALICE).await,
        Err(OneTimeError::NotPending)
    ));
    assert_eq!(store.pending().await.unwrap(), 0);
}

#[tokio::test]
async fn pending_bound_holds_across_instances() {
    let (a, b) = two_instances(OneTimeConfig::default().max_pending(3)).await;
    let first = a.issue(ALICE).await.unwrap();
    a.issue(ALICE).await.unwrap();
    b.issue(BOB).await.unwrap();
    assert!(matches!(
        a.issue(ALICE).await,
        Err(OneTimeError::LimitReached { limit: 3 })
    ));
    assert!(matches!(
        b.issue(BOB).await,
        Err(OneTimeError::LimitReached { limit: 3 })
    ));
    b.consume(first.expose_secret(), ALICE).await.unwrap();
    a.issue(ALICE).await.unwrap();
    assert_eq!(b.pending().await.unwrap(), 3);
}

#[tokio::test]
async fn expired_tokens_free_their_slots() {
    let clock = ManualClock::starting_now();
    let (a, b) = two_instances(
        OneTimeConfig::default()
            .clock(clock.shared())
            .max_pending(2),
    )
    .await;
    a.issue(ALICE).await.unwrap();
    b.issue(ALICE).await.unwrap();
    assert!(matches!(
        a.issue(ALICE).await,
        Err(OneTimeError::LimitReached { .. })
    ));
    clock.advance(Duration::from_secs(31));
    b.issue(ALICE).await.unwrap();
    assert_eq!(a.pending().await.unwrap(), 1);
}

#[tokio::test]
async fn revoked_token_is_not_pending_on_any_instance() {
    let clock = ManualClock::starting_now();
    let (a, b) = two_instances(OneTimeConfig::default().clock(clock.shared())).await;
    let token = a.issue(ALICE).await.unwrap();
    b.revoke(token.expose_secret()).await.unwrap();
    assert!(matches!(
        a.consume(token.expose_secret(), ALICE).await,
        Err(OneTimeError::NotPending)
    ));
    assert!(matches!(
        a.revoke(token.expose_secret()).await,
        Err(OneTimeError::NotPending)
    ));

    let later = a.issue(ALICE).await.unwrap();
    clock.advance(Duration::from_secs(30));
    assert!(matches!(
        b.revoke(later.expose_secret()).await,
        Err(OneTimeError::Expired)
    ));
}

#[tokio::test]
async fn colliding_draws_are_retried_until_a_free_value() {
    let draws = Arc::new(AtomicU32::new(0));
    let (a, _) =
        two_instances(OneTimeConfig::default().random(repeating_source(4, draws.clone()))).await;
    let first = a.issue(ALICE).await.unwrap();
    let second = a.issue(ALICE).await.unwrap();
    assert_eq!(draws.load(Ordering::SeqCst), 5);
    assert_ne!(first.expose_secret(), second.expose_secret());
    assert_eq!(a.pending().await.unwrap(), 2);
}

#[tokio::test]
async fn collisions_across_instances_exhaust_after_sixteen_attempts() {
    let draws = Arc::new(AtomicU32::new(0));
    let (a, b) =
        two_instances(OneTimeConfig::default().random(repeating_source(u32::MAX, draws.clone())))
            .await;
    a.issue(ALICE).await.unwrap();
    assert!(matches!(
        b.issue(BOB).await,
        Err(OneTimeError::CollisionsExhausted { attempts: 16 })
    ));
    assert_eq!(draws.load(Ordering::SeqCst), 1 + 16);
    assert_eq!(a.pending().await.unwrap(), 1);
}

#[tokio::test]
async fn failing_random_source_issues_nothing() {
    let failing: SharedRandom = Arc::new(|_: &mut [u8]| Err(RandomError("no entropy".into())));
    let (a, _) = two_instances(OneTimeConfig::default().random(failing)).await;
    assert!(matches!(
        a.issue(ALICE).await,
        Err(OneTimeError::Randomness(_))
    ));
    assert_eq!(a.pending().await.unwrap(), 0);
}

#[tokio::test]
async fn malformed_and_tampered_tokens_are_refused() {
    let (a, _) = two_instances(OneTimeConfig::default()).await;
    let token = a.issue(ALICE).await.unwrap();
    for bad in ["", "short", "AAAAAAAAAAAAAAAAAAAAAA==", &"A".repeat(5000)] {
        assert!(matches!(
            a.consume(bad, ALICE).await,
            Err(OneTimeError::Malformed)
        ));
    }
    let mut chars: Vec<char> = token.expose_secret().chars().collect();
    chars[10] = if chars[10] == 'A' { 'B' } else { 'A' };
    let flipped: String = chars.into_iter().collect();
    assert!(matches!(
        a.consume(&flipped, ALICE).await,
        Err(OneTimeError::NotPending)
    ));
    a.consume(token.expose_secret(), ALICE).await.unwrap();
}

#[tokio::test]
async fn redis_holds_digests_never_tokens() {
    let prefix = support::unique("onetime_digest");
    let store = store_with(&prefix, OneTimeConfig::default()).await;
    let token = store.issue(ALICE).await.unwrap();
    let raw = keystile::encoding::decode(token.expose_secret()).unwrap();

    let client = redis::Client::open(support::redis_url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let keys = keys_under(&prefix).await;
    assert_eq!(keys.len(), 2, "the pending index and one token key");
    for key in &keys {
        assert!(!key.contains(token.expose_secret()));
        let kind: String = redis::cmd("TYPE")
            .arg(key)
            .query_async(&mut connection)
            .await
            .unwrap();
        if kind == "string" {
            let value: Vec<u8> = redis::cmd("GET")
                .arg(key)
                .query_async(&mut connection)
                .await
                .unwrap();
            assert!(!value.windows(raw.len()).any(|w| w == raw.as_slice()));
            assert!(
                !value
                    .windows(token.expose_secret().len())
                    .any(|w| w == token.expose_secret().as_bytes())
            );
            let ttl_ms: i64 = redis::cmd("PTTL")
                .arg(key)
                .query_async(&mut connection)
                .await
                .unwrap();
            assert!(ttl_ms > 0 && ttl_ms <= 30_000, "PX set to the TTL");
        }
    }
}

#[tokio::test]
async fn debug_prints_no_token() {
    let (a, _) = two_instances(OneTimeConfig::default()).await;
    let token = a.issue(ALICE).await.unwrap();
    let debug = format!("{a:?} {token:?}");
    assert!(!debug.contains(token.expose_secret()));
    assert!(debug.contains("ks_onetime_"));
}

#[tokio::test]
async fn prefixes_that_would_break_keys_are_refused() {
    let (a, _) = two_instances(OneTimeConfig::default()).await;
    for bad in ["", "has space", "{tag}", "tab\t", &"x".repeat(65), "é"] {
        assert_eq!(a.clone().prefix(bad).unwrap_err(), KeyPrefixError);
    }
    // A valid prefix is the one the store's keys are written under.
    let prefix = format!("app:one-time:{}", support::unique("prefix"));
    let store = a.prefix(&prefix).unwrap();
    store.issue(ALICE).await.unwrap();
    assert_eq!(
        keys_under(&prefix).await.len(),
        2,
        "the pending index and one token key"
    );
}

#[tokio::test]
async fn unreachable_redis_is_a_backend_error() {
    // Bind then drop a listener: nothing listens on that port any more.
    let port = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let result = RedisOneTimeStore::connect(
        &format!("redis://127.0.0.1:{port}"),
        OneTimeConfig::default(),
    )
    .await;
    assert!(matches!(
        result,
        Err(keystile::store::StoreError::Backend(_) | keystile::store::StoreError::Timeout)
    ));
}

#[tokio::test]
async fn redis_going_away_fails_closed_and_admits_nothing() {
    let proxy = Proxy::in_front_of(&support::redis_url()).await;
    let store = RedisOneTimeStore::connect(
        &proxy.url_for(&support::redis_url()),
        OneTimeConfig::default(),
    )
    .await
    .expect("Redis must be reachable through the proxy")
    .prefix(&support::unique("onetime_down"))
    .unwrap()
    .command_timeout(Duration::from_millis(500));
    let token = store.issue(ALICE).await.unwrap();

    proxy.cut();

    let backend_down = |result: Result<(), OneTimeError>| {
        assert!(
            matches!(result, Err(OneTimeError::Backend(_))),
            "expected a backend failure, got {result:?}"
        );
    };
    backend_down(store.consume(token.expose_secret(), ALICE).await);
    backend_down(store.consume(token.expose_secret(), ALICE).await);
    backend_down(store.issue(ALICE).await.map(drop));
    backend_down(store.revoke(token.expose_secret()).await);
    backend_down(store.pending().await.map(drop));
}
