//! The in-process session-version cache.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use quick_cache::sync::Cache;

use super::{Generation, Lookup, SessionVersionCache, Stored};
use crate::clock::{SharedClock, SystemClock};
use crate::store::StoreError;

/// Default time a cached version is trusted.
pub(crate) const DEFAULT_TTL: Duration = Duration::from_secs(60);

/// How many subjects a [`MemorySessionVersionCache`] holds unless
/// configured.
pub const DEFAULT_SESSION_VERSION_CAPACITY: usize = 65_536;

/// Session versions cached in this process: bounded, expiring by the
/// injected clock, safe to read from many threads at once.
///
/// The entries live in a [`quick_cache`] cache, which makes room for a new
/// subject in constant time however full it is (its CLOCK-Pro-style policy
/// keeps subjects that are asked for again), so a flood of new subjects
/// costs each request the same small amount. Expired entries are never
/// answered; they wait for eviction like any other. Invalidation
/// generations are counted for the whole cache (not per subject), so an
/// eviction can never make the cache forget that an invalidation happened;
/// the price is that an invalidation also drops the in-flight fetch results
/// of other subjects (they are fetched again on their next miss).
///
/// ```
/// use std::time::Duration;
/// use keystile_core::clock::ManualClock;
/// use keystile_core::session_version::{MemorySessionVersionCache, SessionVersionCache};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), keystile_core::store::StoreError> {
/// let clock = ManualClock::at_unix(1_700_000_000);
/// let cache = MemorySessionVersionCache::new()
///     .ttl(Duration::from_secs(60))
///     .capacity(10_000)
///     .clock(clock.shared());
///
/// let seen = cache.get("alice").await?.generation;
/// cache.set("alice", 4, seen).await?;
/// assert_eq!(cache.get("alice").await?.version, Some(4));
///
/// clock.advance(Duration::from_secs(60));
/// assert_eq!(cache.get("alice").await?.version, None);
/// # Ok(())
/// # }
/// ```
pub struct MemorySessionVersionCache {
    entries: Cache<Box<str>, Entry>,
    generation: AtomicU64,
    ttl_millis: u64,
    clock: SharedClock,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    version: u64,
    expires_at: u64,
}

impl MemorySessionVersionCache {
    /// A cache with a 60 s TTL, [`DEFAULT_SESSION_VERSION_CAPACITY`]
    /// entries and the system clock.
    pub fn new() -> Self {
        Self {
            entries: Cache::new(DEFAULT_SESSION_VERSION_CAPACITY),
            generation: AtomicU64::new(0),
            ttl_millis: millis(DEFAULT_TTL),
            clock: SystemClock::shared(),
        }
    }

    /// How long a cached version is trusted: the longest a stale token can
    /// still be admitted when nobody calls `invalidate`.
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl_millis = millis(ttl);
        self
    }

    /// The most subjects kept (at least one). The cache splits the bound
    /// over its shards (their number follows the core count) and rounds
    /// each shard up, so it may hold a few more.
    #[must_use]
    pub fn capacity(mut self, entries: usize) -> Self {
        self.entries = Cache::new(entries.max(1));
        self
    }

    /// The clock that decides expiry.
    #[must_use]
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Live and expired-but-not-yet-evicted entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no entries are held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The current invalidation generation.
    pub fn generation(&self) -> Generation {
        Generation(self.generation.load(Ordering::SeqCst))
    }

    /// Drops every entry and moves the generation, so no fetch that began
    /// before can store its answer. Used when invalidations may have been
    /// missed (e.g. a lost pub/sub subscription).
    pub fn clear(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.entries.clear();
    }

    pub(crate) fn lookup(&self, subject: &str) -> Lookup {
        let generation = self.generation();
        let now = self.clock.unix_millis();
        let version = self
            .entries
            .get(subject)
            .filter(|entry| entry.expires_at > now)
            .map(|entry| entry.version);
        Lookup {
            version,
            generation,
        }
    }

    pub(crate) fn store(&self, subject: &str, version: u64, seen: Generation) -> Stored {
        if self.generation() != seen {
            return Stored::Invalidated;
        }
        let expires_at = self.clock.unix_millis().saturating_add(self.ttl_millis);
        self.entries.insert(
            subject.into(),
            Entry {
                version,
                expires_at,
            },
        );
        // Checked again after the insert: an invalidation moves the
        // generation before it removes, so either it removes what was just
        // stored, or this sees the move and removes it (costing at most a
        // refetch of a value stored concurrently).
        if self.generation() != seen {
            self.entries.remove(subject);
            return Stored::Invalidated;
        }
        Stored::Yes
    }

    pub(crate) fn remove(&self, subject: &str) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.entries.remove(subject);
    }
}

