//! Bearer tokens: the [`TokenVerifier`] trait, verified [`Claims`],
//! revocation lists, and (feature `jwt`) JWT verification and the token
//! lifecycle.
//!
//! What users rely on:
//!
//! - A [`TokenVerifier`] turns the text after `Bearer ` into [`Claims`]
//!   (subject, optional session version `sv`, scopes, expiry, issue time,
//!   issuer, audiences, token id, everything else as a JSON map) or a
//!   [`TokenError`] that maps onto the shared rejection reasons. Async
//!   closures are verifiers too.
//! - [`JwtVerifier`] (feature `jwt`): HS256 from the keyring by `kid`,
//!   RS256/ES256/EdDSA from configured public keys; issuer and audience
//!   enforced when configured; `alg: none`, algorithm confusion and
//!   unknown `kid`s refused; time from the injected clock. One verifier
//!   trusts one issuer; [`JwtIssuers`] combines several, each with its own
//!   keys.
//! - [`TokenLifecycle`] (feature `jwt`): issue an access/refresh pair,
//!   refresh exactly once (the old `jti` is burned in a
//!   [`ReplayStore`](crate::replay::ReplayStore)), revoke onto a
//!   [`RevocationList`].
//!
//! ```
//! use keystile_core::bearer::{Claims, TokenError, TokenVerifier};
//!
//! // Any async closure taking the token is a verifier.
//! let verifier = |token: String| async move {
//!     if token == "s3cr3t-service-token" {
//!         Ok(Claims { subject: "svc:cron".into(), ..Claims::default() })
//!     } else {
//!         Err(TokenError::BadSignature)
//!     }
//! };
//! fn assert_verifier(_: &impl TokenVerifier) {}
//! assert_verifier(&verifier);
//! ```

mod claims;
#[cfg(feature = "jwt")]
pub mod issuers;
#[cfg(feature = "jwt")]
pub mod jwt;
#[cfg(feature = "jwt")]
pub mod lifecycle;
#[cfg(feature = "oidc")]
#[cfg_attr(docsrs, doc(cfg(feature = "oidc")))]
pub mod oidc;
pub mod revocation;
mod verifier;

pub use claims::{BearerToken, Claims, ClaimsError};
#[cfg(feature = "jwt")]
pub use issuers::JwtIssuers;
#[cfg(feature = "jwt")]
pub use jwt::{JwtAlgorithm, JwtConfigError, JwtVerifier, JwtVerifierBuilder};
#[cfg(feature = "jwt")]
pub use lifecycle::{
    DEFAULT_ACCESS_TTL, DEFAULT_REFRESH_TTL, Grant, LifecycleConfigError, LifecycleError,
    RESERVED_CLAIMS, TokenLifecycle, TokenLifecycleBuilder, TokenPair,
};
#[cfg(feature = "oidc")]
pub use oidc::{OidcConfigError, OidcError, OidcVerifier, OidcVerifierBuilder};
#[cfg(feature = "redis")]
pub use revocation::RedisRevocationList;
pub use revocation::{DEFAULT_REVOCATION_CAPACITY, MemoryRevocationList, RevocationList};
pub use verifier::{TokenError, TokenVerifier};
