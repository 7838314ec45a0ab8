//! Deciding whether a token's session version is still current.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::OnceCell;

use super::{FetchError, FetchRequest, Generation, SessionVersionCache, SessionVersionFetcher};
use crate::store::StoreError;

/// Default bound on one fetch, whatever the fetcher.
const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(2);

/// A token that passed the check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freshness {
    /// The token's version is the current one (or newer).
    Current,
    /// The token carries no version and the validator is not strict.
    Unversioned,
}

/// A token that failed the check, or a check that could not be made.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FreshnessError {
    /// The token predates the subject's current session version: its
    /// session was revoked (401).
    #[error("session revoked: token version {token} is older than current version {current}")]
    Stale {
        /// The version the token carries.
        token: u64,
        /// The subject's current version.
        current: u64,
    },
    /// The token carries no version and the validator is strict (401).
    #[error("the token carries no session version")]
    Unversioned,
    /// The current version could not be fetched (503, fail closed).
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The cache backend failed (503, fail closed).
    #[error(transparent)]
    Store(Arc<StoreError>),
}

impl FreshnessError {
    /// Whether the check could not be made (a backend failed), as opposed
    /// to the token being refused.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Fetch(_) | Self::Store(_))
    }
}

impl From<StoreError> for FreshnessError {
    fn from(error: StoreError) -> Self {
        Self::Store(Arc::new(error))
    }
}

/// Compares tokens' session versions with the current ones.
///
/// Cloning is cheap and shares the cache, the fetcher and the in-flight
/// fetches. Keep a clone where break-glass is handled and call
/// [`invalidate`](Self::invalidate) there.
///
/// Concurrent misses for one subject share a single fetch (single-flight).
/// A flight is only joined by callers that read the cache at the same
/// [`Generation`], so a request arriving after an invalidation never waits
/// for, or trusts, a fetch that began before it.
///
/// See the [module documentation](super) for an example.
#[derive(Clone)]
pub struct SessionVersionValidator {
    cache: Arc<dyn SessionVersionCache>,
    fetcher: Arc<dyn SessionVersionFetcher>,
    flights: Arc<Mutex<HashMap<Box<str>, Arc<Flight>>>>,
    strict: bool,
    fetch_timeout: Duration,
}

struct Flight {
    generation: Generation,
    result: OnceCell<Result<u64, FreshnessError>>,
}

impl SessionVersionValidator {
    /// A validator reading `cache` and filling it from `fetcher`.
    pub fn new(cache: impl SessionVersionCache, fetcher: impl SessionVersionFetcher) -> Self {
        Self::from_shared(Arc::new(cache), Arc::new(fetcher))
    }

    /// A validator over a cache and fetcher that are shared elsewhere too.
    pub fn from_shared(
        cache: Arc<dyn SessionVersionCache>,
        fetcher: Arc<dyn SessionVersionFetcher>,
    ) -> Self {
        Self {
            cache,
            fetcher,
            flights: Arc::default(),
            strict: false,
            fetch_timeout: DEFAULT_FETCH_TIMEOUT,
        }
    }

    /// Strict mode refuses tokens that carry no session version instead of
    /// admitting them (legacy, machine and delegated tokens often have none).
    #[must_use]
    pub fn strict(mut self) -> Self {
        self.strict = true;
        self
    }

    /// Bounds every fetch (default 2 s); a fetch that takes longer fails
    /// with [`FetchError::Timeout`].
    #[must_use]
    pub fn fetch_timeout(mut self, timeout: Duration) -> Self {
        self.fetch_timeout = timeout;
        self
    }

    /// Whether tokens without a version are refused.
    pub fn is_strict(&self) -> bool {
        self.strict
    }

    /// The cache this validator reads.
    pub fn cache(&self) -> &Arc<dyn SessionVersionCache> {
        &self.cache
    }

    /// Subjects whose version is being fetched right now. Each entry lives
    /// only while its fetch does, so this is bounded by the requests in
    /// flight and is zero when the service is idle.
    pub fn fetches_in_flight(&self) -> usize {
        lock(&self.flights).len()
    }

