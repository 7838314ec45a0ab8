//! The limits and sources every one-time store shares.

use std::fmt;
use std::time::Duration;

use crate::clock::{SharedClock, SystemClock};
use crate::random::{OsRandom, SharedRandom};

/// How long an issued token stays pending unless configured otherwise.
pub const DEFAULT_TTL: Duration = Duration::from_secs(30);
/// How many tokens may be pending at once unless configured otherwise.
pub const DEFAULT_MAX_PENDING: usize = 1024;
/// The longest TTL accepted: one year, far below what Redis's `PX` allows.
pub const MAX_TTL: Duration = Duration::from_secs(365 * 24 * 60 * 60);
/// How many values an issue draws before giving up on collisions.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 16;

/// Limits, clock and random source of a one-time store; cheap to clone.
///
/// ```
/// use std::time::Duration;
/// use keystile_core::clock::ManualClock;
/// use keystile_core::one_time::{MemoryOneTimeStore, OneTimeConfig};
///
/// let clock = ManualClock::at_unix(1_700_000_000);
/// let config = OneTimeConfig::default()
///     .ttl(Duration::from_secs(120))
///     .max_pending(64)
///     .clock(clock.shared());
/// let store = MemoryOneTimeStore::new(config);
/// # let _ = store;
/// ```
#[derive(Clone)]
pub struct OneTimeConfig {
    pub(super) ttl: Duration,
    pub(super) max_pending: usize,
    pub(super) max_attempts: u32,
    pub(super) clock: SharedClock,
    pub(super) random: SharedRandom,
}

impl Default for OneTimeConfig {
    fn default() -> Self {
        Self {
            ttl: DEFAULT_TTL,
            max_pending: DEFAULT_MAX_PENDING,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            clock: SystemClock::shared(),
            random: OsRandom::shared(),
        }
    }
}

impl OneTimeConfig {
    /// How long a token stays pending (default 30 s). A zero TTL is raised
    /// to one millisecond, the smallest expiry Redis accepts; a TTL above
    /// [`MAX_TTL`] is lowered to it.
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl.clamp(Duration::from_millis(1), MAX_TTL);
        self
    }

    /// How many tokens may be pending at once (default 1024). Values below
    /// one are raised to one.
    #[must_use]
    pub fn max_pending(mut self, max_pending: usize) -> Self {
        self.max_pending = max_pending.max(1);
        self
    }

    /// How many values one issue may draw when they collide with pending
    /// tokens (default 16). Values below one are raised to one.
    #[must_use]
    pub fn max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = max_attempts.max(1);
        self
    }

    /// The clock expiries are read from (default: the system clock).
    #[must_use]
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// The source tokens are drawn from (default: the OS CSPRNG). Inject
    /// another only in tests.
    #[must_use]
    pub fn random(mut self, random: SharedRandom) -> Self {
        self.random = random;
        self
    }

    /// The TTL in whole milliseconds, saturating.
    pub(super) fn ttl_millis(&self) -> u64 {
        u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX)
    }
}

impl fmt::Debug for OneTimeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OneTimeConfig")
            .field("ttl", &self.ttl)
            .field("max_pending", &self.max_pending)
            .field("max_attempts", &self.max_attempts)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_spec() {
        let config = OneTimeConfig::default();
        assert_eq!(config.ttl, Duration::from_secs(30));
        assert_eq!(config.max_pending, 1024);
        assert_eq!(config.max_attempts, 16);
    }

    #[test]
    fn degenerate_limits_are_raised_to_their_minimum() {
        let config = OneTimeConfig::default()
            .ttl(Duration::ZERO)
            .max_pending(0)
            .max_attempts(0);
        assert_eq!(config.ttl, Duration::from_millis(1));
        assert_eq!(config.clone().ttl(Duration::MAX).ttl, MAX_TTL);
        assert_eq!(config.max_pending, 1);
        assert_eq!(config.max_attempts, 1);
    }
}
