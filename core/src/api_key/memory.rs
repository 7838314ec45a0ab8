//! [`MemoryApiKeyStore`]: API key records in process memory.
//!
//! Correct for one process; fleets share records through PostgreSQL. Reads
//! take no lock: the map is an immutable snapshot behind an atomic pointer,
//! so concurrent lookups on any number of cores never contend. Writes
//! (create, revoke, last-used flushes) copy the map and swap it in, which
//! costs O(number of keys) each: right for the usual thousands of keys
//! changing a few times a minute, wrong for millions of keys changing
//! constantly.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use keystile_core::api_key::{ApiKeyAdmin, ApiKeyStore, KeyPrefix, MemoryApiKeyStore, NewApiKey, parse};
//! use keystile_core::random::OsRandom;
//!
//! let store = MemoryApiKeyStore::new();
//! let (key, record) = NewApiKey::new(KeyPrefix::new("sk_test").unwrap(), "acme")
//!     .mint(&OsRandom, 1_700_000_000)
//!     .unwrap();
//! store.create(record).await.unwrap();
//!
//! let digest = parse(key.as_str()).unwrap().digest();
//! let found = store.lookup(&digest).await.unwrap().unwrap();
//! assert_eq!(&*found.owner, "acme");
//! # }
//! ```

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use async_trait::async_trait;

use super::digest::KeyDigest;
use super::record::ApiKeyRecord;
use super::store::{ApiKeyAdmin, ApiKeyStore, CreateError, LastUse};
use crate::store::StoreError;

/// One published map of records.
type Records = HashMap<[u8; 32], Arc<ApiKeyRecord>>;

/// API key records in process memory, with lock-free reads.
#[derive(Default)]
pub struct MemoryApiKeyStore {
    records: ArcSwap<Records>,
    // Serialises writers so no copy-and-swap loses another's change; readers
    // never touch it.
    write: Mutex<()>,
}

impl MemoryApiKeyStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store holding `records`, built in one step: loading thousands of
    /// keys at startup this way costs O(n), where `create` one by one copies
    /// the map each time.
    ///
    /// Fails with [`CreateError::Duplicate`] when two records share a digest
    /// or an id.
    pub fn from_records(
        records: impl IntoIterator<Item = ApiKeyRecord>,
    ) -> Result<Self, CreateError> {
        let mut map = Records::default();
        let mut ids = HashSet::new();
        for record in records {
            if map.contains_key(&record.digest.0) || !ids.insert(record.id.clone()) {
                return Err(CreateError::Duplicate);
            }
            map.insert(record.digest.0, Arc::new(record));
        }
        Ok(Self {
            records: ArcSwap::from_pointee(map),
            write: Mutex::new(()),
        })
    }

    /// Number of records held.
    pub fn len(&self) -> usize {
        self.records.load().len()
    }

    /// Whether the store holds no records.
    pub fn is_empty(&self) -> bool {
        self.records.load().is_empty()
    }

    /// Applies `change` to a copy of the map and publishes it, unless
    /// `change` returns `Err`.
    fn update<T, E>(&self, change: impl FnOnce(&mut Records) -> Result<T, E>) -> Result<T, E> {
        let _writer = self.write.lock().unwrap_or_else(PoisonError::into_inner);
        let mut next = Records::clone(&self.records.load());
        let out = change(&mut next)?;
        self.records.store(Arc::new(next));
        Ok(out)
    }
}

impl std::fmt::Debug for MemoryApiKeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryApiKeyStore")
            .field("records", &self.len())
            .finish()
    }
}

#[async_trait]
impl ApiKeyStore for MemoryApiKeyStore {
    async fn lookup(&self, digest: &KeyDigest) -> Result<Option<Arc<ApiKeyRecord>>, StoreError> {
        Ok(self.records.load().get(&digest.0).cloned())
    }
}

#[async_trait]
impl ApiKeyAdmin for MemoryApiKeyStore {
    async fn create(&self, record: ApiKeyRecord) -> Result<(), CreateError> {
        self.update(|records| {
            if records.contains_key(&record.digest.0) || records.values().any(|r| r.id == record.id)
            {
                return Err(CreateError::Duplicate);
            }
            records.insert(record.digest.0, Arc::new(record));
            Ok(())
        })
    }

