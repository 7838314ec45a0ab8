//! Session-version freshness: refusing tokens minted before a break-glass.
//!
//! An identity provider keeps a per-user *session version* and increments it
//! when every session of that user must die at once. Tokens carry the version
//! current when they were minted (`sv`). A [`SessionVersionValidator`] compares
//! a token's `sv` with the current version:
//!
//! 1. no `sv` → admitted, unless the validator is [strict](SessionVersionValidator::strict);
//! 2. the current version is read from a [`SessionVersionCache`]
//!    ([`MemorySessionVersionCache`] by default; Redis-backed for fleets);
//! 3. on a miss it is fetched through a [`SessionVersionFetcher`] (an HTTP
//!    userinfo endpoint, or any async closure) — concurrent misses for one
//!    subject share one fetch — and cached;
//! 4. `sv < current` → stale ([`FreshnessError::Stale`]); otherwise current;
//! 5. a fetch or cache failure is an error, never an admission: callers
//!    answer 503 (fail closed).
//!
//! [`SessionVersionValidator::invalidate`] drops a subject's cached version at
//! once; the Redis cache publishes the invalidation to every process.
//!
//! What users rely on: a stale token is never admitted once the cache no
//! longer holds the old version (at most the cache TTL after the bump, at
//! once after `invalidate`); a fetch that began before an invalidation never
//! writes its older answer back over it (see [`Generation`]).
//!
//! ```
//! use keystile_core::session_version::{
//!     FetchError, FetchRequest, Freshness, FreshnessError, MemorySessionVersionCache,
//!     SessionVersionValidator,
//! };
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // The source of truth: here a closure; in production often the userinfo
//! // endpoint of the identity provider (`UserinfoFetcher`, feature `userinfo`).
//! let fetch = |request: FetchRequest<'_>| {
//!     let version = if request.subject == "alice" { 3 } else { 1 };
//!     async move { Ok::<u64, FetchError>(version) }
//! };
//! let validator = SessionVersionValidator::new(MemorySessionVersionCache::new(), fetch);
//!
//! let alice = FetchRequest { subject: "alice", bearer: None };
//! assert_eq!(validator.check(alice, Some(3)).await.unwrap(), Freshness::Current);
//! assert!(matches!(
//!     validator.check(alice, Some(2)).await,
//!     Err(FreshnessError::Stale { token: 2, current: 3 })
//! ));
//! // Legacy and machine tokens carry no version: admitted unless strict.
//! assert_eq!(validator.check(alice, None).await.unwrap(), Freshness::Unversioned);
//! # }
//! ```

use async_trait::async_trait;

use crate::store::StoreError;

mod fetcher;
mod memory;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "redis")]
mod tiered;
#[cfg(feature = "userinfo")]
mod userinfo;
mod validator;

#[cfg(feature = "redis")]
pub use self::redis::{RedisSessionVersionCache, RedisSessionVersionCacheBuilder};
pub use fetcher::{FetchError, FetchRequest, SessionVersionFetcher};
pub use memory::{DEFAULT_SESSION_VERSION_CAPACITY, MemorySessionVersionCache};
#[cfg(feature = "redis")]
pub use tiered::TieredSessionVersionCache;
#[cfg(feature = "userinfo")]
pub use userinfo::{UserinfoConfigError, UserinfoFetcher};
pub use validator::{Freshness, FreshnessError, SessionVersionValidator};

/// A cache's invalidation counter, read together with a cached version.
///
/// Every `invalidate` moves the counter. A caller that misses the cache,
/// fetches the current version and then calls
/// [`set`](SessionVersionCache::set) passes back the generation it read
/// *before* fetching; the cache stores the value only if no invalidation
/// happened in between. That is how a slow fetch that started before a
/// break-glass is kept from writing the old version back after it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Generation(pub u64);

/// What a cache read found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lookup {
    /// The cached current version, if any (expired entries are misses).
    pub version: Option<u64>,
    /// The invalidation generation at the time of the read.
    pub generation: Generation,
}

impl Lookup {
    /// A miss at `generation`.
    pub fn miss(generation: Generation) -> Self {
        Self {
            version: None,
            generation,
        }
    }
}

/// The outcome of [`SessionVersionCache::set`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stored {
    /// The version is cached.
    Yes,
    /// An invalidation happened since the generation was read: the value was
    /// dropped, because it may predate the invalidation.
    Invalidated,
}

/// Where current session versions are cached.
///
/// Backend failures are `Err` (callers fail closed with 503); a miss is
/// `Ok` with `version: None`. Implementations must honour the generation
/// contract of [`Generation`]: `set` with a generation read before an
/// `invalidate` of the same subject must not store.
///
/// Implementing it for another backend:
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::Mutex;
/// use async_trait::async_trait;
/// use keystile_core::session_version::{Generation, Lookup, SessionVersionCache, Stored};
/// use keystile_core::store::StoreError;
///
/// /// No TTL, no bound: only to show the contract.
/// #[derive(Default)]
/// struct Naive {
///     state: Mutex<(u64, HashMap<String, u64>)>,
/// }
///
/// #[async_trait]
/// impl SessionVersionCache for Naive {
///     async fn get(&self, subject: &str) -> Result<Lookup, StoreError> {
///         let state = self.state.lock().map_err(|_| StoreError::message("poisoned"))?;
///         Ok(Lookup { version: state.1.get(subject).copied(), generation: Generation(state.0) })
///     }
///     async fn set(&self, subject: &str, version: u64, seen: Generation) -> Result<Stored, StoreError> {
///         let mut state = self.state.lock().map_err(|_| StoreError::message("poisoned"))?;
///         if state.0 != seen.0 {
///             return Ok(Stored::Invalidated);
///         }
///         state.1.insert(subject.to_owned(), version);
///         Ok(Stored::Yes)
///     }
///     async fn invalidate(&self, subject: &str) -> Result<(), StoreError> {
///         let mut state = self.state.lock().map_err(|_| StoreError::message("poisoned"))?;
///         state.0 += 1;
///         state.1.remove(subject);
///         Ok(())
///     }
/// }
/// ```
#[async_trait]
pub trait SessionVersionCache: Send + Sync + 'static {
    /// The cached current version of `subject` and the generation it was
    /// read at.
    async fn get(&self, subject: &str) -> Result<Lookup, StoreError>;

    /// Caches `version` for `subject`, unless `subject` was invalidated after
    /// the read that returned `seen`.
    async fn set(
        &self,
        subject: &str,
        version: u64,
        seen: Generation,
    ) -> Result<Stored, StoreError>;

    /// Drops the cached version of `subject` at once (in every process that
    /// shares the cache, for shared backends).
    async fn invalidate(&self, subject: &str) -> Result<(), StoreError>;
}
