//! Session cookies: the claims a handoff session carries and the codec that
//! signs them.
//!
//! A session cookie is a [`SignedCodec`] token under its own purpose label
//! ([`SESSION_PURPOSE`]), so a handoff token can never be replayed as a
//! session cookie or the reverse. It is bound to one tenant:
//! [`SessionCodec::verify`] refuses it for any other, which is what keeps a
//! session minted for `acme` from working at `globex` even if the cookie
//! is copied across. Sessions last [`DEFAULT_SESSION_TTL`] (1 h) unless
//! configured, at most [`MAX_SESSION_TTL`] (400 days, the cookie limit).
//!
//! ```
//! use std::time::Duration;
//! use keystile_core::audience::VerifyError;
//! use keystile_core::clock::ManualClock;
//! use keystile_core::keys::Keyring;
//! use keystile_core::session::{SessionClaims, SessionCodec, DEFAULT_SESSION_TTL};
//!
//! let clock = ManualClock::at_unix(1_700_000_000);
//! let codec = SessionCodec::new(Keyring::generate().unwrap()).clock(clock.shared());
//! let claims = SessionClaims {
//!     subject: "admin@acme".into(),
//!     actor: Some("operator:7".into()),
//!     tenant: "acme".into(),
//!     session_version: None,
//!     expires_at: 0,
//! };
//! let cookie = codec.issue(&claims, DEFAULT_SESSION_TTL).unwrap();
//!
//! let session = codec.verify(&cookie, "acme").unwrap();
//! assert_eq!(session.expires_at, 1_700_000_000 + 3600);
//! assert_eq!(codec.verify(&cookie, "globex"), Err(VerifyError::WrongAudience));
//! clock.advance(Duration::from_secs(3600));
//! assert_eq!(codec.verify(&cookie, "acme"), Err(VerifyError::Expired));
//! ```

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::audience::VerifyError;
use crate::clock::SharedClock;
use crate::codec::{CodecError, Purpose, SignedCodec};
use crate::handoff::is_claim_text;
use crate::keys::Keyring;

/// The purpose label of session cookies.
pub const SESSION_PURPOSE: Purpose = Purpose::new("keystile/session");

/// How long a session lasts unless configured otherwise.
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(3600);

/// The longest session accepted: browsers cap cookie lifetimes at 400 days.
pub const MAX_SESSION_TTL: Duration = Duration::from_secs(400 * 24 * 3600);

/// What a session cookie carries.
///
/// The text fields are shared (`Arc<str>`), so the [`Principal`] built from
/// them on every request takes references instead of copies.
///
/// [`Principal`]: crate::identity::Principal
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionClaims {
    /// Who the session is for.
    #[serde(rename = "sub", with = "shared_text")]
    pub subject: Arc<str>,
    /// Who is acting as the subject (impersonation), if anyone.
    #[serde(
        rename = "act",
        default,
        skip_serializing_if = "Option::is_none",
        with = "shared_text::optional"
    )]
    pub actor: Option<Arc<str>>,
    /// The tenant the session is bound to.
    #[serde(rename = "aud", with = "shared_text")]
    pub tenant: Arc<str>,
    /// The session version current when the session began.
    #[serde(rename = "sv", default, skip_serializing_if = "Option::is_none")]
    pub session_version: Option<u64>,
    /// Expiry, Unix seconds (filled from the token's envelope when opened).
    #[serde(skip)]
    pub expires_at: u64,
}

/// Serde for `Arc<str>` without serde's `rc` feature: one allocation per
/// string when it is read straight from the JSON text.
mod shared_text {
    use std::fmt;
    use std::sync::Arc;

    use serde::{Deserialize, Deserializer, Serializer, de};

    pub(super) fn serialize<S: Serializer>(
        text: &Arc<str>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(text)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Arc<str>, D::Error> {
        Shared::deserialize(deserializer).map(|shared| shared.0)
    }

    struct Shared(Arc<str>);

    impl<'de> Deserialize<'de> for Shared {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserializer.deserialize_str(SharedVisitor)
        }
    }

    struct SharedVisitor;

    impl de::Visitor<'_> for SharedVisitor {
        type Value = Shared;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string")
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<Shared, E> {
            Ok(Shared(Arc::from(text)))
        }
    }

    pub(super) mod optional {
        use std::sync::Arc;

        use serde::{Deserialize, Deserializer, Serializer};

        use super::Shared;

        pub(in super::super) fn serialize<S: Serializer>(
            text: &Option<Arc<str>>,
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            match text {
                Some(text) => serializer.serialize_some(&**text),
                None => serializer.serialize_none(),
            }
        }

        pub(in super::super) fn deserialize<'de, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Option<Arc<str>>, D::Error> {
            Option::<Shared>::deserialize(deserializer).map(|text| text.map(|shared| shared.0))
        }
    }
}