    /// Checks a token's version (`token`) against the current version of
    /// `request.subject`.
    pub async fn check(
        &self,
        request: FetchRequest<'_>,
        token: Option<u64>,
    ) -> Result<Freshness, FreshnessError> {
        let Some(token) = token else {
            return if self.strict {
                Err(FreshnessError::Unversioned)
            } else {
                Ok(Freshness::Unversioned)
            };
        };
        let current = self.current(request).await?;
        if token < current {
            Err(FreshnessError::Stale { token, current })
        } else {
            Ok(Freshness::Current)
        }
    }

    /// The current version of `request.subject`: cached, or fetched (once
    /// for all concurrent callers) and cached.
    pub async fn current(&self, request: FetchRequest<'_>) -> Result<u64, FreshnessError> {
        let lookup = self.cache.get(request.subject).await?;
        if let Some(version) = lookup.version {
            return Ok(version);
        }
        let flight = FlightSeat::take(self, request.subject, lookup.generation);
        flight
            .flight
            .result
            .get_or_init(|| self.fetch_and_store(request))
            .await
            .clone()
    }

    /// Drops the cached version of `subject` at once (in every process, with
    /// a shared cache). Call it after bumping the version at the source of
    /// truth: the next request re-fetches.
    pub async fn invalidate(&self, subject: &str) -> Result<(), StoreError> {
        self.cache.invalidate(subject).await?;
        lock(&self.flights).remove(subject);
        Ok(())
    }

    async fn fetch_and_store(&self, request: FetchRequest<'_>) -> Result<u64, FreshnessError> {
        // A caller that missed just before the previous flight stored its
        // answer would otherwise fetch a second time.
        let lookup = self.cache.get(request.subject).await?;
        if let Some(version) = lookup.version {
            return Ok(version);
        }
        let version =
            match tokio::time::timeout(self.fetch_timeout, self.fetcher.fetch(request)).await {
                Ok(Ok(version)) => version,
                Ok(Err(error)) => return Err(fetch_failed(error)),
                Err(_) => return Err(fetch_failed(FetchError::Timeout)),
            };
        // The fetched version is the truth whether or not it can be cached:
        // a failing cache write costs a refetch, never a wrong answer.
        if let Err(error) = self
            .cache
            .set(request.subject, version, lookup.generation)
            .await
        {
            tracing::warn!(
                target: "keystile::session_version",
                %error,
                "caching a fetched session version failed"
            );
        }
        Ok(version)
    }
}

fn fetch_failed(error: FetchError) -> FreshnessError {
    tracing::warn!(
        target: "keystile::session_version",
        %error,
        "fetching the current session version failed"
    );
    FreshnessError::Fetch(error)
}

impl fmt::Debug for SessionVersionValidator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionVersionValidator")
            .field("strict", &self.strict)
            .field("fetch_timeout", &self.fetch_timeout)
            .field("in_flight", &lock(&self.flights).len())
            .finish_non_exhaustive()
    }
}

/// A caller's place in a subject's flight; leaving removes a finished (or
/// abandoned) flight from the map so later misses fetch afresh.
struct FlightSeat<'a> {
    flights: &'a Mutex<HashMap<Box<str>, Arc<Flight>>>,
    subject: &'a str,
    flight: Arc<Flight>,
}

impl<'a> FlightSeat<'a> {
    fn take(
        validator: &'a SessionVersionValidator,
        subject: &'a str,
        generation: Generation,
    ) -> Self {
        let mut flights = lock(&validator.flights);
        let flight = match flights.get(subject) {
            Some(flight) if flight.generation == generation => Arc::clone(flight),
            _ => {
                let flight = Arc::new(Flight {
                    generation,
                    result: OnceCell::new(),
                });
                flights.insert(subject.into(), Arc::clone(&flight));
                flight
            }
        };
        Self {
            flights: &validator.flights,
            subject,
            flight,
        }
    }
}

