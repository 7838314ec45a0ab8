//! An in-process cache in front of Redis, kept coherent by pub/sub.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt as _;
use redis::aio::PubSub;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::memory::MemorySessionVersionCache;
use super::redis::RedisSessionVersionCache;
use super::{Generation, Lookup, SessionVersionCache, Stored};
use crate::store::StoreError;

/// The generation reported for an in-process hit: a hit needs no `set`, and
/// Redis never reaches this generation, so a `set` with it is refused.
const LOCAL_HIT: Generation = Generation(u64::MAX);

const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Session versions cached in this process first and in Redis second.
///
/// Reads hit the in-process cache when they can and Redis otherwise.
/// Every process subscribes to the Redis invalidation channel; an
/// `invalidate` anywhere deletes the Redis copy and every process drops its
/// in-process copy as the message arrives. While the subscription is down,
/// invalidations could be missed, so the in-process copies are dropped and
/// bypassed until it is back.
///
/// Without pub/sub delivery a stale copy lives at most the in-process TTL:
/// keep it short (a few seconds); the Redis TTL bounds the rest.
///
/// ```no_run
/// use std::time::Duration;
/// use keystile_core::session_version::{
///     MemorySessionVersionCache, RedisSessionVersionCache, TieredSessionVersionCache,
/// };
///
/// # async fn run() -> Result<(), keystile_core::store::StoreError> {
/// let shared = RedisSessionVersionCache::connect("redis://127.0.0.1:6379").await?;
/// let local = MemorySessionVersionCache::new().ttl(Duration::from_secs(5));
/// let cache = TieredSessionVersionCache::connect(shared, local).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct TieredSessionVersionCache {
    shared: Arc<Shared>,
}

struct Shared {
    memory: Arc<MemorySessionVersionCache>,
    redis: RedisSessionVersionCache,
    subscribed: Arc<AtomicBool>,
    applied: watch::Receiver<u64>,
    listener: JoinHandle<()>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

impl TieredSessionVersionCache {
    /// Puts `memory` in front of `redis` and subscribes to the invalidation
    /// channel. Returns once Redis confirmed the subscription, so no
    /// invalidation published afterwards is missed.
    pub async fn connect(
        redis: RedisSessionVersionCache,
        memory: MemorySessionVersionCache,
    ) -> Result<Self, StoreError> {
        let pubsub = redis.subscribe().await?;
        let memory = Arc::new(memory);
        let subscribed = Arc::new(AtomicBool::new(true));
        let (applied_tx, applied) = watch::channel(0);
        let listener = tokio::spawn(listen(
            pubsub,
            redis.clone(),
            Arc::clone(&memory),
            Arc::clone(&subscribed),
            applied_tx,
        ));
        Ok(Self {
            shared: Arc::new(Shared {
                memory,
                redis,
                subscribed,
                applied,
                listener,
            }),
        })
    }

    /// Whether the invalidation subscription is up (in-process copies are
    /// used only while it is).
    pub fn is_subscribed(&self) -> bool {
        self.shared.subscribed.load(Ordering::Acquire)
    }

    /// `local` as an answer, when it holds a version and the subscription
    /// that keeps in-process copies current is up.
    fn trusted(&self, local: &Lookup) -> Option<Lookup> {
        match (local.version, self.is_subscribed()) {
            (Some(version), true) => Some(Lookup {
                version: Some(version),
                generation: LOCAL_HIT,
            }),
            _ => None,
        }
    }

    /// A count of invalidation messages applied to the in-process cache,
    /// including this process's own. Tests and health checks can wait on it
    /// instead of sleeping.
    pub fn applied_invalidations(&self) -> watch::Receiver<u64> {
        self.shared.applied.clone()
    }

    fn memory(&self) -> &MemorySessionVersionCache {
        &self.shared.memory
    }
}

#[async_trait]
impl SessionVersionCache for TieredSessionVersionCache {
    async fn get(&self, subject: &str) -> Result<Lookup, StoreError> {
        let local = self.memory().lookup(subject);
        if let Some(hit) = self.trusted(&local) {
            return Ok(hit);
        }
        // `local.generation` was read before Redis: an invalidation message
        // applied in between makes the copy below refuse to store.
        let remote = self.shared.redis.get(subject).await?;
        if let (Some(version), true) = (remote.version, self.is_subscribed()) {
            self.memory().store(subject, version, local.generation);
        }
        Ok(remote)
    }

    async fn set(
        &self,
        subject: &str,
        version: u64,
        seen: Generation,
    ) -> Result<Stored, StoreError> {
        let local = self.memory().generation();
        let stored = self.shared.redis.set(subject, version, seen).await?;
        if stored == Stored::Yes && self.is_subscribed() {
            self.memory().store(subject, version, local);
        }
        Ok(stored)
    }

    async fn invalidate(&self, subject: &str) -> Result<(), StoreError> {
        // Redis first: a reader that copies into memory after the local drop
        // below read its generation after it, so it reads Redis after the
        // delete too.
        let result = self.shared.redis.invalidate(subject).await;
        self.memory().remove(subject);
        result
    }
}

impl fmt::Debug for TieredSessionVersionCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TieredSessionVersionCache")
            .field("memory", &self.shared.memory)
            .field("redis", &self.shared.redis)
            .field("subscribed", &self.is_subscribed())
            .finish()
    }
}

/// Applies invalidation messages; resubscribes (with backoff) when the
/// subscription drops, clearing the in-process cache around the gap.
async fn listen(
    mut pubsub: PubSub,
    redis: RedisSessionVersionCache,
    memory: Arc<MemorySessionVersionCache>,
    subscribed: Arc<AtomicBool>,
    applied: watch::Sender<u64>,
) {
    loop {
        {
            let mut messages = pubsub.on_message();
            while let Some(message) = messages.next().await {
                match std::str::from_utf8(message.get_payload_bytes()) {
                    Ok(subject) => memory.remove(subject),
                    // Cannot tell whose session died: forget everyone's.
                    Err(_) => memory.clear(),
                }
                applied.send_modify(|count| *count += 1);
            }
        }
        subscribed.store(false, Ordering::Release);
        memory.clear();
        tracing::warn!(
            target: "keystile::session_version",
            "invalidation subscription lost; bypassing the in-process cache"
        );
        let mut backoff = Duration::from_millis(100);
        pubsub = loop {
            match redis.subscribe().await {
                Ok(pubsub) => break pubsub,
                Err(_) => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        };
        // Anything copied while down was never stored (the bypass), but a
        // copy racing the flag flip is dropped here to be sure.
        memory.clear();
        subscribed.store(true, Ordering::Release);
        tracing::info!(
            target: "keystile::session_version",
            "invalidation subscription restored"
        );
    }
}
