//! JWT verification (feature `jwt`): HS256 from the keyring, RS256, ES256,
//! ES384 and EdDSA from configured public keys or JWK Sets (an identity
//! provider's keys, discovered and rotated, are `OidcVerifier`'s, feature
//! `oidc`).
//!
//! What a [`JwtVerifier`] guarantees (the rules of RFC 7519 and of the JWT
//! best current practices, RFC 8725):
//!
//! - A token names its key in the header `kid`; an unknown `kid` is refused.
//!   Without a `kid` (RFC 7515 makes it optional, and many HS256 issuers
//!   omit it) the token is verified with the verifier's one key for the
//!   header's `alg`, and refused when there is none or more than one. Each
//!   key is pinned to ONE algorithm, so `alg: none` (or any algorithm
//!   keystile does not implement), HS256 presented against an RSA key (the
//!   classic confusion attack), or RS256 against an HMAC key are refused
//!   before any signature math. Header members that would fetch or carry a
//!   key (`jku`, `jwk`, `x5u`, …) are ignored: only configured keys verify.
//! - HS256 keys come from the [`Keyring`]: the `kid` is the key's
//!   [`KeyId`](crate::keys::KeyId), fallback keys verify, so rotation never
//!   logs anybody out early. The HMAC secret is derived from the keyring key
//!   and the label `keystile/jwt-hs256` (HMAC-SHA256(key,
//!   `"keystile.v1\0keystile/jwt-hs256\0"`)), so a JWT can never be mistaken
//!   for any other keystile artifact under the same secret. Secrets shared
//!   with an external HS256 issuer are added as they are with
//!   [`JwtVerifierBuilder::hs256_secret`].
//! - A verifier trusts at most ONE issuer, and every key it holds is that
//!   issuer's: a key can never sign for another issuer. Tokens from several
//!   issuers are verified by one [`JwtVerifier`] per issuer, combined in
//!   [`JwtIssuers`](crate::bearer::JwtIssuers), which picks the verifier by
//!   the token's `iss` before any key is looked at.
//! - The signature is checked before any claim is read: HS256 with an
//!   HMAC-SHA256 state keyed once when the verifier is built, RS256, ES256
//!   and EdDSA with jsonwebtoken's crypto.
//! - Issuer and audience are enforced whenever configured: a token WITHOUT
//!   `iss`/`aud` is refused then too. With no audience configured, a token
//!   that carries `aud` is refused, as RFC 7519 §4.1.3 asks.
//! - `exp` is required. `exp`, `nbf` and `iat` (a token issued in the
//!   future is not valid yet) are checked against the injected
//!   [`Clock`](crate::clock::Clock), with a leeway (default 30 s).
//! - A registered claim of the wrong type (`exp` that is not a
//!   non-negative integer, `aud` that is not a string or list of strings,
//!   …) makes the token [`TokenError::Malformed`], never silently ignored;
//!   so does a repeated `exp`, `nbf`, `sub`, `iss` or `aud`, which parsers
//!   that keep the first and the last occurrence would read differently.
//! - Tokens longer than 8 KiB are refused before any decoding; a `crit`
//!   header (an extension keystile does not implement) is refused.
//! - A token whose payload says `"typ": "refresh"` is never a bearer
//!   credential (see [`TokenLifecycle`](crate::bearer::TokenLifecycle)).
//!
//! ```
//! use std::time::Duration;
//! use keystile_core::bearer::jwt::sign_hs256;
//! use keystile_core::bearer::JwtVerifier;
//! use keystile_core::clock::ManualClock;
//! use keystile_core::keys::Keyring;
//!
//! let keyring = Keyring::generate().unwrap();
//! let clock = ManualClock::at_unix(1_700_000_000);
//! let verifier = JwtVerifier::builder()
//!     .keyring(&keyring)
//!     .issuer("https://idp.example.test")
//!     .audience("reports-api")
//!     .clock(clock.shared())
//!     .build()
//!     .unwrap();
//!
//! // A token the verifier accepts, minted with the same keyring.
//! let serde_json::Value::Object(payload) = serde_json::json!({
//!     "sub": "alice", "iss": "https://idp.example.test", "aud": "reports-api",
//!     "exp": 1_700_000_300, "scope": "reports:read"
//! }) else { unreachable!() };
//! let token = sign_hs256(&keyring, &payload).unwrap();
//! let claims = verifier.verify_token(&token).unwrap();
//! assert_eq!(claims.subject, "alice");
//! assert!(claims.scopes.allows("reports:read"));
//!
//! clock.advance(Duration::from_secs(300 + 30)); // past exp + leeway
//! assert!(verifier.verify_token(&token).is_err());
//! ```

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, KeyOperations, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use crate::bearer::claims::{ClaimSlots, ClaimsError, UnrepeatedClaimSlots};
use crate::bearer::{Claims, TokenError, TokenVerifier};
use crate::clock::{SharedClock, SystemClock};
use crate::encoding;
use crate::keys::{Keyring, MIN_KEY_LEN, SigningKey};
use crate::mac::{MacKey, TAG_LEN};

/// Default clock-skew allowance on `exp` and `nbf`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
/// Default cap on a token's length, checked before any decoding.
pub const DEFAULT_MAX_JWT_LEN: usize = 8192;
/// Longest `kid` accepted in configuration.
const MAX_KID_LEN: usize = 256;

/// The label the HS256 secret of a keyring key is derived with.
const HS256_LABEL: &[u8] = b"keystile.v1\0keystile/jwt-hs256\0";

/// A public-key signature algorithm a verifier key is pinned to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum JwtAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// ECDSA on P-384 with SHA-384.
    ES384,
    /// Ed25519.
    EdDSA,
}

impl JwtAlgorithm {
    fn algorithm(self) -> Algorithm {
        match self {
            Self::RS256 => Algorithm::RS256,
            Self::ES256 => Algorithm::ES256,
            Self::ES384 => Algorithm::ES384,
            Self::EdDSA => Algorithm::EdDSA,
        }
    }

    fn header_alg(self) -> HeaderAlg {
        match self {
            Self::RS256 => HeaderAlg::RS256,
            Self::ES256 => HeaderAlg::ES256,
            Self::ES384 => HeaderAlg::ES384,
            Self::EdDSA => HeaderAlg::EdDSA,
        }
    }

    /// The algorithm's name in a JOSE header.
    pub fn name(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::ES256 => "ES256",
            Self::ES384 => "ES384",
            Self::EdDSA => "EdDSA",
        }
    }
}

/// Why a verifier could not be configured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwtConfigError {
    /// The verifier has no key at all.
    #[error("a JWT verifier needs at least one key")]
    NoKeys,
    /// Two keys share a `kid`.
    #[error("two keys share the kid {0:?}")]
    DuplicateKeyId(String),
    /// A `kid` is empty, longer than 256 bytes or not visible ASCII.
    #[error("kid must be 1-256 visible ASCII characters")]
    InvalidKeyId,
    /// A shared HS256 secret is shorter than 32 bytes (an empty one
    /// included).
    #[error("HS256 secrets must be at least {MIN_KEY_LEN} bytes")]
    ShortSecret,
    /// A PEM or JWK could not be read as a key for its algorithm.
    #[error("invalid {0} key")]
    InvalidKey(&'static str),
    /// A JWK is of a kind keystile does not verify with (octet keys, P-521,
    /// a missing `kid`, an algorithm other than RS256/ES256/ES384/EdDSA, a
    /// key for encryption or one whose `key_ops` lack `verify`).
    #[error("unsupported JWK: {0}")]
    UnsupportedJwk(&'static str),
    /// One verifier was given two different issuers. Its keys would sign
    /// for both; give each issuer a verifier of its own and combine them in
    /// `JwtIssuers`.
    #[error(
        "a JWT verifier trusts one issuer: build one verifier per issuer and combine them in JwtIssuers"
    )]
    SeveralIssuers,
    /// A verifier given to `JwtIssuers` has no issuer configured.
    #[error("each verifier in JwtIssuers needs its issuer configured")]
    NoIssuer,
    /// Two verifiers given to `JwtIssuers` trust the same issuer.
    #[error("two verifiers trust the issuer {0:?}")]
    DuplicateIssuer(String),
}

