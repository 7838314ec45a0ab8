//! keystile-core: the parts of keystile that need no web framework.
//!
//! Keys and the [`keyring`](keys::Keyring), the [`signed codec`](codec) every
//! token uses, the injectable [`clock`] and [`random`] sources, the verified
//! [`identity`](identity::Principal) every layer produces, and the
//! [`rejection`] conventions every failure follows. Most users depend on the
//! `keystile` facade instead of this crate.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod api_key;
pub mod audience;
pub mod bearer;
pub mod clock;
pub mod codec;
pub mod dns;
pub mod encoding;
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod extract;
pub mod handoff;
#[cfg(any(feature = "userinfo", feature = "oidc"))]
mod http;
pub mod identity;
pub mod keys;
pub mod layers_seen;
pub mod mac;
pub mod one_time;
pub mod random;
pub mod rate_limit;
pub mod rejection;
pub mod replay;
pub mod scopes;
pub mod session;
pub mod session_version;
pub mod signed_url;
pub mod store;
#[cfg(any(test, feature = "testing"))]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;
pub mod webhook;

pub use clock::{Clock, ManualClock, SharedClock, SystemClock};
pub use codec::{CodecError, Purpose, SignedCodec, Verified};
pub use identity::{AuthMethod, Credential, Principal};
pub use keys::{KeyError, KeyId, Keyring, SigningKey};
pub use rejection::{Reason, Rejection};
pub use scopes::Scopes;
