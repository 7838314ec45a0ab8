//! Minting and verifying handoff tokens.

use std::fmt;
use std::time::Duration;

use crate::audience::VerifyError;
use crate::clock::SharedClock;
use crate::codec::{Purpose, SignedCodec};
use crate::encoding;
use crate::keys::{KeyId, Keyring};
use crate::random::{self, OsRandom, RandomError, SharedRandom};

use super::claims::{HandoffClaims, JTI_LEN, is_claim_text};

/// The purpose label of handoff tokens.
pub const HANDOFF_PURPOSE: Purpose = Purpose::new("keystile/handoff");

/// The lifetime of a handoff token unless configured otherwise.
pub const DEFAULT_HANDOFF_TTL: Duration = Duration::from_secs(60);

/// The longest lifetime a handoff token may have. Longer is refused: a
/// handoff link is a bearer credential in a URL and must die quickly.
pub const MAX_HANDOFF_TTL: Duration = Duration::from_secs(600);

/// What to mint a handoff token for: a subject at one tenant, optionally
/// impersonated by an actor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handoff {
    subject: String,
    actor: Option<String>,
    audience: String,
    session_version: Option<u64>,
}

impl Handoff {
    /// A handoff of `subject` to the tenant `audience`.
    pub fn new(subject: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            subject: subject.into(),
            actor: None,
            audience: audience.into(),
            session_version: None,
        }
    }

    /// `actor` acts as the subject (impersonation).
    pub fn acting_as(mut self, actor: impl Into<String>) -> Self {
        self.actor = Some(actor.into());
        self
    }

    /// The subject's current session version, carried into the session.
    #[must_use]
    pub fn session_version(mut self, version: u64) -> Self {
        self.session_version = Some(version);
        self
    }

    /// The tenant the token is for.
    pub fn audience(&self) -> &str {
        &self.audience
    }
}

/// Why a handoff token could not be minted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MintError {
    /// The requested lifetime is zero or above [`MAX_HANDOFF_TTL`].
    #[error("handoff TTL must be between 1 s and {} s", MAX_HANDOFF_TTL.as_secs())]
    InvalidTtl,
    /// Subject, actor or audience is empty, longer than 256 bytes, or has
    /// control characters.
    #[error("subject, actor and audience must be 1-256 bytes without control characters")]
    InvalidClaims,
    /// The random source could not produce a token id.
    #[error(transparent)]
    Random(#[from] RandomError),
    /// The token could not be sealed.
    #[error("handoff token could not be sealed")]
    Seal,
}

/// A handoff token that passed every check except replay, which needs the
/// store: see [`ReplayStore`](crate::replay::ReplayStore).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedHandoff {
    /// The claims.
    pub claims: HandoffClaims,
    /// Unix seconds the token was issued.
    pub issued_at: u64,
    /// Unix seconds the token expires.
    pub expires_at: u64,
    /// Until when (Unix seconds) the `jti` must stay recorded: the expiry
    /// plus the verifier's leeway, since the token verifies until then.
    pub replay_until: u64,
    /// The key that signed it.
    pub key_id: KeyId,
}

/// Mints and verifies handoff tokens. Cloning is cheap.
///
/// Tokens are [`SignedCodec`] tokens under [`HANDOFF_PURPOSE`]; each
/// carries a fresh `jti` of [`JTI_LEN`] bytes from the random source (the OS
/// CSPRNG unless a test injects another).
#[derive(Clone)]
pub struct HandoffCodec {
    codec: SignedCodec,
    random: SharedRandom,
    ttl: Duration,
    leeway: Duration,
}

impl HandoffCodec {
    /// A codec over `keyring`: system clock, OS randomness, 60 s tokens, no
    /// leeway.
    pub fn new(keyring: Keyring) -> Self {
        Self {
            codec: SignedCodec::new(keyring, HANDOFF_PURPOSE),
            random: OsRandom::shared(),
            ttl: DEFAULT_HANDOFF_TTL,
            leeway: Duration::ZERO,
        }
    }

