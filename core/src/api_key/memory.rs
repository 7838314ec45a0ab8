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
//! One key presented on several cores at once would still have them all
//! write to the same reference counts (the record's, its owner's, its
//! scopes'), once when a request takes the record and once when it ends.
//! So a thread that finds a record already held by another request keeps
//! a copy of its own, and answers with that copy until the store changes.
//! A copy is only ever used for the snapshot it was made from: after a
//! revocation or any other write, the next lookup reads the new snapshot.
//! A thread keeps at most eight copies, one per slot picked by the digest,
//! and makes at most one new copy per 1 024 lookups, so a thread with many
//! keys in flight at once hands out shared records instead of copying on
//! every lookup.
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

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use async_trait::async_trait;

use super::digest::KeyDigest;
use super::record::ApiKeyRecord;
use super::store::{ApiKeyAdmin, ApiKeyStore, CreateError, LastUse};
use crate::store::StoreError;

type Records = HashMap<[u8; 32], Arc<ApiKeyRecord>, DigestHashing>;

/// One published map of records.
#[derive(Default)]
struct Snapshot {
    /// Unique among every snapshot of every store in the process (0 for an
    /// empty store that was never written to, which holds nothing to copy).
    generation: u64,
    records: Records,
}

/// The generation of the next snapshot published.
static NEXT_GENERATION: AtomicU64 = AtomicU64::new(1);

/// How many records each thread keeps a copy of (see the module docs).
const HOT_COPIES: usize = 8;

/// The fewest lookups a thread makes between two copies.
const LOOKUPS_PER_COPY: u32 = 1024;

/// A thread's copy of a record, valid for one snapshot.
struct HotCopy {
    generation: u64,
    digest: [u8; 32],
    record: Arc<ApiKeyRecord>,
}

/// A thread's copies, in slots picked by the digest's first byte (digests
/// are uniform), so a record always lands in the same slot.
struct HotCopies {
    slots: [Option<HotCopy>; HOT_COPIES],
    /// Lookups since the last copy, saturating.
    since_copy: u32,
}

thread_local! {
    static HOT: RefCell<HotCopies> = const {
        RefCell::new(HotCopies {
            slots: [const { None }; HOT_COPIES],
            since_copy: LOOKUPS_PER_COPY,
        })
    };
}

impl HotCopies {
    /// The record behind `digest` in `snapshot`: this thread's copy when it
    /// has one for that snapshot, else the shared record, copied first when
    /// another request holds it and this thread may copy again.
    fn find(&mut self, snapshot: &Snapshot, digest: &[u8; 32]) -> Option<Arc<ApiKeyRecord>> {
        self.since_copy = self.since_copy.saturating_add(1);
        let slot = &mut self.slots[usize::from(digest[0]) % HOT_COPIES];
        if let Some(copy) = slot
            && copy.generation == snapshot.generation
            && copy.digest == *digest
        {
            return Some(Arc::clone(&copy.record));
        }
        let shared = snapshot.records.get(digest)?;
        // One count is the map's own: any other is a request in flight.
        if Arc::strong_count(shared) == 1 || self.since_copy < LOOKUPS_PER_COPY {
            return Some(Arc::clone(shared));
        }
        self.since_copy = 0;
        let record = Arc::new(shared.unshared());
        *slot = Some(HotCopy {
            generation: snapshot.generation,
            digest: *digest,
            record: Arc::clone(&record),
        });
        Some(record)
    }
}

/// Hashing for a map keyed by SHA-256 digests.
///
/// A digest is already uniform in every bit, so its first eight bytes,
/// mixed with a random per-store seed, index the map as well as SipHash
/// over all 32 (std's default, ≈ 400 instructions per lookup). Flooding
/// does not apply: only the store inserts, and what it inserts are digests
/// of keys minted from the OS CSPRNG; a request only probes, and a probe
/// walks at most the run of occupied slots where it lands, which no
/// presented key can lengthen.
#[derive(Clone)]
struct DigestHashing {
    seed: u64,
}

impl Default for DigestHashing {
    fn default() -> Self {
        Self {
            seed: std::hash::RandomState::new().hash_one(0u8),
        }
    }
}

impl BuildHasher for DigestHashing {
    type Hasher = DigestHasher;

    fn build_hasher(&self) -> DigestHasher {
        DigestHasher(self.seed)
    }
}

struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut word = [0u8; 8];
        let n = bytes.len().min(word.len());
        word[..n].copy_from_slice(&bytes[..n]);
        // An odd multiplier spreads the seeded bits into the high bits
        // hashbrown uses for its tags.
        self.0 = (self.0 ^ u64::from_le_bytes(word)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    // The slice length written before the bytes is always 32: nothing to mix.
    fn write_usize(&mut self, _: usize) {}

    fn finish(&self) -> u64 {
        self.0
    }
}

