//! The Redis replay store, shared by every process of a fleet.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::ConnectionManager;

use crate::store::StoreError;
use crate::store::redis as store_redis;

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
///     .with_prefix("myapp:handoff:");
/// store.redeem("jti", 1_900_000_000).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisReplayStore {
    connection: ConnectionManager,
    prefix: String,
    timeout: Duration,
}

impl RedisReplayStore {
    /// A store over an existing connection manager.
    pub fn new(connection: ConnectionManager) -> Self {
        Self {
            connection,
            prefix: DEFAULT_REDIS_REPLAY_PREFIX.to_owned(),
            timeout: DEFAULT_REDIS_TIMEOUT,
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
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Bounds each redemption's round trip.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}

#[async_trait]
impl ReplayStore for RedisReplayStore {
    async fn redeem(&self, id: &str, expires_at: u64) -> Result<Redemption, StoreError> {
        let mut connection = self.connection.clone();
        let mut command = redis::cmd("SET");
        command
            .arg(format!("{}{id}", self.prefix))
            .arg(1)
            .arg("NX")
            .arg("EXAT")
            .arg(expires_at.max(1));
        let reply: Option<String> =
            store_redis::bounded(self.timeout, command.query_async(&mut connection)).await?;
        // `SET … NX` answers OK when it set the key and nil when it existed.
        Ok(match reply {
            Some(_) => Redemption::First,
            None => Redemption::AlreadyUsed,
        })
    }
}

impl fmt::Debug for RedisReplayStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisReplayStore")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}
