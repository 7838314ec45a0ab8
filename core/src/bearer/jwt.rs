//! JWT verification (feature `jwt`): HS256 from the keyring, RS256, ES256
//! and EdDSA from configured public keys.
//!
//! What a [`JwtVerifier`] guarantees:
//!
//! - A token names its key in the header `kid`; an unknown `kid` is refused.
//!   Without a `kid` (RFC 7515 makes it optional, and many HS256 issuers
//!   omit it) the token is verified with the verifier's one key for the
//!   header's `alg`, and refused when there is none or more than one. Each
//!   key is pinned to ONE algorithm, so `alg: none`
//!   (not even parsed), HS256 presented against an RSA key (the classic
//!   confusion attack), or RS256 against an HMAC key are refused before any
//!   signature math.
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
//! - Issuer and audience are enforced whenever configured: a token WITHOUT
//!   `iss`/`aud` is refused then too (jsonwebtoken only checks claims that are
//!   present unless they are also marked required — keystile marks them).
//!   With no audience configured, a token that carries `aud` is refused, as
//!   RFC 7519 §4.1.3 asks.
//! - `exp` is required. `exp` and `nbf` are checked against the injected
//!   [`Clock`](crate::clock::Clock), with a leeway (default 30 s): keystile
//!   turns off jsonwebtoken's own time checks because they read the system
//!   clock, which tests cannot move and deployments cannot pin.
//! - Tokens longer than 8 KiB are refused before any decoding; a `crit`
//!   header (an extension keystile does not implement) is refused.
//! - A token whose payload says `"typ": "refresh"` is never a bearer
//!   credential (see [`TokenLifecycle`](crate::bearer::TokenLifecycle)).
//! - HS256 tokens whose header is byte for byte the one keystile writes
//!   ([`sign_hs256`], [`TokenLifecycle`](crate::bearer::TokenLifecycle))
//!   are checked with an HMAC state keyed once and a single payload parse;
//!   every other token goes through jsonwebtoken. Both paths give every
//!   token the same answer.
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

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use crate::bearer::claims::{ClaimSlots, UnrepeatedClaimSlots};
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
    /// Ed25519.
    EdDSA,
}

impl JwtAlgorithm {
    fn algorithm(self) -> Algorithm {
        match self {
            Self::RS256 => Algorithm::RS256,
            Self::ES256 => Algorithm::ES256,
            Self::EdDSA => Algorithm::EdDSA,
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
    /// A shared HS256 secret is shorter than 32 bytes.
    #[error("HS256 secrets must be at least {MIN_KEY_LEN} bytes")]
    ShortSecret,
    /// A PEM or JWK could not be read as a key for its algorithm.
    #[error("invalid {0} key")]
    InvalidKey(&'static str),
    /// A JWK is of a kind keystile does not verify with (octet keys, P-384,
    /// a missing `kid`, an algorithm other than RS256/ES256/EdDSA).
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

struct VerifyKey {
    key: DecodingKey,
    validation: Validation,
}

/// The verification keys by `kid`.
#[expect(
    clippy::large_enum_variant,
    reason = "built once per verifier and kept behind its Arc; boxing would add a pointer chase per token"
)]
enum Keys {
    /// Exactly one key (the common case: a keyring without fallbacks, one
    /// identity provider key): verified against directly, without reading
    /// the header first.
    One { kid: String, key: VerifyKey },
    /// Two or more keys: the header's `kid` picks one.
    Many(HashMap<String, VerifyKey>),
}

/// An HS256 key whose tokens are checked without jsonwebtoken when they
/// carry exactly the header keystile's own signers write for it (see
/// [`JwtVerifier::verify_own_hs256`]).
struct OwnHs256Key {
    /// The base64url header segment `{"typ":"JWT","alg":"HS256","kid":…}`.
    header: Box<[u8]>,
    /// The HMAC state keyed once with the key's secret.
    mac: MacKey,
}

struct Inner {
    keys: Keys,
    own_hs256: Vec<OwnHs256Key>,
    issuer: Option<String>,
    audiences: Vec<String>,
    leeway: u64,
    clock: SharedClock,
    max_len: usize,
}

/// Verifies JWTs; see the [module docs](self). Cloning is cheap.
#[derive(Clone)]
pub struct JwtVerifier {
    inner: Arc<Inner>,
}

/// Configures a [`JwtVerifier`].
#[must_use]
pub struct JwtVerifierBuilder {
    keys: Vec<(String, DecodingKey, Algorithm)>,
    issuers: Vec<String>,
    audiences: Vec<String>,
    leeway: Duration,
    clock: SharedClock,
    max_len: usize,
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
        }
    }

    /// Verifies `token` synchronously (no revocation list is consulted: a
    /// `JwtVerifier` holds none).
    pub fn verify_token(&self, token: &str) -> Result<Claims, TokenError> {
        self.verify_as(token, TypeRule::NotRefresh)
    }

