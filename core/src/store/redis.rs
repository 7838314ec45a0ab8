//! Connecting to Redis and bounding each call: shared by every Redis store.
//!
//! Every Redis-backed store in keystile connects through [`connect`] and runs
//! each command through [`bounded`], so they all fail the same way: an
//! unreachable server is an error at start-up, a dead or hung one turns
//! every call into [`StoreError::Timeout`] or [`StoreError::Backend`] within
//! the configured bound (a 503 at the edge), and the connection manager
//! reconnects on its own once the server is back.
//!
//! ```no_run
//! # async fn run() -> Result<(), keystile_core::store::StoreError> {
//! use std::time::Duration;
//! use keystile_core::store::redis::{bounded, connect};
//!
//! let timeout = Duration::from_secs(1);
//! let connection = connect("redis://127.0.0.1:6379", timeout).await?;
//! let mut c = connection.clone();
//! let pong: String = bounded(timeout, redis::cmd("PING").query_async(&mut c)).await?;
//! assert_eq!(pong, "PONG");
//! # Ok(()) }
//! ```

use std::future::Future;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, RedisResult};

use super::StoreError;

/// Connects a [`ConnectionManager`] to `url` with connection and response
/// timeouts of `timeout` and one quick retry; the whole attempt is bounded by
/// twice `timeout`.
pub async fn connect(url: &str, timeout: Duration) -> Result<ConnectionManager, StoreError> {
    let client = Client::open(url).map_err(StoreError::backend)?;
    connect_client(client, timeout).await
}

/// Like [`connect`], for an already opened client.
pub async fn connect_client(
    client: Client,
    timeout: Duration,
) -> Result<ConnectionManager, StoreError> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(500));
    // Connecting may retry: bound the whole attempt, not each try.
    bounded(
        timeout.saturating_mul(2),
        ConnectionManager::new_with_config(client, config),
    )
    .await
}

/// Runs one Redis call under `limit`, mapping every failure to a
/// [`StoreError`]: the deadline and Redis's own timeouts to
/// [`StoreError::Timeout`], anything else to [`StoreError::Backend`].
pub async fn bounded<T>(
    limit: Duration,
    call: impl Future<Output = RedisResult<T>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(limit, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) if error.is_timeout() => Err(StoreError::Timeout),
        Ok(Err(error)) => Err(StoreError::backend(error)),
        Err(_) => Err(StoreError::Timeout),
    }
}

/// The Redis form of [`ExpiringIds`](super::ExpiringIds), behind the Redis
/// replay store and the Redis revocation list: one key per id,
/// `{prefix}{id}`, written with one atomic `SET … NX EXAT {expires_at}` (no
/// separate `EXPIRE` a crash could skip) and read with `EXISTS`; every call
/// bounded by `timeout`.
///
/// `EXAT` is an absolute Unix time, so every instance agrees on when an id
/// may be forgotten; instance clocks must be in sync (NTP), as for token
/// expiry itself. Needs Redis 6.2 or later.
#[derive(Clone)]
pub struct RedisExpiringIds {
    connection: ConnectionManager,
    prefix: String,
    timeout: Duration,
}

impl RedisExpiringIds {
    /// Ids under `prefix` on `connection`, each call bounded by `timeout`.
    pub fn new(
        connection: ConnectionManager,
        prefix: impl Into<String>,
        timeout: Duration,
    ) -> Self {
        Self {
            connection,
            prefix: prefix.into(),
            timeout,
        }
    }

    /// Keeps the ids under `prefix` instead.
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Bounds each call by `timeout` instead.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Adds `id` until `expires_at` unless it is already there: `Ok(true)`
    /// when this call added it (of any number of racing calls, across every
    /// process, exactly one).
    pub async fn insert(&self, id: &str, expires_at: u64) -> Result<bool, StoreError> {
        let mut command = redis::cmd("SET");
        command
            .arg(format!("{}{id}", self.prefix))
            .arg(1)
            .arg("NX")
            .arg("EXAT")
            .arg(expires_at.max(1));
        let mut connection = self.connection.clone();
        // `SET … NX` answers OK when it set the key and nil when it existed.
        let reply: Option<String> =
            bounded(self.timeout, command.query_async(&mut connection)).await?;
        Ok(reply.is_some())
    }

    /// Whether `id` is in the set (and not expired).
    pub async fn contains(&self, id: &str) -> Result<bool, StoreError> {
        let mut command = redis::cmd("EXISTS");
        command.arg(format!("{}{id}", self.prefix));
        let mut connection = self.connection.clone();
        let found: u64 = bounded(self.timeout, command.query_async(&mut connection)).await?;
        Ok(found > 0)
    }
}

impl std::fmt::Debug for RedisExpiringIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisExpiringIds")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}
