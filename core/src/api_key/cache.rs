//! [`CachedApiKeyStore`]: a bounded cache in front of any [`ApiKeyStore`].
//!
//! What you rely on:
//!
//! - **Revocation bound.** A record is served from the cache for at most
//!   [`max_staleness`](CachedApiKeyStore::max_staleness) (default
//!   [`DEFAULT_MAX_STALENESS`], 30 s) after it was read from the backing
//!   store. A key revoked by another process therefore stops working within
//!   that bound; one revoked through this wrapper stops at once. A staleness
//!   of zero turns the cache off entirely. Expiry needs no bound: the layer
//!   checks `expires_at` on every request against its clock.
//! - **Unknown keys** are cached as "unknown" for
//!   [`negative_ttl`](CachedApiKeyStore::negative_ttl) so a client
//!   retrying a dead key does not hammer the database. The negative cache has
//!   its own entry bound, so a flood of invented (checksum-valid) keys can
//!   neither exhaust memory nor evict known keys.
//! - **Bounded memory, constant cost.** At most `capacity` known and
//!   `negative_capacity` unknown digests are held. When full, a new digest
//!   makes room in constant time ([`quick_cache`]'s eviction, which keeps
//!   digests that are looked up again), so a flood of invented keys costs
//!   each request the same small amount however full the cache is.
//! - **Failures are not cached:** a backend error passes through (→ 503) and
//!   the next request asks again.
//! - Time is the injected clock, so tests move a
//!   [`ManualClock`](crate::clock::ManualClock) instead of sleeping.
//!
//! ```
//! use std::time::Duration;
//! use keystile_core::api_key::{CachedApiKeyStore, MemoryApiKeyStore};
//!
//! // In production the inner store is `PostgresApiKeyStore`.
//! let store = CachedApiKeyStore::new(MemoryApiKeyStore::new())
//!     .max_staleness(Duration::from_secs(10))
//!     .capacity(50_000);
//! # let _ = store;
//! ```

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use quick_cache::sync::Cache;

use super::digest::KeyDigest;
use super::record::ApiKeyRecord;
use super::store::{ApiKeyAdmin, ApiKeyStore, CreateError, LastUse};
use crate::clock::{SharedClock, SystemClock};
use crate::store::StoreError;

/// Default longest time a cached record is served (and so the longest a key
/// revoked elsewhere stays usable).
pub const DEFAULT_MAX_STALENESS: Duration = Duration::from_secs(30);
/// Default time an unknown digest is remembered as unknown.
pub const DEFAULT_NEGATIVE_TTL: Duration = Duration::from_secs(30);
/// Default bound on cached known keys.
pub const DEFAULT_CAPACITY: usize = 10_000;
/// Default bound on cached unknown digests.
pub const DEFAULT_NEGATIVE_CAPACITY: usize = 10_000;

/// A bounded, time-limited cache in front of another [`ApiKeyStore`].
pub struct CachedApiKeyStore<S> {
    inner: S,
    clock: SharedClock,
    max_staleness_ms: u64,
    negative_ttl_ms: u64,
    known: Bounded<Arc<ApiKeyRecord>>,
    unknown: Bounded<()>,
    // Bumped by every revoke and invalidation. A lookup keeps what the
    // inner store returned only if no bump happened while it was reading,
    // so a read that raced a revocation cannot put the old record back.
    generation: AtomicU64,
}

/// Digests with their cached answers, at most `capacity` of them; a new
/// one makes room in constant time ([`quick_cache`]'s eviction), however
/// full the cache is. `None` when the capacity is zero.
struct Bounded<T: Clone> {
    entries: Option<Cache<[u8; 32], Cached<T>>>,
}

impl<T: Clone> Bounded<T> {
    fn new(capacity: usize) -> Self {
        Self {
            entries: (capacity > 0).then(|| Cache::new(capacity)),
        }
    }

    fn get(&self, digest: &KeyDigest, now_ms: u64) -> Option<T> {
        let hit = self.entries.as_ref()?.get(&digest.0)?;
        hit.fresh_at(now_ms).then_some(hit.value)
    }

    fn insert(&self, digest: &KeyDigest, entry: Cached<T>) {
        if let Some(entries) = &self.entries {
            entries.insert(digest.0, entry);
        }
    }

    fn remove(&self, digest: &KeyDigest) {
        if let Some(entries) = &self.entries {
            entries.remove(&digest.0);
        }
    }

