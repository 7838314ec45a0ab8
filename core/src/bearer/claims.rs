//! The verified claims of a bearer token and the raw token they came from.

use std::fmt;

use serde_json::{Map, Value};

use crate::scopes::Scopes;

/// The verified claims of a bearer token.
///
/// Registered names are lifted into fields; everything else (custom claims,
/// `nbf`, `typ`, …) stays in [`Claims::extra`] exactly as the token carried it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Claims {
    /// Who the token is for (`sub`).
    pub subject: String,
    /// The session version current when the token was minted (`sv`).
    pub session_version: Option<u64>,
    /// What the token may do (`scope`, or `scp` when `scope` is absent).
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

/// A claim is missing or has the wrong JSON type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("claim `{claim}` is missing or has the wrong type")]
pub struct ClaimsError {
    /// The offending claim's name.
    pub claim: &'static str,
}

impl Claims {
    /// Claims from a decoded JSON object (a JWT payload, an introspection
    /// answer).
    ///
    /// `sub` must be a non-empty string; `sv`, `exp` and `iat` non-negative
    /// integers; `iss` and `jti` strings; `aud` a string or a list of
    /// strings; `scope` a space-separated string or a list of strings (`scp`
    /// is read the same way when `scope` is absent). A registered claim of
    /// the wrong type is an error, never silently dropped: a verifier that
    /// ignored a malformed `exp` would admit the token forever.
    ///
    /// ```
    /// use keystile_core::bearer::Claims;
    ///
    /// let json = serde_json::json!({
    ///     "sub": "alice", "sv": 3, "scope": "reports:read reports:write",
    ///     "exp": 1700000060, "aud": ["api"], "tenant": "acme"
    /// });
    /// let serde_json::Value::Object(map) = json else { unreachable!() };
    /// let claims = Claims::from_map(map).unwrap();
    /// assert_eq!(claims.subject, "alice");
    /// assert_eq!(claims.session_version, Some(3));
    /// assert!(claims.scopes.allows("reports:write"));
    /// assert_eq!(claims.extra["tenant"], "acme");
    /// ```
    pub fn from_map(mut map: Map<String, Value>) -> Result<Self, ClaimsError> {
        let subject = match map.remove("sub") {
            Some(Value::String(s)) if !s.is_empty() => s,
            _ => return Err(ClaimsError { claim: "sub" }),
        };
        let scopes = match map.remove("scope") {
            Some(v) => {
                map.remove("scp");
                scopes_from(v, "scope")?
            }
            None => match map.remove("scp") {
                Some(v) => scopes_from(v, "scp")?,
                None => Scopes::none(),
            },
        };
        Ok(Self {
            subject,
            session_version: take_u64(&mut map, "sv")?,
            scopes,
            expires_at: take_u64(&mut map, "exp")?,
            issued_at: take_u64(&mut map, "iat")?,
            issuer: take_string(&mut map, "iss")?,
            audience: match map.remove("aud") {
                None => Vec::new(),
                Some(Value::String(s)) => vec![s],
                Some(Value::Array(items)) => strings(items).ok_or(ClaimsError { claim: "aud" })?,
                Some(_) => return Err(ClaimsError { claim: "aud" }),
            },
            token_id: take_string(&mut map, "jti")?,
            extra: map,
        })
    }
}

/// A non-negative integer claim; `None` when absent.
pub(crate) fn take_u64(
    map: &mut Map<String, Value>,
    claim: &'static str,
) -> Result<Option<u64>, ClaimsError> {
    match map.remove(claim) {
        None => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or(ClaimsError { claim }),
    }
}

fn take_string(
    map: &mut Map<String, Value>,
    claim: &'static str,
) -> Result<Option<String>, ClaimsError> {
    match map.remove(claim) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ClaimsError { claim }),
    }
}

fn scopes_from(value: Value, claim: &'static str) -> Result<Scopes, ClaimsError> {
    match value {
        Value::String(s) => Ok(Scopes::parse_oauth(&s)),
        Value::Array(items) => Ok(strings(items)
            .ok_or(ClaimsError { claim })?
            .into_iter()
            .collect()),
        _ => Err(ClaimsError { claim }),
    }
}

fn strings(items: Vec<Value>) -> Option<Vec<String>> {
    items
        .into_iter()
        .map(|v| match v {
            Value::String(s) => Some(s),
            _ => None,
        })
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn registered_claims_are_lifted_and_the_rest_kept() {
        let c = Claims::from_map(map(json!({
            "sub": "u1", "iss": "idp", "aud": "api", "jti": "j", "iat": 5, "exp": 9,
            "scp": ["a", "b"], "nbf": 4, "custom": {"x": 1}
        })))
        .unwrap();
        assert_eq!(c.issuer.as_deref(), Some("idp"));
        assert_eq!(c.audience, vec!["api".to_owned()]);
        assert_eq!((c.issued_at, c.expires_at), (Some(5), Some(9)));
        assert!(c.scopes.allows("b"));
        assert_eq!(c.extra.len(), 2, "{:?}", c.extra);
        assert_eq!(c.extra["nbf"], 4);
    }

    #[test]
    fn wrong_types_name_the_claim() {
        for (doc, claim) in [
            (json!({}), "sub"),
            (json!({"sub": ""}), "sub"),
            (json!({"sub": 7}), "sub"),
            (json!({"sub": "u", "exp": "soon"}), "exp"),
            (json!({"sub": "u", "exp": -1}), "exp"),
            (json!({"sub": "u", "exp": 1.5}), "exp"),
            (json!({"sub": "u", "sv": "2"}), "sv"),
            (json!({"sub": "u", "aud": [1]}), "aud"),
            (json!({"sub": "u", "scope": 3}), "scope"),
            (json!({"sub": "u", "iss": false}), "iss"),
        ] {
            assert_eq!(Claims::from_map(map(doc)).unwrap_err().claim, claim);
        }
    }

    #[test]
    fn debug_redacts_the_raw_token() {
        let t = BearerToken::new("secret-token-value", Claims::default());
        assert!(!format!("{t:?}").contains("secret-token-value"));
    }
}