    async fn revoke(&self, id: &str, at: u64) -> Result<bool, StoreError> {
        let revoked = self.update(|records| {
            let Some(slot) = records
                .values_mut()
                .find(|r| r.id == id && r.revoked_at.is_none())
            else {
                // Nothing changes: abandon the copy.
                return Err(());
            };
            Arc::make_mut(slot).revoked_at = Some(at);
            Ok(())
        });
        Ok(revoked.is_ok())
    }

    async fn list(&self, owner: &str) -> Result<Vec<Arc<ApiKeyRecord>>, StoreError> {
        let mut out: Vec<_> = self
            .records
            .load()
            .values()
            .filter(|r| &*r.owner == owner)
            .cloned()
            .collect();
        out.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(out)
    }

    async fn record_use(&self, uses: &[LastUse]) -> Result<(), StoreError> {
        let _ = self.update(|records| {
            let mut changed = false;
            for used in uses {
                if let Some(slot) = records.get_mut(&used.digest.0)
                    && slot.last_used_at.is_none_or(|t| t < used.at)
                {
                    Arc::make_mut(slot).last_used_at = Some(used.at);
                    changed = true;
                }
            }
            // Nothing newer: abandon the copy.
            if changed { Ok(()) } else { Err(()) }
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api_key::{KeyPrefix, NewApiKey};
    use crate::random::OsRandom;

    fn new_key(owner: &str, now: u64) -> (crate::api_key::MintedKey, ApiKeyRecord) {
        NewApiKey::new(KeyPrefix::new("sk").unwrap(), owner)
            .mint(&OsRandom, now)
            .unwrap()
    }

    #[tokio::test]
    async fn unknown_digest_is_none_not_an_error() {
        let store = MemoryApiKeyStore::new();
        assert!(store.lookup(&KeyDigest::of("x")).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn from_records_loads_every_record_and_refuses_duplicates() {
        let (key, a) = new_key("acme", 10);
        let (_, b) = new_key("globex", 10);
        let store = MemoryApiKeyStore::from_records([a.clone(), b.clone()]).unwrap();
        assert_eq!(store.len(), 2);
        let found = store.lookup(&key.digest()).await.unwrap().unwrap();
        assert_eq!(&*found.owner, "acme");

        assert!(matches!(
            MemoryApiKeyStore::from_records([a.clone(), a.clone()]),
            Err(CreateError::Duplicate)
        ));
        let mut same_id = b;
        same_id.id = a.id.clone();
        assert!(matches!(
            MemoryApiKeyStore::from_records([a, same_id]),
            Err(CreateError::Duplicate)
        ));
    }

    #[tokio::test]
    async fn create_lookup_list_revoke() {
        let store = MemoryApiKeyStore::new();
        let (key, a) = new_key("acme", 10);
        let (_, b) = new_key("acme", 5);
        let (_, other) = new_key("globex", 1);
        store.create(a.clone()).await.unwrap();
        store.create(b.clone()).await.unwrap();
        store.create(other).await.unwrap();
        assert!(matches!(
            store.create(a.clone()).await,
            Err(CreateError::Duplicate)
        ));

        let found = store.lookup(&key.digest()).await.unwrap().unwrap();
        assert_eq!(*found, a);
        let listed: Vec<_> = store.list("acme").await.unwrap();
        assert_eq!(
            listed.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            [b.id.as_str(), a.id.as_str()]
        );

        assert!(store.revoke(&a.id, 20).await.unwrap());
        assert!(!store.revoke(&a.id, 30).await.unwrap(), "already revoked");
        assert!(!store.revoke("nope", 30).await.unwrap());
        let revoked = store.lookup(&key.digest()).await.unwrap().unwrap();
        assert_eq!(revoked.revoked_at, Some(20));
        // A reader holding the old snapshot keeps a consistent record.
        assert_eq!(found.revoked_at, None);
    }

    #[tokio::test]
    async fn record_use_never_moves_backwards() {
        let store = MemoryApiKeyStore::new();
        let (key, record) = new_key("acme", 1);
        store.create(record).await.unwrap();
        let digest = key.digest();
        store
            .record_use(&[LastUse { digest, at: 50 }])
            .await
            .unwrap();
        store
            .record_use(&[
                LastUse { digest, at: 40 },
                LastUse {
                    digest: KeyDigest::of("unknown"),
                    at: 60,
                },
            ])
            .await
            .unwrap();
        let r = store.lookup(&digest).await.unwrap().unwrap();
        assert_eq!(r.last_used_at, Some(50));
    }
}