    fn clear(&self) {
        if let Some(entries) = &self.entries {
            entries.clear();
        }
    }

    fn len(&self) -> usize {
        self.entries.as_ref().map_or(0, Cache::len)
    }
}

#[derive(Clone)]
struct Cached<T> {
    value: T,
    stored_ms: u64,
    until_ms: u64,
}

impl<T> Cached<T> {
    fn fresh_at(&self, now_ms: u64) -> bool {
        // A clock that moved backwards before `stored_ms` counts as stale, so
        // a clock jump can never stretch the revocation bound.
        self.stored_ms <= now_ms && now_ms < self.until_ms
    }
}

impl<S: ApiKeyStore> CachedApiKeyStore<S> {
    /// A cache with the default bounds in front of `inner`.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            clock: SystemClock::shared(),
            max_staleness_ms: millis(DEFAULT_MAX_STALENESS),
            negative_ttl_ms: millis(DEFAULT_NEGATIVE_TTL),
            known: Bounded::new(DEFAULT_CAPACITY),
            unknown: Bounded::new(DEFAULT_NEGATIVE_CAPACITY),
            generation: AtomicU64::new(0),
        }
    }

    /// Sets the longest time a record is served from the cache; zero
    /// disables caching (every lookup goes to the inner store).
    #[must_use]
    pub fn max_staleness(mut self, max: Duration) -> Self {
        self.max_staleness_ms = millis(max);
        self
    }

    /// Sets how long an unknown digest is remembered; zero disables
    /// negative caching.
    #[must_use]
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl_ms = millis(ttl);
        self
    }

    /// Sets the bound on cached known keys. Like the negative bound, it is
    /// split over the cache's shards (their number follows the core count)
    /// and each shard is rounded up, so a few more may be held.
    #[must_use]
    pub fn capacity(mut self, entries: usize) -> Self {
        self.known = Bounded::new(entries);
        self
    }

    /// Sets the bound on cached unknown digests.
    #[must_use]
    pub fn negative_capacity(mut self, entries: usize) -> Self {
        self.unknown = Bounded::new(entries);
        self
    }

    /// Uses `clock` for cache freshness.
    #[must_use]
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Drops whatever is cached for `digest`.
    pub fn invalidate(&self, digest: &KeyDigest) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.known.remove(digest);
        self.unknown.remove(digest);
    }

    /// Drops everything cached.
    pub fn clear(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.known.clear();
        self.unknown.clear();
    }

    /// Number of cached known keys and unknown digests.
    pub fn cached(&self) -> (usize, usize) {
        (self.known.len(), self.unknown.len())
    }

    fn remember(
        &self,
        digest: &KeyDigest,
        found: Option<&Arc<ApiKeyRecord>>,
        now_ms: u64,
        generation: u64,
    ) {
        if self.generation.load(Ordering::SeqCst) != generation {
            return;
        }
        match found {
            Some(record) => {
                self.unknown.remove(digest);
                self.known.insert(
                    digest,
                    Cached {
                        value: Arc::clone(record),
                        stored_ms: now_ms,
                        until_ms: now_ms.saturating_add(self.max_staleness_ms),
                    },
                );
            }
            None if self.negative_ttl_ms > 0 => self.unknown.insert(
                digest,
                Cached {
                    value: (),
                    stored_ms: now_ms,
                    until_ms: now_ms.saturating_add(self.negative_ttl_ms),
                },
            ),
            None => return,
        }
        // Checked again after the insert: a revocation bumps the generation
        // before it purges, so either the purge removes what was just
        // cached, or this sees the bump and removes it (costing at most one
        // extra lookup of a digest cached concurrently).
        if self.generation.load(Ordering::SeqCst) != generation {
            self.known.remove(digest);
            self.unknown.remove(digest);
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl<S> fmt::Debug for CachedApiKeyStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedApiKeyStore")
            .field("max_staleness_ms", &self.max_staleness_ms)
            .field("negative_ttl_ms", &self.negative_ttl_ms)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl<S: ApiKeyStore> ApiKeyStore for CachedApiKeyStore<S> {
    async fn lookup(&self, digest: &KeyDigest) -> Result<Option<Arc<ApiKeyRecord>>, StoreError> {
        if self.max_staleness_ms == 0 {
            return self.inner.lookup(digest).await;
        }
        let now_ms = self.clock.unix_millis();
        if let Some(record) = self.known.get(digest, now_ms) {
            return Ok(Some(record));
        }
        if self.unknown.get(digest, now_ms).is_some() {
            return Ok(None);
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let found = self.inner.lookup(digest).await?;
        self.remember(digest, found.as_ref(), now_ms, generation);
        Ok(found)
    }
}

#[async_trait]
impl<S: ApiKeyAdmin> ApiKeyAdmin for CachedApiKeyStore<S> {
    async fn create(&self, record: ApiKeyRecord) -> Result<(), CreateError> {
        let digest = record.digest;
        self.inner.create(record).await?;
        self.invalidate(&digest);
        Ok(())
    }

    async fn revoke(&self, id: &str, at: u64) -> Result<bool, StoreError> {
        let revoked = self.inner.revoke(id, at).await?;
        self.generation.fetch_add(1, Ordering::SeqCst);
        // Drop the record whether or not this call revoked it: the cached
        // copy may predate a revocation made elsewhere. A scan, but an
        // administrative call's, never a request's.
        if let Some(known) = &self.known.entries {
            known.retain(|_, cached| cached.value.id != id);
        }
        Ok(revoked)
    }

    async fn list(&self, owner: &str) -> Result<Vec<Arc<ApiKeyRecord>>, StoreError> {
        self.inner.list(owner).await
    }

    async fn record_use(&self, uses: &[LastUse]) -> Result<(), StoreError> {
        self.inner.record_use(uses).await
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::api_key::{KeyPrefix, MemoryApiKeyStore, NewApiKey};
    use crate::clock::ManualClock;
    use crate::random::OsRandom;
    use crate::testing::CountingStore;

    async fn setup(
        staleness: u64,
    ) -> (
        CachedApiKeyStore<Arc<CountingStore>>,
        Arc<CountingStore>,
        ManualClock,
        ApiKeyRecord,
    ) {
        let clock = ManualClock::at_unix(1_000);
        let backing = Arc::new(CountingStore::default());
        let (_, record) = NewApiKey::new(KeyPrefix::new("sk").unwrap(), "acme")
            .mint(&OsRandom, 1_000)
            .unwrap();
        backing.inner().create(record.clone()).await.unwrap();
        let cache = CachedApiKeyStore::new(backing.clone())
            .clock(clock.shared())
            .max_staleness(Duration::from_secs(staleness));
        (cache, backing, clock, record)
    }

    #[tokio::test]
    async fn hits_skip_the_backing_store_until_stale() {
        let (cache, backing, clock, record) = setup(30).await;
        for _ in 0..5 {
            assert!(cache.lookup(&record.digest).await.unwrap().is_some());
        }
        assert_eq!(backing.lookups(), 1);
        clock.advance(Duration::from_secs(30));
        assert!(cache.lookup(&record.digest).await.unwrap().is_some());
        assert_eq!(backing.lookups(), 2);
    }

    /// Answers lookups with a record read before a revocation, released
    /// only when the test says so: a read racing a revoke.
    struct RacingRead {
        stale: Arc<ApiKeyRecord>,
        release: tokio::sync::Notify,
        records: MemoryApiKeyStore,
    }

    #[async_trait]
    impl ApiKeyStore for RacingRead {
        async fn lookup(&self, _: &KeyDigest) -> Result<Option<Arc<ApiKeyRecord>>, StoreError> {
            self.release.notified().await;
            Ok(Some(self.stale.clone()))
        }
    }

    #[async_trait]
    impl ApiKeyAdmin for RacingRead {
        async fn create(&self, record: ApiKeyRecord) -> Result<(), CreateError> {
            self.records.create(record).await
        }

        async fn revoke(&self, id: &str, at: u64) -> Result<bool, StoreError> {
            self.records.revoke(id, at).await
        }

        async fn list(&self, owner: &str) -> Result<Vec<Arc<ApiKeyRecord>>, StoreError> {
            self.records.list(owner).await
        }

        async fn record_use(&self, uses: &[LastUse]) -> Result<(), StoreError> {
            self.records.record_use(uses).await
        }
    }

    #[tokio::test]
    async fn a_read_racing_a_revoke_is_not_cached() {
        let (_, record) = NewApiKey::new(KeyPrefix::new("sk").unwrap(), "acme")
            .mint(&OsRandom, 1_000)
            .unwrap();
        let inner = RacingRead {
            stale: Arc::new(record.clone()),
            release: tokio::sync::Notify::new(),
            records: MemoryApiKeyStore::new(),
        };
        inner.records.create(record.clone()).await.unwrap();
        let cache =
            Arc::new(CachedApiKeyStore::new(inner).clock(ManualClock::at_unix(1_000).shared()));
        let reader = {
            let cache = cache.clone();
            let digest = record.digest;
            tokio::spawn(async move { cache.lookup(&digest).await })
        };
        tokio::task::yield_now().await;
        // The revocation lands while the read is in flight...
        assert!(cache.revoke(&record.id, 1_000).await.unwrap());
        // ...and the read then returns the pre-revocation record.
        cache.inner.release.notify_one();
        let raced = reader.await.unwrap().unwrap().unwrap();
        assert_eq!(raced.revoked_at, None);
        // It must not have been cached: the next lookup asks the store again.
        assert_eq!(cache.cached(), (0, 0));
    }

    #[tokio::test]
    async fn revoked_elsewhere_is_seen_within_the_bound() {
        let (cache, backing, clock, record) = setup(30).await;
        assert!(cache.lookup(&record.digest).await.unwrap().is_some());
        // Another process revokes it directly in the backing store.
        backing.inner().revoke(&record.id, 1_000).await.unwrap();
        clock.advance(Duration::from_millis(29_999));
        let stale = cache.lookup(&record.digest).await.unwrap().unwrap();
        assert_eq!(stale.revoked_at, None, "still inside the bound");
        clock.advance(Duration::from_millis(1));
        let fresh = cache.lookup(&record.digest).await.unwrap().unwrap();
        assert_eq!(fresh.revoked_at, Some(1_000));
    }

    #[tokio::test]
    async fn revoked_through_the_cache_is_seen_at_once() {
        let (cache, _, _, record) = setup(30).await;
        assert!(cache.lookup(&record.digest).await.unwrap().is_some());
        assert!(cache.revoke(&record.id, 1_000).await.unwrap());
        let r = cache.lookup(&record.digest).await.unwrap().unwrap();
        assert_eq!(r.revoked_at, Some(1_000));
    }

    #[tokio::test]
    async fn zero_staleness_disables_the_cache() {
        let (cache, backing, _, record) = setup(0).await;
        for _ in 0..3 {
            cache.lookup(&record.digest).await.unwrap();
            cache.lookup(&KeyDigest::of("unknown")).await.unwrap();
        }
        assert_eq!(backing.lookups(), 6);
        assert_eq!(cache.cached(), (0, 0));
    }

    #[tokio::test]
    async fn a_clock_moved_backwards_does_not_stretch_the_bound() {
        let (cache, backing, clock, record) = setup(30).await;
        cache.lookup(&record.digest).await.unwrap();
        clock.rewind(Duration::from_secs(5));
        cache.lookup(&record.digest).await.unwrap();
        assert_eq!(backing.lookups(), 2);
    }

    #[tokio::test]
    async fn unknown_digests_are_cached_but_bounded() {
        let (cache, backing, _, record) = setup(30).await;
        let cache = cache.negative_capacity(64).capacity(64);
        let unknown = KeyDigest::of("nope");
        assert!(cache.lookup(&unknown).await.unwrap().is_none());
        assert!(cache.lookup(&unknown).await.unwrap().is_none());
        assert_eq!(backing.lookups(), 1);

        cache.lookup(&record.digest).await.unwrap();
        for i in 0..5_000u32 {
            cache.lookup(&KeyDigest::of(&i.to_string())).await.unwrap();
        }
        let (known, unknown_cached) = cache.cached();
        assert!(unknown_cached <= 64, "{unknown_cached}");
        assert_eq!(known, 1, "a flood of unknown keys evicts no known key");
        let before = backing.lookups();
        cache.lookup(&record.digest).await.unwrap();
        assert_eq!(backing.lookups(), before);
    }

    #[tokio::test]
    async fn failures_are_not_cached() {
        let (cache, backing, _, record) = setup(30).await;
        backing.set_down(true);
        assert!(cache.lookup(&record.digest).await.is_err());
        backing.set_down(false);
        assert!(cache.lookup(&record.digest).await.unwrap().is_some());
    }
}
