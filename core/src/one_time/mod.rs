//! Opaque one-time tokens held by the server.
//!
//! Where a signed handoff token carries its own claims, a one-time token is
//! a bare 128-bit random value the server remembers until it is used, revoked
//! or expires. What you can rely on, for every [`OneTimeStore`]:
//!
//! - **Issue** draws 16 bytes from the injected
//!   [`RandomSource`](crate::random::RandomSource) (the OS CSPRNG by default)
//!   and hands them out once as 22 characters of unpadded base64url
//!   ([`OneTimeToken`]). At most [`OneTimeConfig::max_pending`] tokens
//!   (default 1024) are pending at once; beyond that issuing fails with
//!   [`OneTimeError::LimitReached`] instead of evicting live tokens. A drawn
//!   value that is already pending is redrawn, at most
//!   [`OneTimeConfig::max_attempts`] times in all (default 16), then
//!   [`OneTimeError::CollisionsExhausted`]: with a healthy CSPRNG this never
//!   happens, with a broken one it fails loudly instead of looping.
//! - **Binding.** Every token is issued for a *binding*: bytes naming what
//!   the token is for and whom it was issued to (for example
//!   `b"email-change:user-7"`). [`OneTimeStore::consume`] takes the presented
//!   token *and* the binding the caller expects. A token presented under
//!   another binding is [`OneTimeError::Mismatch`] and **consumes nothing**:
//!   somebody who learned a token cannot burn it by presenting it in the
//!   wrong context, and the rightful holder can still use it.
//! - **Constant-time match.** The store never keeps the token itself, only
//!   `SHA-256(token)`, and looks entries up by that digest: lookup timing can
//!   only reveal bits of a digest of the attacker's own guess, never of a
//!   pending token. The binding is kept as a SHA-256 digest too and compared
//!   with [`subtle`] in constant time.
//! - **Exactly once.** Of any number of concurrent `consume` calls for one
//!   token (across every process sharing a Redis-backed store), exactly one
//!   succeeds; the others get [`OneTimeError::NotPending`].
//! - **Expiry** (default 30 s) is read from the injected
//!   [`Clock`](crate::clock::Clock). A token presented after its expiry is
//!   [`OneTimeError::Expired`] (and removed); expired tokens are pruned on
//!   every operation, so the pending set never holds dead weight. Once a
//!   token has been pruned it is simply [`OneTimeError::NotPending`]: refuse
//!   both alike, they differ only in what you tell the user.
//! - **Revoke** abandons a pending token, whatever it is bound to. It is for
//!   the side that issued the token (a cancelled flow, a logout); do not hand
//!   it to whoever presents a token without your own check.
//! - **Failures are distinct** ([`OneTimeError`]): a failing random source is
//!   [`OneTimeError::Randomness`], a failing backend
//!   [`OneTimeError::Backend`] (fail closed: never a success).
//! - `Debug` never prints a token; the token text is zeroized when dropped.
//!
//! Backends: [`MemoryOneTimeStore`] for one process, and
//! `RedisOneTimeStore` (feature `redis`) for a fleet.
//!
//! ```
//! use keystile_core::one_time::{MemoryOneTimeStore, OneTimeError, OneTimeStore};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), OneTimeError> {
//! let store = MemoryOneTimeStore::default();
//! let token = store.issue(b"email-change:user-7").await?;
//! let link = format!("https://app.example/confirm?token={}", token.expose_secret());
//! # let _ = link;
//!
//! // Presented by another user: refused, and the token stays usable.
//! assert!(matches!(
//!     store.consume(token.expose_secret(), b"email-change:user-8").await,
//!     Err(OneTimeError::Mismatch)
//! ));
//! // The rightful user consumes it, once.
//! store.consume(token.expose_secret(), b"email-change:user-7").await?;
//! assert!(matches!(
//!     store.consume(token.expose_secret(), b"email-change:user-7").await,
//!     Err(OneTimeError::NotPending)
//! ));
//! # Ok(())
//! # }
//! ```

mod config;
mod memory;
#[cfg(feature = "redis")]
mod redis;
mod token;

use async_trait::async_trait;

use crate::random::RandomError;
use crate::rejection::Reason;
use crate::store::StoreError;

pub use config::{DEFAULT_MAX_ATTEMPTS, DEFAULT_MAX_PENDING, DEFAULT_TTL, MAX_TTL, OneTimeConfig};
pub use memory::MemoryOneTimeStore;
#[cfg(feature = "redis")]
pub use redis::{DEFAULT_COMMAND_TIMEOUT, DEFAULT_PREFIX, KeyPrefixError, RedisOneTimeStore};
pub use token::{OneTimeToken, TOKEN_BYTES, TOKEN_LEN};

