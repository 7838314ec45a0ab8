//! The verified claims of a bearer token and the raw token they came from.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Unexpected, Visitor};
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
    pub fn from_map(map: Map<String, Value>) -> Result<Self, ClaimsError> {
        ClaimSlots::from_map(map).into_claims()
    }
}

/// A claims object split into the registered claims [`Claims`] lifts, each
/// kept as the raw JSON value it was given (type checks happen in
/// [`ClaimSlots::into_claims`]), and everything else.
///
/// Deserializing it reads each key as a borrowed `&str` and allocates only
/// the keys that land in `extra`, so a token payload never goes through a
/// map insert and remove per registered claim. It accepts exactly the
/// documents `Map<String, Value>` accepts and, like it, keeps the last of
/// duplicate keys.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct ClaimSlots {
    /// `sub`.
    pub(crate) sub: Option<Value>,
    /// `scope`.
    pub(crate) scope: Option<Value>,
    /// `scp`.
    pub(crate) scp: Option<Value>,
    /// `sv`.
    pub(crate) sv: Option<Value>,
    /// `exp`.
    pub(crate) exp: Option<Value>,
    /// `iat`.
    pub(crate) iat: Option<Value>,
    /// `iss`.
    pub(crate) iss: Option<Value>,
    /// `aud`.
    pub(crate) aud: Option<Value>,
    /// `jti`.
    pub(crate) jti: Option<Value>,
    /// Every other claim (`nbf` and `typ` included).
    pub(crate) extra: Map<String, Value>,
}

/// Where one key of a claims object goes.
enum Slot {
    Sub,
    Scope,
    Scp,
    Sv,
    Exp,
    Iat,
    Iss,
    Aud,
    Jti,
    Extra(String),
}

impl Slot {
    /// The slot of a registered claim, if `key` names one.
    fn registered(key: &str) -> Option<Self> {
        Some(match key {
            "sub" => Self::Sub,
            "scope" => Self::Scope,
            "scp" => Self::Scp,
            "sv" => Self::Sv,
            "exp" => Self::Exp,
            "iat" => Self::Iat,
            "iss" => Self::Iss,
            "aud" => Self::Aud,
            "jti" => Self::Jti,
            _ => return None,
        })
    }
}

impl ClaimSlots {
    /// Splits a decoded claims object: the registered claims are removed
    /// from `map` into their slots, the rest stays as `extra`.
    pub(crate) fn from_map(mut map: Map<String, Value>) -> Self {
        Self {
            sub: map.remove("sub"),
            scope: map.remove("scope"),
            scp: map.remove("scp"),
            sv: map.remove("sv"),
            exp: map.remove("exp"),
            iat: map.remove("iat"),
            iss: map.remove("iss"),
            aud: map.remove("aud"),
            jti: map.remove("jti"),
            extra: map,
        }
    }

    /// Lifts the registered claims into [`Claims`]; the rules are those of
    /// [`Claims::from_map`], checked in the same order (so the same
    /// [`ClaimsError`] names the first offending claim).
    pub(crate) fn into_claims(self) -> Result<Claims, ClaimsError> {
        let subject = match self.sub {
            Some(Value::String(s)) if !s.is_empty() => s,
            _ => return Err(ClaimsError { claim: "sub" }),
        };
        // `scope` wins over `scp`; the loser is dropped, never kept in
        // `extra`.
        let scopes = match (self.scope, self.scp) {
            (Some(v), _) => scopes_from(v, "scope")?,
            (None, Some(v)) => scopes_from(v, "scp")?,
            (None, None) => Scopes::none(),
        };
        Ok(Claims {
            subject,
            session_version: lift_u64(self.sv, "sv")?,
            scopes,
            expires_at: lift_u64(self.exp, "exp")?,
            issued_at: lift_u64(self.iat, "iat")?,
            issuer: lift_string(self.iss, "iss")?,
            audience: match self.aud {
                None => Vec::new(),
                Some(Value::String(s)) => vec![s],
                Some(Value::Array(items)) => strings(items).ok_or(ClaimsError { claim: "aud" })?,
                Some(_) => return Err(ClaimsError { claim: "aud" }),
            },
            token_id: lift_string(self.jti, "jti")?,
            extra: self.extra,
        })
    }
}

impl<'de> Deserialize<'de> for ClaimSlots {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(SlotsVisitor {
            refuse_repeated_checked: false,
        })
    }
}

