//! # keystile
//!
//! The authentication edge for axum services. Tower layers verify what a
//! request carries — a one-time handoff link, an API key, a Bearer token, a
//! session cookie — check that the session behind it is still current, and
//! hand a verified [`Principal`] to axum extractors.
//!
//! ```
//! use axum::{Router, routing::get};
//! use keystile::auth::Principal;
//!
//! async fn whoami(who: Principal) -> String {
//!     format!("{} ({})", who.subject, who.method())
//! }
//!
//! let app: Router = Router::new().route("/whoami", get(whoami));
//! // .route_layer(...) one of keystile's auth layers here.
//! ```
//!
//! ## Crate features
//!
//! | feature    | adds |
//! |------------|------|
//! | `cli`      | the `keystile` command-line tool |
//! | `redis`    | Redis backends for fleets |
//! | `postgres` | the PostgreSQL API-key store |
//! | `jwt`      | JWT bearer verification and token lifecycle |
//! | `userinfo` | the HTTP userinfo session-version fetcher |
//! | `oidc`     | OpenID Connect issuers: discovery, JWK Sets cached and rotated |
//! | `testing`  | test doubles (`testing::CountingStore`) |
//!
//! No feature is on by default. In-memory backends and the hygiene layers
//! need no feature and no server.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub use keystile_core::{
    AuthMethod, Clock, CodecError, Credential, KeyError, KeyId, Keyring, ManualClock, Principal,
    Purpose, Reason, Rejection, Scopes, SharedClock, SignedCodec, SigningKey, SystemClock,
    Verified,
};
pub use keystile_core::{
    audience, clock, codec, dns, encoding, identity, keys, mac, one_time, random, rejection,
    replay, scopes, store,
};

#[cfg(feature = "testing")]
pub use keystile_core::testing;
pub use keystile_middleware::{
    access_log, cidr, client_ip, cors, csp, csp_report, csrf, ip_filter, request_id,
    security_headers, tenant,
};

/// The authentication model: [`Authenticator`](auth::Authenticator), the
/// one [`AuthLayer`](auth::AuthLayer) that runs any of them (or a chain),
/// the realm, scopes, and the verified [`Principal`] as an extractor.
///
/// ```
/// use axum::{Router, routing::get};
/// use keystile::auth::{Principal, RequireScopeLayer};
///
/// async fn whoami(who: Principal) -> String {
///     format!("{} via {}", who.subject, who.method())
/// }
/// let app: Router = Router::new()
///     .route("/whoami", get(whoami))
///     .route_layer(RequireScopeLayer::new("reports:read").expect("a valid scope"));
/// // .route_layer(an AuthLayer) runs first and inserts the Principal.
/// ```
pub mod auth {
    pub use keystile_core::identity::{AuthMethod, Credential, Principal};
    pub use keystile_core::layers_seen::LayersSeen;
    pub use keystile_extractors::scope;
    pub use keystile_extractors::scoped::{RequiredScope, Scoped};
    pub use keystile_middleware::auth::*;
    pub use keystile_middleware::credentials;
    pub use keystile_middleware::scope::{InvalidScope, RequireScope, RequireScopeLayer};
}

/// API keys: minting, stores, [`ApiKeyLayer`](api_key::ApiKeyLayer) and the
/// [`ApiKey`](api_key::ApiKey) extractor.
///
/// ```
/// use std::sync::Arc;
/// use axum::{Router, routing::get};
/// use keystile::api_key::{ApiKey, ApiKeyLayer, ApiKeys, MemoryApiKeyStore};
///
/// async fn whoami(key: ApiKey) -> String {
///     key.owner.to_string()
/// }
/// let store = Arc::new(MemoryApiKeyStore::new());
/// let app: Router = Router::new()
///     .route("/whoami", get(whoami))
///     .route_layer(ApiKeyLayer::new(ApiKeys::new(store)));
/// ```
pub mod api_key {
    pub use keystile_core::api_key::*;
    pub use keystile_extractors::api_key::ApiKey;
    pub use keystile_middleware::api_key::{ApiKeyLayer, ApiKeys};
}

