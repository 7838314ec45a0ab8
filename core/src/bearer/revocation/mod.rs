//! Revocation lists: token ids refused until their token would have expired.
//!
//! Revoking puts a token's `jti` on a [`RevocationList`] with the token's own
//! expiry, so the list never holds an entry longer than the token it kills
//! and stays bounded by the number of live tokens. Verifiers consult it on
//! every request; a list that cannot answer makes the request fail closed
//! (503), never admit.
//!
//! - [`MemoryRevocationList`]: one process, bounded, expiry read from the
//!   injected clock.
//! - `RedisRevocationList` (feature `redis`): shared by a fleet
//!   (`SET NX EXAT`, `EXISTS`).
//!
//! ```
//! use keystile_core::bearer::{MemoryRevocationList, RevocationList};
//! use keystile_core::clock::ManualClock;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let clock = ManualClock::at_unix(1_700_000_000);
//! let list = MemoryRevocationList::new().clock(clock.shared());
//! list.revoke("jti-1", 1_700_000_060).await.unwrap();
//! assert!(list.is_revoked("jti-1").await.unwrap());
//! assert!(!list.is_revoked("jti-2").await.unwrap());
//! # });
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;

use crate::store::StoreError;

mod memory;
#[cfg(feature = "redis")]
mod redis;

pub use memory::{DEFAULT_REVOCATION_CAPACITY, MemoryRevocationList};
#[cfg(feature = "redis")]
pub use redis::{
    DEFAULT_PREFIX as DEFAULT_REDIS_PREFIX, DEFAULT_TIMEOUT as DEFAULT_REDIS_TIMEOUT,
    RedisRevocationList,
};

/// Token ids that must be refused until they expire.
///
/// Implementations answer `Err` only when the backend fails; callers treat
/// that as "cannot tell" and refuse the request.
///
/// ```
/// use std::collections::HashSet;
/// use std::sync::Mutex;
/// use async_trait::async_trait;
/// use keystile_core::bearer::RevocationList;
/// use keystile_core::store::StoreError;
///
/// /// Never forgets (fine for a test, unbounded in production).
/// #[derive(Default)]
/// struct Forever(Mutex<HashSet<String>>);
///
/// #[async_trait]
/// impl RevocationList for Forever {
///     async fn revoke(&self, token_id: &str, _expires_at: u64) -> Result<(), StoreError> {
///         self.0.lock().map_err(StoreError::message)?.insert(token_id.to_owned());
///         Ok(())
///     }
///     async fn is_revoked(&self, token_id: &str) -> Result<bool, StoreError> {
///         Ok(self.0.lock().map_err(StoreError::message)?.contains(token_id))
///     }
/// }
/// ```
#[async_trait]
pub trait RevocationList: Send + Sync + 'static {
    /// Refuses `token_id` until `expires_at` (Unix seconds, the token's
    /// `exp`). Revoking an id twice is not an error.
    async fn revoke(&self, token_id: &str, expires_at: u64) -> Result<(), StoreError>;

    /// Whether `token_id` is revoked and its token not yet expired.
    async fn is_revoked(&self, token_id: &str) -> Result<bool, StoreError>;
}

#[async_trait]
impl<T: RevocationList + ?Sized> RevocationList for Arc<T> {
    async fn revoke(&self, token_id: &str, expires_at: u64) -> Result<(), StoreError> {
        (**self).revoke(token_id, expires_at).await
    }

    // Hands back the inner list's future itself: an `async fn` here would
    // box a second future around it on every request.
    fn is_revoked<'a, 'b, 'f>(
        &'a self,
        token_id: &'b str,
    ) -> Pin<Box<dyn Future<Output = Result<bool, StoreError>> + Send + 'f>>
    where
        'a: 'f,
        'b: 'f,
        Self: 'f,
    {
        (**self).is_revoked(token_id)
    }
}
