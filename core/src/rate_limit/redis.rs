//! [`RedisLimiter`]: GCRA on Redis, one budget for every instance.

use std::fmt;
use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use redis::Script;
use redis::aio::ConnectionManager;

use super::{Backoff, Decision, FailureLog, Limit, Limiter, decision};
use crate::replay::DEFAULT_REDIS_TIMEOUT;
use crate::store::StoreError;
use crate::store::redis::bounded;

/// The key prefix [`RedisLimiter`] uses unless told otherwise.
pub const DEFAULT_REDIS_RATE_LIMIT_PREFIX: &str = "keystile:rate:";

/// GCRA for one key, in microseconds on Redis's own clock (`TIME`), so
/// the instances' clocks do not matter and every instance shares one
/// budget; microseconds, so an interval that is not a whole number of
/// milliseconds is kept exactly. The key holds the theoretical arrival time
/// (when the budget is next full) and expires then. Returns `{allowed,
/// used}`: whether the request was counted, and how far (µs) the budget is
/// from full after it.
const GCRA: &str = r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local interval = tonumber(ARGV[1])
local window = interval * tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then
  tat = now
end
local next_tat = tat + interval
if next_tat - now <= window then
  redis.call('SET', KEYS[1], string.format('%.0f', next_tat), 'PX', math.ceil((next_tat - now) / 1000))
  return {1, next_tat - now}
end
return {0, tat - now}
";

/// The script, hashed once; `invoke_async` sends `EVALSHA` and loads the
/// script when Redis answers `NOSCRIPT` (a restart, `SCRIPT FLUSH`).
static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(GCRA));

/// GCRA on Redis: every instance using the same Redis, prefix and limit
/// shares one budget per key, decided atomically by one Lua script on
/// Redis's clock. Each call is bounded by a timeout (default 2 s); a
/// failure is an `Err`, which the layer turns into its policy's failure
/// mode.
#[derive(Clone)]
pub struct RedisLimiter {
    connection: ConnectionManager,
    limit: Limit,
    prefix: String,
    timeout: Duration,
}

impl RedisLimiter {
    /// Enforces `limit` on `connection`, under
    /// [`DEFAULT_REDIS_RATE_LIMIT_PREFIX`].
    pub fn new(connection: ConnectionManager, limit: Limit) -> Self {
        Self {
            connection,
            limit,
            prefix: DEFAULT_REDIS_RATE_LIMIT_PREFIX.to_owned(),
            timeout: DEFAULT_REDIS_TIMEOUT,
        }
    }

    /// Keeps the keys under `prefix`: give each policy its own.
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Bounds each call by `timeout`.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

#[async_trait]
impl Limiter for RedisLimiter {
    fn limit(&self) -> Limit {
        self.limit
    }

    async fn check(&self, key: &str) -> Result<Decision, StoreError> {
        let interval = u64::try_from(self.limit.interval().as_micros()).unwrap_or(u64::MAX);
        let mut invocation = SCRIPT.prepare_invoke();
        invocation
            .key(format!("{}{key}", self.prefix))
            .arg(interval)
            .arg(self.limit.requests());
        let mut connection = self.connection.clone();
        let (allowed, used_us): (u8, u64) =
            bounded(self.timeout, invocation.invoke_async(&mut connection)).await?;
        Ok(decision(self.limit, allowed == 1, used_us))
    }
}

impl fmt::Debug for RedisLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisLimiter")
            .field("limit", &self.limit)
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The key prefix [`RedisFailureLog`] uses unless told otherwise.
pub const DEFAULT_REDIS_FAILURE_PREFIX: &str = "keystile:failures:";

/// Counts one failure of a key on Redis's clock and blocks it: the hash
/// holds the count, the time of the first counted failure and the end of
/// the block. `ARGV[1]` is the window; `ARGV[2..]` the block for the 1st,
/// 2nd, … failure, the last one standing for every later failure (the
/// delays come from [`Backoff`], so the pricing is decided in one place).
/// Returns the block in milliseconds.
const FAILED: &str = r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local window = tonumber(ARGV[1])
local count = tonumber(redis.call('HGET', KEYS[1], 'count')) or 0
local first = tonumber(redis.call('HGET', KEYS[1], 'first')) or now
if count == 0 or now - first > window then
  count = 0
  first = now
end
count = count + 1
local delay = tonumber(ARGV[math.min(count + 1, #ARGV)])
redis.call('HSET', KEYS[1], 'count', count, 'first', first, 'until', now + delay)
redis.call('PEXPIRE', KEYS[1], math.max(window, delay) + 1000)
return delay
";

/// How long a key is still blocked, in milliseconds on Redis's clock.
const BLOCKED: &str = r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local blocked_until = tonumber(redis.call('HGET', KEYS[1], 'until')) or 0
return math.max(blocked_until - now, 0)
";

static FAILED_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(FAILED));
static BLOCKED_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(BLOCKED));

/// A [`FailureLog`] on Redis: every instance sees one count per key,
/// priced by one [`Backoff`] on Redis's clock. Each call is bounded by a
/// timeout (default 2 s).
#[derive(Clone)]
pub struct RedisFailureLog {
    connection: ConnectionManager,
    backoff: Backoff,
    prefix: String,
    timeout: Duration,
}

impl RedisFailureLog {
    /// Failures priced by `backoff`, on `connection`, under
    /// [`DEFAULT_REDIS_FAILURE_PREFIX`].
    pub fn new(connection: ConnectionManager, backoff: Backoff) -> Self {
        Self {
            connection,
            backoff,
            prefix: DEFAULT_REDIS_FAILURE_PREFIX.to_owned(),
            timeout: DEFAULT_REDIS_TIMEOUT,
        }
    }

    /// Keeps the keys under `prefix`.
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Bounds each call by `timeout`.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[async_trait]
impl FailureLog for RedisFailureLog {
    async fn blocked_for(&self, key: &str) -> Result<Duration, StoreError> {
        let mut invocation = BLOCKED_SCRIPT.prepare_invoke();
        invocation.key(self.key(key));
        let mut connection = self.connection.clone();
        let blocked: u64 = bounded(self.timeout, invocation.invoke_async(&mut connection)).await?;
        Ok(Duration::from_millis(blocked))
    }

    async fn failed(&self, key: &str) -> Result<Duration, StoreError> {
        let mut invocation = FAILED_SCRIPT.prepare_invoke();
        invocation
            .key(self.key(key))
            .arg(millis(self.backoff.window));
        // The block after the 1st … lock-out failure; the last stands for
        // every later one.
        for failures in 1..=self.backoff.lock_after {
            invocation.arg(millis(self.backoff.delay_after(failures)));
        }
        let mut connection = self.connection.clone();
        let blocked: u64 = bounded(self.timeout, invocation.invoke_async(&mut connection)).await?;
        Ok(Duration::from_millis(blocked))
    }

    async fn succeeded(&self, key: &str) -> Result<(), StoreError> {
        let mut command = redis::cmd("DEL");
        command.arg(self.key(key));
        let mut connection = self.connection.clone();
        let _: u64 = bounded(self.timeout, command.query_async(&mut connection)).await?;
        Ok(())
    }
}

impl fmt::Debug for RedisFailureLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisFailureLog")
            .field("backoff", &self.backoff)
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}