/// A session lifetime of zero or above [`MAX_SESSION_TTL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("session TTL must be between 1 s and 400 days")]
pub struct InvalidSessionTtl;

/// `ttl` in whole seconds if it is a valid session lifetime.
pub fn checked_session_ttl(ttl: Duration) -> Result<Duration, InvalidSessionTtl> {
    let ttl = Duration::from_secs(ttl.as_secs());
    if ttl.is_zero() || ttl > MAX_SESSION_TTL {
        Err(InvalidSessionTtl)
    } else {
        Ok(ttl)
    }
}

/// Signs and verifies session cookie values. Cloning is cheap.
#[derive(Clone, Debug)]
pub struct SessionCodec {
    codec: SignedCodec,
}

impl SessionCodec {
    /// A codec over `keyring` on the system clock with no leeway.
    pub fn new(keyring: Keyring) -> Self {
        Self {
            codec: SignedCodec::new(keyring, SESSION_PURPOSE),
        }
    }

    /// Reads time from `clock`.
    #[must_use]
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.codec = self.codec.clock(clock);
        self
    }

    /// Tolerates this much clock skew on expiry (whole seconds).
    #[must_use]
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.codec = self.codec.leeway(leeway);
        self
    }

    /// The signed cookie value for `claims`, valid for `ttl` from now.
    /// `expires_at` in `claims` is ignored: the envelope carries the expiry.
    pub fn issue(&self, claims: &SessionClaims, ttl: Duration) -> Result<String, CodecError> {
        self.codec.seal(claims, ttl)
    }

    /// Verifies a cookie value for the request's `tenant` and returns its
    /// claims with `expires_at` filled in.
    pub fn verify(
        &self,
        value: impl AsRef<[u8]>,
        tenant: &str,
    ) -> Result<SessionClaims, VerifyError> {
        let verified = self.codec.open::<SessionClaims>(value)?;
        let mut claims = verified.claims;
        let well_formed = is_claim_text(&claims.subject)
            && claims.actor.as_deref().is_none_or(is_claim_text)
            && is_claim_text(&claims.tenant);
        if !well_formed {
            return Err(VerifyError::Malformed);
        }
        if *claims.tenant != *tenant {
            return Err(VerifyError::WrongAudience);
        }
        claims.expires_at = verified.validity.expires_at;
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::encoding;
    use crate::handoff::{Handoff, HandoffCodec};
    use crate::keys::SigningKey;

    fn keyring() -> Keyring {
        Keyring::new(SigningKey::from_bytes(&[5; 32]).unwrap())
    }

    fn claims() -> SessionClaims {
        SessionClaims {
            subject: "admin@acme".into(),
            actor: None,
            tenant: "acme".into(),
            session_version: Some(3),
            expires_at: 0,
        }
    }

    #[test]
    fn round_trip_fills_expiry() {
        let clock = ManualClock::at_unix(1_000);
        let codec = SessionCodec::new(keyring()).clock(clock.shared());
        let value = codec.issue(&claims(), Duration::from_secs(10)).unwrap();
        let back = codec.verify(&value, "acme").unwrap();
        assert_eq!(
            back,
            SessionClaims {
                expires_at: 1_010,
                ..claims()
            }
        );
    }

    #[test]
    fn tampered_cookie_is_a_bad_signature() {
        let codec = SessionCodec::new(keyring());
        let value = codec.issue(&claims(), DEFAULT_SESSION_TTL).unwrap();
        let (head, tag) = value.rsplit_once('.').unwrap();
        let mut raw: [u8; 32] = encoding::decode_array(tag).unwrap();
        raw[15] ^= 0x10;
        let tampered = format!("{head}.{}", encoding::encode(raw));
        assert_eq!(
            codec.verify(&tampered, "acme"),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn a_handoff_token_is_not_a_session() {
        let handoff = HandoffCodec::new(keyring());
        let token = handoff.mint(&Handoff::new("admin@acme", "acme")).unwrap();
        assert_eq!(
            SessionCodec::new(keyring()).verify(&token, "acme"),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn session_ttl_bounds() {
        assert_eq!(checked_session_ttl(Duration::ZERO), Err(InvalidSessionTtl));
        assert_eq!(
            checked_session_ttl(MAX_SESSION_TTL + Duration::from_secs(1)),
            Err(InvalidSessionTtl)
        );
        assert_eq!(
            checked_session_ttl(Duration::from_millis(1500)),
            Ok(Duration::from_secs(1))
        );
    }
}
