//! keystile-middleware: tower layers for the authentication edge.
//!
//! Each layer verifies one kind of credential, inserts a verified
//! [`Principal`](keystile_core::Principal) into the request's extensions, and
//! answers failures through the shared [`rejection`](keystile_core::rejection)
//! conventions. Layers never turn a failure into `Service::Error`: they
//! respond, so no `HandleErrorLayer` is needed.
//!
//! Around them sit the hygiene layers a production service stacks
//! (`security_headers`, `csp`, `csp_report`, `cors`, `request_id`,
//! `access_log`, `ip_filter`), composed with tower-http where it has the
//! piece.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod access_log;
pub mod api_key;
pub mod auth;
pub mod bearer;
pub mod cidr;
pub mod client_ip;
pub mod cors;
pub mod credentials;
pub mod csp;
pub mod csp_report;
pub mod csrf;
pub mod handoff;
pub mod ip_filter;
pub mod rate_limit;
pub mod request_id;
pub mod scope;
pub mod security_headers;
pub mod session;
pub mod session_cookie;
pub mod session_version;
pub mod signed_url;
pub mod tenant;
pub mod webhook;

pub use api_key::{ApiKeyLayer, ApiKeys};
pub use auth::{AuthLayer, Authenticator, Outcome, Realm};
pub use bearer::{BearerLayer, BearerTokens};
pub use handoff::HandoffLayer;
pub use ip_filter::IpFilterLayer;
pub use request_id::RequestIdLayer;
pub use scope::{InvalidScope, RequireScopeLayer};
pub use security_headers::SecurityHeadersLayer;
pub use session::{SessionCookies, SessionLayer};
pub use session_cookie::SessionCookie;
pub use session_version::SessionVersionLayer;
pub use tenant::{AmbiguousHost, HostTenant, TenantResolver, request_authority};
