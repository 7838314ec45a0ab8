//! [`MemoryLimiter`]: GCRA in process memory, with `governor`.

use std::convert::Infallible;
use std::fmt;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use governor::clock::Clock;
use governor::middleware::StateInformationMiddleware;
use governor::nanos::Nanos;
use governor::state::StateStore;
use governor::{Quota, RateLimiter};
use quick_cache::sync::Cache;

use super::{Decision, Limit, Limiter, decision};
use crate::clock::{SharedClock, SystemClock};
use crate::store::StoreError;

/// How many keys a [`MemoryLimiter`] tracks unless told otherwise.
pub const DEFAULT_LIMITER_CAPACITY: usize = 100_000;

/// A key's GCRA state (governor's theoretical arrival time), or [`EMPTY`].
type Cell = Arc<AtomicU64>;
const EMPTY: u64 = u64::MAX;

/// GCRA in process memory: `governor` decides, over a bounded map of keys.
///
/// The map holds at most [`capacity`](Self::capacity) keys (default
/// [`DEFAULT_LIMITER_CAPACITY`]). When it is full, keys are forgotten the
/// way quick_cache evicts (S3-FIFO: keys seen once go first), and a
/// forgotten key starts again with a full budget: a flood of invented keys
/// costs memory up to the bound and never more, and it shortens the memory
/// of quiet keys, not of busy ones.
pub struct MemoryLimiter {
    limit: Limit,
    clock: SharedClock,
    keys: Keys,
    governor: RateLimiter<String, Keys, Time, StateInformationMiddleware>,
}

impl MemoryLimiter {
    /// Enforces `limit` on the system clock, for up to
    /// [`DEFAULT_LIMITER_CAPACITY`] keys.
    pub fn new(limit: Limit) -> Self {
        Self::build(limit, SystemClock::shared(), DEFAULT_LIMITER_CAPACITY)
    }

    /// Reads time from `clock`.
    #[must_use]
    pub fn clock(self, clock: SharedClock) -> Self {
        Self::build(self.limit, clock, self.keys.capacity())
    }

    /// Tracks at most `keys` keys (at least one).
    #[must_use]
    pub fn capacity(self, keys: usize) -> Self {
        Self::build(self.limit, self.clock, keys)
    }

    fn build(limit: Limit, clock: SharedClock, capacity: usize) -> Self {
        let burst = NonZeroU32::new(limit.requests()).unwrap_or(NonZeroU32::MIN);
        // `Limit::per` guarantees an interval of at least 1 ms.
        let quota = Quota::with_period(limit.interval())
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(burst);
        let keys = Keys(Arc::new(Cache::new(capacity.max(1))));
        let governor: RateLimiter<String, Keys, Time, StateInformationMiddleware> =
            RateLimiter::new(quota, keys.clone(), Time(Arc::clone(&clock)));
        Self {
            limit,
            clock,
            keys,
            governor,
        }
    }

    /// The number of keys tracked now.
    pub fn len(&self) -> usize {
        self.keys.0.len()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl Limiter for MemoryLimiter {
    fn limit(&self) -> Limit {
        self.limit
    }

    async fn check(&self, key: &str) -> Result<Decision, StoreError> {
        let micros = |duration: Duration| u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
        let interval = micros(self.limit.interval());
        let window = interval.saturating_mul(u64::from(self.limit.requests()));
        Ok(match self.governor.check_key(&key.to_owned()) {
            Ok(state) => {
                let spent = self.limit.requests() - state.remaining_burst_capacity();
                decision(self.limit, true, u64::from(spent).saturating_mul(interval))
            }
            Err(not_until) => {
                let now = Time(Arc::clone(&self.clock)).now();
                let wait = micros(not_until.wait_time_from(now));
                decision(self.limit, false, (window - interval).saturating_add(wait))
            }
        })
    }
}

impl fmt::Debug for MemoryLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryLimiter")
            .field("limit", &self.limit)
            .field("keys", &self.len())
            .field("capacity", &self.keys.capacity())
            .finish()
    }
}

/// The bounded key map governor's GCRA reads and updates.
#[derive(Clone)]
struct Keys(Arc<Cache<String, Cell>>);

impl Keys {
    fn capacity(&self) -> usize {
        usize::try_from(self.0.capacity()).unwrap_or(usize::MAX)
    }
}

impl StateStore for Keys {
    type Key = String;

    fn measure_and_replace<T, F, E>(&self, key: &String, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let cell = match self
            .0
            .get_or_insert_with(key, || Ok::<_, Infallible>(Arc::new(AtomicU64::new(EMPTY))))
        {
            Ok(cell) => cell,
            Err(never) => match never {},
        };
        // Compare-and-swap, as governor's own stores do: a concurrent
        // request of the same key makes this one decide again.
        let mut seen = cell.load(Ordering::Acquire);
        loop {
            let previous = (seen != EMPTY).then(|| Nanos::from(seen));
            let (out, next) = f(previous)?;
            match cell.compare_exchange_weak(seen, next.into(), Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Ok(out),
                Err(actual) => seen = actual,
            }
        }
    }
}

/// keystile's injected clock, as governor reads time.
#[derive(Clone)]
struct Time(SharedClock);

impl Clock for Time {
    type Instant = Duration;

    fn now(&self) -> Duration {
        Duration::from_millis(self.0.unix_millis())
    }
}
