//! The error every keystile store returns.
//!
//! Stores answer "not there" with `Ok(None)` (or an explicit outcome) and use
//! [`StoreError`] only for failures of the backend itself. Layers map every
//! `StoreError` to 503 with `Retry-After`: failing closed, never open.

use std::fmt;

/// A backend failure: the store could not give an answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend is unreachable or returned an error.
    #[error("store backend failed: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The backend did not answer in time.
    #[error("store backend timed out")]
    Timeout,
    /// A bounded store is full of live entries and refuses to evict them.
    #[error("store is at capacity")]
    Capacity,
}

impl StoreError {
    /// A backend failure from any error.
    pub fn backend(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Backend(error.into())
    }

    /// A backend failure described by a message.
    pub fn message(message: impl fmt::Display) -> Self {
        Self::Backend(message.to_string().into())
    }
}

mod expiring;
#[cfg(feature = "redis")]
pub mod redis;

pub use expiring::ExpiringIds;
#[cfg(feature = "redis")]
pub use redis::RedisExpiringIds;
