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
        .set_connection_timeout(timeout)
        .set_response_timeout(timeout)
        .set_number_of_retries(1)
        .set_max_delay(500);
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
