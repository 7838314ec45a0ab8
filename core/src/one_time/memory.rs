//! The in-process one-time store.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;

use super::token::{BindingDigest, Candidate, TokenDigest};
use super::{OneTimeConfig, OneTimeError, OneTimeStore, OneTimeToken};

/// One-time tokens held in this process's memory.
///
/// Correct for a single process; a fleet needs `RedisOneTimeStore` (feature
/// `redis`). Every operation takes one short lock, prunes expired tokens
/// (cheaply: they are indexed by expiry) and then does its work, so the
/// pending set never exceeds [`OneTimeConfig::max_pending`].
///
/// ```
/// use std::time::Duration;
/// use keystile_core::clock::ManualClock;
/// use keystile_core::one_time::{MemoryOneTimeStore, OneTimeConfig, OneTimeError, OneTimeStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), OneTimeError> {
/// let clock = ManualClock::at_unix(1_700_000_000);
/// let store = MemoryOneTimeStore::new(OneTimeConfig::default().clock(clock.shared()));
/// let token = store.issue(b"invite:42").await?;
/// clock.advance(Duration::from_secs(31));
/// assert!(matches!(
///     store.consume(token.expose_secret(), b"invite:42").await,
///     Err(OneTimeError::Expired)
/// ));
/// # Ok(())
/// # }
/// ```
#[derive(Default)]
pub struct MemoryOneTimeStore {
    config: OneTimeConfig,
    pending: Mutex<Pending>,
}

struct Entry {
    binding: BindingDigest,
    expires_at_ms: u64,
}

#[derive(Default)]
struct Pending {
    entries: HashMap<TokenDigest, Entry>,
    // Ordered by expiry so pruning touches only what has expired.
    by_expiry: BTreeSet<(u64, TokenDigest)>,
}

impl Pending {
    fn prune(&mut self, now_ms: u64) {
        while let Some(&(expires_at_ms, digest)) = self.by_expiry.first() {
            if expires_at_ms > now_ms {
                break;
            }
            self.by_expiry.pop_first();
            self.entries.remove(&digest);
        }
    }

    fn remove(&mut self, digest: &TokenDigest) -> Option<Entry> {
        let entry = self.entries.remove(digest)?;
        self.by_expiry.remove(&(entry.expires_at_ms, *digest));
        Some(entry)
    }

    /// Removes the presented token if it has expired, reporting so; this
    /// runs before the general prune so an expired token is reported as
    /// expired rather than silently gone.
    fn take_if_expired(&mut self, digest: &TokenDigest, now_ms: u64) -> bool {
        match self.entries.get(digest) {
            Some(entry) if entry.expires_at_ms <= now_ms => {
                self.remove(digest);
                true
            }
            _ => false,
        }
    }
}

impl MemoryOneTimeStore {
    /// An empty store with `config`'s limits, clock and random source.
    pub fn new(config: OneTimeConfig) -> Self {
        Self {
            config,
            pending: Mutex::default(),
        }
    }

    /// The store's configuration.
    pub fn config(&self) -> &OneTimeConfig {
        &self.config
    }

    fn lock(&self) -> MutexGuard<'_, Pending> {
        // Nothing panics while the lock is held, and the maps stay
        // consistent at every step, so a poisoned lock is still usable.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn now_ms(&self) -> u64 {
        self.config.clock.unix_millis()
    }

    fn issue_now(&self, binding: &[u8]) -> Result<OneTimeToken, OneTimeError> {
        let binding = BindingDigest::of(binding);
        let now_ms = self.now_ms();
        let expires_at_ms = now_ms.saturating_add(self.config.ttl_millis());
        let mut pending = self.lock();
        pending.prune(now_ms);
        if pending.entries.len() >= self.config.max_pending {
            return Err(OneTimeError::LimitReached {
                limit: self.config.max_pending,
            });
        }
        for _ in 0..self.config.max_attempts {
            let candidate = Candidate::draw(self.config.random.as_ref())?;
            let digest = candidate.digest();
            if pending.entries.contains_key(&digest) {
                continue;
            }
            pending.entries.insert(
                digest,
                Entry {
                    binding,
                    expires_at_ms,
                },
            );
            pending.by_expiry.insert((expires_at_ms, digest));
            return Ok(candidate.into_token(expires_at_ms));
        }
        Err(OneTimeError::CollisionsExhausted {
            attempts: self.config.max_attempts,
        })
    }

    fn consume_now(&self, token: &str, binding: &[u8]) -> Result<(), OneTimeError> {
        let digest = TokenDigest::parse(token)?;
        let expected = BindingDigest::of(binding);
        let now_ms = self.now_ms();
        let mut pending = self.lock();
        let expired = pending.take_if_expired(&digest, now_ms);
        pending.prune(now_ms);
        if expired {
            return Err(OneTimeError::Expired);
        }
        let entry = pending
            .entries
            .get(&digest)
            .ok_or(OneTimeError::NotPending)?;
        if !entry.binding.matches(&expected) {
            return Err(OneTimeError::Mismatch);
        }
        pending.remove(&digest);
        Ok(())
    }

    fn revoke_now(&self, token: &str) -> Result<(), OneTimeError> {
        let digest = TokenDigest::parse(token)?;
        let now_ms = self.now_ms();
        let mut pending = self.lock();
        let expired = pending.take_if_expired(&digest, now_ms);
        pending.prune(now_ms);
        if expired {
            return Err(OneTimeError::Expired);
        }
        pending
            .remove(&digest)
            .map(|_| ())
            .ok_or(OneTimeError::NotPending)
    }

    fn pending_now(&self) -> usize {
        let now_ms = self.now_ms();
        let mut pending = self.lock();
        pending.prune(now_ms);
        pending.entries.len()
    }
}

