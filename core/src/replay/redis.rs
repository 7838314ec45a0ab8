//! The Redis replay store, shared by every process of a fleet.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::ConnectionManager;

use crate::store::StoreError;
use crate::store::redis::{self as store_redis, RedisExpiringIds};

use super::{Redemption, ReplayStore};

/// The key prefix unless configured otherwise.
pub const DEFAULT_REDIS_REPLAY_PREFIX: &str = "keystile:replay:";

/// How long one redemption may take before it fails with
/// [`StoreError::Timeout`], unless configured otherwise.
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_secs(2);

/// A [`ReplayStore`] on Redis: one atomic `SET {prefix}{id} 1 NX EXAT
/// {expires_at}` per redemption, so the first process to record an id wins
/// and the key disappears on its own when the token expires.
///
/// - `EXAT` takes an absolute Unix time, so every instance agrees on when
///   an id may be forgotten whatever its own request latency; instance
///   clocks must be in sync (NTP) as for token expiry itself.
/// - Each command is bounded by a timeout (default 2 s): a dead or hung
///   Redis yields [`StoreError::Timeout`] or [`StoreError::Backend`]
///   (a 503 at the edge) within that bound, never an admission.
/// - Needs Redis 6.2 or later (`EXAT`).
///
/// ```no_run
/// # async fn run() -> Result<(), keystile_core::store::StoreError> {
/// use keystile_core::replay::{RedisReplayStore, ReplayStore};
///
/// let store = RedisReplayStore::connect("redis://127.0.0.1:6379")
///     .await?
///     .prefix("myapp:handoff:");
/// store.redeem("jti", 1_900_000_000).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisReplayStore {
    ids: RedisExpiringIds,
}

impl RedisReplayStore {
    /// A store over an existing connection manager.
    pub fn new(connection: ConnectionManager) -> Self {
        Self {
            ids: RedisExpiringIds::new(
                connection,
                DEFAULT_REDIS_REPLAY_PREFIX,
                DEFAULT_REDIS_TIMEOUT,
            ),
        }
    }

    /// Connects to `url` with bounded connection and response timeouts, so
    /// a dead server fails fast instead of stalling requests.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Ok(Self::new(
            store_redis::connect(url, DEFAULT_REDIS_TIMEOUT).await?,
        ))
    }

    /// Prefixes every key, so several apps can share one Redis.
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.ids = self.ids.prefix(prefix);
        self
    }

    /// Bounds each redemption's round trip.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.ids = self.ids.timeout(timeout);
        self
    }
}

#[async_trait]
impl ReplayStore for RedisReplayStore {
    async fn redeem(&self, id: &str, expires_at: u64) -> Result<Redemption, StoreError> {
        Ok(if self.ids.insert(id, expires_at).await? {
            Redemption::First
        } else {
            Redemption::AlreadyUsed
        })
    }
}

impl fmt::Debug for RedisReplayStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisReplayStore")
            .field("ids", &self.ids)
            .finish()
    }
}
