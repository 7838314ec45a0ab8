//! The token handed out, and the digests stores keep instead of it.

use std::fmt;

use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

use super::OneTimeError;
use crate::encoding;
use crate::random::{RandomError, RandomSource};

/// Random bytes in a token: 128 bits.
pub const TOKEN_BYTES: usize = 16;
/// Length of a token's text: unpadded base64url of [`TOKEN_BYTES`].
pub const TOKEN_LEN: usize = 22;

// Domain separation keeps these digests from ever equalling a digest made
// for another purpose (an API key's, a binding's) over the same bytes.
const TOKEN_DOMAIN: &[u8] = b"keystile/one-time/token\0";
const BINDING_DOMAIN: &[u8] = b"keystile/one-time/binding\0";

/// A freshly issued one-time token. Hand its text to the one party that
/// should use it; `Debug` prints no secret and the text is wiped on drop.
pub struct OneTimeToken {
    text: Zeroizing<String>,
    expires_at_ms: u64,
}

impl OneTimeToken {
    /// The token as text: 22 characters of unpadded base64url, safe in a URL.
    pub fn expose_secret(&self) -> &str {
        &self.text
    }

    /// When the token stops being accepted, in milliseconds since the Unix
    /// epoch of the store's clock.
    pub fn expires_at_millis(&self) -> u64 {
        self.expires_at_ms
    }
}

impl fmt::Debug for OneTimeToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OneTimeToken")
            .field("token", &"<redacted>")
            .field("expires_at_ms", &self.expires_at_ms)
            .finish()
    }
}

/// `SHA-256` of a token: what stores index by, so neither memory nor Redis
/// ever holds a usable token.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct TokenDigest([u8; 32]);

impl TokenDigest {
    /// The digest of presented text, or [`OneTimeError::Malformed`] unless
    /// it is exactly a canonical token.
    pub(super) fn parse(text: &str) -> Result<Self, OneTimeError> {
        if text.len() != TOKEN_LEN {
            return Err(OneTimeError::Malformed);
        }
        let raw = encoding::decode_array::<TOKEN_BYTES>(text).ok_or(OneTimeError::Malformed)?;
        Ok(Self::of(&Zeroizing::new(raw)))
    }

    fn of(raw: &[u8; TOKEN_BYTES]) -> Self {
        Self(
            Sha256::new()
                .chain_update(TOKEN_DOMAIN)
                .chain_update(raw)
                .finalize()
                .into(),
        )
    }

    /// The digest as unpadded base64url, for backend keys.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(super) fn to_text(self) -> String {
        encoding::encode(self.0)
    }
}

/// `SHA-256` of a binding, compared in constant time.
#[derive(Clone, Copy)]
pub(super) struct BindingDigest([u8; 32]);

impl BindingDigest {
    pub(super) fn of(binding: &[u8]) -> Self {
        Self(
            Sha256::new()
                .chain_update(BINDING_DOMAIN)
                .chain_update(binding)
                .finalize()
                .into(),
        )
    }

    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(super) fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(super) fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Constant-time equality.
    pub(super) fn matches(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

/// A drawn value not yet known to be free.
pub(super) struct Candidate {
    text: Zeroizing<String>,
    digest: TokenDigest,
}

impl Candidate {
    /// Draws [`TOKEN_BYTES`] from `random`.
    pub(super) fn draw(random: &dyn RandomSource) -> Result<Self, RandomError> {
        let mut raw = Zeroizing::new([0u8; TOKEN_BYTES]);
        random.fill(raw.as_mut())?;
        let mut text = Zeroizing::new(String::with_capacity(TOKEN_LEN));
        encoding::encode_into(raw.as_ref(), &mut text);
        Ok(Self {
            text,
            digest: TokenDigest::of(&raw),
        })
    }

    pub(super) fn digest(&self) -> TokenDigest {
        self.digest
    }

    /// The candidate was stored: it becomes the caller's token.
    pub(super) fn into_token(self, expires_at_ms: u64) -> OneTimeToken {
        OneTimeToken {
            text: self.text,
            expires_at_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::OsRandom;

    #[test]
    fn drawn_tokens_are_22_base64url_characters_of_16_bytes() {
        let candidate = Candidate::draw(&OsRandom).unwrap();
        let token = candidate.into_token(5);
        assert_eq!(token.expose_secret().len(), TOKEN_LEN);
        assert_eq!(
            encoding::decode(token.expose_secret()).unwrap().len(),
            TOKEN_BYTES
        );
        assert_eq!(token.expires_at_millis(), 5);
    }

    #[test]
    fn presented_text_parses_to_the_issued_digest() {
        let candidate = Candidate::draw(&OsRandom).unwrap();
        let digest = candidate.digest();
        let token = candidate.into_token(0);
        assert!(TokenDigest::parse(token.expose_secret()).unwrap() == digest);
    }

    #[test]
    fn anything_but_a_canonical_token_is_malformed() {
        let good = encoding::encode([0xA5u8; TOKEN_BYTES]);
        assert!(TokenDigest::parse(&good).is_ok());
        let padded = format!("{good}==");
        let short = &good[..TOKEN_LEN - 1];
        let non_canonical = format!("{}B", &good[..TOKEN_LEN - 1]);
        let standard_alphabet = good.replacen('l', "+", 1).replacen('p', "/", 1);
        let long = "A".repeat(10_000);
        for bad in [
            "",
            short,
            padded.as_str(),
            non_canonical.as_str(),
            standard_alphabet.as_str(),
            long.as_str(),
            "ééééééééééé",
        ] {
            assert!(
                matches!(TokenDigest::parse(bad), Err(OneTimeError::Malformed)),
                "{bad:?} should be malformed"
            );
        }
    }

    #[test]
    fn debug_never_prints_the_token() {
        let token = Candidate::draw(&OsRandom).unwrap().into_token(1);
        let debug = format!("{token:?}");
        assert!(!debug.contains(token.expose_secret()));
        assert!(debug.contains("redacted"));
    }

    #[test]
    fn binding_digests_match_in_constant_time_only_when_equal() {
        let a = BindingDigest::of(b"user:7");
        assert!(a.matches(&BindingDigest::of(b"user:7")));
        assert!(!a.matches(&BindingDigest::of(b"user:8")));
        assert!(!a.matches(&BindingDigest::of(b"")));
    }

    #[test]
    fn a_failing_source_draws_nothing() {
        let failing = |_: &mut [u8]| Err(RandomError("no entropy".into()));
        assert!(Candidate::draw(&failing).is_err());
    }
}
