//! The Redis-backed one-time store: the same guarantees across processes.

use std::fmt;
use std::sync::LazyLock;
use std::time::Duration;

use ::redis::Script;
use ::redis::aio::ConnectionManager;
use async_trait::async_trait;

use super::token::{BindingDigest, Candidate, TokenDigest};
use super::{OneTimeConfig, OneTimeError, OneTimeStore, OneTimeToken};
use crate::store::StoreError;
use crate::store::redis as store_redis;

/// The key prefix used unless configured otherwise.
pub const DEFAULT_PREFIX: &str = "keystile:one-time";
/// How long one store operation may wait for Redis before failing with
/// [`StoreError::Timeout`], unless configured otherwise.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(1);

const MAX_PREFIX_LEN: usize = 64;
const VALUE_LEN: usize = 32 + 8;

// Prunes, checks the pending count and issues in one atomic step, so the
// bound holds across processes. The token key itself is a plain
// `SET NX PX`: NX makes a colliding draw fail instead of overwriting a
// pending token, PX lets Redis drop it at expiry even if nobody prunes.
// KEYS: pending set, token key. ARGV: now, expires_at, ttl, limit, value,
// member. Returns 1 issued, 0 limit reached, -1 collision.
static ISSUE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then return 0 end
if not redis.call('SET', KEYS[2], ARGV[5], 'NX', 'PX', ARGV[3]) then return -1 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[6])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return 1
",
    )
});

// KEYS: pending set, token key. ARGV: now. Returns the stored value or nil.
static PRUNE_AND_GET: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
return redis.call('GET', KEYS[2])
",
    )
});

// KEYS: pending set. ARGV: now. Returns the pending count.
static PRUNE_AND_COUNT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
return redis.call('ZCARD', KEYS[1])
",
    )
});

// Deletes the token only if it still holds the value this caller read and
// judged: of racing callers exactly one gets 1. The binding was already
// compared in constant time in Rust; this `==` compares the stored value
// with itself as read moments ago, so its timing says nothing about input.
// KEYS: pending set, token key. ARGV: value, member.
static TAKE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('DEL', KEYS[2])
  redis.call('ZREM', KEYS[1], ARGV[2])
  return 1
end
return 0
",
    )
});

/// A key prefix was refused: it must be 1-64 printable ASCII characters
/// without spaces or braces.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Redis key prefix must be 1-64 printable ASCII characters without spaces or braces")]
pub struct KeyPrefixError;

/// One-time tokens in Redis, shared by every process using the same Redis
/// and key prefix.
///
/// Guarantees are those of the [module](super): the pending bound, expiry,
/// consume-once and "a mismatch consumes nothing" hold across processes.
///
/// How, and why not a bare `GETDEL`:
///
/// - **Issue** runs one Lua script: prune the pending index (a sorted set
///   scored by expiry), refuse if it is full, `SET token-key value NX PX ttl`
///   and index the token. Counting and inserting in one step is what keeps
///   the bound across processes.
/// - **Consume** reads the entry, compares the binding in constant time in
///   Rust, and only then deletes it with a compare-and-delete script. A
///   `GETDEL` would remove the token before the binding is checked, so a
///   mismatch would consume it; comparing inside Lua would not be
///   constant-time. Of racing consumers, exactly one delete succeeds.
/// - Keys hold `SHA-256(token)`, never the token, and values hold the
///   binding's digest and the expiry: a dump of Redis reveals no usable
///   token. All keys share the hash tag `{prefix}`, so scripts stay valid on
///   a cluster.
/// - Expiry is read from the injected clock (so tests move time) and also
///   set as the key's `PX`, so Redis drops abandoned tokens on its own.
///   Processes should run NTP: clock skew between them shifts expiry and
///   pruning by the skew.
/// - Every operation is bounded by a command timeout (default 1 s); a dead
///   or unreachable Redis yields [`OneTimeError::Backend`], never a success.
///
/// ```no_run
/// use keystile_core::one_time::{OneTimeConfig, OneTimeStore, RedisOneTimeStore};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let store = RedisOneTimeStore::connect("redis://127.0.0.1:6379", OneTimeConfig::default())
///     .await?
///     .prefix("myapp:one-time")?;
/// let token = store.issue(b"invite:42").await?;
/// store.consume(token.expose_secret(), b"invite:42").await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisOneTimeStore {
    connection: ConnectionManager,
    config: OneTimeConfig,
    prefix: String,
    pending_key: String,
    command_timeout: Duration,
}

