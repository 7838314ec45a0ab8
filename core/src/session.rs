//! Session cookies: the claims a handoff session carries.
//!
//! A session cookie is a [`SignedCodec`](crate::codec::SignedCodec) token
//! under its own purpose label ([`SESSION_PURPOSE`]), so a handoff token can
//! never be replayed as a session cookie or the reverse.

use serde::{Deserialize, Serialize};

use crate::codec::Purpose;

/// The purpose label of session cookies.
pub const SESSION_PURPOSE: Purpose = Purpose::new("keystile/session");

/// What a session cookie carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionClaims {
    /// Who the session is for.
    #[serde(rename = "sub")]
    pub subject: String,
    /// Who is acting as the subject (impersonation), if anyone.
    #[serde(rename = "act", default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// The tenant the session is bound to.
    #[serde(rename = "aud")]
    pub tenant: String,
    /// The session version current when the session began.
    #[serde(rename = "sv", default, skip_serializing_if = "Option::is_none")]
    pub session_version: Option<u64>,
    /// Expiry, Unix seconds (filled from the token's envelope when opened).
    #[serde(skip)]
    pub expires_at: u64,
}