/// [`ClaimSlots`] from a claims object that names none of the claims a JWT
/// verifier checks or identifies by (`exp`, `nbf`, `sub`, `iss`, `aud`)
/// twice.
///
/// RFC 7519 §4 lets a parser keep the last of duplicate names or refuse
/// them; for these five, parsers that keep the first and ones that keep the
/// last would disagree about who the token is for or whether it is still
/// valid, so `JwtVerifier` refuses them. Other repeated claims keep their
/// last occurrence.
#[cfg(feature = "jwt")]
pub(crate) struct UnrepeatedClaimSlots(pub(crate) ClaimSlots);

#[cfg(feature = "jwt")]
impl<'de> Deserialize<'de> for UnrepeatedClaimSlots {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_map(SlotsVisitor {
                refuse_repeated_checked: true,
            })
            .map(Self)
    }
}

/// Fills [`ClaimSlots`] from a JSON object.
struct SlotsVisitor {
    /// Refuse a second `exp`, `nbf`, `sub`, `iss` or `aud`.
    refuse_repeated_checked: bool,
}

impl<'de> Visitor<'de> for SlotsVisitor {
    type Value = ClaimSlots;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map")
    }

    // As `Map<String, Value>` does.
    fn visit_unit<E: de::Error>(self) -> Result<ClaimSlots, E> {
        Ok(ClaimSlots::default())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<ClaimSlots, A::Error> {
        let mut slots = ClaimSlots::default();
        while let Some(slot) = access.next_key_seed(SlotSeed)? {
            let value: Value = access.next_value()?;
            // A repeated key overwrites: the last occurrence wins, as in
            // `Map<String, Value>`.
            let (registered, checked) = match slot {
                Slot::Sub => (&mut slots.sub, true),
                Slot::Scope => (&mut slots.scope, false),
                Slot::Scp => (&mut slots.scp, false),
                Slot::Sv => (&mut slots.sv, false),
                Slot::Exp => (&mut slots.exp, true),
                Slot::Iat => (&mut slots.iat, false),
                Slot::Iss => (&mut slots.iss, true),
                Slot::Aud => (&mut slots.aud, true),
                Slot::Jti => (&mut slots.jti, false),
                Slot::Extra(key) => {
                    let nbf = key == "nbf";
                    let earlier = slots.extra.insert(key, value);
                    if self.refuse_repeated_checked && nbf && earlier.is_some() {
                        return Err(de::Error::custom("nbf is repeated"));
                    }
                    continue;
                }
            };
            if self.refuse_repeated_checked && checked && registered.is_some() {
                return Err(de::Error::custom("a checked claim is repeated"));
            }
            *registered = Some(value);
        }
        Ok(slots)
    }
}

/// Reads one key of a claims object, allocating it only when it is not a
/// registered claim. Accepts what `String` accepts as a key.
struct SlotSeed;

impl<'de> DeserializeSeed<'de> for SlotSeed {
    type Value = Slot;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Slot, D::Error> {
        deserializer.deserialize_string(self)
    }
}

impl<'de> Visitor<'de> for SlotSeed {
    type Value = Slot;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Slot, E> {
        Ok(Slot::registered(key).unwrap_or_else(|| Slot::Extra(key.to_owned())))
    }

    fn visit_string<E: de::Error>(self, key: String) -> Result<Slot, E> {
        Ok(Slot::registered(&key).unwrap_or(Slot::Extra(key)))
    }

    fn visit_bytes<E: de::Error>(self, key: &[u8]) -> Result<Slot, E> {
        match std::str::from_utf8(key) {
            Ok(key) => self.visit_str(key),
            Err(_) => Err(E::invalid_value(Unexpected::Bytes(key), &self)),
        }
    }

    fn visit_byte_buf<E: de::Error>(self, key: Vec<u8>) -> Result<Slot, E> {
        match String::from_utf8(key) {
            Ok(key) => self.visit_string(key),
            Err(e) => Err(E::invalid_value(Unexpected::Bytes(e.as_bytes()), &self)),
        }
    }
}

/// A non-negative integer claim; `None` when absent.
fn lift_u64(value: Option<Value>, claim: &'static str) -> Result<Option<u64>, ClaimsError> {
    match value {
        None => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or(ClaimsError { claim }),
    }
}