impl RedisOneTimeStore {
    /// Connects to Redis at `url` with reconnection and per-command
    /// timeouts set to [`DEFAULT_COMMAND_TIMEOUT`]. An unreachable server is
    /// an error here, not at first use.
    pub async fn connect(url: &str, config: OneTimeConfig) -> Result<Self, StoreError> {
        let connection = store_redis::connect(url, DEFAULT_COMMAND_TIMEOUT).await?;
        Ok(Self::new(connection, config))
    }

    /// A store over an existing connection, with the default prefix.
    ///
    /// Configure the connection with response and connection timeouts; the
    /// store bounds each operation by its own command timeout as well.
    pub fn new(connection: ConnectionManager, config: OneTimeConfig) -> Self {
        let mut store = Self {
            connection,
            config,
            prefix: String::new(),
            pending_key: String::new(),
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
        };
        store.set_prefix(DEFAULT_PREFIX);
        store
    }

    /// Uses `prefix` for every key (default [`DEFAULT_PREFIX`]). Stores that
    /// should share tokens must share the prefix.
    pub fn prefix(mut self, prefix: &str) -> Result<Self, KeyPrefixError> {
        let valid = !prefix.is_empty()
            && prefix.len() <= MAX_PREFIX_LEN
            && prefix
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'{' && b != b'}');
        if !valid {
            return Err(KeyPrefixError);
        }
        self.set_prefix(prefix);
        Ok(self)
    }

    /// Bounds each operation (default [`DEFAULT_COMMAND_TIMEOUT`]); past it
    /// the operation fails with [`StoreError::Timeout`].
    #[must_use]
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// The store's configuration.
    pub fn config(&self) -> &OneTimeConfig {
        &self.config
    }

    fn set_prefix(&mut self, prefix: &str) {
        self.prefix = prefix.to_owned();
        self.pending_key = format!("{{{prefix}}}:pending");
    }

    fn token_key(&self, member: &str) -> String {
        format!("{{{}}}:t:{member}", self.prefix)
    }

    fn now_ms(&self) -> u64 {
        self.config.clock.unix_millis()
    }

    /// Reads the entry for `digest`, pruning the index on the way.
    async fn read(&self, member: &str, now_ms: u64) -> Result<Option<Entry>, OneTimeError> {
        let mut connection = self.connection.clone();
        let value: Option<Vec<u8>> = store_redis::bounded(
            self.command_timeout,
            PRUNE_AND_GET
                .key(&self.pending_key)
                .key(self.token_key(member))
                .arg(now_ms)
                .invoke_async(&mut connection),
        )
        .await?;
        value.map(|v| Entry::decode(&v)).transpose()
    }

    /// Deletes the entry if it still holds `entry`; true for the one caller
    /// that deleted it.
    async fn take(&self, member: &str, entry: &Entry) -> Result<bool, OneTimeError> {
        let mut connection = self.connection.clone();
        let taken: i64 = store_redis::bounded(
            self.command_timeout,
            TAKE.key(&self.pending_key)
                .key(self.token_key(member))
                .arg(entry.encode().as_slice())
                .arg(member)
                .invoke_async(&mut connection),
        )
        .await?;
        Ok(taken == 1)
    }
}

#[async_trait]
impl OneTimeStore for RedisOneTimeStore {
    async fn issue(&self, binding: &[u8]) -> Result<OneTimeToken, OneTimeError> {
        let now_ms = self.now_ms();
        let ttl_ms = self.config.ttl_millis();
        let entry = Entry {
            binding: BindingDigest::of(binding),
            expires_at_ms: now_ms.saturating_add(ttl_ms),
        };
        let value = entry.encode();
        for _ in 0..self.config.max_attempts {
            let candidate = Candidate::draw(self.config.random.as_ref())?;
            let member = candidate.digest().to_text();
            let mut connection = self.connection.clone();
            let outcome: i64 = store_redis::bounded(
                self.command_timeout,
                ISSUE
                    .key(&self.pending_key)
                    .key(self.token_key(&member))
                    .arg(now_ms)
                    .arg(entry.expires_at_ms)
                    .arg(ttl_ms)
                    .arg(self.config.max_pending)
                    .arg(value.as_slice())
                    .arg(&member)
                    .invoke_async(&mut connection),
            )
            .await?;
            match outcome {
                1 => return Ok(candidate.into_token(entry.expires_at_ms)),
                0 => {
                    return Err(OneTimeError::LimitReached {
                        limit: self.config.max_pending,
                    });
                }
                _ => continue,
            }
        }
        Err(OneTimeError::CollisionsExhausted {
            attempts: self.config.max_attempts,
        })
    }