/// Bearer tokens: JWT verification, the token lifecycle,
/// [`BearerLayer`](bearer::BearerLayer), and the [`Claims`](bearer::Claims)
/// and [`Bearer`](bearer::Bearer) extractors.
///
/// ```
/// use std::sync::Arc;
/// use axum::{Router, routing::get};
/// use keystile::bearer::{BearerLayer, BearerTokens, Claims, TokenError};
///
/// async fn me(claims: Claims) -> String {
///     claims.subject
/// }
/// let verifier = |token: String| async move {
///     match token.as_str() {
///         "t0ken" => Ok(Claims { subject: "alice".into(), ..Claims::default() }),
///         _ => Err(TokenError::BadSignature),
///     }
/// };
/// let app: Router = Router::new()
///     .route("/me", get(me))
///     .route_layer(BearerLayer::new(BearerTokens::new(Arc::new(verifier))));
/// ```
pub mod bearer {
    pub use keystile_core::bearer::*;
    pub use keystile_extractors::bearer::Bearer;
    pub use keystile_middleware::bearer::{BearerLayer, BearerTokens};
}

/// Session cookies: the codec, [`SessionLayer`](session::SessionLayer), the
/// cookie's name and attributes, and the [`Session`](session::Session)
/// extractor.
///
/// ```
/// use axum::{Router, routing::get};
/// use keystile::Keyring;
/// use keystile::session::{Session, SessionCookie, SessionCookies, SessionLayer};
/// use keystile::tenant::HostTenant;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// async fn admin(session: Session) -> String {
///     format!("{} of {}", session.subject, session.tenant)
/// }
/// let cookies = SessionCookies::new(Keyring::generate()?, HostTenant::under("example.test")?)
///     .cookie(SessionCookie::https());
/// let app: Router = Router::new()
///     .route("/admin/", get(admin))
///     .route_layer(SessionLayer::new(cookies));
/// # Ok(()) }
/// ```
pub mod session {
    pub use keystile_core::session::*;
    pub use keystile_extractors::session::Session;
    pub use keystile_middleware::session::{SessionCookies, SessionLayer};
    pub use keystile_middleware::session_cookie::*;
}

/// Handoff links: minting ([`HandoffIssuer`](handoff::HandoffIssuer)) and
/// redeeming ([`HandoffLayer`](handoff::HandoffLayer)).
///
/// ```
/// use axum::Router;
/// use keystile::Keyring;
/// use keystile::handoff::HandoffLayer;
/// use keystile::replay::MemoryReplayStore;
/// use keystile::tenant::HostTenant;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let redeem = HandoffLayer::new(
///     Keyring::generate()?,
///     MemoryReplayStore::new(),
///     HostTenant::under("localhost")?,
/// );
/// let app: Router = Router::new().layer(redeem);
/// # Ok(()) }
/// ```
pub mod handoff {
    pub use keystile_core::handoff::*;
    pub use keystile_middleware::handoff::*;
}

/// Signed URLs: [`UrlSigner`](signed_url::UrlSigner) signs a link for a
/// purpose and a lifetime, [`SignedUrlLayer`](signed_url::SignedUrlLayer)
/// admits only requests that carry one, optionally once (magic links).
///
/// ```
/// use std::time::Duration;
/// use keystile::codec::Purpose;
/// use keystile::keys::Keyring;
/// use keystile::signed_url::UrlSigner;
///
/// let signer = UrlSigner::new(Keyring::generate().unwrap(), Purpose::new("magic-link"));
/// let link = signer.sign("https://app.example.test/magic?user=alice", Duration::from_secs(900)).unwrap();
/// assert!(signer.verify(&link).is_ok());
/// ```
pub mod signed_url {
    pub use keystile_core::signed_url::*;
    pub use keystile_middleware::signed_url::*;
}