fn lift_string(value: Option<Value>, claim: &'static str) -> Result<Option<String>, ClaimsError> {
    match value {
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

    /// A claims object read both ways: as a `Map` lifted by `from_map`, and
    /// straight into `ClaimSlots`.
    fn both_ways(text: &str) -> (Result<Claims, ClaimsError>, Result<Claims, ClaimsError>) {
        let map: Map<String, Value> = serde_json::from_str(text).unwrap();
        let slots: ClaimSlots = serde_json::from_str(text).unwrap();
        assert_eq!(ClaimSlots::from_map(map.clone()), slots, "{text}");
        (Claims::from_map(map), slots.into_claims())
    }

    #[test]
    fn repeated_keys_keep_the_last_occurrence_as_a_map_does() {
        for (text, subject) in [
            (r#"{"sub":"a","sub":"b"}"#, "b"),
            (r#"{"sub":7,"sub":"b"}"#, "b"),
            (r#"{"sub":"a","s\u0075b":"b"}"#, "b"),
        ] {
            let (from_map, slots) = both_ways(text);
            assert_eq!(slots.unwrap().subject, subject);
            assert_eq!(from_map.unwrap().subject, subject);
        }
        let (from_map, slots) = both_ways(
            r#"{"sub":"u","exp":1,"exp":"x","sv":"1","sv":2,"t":1,"t":[2],"scp":"a","scp":"b"}"#,
        );
        assert_eq!(slots, Err(ClaimsError { claim: "exp" }));
        assert_eq!(from_map, slots);
        let (from_map, slots) = both_ways(
            r#"{"sub":"u","exp":"x","exp":1,"sv":"1","sv":2,"t":1,"t":[2],"scp":"a","scp":"b"}"#,
        );
        let claims = slots.unwrap();
        assert_eq!(
            (claims.expires_at, claims.session_version),
            (Some(1), Some(2))
        );
        assert_eq!(claims.extra.len(), 1);
        assert_eq!(claims.extra["t"], json!([2]));
        assert!(claims.scopes.allows("b") && !claims.scopes.allows("a"));
        assert_eq!(from_map.unwrap(), claims);
    }

    #[test]
    fn from_map_and_deserializing_agree() {
        for text in [
            r#"{}"#,
            r#"{"sub":""}"#,
            r#"{"sub":7}"#,
            r#"{"sub":null}"#,
            r#"{"sub":"u"}"#,
            r#"{"sub":"u","exp":"soon"}"#,
            r#"{"sub":"u","exp":-1}"#,
            r#"{"sub":"u","exp":1.5}"#,
            r#"{"sub":"u","exp":null}"#,
            r#"{"sub":"u","exp":1e3}"#,
            r#"{"sub":"u","iat":true}"#,
            r#"{"sub":"u","sv":"2"}"#,
            r#"{"sub":"u","sv":18446744073709551615}"#,
            r#"{"sub":"u","aud":[1]}"#,
            r#"{"sub":"u","aud":{}}"#,
            r#"{"sub":"u","aud":["a","b"]}"#,
            r#"{"sub":"u","aud":"a"}"#,
            r#"{"sub":"u","scope":3}"#,
            r#"{"sub":"u","scope":3,"scp":"a"}"#,
            r#"{"sub":"u","scope":"a","scp":3}"#,
            r#"{"sub":"u","scp":[1]}"#,
            r#"{"sub":"u","scp":["a","b"]}"#,
            r#"{"sub":"u","scope":"  a   b "}"#,
            r#"{"sub":"u","iss":false}"#,
            r#"{"sub":"u","jti":[]}"#,
            r#"{"sub":7,"exp":"x","aud":1}"#,
            r#"{"sub":"u","exp":"x","aud":1,"scope":1}"#,
            r#"{"sub":"u","sv":-1,"iat":"x"}"#,
            r#"{"sub":"u","iss":"i","jti":"j","iat":1,"exp":2,"sv":3,"nbf":"x","typ":"t","x":{"sub":1}}"#,
            r#"{"sub":"u","\u0073cope":"a","ex\u0070":1,"":0,"é":"e"}"#,
        ] {
            let (from_map, slots) = both_ways(text);
            assert_eq!(from_map, slots, "{text}");
        }
    }

    #[test]
    fn deserializing_refuses_what_a_map_refuses() {
        for text in [
            "[1]",
            "null",
            "1",
            r#""x""#,
            "{",
            r#"{"a":1,}"#,
            r#"{"a":1} x"#,
            "{1:2}",
        ] {
            let map = serde_json::from_str::<Map<String, Value>>(text).map_err(|e| e.to_string());
            let slots = serde_json::from_str::<ClaimSlots>(text).map_err(|e| e.to_string());
            assert!(map.is_err(), "{text}");
            assert_eq!(map.err(), slots.err(), "{text}");
        }
    }
}
