use std::fmt;

use serde_json::{Map, Value};

use crate::scopes::Scopes;

/// The verified claims of a bearer token.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Claims {
    /// Who the token is for (`sub`).
    pub subject: String,
    /// The session version current when the token was minted (`sv`).
    pub session_version: Option<u64>,
    /// What the token may do (`scope`).
    pub scopes: Scopes,
    /// Expiry, Unix seconds (`exp`).
    pub expires_at: Option<u64>,
    /// Issue time, Unix seconds (`iat`).
    pub issued_at: Option<u64>,
    /// Issuer (`iss`).
    pub issuer: Option<String>,
    /// Audiences (`aud`).
    pub audience: Vec<String>,
    /// Token id (`jti`).
    pub token_id: Option<String>,
    /// Every other claim.
    pub extra: Map<String, Value>,
}

/// A verified bearer token: the raw token (needed to call the issuer on the
/// caller's behalf) and its claims. `Debug` never prints the token.
#[derive(Clone)]
pub struct BearerToken {
    token: Box<str>,
    /// The verified claims.
    pub claims: Claims,
}

impl BearerToken {
    /// A verified token and its claims.
    pub fn new(token: impl Into<Box<str>>, claims: Claims) -> Self {
        Self {
            token: token.into(),
            claims,
        }
    }

    /// The raw token as presented.
    pub fn token(&self) -> &str {
        &self.token
    }
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BearerToken")
            .field("token", &"<redacted>")
            .field("claims", &self.claims)
            .finish()
    }
}