    pub(crate) fn verify_as(&self, token: &str, rule: TypeRule) -> Result<Claims, TokenError> {
        let inner = &*self.inner;
        if token.len() > inner.max_len {
            return Err(TokenError::Malformed("token too long"));
        }
        if let Some(verdict) = self.verify_own_hs256(token.as_bytes(), rule) {
            return verdict;
        }
        let payload = match &inner.keys {
            // Verified straight away: the header is parsed by `decode`, and
            // parsed up front only when `decode` fails, so that the refusal
            // is the one the header checks of the other arm give first.
            Keys::One { kid, key } => {
                match jsonwebtoken::decode::<ClaimSlots>(token, &key.key, &key.validation) {
                    Ok(data) => {
                        check_header(&data.header, kid)?;
                        data.claims
                    }
                    Err(e) => {
                        let header = jsonwebtoken::decode_header(token).map_err(|_| BAD_HEADER)?;
                        check_header(&header, kid)?;
                        return Err(map_error(e.kind()));
                    }
                }
            }
            Keys::Many(keys) => {
                let header = jsonwebtoken::decode_header(token).map_err(|_| BAD_HEADER)?;
                refuse_crit(&header)?;
                let key = match header.kid.as_deref() {
                    Some(kid) => keys.get(kid),
                    None => only_key_for(keys, header.alg),
                }
                .ok_or(TokenError::UnknownKey)?;
                jsonwebtoken::decode::<ClaimSlots>(token, &key.key, &key.validation)
                    .map_err(|e| map_error(e.kind()))?
                    .claims
            }
        };
        self.finish(payload, rule)
    }

    /// The common case, answered without jsonwebtoken: a token whose header
    /// segment is byte for byte the one keystile's own signers
    /// ([`sign_hs256`], [`TokenLifecycle`](crate::bearer::TokenLifecycle))
    /// write for one of this verifier's HS256 keys. jsonwebtoken would parse
    /// that header twice, key a new HMAC state (two SHA-256 blocks) and parse
    /// the payload twice on every call; here the MAC state was keyed once and
    /// the payload is parsed once.
    ///
    /// It answers only where its verdict is the one the jsonwebtoken path
    /// gives, with the same claims or the same error, and returns `None`
    /// otherwise, for the caller to run that path:
    ///
    /// - the header is one that passes every header check (`alg` HS256, the
    ///   key's `kid`, no `crit`), so a well-formed signature that does not
    ///   match is [`TokenError::BadSignature`] there too (jsonwebtoken reads
    ///   no claim before the signature);
    /// - with the signature verified, the payload checks are jsonwebtoken's,
    ///   narrowed: `exp` a whole number, `sub` absent or a string, `nbf`
    ///   absent or a whole number, `iss` the configured issuer
    ///   (a string), `aud` a string or list naming a configured audience
    ///   (absent when none is configured), none of the claims jsonwebtoken
    ///   reads repeated. Such a payload passes jsonwebtoken, which hands the
    ///   same claims to the same [`finish`](Self::finish).
    fn verify_own_hs256(&self, token: &[u8], rule: TypeRule) -> Option<Result<Claims, TokenError>> {
        let inner = &*self.inner;
        let (header, rest) = split_at_dot(token)?;
        let key = inner.own_hs256.iter().find(|k| *k.header == *header)?;
        let (payload_text, signature_text) = split_at_dot(rest)?;
        let signature: [u8; TAG_LEN] = encoding::decode_array(signature_text)?;
        let signed = &token[..header.len() + 1 + payload_text.len()];
        if !key.mac.verify(signed, &signature) {
            return Some(Err(TokenError::BadSignature));
        }
        let json = encoding::decode(payload_text).ok()?;
        let UnrepeatedClaimSlots(payload) = serde_json::from_slice(&json).ok()?;
        let exp_ok = payload.exp.as_ref().is_some_and(Value::is_u64);
        // jsonwebtoken reads `sub` and `nbf` too, and refuses the whole
        // payload for some shapes of them (a list, an object).
        let sub_ok = matches!(payload.sub, None | Some(Value::String(_)));
        let nbf_ok = payload.extra.get("nbf").is_none_or(Value::is_u64);
        let issuer_ok = match &inner.issuer {
            None => true,
            Some(want) => matches!(&payload.iss, Some(Value::String(iss)) if iss == want),
        };
        let names_audience = |aud: &str| inner.audiences.iter().any(|a| a == aud);
        let audience_ok = match &payload.aud {
            None => inner.audiences.is_empty(),
            Some(Value::String(aud)) => names_audience(aud),
            // jsonwebtoken reads a list with other members than strings as
            // no audience at all.
            Some(Value::Array(auds)) => {
                auds.iter().all(Value::is_string)
                    && auds.iter().filter_map(Value::as_str).any(names_audience)
            }
            Some(_) => false,
        };
        (exp_ok && sub_ok && nbf_ok && issuer_ok && audience_ok).then(|| self.finish(payload, rule))
    }