/// The `alg` of a JOSE header, as far as keystile verifies it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
enum HeaderAlg {
    HS256,
    RS256,
    ES256,
    ES384,
    EdDSA,
    /// Any other algorithm (`none`, HS384, ES512, PS256, …): no key is
    /// ever pinned to it.
    #[serde(other)]
    Unsupported,
}

/// The JOSE header members keystile acts on. Every other member is
/// ignored: none of them may bring or fetch a key.
#[derive(Deserialize)]
struct JoseHeader {
    alg: HeaderAlg,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    typ: Option<Value>,
    /// Whether the header has a `crit` member, whatever its value.
    #[serde(default, deserialize_with = "present")]
    crit: bool,
}

fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    IgnoredAny::deserialize(deserializer).map(|_| true)
}

/// How one key checks a signature.
enum SignatureCheck {
    /// HMAC-SHA256, keyed once when the verifier was built.
    Hs256(MacKey),
    /// A public key, checked by jsonwebtoken's crypto.
    Public(DecodingKey, JwtAlgorithm),
}

impl SignatureCheck {
    /// The one algorithm this key verifies.
    fn alg(&self) -> HeaderAlg {
        match self {
            Self::Hs256(_) => HeaderAlg::HS256,
            Self::Public(_, algorithm) => algorithm.header_alg(),
        }
    }

    /// Whether `signature` (base64url) signs `signing_input`.
    fn verify(&self, signing_input: &[u8], signature: &str) -> Result<(), TokenError> {
        let verified = match self {
            Self::Hs256(mac) => {
                let tag = encoding::decode(signature).map_err(|_| BAD_SIGNATURE_TEXT)?;
                mac.verify(signing_input, &tag)
            }
            Self::Public(key, algorithm) => {
                match jsonwebtoken::crypto::verify(
                    signature,
                    signing_input,
                    key,
                    algorithm.algorithm(),
                ) {
                    Ok(verified) => verified,
                    Err(e) if matches!(e.kind(), ErrorKind::Base64(_)) => {
                        return Err(BAD_SIGNATURE_TEXT);
                    }
                    // Signature bytes that do not fit the key (a truncated
                    // ECDSA signature, an RSA one of the wrong length).
                    Err(_) => false,
                }
            }
        };
        if verified {
            Ok(())
        } else {
            Err(TokenError::BadSignature)
        }
    }
}

/// One verification key and the `kid` it is known by.
struct VerifyKey {
    kid: String,
    check: SignatureCheck,
}

struct Inner {
    keys: Vec<VerifyKey>,
    issuer: Option<String>,
    audiences: Vec<String>,
    leeway: u64,
    clock: SharedClock,
    max_len: usize,
    at_jwt_only: bool,
}

/// Verifies JWTs; see the [module docs](self). Cloning is cheap.
#[derive(Clone)]
pub struct JwtVerifier {
    inner: Arc<Inner>,
}

/// Configures a [`JwtVerifier`].
#[must_use]
pub struct JwtVerifierBuilder {
    keys: Vec<VerifyKey>,
    issuers: Vec<String>,
    audiences: Vec<String>,
    leeway: Duration,
    clock: SharedClock,
    max_len: usize,
    algorithms: Option<Vec<JwtAlgorithm>>,
    at_jwt_only: bool,
}

/// Which `typ` claim a verification accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TypeRule {
    /// Anything but a refresh token.
    NotRefresh,
    /// Exactly this `typ`.
    Exactly(&'static str),
    /// Any token (for revocation, which may target either kind).
    Any,
}

/// The `typ` claim of lifecycle refresh tokens.
pub(crate) const REFRESH_TYP: &str = "refresh";

/// Not three dot-separated segments.
const NOT_COMPACT: TokenError = TokenError::Malformed("not a compact JWS");
/// A header that does not parse as a JOSE header.
const BAD_HEADER: TokenError = TokenError::Malformed("header is not a JSON JOSE header");
/// A signature segment that is not canonical base64url.
const BAD_SIGNATURE_TEXT: TokenError = TokenError::Malformed("signature is not base64url");

impl JwtVerifier {
    /// Starts a configuration: no keys, no issuer or audience, 30 s leeway,
    /// system clock, 8 KiB cap.
    pub fn builder() -> JwtVerifierBuilder {
        JwtVerifierBuilder {
            keys: Vec::new(),
            issuers: Vec::new(),
            audiences: Vec::new(),
            leeway: DEFAULT_LEEWAY,
            clock: SystemClock::shared(),
            max_len: DEFAULT_MAX_JWT_LEN,
            algorithms: None,
            at_jwt_only: false,
        }
    }

    /// Verifies `token` synchronously (no revocation list is consulted: a
    /// `JwtVerifier` holds none).
    pub fn verify_token(&self, token: &str) -> Result<Claims, TokenError> {
        self.verify_as(token, TypeRule::NotRefresh)
    }

    /// The one verification: length, header, key, signature, then claims.
    pub(crate) fn verify_as(&self, token: &str, rule: TypeRule) -> Result<Claims, TokenError> {
        if token.len() > self.inner.max_len {
            return Err(TokenError::Malformed("token too long"));
        }
        let (signing_input, signature) = token.rsplit_once('.').ok_or(NOT_COMPACT)?;
        let (header, payload) = signing_input.split_once('.').ok_or(NOT_COMPACT)?;
        if payload.contains('.') {
            return Err(NOT_COMPACT);
        }
        let header: JoseHeader = json_object(header).ok_or(BAD_HEADER)?;
        if header.crit {
            return Err(TokenError::Malformed("unsupported critical header"));
        }
        self.key_for(&header)?
            .check
            .verify(signing_input.as_bytes(), signature)?;
        if self.inner.at_jwt_only && !is_at_jwt(header.typ.as_ref()) {
            return Err(TokenError::Invalid(
                "not a JWT access token (RFC 9068: header typ at+jwt)",
            ));
        }
        let UnrepeatedClaimSlots(claims) = json_object(payload).ok_or(TokenError::Malformed(
            "payload is not a JSON object, or repeats a checked claim",
        ))?;
        self.check_claims(claims, rule)
    }

    /// The key that must have signed a token with `header`: the one its
    /// `kid` names, or without a `kid` the only key for its `alg`.
    fn key_for(&self, header: &JoseHeader) -> Result<&VerifyKey, TokenError> {
        if header.alg == HeaderAlg::Unsupported {
            return Err(TokenError::Malformed("unsupported alg"));
        }
        let keys = &self.inner.keys;
        let key = match header.kid.as_deref() {
            Some(kid) => keys
                .iter()
                .find(|k| k.kid == kid)
                .ok_or(TokenError::UnknownKey)?,
            None => {
                let mut pinned = keys.iter().filter(|k| k.check.alg() == header.alg);
                match (pinned.next(), pinned.next()) {
                    (Some(key), None) => key,
                    // Never a guess between keys.
                    (Some(_), Some(_)) => return Err(TokenError::UnknownKey),
                    (None, _) => return Err(TokenError::WrongAlgorithm),
                }
            }
        };
        if key.check.alg() != header.alg {
            return Err(TokenError::WrongAlgorithm);
        }
        Ok(key)
    }