/// API key records in process memory, with lock-free reads.
#[derive(Default)]
pub struct MemoryApiKeyStore {
    records: ArcSwap<Snapshot>,
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
    pub fn with_records(
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
            records: ArcSwap::from_pointee(Snapshot::publish(map)),
            write: Mutex::new(()),
        })
    }

    /// Number of records held.
    pub fn len(&self) -> usize {
        self.records.load().records.len()
    }

    /// Whether the store holds no records.
    pub fn is_empty(&self) -> bool {
        self.records.load().records.is_empty()
    }

    /// The record behind `digest`, through this thread's copies (see the
    /// module docs).
    fn find(&self, digest: &KeyDigest) -> Option<Arc<ApiKeyRecord>> {
        let snapshot = self.records.load();
        let through_copies = HOT.try_with(|copies| {
            let mut copies = copies.try_borrow_mut().ok()?;
            Some(copies.find(&snapshot, &digest.0))
        });
        match through_copies {
            Ok(Some(found)) => found,
            // During thread teardown the map answers directly.
            _ => snapshot.records.get(&digest.0).cloned(),
        }
    }

    /// Applies `change` to a copy of the map and publishes it, unless
    /// `change` returns `Err`.
    fn update<T, E>(&self, change: impl FnOnce(&mut Records) -> Result<T, E>) -> Result<T, E> {
        let _writer = self.write.lock().unwrap_or_else(PoisonError::into_inner);
        let mut next = Records::clone(&self.records.load().records);
        let out = change(&mut next)?;
        self.records.store(Arc::new(Snapshot::publish(next)));
        Ok(out)
    }
}

impl Snapshot {
    /// `records` under a generation no snapshot had before.
    fn publish(records: Records) -> Self {
        Self {
            generation: NEXT_GENERATION.fetch_add(1, Ordering::Relaxed),
            records,
        }
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
        Ok(self.find(digest))
    }

