//! # keystile
//!
//! The authentication edge for axum services. Tower layers verify what a
//! request carries — a one-time handoff link, an API key, a Bearer token, a
//! session cookie — check that the session behind it is still current, and
//! hand a verified [`Principal`](identity::Principal) to axum extractors.
//!
//! ```
//! use axum::{Router, routing::get};
//! use keystile::extract::Principal;
//!
//! async fn whoami(Principal(who): Principal) -> String {
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
//! | `testing`  | test doubles (`testing::CountingStore`) |
//!
//! No feature is on by default. In-memory backends and the hygiene layers
//! need no feature and no server.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub use keystile_core::{
    AuthMethod, Clock, CodecError, Credential, KeyError, KeyId, Keyring, ManualClock, Purpose,
    Reason, Rejection, Scopes, SharedClock, SignedCodec, SigningKey, SystemClock, Verified,
};
pub use keystile_core::{
    api_key, audience, bearer, clock, codec, dns, encoding, handoff, identity, keys, mac, one_time,
    random, rejection, replay, scopes, session, session_version, store,
};

#[cfg(feature = "testing")]
pub use keystile_core::testing;
pub use keystile_middleware::{
    access_log, cidr, client_ip, cors, csp, csp_report, ip_filter, request_id, security_headers,
};

/// Tower layers (re-exported from `keystile-middleware`).
pub mod layers {
    pub use keystile_middleware::*;
}

/// Axum extractors (re-exported from `keystile-extractors`).
pub mod extract {
    pub use keystile_extractors::*;
}

/// The hardening guide's examples, compiled and run as doc tests.
#[doc = include_str!("../docs/hardening.md")]
#[cfg(doctest)]
pub struct HardeningDoctests;

/// The README's examples, compiled and run as doc tests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
