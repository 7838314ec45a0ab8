//! The in-process session-version cache.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use async_trait::async_trait;
use hashbrown::HashTable;

use super::{Generation, Lookup, SessionVersionCache, Stored};
use crate::clock::{SharedClock, SystemClock};
use crate::store::StoreError;

/// Default time a cached version is trusted.
pub(crate) const DEFAULT_TTL: Duration = Duration::from_secs(60);

/// Default bound on cached subjects.
const DEFAULT_CAPACITY: usize = 65_536;

/// Shards keep concurrent readers of different subjects off one lock; 16 is
/// plenty for the few cores a service runs on.
const SHARDS: usize = 16;

/// Which bits of a subject's hash pick its shard: bits 32..36, which the
/// table inside the shard uses for neither its bucket index (the low bits of
/// a table far smaller than 2^32) nor its tag (the top seven bits).
const SHARD_SHIFT: u32 = 32;

/// Session versions cached in this process: bounded, expiring by the
/// injected clock, sharded so concurrent reads do not queue on one lock.
///
/// When a shard is full of live entries, the one closest to expiry makes
/// room: evicting only costs a refetch. Invalidation generations are counted
/// for the whole cache (not per subject), so an eviction can never make the
/// cache forget that an invalidation happened; the price is that an
/// invalidation also drops the in-flight fetch results of other subjects
/// (they are fetched again on their next miss).
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
///     .with_ttl(Duration::from_secs(60))
///     .with_capacity(10_000)
///     .with_clock(clock.shared());
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
    shards: Box<[Shard]>,
    hasher: RandomState,
    generation: AtomicU64,
    ttl_millis: u64,
    per_shard: usize,
    clock: SharedClock,
}

/// One shard: its own lock on its own cache lines, so readers on two cores
/// touching neighbouring shards do not contend for one line.
#[repr(align(128))]
struct Shard(RwLock<HashTable<Entry>>);

#[derive(Debug)]
struct Entry {
    /// The subject's hash, kept so the table can grow without rehashing.
    hash: u64,
    subject: Box<str>,
    version: u64,
    expires_at: u64,
}

impl MemorySessionVersionCache {
    /// A cache with a 60 s TTL, 65 536 entries and the system clock.
    pub fn new() -> Self {
        let shards = (0..SHARDS)
            .map(|_| Shard(RwLock::new(HashTable::new())))
            .collect();
        Self {
            shards,
            hasher: RandomState::new(),
            generation: AtomicU64::new(0),
            ttl_millis: millis(DEFAULT_TTL),
            per_shard: DEFAULT_CAPACITY.div_ceil(SHARDS),
            clock: SystemClock::shared(),
        }
    }

