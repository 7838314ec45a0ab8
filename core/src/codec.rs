//! The signed codec every keystile artifact uses.
//!
//! A token is `{kid}.{payload}.{tag}`: the signing key's id, the canonical
//! unpadded base64url of a JSON envelope, and the base64url of an
//! HMAC-SHA256 tag. The tag covers a domain prefix that contains the
//! [`Purpose`] label, then `{kid}.{payload}`. A token minted for one purpose
//! therefore never verifies as another, even under the same key, and a wrong
//! purpose is indistinguishable from a bad signature.
//!
//! Opening a token checks, in order: the length cap (before any decoding),
//! the shape, the key id, the tag (constant time), and only then decodes the
//! payload (canonical base64url, strict JSON: unknown fields refused) and
//! checks `nbf`/`exp` against the codec's [`Clock`](crate::clock::Clock),
//! with an optional leeway.
//!
//! ```
//! use std::time::Duration;
//! use keystile_core::codec::{CodecError, Purpose, SignedCodec};
//! use keystile_core::clock::ManualClock;
//! use keystile_core::keys::Keyring;
//!
//! #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
//! #[serde(deny_unknown_fields)]
//! struct Invite { email: String }
//!
//! let clock = ManualClock::at_unix(1_700_000_000);
//! let keyring = Keyring::generate().unwrap();
//! let codec = SignedCodec::new(keyring.clone(), Purpose::new("invite"))
//!     .clock(clock.shared());
//!
//! let token = codec.seal(&Invite { email: "a@example.test".into() }, Duration::from_secs(60)).unwrap();
//! let opened = codec.open::<Invite>(&token).unwrap();
//! assert_eq!(opened.claims.email, "a@example.test");
//!
//! // Another purpose under the same key: refused as a bad signature.
//! let other = SignedCodec::new(keyring, Purpose::new("reset")).clock(clock.shared());
//! assert_eq!(other.open::<Invite>(&token).unwrap_err(), CodecError::BadSignature);
//!
//! clock.advance(Duration::from_secs(61));
//! assert_eq!(codec.open::<Invite>(&token).unwrap_err(), CodecError::Expired);
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::clock::{SharedClock, SystemClock};
use crate::encoding;
use crate::keys::{KeyId, Keyring};
use crate::mac::{MacKey, TAG_LEN};

/// Default cap on a token's length, checked before any decoding.
pub const DEFAULT_MAX_LEN: usize = 4096;

/// Length of the base64url text of a tag.
const TAG_TEXT_LEN: usize = 43;

/// The purpose label mixed into every MAC: one per kind of artifact.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Purpose(&'static str);

impl Purpose {
    /// A purpose label. Labels are compile-time names such as
    /// `"keystile/handoff"`; they must be non-empty and contain no NUL.
    ///
    /// # Panics
    ///
    /// On an empty label or one containing NUL: a programming error caught
    /// at start-up, never reachable from request input.
    pub const fn new(label: &'static str) -> Self {
        let bytes = label.as_bytes();
        assert!(!bytes.is_empty(), "purpose label must not be empty");
        let mut i = 0;
        while i < bytes.len() {
            assert!(bytes[i] != 0, "purpose label must not contain NUL");
            i += 1;
        }
        Self(label)
    }

    /// The label.
    pub const fn label(&self) -> &'static str {
        self.0
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The token is not well formed; the kind says how.
    #[error("malformed token: {0}")]
    Malformed(Malformed),
    /// The key id names no key in the keyring.
    #[error("token signed by an unknown key")]
    UnknownKey,
    /// The tag does not match: tampered, forged, or minted for another
    /// purpose.
    #[error("bad token signature")]
    BadSignature,
    /// The token's expiry has passed.
    #[error("token expired")]
    Expired,
    /// The token's not-before (or issued-at) time is in the future.
    #[error("token not yet valid")]
    NotYetValid,
    /// Sealing failed: the claims did not serialize or the token would
    /// exceed the length cap.
    #[error("token could not be sealed")]
    Seal,
}

/// How a token is malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Malformed {
    /// Longer than the codec's cap.
    #[error("too long")]
    TooLong,
    /// Not three dot-separated parts with a valid key id and tag length.
    #[error("wrong structure")]
    Structure,
    /// Payload or tag is not canonical unpadded base64url.
    #[error("bad base64url")]
    Base64,
    /// The payload is not the expected JSON (unknown fields included).
    #[error("bad payload")]
    Payload,
}