    /// The checks keystile makes on a payload whose signature, issuer and
    /// audience are verified: `exp` and `nbf` on the injected clock, the
    /// `typ` rule, and the registered claims' types.
    fn finish(&self, mut payload: ClaimSlots, rule: TypeRule) -> Result<Claims, TokenError> {
        let inner = &*self.inner;
        let now = inner.clock.unix_seconds();
        let exp = payload
            .exp
            .as_ref()
            .and_then(Value::as_u64)
            .ok_or(TokenError::Malformed("exp is missing or not an integer"))?;
        if now >= exp.saturating_add(inner.leeway) {
            return Err(TokenError::Expired);
        }
        match payload.extra.get("nbf") {
            None => {}
            Some(nbf) => {
                let nbf = nbf
                    .as_u64()
                    .ok_or(TokenError::Malformed("nbf is not an integer"))?;
                if nbf > now.saturating_add(inner.leeway) {
                    return Err(TokenError::NotYetValid);
                }
            }
        }
        let typ = match payload.extra.get("typ") {
            None => None,
            Some(Value::String(t)) => Some(t.as_str()),
            Some(_) => return Err(TokenError::Malformed("typ is not a string")),
        };
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
            payload.extra.remove("typ");
        }
        payload
            .into_claims()
            .map_err(|_| TokenError::Malformed("a registered claim has the wrong type"))
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

/// The text before and after the first `.`.
fn split_at_dot(text: &[u8]) -> Option<(&[u8], &[u8])> {
    let dot = text.iter().position(|&b| b == b'.')?;
    Some((&text[..dot], &text[dot + 1..]))
}

/// A token whose header does not parse as a JWS header.
const BAD_HEADER: TokenError = TokenError::Malformed("header is not a supported JWS header");

/// Refuses a header with `crit`: no extension is implemented.
fn refuse_crit(header: &Header) -> Result<(), TokenError> {
    if header.crit.is_some() {
        return Err(TokenError::Malformed("unsupported critical header"));
    }
    Ok(())
}

/// The header checks of a single-key verifier, in the order the checks of
/// a verifier with several keys run: no `crit`, then a `kid`, if there is
/// one, names the key (the algorithm is checked by `decode` against the
/// key's own).
fn check_header(header: &Header, kid: &str) -> Result<(), TokenError> {
    refuse_crit(header)?;
    if header.kid.as_deref().is_some_and(|named| named != kid) {
        return Err(TokenError::UnknownKey);
    }
    Ok(())
}

/// The one key pinned to `alg`, for a token without a `kid`; none when no
/// key or several keys use that algorithm (never a guess between them).
fn only_key_for(keys: &HashMap<String, VerifyKey>, alg: Algorithm) -> Option<&VerifyKey> {
    let mut matching = keys.values().filter(|k| k.validation.algorithms == [alg]);
    match (matching.next(), matching.next()) {
        (Some(key), None) => Some(key),
        _ => None,
    }
}

fn map_error(kind: &ErrorKind) -> TokenError {
    match kind {
        ErrorKind::InvalidSignature => TokenError::BadSignature,
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => TokenError::WrongAlgorithm,
        ErrorKind::InvalidAudience => TokenError::WrongAudience,
        ErrorKind::MissingRequiredClaim(claim) if claim == "aud" => TokenError::WrongAudience,
        ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
        ErrorKind::MissingRequiredClaim(claim) if claim == "iss" => TokenError::WrongIssuer,
        ErrorKind::MissingRequiredClaim(_) | ErrorKind::InvalidClaimFormat(_) => {
            TokenError::Malformed("a required claim is missing or not an integer")
        }
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::ImmatureSignature => TokenError::NotYetValid,
        ErrorKind::Base64(_)
        | ErrorKind::Json(_)
        | ErrorKind::Utf8(_)
        | ErrorKind::InvalidToken => TokenError::Malformed("not a compact JWS with a JSON payload"),
        // Key-shape errors at verification time mean the signature bytes do
        // not fit the key (e.g. a truncated ECDSA signature).
        _ => TokenError::BadSignature,
    }
}

#[async_trait]
impl TokenVerifier for JwtVerifier {
    async fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        self.verify_token(token)
    }
}

