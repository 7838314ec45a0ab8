//! [`LastUsedRecorder`]: last-used times, batched off the request path.
//!
//! Writing `last_used_at` on every request would put a database write on
//! every request's path. Instead the `ApiKeyLayer` calls
//! [`LastUsedRecorder::record`], which only updates an in-memory map (no
//! I/O, no allocation once a key has been seen), and a background task
//! writes the whole map to the store in ONE [`ApiKeyAdmin::record_use`]
//! call at most once per interval. A burst of any number of requests costs
//! at most one write per interval, and `last_used_at` lags by at most the
//! interval. Nothing is written while no key is used.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use keystile_core::api_key::{ApiKeyAdmin, LastUsedRecorder, MemoryApiKeyStore};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let store: Arc<dyn ApiKeyAdmin> = Arc::new(MemoryApiKeyStore::new());
//! // Flushes every 60 s until every clone of the recorder is dropped.
//! let recorder = LastUsedRecorder::spawn(store.clone(), Duration::from_secs(60));
//! // Hand `recorder` to `ApiKeys::last_used`; on shutdown:
//! recorder.flush().await.unwrap();
//! # }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use tokio::time::MissedTickBehavior;

use super::digest::KeyDigest;
use super::store::{ApiKeyAdmin, LastUse};
use crate::store::StoreError;

/// Default bound on keys waiting to be flushed.
pub const DEFAULT_MAX_PENDING: usize = 100_000;

const SHARDS: usize = 8;

/// Collects last-used times and writes them to a store in batches.
///
/// Cloning shares the same pending batch.
#[derive(Clone)]
pub struct LastUsedRecorder {
    shared: Arc<Shared>,
}

struct Shared {
    store: Arc<dyn ApiKeyAdmin>,
    // Sharded by digest so requests for different keys on different cores
    // rarely meet on one lock.
    shards: [Mutex<HashMap<[u8; 32], u64>>; SHARDS],
    // Atomic so that `max_pending` on any handle bounds the batch every
    // clone and the flusher share, whenever it is called.
    max_per_shard: AtomicUsize,
}

impl LastUsedRecorder {
    /// A recorder that writes to `store` when [`flush`](Self::flush)ed,
    /// keeping up to [`DEFAULT_MAX_PENDING`] keys between flushes.
    pub fn new(store: Arc<dyn ApiKeyAdmin>) -> Self {
        Self {
            shared: Arc::new(Shared {
                store,
                shards: Default::default(),
                max_per_shard: AtomicUsize::new(per_shard(DEFAULT_MAX_PENDING)),
            }),
        }
    }

    /// Keeps at most `max_pending` keys between flushes, rounded up to a
    /// multiple of the recorder's shards; uses of further keys are dropped
    /// (last-used is advisory). The bound belongs to the batch, which every
    /// clone shares: set it before handing the recorder out, then start the
    /// flusher with [`spawn_flusher`](Self::spawn_flusher).
    #[must_use]
    pub fn max_pending(self, max_pending: usize) -> Self {
        self.shared
            .max_per_shard
            .store(per_shard(max_pending), Ordering::Relaxed);
        self
    }

    /// A recorder whose background task flushes every `every` (on the tokio
    /// runtime this is called from) until every clone is dropped.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, like [`tokio::spawn`].
    pub fn spawn(store: Arc<dyn ApiKeyAdmin>, every: Duration) -> Self {
        let recorder = Self::new(store);
        recorder.spawn_flusher(every);
        recorder
    }