/// Issues and consumes opaque one-time tokens.
///
/// Implementations keep the guarantees listed in the [module docs](self):
/// bounded pending count, expiry from the injected clock, pruning on every
/// call, consume-once with a constant-time binding match, and a distinct
/// error per failure. The trait is object safe: share a store as
/// `Arc<dyn OneTimeStore>`.
///
/// ```
/// use std::sync::Arc;
/// use keystile_core::one_time::{MemoryOneTimeStore, OneTimeStore};
///
/// let store: Arc<dyn OneTimeStore> = Arc::new(MemoryOneTimeStore::default());
/// # let _ = store;
/// ```
#[async_trait]
pub trait OneTimeStore: Send + Sync + 'static {
    /// Issues a new token bound to `binding`, pending until it is consumed,
    /// revoked or expires.
    async fn issue(&self, binding: &[u8]) -> Result<OneTimeToken, OneTimeError>;

    /// Consumes `token` if it is pending and was issued for `binding`.
    ///
    /// `Ok(())` happens at most once per token. A wrong binding is
    /// [`OneTimeError::Mismatch`] and leaves the token pending.
    async fn consume(&self, token: &str, binding: &[u8]) -> Result<(), OneTimeError>;

    /// Abandons a pending token, whatever its binding.
    async fn revoke(&self, token: &str) -> Result<(), OneTimeError>;

    /// How many tokens are pending, after pruning expired ones.
    async fn pending(&self) -> Result<usize, OneTimeError>;
}

/// Why a one-time token operation failed: one variant per reason a caller
/// may act on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OneTimeError {
    /// As many tokens as allowed are pending; none was issued.
    #[error("{limit} one-time tokens are already pending")]
    LimitReached {
        /// The configured maximum of pending tokens.
        limit: usize,
    },
    /// Every value drawn collided with a pending token; none was issued.
    /// With a healthy random source this does not happen.
    #[error("no free one-time token after {attempts} attempts")]
    CollisionsExhausted {
        /// How many values were drawn.
        attempts: u32,
    },
    /// The token is pending but was issued for another binding. Nothing was
    /// consumed.
    #[error("one-time token presented for another binding")]
    Mismatch,
    /// The token expired before it was presented. It is now removed.
    #[error("one-time token expired")]
    Expired,
    /// No such token is pending: never issued, already consumed, revoked,
    /// or expired and pruned.
    #[error("one-time token is not pending")]
    NotPending,
    /// The presented text is not a token: wrong length or not canonical
    /// unpadded base64url.
    #[error("malformed one-time token")]
    Malformed,
    /// The random source failed; no token was issued.
    #[error("one-time token could not be drawn")]
    Randomness(#[source] RandomError),
    /// The backend failed or timed out. Treat as "not consumed" (fail
    /// closed).
    #[error("one-time token store unavailable")]
    Backend(#[source] StoreError),
}

impl OneTimeError {
    /// The rejection class to report when this error ends a request: a
    /// failed backend, random source or full store is
    /// [`Reason::BackendUnavailable`] (503), a used token
    /// [`Reason::AlreadyUsed`], and so on.
    pub fn reason(&self) -> Reason {
        match self {
            Self::LimitReached { .. }
            | Self::CollisionsExhausted { .. }
            | Self::Randomness(_)
            | Self::Backend(_) => Reason::BackendUnavailable,
            Self::Mismatch => Reason::InvalidCredentials,
            Self::Expired => Reason::Expired,
            // A never-issued token and a used one look the same to the
            // store; both are refused as "already used" so a guesser learns
            // nothing from the distinction.
            Self::NotPending => Reason::AlreadyUsed,
            Self::Malformed => Reason::Malformed,
        }
    }
}

impl From<StoreError> for OneTimeError {
    fn from(error: StoreError) -> Self {
        Self::Backend(error)
    }
}

impl From<RandomError> for OneTimeError {
    fn from(error: RandomError) -> Self {
        Self::Randomness(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_has_its_reason_class() {
        assert_eq!(
            OneTimeError::LimitReached { limit: 1 }.reason(),
            Reason::BackendUnavailable
        );
        assert_eq!(
            OneTimeError::Backend(StoreError::Timeout).reason(),
            Reason::BackendUnavailable
        );
        assert_eq!(OneTimeError::Mismatch.reason(), Reason::InvalidCredentials);
        assert_eq!(OneTimeError::Expired.reason(), Reason::Expired);
        assert_eq!(OneTimeError::NotPending.reason(), Reason::AlreadyUsed);
        assert_eq!(OneTimeError::Malformed.reason(), Reason::Malformed);
    }
}