    /// How long a cached version is trusted: the longest a stale token can
    /// still be admitted when nobody calls `invalidate`.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl_millis = millis(ttl);
        self
    }

    /// The most subjects kept (rounded up to a multiple of the shard count).
    pub fn with_capacity(mut self, entries: usize) -> Self {
        self.per_shard = entries.div_ceil(SHARDS).max(1);
        self
    }

    /// The clock that decides expiry.
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Live and expired-but-not-yet-pruned entries.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|shard| read(&shard.0).len()).sum()
    }

    /// The most entries ever held: the configured bound rounded up to a
    /// multiple of the shard count. [`len`](Self::len) never exceeds it.
    pub fn capacity(&self) -> usize {
        self.per_shard * SHARDS
    }

    /// Whether no entries are held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The current invalidation generation.
    pub fn generation(&self) -> Generation {
        Generation(self.generation.load(Ordering::Acquire))
    }

    /// Drops every entry and moves the generation, so no fetch that began
    /// before can store its answer. Used when invalidations may have been
    /// missed (e.g. a lost pub/sub subscription).
    pub fn clear(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        for shard in self.shards.iter() {
            write(&shard.0).clear();
        }
    }

    pub(crate) fn lookup(&self, subject: &str) -> Lookup {
        let generation = self.generation();
        let now = self.clock.unix_millis();
        let hash = self.hasher.hash_one(subject);
        let version = read(&self.shard(hash).0)
            .find(hash, |entry| *entry.subject == *subject)
            .filter(|entry| entry.expires_at > now)
            .map(|entry| entry.version);
        Lookup {
            version,
            generation,
        }
    }

    pub(crate) fn store(&self, subject: &str, version: u64, seen: Generation) -> Stored {
        let now = self.clock.unix_millis();
        let hash = self.hasher.hash_one(subject);
        let mut shard = write(&self.shard(hash).0);
        // Checked under the shard lock that `remove` also takes, so an
        // invalidation is either seen here or removes what was stored.
        if self.generation() != seen {
            return Stored::Invalidated;
        }
        let expires_at = now.saturating_add(self.ttl_millis);
        if let Some(entry) = shard.find_mut(hash, |entry| *entry.subject == *subject) {
            entry.version = version;
            entry.expires_at = expires_at;
            return Stored::Yes;
        }
        if shard.len() >= self.per_shard {
            shard.retain(|entry| entry.expires_at > now);
            if shard.len() >= self.per_shard {
                let soonest = shard
                    .iter()
                    .min_by_key(|entry| entry.expires_at)
                    .map(|entry| (entry.hash, entry.subject.clone()));
                if let Some((hash, key)) = soonest
                    && let Ok(found) = shard.find_entry(hash, |entry| entry.subject == key)
                {
                    found.remove();
                }
            }
        }
        shard.insert_unique(
            hash,
            Entry {
                hash,
                subject: subject.into(),
                version,
                expires_at,
            },
            |entry| entry.hash,
        );
        Stored::Yes
    }

    pub(crate) fn remove(&self, subject: &str) {
        let hash = self.hasher.hash_one(subject);
        let mut shard = write(&self.shard(hash).0);
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Ok(found) = shard.find_entry(hash, |entry| *entry.subject == *subject) {
            found.remove();
        }
    }

    fn shard(&self, hash: u64) -> &Shard {
        // The modulo keeps the index in range whatever the hash.
        &self.shards[(hash >> SHARD_SHIFT) as usize % SHARDS]
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
            .field("capacity", &(self.per_shard * SHARDS))
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

    fn get_now(&self, subject: &str) -> Option<Result<Lookup, StoreError>> {
        Some(Ok(self.lookup(subject)))
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

// No code runs under these locks that can panic mid-update, so a poisoned
// lock still guards consistent data.
fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn cache(clock: &ManualClock) -> MemorySessionVersionCache {
        MemorySessionVersionCache::new().with_clock(clock.shared())
    }

    #[test]
    fn entries_expire_after_the_ttl_by_the_clock() {
        let clock = ManualClock::at_unix(1_000);
        let cache = cache(&clock).with_ttl(Duration::from_secs(60));
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
    fn the_cache_stays_bounded_and_evicts_the_soonest_expiry() {
        let clock = ManualClock::at_unix(1_000);
        let cache = cache(&clock).with_capacity(SHARDS);
        for i in 0..10 * SHARDS {
            clock.advance(Duration::from_millis(1));
            cache.store(&format!("user{i}"), 1, cache.generation());
            assert!(cache.len() <= SHARDS, "{} entries", cache.len());
        }
        // The newest entry always survives its own insertion.
        let last = format!("user{}", 10 * SHARDS - 1);
        assert_eq!(cache.lookup(&last).version, Some(1));
    }

    #[test]
    fn expired_entries_are_pruned_before_live_ones_are_evicted() {
        let clock = ManualClock::at_unix(1_000);
        let cache = cache(&clock)
            .with_capacity(1)
            .with_ttl(Duration::from_secs(1));
        // Capacity 1 rounds up to one entry per shard.
        cache.store("old", 1, cache.generation());
        clock.advance(Duration::from_secs(2));
        cache.store("new", 1, cache.generation());
        assert_eq!(cache.lookup("new").version, Some(1));
        assert_eq!(cache.lookup("old").version, None);
    }
}
