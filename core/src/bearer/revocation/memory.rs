//! The in-memory revocation list: one process, bounded.

use std::fmt;

use async_trait::async_trait;

use super::RevocationList;
use crate::clock::SharedClock;
use crate::store::{ExpiringIds, StoreError};

/// Default number of live revocations a [`MemoryRevocationList`] holds.
pub const DEFAULT_REVOCATION_CAPACITY: usize = 100_000;

/// A revocation list in process memory.
///
/// Entries leave when their token expires (read from the injected clock;
/// expired entries are pruned on every call), so the list holds at most the
/// revoked tokens still alive. When it is full of live entries a further
/// `revoke` fails with [`StoreError::Capacity`] instead of evicting one: an
/// evicted revocation would bring a killed token back to life. The entries
/// live in an [`ExpiringIds`] set, the one the in-memory replay store uses.
pub struct MemoryRevocationList {
    ids: ExpiringIds,
}

impl MemoryRevocationList {
    /// An empty list holding up to [`DEFAULT_REVOCATION_CAPACITY`] entries,
    /// on the system clock.
    pub fn new() -> Self {
        Self {
            ids: ExpiringIds::new(DEFAULT_REVOCATION_CAPACITY),
        }
    }

    /// Holds at most `capacity` live entries (at least 1).
    #[must_use]
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.ids = self.ids.capacity(capacity);
        self
    }

    /// Reads time from `clock`.
    #[must_use]
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.ids = self.ids.clock(clock);
        self
    }

    /// Number of live entries.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether no live entry is held.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
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
            .field("capacity", &self.ids.capacity)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl RevocationList for MemoryRevocationList {
    async fn revoke(&self, token_id: &str, expires_at: u64) -> Result<(), StoreError> {
        if expires_at <= self.ids.clock.unix_seconds() {
            // The token is already dead; nothing to remember.
            return Ok(());
        }
        // Already revoked is no error.
        self.ids.insert(token_id, expires_at).map(|_| ())
    }

    async fn is_revoked(&self, token_id: &str) -> Result<bool, StoreError> {
        Ok(self.ids.contains(token_id))
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
        let list = MemoryRevocationList::new().clock(clock.shared());
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
        let list = MemoryRevocationList::new().clock(clock.shared());
        list.revoke("old", T0).await.unwrap();
        assert!(list.is_empty());
    }

    #[tokio::test]
    async fn full_list_refuses_rather_than_evicting_live_entries() {
        let clock = ManualClock::at_unix(T0);
        let list = MemoryRevocationList::new()
            .capacity(2)
            .clock(clock.shared());
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
