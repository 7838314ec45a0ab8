//! The Redis session-version cache, shared by every process of a fleet.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, PubSub};
use redis::{Client, Script};

use super::memory::DEFAULT_TTL;
use super::{Generation, Lookup, SessionVersionCache, Stored};
use crate::store::StoreError;
use crate::store::redis as store_redis;

const DEFAULT_PREFIX: &str = "keystile:";
const DEFAULT_CHANNEL: &str = "keystile:sv:invalidate";
const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(1);

/// Generation keys must outlive any fetch in progress when they are bumped
/// (fetches are bounded to seconds); a day keeps them without leaking keys.
const GENERATION_TTL_SECS: u64 = 24 * 60 * 60;

/// Stores only if the subject was not invalidated since the caller read
/// the generation (a missing generation key reads as 0).
const SET_SCRIPT: &str = r"
local generation = redis.call('GET', KEYS[2]) or '0'
if generation ~= ARGV[2] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
return 1
";

/// Bump, delete and announce in one atomic step, so no reader can see the
/// old value after the new generation.
const INVALIDATE_SCRIPT: &str = r"
redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[1])
return redis.call('PUBLISH', ARGV[2], ARGV[3])
";

/// Session versions cached in Redis: every process sharing the Redis sees
/// the same versions and the same invalidations.
///
/// - The version of `subject` lives at `{prefix}sv:{subject}`, written with
///   `SET … EX ttl` (default 60 s, Redis's clock).
/// - `invalidate` atomically bumps `{prefix}svgen:{subject}`, deletes the
///   version and `PUBLISH`es the subject on the invalidation channel, which
///   [`TieredSessionVersionCache`](super::TieredSessionVersionCache)s
///   subscribe to so they drop their in-process copies at once.
/// - `set` stores only if the generation is still the one read before the
///   fetch, so a fetch that raced an invalidation cannot write back an old
///   version.
/// - Every command is bounded by a timeout (default 1 s); a failure or
///   timeout is a [`StoreError`] and the request fails closed.
///
/// ```no_run
/// use std::time::Duration;
/// use keystile_core::session_version::RedisSessionVersionCache;
///
/// # async fn run() -> Result<(), keystile_core::store::StoreError> {
/// let cache = RedisSessionVersionCache::builder("redis://127.0.0.1:6379")
///     .key_prefix("myapp:")
///     .channel("myapp:sv:invalidate")
///     .ttl(Duration::from_secs(60))
///     .command_timeout(Duration::from_millis(500))
///     .connect()
///     .await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisSessionVersionCache {
    connection: ConnectionManager,
    client: Client,
    key_prefix: Arc<str>,
    channel: Arc<str>,
    ttl_secs: u64,
    command_timeout: Duration,
    set_script: Script,
    invalidate_script: Script,
}

/// Configures and connects a [`RedisSessionVersionCache`].
#[derive(Clone)]
pub struct RedisSessionVersionCacheBuilder {
    url: String,
    key_prefix: String,
    channel: String,
    ttl: Duration,
    command_timeout: Duration,
}

impl RedisSessionVersionCacheBuilder {
    /// Prefix of every key (default `keystile:`).
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// The invalidation channel (default `keystile:sv:invalidate`). Every
    /// process of one deployment must use the same one.
    pub fn channel(mut self, channel: impl Into<String>) -> Self {
        self.channel = channel.into();
        self
    }

    /// How long a cached version is trusted (default 60 s; whole seconds,
    /// at least 1).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Bound on connecting and on every command (default 1 s).
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// Connects. Fails when Redis cannot be reached within the timeout.
    pub async fn connect(self) -> Result<RedisSessionVersionCache, StoreError> {
        let client = Client::open(self.url.as_str()).map_err(StoreError::backend)?;
        let connection = store_redis::connect_client(client.clone(), self.command_timeout).await?;
        Ok(RedisSessionVersionCache {
            connection,
            client,
            key_prefix: self.key_prefix.into(),
            channel: self.channel.into(),
            ttl_secs: self.ttl.as_secs().max(1),
            command_timeout: self.command_timeout,
            set_script: Script::new(SET_SCRIPT),
            invalidate_script: Script::new(INVALIDATE_SCRIPT),
        })
    }
}

