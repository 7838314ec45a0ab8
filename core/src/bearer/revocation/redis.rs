//! The Redis revocation list: one list shared by a fleet.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::ConnectionManager;

use super::RevocationList;
use crate::clock::{SharedClock, SystemClock};
use crate::store::StoreError;
use crate::store::redis::{self as store_redis, RedisExpiringIds};

/// Default key prefix.
pub const DEFAULT_PREFIX: &str = "keystile:revoked:";
/// Default time a single Redis command may take before the call fails.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

/// A revocation list in Redis, shared by every process using the same
/// server and prefix.
///
/// `revoke` is one `SET {prefix}{jti} 1 NX EXAT {exp}`: the entry expires
/// with the token, atomically, with no separate `EXPIRE` that a crash could
/// skip. `is_revoked` is one `EXISTS`. Commands that fail or exceed the
/// timeout return [`StoreError`], which layers turn into 503.
///
/// ```no_run
/// use keystile_core::bearer::{RedisRevocationList, RevocationList};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let list = RedisRevocationList::connect("redis://127.0.0.1:6379").await?;
/// list.revoke("jti-1", 4_102_444_800).await?;
/// assert!(list.is_revoked("jti-1").await?);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisRevocationList {
    ids: RedisExpiringIds,
    clock: SharedClock,
}

impl RedisRevocationList {
    /// Connects to `url` with the default prefix and timeout.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Ok(Self::new(store_redis::connect(url, DEFAULT_TIMEOUT).await?))
    }

    /// A list over an existing connection.
    pub fn new(connection: ConnectionManager) -> Self {
        Self {
            ids: RedisExpiringIds::new(connection, DEFAULT_PREFIX, DEFAULT_TIMEOUT),
            clock: SystemClock::shared(),
        }
    }

    /// Stores entries under `prefix` (e.g. one per application).
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.ids = self.ids.prefix(prefix);
        self
    }

    /// Fails a command that takes longer than `timeout`.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.ids = self.ids.timeout(timeout);
        self
    }

    /// Reads time from `clock` (only to skip revoking already-expired tokens;
    /// Redis expires entries on its own clock).
    #[must_use]
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }
}

impl fmt::Debug for RedisRevocationList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRevocationList")
            .field("ids", &self.ids)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl RevocationList for RedisRevocationList {
    async fn revoke(&self, token_id: &str, expires_at: u64) -> Result<(), StoreError> {
        if expires_at <= self.clock.unix_seconds() {
            return Ok(());
        }
        // Already revoked is still success.
        self.ids.insert(token_id, expires_at).await.map(|_| ())
    }

    async fn is_revoked(&self, token_id: &str) -> Result<bool, StoreError> {
        self.ids.contains(token_id).await
    }
}