impl Drop for FlightSeat<'_> {
    fn drop(&mut self) {
        let mut flights = lock(self.flights);
        let Some(current) = flights.get(self.subject) else {
            return;
        };
        // Seats are only cloned under this lock, so a count of 2 (map + us)
        // means no one else waits on an unfinished flight.
        let finished = self.flight.result.initialized();
        let abandoned = Arc::strong_count(&self.flight) <= 2;
        if Arc::ptr_eq(current, &self.flight) && (finished || abandoned) {
            flights.remove(self.subject);
        }
    }
}

// Nothing panics while the map is locked, so a poisoned lock still guards a
// consistent map.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

    use tokio::sync::Semaphore;

    use super::*;
    use crate::clock::ManualClock;
    use crate::session_version::MemorySessionVersionCache;

    fn alice() -> FetchRequest<'static> {
        FetchRequest {
            subject: "alice",
            bearer: None,
        }
    }

    /// A source of truth the test controls, counting fetches.
    #[derive(Clone, Default)]
    struct Truth {
        version: Arc<AtomicU64>,
        fetches: Arc<AtomicUsize>,
        gate: Option<Arc<Semaphore>>,
    }

    impl Truth {
        fn fetcher(&self) -> impl SessionVersionFetcher {
            let truth = self.clone();
            move |_: FetchRequest<'_>| {
                let truth = truth.clone();
                async move {
                    truth.fetches.fetch_add(1, Ordering::SeqCst);
                    // Read before waiting: this fetch answers with the version
                    // current when it started.
                    let version = truth.version.load(Ordering::SeqCst);
                    if let Some(gate) = &truth.gate
                        && let Ok(permit) = gate.acquire().await
                    {
                        permit.forget();
                    }
                    Ok(version)
                }
            }
        }
    }

    #[tokio::test]
    async fn no_version_is_admitted_unless_strict() {
        let truth = Truth::default();
        let lenient =
            SessionVersionValidator::new(MemorySessionVersionCache::new(), truth.fetcher());
        assert_eq!(
            lenient.check(alice(), None).await.unwrap(),
            Freshness::Unversioned
        );
        let strict = lenient.clone().strict();
        assert!(matches!(
            strict.check(alice(), None).await,
            Err(FreshnessError::Unversioned)
        ));
        assert_eq!(truth.fetches.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn older_is_stale_equal_and_newer_are_current() {
        let truth = Truth::default();
        truth.version.store(5, Ordering::SeqCst);
        let validator =
            SessionVersionValidator::new(MemorySessionVersionCache::new(), truth.fetcher());
        assert!(matches!(
            validator.check(alice(), Some(4)).await,
            Err(FreshnessError::Stale {
                token: 4,
                current: 5
            })
        ));
        assert_eq!(
            validator.check(alice(), Some(5)).await.unwrap(),
            Freshness::Current
        );
        assert_eq!(
            validator.check(alice(), Some(6)).await.unwrap(),
            Freshness::Current
        );
        assert_eq!(
            truth.fetches.load(Ordering::SeqCst),
            1,
            "later checks hit the cache"
        );
    }

    #[tokio::test]
    async fn a_hanging_fetcher_times_out_as_a_fetch_error() {
        let fetcher = |_: FetchRequest<'_>| std::future::pending::<Result<u64, FetchError>>();
        let validator = SessionVersionValidator::new(MemorySessionVersionCache::new(), fetcher)
            .fetch_timeout(Duration::from_millis(20));
        let error = validator.check(alice(), Some(1)).await.unwrap_err();
        assert!(matches!(error, FreshnessError::Fetch(FetchError::Timeout)));
        assert!(error.is_unavailable());
    }

    #[tokio::test]
    async fn concurrent_misses_share_one_fetch() {
        let gate = Arc::new(Semaphore::new(0));
        let truth = Truth {
            gate: Some(Arc::clone(&gate)),
            ..Truth::default()
        };
        let validator =
            SessionVersionValidator::new(MemorySessionVersionCache::new(), truth.fetcher());
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let validator = validator.clone();
                tokio::spawn(async move { validator.check(alice(), Some(0)).await })
            })
            .collect();
        while truth.fetches.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        gate.add_permits(1);
        for task in tasks {
            assert_eq!(task.await.unwrap().unwrap(), Freshness::Current);
        }
        assert_eq!(truth.fetches.load(Ordering::SeqCst), 1);
        assert!(
            lock(&validator.flights).is_empty(),
            "finished flights are removed"
        );
    }

    #[tokio::test]
    async fn a_fetch_started_before_an_invalidation_does_not_cache_its_old_answer() {
        let clock = ManualClock::at_unix(1_000);
        let gate = Arc::new(Semaphore::new(0));
        let truth = Truth {
            gate: Some(Arc::clone(&gate)),
            ..Truth::default()
        };
        truth.version.store(1, Ordering::SeqCst);
        let cache = MemorySessionVersionCache::new().clock(clock.shared());
        let validator = SessionVersionValidator::new(cache, truth.fetcher());

        let slow = {
            let validator = validator.clone();
            tokio::spawn(async move { validator.current(alice()).await })
        };
        while truth.fetches.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        // Break-glass while the slow fetch (which read version 1) is out.
        truth.version.store(2, Ordering::SeqCst);
        validator.invalidate("alice").await.unwrap();
        gate.add_permits(1);
        assert_eq!(slow.await.unwrap().unwrap(), 1);

        // The old answer was not cached: the next check fetches again.
        let next = tokio::spawn({
            let validator = validator.clone();
            async move { validator.check(alice(), Some(1)).await }
        });
        while truth.fetches.load(Ordering::SeqCst) < 2 {
            tokio::task::yield_now().await;
        }
        gate.add_permits(1);
        assert!(matches!(
            next.await.unwrap(),
            Err(FreshnessError::Stale {
                token: 1,
                current: 2
            })
        ));
    }

    #[tokio::test]
    async fn a_caller_after_an_invalidation_does_not_join_an_older_flight() {
        let gate = Arc::new(Semaphore::new(0));
        let truth = Truth {
            gate: Some(Arc::clone(&gate)),
            ..Truth::default()
        };
        truth.version.store(1, Ordering::SeqCst);
        let validator =
            SessionVersionValidator::new(MemorySessionVersionCache::new(), truth.fetcher());
        let early = tokio::spawn({
            let validator = validator.clone();
            async move { validator.current(alice()).await }
        });
        while truth.fetches.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        truth.version.store(2, Ordering::SeqCst);
        validator.invalidate("alice").await.unwrap();
        let late = tokio::spawn({
            let validator = validator.clone();
            async move { validator.current(alice()).await }
        });
        while truth.fetches.load(Ordering::SeqCst) < 2 {
            tokio::task::yield_now().await;
        }
        gate.add_permits(2);
        assert_eq!(early.await.unwrap().unwrap(), 1);
        assert_eq!(late.await.unwrap().unwrap(), 2);
    }

    #[tokio::test]
    async fn a_failing_cache_fails_closed() {
        struct Down;
        #[async_trait::async_trait]
        impl SessionVersionCache for Down {
            async fn get(&self, _: &str) -> Result<super::super::Lookup, StoreError> {
                Err(StoreError::Timeout)
            }
            async fn set(
                &self,
                _: &str,
                _: u64,
                _: Generation,
            ) -> Result<super::super::Stored, StoreError> {
                Err(StoreError::Timeout)
            }
            async fn invalidate(&self, _: &str) -> Result<(), StoreError> {
                Err(StoreError::Timeout)
            }
        }
        let truth = Truth::default();
        let validator = SessionVersionValidator::new(Down, truth.fetcher());
        let error = validator.check(alice(), Some(1)).await.unwrap_err();
        assert!(matches!(error, FreshnessError::Store(_)));
        assert!(error.is_unavailable());
        assert_eq!(truth.fetches.load(Ordering::SeqCst), 0);
    }
}