impl From<Malformed> for CodecError {
    fn from(kind: Malformed) -> Self {
        Self::Malformed(kind)
    }
}

/// The envelope inside every token: time bounds plus the claims.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope<T> {
    iat: u64,
    exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nbf: Option<u64>,
    dat: T,
}

/// The time bounds of a token, in Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// When the token was issued.
    pub issued_at: u64,
    /// The first second the token is no longer valid.
    pub expires_at: u64,
    /// The token is not valid before this second, if set.
    pub not_before: Option<u64>,
}

/// A verified token's claims and time bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified<T> {
    /// The claims, exactly as sealed.
    pub claims: T,
    /// The token's time bounds.
    pub validity: Validity,
    /// Which key signed it.
    pub key_id: KeyId,
}

struct KeyState {
    id: KeyId,
    mac: MacKey,
}

/// Seals and opens tokens for one [`Purpose`]. Cloning is cheap.
#[derive(Clone)]
pub struct SignedCodec {
    purpose: Purpose,
    keys: Arc<[KeyState]>,
    clock: SharedClock,
    leeway: u64,
    max_len: usize,
}

impl SignedCodec {
    /// A codec for `purpose` over `keyring`, on the system clock, with no
    /// leeway and a [`DEFAULT_MAX_LEN`] cap.
    pub fn new(keyring: Keyring, purpose: Purpose) -> Self {
        let mut prefix = Vec::with_capacity(16 + purpose.0.len());
        prefix.extend_from_slice(b"keystile.v1\0");
        prefix.extend_from_slice(purpose.0.as_bytes());
        prefix.push(0);
        let keys = keyring
            .keys()
            .iter()
            .map(|key| KeyState {
                id: key.id().clone(),
                mac: MacKey::new(key.bytes()).with_prefix(&prefix),
            })
            .collect();
        Self {
            purpose,
            keys,
            clock: SystemClock::shared(),
            leeway: 0,
            max_len: DEFAULT_MAX_LEN,
        }
    }

    /// Reads time from `clock`.
    #[must_use]
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Tolerates this much clock skew on `exp` and `nbf` (whole seconds).
    #[must_use]
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway.as_secs();
        self
    }

    /// Refuses tokens longer than `max_len` bytes before decoding them.
    #[must_use]
    pub fn max_len(mut self, max_len: usize) -> Self {
        self.max_len = max_len;
        self
    }

    /// The purpose this codec seals for.
    pub fn purpose(&self) -> Purpose {
        self.purpose
    }

    /// Seals `claims`, valid from now for `ttl` (whole seconds, at least 1).
    pub fn seal<T: Serialize>(&self, claims: &T, ttl: Duration) -> Result<String, CodecError> {
        let now = self.clock.unix_seconds();
        let validity = Validity {
            issued_at: now,
            expires_at: now.saturating_add(ttl.as_secs().max(1)),
            not_before: None,
        };
        self.seal_with(claims, validity)
    }

    /// Seals `claims` with explicit time bounds, signed by the primary key.
    pub fn seal_with<T: Serialize>(
        &self,
        claims: &T,
        validity: Validity,
    ) -> Result<String, CodecError> {
        let envelope = Envelope {
            iat: validity.issued_at,
            exp: validity.expires_at,
            nbf: validity.not_before,
            dat: claims,
        };
        let json = serde_json::to_vec(&envelope).map_err(|_| CodecError::Seal)?;
        let key = &self.keys[0];
        let mut token = String::with_capacity(key.id.as_str().len() + json.len() * 4 / 3 + 48);
        token.push_str(key.id.as_str());
        token.push('.');
        encoding::encode_into(&json, &mut token);
        let tag = key.mac.compute(token.as_bytes());
        token.push('.');
        encoding::encode_into(tag, &mut token);
        if token.len() > self.max_len {
            return Err(CodecError::Seal);
        }
        Ok(token)
    }

    /// Verifies `token` and returns its claims. Accepts bytes so header
    /// values that are not UTF-8 are refused as malformed, not mis-decoded.
    pub fn open<T: DeserializeOwned>(
        &self,
        token: impl AsRef<[u8]>,
    ) -> Result<Verified<T>, CodecError> {
        let token = token.as_ref();
        if token.len() > self.max_len {
            return Err(Malformed::TooLong.into());
        }
        let tag_dot = token
            .iter()
            .rposition(|b| *b == b'.')
            .ok_or(Malformed::Structure)?;
        let (signed, tag_text) = (&token[..tag_dot], &token[tag_dot + 1..]);
        let kid_dot = signed
            .iter()
            .position(|b| *b == b'.')
            .ok_or(Malformed::Structure)?;
        let (kid, payload_text) = (&signed[..kid_dot], &signed[kid_dot + 1..]);
        if !KeyId::is_valid(kid) || tag_text.len() != TAG_TEXT_LEN || payload_text.contains(&b'.') {
            return Err(Malformed::Structure.into());
        }
        let key = self
            .keys
            .iter()
            .find(|k| k.id.as_str().as_bytes() == kid)
            .ok_or(CodecError::UnknownKey)?;
        let tag: [u8; TAG_LEN] = encoding::decode_array(tag_text).ok_or(Malformed::Base64)?;
        if !key.mac.verify(signed, &tag) {
            return Err(CodecError::BadSignature);
        }
        let json = encoding::decode(payload_text).map_err(|_| Malformed::Base64)?;
        let envelope: Envelope<T> =
            serde_json::from_slice(&json).map_err(|_| Malformed::Payload)?;
        let now = self.clock.unix_seconds();
        if now >= envelope.exp.saturating_add(self.leeway) {
            return Err(CodecError::Expired);
        }
        let starts = envelope.nbf.unwrap_or(envelope.iat).max(envelope.iat);
        if starts > now.saturating_add(self.leeway) {
            return Err(CodecError::NotYetValid);
        }
        Ok(Verified {
            claims: envelope.dat,
            validity: Validity {
                issued_at: envelope.iat,
                expires_at: envelope.exp,
                not_before: envelope.nbf,
            },
            key_id: key.id.clone(),
        })
    }
}

