//! Replay protection: remembering which single-use ids were spent.
//!
//! A [`ReplayStore`] records an id (a handoff token's or refresh token's
//! `jti`) until the token it belongs to expires. Recording is atomic: of any
//! number of concurrent calls for one id, across every process sharing the
//! store, exactly one gets [`Redemption::First`]. Errors are backend
//! failures only, and callers treat them as "not redeemed" (503): a store
//! that cannot answer never admits a token.
//!
//! Two implementations ship: [`MemoryReplayStore`] (bounded, one process)
//! and, with feature `redis`, `RedisReplayStore` (one atomic
//! `SET key 1 NX EXAT` per redemption, shared by a fleet).
//!
//! Implementing the trait for another backend:
//!
//! ```
//! use async_trait::async_trait;
//! use keystile_core::replay::{Redemption, ReplayStore};
//! use keystile_core::store::StoreError;
//!
//! /// Refuses everything: a store that is always down.
//! struct Down;
//!
//! #[async_trait]
//! impl ReplayStore for Down {
//!     async fn redeem(&self, _id: &str, _expires_at: u64) -> Result<Redemption, StoreError> {
//!         Err(StoreError::message("backend unreachable"))
//!     }
//! }
//! ```

mod memory;
#[cfg(feature = "redis")]
mod redis;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;

use crate::store::StoreError;

#[cfg(feature = "redis")]
pub use self::redis::{DEFAULT_REDIS_REPLAY_PREFIX, DEFAULT_REDIS_TIMEOUT, RedisReplayStore};
pub use memory::{DEFAULT_REPLAY_CAPACITY, MemoryReplayStore};

/// The outcome of recording a single-use id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redemption {
    /// This call recorded the id: the token may be used.
    First,
    /// The id was already recorded: the token was used before.
    AlreadyUsed,
}

/// Records single-use ids until they expire.
#[async_trait]
pub trait ReplayStore: Send + Sync + 'static {
    /// Atomically records `id` until `expires_at` (Unix seconds). Errors are
    /// backend failures only; callers must treat them as "not redeemed".
    async fn redeem(&self, id: &str, expires_at: u64) -> Result<Redemption, StoreError>;
}

/// A replay store shared between layers.
pub type SharedReplayStore = Arc<dyn ReplayStore>;

// Hands back the inner store's future itself: an `async fn` here would box
// a second future around it on every redemption.
impl<T: ReplayStore + ?Sized> ReplayStore for Arc<T> {
    fn redeem<'a, 'b, 'f>(
        &'a self,
        id: &'b str,
        expires_at: u64,
    ) -> Pin<Box<dyn Future<Output = Result<Redemption, StoreError>> + Send + 'f>>
    where
        'a: 'f,
        'b: 'f,
        Self: 'f,
    {
        (**self).redeem(id, expires_at)
    }
}