impl Default for MemorySessionVersionCache {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MemorySessionVersionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemorySessionVersionCache")
            .field("entries", &self.len())
            .field("capacity", &self.entries.capacity())
            .field("ttl_millis", &self.ttl_millis)
            .field("generation", &self.generation())
            .finish()
    }
}

#[async_trait]
impl SessionVersionCache for MemorySessionVersionCache {
    async fn get(&self, subject: &str) -> Result<Lookup, StoreError> {
        Ok(self.lookup(subject))
    }

    async fn set(
        &self,
        subject: &str,
        version: u64,
        seen: Generation,
    ) -> Result<Stored, StoreError> {
        Ok(self.store(subject, version, seen))
    }

    async fn invalidate(&self, subject: &str) -> Result<(), StoreError> {
        self.remove(subject);
        Ok(())
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn cache(clock: &ManualClock) -> MemorySessionVersionCache {
        MemorySessionVersionCache::new().clock(clock.shared())
    }

    #[test]
    fn entries_expire_after_the_ttl_by_the_clock() {
        let clock = ManualClock::at_unix(1_000);
        let cache = cache(&clock).ttl(Duration::from_secs(60));
        let seen = cache.generation();
        assert_eq!(cache.store("alice", 2, seen), Stored::Yes);
        clock.advance(Duration::from_millis(59_999));
        assert_eq!(cache.lookup("alice").version, Some(2));
        clock.advance(Duration::from_millis(1));
        assert_eq!(cache.lookup("alice").version, None);
    }

    #[test]
    fn a_set_with_a_generation_from_before_an_invalidation_is_dropped() {
        let clock = ManualClock::at_unix(1_000);
        let cache = cache(&clock);
        let before = cache.lookup("alice").generation;
        cache.remove("alice");
        assert_eq!(cache.store("alice", 1, before), Stored::Invalidated);
        assert_eq!(cache.lookup("alice").version, None);
        let after = cache.lookup("alice").generation;
        assert_eq!(cache.store("alice", 2, after), Stored::Yes);
        assert_eq!(cache.lookup("alice").version, Some(2));
    }

    #[test]
    fn clear_drops_everything_and_refuses_earlier_generations() {
        let clock = ManualClock::at_unix(1_000);
        let cache = cache(&clock);
        let seen = cache.generation();
        cache.store("alice", 1, seen);
        cache.store("bob", 1, seen);
        cache.clear();
        assert!(cache.is_empty());
        assert_eq!(cache.store("carol", 1, seen), Stored::Invalidated);
    }

    #[test]
    fn the_cache_stays_bounded_under_a_flood_of_subjects() {
        let clock = ManualClock::at_unix(1_000);
        let cache = cache(&clock).capacity(64);
        let most = usize::try_from(cache.entries.capacity()).unwrap();
        for i in 0..10_000 {
            clock.advance(Duration::from_millis(1));
            let subject = format!("user{i}");
            cache.store(&subject, 1, cache.generation());
            assert!(cache.len() <= most, "{} entries", cache.len());
            // The newest entry survives its own insertion.
            assert_eq!(cache.lookup(&subject).version, Some(1), "{subject}");
        }
    }

    #[test]
    fn a_subject_asked_for_again_outlives_a_flood_of_new_ones() {
        let clock = ManualClock::at_unix(1_000);
        let cache = cache(&clock).capacity(64);
        cache.store("hot", 7, cache.generation());
        for i in 0..10_000 {
            assert_eq!(cache.lookup("hot").version, Some(7), "after {i} others");
            cache.store(&format!("flood{i}"), 1, cache.generation());
        }
    }

    #[test]
    fn expired_entries_are_never_answered() {
        let clock = ManualClock::at_unix(1_000);
        let cache = cache(&clock).capacity(1).ttl(Duration::from_secs(1));
        cache.store("old", 1, cache.generation());
        clock.advance(Duration::from_secs(2));
        assert_eq!(cache.lookup("old").version, None);
        cache.store("new", 1, cache.generation());
        assert_eq!(cache.lookup("new").version, Some(1));
        assert!(cache.len() <= 1);
    }

    #[test]
    fn an_invalidation_racing_a_store_never_leaves_the_old_value() {
        // Many rounds of: a fetch read the generation, an invalidation
        // happens on another thread, the fetch stores its (old) answer.
        let cache = std::sync::Arc::new(MemorySessionVersionCache::new());
        for round in 0..2_000u64 {
            let seen = cache.generation();
            let remover = {
                let cache = std::sync::Arc::clone(&cache);
                std::thread::spawn(move || cache.remove("alice"))
            };
            let stored = cache.store("alice", round, seen);
            remover.join().unwrap();
            // Whatever the interleaving, once both are done the value the
            // invalidation was meant to kill is gone.
            assert_eq!(
                cache.lookup("alice").version,
                None,
                "round {round}: {stored:?}"
            );
        }
    }
}