impl fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut kids: Vec<&String> = match &self.inner.keys {
            Keys::One { kid, .. } => vec![kid],
            Keys::Many(keys) => keys.keys().collect(),
        };
        kids.sort();
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
            self.keys.push((
                key.id().as_str().to_owned(),
                DecodingKey::from_secret(secret.as_ref()),
                Algorithm::HS256,
            ));
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
        self.keys.push((
            kid.to_owned(),
            DecodingKey::from_secret(secret),
            Algorithm::HS256,
        ));
        Ok(self)
    }

    /// Verifies `algorithm` tokens whose header names `kid` with a PEM
    /// public key (`-----BEGIN PUBLIC KEY-----`; PKCS#1 RSA keys too).
    pub fn public_key_pem(
        mut self,
        kid: &str,
        algorithm: JwtAlgorithm,
        pem: &[u8],
    ) -> Result<Self, JwtConfigError> {
        check_kid(kid)?;
        let key = match algorithm {
            JwtAlgorithm::RS256 => DecodingKey::from_rsa_pem(pem),
            JwtAlgorithm::ES256 => DecodingKey::from_ec_pem(pem),
            JwtAlgorithm::EdDSA => DecodingKey::from_ed_pem(pem),
        }
        .map_err(|_| JwtConfigError::InvalidKey(algorithm_name(algorithm)))?;
        self.keys.push((kid.to_owned(), key, algorithm.algorithm()));
        Ok(self)
    }

    /// Adds one public JWK (RFC 7517) as JSON. It must carry a `kid`; its
    /// algorithm comes from `alg` when present, else from the key type
    /// (RSA → RS256, EC P-256 → ES256, OKP Ed25519 → EdDSA).
    pub fn jwk(self, json: &str) -> Result<Self, JwtConfigError> {
        let jwk: Jwk =
            serde_json::from_str(json).map_err(|_| JwtConfigError::UnsupportedJwk("not a JWK"))?;
        self.add_jwk(&jwk)
    }

    /// Adds every key of a JWK Set document (`{"keys": [...]}`), e.g. an
    /// identity provider's `jwks_uri` answer fetched at start-up.
    pub fn jwk_set(mut self, json: &str) -> Result<Self, JwtConfigError> {
        let set: JwkSet = serde_json::from_str(json)
            .map_err(|_| JwtConfigError::UnsupportedJwk("not a JWK Set"))?;
        for jwk in &set.keys {
            self = self.add_jwk(jwk)?;
        }
        Ok(self)
    }

    fn add_jwk(mut self, jwk: &Jwk) -> Result<Self, JwtConfigError> {
        let kid = jwk
            .common
            .key_id
            .as_deref()
            .ok_or(JwtConfigError::UnsupportedJwk("no kid"))?;
        check_kid(kid)?;
        let algorithm = match (&jwk.algorithm, jwk.common.key_algorithm) {
            (AlgorithmParameters::RSA(_), None | Some(KeyAlgorithm::RS256)) => JwtAlgorithm::RS256,
            (AlgorithmParameters::EllipticCurve(p), None | Some(KeyAlgorithm::ES256))
                if p.curve == EllipticCurve::P256 =>
            {
                JwtAlgorithm::ES256
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
                    "only RS256, ES256 (P-256) and EdDSA (Ed25519) keys are supported",
                ));
            }
        };
        let key = DecodingKey::from_jwk(jwk)
            .map_err(|_| JwtConfigError::InvalidKey(algorithm_name(algorithm)))?;
        self.keys.push((kid.to_owned(), key, algorithm.algorithm()));
        Ok(self)
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

    /// The verifier; fails without keys, with two keys sharing a `kid`, or
    /// with two different issuers.
    pub fn build(mut self) -> Result<JwtVerifier, JwtConfigError> {
        if self.keys.is_empty() {
            return Err(JwtConfigError::NoKeys);
        }
        self.issuers.sort();
        self.issuers.dedup();
        if self.issuers.len() > 1 {
            return Err(JwtConfigError::SeveralIssuers);
        }
        let issuer = self.issuers.pop();
        let mut keys = HashMap::with_capacity(self.keys.len());
        let mut own_hs256 = Vec::new();
        for (kid, key, algorithm) in self.keys {
            let validation = validation(algorithm, issuer.as_deref(), &self.audiences);
            if keys.contains_key(&kid) {
                return Err(JwtConfigError::DuplicateKeyId(kid));
            }
            if algorithm == Algorithm::HS256
                && let Ok(secret) = key.try_get_hmac_secret()
                && let Some(header) = hs256_header_segment(&kid)
            {
                own_hs256.push(OwnHs256Key {
                    header,
                    mac: MacKey::new(secret),
                });
            }
            keys.insert(kid, VerifyKey { key, validation });
        }
        let keys = if keys.len() == 1
            && let Some((kid, key)) = keys.drain().next()
        {
            Keys::One { kid, key }
        } else {
            Keys::Many(keys)
        };
        Ok(JwtVerifier {
            inner: Arc::new(Inner {
                keys,
                own_hs256,
                issuer,
                audiences: self.audiences,
                leeway: self.leeway.as_secs(),
                clock: self.clock,
                max_len: self.max_len,
            }),
        })
    }
}

/// jsonwebtoken's checks for one key: its single algorithm, issuer and
/// audience REQUIRED when configured (jsonwebtoken#493), time checks off
/// (done against the injected clock instead).
fn validation(algorithm: Algorithm, issuer: Option<&str>, audiences: &[String]) -> Validation {
    let mut validation = Validation::new(algorithm);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.leeway = 0;
    let mut required = vec!["exp"];
    if let Some(issuer) = issuer {
        validation.set_issuer(&[issuer]);
        required.push("iss");
    }
    if !audiences.is_empty() {
        validation.set_audience(audiences);
        required.push("aud");
    }
    validation.set_required_spec_claims(&required);
    validation
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

fn algorithm_name(algorithm: JwtAlgorithm) -> &'static str {
    match algorithm {
        JwtAlgorithm::RS256 => "RS256",
        JwtAlgorithm::ES256 => "ES256",
        JwtAlgorithm::EdDSA => "EdDSA",
    }
}

/// The HS256 secret of a keyring key: HMAC-SHA256(key, label).
fn derived_hs256_secret(key: &SigningKey) -> Zeroizing<[u8; TAG_LEN]> {
    Zeroizing::new(MacKey::new(key.bytes()).compute(HS256_LABEL))
}

/// The JOSE header keystile writes on its HS256 tokens.
pub(crate) fn hs256_header(kid: &str) -> Header {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(kid.to_owned());
    header
}

