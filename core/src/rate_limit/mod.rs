//! Rate limits: how many requests a key (a client address, a principal, a
//! header value, a route) may make in a window, decided by GCRA, the
//! generic cell rate algorithm.
//!
//! A [`Limit`] of `n` requests per `window` admits a burst of `n` and then
//! one request every `window / n`: the budget refills continuously, so no
//! window boundary lets a client double its rate. A [`Limiter`] holds the
//! state of every key for one limit:
//!
//! - [`MemoryLimiter`]: one process, with `governor`'s GCRA over a bounded
//!   map of keys (when full, keys seen once are forgotten first, and a
//!   forgotten key starts again with a full budget);
//! - `RedisLimiter` (feature `redis`): every instance sharing one budget,
//!   decided by one Lua script on Redis's own clock.
//!
//! Failed attempts (a wrong key, later a wrong password) are priced apart:
//! a [`FailureLog`] counts them per key and [`Backoff`] turns the count
//! into a delay that doubles, then a lock-out, cleared by a success.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use std::time::Duration;
//! use keystile_core::clock::ManualClock;
//! use keystile_core::rate_limit::{Limit, Limiter, MemoryLimiter};
//!
//! let clock = ManualClock::at_unix(1_700_000_000);
//! let limit = Limit::per(2, Duration::from_secs(10)).unwrap();
//! let limiter = MemoryLimiter::new(limit).clock(clock.shared());
//!
//! assert!(limiter.check("203.0.113.9").await.unwrap().allowed);
//! assert!(limiter.check("203.0.113.9").await.unwrap().allowed);
//! let third = limiter.check("203.0.113.9").await.unwrap();
//! assert!(!third.allowed);
//! assert_eq!(third.retry_after, Duration::from_secs(5)); // one request per 5 s
//! clock.advance(Duration::from_secs(5));
//! assert!(limiter.check("203.0.113.9").await.unwrap().allowed);
//! # }
//! ```

use std::fmt;
use std::num::NonZeroU32;
use std::time::Duration;

use async_trait::async_trait;

use crate::store::StoreError;

mod failures;
mod memory;
#[cfg(feature = "redis")]
mod redis;

pub use failures::{Backoff, DEFAULT_FAILURE_LOG_CAPACITY, FailureLog, MemoryFailureLog};
pub use memory::{DEFAULT_LIMITER_CAPACITY, MemoryLimiter};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use redis::{
    DEFAULT_REDIS_FAILURE_PREFIX, DEFAULT_REDIS_RATE_LIMIT_PREFIX, RedisFailureLog, RedisLimiter,
};

/// `requests` per `window`: a burst of `requests`, refilled at one request
/// every `window / requests`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    requests: NonZeroU32,
    window: Duration,
}

/// A limit that cannot be enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LimitError {
    /// Zero requests, or a window of less than a millisecond per request.
    #[error("a limit needs at least one request and at least 1 ms of window per request")]
    Invalid,
}

impl Limit {
    /// `requests` per `window`. Fails for zero requests, or when one
    /// request's share of the window is under a millisecond.
    pub fn per(requests: u32, window: Duration) -> Result<Self, LimitError> {
        let requests = NonZeroU32::new(requests).ok_or(LimitError::Invalid)?;
        if window / requests.get() < Duration::from_millis(1) {
            return Err(LimitError::Invalid);
        }
        Ok(Self { requests, window })
    }

    /// The burst: how many requests a fresh key may make at once.
    pub fn requests(&self) -> u32 {
        self.requests.get()
    }

    /// The window the requests are counted over.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// The time one request's share of the budget takes to refill.
    pub fn interval(&self) -> Duration {
        self.window / self.requests.get()
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} per {:?}", self.requests, self.window)
    }
}

/// What a [`Limiter`] decided for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may go on (it was counted) or is refused (it
    /// was not).
    pub allowed: bool,
    /// The limit decided against.
    pub limit: Limit,
    /// Requests the key may still make at once after this one.
    pub remaining: u32,
    /// When the key's budget is full again.
    pub reset_after: Duration,
    /// For a refused request: when the next one would be allowed (zero
    /// when allowed).
    pub retry_after: Duration,
}

/// The state of every key under one [`Limit`]: counts a request, or
/// refuses it. Keys are opaque text; callers namespace them.
#[async_trait]
pub trait Limiter: Send + Sync + 'static {
    /// The limit this limiter enforces.
    fn limit(&self) -> Limit;

    /// Counts one request of `key` if the limit allows it. `Err` only when
    /// the backend failed.
    async fn check(&self, key: &str) -> Result<Decision, StoreError>;
}

/// The [`Decision`] for a key whose budget is `used_us` microseconds from
/// full after this request (GCRA's theoretical arrival time minus now):
/// both limiters report through this. Redis knows `used_us` exactly; the
/// memory limiter knows it to a whole interval (governor reports the
/// remaining burst), so its `reset_after` can be up to one interval later.
pub(crate) fn decision(limit: Limit, allowed: bool, used_us: u64) -> Decision {
    let interval = u64::try_from(limit.interval().as_micros())
        .unwrap_or(u64::MAX)
        .max(1);
    let window = interval.saturating_mul(u64::from(limit.requests()));
    let free = window.saturating_sub(used_us);
    let remaining = u32::try_from(free / interval).unwrap_or(u32::MAX);
    // A request conforms once the budget is at most `window - interval`
    // from full.
    let retry_after = if allowed {
        0
    } else {
        used_us.saturating_sub(window - interval)
    };
    Decision {
        allowed,
        limit,
        remaining,
        reset_after: Duration::from_micros(used_us),
        retry_after: Duration::from_micros(retry_after),
    }
}
