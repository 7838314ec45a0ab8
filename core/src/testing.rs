//! Test doubles for code built on keystile (feature `testing`): one
//! instrumented API-key store instead of a hand-written one per test suite.
//!
//! [`CountingStore`] wraps any store (by default a [`MemoryApiKeyStore`]),
//! counts lookups and last-used writes, keeps what was written, and can be
//! switched "down" to prove that a backend failure fails closed.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use keystile_core::api_key::{ApiKeyAdmin, ApiKeyStore, KeyDigest, KeyPrefix, NewApiKey};
//! use keystile_core::random::OsRandom;
//! use keystile_core::testing::CountingStore;
//!
//! let store = CountingStore::default();
//! let (_, record) = NewApiKey::new(KeyPrefix::new("sk_test").unwrap(), "acme")
//!     .mint(&OsRandom, 1_700_000_000)
//!     .unwrap();
//! store.create(record.clone()).await.unwrap();
//! assert!(store.lookup(&record.digest).await.unwrap().is_some());
//! assert_eq!(store.lookups(), 1);
//!
//! store.set_down(true);
//! assert!(store.lookup(&record.digest).await.is_err());
//! # }
//! ```

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;

use crate::api_key::{
    ApiKeyAdmin, ApiKeyRecord, ApiKeyStore, CreateError, KeyDigest, LastUse, MemoryApiKeyStore,
};
use crate::store::StoreError;

/// An API-key store that counts what it is asked and can be switched off;
/// see the [module docs](self).
#[derive(Debug)]
pub struct CountingStore<S = MemoryApiKeyStore> {
    inner: S,
    lookups: AtomicUsize,
    writes: AtomicUsize,
    written: Mutex<Vec<LastUse>>,
    down: AtomicBool,
}

impl Default for CountingStore<MemoryApiKeyStore> {
    /// Over an empty [`MemoryApiKeyStore`].
    fn default() -> Self {
        Self::new(MemoryApiKeyStore::new())
    }
}

impl<S> CountingStore<S> {
    /// Counts the calls made to `inner`.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            lookups: AtomicUsize::new(0),
            writes: AtomicUsize::new(0),
            written: Mutex::new(Vec::new()),
            down: AtomicBool::new(false),
        }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Lookups so far (failed ones included).
    pub fn lookups(&self) -> usize {
        self.lookups.load(Ordering::SeqCst)
    }

    /// `record_use` calls so far (failed ones included).
    pub fn writes(&self) -> usize {
        self.writes.load(Ordering::SeqCst)
    }

    /// Every last use written so far, in order.
    pub fn written(&self) -> Vec<LastUse> {
        self.written
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// While `down`, lookups and last-used writes fail with
    /// [`StoreError::Timeout`] (the administrative calls still work, so a
    /// test can set up records).
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    fn check_up(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            Err(StoreError::Timeout)
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl<S: ApiKeyStore> ApiKeyStore for CountingStore<S> {
    async fn lookup(&self, digest: &KeyDigest) -> Result<Option<Arc<ApiKeyRecord>>, StoreError> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        self.check_up()?;
        self.inner.lookup(digest).await
    }
}

#[async_trait]
impl<S: ApiKeyAdmin> ApiKeyAdmin for CountingStore<S> {
    async fn create(&self, record: ApiKeyRecord) -> Result<(), CreateError> {
        self.inner.create(record).await
    }

    async fn revoke(&self, id: &str, at: u64) -> Result<bool, StoreError> {
        self.inner.revoke(id, at).await
    }

    async fn list(&self, owner: &str) -> Result<Vec<Arc<ApiKeyRecord>>, StoreError> {
        self.inner.list(owner).await
    }

    async fn record_use(&self, uses: &[LastUse]) -> Result<(), StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.check_up()?;
        self.written
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(uses);
        self.inner.record_use(uses).await
    }
}