impl fmt::Debug for SignedCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedCodec")
            .field("purpose", &self.purpose)
            .field("keys", &self.keys.iter().map(|k| &k.id).collect::<Vec<_>>())
            .field("leeway", &self.leeway)
            .field("max_len", &self.max_len)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::keys::SigningKey;
    use proptest::prelude::*;

    const T0: u64 = 1_700_000_000;

    #[derive(Serialize, Deserialize, PartialEq, Debug, Clone)]
    #[serde(deny_unknown_fields)]
    struct Claims {
        sub: String,
        n: u64,
    }

    fn claims() -> Claims {
        Claims {
            sub: "user-7".into(),
            n: 42,
        }
    }

    fn key(byte: u8) -> SigningKey {
        SigningKey::from_bytes(&[byte; 32]).unwrap()
    }

    fn codec(ring: Keyring, purpose: &'static str, clock: &ManualClock) -> SignedCodec {
        SignedCodec::new(ring, Purpose::new(purpose)).clock(clock.shared())
    }

    /// A token whose envelope is `json`, properly signed by `codec`'s primary.
    fn sign_raw(codec: &SignedCodec, json: &[u8]) -> String {
        let key = &codec.keys[0];
        let mut token = format!("{}.", key.id);
        encoding::encode_into(json, &mut token);
        let tag = key.mac.compute(token.as_bytes());
        token.push('.');
        encoding::encode_into(tag, &mut token);
        token
    }

    #[test]
    fn round_trip_keeps_claims_and_times() {
        let clock = ManualClock::at_unix(T0);
        let c = codec(Keyring::new(key(1)), "test", &clock);
        let token = c.seal(&claims(), Duration::from_secs(60)).unwrap();
        let v = c.open::<Claims>(&token).unwrap();
        assert_eq!(v.claims, claims());
        assert_eq!(v.validity.issued_at, T0);
        assert_eq!(v.validity.expires_at, T0 + 60);
        assert_eq!(&v.key_id, key(1).id());
    }

    #[test]
    fn expiry_follows_the_clock_and_leeway() {
        let clock = ManualClock::at_unix(T0);
        let c = codec(Keyring::new(key(1)), "test", &clock);
        let token = c.seal(&claims(), Duration::from_secs(60)).unwrap();
        clock.advance(Duration::from_secs(59));
        assert!(c.open::<Claims>(&token).is_ok());
        clock.advance(Duration::from_secs(1));
        assert_eq!(c.open::<Claims>(&token).unwrap_err(), CodecError::Expired);
        let lenient = c.clone().leeway(Duration::from_secs(5));
        assert!(lenient.open::<Claims>(&token).is_ok());
        clock.advance(Duration::from_secs(5));
        assert_eq!(
            lenient.open::<Claims>(&token).unwrap_err(),
            CodecError::Expired
        );
    }

    #[test]
    fn not_before_and_future_issued_at_are_refused() {
        let clock = ManualClock::at_unix(T0);
        let c = codec(Keyring::new(key(1)), "test", &clock);
        let future = Validity {
            issued_at: T0,
            expires_at: T0 + 100,
            not_before: Some(T0 + 10),
        };
        let token = c.seal_with(&claims(), future).unwrap();
        assert_eq!(
            c.open::<Claims>(&token).unwrap_err(),
            CodecError::NotYetValid
        );
        clock.advance(Duration::from_secs(10));
        assert!(c.open::<Claims>(&token).is_ok());

        clock.rewind(Duration::from_secs(30));
        let issued_later = c
            .clone()
            .clock(ManualClock::at_unix(T0 + 30).shared())
            .seal(&claims(), Duration::from_secs(60))
            .unwrap();
        assert_eq!(
            c.open::<Claims>(&issued_later).unwrap_err(),
            CodecError::NotYetValid
        );
    }

    #[test]
    fn fallback_keys_verify_and_removed_keys_do_not() {
        let clock = ManualClock::at_unix(T0);
        let old = codec(Keyring::new(key(1)), "test", &clock);
        let token = old.seal(&claims(), Duration::from_secs(60)).unwrap();

        let rotated = Keyring::new(key(2)).with_fallback(key(1)).unwrap();
        let rotated = codec(rotated, "test", &clock);
        assert_eq!(rotated.open::<Claims>(&token).unwrap().claims, claims());
        // New tokens are signed by the new primary.
        let fresh = rotated.seal(&claims(), Duration::from_secs(60)).unwrap();
        assert!(fresh.starts_with(key(2).id().as_str()));

        let removed = codec(Keyring::new(key(2)), "test", &clock);
        assert_eq!(
            removed.open::<Claims>(&token).unwrap_err(),
            CodecError::UnknownKey
        );
    }

    #[test]
    fn same_key_id_with_other_secret_is_a_bad_signature() {
        let clock = ManualClock::at_unix(T0);
        let id = KeyId::new("k1").unwrap();
        let a = codec(Keyring::new(key(1).with_id(id.clone())), "test", &clock);
        let b = codec(Keyring::new(key(2).with_id(id)), "test", &clock);
        let token = a.seal(&claims(), Duration::from_secs(60)).unwrap();
        assert_eq!(
            b.open::<Claims>(&token).unwrap_err(),
            CodecError::BadSignature
        );
    }

    #[test]
    fn malformed_inputs_get_the_right_error() {
        let clock = ManualClock::at_unix(T0);
        let c = codec(Keyring::new(key(1)), "test", &clock);
        let token = c.seal(&claims(), Duration::from_secs(60)).unwrap();
        let malformed = |kind| Err::<Verified<Claims>, _>(CodecError::Malformed(kind));

        assert_eq!(
            c.open::<Claims>(vec![b'a'; 4097]),
            malformed(Malformed::TooLong)
        );
        assert_eq!(c.open::<Claims>(""), malformed(Malformed::Structure));
        assert_eq!(
            c.open::<Claims>(&token[..token.len() - 1]),
            malformed(Malformed::Structure)
        );
        assert_eq!(
            c.open::<Claims>(&token[..20]),
            malformed(Malformed::Structure)
        );
        assert_eq!(
            c.open::<Claims>(format!("{token}.x")),
            malformed(Malformed::Structure)
        );
        let mut non_utf8 = token.clone().into_bytes();
        non_utf8[2] = 0xff;
        assert_eq!(c.open::<Claims>(&non_utf8), malformed(Malformed::Structure));

        // A standard-alphabet character in the tag.
        let (head, tag) = token.rsplit_once('.').unwrap();
        let bad_tag = format!("{head}.+{}", &tag[1..]);
        assert_eq!(c.open::<Claims>(&bad_tag), malformed(Malformed::Base64));

        // Payloads are only decoded after the tag checks out, so these are
        // signed properly to reach the payload checks.
        let padded = {
            let json = br#"{"iat":1700000000,"exp":1700000060,"dat":{"sub":"a","n":1}}"#;
            let key = &c.keys[0];
            let mut t = format!("{}.", key.id);
            encoding::encode_into(json, &mut t);
            t.push('=');
            let tag = key.mac.compute(t.as_bytes());
            t.push('.');
            encoding::encode_into(tag, &mut t);
            t
        };
        assert_eq!(c.open::<Claims>(&padded), malformed(Malformed::Base64));

        let extra_field = sign_raw(
            &c,
            br#"{"iat":1700000000,"exp":1700000060,"dat":{"sub":"a","n":1,"admin":true}}"#,
        );
        assert_eq!(
            c.open::<Claims>(&extra_field),
            malformed(Malformed::Payload)
        );
        let extra_envelope = sign_raw(
            &c,
            br#"{"iat":1700000000,"exp":1700000060,"dat":{"sub":"a","n":1},"x":1}"#,
        );
        assert_eq!(
            c.open::<Claims>(&extra_envelope),
            malformed(Malformed::Payload)
        );
        let no_exp = sign_raw(&c, br#"{"iat":1700000000,"dat":{"sub":"a","n":1}}"#);
        assert_eq!(c.open::<Claims>(&no_exp), malformed(Malformed::Payload));
        let not_json = sign_raw(&c, b"\xff\xfe");
        assert_eq!(c.open::<Claims>(&not_json), malformed(Malformed::Payload));
    }

    #[test]
    fn flipping_a_byte_mid_tag_is_a_bad_signature() {
        let clock = ManualClock::at_unix(T0);
        let c = codec(Keyring::new(key(1)), "test", &clock);
        let token = c.seal(&claims(), Duration::from_secs(60)).unwrap();
        let (head, tag) = token.rsplit_once('.').unwrap();
        let mut tag_bytes: [u8; 32] = encoding::decode_array(tag).unwrap();
        tag_bytes[16] ^= 0x01;
        let tampered = format!("{head}.{}", encoding::encode(tag_bytes));
        assert_eq!(
            c.open::<Claims>(&tampered).unwrap_err(),
            CodecError::BadSignature
        );
    }

    #[test]
    fn oversized_claims_are_refused_when_sealing() {
        let clock = ManualClock::at_unix(T0);
        let c = codec(Keyring::new(key(1)), "test", &clock).max_len(64);
        assert_eq!(
            c.seal(&claims(), Duration::from_secs(60)).unwrap_err(),
            CodecError::Seal
        );
    }

    proptest! {
        #[test]
        fn any_payload_round_trips(sub in ".{0,200}", n in any::<u64>(), ttl in 1u64..100_000) {
            let clock = ManualClock::at_unix(T0);
            let c = codec(Keyring::new(key(1)), "prop", &clock);
            let claims = Claims { sub, n };
            let token = c.seal(&claims, Duration::from_secs(ttl)).unwrap();
            prop_assert_eq!(c.open::<Claims>(&token).unwrap().claims, claims);
        }

        #[test]
        fn any_single_byte_change_is_refused(pos in any::<prop::sample::Index>(), xor in 1u8..=255) {
            let clock = ManualClock::at_unix(T0);
            let c = codec(Keyring::new(key(1)), "prop", &clock);
            let token = c.seal(&claims(), Duration::from_secs(60)).unwrap();
            let mut bytes = token.into_bytes();
            let i = pos.index(bytes.len());
            bytes[i] ^= xor;
            prop_assert!(c.open::<Claims>(&bytes).is_err());
        }

        #[test]
        fn purpose_a_never_verifies_as_purpose_b(sub in "[a-z]{1,20}", byte in any::<u8>()) {
            let clock = ManualClock::at_unix(T0);
            let ring = Keyring::new(key(byte));
            let a = codec(ring.clone(), "purpose-a", &clock);
            let b = codec(ring, "purpose-b", &clock);
            let token = a.seal(&Claims { sub, n: 1 }, Duration::from_secs(60)).unwrap();
            prop_assert_eq!(b.open::<Claims>(&token).unwrap_err(), CodecError::BadSignature);
        }

        #[test]
        fn arbitrary_input_never_verifies(input in prop::collection::vec(any::<u8>(), 0..600)) {
            let clock = ManualClock::at_unix(T0);
            let c = codec(Keyring::new(key(1)), "prop", &clock);
            prop_assert!(c.open::<Claims>(&input).is_err());
        }
    }
}