    /// Reads time from `clock`.
    #[must_use]
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.codec = self.codec.clock(clock);
        self
    }

    /// Draws token ids from `random`.
    #[must_use]
    pub fn random(mut self, random: SharedRandom) -> Self {
        self.random = random;
        self
    }

    /// Mints tokens valid for `ttl` (whole seconds, 1 s to 10 min).
    pub fn ttl(mut self, ttl: Duration) -> Result<Self, MintError> {
        self.ttl = checked_ttl(ttl)?;
        Ok(self)
    }

    /// Tolerates this much clock skew between issuer and verifier (whole
    /// seconds). Kept small: it lengthens every token's life.
    #[must_use]
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = Duration::from_secs(leeway.as_secs());
        self.codec = self.codec.leeway(self.leeway);
        self
    }

    /// Mints a token for `handoff` with the configured lifetime.
    pub fn mint(&self, handoff: &Handoff) -> Result<String, MintError> {
        self.mint_for(handoff, self.ttl)
    }

    /// Mints a token for `handoff` valid for `ttl` (1 s to 10 min).
    pub fn mint_for(&self, handoff: &Handoff, ttl: Duration) -> Result<String, MintError> {
        let ttl = checked_ttl(ttl)?;
        let texts_ok = is_claim_text(&handoff.subject)
            && handoff.actor.as_deref().is_none_or(is_claim_text)
            && is_claim_text(&handoff.audience);
        if !texts_ok {
            return Err(MintError::InvalidClaims);
        }
        let jti = random::bytes::<JTI_LEN>(&*self.random)?;
        let claims = HandoffClaims {
            subject: handoff.subject.clone(),
            actor: handoff.actor.clone(),
            audience: handoff.audience.clone(),
            session_version: handoff.session_version,
            jti: encoding::encode(jti),
        };
        self.codec.seal(&claims, ttl).map_err(|_| MintError::Seal)
    }

    /// Verifies `token` for the tenant `audience`: length, structure,
    /// signature (constant time), expiry, claims shape, then audience.
    /// Replay is the caller's next step.
    pub fn verify(
        &self,
        token: impl AsRef<[u8]>,
        audience: &str,
    ) -> Result<VerifiedHandoff, VerifyError> {
        let verified = self.codec.open::<HandoffClaims>(token)?;
        if !verified.claims.is_well_formed() {
            return Err(VerifyError::Malformed);
        }
        // The audience is not secret, so a plain comparison is fine.
        if verified.claims.audience != audience {
            return Err(VerifyError::WrongAudience);
        }
        let expires_at = verified.validity.expires_at;
        Ok(VerifiedHandoff {
            claims: verified.claims,
            issued_at: verified.validity.issued_at,
            expires_at,
            replay_until: expires_at.saturating_add(self.leeway.as_secs()),
            key_id: verified.key_id,
        })
    }
}

fn checked_ttl(ttl: Duration) -> Result<Duration, MintError> {
    let ttl = Duration::from_secs(ttl.as_secs());
    if ttl.is_zero() || ttl > MAX_HANDOFF_TTL {
        return Err(MintError::InvalidTtl);
    }
    Ok(ttl)
}