    /// The checks on a payload whose signature is verified: the registered
    /// claims' types, issuer, audience, `exp` and `nbf` on the injected
    /// clock, then the `typ` rule.
    fn check_claims(&self, slots: ClaimSlots, rule: TypeRule) -> Result<Claims, TokenError> {
        let inner = &*self.inner;
        // `"aud": []` is an audience claim too, which `Claims` cannot tell
        // from none.
        let carries_audience = slots.aud.is_some();
        let mut claims = slots.into_claims().map_err(wrong_claim)?;
        let exp = claims
            .expires_at
            .ok_or(TokenError::Malformed("exp is missing"))?;
        let nbf = match claims.extra.get("nbf") {
            None => None,
            Some(nbf) => Some(
                nbf.as_u64()
                    .ok_or(TokenError::Malformed("nbf is not an integer"))?,
            ),
        };
        let typ = match claims.extra.get("typ") {
            None => None,
            Some(Value::String(typ)) => Some(typ.as_str()),
            Some(_) => return Err(TokenError::Malformed("typ is not a string")),
        };
        if let Some(issuer) = &inner.issuer
            && claims.issuer.as_ref() != Some(issuer)
        {
            return Err(TokenError::WrongIssuer);
        }
        let audience_ok = if inner.audiences.is_empty() {
            !carries_audience
        } else {
            claims.audience.iter().any(|a| inner.audiences.contains(a))
        };
        if !audience_ok {
            return Err(TokenError::WrongAudience);
        }
        let now = inner.clock.unix_seconds();
        if now >= exp.saturating_add(inner.leeway) {
            return Err(TokenError::Expired);
        }
        // A token issued in the future (beyond the leeway) is not valid yet
        // either, `nbf` or not.
        let not_before = nbf.max(claims.issued_at);
        if not_before.is_some_and(|at| at > now.saturating_add(inner.leeway)) {
            return Err(TokenError::NotYetValid);
        }
        match (rule, typ) {
            (TypeRule::Any, _) => {}
            (TypeRule::NotRefresh, Some(REFRESH_TYP)) => {
                return Err(TokenError::Invalid(
                    "a refresh token is not an access token",
                ));
            }
            (TypeRule::NotRefresh, _) => {}
            (TypeRule::Exactly(want), Some(got)) if want == got => {}
            (TypeRule::Exactly(_), _) => {
                return Err(TokenError::Invalid("the token is of the wrong type"));
            }
        }
        // Lifecycle tokens keep `typ` to themselves; other issuers' `typ`
        // claims stay visible in `extra`.
        if rule != TypeRule::NotRefresh {
            claims.extra.remove("typ");
        }
        Ok(claims)
    }

    pub(crate) fn leeway_secs(&self) -> u64 {
        self.inner.leeway
    }

    /// The one issuer whose tokens this verifier accepts, if one is
    /// configured.
    pub fn issuer(&self) -> Option<&str> {
        self.inner.issuer.as_deref()
    }

    pub(crate) fn max_len(&self) -> usize {
        self.inner.max_len
    }

    /// The configured audiences.
    pub fn audiences(&self) -> &[String] {
        &self.inner.audiences
    }
}

/// A base64url token segment holding one JSON object, read as `T`.
pub(crate) fn json_object<T: DeserializeOwned>(segment: &str) -> Option<T> {
    let json = encoding::decode(segment).ok()?;
    // A struct deserializes from a JSON list too; headers and claims sets
    // are objects.
    if !json.trim_ascii_start().starts_with(b"{") {
        return None;
    }
    serde_json::from_slice(&json).ok()
}

/// Whether a header `typ` names an RFC 9068 access token: `at+jwt`, or the
/// full media type `application/at+jwt`, in any case (RFC 7515 §4.1.9).
fn is_at_jwt(typ: Option<&Value>) -> bool {
    let Some(Value::String(typ)) = typ else {
        return false;
    };
    let typ = typ.to_ascii_lowercase();
    typ == "at+jwt" || typ == "application/at+jwt"
}

/// The refusal of a payload whose registered claim has the wrong type.
fn wrong_claim(error: ClaimsError) -> TokenError {
    TokenError::Malformed(match error.claim {
        "sub" => "sub is missing or not a non-empty string",
        "exp" => "exp is not a non-negative integer",
        "iss" => "iss is not a string",
        "aud" => "aud is not a string or a list of strings",
        _ => "a registered claim has the wrong type",
    })
}

#[async_trait]
impl TokenVerifier for JwtVerifier {
    async fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        self.verify_token(token)
    }
}

impl fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut kids: Vec<&str> = self.inner.keys.iter().map(|k| k.kid.as_str()).collect();
        kids.sort_unstable();
        f.debug_struct("JwtVerifier")
            .field("kids", &kids)
            .field("issuer", &self.inner.issuer)
            .field("audiences", &self.inner.audiences)
            .field("leeway", &self.inner.leeway)
            .finish_non_exhaustive()
    }
}

impl JwtVerifierBuilder {
    /// Verifies HS256 tokens signed by any key of `keyring` (primary or
    /// fallback), each under its key id.
    pub fn keyring(mut self, keyring: &Keyring) -> Self {
        for key in keyring.keys() {
            let secret = derived_hs256_secret(key);
            self.keys.push(VerifyKey {
                kid: key.id().as_str().to_owned(),
                check: SignatureCheck::Hs256(MacKey::new(secret.as_ref())),
            });
        }
        self
    }

    /// Verifies HS256 tokens whose header names `kid`, with a secret shared
    /// with an external issuer (used as is, at least 32 bytes).
    pub fn hs256_secret(mut self, kid: &str, secret: &[u8]) -> Result<Self, JwtConfigError> {
        check_kid(kid)?;
        if secret.len() < MIN_KEY_LEN {
            return Err(JwtConfigError::ShortSecret);
        }
        self.keys.push(VerifyKey {
            kid: kid.to_owned(),
            check: SignatureCheck::Hs256(MacKey::new(secret)),
        });
        Ok(self)
    }

    /// Verifies `algorithm` tokens whose header names `kid` with a PEM
    /// public key (`-----BEGIN PUBLIC KEY-----`; PKCS#1 RSA keys too).
    pub fn public_key_pem(
        self,
        kid: &str,
        algorithm: JwtAlgorithm,
        pem: &[u8],
    ) -> Result<Self, JwtConfigError> {
        check_kid(kid)?;
        let key = match algorithm {
            JwtAlgorithm::RS256 => DecodingKey::from_rsa_pem(pem),
            JwtAlgorithm::ES256 | JwtAlgorithm::ES384 => DecodingKey::from_ec_pem(pem),
            JwtAlgorithm::EdDSA => DecodingKey::from_ed_pem(pem),
        }
        .map_err(|_| JwtConfigError::InvalidKey(algorithm.name()))?;
        Ok(self.public_key(kid, key, algorithm))
    }

