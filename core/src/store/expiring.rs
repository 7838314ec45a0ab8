//! The bounded set of expiring ids behind the in-memory replay store and
//! revocation list.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};

use sha2::{Digest, Sha256};

use crate::clock::{SharedClock, SystemClock};
use crate::store::StoreError;

type IdDigest = [u8; 32];

/// [`ExpiringIds`]: a bounded set of ids, each kept until its own expiry —
/// the one structure behind the in-memory replay store (single-use token
/// ids) and the in-memory revocation list (revoked token ids).
///
/// - Ids are kept as SHA-256 digests, so every entry has the same small size
///   whatever the caller passes: the entry bound is a memory bound (about
///   100 bytes an id).
/// - Expired ids are pruned on every call, oldest first, so pruning costs
///   only what it removes.
/// - When full of live ids a new one is refused ([`StoreError::Capacity`]):
///   the set never forgets a live id to make room, because for both of its
///   users forgetting one would admit a request that must be refused.
///
/// ```
/// use keystile_core::clock::ManualClock;
/// use keystile_core::store::{ExpiringIds, StoreError};
///
/// let clock = ManualClock::at_unix(1_000);
/// let ids = ExpiringIds::new(1).clock(clock.shared());
/// assert!(ids.insert("a", 1_060).unwrap());
/// assert!(!ids.insert("a", 1_060).unwrap()); // already there
/// assert!(ids.contains("a"));
/// assert!(matches!(ids.insert("b", 1_060), Err(StoreError::Capacity)));
/// clock.advance(std::time::Duration::from_secs(60));
/// assert!(!ids.contains("a"));
/// assert!(ids.insert("b", 1_120).unwrap());
/// ```
pub struct ExpiringIds {
    state: Mutex<State>,
    pub(crate) capacity: usize,
    pub(crate) clock: SharedClock,
}

#[derive(Default)]
struct State {
    expiry_of: HashMap<IdDigest, u64>,
    by_expiry: BTreeSet<(u64, IdDigest)>,
}

impl State {
    fn prune(&mut self, now: u64) {
        while let Some(&(expires_at, id)) = self.by_expiry.first() {
            if expires_at > now {
                break;
            }
            self.by_expiry.pop_first();
            self.expiry_of.remove(&id);
        }
    }
}

impl ExpiringIds {
    /// A set of at most `capacity` live ids (at least 1), on the system
    /// clock.
    pub fn new(capacity: usize) -> Self {
        Self {
            state: Mutex::default(),
            capacity: capacity.max(1),
            clock: SystemClock::shared(),
        }
    }

    /// Holds at most `capacity` live ids (at least 1); set before any id
    /// is inserted.
    #[must_use]
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.max(1);
        self
    }

    /// Reads time from `clock` to decide which ids have expired.
    #[must_use]
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Adds `id` until `expires_at` (Unix seconds) unless it is already
    /// there: `Ok(true)` when this call added it. An id whose expiry has
    /// already passed is still kept for a second, so a racing duplicate is
    /// seen. Refused with [`StoreError::Capacity`] when full of live ids.
    pub fn insert(&self, id: &str, expires_at: u64) -> Result<bool, StoreError> {
        let digest: IdDigest = Sha256::digest(id.as_bytes()).into();
        let now = self.clock.unix_seconds();
        let mut state = self.lock();
        state.prune(now);
        if state.expiry_of.contains_key(&digest) {
            return Ok(false);
        }
        if state.expiry_of.len() >= self.capacity {
            return Err(StoreError::Capacity);
        }
        let until = expires_at.max(now.saturating_add(1));
        state.expiry_of.insert(digest, until);
        state.by_expiry.insert((until, digest));
        Ok(true)
    }

    /// Whether `id` is in the set and not expired.
    pub fn contains(&self, id: &str) -> bool {
        let digest: IdDigest = Sha256::digest(id.as_bytes()).into();
        let now = self.clock.unix_seconds();
        let mut state = self.lock();
        state.prune(now);
        state.expiry_of.contains_key(&digest)
    }

    /// The number of live ids.
    pub fn len(&self) -> usize {
        let now = self.clock.unix_seconds();
        let mut state = self.lock();
        state.prune(now);
        state.expiry_of.len()
    }

    /// Whether no live id is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while the lock is held and the two maps agree
        // between statements, so a poisoned lock still guards valid state.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for ExpiringIds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExpiringIds")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn ids_live_until_their_own_expiry() {
        let clock = ManualClock::at_unix(1_000);
        let ids = ExpiringIds::new(10).clock(clock.shared());
        assert!(ids.insert("short", 1_010).unwrap());
        assert!(ids.insert("long", 1_100).unwrap());
        clock.advance(Duration::from_secs(10));
        assert!(!ids.contains("short"));
        assert!(ids.contains("long"));
        assert_eq!(ids.len(), 1);
    }

    #[test]
    fn an_already_expired_id_is_kept_for_a_second() {
        let clock = ManualClock::at_unix(1_000);
        let ids = ExpiringIds::new(10).clock(clock.shared());
        assert!(ids.insert("late", 900).unwrap());
        assert!(!ids.insert("late", 900).unwrap());
        clock.advance(Duration::from_secs(1));
        assert!(!ids.contains("late"));
    }

    #[test]
    fn a_full_set_refuses_rather_than_forgets() {
        let clock = ManualClock::at_unix(1_000);
        let ids = ExpiringIds::new(2).clock(clock.shared());
        ids.insert("a", 2_000).unwrap();
        ids.insert("b", 2_000).unwrap();
        assert!(matches!(ids.insert("c", 2_000), Err(StoreError::Capacity)));
        assert!(ids.contains("a") && ids.contains("b"));
        assert!(
            !ids.insert("a", 2_000).unwrap(),
            "a known id is no new entry"
        );
    }
}