    /// Starts a background task flushing this recorder every `every`; it
    /// ends once every clone of the recorder is dropped (after a last
    /// flush).
    pub fn spawn_flusher(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak: Weak<Shared> = Arc::downgrade(&self.shared);
        let every = every.max(Duration::from_millis(1));
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(shared) = weak.upgrade() else {
                    return;
                };
                let recorder = LastUsedRecorder { shared };
                if let Err(error) = recorder.flush().await {
                    tracing::warn!(
                        target: "keystile::api_key",
                        %error,
                        "last-used flush failed; retrying next interval"
                    );
                }
            }
        })
    }

    /// Notes that the key with `digest` was used at `at` (Unix seconds).
    /// Cheap and synchronous: call it on the request path.
    pub fn record(&self, digest: &KeyDigest, at: u64) {
        let mut shard = self.shard(digest);
        if let Some(latest) = shard.get_mut(&digest.0) {
            *latest = (*latest).max(at);
        } else if shard.len() < self.shared.max_per_shard.load(Ordering::Relaxed) {
            shard.insert(digest.0, at);
        }
    }

    /// Keys waiting to be flushed.
    pub fn pending(&self) -> usize {
        self.shared
            .shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }

    /// Writes every pending use in one store call; returns how many keys
    /// were written (no call at all when none are pending). On failure the
    /// uses are kept for the next flush.
    pub async fn flush(&self) -> Result<usize, StoreError> {
        let mut batch = Vec::new();
        for shard in &self.shared.shards {
            let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            // drain() keeps the map's capacity, so the request path does not
            // allocate again for keys seen before.
            batch.extend(shard.drain().map(|(digest, at)| LastUse {
                digest: KeyDigest(digest),
                at,
            }));
        }
        if batch.is_empty() {
            return Ok(0);
        }
        match self.shared.store.record_use(&batch).await {
            Ok(()) => Ok(batch.len()),
            Err(error) => {
                for used in &batch {
                    self.record(&used.digest, used.at);
                }
                Err(error)
            }
        }
    }

    fn shard(&self, digest: &KeyDigest) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], u64>> {
        self.shared.shards[usize::from(digest.0[0]) % SHARDS]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// The per-shard bound for `max_pending` keys in all: rounded up, at least
/// one.
fn per_shard(max_pending: usize) -> usize {
    max_pending.div_ceil(SHARDS).max(1)
}

impl fmt::Debug for LastUsedRecorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LastUsedRecorder")
            .field("pending", &self.pending())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::testing::CountingStore;

    #[tokio::test]
    async fn a_burst_of_uses_is_one_write_with_the_latest_time() {
        let store = Arc::new(CountingStore::default());
        let recorder = LastUsedRecorder::new(store.clone());
        let (a, b) = (KeyDigest::of("a"), KeyDigest::of("b"));
        for i in 0..1000 {
            recorder.record(&a, 100 + i);
            recorder.record(&b, 50);
        }
        recorder.record(&a, 10); // late, older: ignored
        assert_eq!(recorder.pending(), 2);
        assert_eq!(recorder.flush().await.unwrap(), 2);
        assert_eq!(store.writes(), 1);
        let mut written = store.written();
        written.sort_by_key(|u| u.at);
        assert_eq!(
            written,
            [
                LastUse { digest: b, at: 50 },
                LastUse {
                    digest: a,
                    at: 1099
                }
            ]
        );
        // Nothing pending: no write at all.
        assert_eq!(recorder.flush().await.unwrap(), 0);
        assert_eq!(store.writes(), 1);
    }

    #[tokio::test]
    async fn failed_flush_keeps_uses_for_the_next_one() {
        let store = Arc::new(CountingStore::default());
        let recorder = LastUsedRecorder::new(store.clone());
        recorder.record(&KeyDigest::of("a"), 7);
        store.set_down(true);
        assert!(recorder.flush().await.is_err());
        assert_eq!(recorder.pending(), 1);
        store.set_down(false);
        assert_eq!(recorder.flush().await.unwrap(), 1);
    }

    #[tokio::test]
    async fn pending_keys_are_bounded() {
        let store = Arc::new(CountingStore::default());
        let recorder = LastUsedRecorder::new(store).max_pending(16);
        for i in 0..10_000u32 {
            recorder.record(&KeyDigest::of(&i.to_string()), 1);
        }
        assert!(recorder.pending() <= 16, "{}", recorder.pending());
    }

    #[tokio::test]
    async fn the_bound_set_through_a_clone_bounds_the_shared_batch() {
        let recorder = LastUsedRecorder::new(Arc::new(CountingStore::default()));
        let _flusher = recorder.spawn_flusher(Duration::from_secs(3600));
        let clone = recorder.clone().max_pending(16);
        for i in 0..10_000u32 {
            recorder.record(&KeyDigest::of(&i.to_string()), 1);
        }
        assert!(recorder.pending() <= 16, "{}", recorder.pending());
        assert_eq!(clone.pending(), recorder.pending());
    }

    #[tokio::test]
    async fn background_task_writes_at_most_once_per_interval() {
        let store = Arc::new(CountingStore::default());
        let every = Duration::from_millis(20);
        let started = std::time::Instant::now();
        let recorder = LastUsedRecorder::spawn(store.clone(), every);
        let digest = KeyDigest::of("a");
        // Five bursts of 1,000 uses, yielding to the flusher in between.
        for burst in 0..5u64 {
            for i in 0..1000 {
                recorder.record(&digest, burst * 1000 + i);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Wait (bounded) for the flusher to write the last burst.
        for _ in 0..500 {
            if recorder.pending() == 0 && store.writes() > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let writes = store.writes();
        let elapsed = started.elapsed();
        // Never more than one write per elapsed interval, however the
        // scheduler ran: 5,000 uses became a handful of writes.
        let bound = elapsed.as_millis() / every.as_millis() + 1;
        assert!(
            writes >= 1 && writes as u128 <= bound,
            "{writes} writes in {elapsed:?}"
        );
        let written = store.written();
        assert_eq!(written.last().map(|u| u.at), Some(4999));
        assert!(written.iter().all(|u| u.digest == digest));
    }
}
