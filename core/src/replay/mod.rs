//! Replay protection: remembering which single-use ids were spent.
//!
//! A [`ReplayStore`] records an id (a handoff token's or refresh token's
//! `jti`) until the token it belongs to expires. Recording is atomic: of any
//! number of concurrent calls for one id, across every process sharing the
//! store, exactly one gets [`Redemption::First`].

use async_trait::async_trait;

use crate::store::StoreError;

/// The outcome of recording a single-use id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redemption {
    /// This call recorded the id: the token may be used.
    First,
    /// The id was already recorded: the token was used before.
    AlreadyUsed,
}

/// Records single-use ids until they expire.
#[async_trait]
pub trait ReplayStore: Send + Sync + 'static {
    /// Atomically records `id` until `expires_at` (Unix seconds). Errors are
    /// backend failures only; callers must treat them as "not redeemed".
    async fn redeem(&self, id: &str, expires_at: u64) -> Result<Redemption, StoreError>;
}
