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
pub mod auth_chain;
pub mod bearer;
pub mod credentials;
pub mod future;
pub mod handoff;
pub mod layers_seen;
pub mod response;
pub mod scope;
pub mod session;
pub mod session_cookie;
pub mod session_version;
pub mod tenant;

pub use api_key::ApiKeyLayer;
pub use auth_chain::AuthChainLayer;
pub use bearer::BearerLayer;
pub use handoff::HandoffLayer;
pub use scope::RequireScopeLayer;
pub use session::SessionLayer;
pub use session_cookie::SessionCookie;
pub use session_version::SessionVersionLayer;
pub use tenant::{AmbiguousHost, HostTenant, TenantResolver, request_authority};
