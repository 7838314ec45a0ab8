//! keystile-middleware: tower layers for the authentication edge.
//!
//! Each layer verifies one kind of credential, inserts a verified
//! [`Principal`](keystile_core::Principal) into the request's extensions, and
//! answers failures through the shared [`rejection`](keystile_core::rejection)
//! conventions. Layers never turn a failure into `Service::Error`: they
//! respond, so no `HandleErrorLayer` is needed.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod api_key;
pub mod credentials;
pub mod layers_seen;
pub mod response;
pub mod scope;

pub use api_key::ApiKeyLayer;
pub use scope::RequireScopeLayer;