    async fn consume(&self, token: &str, binding: &[u8]) -> Result<(), OneTimeError> {
        let member = TokenDigest::parse(token)?.to_text();
        let expected = BindingDigest::of(binding);
        let now_ms = self.now_ms();
        let entry = self
            .read(&member, now_ms)
            .await?
            .ok_or(OneTimeError::NotPending)?;
        if entry.expires_at_ms <= now_ms {
            self.take(&member, &entry).await?;
            return Err(OneTimeError::Expired);
        }
        if !entry.binding.matches(&expected) {
            return Err(OneTimeError::Mismatch);
        }
        if self.take(&member, &entry).await? {
            Ok(())
        } else {
            Err(OneTimeError::NotPending)
        }
    }

    async fn revoke(&self, token: &str) -> Result<(), OneTimeError> {
        let member = TokenDigest::parse(token)?.to_text();
        let now_ms = self.now_ms();
        let entry = self
            .read(&member, now_ms)
            .await?
            .ok_or(OneTimeError::NotPending)?;
        let taken = self.take(&member, &entry).await?;
        if entry.expires_at_ms <= now_ms {
            Err(OneTimeError::Expired)
        } else if taken {
            Ok(())
        } else {
            Err(OneTimeError::NotPending)
        }
    }

    async fn pending(&self) -> Result<usize, OneTimeError> {
        let mut connection = self.connection.clone();
        let count: usize = store_redis::bounded(
            self.command_timeout,
            PRUNE_AND_COUNT
                .key(&self.pending_key)
                .arg(self.now_ms())
                .invoke_async(&mut connection),
        )
        .await?;
        Ok(count)
    }
}

impl fmt::Debug for RedisOneTimeStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisOneTimeStore")
            .field("prefix", &self.prefix)
            .field("config", &self.config)
            .field("command_timeout", &self.command_timeout)
            .finish_non_exhaustive()
    }
}

/// What Redis holds for a pending token.
struct Entry {
    binding: BindingDigest,
    expires_at_ms: u64,
}

impl Entry {
    fn encode(&self) -> [u8; VALUE_LEN] {
        let mut out = [0u8; VALUE_LEN];
        out[..32].copy_from_slice(self.binding.as_bytes());
        out[32..].copy_from_slice(&self.expires_at_ms.to_be_bytes());
        out
    }

    fn decode(value: &[u8]) -> Result<Self, OneTimeError> {
        let corrupt = || {
            OneTimeError::Backend(StoreError::message(
                "a one-time token entry in Redis has an unexpected format",
            ))
        };
        let (binding, expires) = value.split_first_chunk::<32>().ok_or_else(corrupt)?;
        let expires = <[u8; 8]>::try_from(expires).map_err(|_| corrupt())?;
        Ok(Self {
            binding: BindingDigest::from_bytes(*binding),
            expires_at_ms: u64::from_be_bytes(expires),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_reject_other_lengths() {
        let entry = Entry {
            binding: BindingDigest::of(b"x"),
            expires_at_ms: 1_700_000_000_123,
        };
        let decoded = Entry::decode(&entry.encode()).unwrap();
        assert!(decoded.binding.matches(&entry.binding));
        assert_eq!(decoded.expires_at_ms, entry.expires_at_ms);
        assert!(matches!(
            Entry::decode(&entry.encode()[..39]),
            Err(OneTimeError::Backend(_))
        ));
        assert!(Entry::decode(b"").is_err());
        assert!(Entry::decode(&[0u8; 41]).is_err());
    }
}
