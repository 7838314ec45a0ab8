//! Handoff tokens: single-use signed links that carry a login across
//! origins.
//!
//! An operator console on `example.test` cannot set a cookie for
//! `acme.example.test` on `localhost` in Chromium (it treats `localhost` as
//! a public suffix), so it sends the browser to the tenant with a token in
//! the URL instead. What users rely on:
//!
//! - A token names a subject, an optional actor (impersonation), one
//!   audience (the tenant), and a single-use `jti` of 16 bytes from the OS
//!   CSPRNG. It lives 60 s by default; lifetimes above
//!   [`MAX_HANDOFF_TTL`] (10 min) are refused at mint time.
//! - Tokens are [`SignedCodec`](crate::codec::SignedCodec) tokens under
//!   their own purpose label, [`HANDOFF_PURPOSE`]: a session cookie or any
//!   other keystile token never verifies as a handoff token.
//! - [`HandoffCodec::verify`] checks length, signature (constant time),
//!   expiry and audience; the caller then burns the `jti` in a
//!   [`ReplayStore`](crate::replay::ReplayStore), which is what makes the
//!   token single-use. `HandoffLayer` (in `keystile-middleware`) does both.
//! - [`HandoffIssuer`] builds the redirect URL from a validated
//!   [`TenantOrigin`]; [`LandingPath`] accepts only same-origin paths.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use keystile_core::handoff::{Handoff, HandoffCodec};
//! use keystile_core::keys::Keyring;
//! use keystile_core::replay::{MemoryReplayStore, Redemption, ReplayStore};
//!
//! let codec = HandoffCodec::new(Keyring::generate().unwrap());
//! let token = codec.mint(&Handoff::new("admin@acme", "acme").acting_as("operator:7")).unwrap();
//!
//! // Tenant side: verify for the tenant the request is for, then burn the jti.
//! let verified = codec.verify(&token, "acme").unwrap();
//! let replay = MemoryReplayStore::new();
//! let first = replay.redeem(&verified.claims.jti, verified.replay_until).await.unwrap();
//! let again = replay.redeem(&verified.claims.jti, verified.replay_until).await.unwrap();
//! assert_eq!((first, again), (Redemption::First, Redemption::AlreadyUsed));
//!
//! assert!(codec.verify(&token, "globex").is_err()); // another tenant
//! # }
//! ```

mod claims;
mod issuer;
mod landing;
mod token;

pub use claims::{HandoffClaims, JTI_LEN, MAX_TEXT_LEN, is_claim_text};
pub use issuer::{DEFAULT_HANDOFF_PATH, HandoffIssuer, IssueError, Scheme, TenantOrigin};
pub use landing::{LandingPath, MAX_PATH_LEN, NotSameOrigin};
pub use token::{
    DEFAULT_HANDOFF_TTL, HANDOFF_PURPOSE, Handoff, HandoffCodec, MAX_HANDOFF_TTL, MintError,
    VerifiedHandoff,
};