// The work is synchronous under one short lock; the trait is async for the
// backends that are not.
#[async_trait]
impl OneTimeStore for MemoryOneTimeStore {
    async fn issue(&self, binding: &[u8]) -> Result<OneTimeToken, OneTimeError> {
        self.issue_now(binding)
    }

    async fn consume(&self, token: &str, binding: &[u8]) -> Result<(), OneTimeError> {
        self.consume_now(token, binding)
    }

    async fn revoke(&self, token: &str) -> Result<(), OneTimeError> {
        self.revoke_now(token)
    }

    async fn pending(&self) -> Result<usize, OneTimeError> {
        Ok(self.pending_now())
    }
}

impl fmt::Debug for MemoryOneTimeStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryOneTimeStore")
            .field("config", &self.config)
            .field("pending", &self.lock().entries.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    use super::*;
    use crate::clock::ManualClock;
    use crate::random::{OsRandom, RandomError, RandomSource as _, SharedRandom};

    const ALICE: &[u8] = b"reset:alice";
    const BOB: &[u8] = b"reset:bob";

    fn store_at(clock: &ManualClock) -> MemoryOneTimeStore {
        MemoryOneTimeStore::new(OneTimeConfig::default().clock(clock.shared()))
    }

    /// A source that yields the same bytes for its first `repeats` draws,
    /// then distinct ones, counting every draw.
    fn repeating_source(repeats: u32, draws: Arc<AtomicU32>) -> SharedRandom {
        Arc::new(move |dest: &mut [u8]| {
            let n = draws.fetch_add(1, Ordering::SeqCst);
            if n < repeats {
                dest.fill(0x42);
                Ok(())
            } else {
                OsRandom.fill(dest)
            }
        })
    }

    #[tokio::test]
    async fn issued_token_is_consumed_exactly_once() {
        let store = MemoryOneTimeStore::default();
        let token = store.issue(ALICE).await.unwrap();
        store.consume(token.expose_secret(), ALICE).await.unwrap();
        assert!(matches!(
            store.consume(token.expose_secret(), ALICE).await,
            Err(OneTimeError::NotPending)
        ));
        assert_eq!(store.pending().await.unwrap(), 0);
    }

    #[tokio::test]
    async fn mismatched_binding_consumes_nothing() {
        let store = MemoryOneTimeStore::default();
        let token = store.issue(ALICE).await.unwrap();
        assert!(matches!(
            store.consume(token.expose_secret(), BOB).await,
            Err(OneTimeError::Mismatch)
        ));
        assert_eq!(store.pending().await.unwrap(), 1);
        store.consume(token.expose_secret(), ALICE).await.unwrap();
    }

    #[tokio::test]
    async fn unknown_token_is_not_pending() {
        let store = MemoryOneTimeStore::default();
        let stranger = crate::encoding::encode([9u8; 16]);
        assert!(matches!(
            store.consume(&stranger, ALICE).await,
            Err(OneTimeError::NotPending)
        ));
        assert!(matches!(
            store.revoke(&stranger).await,
            Err(OneTimeError::NotPending)
        ));
    }

    #[tokio::test]
    async fn malformed_token_is_refused_before_any_lookup() {
        let store = MemoryOneTimeStore::default();
        let token = store.issue(ALICE).await.unwrap();
        let mut tampered = token.expose_secret().to_owned();
        tampered.insert(11, 'A');
        for bad in ["", "not a token", "AAAAAAAAAAAAAAAAAAAAAA==", &tampered] {
            assert!(matches!(
                store.consume(bad, ALICE).await,
                Err(OneTimeError::Malformed)
            ));
            assert!(matches!(
                store.revoke(bad).await,
                Err(OneTimeError::Malformed)
            ));
        }
        assert_eq!(store.pending().await.unwrap(), 1);
    }

    #[tokio::test]
    async fn token_with_a_flipped_middle_character_is_not_pending() {
        let store = MemoryOneTimeStore::default();
        let token = store.issue(ALICE).await.unwrap();
        let mut chars: Vec<char> = token.expose_secret().chars().collect();
        chars[10] = if chars[10] == 'A' { 'B' } else { 'A' };
        let flipped: String = chars.into_iter().collect();
        assert!(matches!(
            store.consume(&flipped, ALICE).await,
            Err(OneTimeError::NotPending)
        ));
        store.consume(token.expose_secret(), ALICE).await.unwrap();
    }

    #[tokio::test]
    async fn token_presented_after_its_ttl_is_expired_then_gone() {
        let clock = ManualClock::at_unix(1_700_000_000);
        let store = store_at(&clock);
        let token = store.issue(ALICE).await.unwrap();
        assert_eq!(token.expires_at_millis(), 1_700_000_030_000);
        clock.advance(Duration::from_millis(29_999));
        assert_eq!(store.pending().await.unwrap(), 1);
        clock.advance(Duration::from_millis(1));
        assert!(matches!(
            store.consume(token.expose_secret(), ALICE).await,
            Err(OneTimeError::Expired)
        ));
        assert!(matches!(
            store.consume(token.expose_secret(), ALICE).await,
            Err(OneTimeError::NotPending)
        ));
    }

    #[tokio::test]
    async fn token_consumed_just_before_expiry_succeeds() {
        let clock = ManualClock::at_unix(1_700_000_000);
        let store = store_at(&clock);
        let token = store.issue(ALICE).await.unwrap();
        clock.advance(Duration::from_millis(29_999));
        store.consume(token.expose_secret(), ALICE).await.unwrap();
    }

    #[tokio::test]
    async fn expired_token_is_expired_even_with_the_wrong_binding() {
        let clock = ManualClock::at_unix(1_700_000_000);
        let store = store_at(&clock);
        let token = store.issue(ALICE).await.unwrap();
        clock.advance(Duration::from_secs(30));
        assert!(matches!(
            store.consume(token.expose_secret(), BOB).await,
            Err(OneTimeError::Expired)
        ));
    }

    #[tokio::test]
    async fn every_operation_prunes_expired_tokens() {
        let clock = ManualClock::at_unix(1_700_000_000);
        let store = store_at(&clock);
        let old = store.issue(ALICE).await.unwrap();
        store.issue(ALICE).await.unwrap();
        clock.advance(Duration::from_secs(20));
        let young = store.issue(BOB).await.unwrap();
        clock.advance(Duration::from_secs(10));
        // Presenting an unrelated token still drops the two expired ones.
        store.consume(young.expose_secret(), BOB).await.unwrap();
        assert_eq!(store.lock().entries.len(), 0);
        assert_eq!(store.lock().by_expiry.len(), 0);
        assert!(matches!(
            store.revoke(old.expose_secret()).await,
            Err(OneTimeError::NotPending)
        ));
    }

    #[tokio::test]
    async fn issuing_past_the_limit_is_refused_until_tokens_expire() {
        let clock = ManualClock::at_unix(1_700_000_000);
        let store = MemoryOneTimeStore::new(
            OneTimeConfig::default()
                .clock(clock.shared())
                .max_pending(3),
        );
        for _ in 0..3 {
            store.issue(ALICE).await.unwrap();
        }
        assert!(matches!(
            store.issue(ALICE).await,
            Err(OneTimeError::LimitReached { limit: 3 })
        ));
        clock.advance(Duration::from_secs(30));
        store.issue(ALICE).await.unwrap();
        assert_eq!(store.pending().await.unwrap(), 1);
    }

    #[tokio::test]
    async fn a_flood_of_issues_never_exceeds_the_default_bound() {
        let store = MemoryOneTimeStore::default();
        let mut limited = 0;
        for _ in 0..1500 {
            match store.issue(ALICE).await {
                Ok(_) => {}
                Err(OneTimeError::LimitReached { limit }) => {
                    assert_eq!(limit, 1024);
                    limited += 1;
                }
                Err(other) => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(limited, 1500 - 1024);
        assert_eq!(store.pending().await.unwrap(), 1024);
    }

    #[tokio::test]
    async fn consuming_frees_a_slot_under_the_limit() {
        let store = MemoryOneTimeStore::new(OneTimeConfig::default().max_pending(1));
        let token = store.issue(ALICE).await.unwrap();
        assert!(store.issue(ALICE).await.is_err());
        store.consume(token.expose_secret(), ALICE).await.unwrap();
        store.issue(ALICE).await.unwrap();
    }

    #[tokio::test]
    async fn revoked_token_can_no_longer_be_consumed() {
        let store = MemoryOneTimeStore::default();
        let token = store.issue(ALICE).await.unwrap();
        store.revoke(token.expose_secret()).await.unwrap();
        assert!(matches!(
            store.consume(token.expose_secret(), ALICE).await,
            Err(OneTimeError::NotPending)
        ));
        assert!(matches!(
            store.revoke(token.expose_secret()).await,
            Err(OneTimeError::NotPending)
        ));
    }

    #[tokio::test]
    async fn revoking_an_expired_token_reports_expired() {
        let clock = ManualClock::at_unix(1_700_000_000);
        let store = store_at(&clock);
        let token = store.issue(ALICE).await.unwrap();
        clock.advance(Duration::from_secs(31));
        assert!(matches!(
            store.revoke(token.expose_secret()).await,
            Err(OneTimeError::Expired)
        ));
    }

    #[tokio::test]
    async fn colliding_draws_are_retried_until_a_free_value() {
        let draws = Arc::new(AtomicU32::new(0));
        let store = MemoryOneTimeStore::new(
            OneTimeConfig::default().random(repeating_source(4, draws.clone())),
        );
        let first = store.issue(ALICE).await.unwrap();
        // Draws 2-4 repeat the first token; draw 5 is fresh.
        let second = store.issue(ALICE).await.unwrap();
        assert_eq!(draws.load(Ordering::SeqCst), 5);
        assert_ne!(first.expose_secret(), second.expose_secret());
        assert_eq!(store.pending().await.unwrap(), 2);
    }

    #[tokio::test]
    async fn collisions_exhaust_after_the_configured_attempts() {
        let draws = Arc::new(AtomicU32::new(0));
        let store = MemoryOneTimeStore::new(
            OneTimeConfig::default().random(repeating_source(u32::MAX, draws.clone())),
        );
        store.issue(ALICE).await.unwrap();
        assert!(matches!(
            store.issue(ALICE).await,
            Err(OneTimeError::CollisionsExhausted { attempts: 16 })
        ));
        assert_eq!(draws.load(Ordering::SeqCst), 1 + 16);
        assert_eq!(store.pending().await.unwrap(), 1);
    }

    #[tokio::test]
    async fn failing_random_source_issues_nothing() {
        let failing: SharedRandom = Arc::new(|_: &mut [u8]| Err(RandomError("no entropy".into())));
        let store = MemoryOneTimeStore::new(OneTimeConfig::default().random(failing));
        assert!(matches!(
            store.issue(ALICE).await,
            Err(OneTimeError::Randomness(_))
        ));
        assert_eq!(store.pending().await.unwrap(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_hundred_racing_consumers_yield_one_success() {
        let store = Arc::new(MemoryOneTimeStore::default());
        let token = store.issue(ALICE).await.unwrap();
        let text: Arc<str> = token.expose_secret().into();
        let barrier = Arc::new(tokio::sync::Barrier::new(200));
        let mut tasks = Vec::new();
        for _ in 0..200 {
            let (store, text, barrier) = (store.clone(), text.clone(), barrier.clone());
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                store.consume(&text, ALICE).await
            }));
        }
        let mut wins = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(()) => wins += 1,
                Err(OneTimeError::NotPending) => {}
                Err(other) => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(wins, 1);
    }

    #[tokio::test]
    async fn debug_prints_no_token() {
        let store = MemoryOneTimeStore::default();
        let token = store.issue(ALICE).await.unwrap();
        let debug = format!("{store:?} {token:?}");
        assert!(!debug.contains(token.expose_secret()));
        assert!(debug.contains("pending: 1"));
    }
}
