//! Failed-attempt throttling: [`Backoff`] (free attempts, then exponential
//! delays, then a lock-out) and the [`FailureLog`] that remembers failures
//! per key.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use quick_cache::sync::Cache;

use crate::clock::{SharedClock, SystemClock};
use crate::store::StoreError;

/// How many keys a [`MemoryFailureLog`] remembers unless told otherwise.
pub const DEFAULT_FAILURE_LOG_CAPACITY: usize = 100_000;

/// What failed attempts of one key cost: the first
/// [`free_attempts`](Self::free_attempts) nothing, each further one a
/// delay that doubles from [`base_delay`](Self::base_delay) up to
/// [`max_delay`](Self::max_delay), and the
/// [`lock_after`](Self::lock_after)th inside one
/// [`window`](Self::window) a lock-out of [`lock_for`](Self::lock_for).
///
/// Defaults: 3 free, then 1 s, 2 s, 4 s … (at most 5 min), locked for
/// 15 min at the 10th failure within 15 min.
///
/// ```
/// use std::time::Duration;
/// use keystile_core::rate_limit::Backoff;
///
/// let backoff = Backoff::default();
/// assert_eq!(backoff.delay_after(3), Duration::ZERO);
/// assert_eq!(backoff.delay_after(4), Duration::from_secs(1));
/// assert_eq!(backoff.delay_after(6), Duration::from_secs(4));
/// assert_eq!(backoff.delay_after(10), Duration::from_secs(15 * 60));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    free: u32,
    base: Duration,
    max: Duration,
    pub(crate) lock_after: u32,
    lock_for: Duration,
    pub(crate) window: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            free: 3,
            base: Duration::from_secs(1),
            max: Duration::from_secs(5 * 60),
            lock_after: 10,
            lock_for: Duration::from_secs(15 * 60),
            window: Duration::from_secs(15 * 60),
        }
    }
}

impl Backoff {
    /// Failures that cost no delay.
    #[must_use]
    pub fn free_attempts(mut self, free: u32) -> Self {
        self.free = free;
        self
    }

    /// The delay after the first failure past the free ones; each further
    /// failure doubles it.
    #[must_use]
    pub fn base_delay(mut self, base: Duration) -> Self {
        self.base = base;
        self
    }

    /// The longest delay before the lock-out.
    #[must_use]
    pub fn max_delay(mut self, max: Duration) -> Self {
        self.max = max;
        self
    }

    /// The failure (counted within the window) that locks the key out.
    #[must_use]
    pub fn lock_after(mut self, failures: u32) -> Self {
        self.lock_after = failures.max(1);
        self
    }

    /// How long a lock-out lasts.
    #[must_use]
    pub fn lock_for(mut self, lock_for: Duration) -> Self {
        self.lock_for = lock_for;
        self
    }

    /// How long failures are counted: a key whose first counted failure is
    /// older starts again from zero.
    #[must_use]
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// How long a key is blocked after its `failures`th failure.
    pub fn delay_after(&self, failures: u32) -> Duration {
        if failures >= self.lock_after {
            return self.lock_for;
        }
        let Some(past_free) = failures.checked_sub(self.free).filter(|n| *n > 0) else {
            return Duration::ZERO;
        };
        let doubling = 2u32.saturating_pow(past_free - 1);
        self.base.saturating_mul(doubling).min(self.max)
    }
}

/// Remembers failed attempts per key and how long each key is blocked.
/// Keys are opaque text (a username, a client address); callers
/// namespace them.
#[async_trait]
pub trait FailureLog: Send + Sync + 'static {
    /// How long `key` is still blocked (zero when it may try).
    async fn blocked_for(&self, key: &str) -> Result<Duration, StoreError>;

    /// Counts a failed attempt of `key`; returns how long it is now
    /// blocked.
    async fn failed(&self, key: &str) -> Result<Duration, StoreError>;

    /// Forgets `key`'s failures: it proved itself.
    async fn succeeded(&self, key: &str) -> Result<(), StoreError>;
}

/// One key's failures (clock milliseconds).
#[derive(Default)]
struct Failures {
    count: u32,
    first_ms: u64,
    blocked_until_ms: u64,
}

/// A [`FailureLog`] in process memory, bounded: at most
/// [`capacity`](Self::capacity) keys (default
/// [`DEFAULT_FAILURE_LOG_CAPACITY`]); when full, keys are forgotten the way
/// quick_cache evicts (keys seen once go first).
pub struct MemoryFailureLog {
    backoff: Backoff,
    clock: SharedClock,
    keys: Cache<String, Arc<Mutex<Failures>>>,
}

impl MemoryFailureLog {
    /// Failures priced by `backoff`, on the system clock.
    pub fn new(backoff: Backoff) -> Self {
        Self {
            backoff,
            clock: SystemClock::shared(),
            keys: Cache::new(DEFAULT_FAILURE_LOG_CAPACITY),
        }
    }

    /// Reads time from `clock`.
    #[must_use]
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Remembers at most `keys` keys (at least one).
    #[must_use]
    pub fn capacity(mut self, keys: usize) -> Self {
        self.keys = Cache::new(keys.max(1));
        self
    }

    fn now_ms(&self) -> u64 {
        self.clock.unix_millis()
    }
}

#[async_trait]
impl FailureLog for MemoryFailureLog {
    async fn blocked_for(&self, key: &str) -> Result<Duration, StoreError> {
        let Some(entry) = self.keys.get(key) else {
            return Ok(Duration::ZERO);
        };
        let failures = entry.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(Duration::from_millis(
            failures.blocked_until_ms.saturating_sub(self.now_ms()),
        ))
    }

    async fn failed(&self, key: &str) -> Result<Duration, StoreError> {
        let entry = self
            .keys
            .get_or_insert_with(key, || Ok::<_, std::convert::Infallible>(Arc::default()))
            .unwrap_or_else(|never| match never {});
        let mut failures = entry.lock().unwrap_or_else(PoisonError::into_inner);
        let now = self.now_ms();
        let window = u64::try_from(self.backoff.window.as_millis()).unwrap_or(u64::MAX);
        if failures.count == 0 || now.saturating_sub(failures.first_ms) > window {
            *failures = Failures {
                count: 0,
                first_ms: now,
                blocked_until_ms: 0,
            };
        }
        failures.count = failures.count.saturating_add(1);
        let delay = self.backoff.delay_after(failures.count);
        let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        failures.blocked_until_ms = now.saturating_add(delay_ms);
        Ok(delay)
    }

    async fn succeeded(&self, key: &str) -> Result<(), StoreError> {
        self.keys.remove(key);
        Ok(())
    }
}

impl fmt::Debug for MemoryFailureLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryFailureLog")
            .field("backoff", &self.backoff)
            .field("keys", &self.keys.len())
            .finish_non_exhaustive()
    }
}