    /// Adds one public JWK (RFC 7517) as JSON. It must carry a `kid`; its
    /// algorithm comes from `alg` when present, else from the key type
    /// (RSA → RS256, EC P-256 → ES256, EC P-384 → ES384, OKP Ed25519 →
    /// EdDSA). A key whose `use` is not `sig`, or whose `key_ops` lack
    /// `verify`, is refused.
    pub fn jwk(self, json: &str) -> Result<Self, JwtConfigError> {
        let jwk: Jwk =
            serde_json::from_str(json).map_err(|_| JwtConfigError::UnsupportedJwk("not a JWK"))?;
        let (kid, key, algorithm) = verify_key_of(&jwk)?;
        Ok(self.public_key(&kid, key, algorithm))
    }

    /// Adds the keys of a JWK Set document (`{"keys": [...]}`), e.g. an
    /// identity provider's `jwks_uri` answer. Keys keystile cannot verify
    /// with (an encryption key, an ES512 or symmetric key, a `kty` it does
    /// not know, a key without `kid`, two keys sharing one `kid`) are
    /// skipped, each named with the reason at debug level; the set is
    /// refused only when it is not a JWK Set at all. [`build`](Self::build)
    /// fails when no key is left.
    pub fn jwk_set(mut self, json: &str) -> Result<Self, JwtConfigError> {
        #[derive(Deserialize)]
        struct RawSet {
            keys: Vec<Value>,
        }
        let set: RawSet = serde_json::from_str(json)
            .map_err(|_| JwtConfigError::UnsupportedJwk("not a JWK Set"))?;
        let mut usable = Vec::with_capacity(set.keys.len());
        for raw in &set.keys {
            let named = raw.get("kid").and_then(Value::as_str).unwrap_or("");
            let read = serde_json::from_value::<Jwk>(raw.clone())
                .map_err(|_| JwtConfigError::UnsupportedJwk("not a JWK keystile reads"))
                .and_then(|jwk| verify_key_of(&jwk));
            match read {
                Ok(key) => usable.push(key),
                Err(error) => {
                    tracing::debug!(target: "keystile::jwt", kid = named, %error, "JWK skipped");
                }
            }
        }
        // Two keys under one `kid` (from one document): neither is used, a
        // token naming it is never a guess between them.
        let mut seen = HashSet::new();
        let twice: HashSet<String> = usable
            .iter()
            .filter(|(kid, _, _)| !seen.insert(kid.clone()))
            .map(|(kid, _, _)| kid.clone())
            .collect();
        for (kid, key, algorithm) in usable {
            if twice.contains(&kid) {
                tracing::debug!(target: "keystile::jwt", kid, "JWK skipped: its kid is used twice");
                continue;
            }
            self = self.public_key(&kid, key, algorithm);
        }
        Ok(self)
    }

    fn public_key(mut self, kid: &str, key: DecodingKey, algorithm: JwtAlgorithm) -> Self {
        self.keys.push(VerifyKey {
            kid: kid.to_owned(),
            check: SignatureCheck::Public(key, algorithm),
        });
        self
    }

    /// Accepts only tokens whose `iss` is `issuer`; tokens without `iss`
    /// are then refused. Every key of this verifier is that issuer's, so a
    /// verifier has one issuer: [`build`](Self::build) refuses a second,
    /// different one ([`JwtConfigError::SeveralIssuers`]). Verify several
    /// issuers' tokens with one verifier each, combined in
    /// [`JwtIssuers`](crate::bearer::JwtIssuers).
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuers.push(issuer.into());
        self
    }

    /// Accepts only tokens whose `aud` names `audience` (call again to
    /// accept several). Tokens without `aud` are then refused.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Tolerates this much clock skew on `exp` and `nbf` (whole seconds;
    /// default 30 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Reads time from `clock`.
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Refuses tokens longer than `max_len` bytes before decoding them.
    pub fn max_len(mut self, max_len: usize) -> Self {
        self.max_len = max_len;
        self
    }

    /// Verifies public-key signatures with these algorithms only: keys
    /// pinned to any other are dropped when the verifier is built (named at
    /// debug level). HS256 keys from the keyring or
    /// [`hs256_secret`](Self::hs256_secret) are not affected. Default: every
    /// algorithm a key was added for.
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = JwtAlgorithm>) -> Self {
        self.algorithms = Some(algorithms.into_iter().collect());
        self
    }

    /// Accepts only RFC 9068 JWT access tokens: the header `typ` must be
    /// `at+jwt` (or `application/at+jwt`). OpenID Connect ID tokens
    /// (`typ: JWT`, or none) are then refused as bearer credentials.
    pub fn at_jwt_only(mut self) -> Self {
        self.at_jwt_only = true;
        self
    }

    /// The verifier; fails without keys, with two keys sharing a `kid`, or
    /// with two different issuers.
    pub fn build(mut self) -> Result<JwtVerifier, JwtConfigError> {
        if let Some(allowed) = &self.algorithms {
            self.keys.retain(|key| match &key.check {
                SignatureCheck::Hs256(_) => true,
                SignatureCheck::Public(_, algorithm) if allowed.contains(algorithm) => true,
                SignatureCheck::Public(_, algorithm) => {
                    tracing::debug!(
                        target: "keystile::jwt",
                        kid = key.kid,
                        algorithm = algorithm.name(),
                        "key skipped: its algorithm is not allowed"
                    );
                    false
                }
            });
        }
        if self.keys.is_empty() {
            return Err(JwtConfigError::NoKeys);
        }
        let mut kids = HashSet::with_capacity(self.keys.len());
        if let Some(twice) = self.keys.iter().find(|k| !kids.insert(k.kid.as_str())) {
            return Err(JwtConfigError::DuplicateKeyId(twice.kid.clone()));
        }
        self.issuers.sort();
        self.issuers.dedup();
        if self.issuers.len() > 1 {
            return Err(JwtConfigError::SeveralIssuers);
        }
        Ok(JwtVerifier {
            inner: Arc::new(Inner {
                keys: self.keys,
                issuer: self.issuers.pop(),
                audiences: self.audiences,
                leeway: self.leeway.as_secs(),
                clock: self.clock,
                max_len: self.max_len,
                at_jwt_only: self.at_jwt_only,
            }),
        })
    }
}

fn check_kid(kid: &str) -> Result<(), JwtConfigError> {
    let ok = !kid.is_empty()
        && kid.len() <= MAX_KID_LEN
        && kid.bytes().all(|b| (0x21..0x7f).contains(&b));
    if ok {
        Ok(())
    } else {
        Err(JwtConfigError::InvalidKeyId)
    }
}

/// The `kid`, key and algorithm of a public JWK that may verify signatures.
fn verify_key_of(jwk: &Jwk) -> Result<(String, DecodingKey, JwtAlgorithm), JwtConfigError> {
    let common = &jwk.common;
    let kid = common
        .key_id
        .as_deref()
        .ok_or(JwtConfigError::UnsupportedJwk("no kid"))?;
    check_kid(kid)?;
    if matches!(&common.public_key_use, Some(purpose) if *purpose != PublicKeyUse::Signature) {
        return Err(JwtConfigError::UnsupportedJwk("use is not sig"));
    }
    if common
        .key_operations
        .as_ref()
        .is_some_and(|ops| !ops.contains(&KeyOperations::Verify))
    {
        return Err(JwtConfigError::UnsupportedJwk("key_ops lack verify"));
    }
    let algorithm = match (&jwk.algorithm, common.key_algorithm) {
        (AlgorithmParameters::RSA(_), None | Some(KeyAlgorithm::RS256)) => JwtAlgorithm::RS256,
        (AlgorithmParameters::EllipticCurve(p), None | Some(KeyAlgorithm::ES256))
            if p.curve == EllipticCurve::P256 =>
        {
            JwtAlgorithm::ES256
        }
        (AlgorithmParameters::EllipticCurve(p), None | Some(KeyAlgorithm::ES384))
            if p.curve == EllipticCurve::P384 =>
        {
            JwtAlgorithm::ES384
        }
        (AlgorithmParameters::OctetKeyPair(p), None | Some(KeyAlgorithm::EdDSA))
            if p.curve == EllipticCurve::Ed25519 =>
        {
            JwtAlgorithm::EdDSA
        }
        (AlgorithmParameters::OctetKey(_), _) => {
            return Err(JwtConfigError::UnsupportedJwk(
                "symmetric keys belong in the keyring or hs256_secret",
            ));
        }
        _ => {
            return Err(JwtConfigError::UnsupportedJwk(
                "only RS256, ES256 (P-256), ES384 (P-384) and EdDSA (Ed25519) keys are supported",
            ));
        }
    };
    let key =
        DecodingKey::from_jwk(jwk).map_err(|_| JwtConfigError::InvalidKey(algorithm.name()))?;
    Ok((kid.to_owned(), key, algorithm))
}