/// Inbound webhook signatures (GitHub, Slack, Stripe, Standard Webhooks, a
/// generic HMAC header) and [`WebhookLayer`](webhook::WebhookLayer), which
/// verifies the raw body and refuses replays.
///
/// ```
/// use axum::{Router, routing::post};
/// use keystile::webhook::{Stripe, WebhookLayer};
///
/// let app: Router = Router::new()
///     .route("/hooks/stripe", post(|| async { "ok" }))
///     .route_layer(WebhookLayer::new(Stripe::new([b"whsec_test".as_slice()])));
/// ```
pub mod webhook {
    pub use keystile_core::webhook::*;
    pub use keystile_middleware::webhook::*;
}

/// Rate limits: [`RateLimitLayer`](rate_limit::RateLimitLayer) with
/// policies keyed by client address, principal, header, route or a
/// function, over GCRA in memory ([`MemoryLimiter`](rate_limit::MemoryLimiter))
/// or on Redis (`RedisLimiter`, feature `redis`).
///
/// ```
/// use std::time::Duration;
/// use axum::{Router, routing::get};
/// use keystile::client_ip::ClientIp;
/// use keystile::rate_limit::{KeyBy, Limit, MemoryLimiter, Policy, RateLimitLayer};
///
/// let limit = Limit::per(5, Duration::from_secs(10)).expect("a valid limit");
/// let app: Router = Router::new()
///     .route("/limited", get(|| async { "ok" }))
///     .route_layer(RateLimitLayer::new(Policy::traffic(
///         "per-ip",
///         MemoryLimiter::new(limit),
///         KeyBy::ClientIp(ClientIp::new()),
///     )));
/// ```
pub mod rate_limit {
    pub use keystile_core::rate_limit::*;
    pub use keystile_middleware::rate_limit::*;
}

/// Session-version freshness (break-glass revocation): the validator, its
/// caches and fetchers, and [`SessionVersionLayer`](session_version::SessionVersionLayer).
///
/// ```
/// use axum::{Router, routing::get};
/// use keystile::session_version::{
///     FetchError, FetchRequest, MemorySessionVersionCache, SessionVersionLayer,
///     SessionVersionValidator,
/// };
///
/// let current = |_: FetchRequest<'_>| async { Ok::<u64, FetchError>(1) };
/// let validator = SessionVersionValidator::new(MemorySessionVersionCache::new(), current);
/// let app: Router = Router::new()
///     .route("/api/me", get(|| async { "current" }))
///     .route_layer(SessionVersionLayer::new(validator));
/// // .route_layer(BearerLayer or SessionLayer) runs first.
/// ```
pub mod session_version {
    pub use keystile_core::session_version::*;
    pub use keystile_middleware::session_version::*;
}

#[cfg(doctest)]
mod doctests {
    /// The hardening guide's examples, compiled and run as doc tests.
    #[doc = include_str!("../docs/hardening.md")]
    pub struct HardeningDoctests;

    /// The architecture overview's examples, compiled and run as doc tests.
    #[doc = include_str!("../docs/architecture.md")]
    pub struct ArchitectureDoctests;

    /// The custom authenticator guide, compiled and run as doc tests.
    #[doc = include_str!("../docs/custom-authenticator.md")]
    pub struct CustomAuthenticatorDoctests;

    /// The OpenID Connect guide's examples, compiled and run as doc tests.
    #[doc = include_str!("../docs/oidc.md")]
    pub struct OidcDoctests;

    /// The CSRF guide's examples, compiled and run as doc tests.
    #[doc = include_str!("../docs/csrf.md")]
    pub struct CsrfDoctests;

    /// The signed URLs guide's examples, compiled and run as doc tests.
    #[doc = include_str!("../docs/signed-urls.md")]
    pub struct SignedUrlsDoctests;

    /// The webhooks guide's examples, compiled and run as doc tests.
    #[doc = include_str!("../docs/webhooks.md")]
    pub struct WebhooksDoctests;

    /// The rate-limit guide's examples, compiled and run as doc tests.
    #[doc = include_str!("../docs/rate-limits.md")]
    pub struct RateLimitDoctests;

    /// The README's examples, compiled and run as doc tests.
    #[doc = include_str!("../README.md")]
    pub struct ReadmeDoctests;
}