impl RedisSessionVersionCache {
    /// A builder for the Redis at `url` (`redis://…` or `rediss://…`).
    pub fn builder(url: impl Into<String>) -> RedisSessionVersionCacheBuilder {
        RedisSessionVersionCacheBuilder {
            url: url.into(),
            key_prefix: DEFAULT_PREFIX.to_owned(),
            channel: DEFAULT_CHANNEL.to_owned(),
            ttl: DEFAULT_TTL,
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
        }
    }

    /// Connects to `url` with the defaults.
    pub async fn connect(url: impl Into<String>) -> Result<Self, StoreError> {
        Self::builder(url).connect().await
    }

    /// The invalidation channel.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// A new subscription to the invalidation channel, confirmed by Redis
    /// before this returns.
    pub(crate) async fn subscribe(&self) -> Result<PubSub, StoreError> {
        let timeout = self.command_timeout;
        store_redis::bounded(timeout, async {
            let mut pubsub = self.client.get_async_pubsub().await?;
            pubsub.subscribe(self.channel.as_ref()).await?;
            Ok(pubsub)
        })
        .await
    }

    fn version_key(&self, subject: &str) -> String {
        format!("{}sv:{subject}", self.key_prefix)
    }

    fn generation_key(&self, subject: &str) -> String {
        format!("{}svgen:{subject}", self.key_prefix)
    }
}

#[async_trait]
impl SessionVersionCache for RedisSessionVersionCache {
    async fn get(&self, subject: &str) -> Result<Lookup, StoreError> {
        let mut connection = self.connection.clone();
        let (version, generation): (Option<String>, Option<String>) = store_redis::bounded(
            self.command_timeout,
            redis::cmd("MGET")
                .arg(self.version_key(subject))
                .arg(self.generation_key(subject))
                .query_async(&mut connection),
        )
        .await?;
        let generation = match generation {
            None => 0,
            Some(text) => text
                .parse()
                .map_err(|_| StoreError::message("session-version generation is not a number"))?,
        };
        // A value this cache did not write is treated as absent: the fetch
        // that follows overwrites it with the truth.
        let version = version.and_then(|text| text.parse().ok());
        Ok(Lookup {
            version,
            generation: Generation(generation),
        })
    }

    async fn set(
        &self,
        subject: &str,
        version: u64,
        seen: Generation,
    ) -> Result<Stored, StoreError> {
        let mut connection = self.connection.clone();
        let stored: i64 = store_redis::bounded(
            self.command_timeout,
            self.set_script
                .key(self.version_key(subject))
                .key(self.generation_key(subject))
                .arg(version)
                .arg(seen.0)
                .arg(self.ttl_secs)
                .invoke_async(&mut connection),
        )
        .await?;
        Ok(if stored == 1 {
            Stored::Yes
        } else {
            Stored::Invalidated
        })
    }

    async fn invalidate(&self, subject: &str) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        let _receivers: i64 = store_redis::bounded(
            self.command_timeout,
            self.invalidate_script
                .key(self.version_key(subject))
                .key(self.generation_key(subject))
                .arg(GENERATION_TTL_SECS)
                .arg(self.channel.as_ref())
                .arg(subject)
                .invoke_async(&mut connection),
        )
        .await?;
        Ok(())
    }
}

impl fmt::Debug for RedisSessionVersionCache {
    // The URL is left out: it may hold a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSessionVersionCache")
            .field("key_prefix", &self.key_prefix)
            .field("channel", &self.channel)
            .field("ttl_secs", &self.ttl_secs)
            .field("command_timeout", &self.command_timeout)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for RedisSessionVersionCacheBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSessionVersionCacheBuilder")
            .field("key_prefix", &self.key_prefix)
            .field("channel", &self.channel)
            .field("ttl", &self.ttl)
            .field("command_timeout", &self.command_timeout)
            .finish_non_exhaustive()
    }
}