/// The HS256 secret of a keyring key: HMAC-SHA256(key, label).
fn derived_hs256_secret(key: &SigningKey) -> Zeroizing<[u8; TAG_LEN]> {
    Zeroizing::new(MacKey::new(key.bytes()).compute(HS256_LABEL))
}

/// Signs HS256 tokens the way every keystile issuer writes them: the header
/// `{"typ":"JWT","alg":"HS256","kid":…}` naming the keyring key, the claims
/// as given, and the tag of an HMAC-SHA256 state keyed once with the key's
/// derived secret (the one [`JwtVerifierBuilder::keyring`] verifies with).
pub(crate) struct Hs256Signer {
    /// The encoded header segment and its `.`, the start of every token.
    header: String,
    mac: MacKey,
}

impl Hs256Signer {
    /// A signer for keyring key `key`.
    pub(crate) fn new(key: &SigningKey) -> Self {
        // A key id is visible ASCII without quotes or backslashes, so it
        // needs no JSON escaping.
        let json = format!(r#"{{"typ":"JWT","alg":"HS256","kid":"{}"}}"#, key.id());
        let mut header = encoding::encode(json);
        header.push('.');
        Self {
            header,
            mac: MacKey::new(derived_hs256_secret(key).as_ref()),
        }
    }

    /// The compact JWS of `claims`.
    pub(crate) fn sign(&self, claims: &Map<String, Value>) -> Result<String, JwtSignError> {
        let payload = serde_json::to_vec(claims).map_err(|_| JwtSignError)?;
        let mut token = self.header.clone();
        encoding::encode_into(payload, &mut token);
        let tag = self.mac.compute(token.as_bytes());
        token.push('.');
        encoding::encode_into(tag, &mut token);
        Ok(token)
    }
}

impl fmt::Debug for Hs256Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hs256Signer").finish_non_exhaustive()
    }
}

/// Signing failed: the claims could not be serialized or signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the token could not be signed")]
pub struct JwtSignError;

