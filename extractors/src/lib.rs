//! keystile-extractors: axum extractors for the credentials keystile layers
//! verify. The verified `Principal` and a bearer token's `Claims` are
//! extractors themselves (keystile-core, feature `axum`).
//!
//! Every extractor works as `Option<_>` too. Using one on a route without the
//! layer it needs is a 500 whose detail names that layer: a programming error,
//! never a silent 401.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod api_key;
pub mod bearer;
pub mod scoped;
pub mod session;

pub use api_key::ApiKey;
pub use bearer::Bearer;
pub use scoped::{RequiredScope, Scoped};
pub use session::Session;