/// The base64url segment jsonwebtoken writes for [`hs256_header`]: the
/// header serialized as JSON, then encoded.
fn hs256_header_segment(kid: &str) -> Option<Box<[u8]>> {
    let json = serde_json::to_vec(&hs256_header(kid)).ok()?;
    Some(encoding::encode(json).into_bytes().into_boxed_slice())
}

/// The HS256 signing key (and its `kid`) of `key`.
pub(crate) fn hs256_encoding_key(key: &SigningKey) -> EncodingKey {
    EncodingKey::from_secret(derived_hs256_secret(key).as_ref())
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
    let header = hs256_header(keyring.primary().id().as_str());
    jsonwebtoken::encode(&header, claims, &hs256_encoding_key(keyring.primary()))
        .map_err(|_| JwtSignError)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use serde_json::json;

    const T0: u64 = 1_700_000_000;

    fn ring(byte: u8) -> Keyring {
        Keyring::new(SigningKey::from_bytes(&[byte; 32]).unwrap())
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
    fn derived_secret_is_not_the_raw_key() {
        let keyring = ring(1);
        let raw = jsonwebtoken::encode(
            &jsonwebtoken::Header {
                kid: Some(keyring.primary().id().to_string()),
                ..jsonwebtoken::Header::new(Algorithm::HS256)
            },
            &json!({"sub": "u", "exp": T0 + 60}),
            &EncodingKey::from_secret(&[1; 32]),
        )
        .unwrap();
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
        let err = JwtVerifier::builder()
            .hs256_secret("k", &[0; 16])
            .err()
            .unwrap();
        assert_eq!(err, JwtConfigError::ShortSecret);
        let err = JwtVerifier::builder()
            .hs256_secret("k", &[0; 32])
            .and_then(|b| b.hs256_secret("k", &[1; 32]))
            .unwrap()
            .build()
            .unwrap_err();
        assert_eq!(err, JwtConfigError::DuplicateKeyId("k".into()));
        assert!(
            JwtVerifier::builder()
                .public_key_pem("k", JwtAlgorithm::RS256, b"junk")
                .is_err()
        );
        assert!(JwtVerifier::builder().hs256_secret("", &[0; 32]).is_err());
        assert!(
            JwtVerifier::builder()
                .jwk(r#"{"kty":"oct","k":"AAAA","kid":"x"}"#)
                .is_err()
        );
    }

    /// A token with a hand-written header and payload (JSON text as given,
    /// duplicate keys included), signed with `alg` under `key`'s HS256
    /// secret.
    fn raw_token(header: &str, payload: &str, key: &SigningKey, alg: Algorithm) -> String {
        use base64::Engine;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let signature =
            jsonwebtoken::crypto::sign(message.as_bytes(), &hs256_encoding_key(key), alg).unwrap();
        format!("{message}.{signature}")
    }

    fn header(kid: Option<&str>, extra: &str) -> String {
        match kid {
            Some(kid) => format!(r#"{{"alg":"HS256","typ":"JWT","kid":"{kid}"{extra}}}"#),
            None => format!(r#"{{"alg":"HS256","typ":"JWT"{extra}}}"#),
        }
    }

    /// Flips one character of the signature.
    fn tamper(token: &str) -> String {
        let mut bytes = token.as_bytes().to_vec();
        let at = token.rfind('.').unwrap() + 5;
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn single_key_refuses_an_unknown_kid_before_a_bad_signature() {
        let keyring = ring(1);
        let clock = ManualClock::at_unix(T0);
        let verifier = verifier(&keyring, &clock);
        let payload = format!(r#"{{"sub":"u","exp":{}}}"#, T0 + 60);
        // Another key's kid and signature: both wrong.
        let other = ring(2);
        let token = sign(&other, json!({"sub": "u", "exp": T0 + 60}));
        assert!(matches!(
            verifier.verify_token(&token),
            Err(TokenError::UnknownKey)
        ));
        // An unknown kid, a tampered signature.
        let token = tamper(&raw_token(
            &header(Some("nobody"), ""),
            &payload,
            keyring.primary(),
            Algorithm::HS256,
        ));
        assert!(matches!(
            verifier.verify_token(&token),
            Err(TokenError::UnknownKey)
        ));
        // An unknown kid, yet a signature that verifies under the only key.
        let token = raw_token(
            &header(Some("nobody"), ""),
            &payload,
            keyring.primary(),
            Algorithm::HS256,
        );
        assert!(matches!(
            verifier.verify_token(&token),
            Err(TokenError::UnknownKey)
        ));
    }

    #[test]
    fn without_a_kid_the_only_key_of_the_algorithm_decides() {
        let keyring = ring(1);
        let clock = ManualClock::at_unix(T0);
        let verifier = verifier(&keyring, &clock);
        let payload = format!(r#"{{"sub":"u","exp":{}}}"#, T0 + 60);
        let valid = raw_token(
            &header(None, ""),
            &payload,
            keyring.primary(),
            Algorithm::HS256,
        );
        assert_eq!(verifier.verify_token(&valid).unwrap().subject, "u");
        assert!(matches!(
            verifier.verify_token(&tamper(&valid)),
            Err(TokenError::BadSignature)
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
    fn single_key_refuses_crit_even_with_a_valid_signature() {
        let keyring = ring(1);
        let clock = ManualClock::at_unix(T0);
        let verifier = verifier(&keyring, &clock);
        let kid = keyring.primary().id().as_str();
        let payload = format!(r#"{{"sub":"u","exp":{}}}"#, T0 + 60);
        let crit = r#","crit":["exp"]"#;
        let valid = raw_token(
            &header(Some(kid), crit),
            &payload,
            keyring.primary(),
            Algorithm::HS256,
        );
        let unknown_kid = raw_token(
            &header(Some("nobody"), crit),
            &payload,
            keyring.primary(),
            Algorithm::HS256,
        );
        for token in [valid.clone(), tamper(&valid), unknown_kid] {
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

    /// The single-key path refuses every token exactly as the path that
    /// reads the header first (a verifier with a second, unused key of
    /// another algorithm, so the HS256 key is still the only one for a
    /// token without a kid).
    #[test]
    fn single_key_and_several_keys_answer_alike() {
        const RSA_PUBLIC: &[u8] = include_bytes!("../../../tests/fixtures/rsa_public.pem");
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
        assert!(matches!(one.inner.keys, Keys::One { .. }));
        assert!(matches!(two.inner.keys, Keys::Many(_)));

        let exp = T0 + 60;
        let ok = format!(r#"{{"sub":"u","exp":{exp},"scope":"a b","tenant":"t"}}"#);
        let hs = |header: &str, payload: &str| raw_token(header, payload, key, Algorithm::HS256);
        let good = hs(&header(Some(kid), ""), &ok);
        let mut tokens = vec![
            good.clone(),
            tamper(&good),
            sign(&ring(2), json!({"sub": "u", "exp": exp})),
            tamper(&hs(&header(Some("nobody"), ""), &ok)),
            hs(&header(None, ""), &ok),
            tamper(&hs(&header(None, ""), &ok)),
            hs(&header(Some(kid), r#","crit":["x"]"#), &ok),
            tamper(&hs(&header(Some(kid), r#","crit":["x"]"#), &ok)),
            hs(&header(Some("nobody"), r#","crit":["x"]"#), &ok),
            hs(&header(None, r#","crit":"x""#), &ok),
            // The wrong algorithm, under the right and an unknown kid.
            raw_token(
                &format!(r#"{{"alg":"HS384","kid":"{kid}"}}"#),
                &ok,
                key,
                Algorithm::HS384,
            ),
            raw_token(
                r#"{"alg":"HS384","kid":"nobody"}"#,
                &ok,
                key,
                Algorithm::HS384,
            ),
            hs(&format!(r#"{{"alg":"none","kid":"{kid}"}}"#), &ok),
            hs("not json", &ok),
            // Payloads: not an object, not JSON, expired, wrong types,
            // duplicate keys, refresh tokens, nbf in the future.
            hs(&header(Some(kid), ""), "[1]"),
            hs(&header(Some(kid), ""), "null"),
            hs(&header(Some(kid), ""), "{"),
            hs(
                &header(Some(kid), ""),
                &format!(r#"{{"sub":"u","exp":{}}}"#, T0 - 60),
            ),
            hs(&header(Some(kid), ""), r#"{"sub":"u","exp":"soon"}"#),
            hs(
                &header(Some(kid), ""),
                &format!(r#"{{"sub":7,"exp":{exp}}}"#),
            ),
            hs(
                &header(Some(kid), ""),
                &format!(r#"{{"sub":"u","exp":{exp},"aud":"x"}}"#),
            ),
            hs(
                &header(Some(kid), ""),
                &format!(r#"{{"sub":"u","exp":{exp},"iss":1}}"#),
            ),
            hs(
                &header(Some(kid), ""),
                &format!(r#"{{"sub":"u","exp":{exp},"sub":"v","exp":"late","exp":{exp}}}"#),
            ),
            hs(&header(Some(kid), ""), &dup_payload(exp)),
            hs(
                &header(Some(kid), ""),
                &format!(r#"{{"sub":"u","exp":{exp},"typ":"refresh"}}"#),
            ),
            hs(
                &header(Some(kid), ""),
                &format!(r#"{{"sub":"u","exp":{exp},"nbf":{}}}"#, T0 + 600),
            ),
            "not.a.jwt".to_owned(),
            "onlyonepart".to_owned(),
            "a.b".to_owned(),
            "a.b.c.d".to_owned(),
            String::new(),
        ];
        tokens.push(format!("{good}{}", "A".repeat(DEFAULT_MAX_JWT_LEN)));
        for token in &tokens {
            assert_same_answers((&one, token), (&two, token), token);
        }
        let claims = one.verify_token(&good).unwrap();
        assert_eq!(claims.extra["tenant"], "t");
        assert!(claims.scopes.allows("b"));
    }

    /// Both verifications give the same answer (claims or error) under
    /// every type rule.
    fn assert_same_answers(
        (a, a_token): (&JwtVerifier, &str),
        (b, b_token): (&JwtVerifier, &str),
        context: &str,
    ) {
        for rule in [
            TypeRule::NotRefresh,
            TypeRule::Any,
            TypeRule::Exactly("refresh"),
        ] {
            assert_eq!(
                format!("{:?}", a.verify_as(a_token, rule)),
                format!("{:?}", b.verify_as(b_token, rule)),
                "{context}"
            );
        }
    }

    /// Repeats the claims jsonwebtoken does not read itself (it refuses a
    /// repeated `exp`, `nbf`, `sub`, `iss` or `aud`).
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
            Algorithm::HS256,
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

    /// The header jsonwebtoken writes for `kid` (`typ` first): tokens with
    /// it take the own HS256 path.
    fn own_header(kid: &str) -> String {
        String::from_utf8(serde_json::to_vec(&hs256_header(kid)).unwrap()).unwrap()
    }

    #[test]
    fn keystile_signed_tokens_take_the_own_path_and_others_do_not() {
        let keyring = ring(1);
        let key = keyring.primary();
        let kid = key.id().as_str();
        let clock = ManualClock::at_unix(T0);
        let verifier = verifier(&keyring, &clock);
        let payload = format!(r#"{{"sub":"u","exp":{}}}"#, T0 + 60);
        let signed = sign(&keyring, json!({"sub": "u", "exp": T0 + 60}));
        assert!(signed.starts_with(&encoding::encode(own_header(kid))));
        let own = raw_token(&own_header(kid), &payload, key, Algorithm::HS256);
        let reordered = raw_token(&header(Some(kid), ""), &payload, key, Algorithm::HS256);
        for token in [&signed, &own] {
            let claims = verifier
                .verify_own_hs256(token.as_bytes(), TypeRule::NotRefresh)
                .expect("own path")
                .unwrap();
            assert_eq!(claims, verifier.verify_token(token).unwrap());
        }
        assert!(
            verifier
                .verify_own_hs256(reordered.as_bytes(), TypeRule::NotRefresh)
                .is_none()
        );
        assert_eq!(
            verifier.verify_token(&reordered).unwrap(),
            verifier.verify_token(&own).unwrap()
        );
        // A bad signature under the own header is refused on the own path,
        // as jsonwebtoken refuses it under any header.
        assert!(matches!(
            verifier.verify_own_hs256(tamper(&own).as_bytes(), TypeRule::NotRefresh),
            Some(Err(TokenError::BadSignature))
        ));
        assert!(matches!(
            verifier.verify_token(&tamper(&reordered)),
            Err(TokenError::BadSignature)
        ));
        // Another key's header is never on the own path.
        let other = ring(2);
        let foreign = raw_token(
            &own_header(other.primary().id().as_str()),
            &payload,
            other.primary(),
            Algorithm::HS256,
        );
        assert!(
            verifier
                .verify_own_hs256(foreign.as_bytes(), TypeRule::NotRefresh)
                .is_none()
        );
        assert!(matches!(
            verifier.verify_token(&foreign),
            Err(TokenError::UnknownKey)
        ));
        // A secret shared with another issuer has an own path too (used
        // when that issuer writes the same header).
        let shared = JwtVerifier::builder()
            .hs256_secret("shared", &[7; 32])
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(shared.inner.own_hs256.len(), 1);
    }

    /// Values for each claim that the own path or jsonwebtoken reads, valid
    /// and invalid, and for claims neither reads. Valid values come first
    /// and repeat, so that a good share of payloads is admitted.
    const CLAIM_VALUES: &[(&str, &[&str])] = &[
        (
            "sub",
            &[r#""u""#, r#""u""#, r#""v""#, "7", r#"["u"]"#, "{}", r#""""#],
        ),
        (
            "exp",
            &[
                "1700000060",
                "1700000060",
                "1700000061",
                "1699999000",
                "1.7e9",
                r#""soon""#,
                "[1]",
            ],
        ),
        ("nbf", &["1699999999", "1700000600", r#""x""#, "[1]"]),
        (
            "iss",
            &[
                r#""https://idp.example.test""#,
                r#""https://idp.example.test""#,
                r#""https://other.example.test""#,
                r#"["https://idp.example.test"]"#,
                "1",
                "{}",
            ],
        ),
        (
            "aud",
            &[
                r#""reports-api""#,
                r#""reports-api""#,
                r#"["billing","reports-api"]"#,
                r#""billing""#,
                r#"["billing"]"#,
                "[]",
                r#"["reports-api",1]"#,
                "7",
                r#"{"a":1}"#,
            ],
        ),
        ("typ", &[r#""refresh""#, r#""access""#, "3"]),
        ("sv", &["2", "-1"]),
        ("scope", &[r#""a b""#, r#"["c"]"#]),
        ("jti", &[r#""j""#]),
        ("tenant", &[r#""acme""#, r#"[1,{"x":null}]"#]),
    ];

    /// A payload's members: `sub` and `exp` once or twice, every other
    /// claim up to twice, in any order.
    fn payload_members() -> impl proptest::strategy::Strategy<Value = Vec<String>> {
        use proptest::prelude::*;
        let claims: Vec<_> = CLAIM_VALUES
            .iter()
            .map(|&(name, values)| {
                let times = if name == "sub" || name == "exp" {
                    1..=2
                } else {
                    0..=2
                };
                proptest::collection::vec(proptest::sample::select(values.to_vec()), times)
                    .prop_map(move |picked| {
                        picked
                            .into_iter()
                            .map(|value| format!(r#""{name}":{value}"#))
                            .collect::<Vec<_>>()
                    })
            })
            .collect();
        claims.prop_map(|members| members.concat()).prop_shuffle()
    }

    /// Both verifiers of the equivalence tests: one without and one with
    /// issuer and audience rules.
    fn plain_and_scoped(keyring: &Keyring, clock: &ManualClock) -> [JwtVerifier; 2] {
        let scoped = JwtVerifier::builder()
            .keyring(keyring)
            .issuer("https://idp.example.test")
            .audience("reports-api")
            .audience("mobile")
            .clock(clock.shared())
            .build()
            .unwrap();
        [verifier(keyring, clock), scoped]
    }

    /// `payload` under keystile's own header and under an equivalent header
    /// jsonwebtoken must read gets the same answer from both verifiers,
    /// under every type rule, signed with the verifier's key, with a
    /// signature changed in its middle, and with another key.
    fn assert_paths_agree(keyring: &Keyring, clock: &ManualClock, payload: &str) {
        let key = keyring.primary();
        let kid = key.id().as_str();
        let sign_as = |header: &str, key: &SigningKey| {
            let token = raw_token(header, payload, key, Algorithm::HS256);
            [tamper(&token), token]
        };
        let stranger = SigningKey::from_bytes(&[2; 32]).unwrap();
        let pairs = [
            (
                sign_as(&own_header(kid), key),
                sign_as(&header(Some(kid), ""), key),
            ),
            (
                sign_as(&own_header(kid), &stranger),
                sign_as(&header(Some(kid), ""), &stranger),
            ),
        ];
        for verifier in plain_and_scoped(keyring, clock) {
            for (own, read) in pairs.iter().flat_map(|(o, r)| o.iter().zip(r)) {
                assert_same_answers((&verifier, own), (&verifier, read), payload);
            }
        }
    }

    /// Every value of every claim, on its own in a payload the scoped
    /// verifier admits: in place of that claim, and repeated after it.
    #[test]
    fn the_own_path_answers_as_jsonwebtoken_does_for_each_claim() {
        let keyring = ring(1);
        let clock = ManualClock::at_unix(T0);
        let base = [
            ("sub", r#""u""#),
            ("exp", "1700000060"),
            ("iss", r#""https://idp.example.test""#),
            ("aud", r#""reports-api""#),
        ];
        let member = |(name, value): (&str, &str)| format!(r#""{name}":{value}"#);
        for &(name, values) in CLAIM_VALUES {
            for &value in values {
                let mut replaced: Vec<String> = base
                    .iter()
                    .filter(|(n, _)| *n != name)
                    .map(|&m| member(m))
                    .collect();
                replaced.push(member((name, value)));
                assert_paths_agree(&keyring, &clock, &format!("{{{}}}", replaced.join(",")));
                let mut repeated: Vec<String> = base.iter().map(|&m| member(m)).collect();
                repeated.push(member((name, value)));
                assert_paths_agree(&keyring, &clock, &format!("{{{}}}", repeated.join(",")));
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(512))]

        /// Whatever the payload, a token with keystile's own header gets
        /// exactly the answer the same payload gets under an equivalent
        /// header that jsonwebtoken must read (members reordered), under a
        /// verifier without and one with issuer and audience rules, for
        /// every type rule.
        #[test]
        fn the_own_path_answers_as_jsonwebtoken_does(
            members in payload_members(),
            tail in proptest::sample::select(vec!["", " ", "\n", " x"]),
        ) {
            let keyring = ring(1);
            let clock = ManualClock::at_unix(T0);
            assert_paths_agree(&keyring, &clock, &format!("{{{}}}{tail}", members.join(",")));
        }
    }

    #[test]
    fn the_own_path_admits_the_common_tokens() {
        let keyring = ring(1);
        let key = keyring.primary();
        let kid = key.id().as_str();
        let clock = ManualClock::at_unix(T0);
        let scoped = JwtVerifier::builder()
            .keyring(&keyring)
            .issuer("https://idp.example.test")
            .audience("reports-api")
            .clock(clock.shared())
            .build()
            .unwrap();
        let iss = r#""iss":"https://idp.example.test""#;
        for aud in [r#""aud":"reports-api""#, r#""aud":["x","reports-api"]"#] {
            let payload = format!(r#"{{"sub":"u","exp":{},{iss},{aud},"sv":1}}"#, T0 + 60);
            let own = raw_token(&own_header(kid), &payload, key, Algorithm::HS256);
            let claims = scoped
                .verify_own_hs256(own.as_bytes(), TypeRule::NotRefresh)
                .expect("own path")
                .unwrap();
            assert_eq!(claims.session_version, Some(1));
            assert!(claims.audience.iter().any(|a| a == "reports-api"));
        }
        // Repeats of claims jsonwebtoken does not read stay on the own path
        // and keep their last occurrence.
        let own = raw_token(
            &own_header(kid),
            &dup_payload(T0 + 60),
            key,
            Algorithm::HS256,
        );
        let plain = verifier(&keyring, &clock);
        let claims = plain
            .verify_own_hs256(own.as_bytes(), TypeRule::NotRefresh)
            .expect("own path")
            .unwrap();
        assert_eq!(claims.session_version, Some(2));
    }
}
