//! Time, read through one injectable source.
//!
//! Every expiry in keystile is decided by a [`Clock`]. Production code uses
//! [`SystemClock`]; tests hold a [`ManualClock`] and move it, so time-dependent
//! behaviour is tested without sleeping.
//!
//! ```
//! use std::time::Duration;
//! use keystile_core::clock::{Clock, ManualClock};
//!
//! let clock = ManualClock::at_unix(1_700_000_000);
//! let before = clock.unix_seconds();
//! clock.advance(Duration::from_secs(61));
//! assert_eq!(clock.unix_seconds(), before + 61);
//! ```

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of wall-clock time.
pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since the Unix epoch.
    fn unix_millis(&self) -> u64;

    /// Whole seconds since the Unix epoch.
    fn unix_seconds(&self) -> u64 {
        self.unix_millis() / 1000
    }
}

/// A clock shared between layers, stores and codecs.
pub type SharedClock = Arc<dyn Clock>;

/// The operating system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl SystemClock {
    /// The system clock as a [`SharedClock`].
    pub fn shared() -> SharedClock {
        Arc::new(SystemClock)
    }
}

impl Clock for SystemClock {
    fn unix_millis(&self) -> u64 {
        // A clock set before 1970 reads as the epoch: every token then looks
        // not-yet-valid or expired, which fails closed.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

/// A clock that only moves when told to. Cloning shares the same time.
#[derive(Clone, Default)]
pub struct ManualClock {
    millis: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock reading `seconds` after the Unix epoch.
    pub fn at_unix(seconds: u64) -> Self {
        let clock = Self::default();
        clock.set_unix_millis(seconds.saturating_mul(1000));
        clock
    }

    /// A clock starting at the current system time.
    pub fn starting_now() -> Self {
        let clock = Self::default();
        clock.set_unix_millis(SystemClock.unix_millis());
        clock
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.millis.fetch_add(by, Ordering::SeqCst);
    }

    /// Moves the clock backward (to test not-before checks and skew).
    pub fn rewind(&self, by: Duration) {
        let by = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        let _ = self
            .millis
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |m| {
                Some(m.saturating_sub(by))
            });
    }

    /// Sets the clock to an absolute time in milliseconds since the epoch.
    pub fn set_unix_millis(&self, millis: u64) {
        self.millis.store(millis, Ordering::SeqCst);
    }

    /// This clock as a [`SharedClock`] (sharing the same time).
    pub fn shared(&self) -> SharedClock {
        Arc::new(self.clone())
    }
}

impl Clock for ManualClock {
    fn unix_millis(&self) -> u64 {
        self.millis.load(Ordering::SeqCst)
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock")
            .field("unix_millis", &self.unix_millis())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::at_unix(100);
        assert_eq!(clock.unix_seconds(), 100);
        clock.advance(Duration::from_millis(1500));
        assert_eq!(clock.unix_millis(), 101_500);
        clock.rewind(Duration::from_secs(200));
        assert_eq!(clock.unix_millis(), 0);
    }

    #[test]
    fn shared_manual_clock_follows_the_original() {
        let clock = ManualClock::at_unix(10);
        let shared = clock.shared();
        clock.advance(Duration::from_secs(5));
        assert_eq!(shared.unix_seconds(), 15);
    }

    #[test]
    fn system_clock_is_after_2020() {
        assert!(SystemClock.unix_seconds() > 1_577_836_800);
    }
}