    fn lookup_now(
        &self,
        digest: &KeyDigest,
    ) -> Option<Result<Option<Arc<ApiKeyRecord>>, StoreError>> {
        Some(Ok(self.find(digest)))
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
            .records
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
            // Nothing newer: abandon the copy, and keep every thread's
            // copies of the current snapshot.
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

    #[tokio::test]
    async fn digests_sharing_their_hashed_bytes_are_still_told_apart() {
        // Same first eight bytes, so the same hash: the map must fall back
        // on comparing whole digests.
        let records: Vec<_> = (0..64u8)
            .map(|i| {
                let (_, mut record) = new_key("acme", 10);
                record.digest.0[..8].fill(7);
                record.digest.0[31] = i;
                record
            })
            .collect();
        let store = MemoryApiKeyStore::with_records(records.clone()).unwrap();
        for record in &records {
            let found = store.lookup(&record.digest).await.unwrap().unwrap();
            assert_eq!(found.id, record.id);
        }
        let mut unknown = records[0].digest;
        unknown.0[31] = 200;
        assert!(store.lookup(&unknown).await.unwrap().is_none());
    }

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
    async fn with_records_loads_every_record_and_refuses_duplicates() {
        let (key, a) = new_key("acme", 10);
        let (_, b) = new_key("globex", 10);
        let store = MemoryApiKeyStore::with_records([a.clone(), b.clone()]).unwrap();
        assert_eq!(store.len(), 2);
        let found = store.lookup(&key.digest()).await.unwrap().unwrap();
        assert_eq!(&*found.owner, "acme");

        assert!(matches!(
            MemoryApiKeyStore::with_records([a.clone(), a.clone()]),
            Err(CreateError::Duplicate)
        ));
        let mut same_id = b;
        same_id.id = a.id.clone();
        assert!(matches!(
            MemoryApiKeyStore::with_records([a, same_id]),
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

    /// Whether two records share their owner's and scopes' allocations.
    fn share_counters(a: &ApiKeyRecord, b: &ApiKeyRecord) -> bool {
        Arc::ptr_eq(&a.owner, &b.owner)
            || a.scopes
                .iter()
                .zip(b.scopes.iter())
                .any(|(x, y)| std::ptr::eq(x, y))
    }

    #[test]
    fn a_record_held_by_a_request_is_copied_once_per_thread() {
        let (key, record) = new_key("acme", 10);
        let record = ApiKeyRecord {
            scopes: crate::scopes::Scopes::parse("reports:read"),
            ..record
        };
        let store = MemoryApiKeyStore::with_records([record.clone()]).unwrap();
        let digest = key.digest();
        let find = || store.lookup_now(&digest).unwrap().unwrap().unwrap();

        // Nobody else holds it: the shared record, every time.
        let first = find();
        drop(find());
        assert_eq!(Arc::strong_count(&first), 2, "the map's and ours");

        // While `first` is in flight, this thread makes a copy of its own,
        // equal in every field, sharing no counter, and keeps answering
        // with it.
        let copy = find();
        assert_eq!(*copy, record);
        assert!(!Arc::ptr_eq(&first, &copy));
        assert!(!share_counters(&first, &copy));
        drop(first);
        for _ in 0..3 * LOOKUPS_PER_COPY {
            assert!(Arc::ptr_eq(&find(), &copy));
        }

        // Another thread never sees this thread's copy.
        let elsewhere = std::thread::scope(|s| s.spawn(find).join().unwrap());
        assert!(!Arc::ptr_eq(&elsewhere, &copy));
    }

    #[tokio::test]
    async fn a_write_retires_every_copy_at_once() {
        let (key, record) = new_key("acme", 10);
        let store = MemoryApiKeyStore::with_records([record.clone()]).unwrap();
        let digest = key.digest();
        let held = store.lookup(&digest).await.unwrap().unwrap();
        let copy = store.lookup(&digest).await.unwrap().unwrap();
        assert!(!Arc::ptr_eq(&held, &copy), "copied while held");

        assert!(store.revoke(&record.id, 20).await.unwrap());
        let after = store.lookup(&digest).await.unwrap().unwrap();
        assert_eq!(after.revoked_at, Some(20));
        assert_eq!(copy.revoked_at, None, "old copies stay as they were");

        // A last-used flush publishes a snapshot too; one that changes
        // nothing publishes none.
        let generation = || store.records.load().generation;
        let before = generation();
        store
            .record_use(&[LastUse { digest, at: 30 }])
            .await
            .unwrap();
        assert_ne!(generation(), before);
        let flushed = store.lookup(&digest).await.unwrap().unwrap();
        assert_eq!(flushed.last_used_at, Some(30));
        assert_eq!(flushed.revoked_at, Some(20));
        let before = generation();
        store
            .record_use(&[LastUse { digest, at: 25 }])
            .await
            .unwrap();
        assert_eq!(generation(), before, "an older use changes nothing");
        drop((held, after));
    }

    #[test]
    fn copies_never_cross_stores() {
        // The same record in two stores, revoked in one of them only.
        let (key, record) = new_key("acme", 10);
        let live = MemoryApiKeyStore::with_records([record.clone()]).unwrap();
        let revoked = MemoryApiKeyStore::with_records([ApiKeyRecord {
            revoked_at: Some(5),
            ..record.clone()
        }])
        .unwrap();
        let digest = key.digest();
        let held = live.lookup_now(&digest).unwrap().unwrap().unwrap();
        let copy = live.lookup_now(&digest).unwrap().unwrap().unwrap();
        assert!(!Arc::ptr_eq(&held, &copy));
        let other = revoked.lookup_now(&digest).unwrap().unwrap().unwrap();
        assert_eq!(other.revoked_at, Some(5));
        assert_eq!(copy.revoked_at, None);
        assert_eq!(
            live.lookup_now(&digest)
                .unwrap()
                .unwrap()
                .unwrap()
                .revoked_at,
            None
        );
    }

    /// A thread with more records in flight than it has slots answers each
    /// lookup with the right record, and copies at most once per
    /// `LOOKUPS_PER_COPY` lookups instead of on every one.
    #[test]
    fn many_records_in_flight_are_not_copied_on_every_lookup() {
        let keys: Vec<_> = (0..HOT_COPIES * 4).map(|_| new_key("acme", 1)).collect();
        let store = MemoryApiKeyStore::with_records(keys.iter().map(|(_, r)| r.clone())).unwrap();
        let find = |key: &crate::api_key::MintedKey| {
            store.lookup_now(&key.digest()).unwrap().unwrap().unwrap()
        };
        let held: Vec<_> = keys.iter().map(|(k, _)| find(k)).collect();
        let mut copies: Vec<Arc<ApiKeyRecord>> = Vec::new();
        let rounds = 2 * LOOKUPS_PER_COPY as usize / keys.len();
        for _ in 0..rounds {
            for ((key, record), held) in keys.iter().zip(&held) {
                let found = find(key);
                assert_eq!(*found, *record);
                if !Arc::ptr_eq(&found, held) && !copies.iter().any(|c| Arc::ptr_eq(c, &found)) {
                    copies.push(found);
                }
            }
        }
        let lookups = rounds * keys.len() + keys.len();
        assert!(!copies.is_empty(), "the first held record is copied");
        assert!(
            copies.len() <= lookups / LOOKUPS_PER_COPY as usize + 1,
            "{} copies in {lookups} lookups",
            copies.len()
        );
    }
}