impl fmt::Debug for HandoffCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandoffCodec")
            .field("codec", &self.codec)
            .field("ttl", &self.ttl)
            .field("leeway", &self.leeway)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::keys::SigningKey;
    use crate::session::SESSION_PURPOSE;
    use std::sync::Arc;

    const T0: u64 = 1_700_000_000;

    fn keyring(byte: u8) -> Keyring {
        Keyring::new(SigningKey::from_bytes(&[byte; 32]).unwrap())
    }

    fn codec(clock: &ManualClock) -> HandoffCodec {
        HandoffCodec::new(keyring(1)).clock(clock.shared())
    }

    fn handoff() -> Handoff {
        Handoff::new("admin@acme", "acme").acting_as("operator:7")
    }

    #[test]
    fn mint_then_verify_returns_claims_and_a_fresh_jti() {
        let clock = ManualClock::at_unix(T0);
        let c = codec(&clock);
        let a = c.verify(c.mint(&handoff()).unwrap(), "acme").unwrap();
        let b = c.verify(c.mint(&handoff()).unwrap(), "acme").unwrap();
        assert_eq!(a.claims.subject, "admin@acme");
        assert_eq!(a.claims.actor.as_deref(), Some("operator:7"));
        assert_eq!(a.issued_at, T0);
        assert_eq!(a.expires_at, T0 + 60);
        assert_eq!(a.replay_until, T0 + 60);
        assert_eq!(encoding::decode(&a.claims.jti).unwrap().len(), JTI_LEN);
        assert_ne!(a.claims.jti, b.claims.jti);
    }

    #[test]
    fn jti_comes_from_the_injected_random_source() {
        let clock = ManualClock::at_unix(T0);
        let fixed = Arc::new(|dest: &mut [u8]| {
            dest.fill(0xab);
            Ok(())
        });
        let c = codec(&clock).random(fixed);
        let v = c.verify(c.mint(&handoff()).unwrap(), "acme").unwrap();
        assert_eq!(v.claims.jti, encoding::encode([0xab; JTI_LEN]));

        let failing = Arc::new(|_: &mut [u8]| Err(RandomError("no entropy".into())));
        let c = codec(&clock).random(failing);
        assert!(matches!(c.mint(&handoff()), Err(MintError::Random(_))));
    }

    #[test]
    fn ttl_above_the_cap_or_zero_is_refused() {
        let clock = ManualClock::at_unix(T0);
        let c = codec(&clock);
        assert_eq!(
            c.mint_for(&handoff(), MAX_HANDOFF_TTL + Duration::from_secs(1)),
            Err(MintError::InvalidTtl)
        );
        assert_eq!(
            c.mint_for(&handoff(), Duration::ZERO),
            Err(MintError::InvalidTtl)
        );
        assert!(c.mint_for(&handoff(), MAX_HANDOFF_TTL).is_ok());
        assert_eq!(
            codec(&clock).ttl(Duration::from_secs(601)).unwrap_err(),
            MintError::InvalidTtl
        );
    }

    #[test]
    fn expires_after_the_ttl_on_the_test_clock() {
        let clock = ManualClock::at_unix(T0);
        let c = codec(&clock);
        let token = c.mint(&handoff()).unwrap();
        clock.advance(Duration::from_secs(59));
        assert!(c.verify(&token, "acme").is_ok());
        clock.advance(Duration::from_secs(1));
        assert_eq!(c.verify(&token, "acme"), Err(VerifyError::Expired));
    }

    #[test]
    fn leeway_extends_replay_window_too() {
        let clock = ManualClock::at_unix(T0);
        let c = codec(&clock).leeway(Duration::from_secs(5));
        let token = c.mint(&handoff()).unwrap();
        clock.advance(Duration::from_secs(62));
        let v = c.verify(&token, "acme").unwrap();
        assert_eq!(v.replay_until, T0 + 65);
    }

    #[test]
    fn wrong_audience_is_refused() {
        let clock = ManualClock::at_unix(T0);
        let c = codec(&clock);
        let token = c.mint(&handoff()).unwrap();
        assert_eq!(c.verify(&token, "globex"), Err(VerifyError::WrongAudience));
        assert_eq!(c.verify(&token, "ACME"), Err(VerifyError::WrongAudience));
    }

    #[test]
    fn tampered_signature_and_other_keys_are_bad_signatures() {
        let clock = ManualClock::at_unix(T0);
        let c = codec(&clock);
        let token = c.mint(&handoff()).unwrap();
        let (head, tag) = token.rsplit_once('.').unwrap();
        let mut raw: [u8; 32] = encoding::decode_array(tag).unwrap();
        raw[16] ^= 0x40;
        let tampered = format!("{head}.{}", encoding::encode(raw));
        assert_eq!(c.verify(&tampered, "acme"), Err(VerifyError::BadSignature));

        let other = HandoffCodec::new(keyring(2)).clock(clock.shared());
        assert_eq!(other.verify(&token, "acme"), Err(VerifyError::BadSignature));
    }

    #[test]
    fn a_session_cookie_never_verifies_as_a_handoff_token() {
        let clock = ManualClock::at_unix(T0);
        let sessions = SignedCodec::new(keyring(1), SESSION_PURPOSE).clock(clock.shared());
        let claims = HandoffClaims {
            subject: "a".into(),
            actor: None,
            audience: "acme".into(),
            session_version: None,
            jti: encoding::encode([1u8; JTI_LEN]),
        };
        let token = sessions.seal(&claims, Duration::from_secs(60)).unwrap();
        assert_eq!(
            codec(&clock).verify(&token, "acme"),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn signed_but_ill_formed_claims_are_malformed() {
        let clock = ManualClock::at_unix(T0);
        let raw = SignedCodec::new(keyring(1), HANDOFF_PURPOSE).clock(clock.shared());
        let claims = HandoffClaims {
            subject: "a".into(),
            actor: None,
            audience: "acme".into(),
            session_version: None,
            jti: "short".into(),
        };
        let token = raw.seal(&claims, Duration::from_secs(60)).unwrap();
        assert_eq!(
            codec(&clock).verify(&token, "acme"),
            Err(VerifyError::Malformed)
        );
        assert_eq!(
            codec(&clock).verify("garbage", "acme"),
            Err(VerifyError::Malformed)
        );
    }

    #[test]
    fn invalid_claim_texts_are_refused_at_mint() {
        let clock = ManualClock::at_unix(T0);
        let c = codec(&clock);
        for h in [
            Handoff::new("", "acme"),
            Handoff::new("a", ""),
            Handoff::new("a\nb", "acme"),
            Handoff::new("a", "acme").acting_as("x".repeat(257)),
        ] {
            assert_eq!(c.mint(&h), Err(MintError::InvalidClaims), "{h:?}");
        }
    }
}