/// Signs `claims` exactly as given, as HS256 under the keyring's primary key
/// (header `kid` = its key id) — what a [`JwtVerifier`] built with
/// [`JwtVerifierBuilder::keyring`] accepts.
///
/// For tests and mock identity providers that need hand-made payloads.
/// Services issuing real tokens use
/// [`TokenLifecycle`](crate::bearer::TokenLifecycle), which adds `exp`,
/// `iat`, `jti` and `typ` and refuses reserved custom claims.
pub fn sign_hs256(keyring: &Keyring, claims: &Map<String, Value>) -> Result<String, JwtSignError> {
    Hs256Signer::new(keyring.primary()).sign(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use serde_json::json;

    const T0: u64 = 1_700_000_000;
    const RSA_PUBLIC: &[u8] = include_bytes!("../../../tests/fixtures/rsa_public.pem");

    fn ring(byte: u8) -> Keyring {
        Keyring::new(SigningKey::from_bytes(&[byte; 32]).unwrap())
    }

    /// The debug events written while `f` runs on this thread.
    fn debug_log<T>(f: impl FnOnce() -> T) -> (T, String) {
        #[derive(Clone, Default)]
        struct Log(Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Log {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let log = Log::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let out = tracing::subscriber::with_default(subscriber, f);
        let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
        (out, text)
    }

    #[test]
    fn a_jwk_set_loads_its_usable_keys_and_names_each_skipped_one() {
        // RFC 7515 A.3's P-256 key, under several kids and uses.
        let p256 = json!({"kty": "EC", "crv": "P-256",
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"});
        let with = |extra: Value| {
            let mut key = p256.clone();
            key.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            key
        };
        let set = json!({"keys": [
            with(json!({"kid": "sig", "use": "sig", "alg": "ES256"})),
            with(json!({"kid": "enc", "use": "enc", "alg": "ECDH-ES"})),
            with(json!({"kid": "sign-only", "key_ops": ["sign"]})),
            with(json!({"kid": "twice"})),
            with(json!({"kid": "twice"})),
            json!({"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}),
            json!({"kty": "XYZ", "kid": "future"}),
        ]})
        .to_string();
        let (verifier, log) = debug_log(|| {
            JwtVerifier::builder()
                .jwk_set(&set)
                .unwrap()
                .build()
                .unwrap()
        });
        let mut kids: Vec<&str> = verifier.inner.keys.iter().map(|k| k.kid.as_str()).collect();
        kids.sort_unstable();
        assert_eq!(kids, ["sig"]);
        for (kid, why) in [
            ("enc", "use is not sig"),
            ("sign-only", "key_ops lack verify"),
            ("twice", "used twice"),
            ("hmac", "symmetric keys"),
            ("future", "only RS256"),
        ] {
            let line = log
                .lines()
                .find(|line| line.contains(&format!("kid=\"{kid}\"")))
                .unwrap_or_else(|| panic!("{kid} is not named in:\n{log}"));
            assert!(line.contains(why), "{line}");
        }
        // Nothing usable: the set loads, the verifier does not build.
        let useless = json!({"keys": [with(json!({"kid": "enc", "use": "enc"}))]}).to_string();
        assert_eq!(
            JwtVerifier::builder()
                .jwk_set(&useless)
                .unwrap()
                .build()
                .unwrap_err(),
            JwtConfigError::NoKeys
        );
        assert!(JwtVerifier::builder().jwk_set("[1]").is_err());
    }

    fn sign(keyring: &Keyring, claims: Value) -> String {
        match claims {
            Value::Object(map) => sign_hs256(keyring, &map).unwrap(),
            _ => unreachable!(),
        }
    }

    fn verifier(keyring: &Keyring, clock: &ManualClock) -> JwtVerifier {
        JwtVerifier::builder()
            .keyring(keyring)
            .clock(clock.shared())
            .build()
            .unwrap()
    }

    /// A token with a hand-written header and payload (JSON text as given,
    /// duplicate keys included), signed with HMAC-SHA256 under `key`'s HS256
    /// secret, whatever the header's `alg` says.
    fn raw_token(header: &str, payload: &str, key: &SigningKey) -> String {
        let message = format!("{}.{}", encoding::encode(header), encoding::encode(payload));
        let tag = MacKey::new(derived_hs256_secret(key).as_ref()).compute(message.as_bytes());
        format!("{message}.{}", encoding::encode(tag))
    }

    fn header(kid: Option<&str>, extra: &str) -> String {
        match kid {
            Some(kid) => format!(r#"{{"alg":"HS256","typ":"JWT","kid":"{kid}"{extra}}}"#),
            None => format!(r#"{{"alg":"HS256","typ":"JWT"{extra}}}"#),
        }
    }

    /// Flips one character in the middle of the signature.
    fn tamper(token: &str) -> String {
        let mut bytes = token.as_bytes().to_vec();
        let at = token.rfind('.').unwrap() + 20;
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn hs256_round_trip_with_injected_clock() {
        let keyring = ring(1);
        let clock = ManualClock::at_unix(T0);
        let token = sign(&keyring, json!({"sub": "u", "exp": T0 + 60, "sv": 2}));
        let claims = verifier(&keyring, &clock).verify_token(&token).unwrap();
        assert_eq!(claims.session_version, Some(2));
        clock.advance(Duration::from_secs(89));
        assert!(
            verifier(&keyring, &clock).verify_token(&token).is_ok(),
            "inside leeway"
        );
        clock.advance(Duration::from_secs(1));
        assert!(matches!(
            verifier(&keyring, &clock).verify_token(&token),
            Err(TokenError::Expired)
        ));
    }

    #[test]
    fn keystile_tokens_carry_the_header_naming_their_key() {
        let keyring = ring(1);
        let token = sign(&keyring, json!({"sub": "u", "exp": T0 + 60}));
        let (header, rest) = token.split_once('.').unwrap();
        let expected = format!(
            r#"{{"typ":"JWT","alg":"HS256","kid":"{}"}}"#,
            keyring.primary().id()
        );
        assert_eq!(encoding::decode(header).unwrap(), expected.as_bytes());
        let (payload, tag) = rest.split_once('.').unwrap();
        let payload: Value = serde_json::from_slice(&encoding::decode(payload).unwrap()).unwrap();
        assert_eq!(payload, json!({"sub": "u", "exp": T0 + 60}));
        let secret = MacKey::new(&[1; 32]).compute(HS256_LABEL);
        let signing_input = &token[..token.len() - tag.len() - 1];
        assert_eq!(
            encoding::decode(tag).unwrap(),
            MacKey::new(&secret).compute(signing_input.as_bytes())
        );
    }

    #[test]
    fn derived_secret_is_not_the_raw_key() {
        let keyring = ring(1);
        let kid = keyring.primary().id().as_str();
        let message = format!(
            "{}.{}",
            encoding::encode(header(Some(kid), "")),
            encoding::encode(format!(r#"{{"sub":"u","exp":{}}}"#, T0 + 60))
        );
        let tag = MacKey::new(&[1; 32]).compute(message.as_bytes());
        let raw = format!("{message}.{}", encoding::encode(tag));
        let clock = ManualClock::at_unix(T0);
        assert!(matches!(
            verifier(&keyring, &clock).verify_token(&raw),
            Err(TokenError::BadSignature)
        ));
    }

    #[test]
    fn configuration_errors_are_reported_at_build() {
        assert_eq!(
            JwtVerifier::builder().build().unwrap_err(),
            JwtConfigError::NoKeys
        );
        for short in [&[][..], &[0; 16]] {
            let err = JwtVerifier::builder().hs256_secret("k", short).err();
            assert_eq!(err, Some(JwtConfigError::ShortSecret));
        }
        let err = JwtVerifier::builder()
            .hs256_secret("k", &[0; 32])
            .and_then(|b| b.hs256_secret("k", &[1; 32]))
            .unwrap()
            .build()
            .unwrap_err();
        assert_eq!(err, JwtConfigError::DuplicateKeyId("k".into()));
        assert_eq!(
            JwtVerifier::builder()
                .public_key_pem("k", JwtAlgorithm::RS256, b"junk")
                .err(),
            Some(JwtConfigError::InvalidKey("RS256"))
        );
        assert_eq!(
            JwtVerifier::builder().hs256_secret("", &[0; 32]).err(),
            Some(JwtConfigError::InvalidKeyId)
        );
        assert!(matches!(
            JwtVerifier::builder().jwk(r#"{"kty":"oct","k":"AAAA","kid":"x"}"#),
            Err(JwtConfigError::UnsupportedJwk(_))
        ));
    }

    #[test]
    fn an_unknown_kid_is_refused_before_the_signature_is_checked() {
        let keyring = ring(1);
        let clock = ManualClock::at_unix(T0);
        let verifier = verifier(&keyring, &clock);
        let payload = format!(r#"{{"sub":"u","exp":{}}}"#, T0 + 60);
        let key = keyring.primary();
        // Another key's kid and signature: both wrong.
        let other = sign(&ring(2), json!({"sub": "u", "exp": T0 + 60}));
        // An unknown kid with a tampered signature, and with a signature
        // that verifies under the only key.
        let unknown = raw_token(&header(Some("nobody"), ""), &payload, key);
        for token in [other, tamper(&unknown), unknown] {
            assert!(matches!(
                verifier.verify_token(&token),
                Err(TokenError::UnknownKey)
            ));
        }
    }

    #[test]
    fn without_a_kid_the_only_key_of_the_algorithm_decides() {
        let keyring = ring(1);
        let clock = ManualClock::at_unix(T0);
        let verifier = verifier(&keyring, &clock);
        let payload = format!(r#"{{"sub":"u","exp":{}}}"#, T0 + 60);
        let valid = raw_token(&header(None, ""), &payload, keyring.primary());
        assert_eq!(verifier.verify_token(&valid).unwrap().subject, "u");
        assert!(matches!(
            verifier.verify_token(&tamper(&valid)),
            Err(TokenError::BadSignature)
        ));
        // A key of another algorithm beside it changes nothing.
        let mixed = JwtVerifier::builder()
            .keyring(&keyring)
            .public_key_pem("rsa", JwtAlgorithm::RS256, RSA_PUBLIC)
            .unwrap()
            .clock(clock.shared())
            .build()
            .unwrap();
        assert_eq!(mixed.verify_token(&valid).unwrap().subject, "u");
        // No key for the token's algorithm.
        let rs256 = format!(
            "{}.{}.c2ln",
            encoding::encode(r#"{"alg":"RS256"}"#),
            encoding::encode(&payload)
        );
        assert!(matches!(
            verifier.verify_token(&rs256),
            Err(TokenError::WrongAlgorithm)
        ));
        // Two HS256 keys (a fallback): no guessing between them.
        let rotated = Keyring::new(SigningKey::from_bytes(&[2; 32]).unwrap())
            .with_fallback(SigningKey::from_bytes(&[1; 32]).unwrap())
            .unwrap();
        let two = JwtVerifier::builder()
            .keyring(&rotated)
            .clock(clock.shared())
            .build()
            .unwrap();
        assert!(matches!(
            two.verify_token(&valid),
            Err(TokenError::UnknownKey)
        ));
    }

    #[test]
    fn crit_is_refused_even_with_a_valid_signature() {
        let keyring = ring(1);
        let clock = ManualClock::at_unix(T0);
        let verifier = verifier(&keyring, &clock);
        let kid = keyring.primary().id().as_str();
        let payload = format!(r#"{{"sub":"u","exp":{}}}"#, T0 + 60);
        let signed = |header: &str| raw_token(header, &payload, keyring.primary());
        let valid = signed(&header(Some(kid), r#","crit":["exp"]"#));
        for token in [
            tamper(&valid),
            valid,
            signed(&header(Some("nobody"), r#","crit":["exp"]"#)),
            signed(&header(None, r#","crit":"x""#)),
            signed(&header(Some(kid), r#","crit":null"#)),
            signed(&header(Some(kid), r#","crit":[]"#)),
        ] {
            assert!(
                matches!(
                    verifier.verify_token(&token),
                    Err(TokenError::Malformed("unsupported critical header"))
                ),
                "{:?}",
                verifier.verify_token(&token)
            );
        }
    }

    #[test]
    fn standard_external_headers_verify_with_and_without_a_kid() {
        let keyring = ring(1);
        let key = keyring.primary();
        let kid = key.id().as_str();
        let clock = ManualClock::at_unix(T0);
        let verifier = verifier(&keyring, &clock);
        let payload = format!(r#"{{"sub":"u","exp":{},"tenant":"t"}}"#, T0 + 60);
        let ours = sign(&keyring, json!({"sub": "u", "exp": T0 + 60, "tenant": "t"}));
        let expected = verifier.verify_token(&ours).unwrap();
        for header in [
            r#"{"alg":"HS256","typ":"JWT"}"#.to_owned(),
            format!(r#"{{"alg":"HS256","typ":"JWT","kid":"{kid}"}}"#),
            format!(r#"{{"kid":"{kid}","alg":"HS256"}}"#),
            format!(r#"{{ "typ" : "at+jwt", "alg" : "HS\u0032\u0035\u0036", "kid":"{kid}" }}"#),
            // Header members that would bring a key of their own are ignored.
            r#"{"alg":"HS256","jku":"https://evil.test/jwks","jwk":{"kty":"oct","k":"AAAA"}}"#
                .to_owned(),
        ] {
            let token = raw_token(&header, &payload, key);
            assert_eq!(verifier.verify_token(&token).unwrap(), expected, "{header}");
            assert!(
                matches!(
                    verifier.verify_token(&tamper(&token)),
                    Err(TokenError::BadSignature)
                ),
                "{header}"
            );
        }
    }

    /// Each refusal with the reason it is reported as, under a verifier
    /// with one key and one with a second key of another algorithm: the
    /// answers are the same.
    #[test]
    fn every_refusal_names_its_reason() {
        let keyring = ring(1);
        let key = keyring.primary();
        let kid = key.id().as_str();
        let clock = ManualClock::at_unix(T0);
        let one = verifier(&keyring, &clock);
        let two = JwtVerifier::builder()
            .keyring(&keyring)
            .public_key_pem("unused", JwtAlgorithm::RS256, RSA_PUBLIC)
            .unwrap()
            .clock(clock.shared())
            .build()
            .unwrap();
        let exp = T0 + 60;
        let ok = format!(r#"{{"sub":"u","exp":{exp},"scope":"a b","tenant":"t"}}"#);
        let hs = |header: &str, payload: &str| raw_token(header, payload, key);
        let ours = |payload: &str| hs(&header(Some(kid), ""), payload);
        let claim = |extra: &str| ours(&format!(r#"{{"sub":"u","exp":{exp}{extra}}}"#));
        let good = ours(&ok);
        let mut cases: Vec<(String, &str)> = vec![
            (tamper(&good), "BadSignature"),
            (
                sign(&ring(2), json!({"sub": "u", "exp": exp})),
                "UnknownKey",
            ),
            (tamper(&hs(&header(Some("nobody"), ""), &ok)), "UnknownKey"),
            (tamper(&hs(&header(None, ""), &ok)), "BadSignature"),
            // Algorithms: another one under the key's kid, and ones no key
            // is ever pinned to.
            (
                hs(&format!(r#"{{"alg":"RS256","kid":"{kid}"}}"#), &ok),
                "WrongAlgorithm",
            ),
            (
                raw_token(&format!(r#"{{"alg":"HS384","kid":"{kid}"}}"#), &ok, key),
                r#"Malformed("unsupported alg")"#,
            ),
            (
                hs(&format!(r#"{{"alg":"none","kid":"{kid}"}}"#), &ok),
                r#"Malformed("unsupported alg")"#,
            ),
            // Headers that are not a JOSE header.
            (hs("not json", &ok), "BAD_HEADER"),
            (hs(r#"["HS256"]"#, &ok), "BAD_HEADER"),
            (hs(r#"{"typ":"JWT"}"#, &ok), "BAD_HEADER"),
            (hs(r#"{"alg":7}"#, &ok), "BAD_HEADER"),
            (hs(r#"{"alg":"HS256","kid":7}"#, &ok), "BAD_HEADER"),
            (hs(r#"{"alg":"HS256","alg":"HS256"}"#, &ok), "BAD_HEADER"),
            // Payloads: not an object, not JSON, repeated checked claims.
            (ours("[1]"), "BAD_PAYLOAD"),
            (ours("null"), "BAD_PAYLOAD"),
            (ours("{"), "BAD_PAYLOAD"),
            (
                ours(&format!(r#"{{"sub":"u","exp":{exp},"exp":{exp}}}"#)),
                "BAD_PAYLOAD",
            ),
            (claim(r#","aud":"x","aud":"x""#), "BAD_PAYLOAD"),
            (claim(r#","nbf":1,"nbf":1"#), "BAD_PAYLOAD"),
            // Registered claims of the wrong type.
            (
                ours(r#"{"sub":"u","exp":"soon"}"#),
                r#"Malformed("exp is not a non-negative integer")"#,
            ),
            (
                ours(&format!(r#"{{"sub":"u","exp":{exp}.5}}"#)),
                r#"Malformed("exp is not a non-negative integer")"#,
            ),
            (
                ours(&format!(r#"{{"sub":7,"exp":{exp}}}"#)),
                r#"Malformed("sub is missing or not a non-empty string")"#,
            ),
            (
                ours(&format!(r#"{{"exp":{exp}}}"#)),
                r#"Malformed("sub is missing or not a non-empty string")"#,
            ),
            (ours(r#"{"sub":"u"}"#), r#"Malformed("exp is missing")"#),
            (claim(r#","iss":1"#), r#"Malformed("iss is not a string")"#),
            (
                claim(r#","aud":["x",1]"#),
                r#"Malformed("aud is not a string or a list of strings")"#,
            ),
            (
                claim(r#","nbf":"x""#),
                r#"Malformed("nbf is not an integer")"#,
            ),
            (claim(r#","typ":3"#), r#"Malformed("typ is not a string")"#),
            (
                claim(r#","sv":-1"#),
                r#"Malformed("a registered claim has the wrong type")"#,
            ),
            // Audiences with none configured, time, type.
            (claim(r#","aud":"x""#), "WrongAudience"),
            (claim(r#","aud":[]"#), "WrongAudience"),
            (
                ours(&format!(r#"{{"sub":"u","exp":{}}}"#, T0 - 60)),
                "Expired",
            ),
            (claim(&format!(r#","nbf":{}"#, T0 + 600)), "NotYetValid"),
            (
                claim(r#","typ":"refresh""#),
                r#"Invalid("a refresh token is not an access token")"#,
            ),
            // Not three segments.
            ("not.a.jwt".to_owned(), "BAD_HEADER"),
            ("onlyonepart".to_owned(), "NOT_COMPACT"),
            ("a.b".to_owned(), "NOT_COMPACT"),
            (format!("{good}.x"), "NOT_COMPACT"),
            (String::new(), "NOT_COMPACT"),
            (
                format!("{}!", &good[..good.len() - 1]),
                "BAD_SIGNATURE_TEXT",
            ),
            (
                format!("{good}{}", "A".repeat(DEFAULT_MAX_JWT_LEN)),
                r#"Malformed("token too long")"#,
            ),
        ];
        cases.push((good.clone(), "Ok"));
        let named = |answer: Result<Claims, TokenError>| match answer {
            Ok(_) => "Ok".to_owned(),
            Err(e) => {
                let text = format!("{e:?}");
                [
                    (NOT_COMPACT, "NOT_COMPACT"),
                    (BAD_HEADER, "BAD_HEADER"),
                    (BAD_SIGNATURE_TEXT, "BAD_SIGNATURE_TEXT"),
                    (
                        TokenError::Malformed(
                            "payload is not a JSON object, or repeats a checked claim",
                        ),
                        "BAD_PAYLOAD",
                    ),
                ]
                .into_iter()
                .find(|(known, _)| format!("{known:?}") == text)
                .map_or(text, |(_, name)| name.to_owned())
            }
        };
        for verifier in [&one, &two] {
            for (token, want) in &cases {
                assert_eq!(named(verifier.verify_token(token)), *want, "{token}");
            }
        }
        let claims = one.verify_token(&good).unwrap();
        assert_eq!(claims.extra["tenant"], "t");
        assert!(claims.scopes.allows("b"));
    }

    #[test]
    fn issuer_and_audience_are_checked_after_the_claim_types() {
        let keyring = ring(1);
        let key = keyring.primary();
        let kid = key.id().as_str();
        let clock = ManualClock::at_unix(T0);
        let scoped = JwtVerifier::builder()
            .keyring(&keyring)
            .issuer("https://idp.example.test")
            .audience("reports-api")
            .audience("mobile")
            .clock(clock.shared())
            .build()
            .unwrap();
        let exp = T0 + 60;
        let token = |rest: &str| {
            raw_token(
                &header(Some(kid), ""),
                &format!(r#"{{"sub":"u","exp":{exp}{rest}}}"#),
                key,
            )
        };
        let iss = r#","iss":"https://idp.example.test""#;
        for aud in [r#""mobile""#, r#"["x","reports-api"]"#] {
            let claims = scoped.verify_token(&token(&format!(r#"{iss},"aud":{aud}"#)));
            assert!(claims.is_ok(), "{aud}");
        }
        for (rest, want) in [
            (r#","aud":"mobile""#.to_owned(), "WrongIssuer"),
            (
                r#","iss":"https://other.test","aud":"mobile""#.to_owned(),
                "WrongIssuer",
            ),
            (iss.to_owned(), "WrongAudience"),
            (format!(r#"{iss},"aud":[]"#), "WrongAudience"),
            (format!(r#"{iss},"aud":"billing""#), "WrongAudience"),
            (
                format!(r#"{iss},"aud":{{"a":1}}"#),
                r#"Malformed("aud is not a string or a list of strings")"#,
            ),
            (
                r#","iss":["https://idp.example.test"],"aud":"mobile""#.to_owned(),
                r#"Malformed("iss is not a string")"#,
            ),
        ] {
            let answer = scoped.verify_token(&token(&rest)).err();
            assert_eq!(format!("{answer:?}"), format!("Some({want})"), "{rest}");
        }
        // An expired token from the wrong issuer is refused for its issuer.
        let stale = raw_token(
            &header(Some(kid), ""),
            &format!(
                r#"{{"sub":"u","exp":{},"iss":"x","aud":"mobile"}}"#,
                T0 - 600
            ),
            key,
        );
        assert!(matches!(
            scoped.verify_token(&stale),
            Err(TokenError::WrongIssuer)
        ));
    }

    #[test]
    fn type_rules_pick_the_token_kind() {
        let keyring = ring(1);
        let clock = ManualClock::at_unix(T0);
        let verifier = verifier(&keyring, &clock);
        let refresh = sign(
            &keyring,
            json!({"sub": "u", "exp": T0 + 60, "typ": "refresh"}),
        );
        let other = sign(&keyring, json!({"sub": "u", "exp": T0 + 60, "typ": "id"}));
        assert!(matches!(
            verifier.verify_as(&refresh, TypeRule::NotRefresh),
            Err(TokenError::Invalid(_))
        ));
        let claims = verifier
            .verify_as(&refresh, TypeRule::Exactly(REFRESH_TYP))
            .unwrap();
        assert!(!claims.extra.contains_key("typ"));
        assert!(verifier.verify_as(&refresh, TypeRule::Any).is_ok());
        assert!(matches!(
            verifier.verify_as(&other, TypeRule::Exactly(REFRESH_TYP)),
            Err(TokenError::Invalid(_))
        ));
        // Another issuer's `typ` stays visible to an access verification.
        assert_eq!(verifier.verify_token(&other).unwrap().extra["typ"], "id");
    }

    /// Repeats of claims the verifier neither checks nor identifies by.
    fn dup_payload(exp: u64) -> String {
        format!(
            r#"{{"sub":"u","exp":{exp},"sv":1,"sv":2,"scope":"a","scp":"c","scope":"b","jti":"x","jti":"y","t":1,"t":2}}"#
        )
    }

    #[test]
    fn repeated_claims_keep_their_last_occurrence() {
        let keyring = ring(1);
        let clock = ManualClock::at_unix(T0);
        let token = raw_token(
            &header(Some(keyring.primary().id().as_str()), ""),
            &dup_payload(T0 + 60),
            keyring.primary(),
        );
        let claims = verifier(&keyring, &clock).verify_token(&token).unwrap();
        assert_eq!(claims.session_version, Some(2));
        assert!(claims.scopes.allows("b") && !claims.scopes.allows("a"));
        assert!(!claims.scopes.allows("c"));
        assert_eq!(claims.token_id.as_deref(), Some("y"));
        assert_eq!(claims.extra.len(), 1, "{:?}", claims.extra);
        assert_eq!(claims.extra["t"], 2);
        // As the same payload read as a map and lifted by `from_map`.
        let map: Map<String, Value> = serde_json::from_str(&dup_payload(T0 + 60)).unwrap();
        assert_eq!(Claims::from_map(map).unwrap(), claims);
    }

    #[test]
    fn repeated_checked_claims_are_refused() {
        let keyring = ring(1);
        let key = keyring.primary();
        let clock = ManualClock::at_unix(T0);
        let verifier = JwtVerifier::builder()
            .keyring(&keyring)
            .issuer("i")
            .audience("a")
            .clock(clock.shared())
            .build()
            .unwrap();
        let base = format!(r#""sub":"u","exp":{},"iss":"i","aud":"a","nbf":1"#, T0 + 60);
        let good = |payload: &str| raw_token(&header(Some(key.id().as_str()), ""), payload, key);
        assert!(verifier.verify_token(&good(&format!("{{{base}}}"))).is_ok());
        for repeated in [
            r#""sub":"v""#,
            r#""exp":1"#,
            r#""iss":"i""#,
            r#""aud":"a""#,
            r#""nbf":1"#,
        ] {
            let token = good(&format!("{{{base},{repeated}}}"));
            assert!(
                matches!(verifier.verify_token(&token), Err(TokenError::Malformed(_))),
                "{repeated}"
            );
        }
    }

    #[test]
    fn debug_lists_key_ids_and_no_secret() {
        let verifier = JwtVerifier::builder()
            .hs256_secret("b-key", &[7; 32])
            .unwrap()
            .public_key_pem("a-key", JwtAlgorithm::RS256, RSA_PUBLIC)
            .unwrap()
            .build()
            .unwrap();
        let text = format!("{verifier:?}");
        assert!(text.contains(r#"kids: ["a-key", "b-key"]"#), "{text}");
        assert!(!text.contains("[7, 7"), "{text}");
    }
}
