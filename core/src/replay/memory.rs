//! The in-process replay store.

use std::fmt;

use async_trait::async_trait;

use crate::clock::SharedClock;
use crate::store::{ExpiringIds, StoreError};

use super::{Redemption, ReplayStore};

/// How many live ids a [`MemoryReplayStore`] holds unless configured.
pub const DEFAULT_REPLAY_CAPACITY: usize = 100_000;

/// A bounded in-memory [`ReplayStore`] for a single process.
///
/// - Each id is recorded until its expiry in an [`ExpiringIds`] set (the
///   same one the in-memory revocation list uses); expired ids are pruned
///   on every call, oldest first.
/// - At most `capacity` live ids are held. When full of live ids, a new id
///   is refused with [`StoreError::Capacity`] (a 503 at the edge): the store
///   never forgets a live id to make room, because forgetting one would
///   admit its replay.
/// - Correct for one process only; a fleet needs a shared store such as
///   `RedisReplayStore` (feature `redis`).
///
/// Memory: about 100 bytes per live id (a digest in a map and in an expiry
/// index), so the default 100 000 ids cost roughly 10 MB at most.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use keystile_core::clock::ManualClock;
/// use keystile_core::replay::{MemoryReplayStore, Redemption, ReplayStore};
/// use keystile_core::store::StoreError;
///
/// let clock = ManualClock::at_unix(1_000);
/// let store = MemoryReplayStore::new().capacity(1).clock(clock.shared());
/// assert_eq!(store.redeem("a", 1_060).await.unwrap(), Redemption::First);
/// assert_eq!(store.redeem("a", 1_060).await.unwrap(), Redemption::AlreadyUsed);
/// assert!(matches!(store.redeem("b", 1_060).await, Err(StoreError::Capacity)));
///
/// clock.advance(std::time::Duration::from_secs(60)); // "a" expires and is pruned
/// assert_eq!(store.redeem("b", 1_120).await.unwrap(), Redemption::First);
/// assert_eq!(store.len(), 1);
/// # }
/// ```
pub struct MemoryReplayStore {
    ids: ExpiringIds,
}

impl MemoryReplayStore {
    /// A store holding up to [`DEFAULT_REPLAY_CAPACITY`] live ids, on the
    /// system clock.
    pub fn new() -> Self {
        Self {
            ids: ExpiringIds::new(DEFAULT_REPLAY_CAPACITY),
        }
    }

    /// Holds up to `capacity` live ids (at least 1).
    #[must_use]
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.ids = self.ids.capacity(capacity);
        self
    }

    /// Reads time from `clock` to decide which ids have expired.
    #[must_use]
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.ids = self.ids.clock(clock);
        self
    }

    /// The number of live ids held.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether no id is held.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

impl Default for MemoryReplayStore {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl ReplayStore for MemoryReplayStore {
    async fn redeem(&self, id: &str, expires_at: u64) -> Result<Redemption, StoreError> {
        Ok(if self.ids.insert(id, expires_at)? {
            Redemption::First
        } else {
            Redemption::AlreadyUsed
        })
    }
}

impl fmt::Debug for MemoryReplayStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryReplayStore")
            .field("len", &self.len())
            .field("capacity", &self.ids.capacity)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use std::sync::Arc;
    use std::time::Duration;

    const T0: u64 = 1_700_000_000;

    fn store(capacity: usize, clock: &ManualClock) -> MemoryReplayStore {
        MemoryReplayStore::new()
            .capacity(capacity)
            .clock(clock.shared())
    }

    #[tokio::test]
    async fn first_call_wins_and_later_calls_are_already_used() {
        let clock = ManualClock::at_unix(T0);
        let s = store(10, &clock);
        assert_eq!(s.redeem("jti", T0 + 60).await.unwrap(), Redemption::First);
        for _ in 0..3 {
            assert_eq!(
                s.redeem("jti", T0 + 60).await.unwrap(),
                Redemption::AlreadyUsed
            );
        }
        assert_eq!(s.redeem("other", T0 + 60).await.unwrap(), Redemption::First);
    }

    #[tokio::test]
    async fn id_is_remembered_until_its_expiry_then_pruned() {
        let clock = ManualClock::at_unix(T0);
        let s = store(10, &clock);
        s.redeem("jti", T0 + 60).await.unwrap();
        clock.advance(Duration::from_secs(59));
        assert_eq!(
            s.redeem("jti", T0 + 60).await.unwrap(),
            Redemption::AlreadyUsed
        );
        clock.advance(Duration::from_secs(1));
        assert_eq!(s.redeem("x", T0 + 120).await.unwrap(), Redemption::First);
        assert_eq!(s.len(), 1, "the expired id was pruned");
    }

    #[tokio::test]
    async fn flood_of_distinct_ids_never_exceeds_the_bound() {
        let clock = ManualClock::at_unix(T0);
        let s = store(1_000, &clock);
        let mut refused = 0;
        for i in 0..5_000 {
            match s.redeem(&format!("jti-{i}"), T0 + 60).await {
                Ok(Redemption::First) => {}
                Err(StoreError::Capacity) => refused += 1,
                other => panic!("unexpected {other:?}"),
            }
            assert!(s.len() <= 1_000);
        }
        assert_eq!(s.len(), 1_000);
        assert_eq!(refused, 4_000);
        // Live ids are never evicted: the first one is still refused.
        assert_eq!(
            s.redeem("jti-0", T0 + 60).await.unwrap(),
            Redemption::AlreadyUsed
        );
        // Once they expire, the store accepts new ids again.
        clock.advance(Duration::from_secs(60));
        assert_eq!(
            s.redeem("fresh", T0 + 120).await.unwrap(),
            Redemption::First
        );
        assert_eq!(s.len(), 1);
    }

    #[tokio::test]
    async fn already_expired_ids_are_still_single_use() {
        let clock = ManualClock::at_unix(T0);
        let s = store(10, &clock);
        assert_eq!(s.redeem("late", T0 - 5).await.unwrap(), Redemption::First);
        assert_eq!(
            s.redeem("late", T0 - 5).await.unwrap(),
            Redemption::AlreadyUsed
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_redemptions_of_one_id_have_exactly_one_winner() {
        let s = Arc::new(MemoryReplayStore::new());
        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let s = Arc::clone(&s);
                tokio::spawn(async move { s.redeem("race", u64::MAX).await.unwrap() })
            })
            .collect();
        let mut firsts = 0;
        for task in tasks {
            if task.await.unwrap() == Redemption::First {
                firsts += 1;
            }
        }
        assert_eq!(firsts, 1);
    }
}
