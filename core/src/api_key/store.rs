//! The [`ApiKeyStore`] trait (the request path: which record has this
//! digest?) and [`ApiKeyAdmin`] (keeping records: create, revoke, list,
//! last-used times).
//!
//! An unknown digest is `Ok(None)`; `Err` means the backend failed, and the
//! `ApiKeyLayer` answers 503 (fail closed). Stores return records as they
//! are; deciding whether an expired or revoked record may be used is the
//! caller's job (stores may also filter such records out, as the PostgreSQL
//! store does, since the answer is the same: refused).
//!
//! A read-only store implements `ApiKeyStore` alone:
//!
//! ```
//! use std::sync::Arc;
//! use async_trait::async_trait;
//! use keystile_core::api_key::{ApiKeyRecord, ApiKeyStore, KeyDigest};
//! use keystile_core::store::StoreError;
//!
//! /// A store with one fixed key, e.g. for a health-check client.
//! struct SingleKey(Arc<ApiKeyRecord>);
//!
//! #[async_trait]
//! impl ApiKeyStore for SingleKey {
//!     async fn lookup(&self, digest: &KeyDigest) -> Result<Option<Arc<ApiKeyRecord>>, StoreError> {
//!         Ok(self.0.digest.ct_eq(digest).then(|| self.0.clone()))
//!     }
//! }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;

use super::digest::KeyDigest;
use super::record::ApiKeyRecord;
use crate::store::StoreError;

/// Why a record could not be created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CreateError {
    /// A record with the same id or digest already exists.
    #[error("an API key with this id or digest already exists")]
    Duplicate,
    /// The backend failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One key's latest successful use, as flushed by
/// [`LastUsedRecorder`](super::LastUsedRecorder).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LastUse {
    /// The key's digest.
    pub digest: KeyDigest,
    /// When it was last used, Unix seconds.
    pub at: u64,
}

/// Where `ApiKeyLayer` looks keys up: the request path, and all a
/// read-only store (a key list shipped with the service, a directory
/// behind an API) implements.
///
/// Object-safe: layers hold an `Arc<dyn ApiKeyStore>`.
#[async_trait]
pub trait ApiKeyStore: Send + Sync + 'static {
    /// The record whose digest is `digest`, or `Ok(None)` when there is none.
    /// `Err` only when the backend failed.
    async fn lookup(&self, digest: &KeyDigest) -> Result<Option<Arc<ApiKeyRecord>>, StoreError>;
}

/// The administrative side of a store that keystile writes to: minting,
/// revoking and listing keys (the CLI, an admin API), and the batched
/// last-used times of [`LastUsedRecorder`](super::LastUsedRecorder).
///
/// An `Arc<dyn ApiKeyAdmin>` is also an `Arc<dyn ApiKeyStore>`: hand the
/// same store to the layer and to the admin code.
#[async_trait]
pub trait ApiKeyAdmin: ApiKeyStore {
    /// Stores a new record.
    async fn create(&self, record: ApiKeyRecord) -> Result<(), CreateError>;

    /// Marks the key with `id` revoked from `at` (Unix seconds). `Ok(true)`
    /// when this call revoked it; `Ok(false)` when no such key exists or it
    /// was already revoked.
    async fn revoke(&self, id: &str, at: u64) -> Result<bool, StoreError>;

    /// Every record owned by `owner`, revoked and expired ones included,
    /// oldest first.
    async fn list(&self, owner: &str) -> Result<Vec<Arc<ApiKeyRecord>>, StoreError>;

    /// Records the latest use of each key in `uses` (never moving a
    /// `last_used_at` backwards). Called in batches, off the request path.
    async fn record_use(&self, uses: &[LastUse]) -> Result<(), StoreError>;
}

// Hands back the inner store's future itself: an `async fn` here would box
// a second future around it on every request.
impl<T: ApiKeyStore + ?Sized> ApiKeyStore for Arc<T> {
    fn lookup<'a, 'b, 'f>(
        &'a self,
        digest: &'b KeyDigest,
    ) -> Pin<Box<dyn Future<Output = Result<Option<Arc<ApiKeyRecord>>, StoreError>> + Send + 'f>>
    where
        'a: 'f,
        'b: 'f,
        Self: 'f,
    {
        (**self).lookup(digest)
    }
}

#[async_trait]
impl<T: ApiKeyAdmin + ?Sized> ApiKeyAdmin for Arc<T> {
    async fn create(&self, record: ApiKeyRecord) -> Result<(), CreateError> {
        (**self).create(record).await
    }

    async fn revoke(&self, id: &str, at: u64) -> Result<bool, StoreError> {
        (**self).revoke(id, at).await
    }

    async fn list(&self, owner: &str) -> Result<Vec<Arc<ApiKeyRecord>>, StoreError> {
        (**self).list(owner).await
    }

    async fn record_use(&self, uses: &[LastUse]) -> Result<(), StoreError> {
        (**self).record_use(uses).await
    }
}
