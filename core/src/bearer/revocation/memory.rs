//! The in-memory revocation list: one process, bounded.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use super::RevocationList;
use crate::clock::{SharedClock, SystemClock};
use crate::store::StoreError;

/// Default number of live revocations a [`MemoryRevocationList`] holds.
pub const DEFAULT_REVOCATION_CAPACITY: usize = 100_000;

/// A revocation list in process memory.
///
/// Entries leave when their token expires (read from the injected clock;
/// expired entries are pruned on every call), so the list holds at most the
/// revoked tokens still alive. When it is full of live entries a further
/// `revoke` fails with [`StoreError::Capacity`] instead of evicting one: an
/// evicted revocation would bring a killed token back to life.
pub struct MemoryRevocationList {
    state: Mutex<State>,
    capacity: usize,
    clock: SharedClock,
}

#[derive(Default)]
struct State {
    expiry_of: HashMap<Box<str>, u64>,
    // Ordered by expiry so pruning touches only what has expired.
    by_expiry: BTreeSet<(u64, Box<str>)>,
}

impl State {
    fn prune(&mut self, now: u64) {
        while let Some(first) = self.by_expiry.first() {
            if first.0 > now {
                break;
            }
            if let Some((_, id)) = self.by_expiry.pop_first() {
                self.expiry_of.remove(&id);
            }
        }
    }
}

impl MemoryRevocationList {
    /// An empty list holding up to [`DEFAULT_REVOCATION_CAPACITY`] entries,
    /// on the system clock.
    pub fn new() -> Self {
        Self {
            state: Mutex::default(),
            capacity: DEFAULT_REVOCATION_CAPACITY,
            clock: SystemClock::shared(),
        }
    }

    /// Holds at most `capacity` live entries.
    pub fn with_capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// Reads time from `clock`.
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Number of live entries.
    pub fn len(&self) -> usize {
        let now = self.clock.unix_seconds();
        let mut state = self.lock();
        state.prune(now);
        state.expiry_of.len()
    }

    /// The most live entries held; [`len`](Self::len) never exceeds it.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Whether no live entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every mutation leaves the two maps consistent before anything can
        // panic, so a poisoned lock still guards valid state.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Default for MemoryRevocationList {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MemoryRevocationList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryRevocationList")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl RevocationList for MemoryRevocationList {
    async fn revoke(&self, token_id: &str, expires_at: u64) -> Result<(), StoreError> {
        let now = self.clock.unix_seconds();
        if expires_at <= now {
            // The token is already dead; nothing to remember.
            return Ok(());
        }
        let mut state = self.lock();
        state.prune(now);
        if let Some(&current) = state.expiry_of.get(token_id) {
            if current >= expires_at {
                return Ok(());
            }
            state.by_expiry.remove(&(current, token_id.into()));
        } else if state.expiry_of.len() >= self.capacity {
            return Err(StoreError::Capacity);
        }
        state.expiry_of.insert(token_id.into(), expires_at);
        state.by_expiry.insert((expires_at, token_id.into()));
        Ok(())
    }

    async fn is_revoked(&self, token_id: &str) -> Result<bool, StoreError> {
        let now = self.clock.unix_seconds();
        let mut state = self.lock();
        state.prune(now);
        Ok(state.expiry_of.contains_key(token_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use std::time::Duration;

    const T0: u64 = 1_700_000_000;

    #[tokio::test]
    async fn entries_expire_with_their_token() {
        let clock = ManualClock::at_unix(T0);
        let list = MemoryRevocationList::new().with_clock(clock.shared());
        list.revoke("a", T0 + 10).await.unwrap();
        list.revoke("b", T0 + 20).await.unwrap();
        assert!(list.is_revoked("a").await.unwrap());
        clock.advance(Duration::from_secs(10));
        assert!(!list.is_revoked("a").await.unwrap());
        assert!(list.is_revoked("b").await.unwrap());
        assert_eq!(list.len(), 1);
    }

    #[tokio::test]
    async fn revoking_an_expired_token_stores_nothing() {
        let clock = ManualClock::at_unix(T0);
        let list = MemoryRevocationList::new().with_clock(clock.shared());
        list.revoke("old", T0).await.unwrap();
        assert!(list.is_empty());
    }

    #[tokio::test]
    async fn full_list_refuses_rather_than_evicting_live_entries() {
        let clock = ManualClock::at_unix(T0);
        let list = MemoryRevocationList::new()
            .with_capacity(2)
            .with_clock(clock.shared());
        list.revoke("a", T0 + 5).await.unwrap();
        list.revoke("b", T0 + 50).await.unwrap();
        assert!(matches!(
            list.revoke("c", T0 + 50).await,
            Err(StoreError::Capacity)
        ));
        list.revoke("a", T0 + 6).await.unwrap(); // re-revoking is not an insert
        assert!(list.is_revoked("a").await.unwrap() && list.is_revoked("b").await.unwrap());
        clock.advance(Duration::from_secs(6));
        list.revoke("c", T0 + 50).await.unwrap();
        assert!(list.is_revoked("c").await.unwrap());
        assert!(!list.is_revoked("a").await.unwrap());
    }
}
