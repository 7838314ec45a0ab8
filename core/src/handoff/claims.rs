//! What a handoff token carries.

use serde::{Deserialize, Serialize};

use crate::encoding;

/// Bytes of randomness in a token id (`jti`).
pub const JTI_LEN: usize = 16;

/// Longest subject, actor or audience accepted, in bytes.
pub const MAX_TEXT_LEN: usize = 256;

/// The claims of a handoff token. Times (`iat`, `exp`) live in the signed
/// envelope around them; see [`VerifiedHandoff`](super::VerifiedHandoff).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandoffClaims {
    /// Who the session is for.
    #[serde(rename = "sub")]
    pub subject: String,
    /// Who is acting as the subject (impersonation), if anyone.
    #[serde(rename = "act", default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// The tenant the token may be redeemed at.
    #[serde(rename = "aud")]
    pub audience: String,
    /// The subject's session version when the token was minted, if known.
    #[serde(rename = "sv", default, skip_serializing_if = "Option::is_none")]
    pub session_version: Option<u64>,
    /// The single-use id: base64url of [`JTI_LEN`] random bytes.
    pub jti: String,
}

impl HandoffClaims {
    /// Whether every field has an acceptable shape: non-empty texts of at
    /// most [`MAX_TEXT_LEN`] bytes without control characters, and a `jti`
    /// of at least [`JTI_LEN`] bytes of canonical base64url.
    pub fn is_well_formed(&self) -> bool {
        is_claim_text(&self.subject)
            && self.actor.as_deref().is_none_or(is_claim_text)
            && is_claim_text(&self.audience)
            && is_jti(&self.jti)
    }
}

/// Whether `text` may be a subject, actor or audience.
pub fn is_claim_text(text: &str) -> bool {
    !text.is_empty() && text.len() <= MAX_TEXT_LEN && !text.chars().any(char::is_control)
}

fn is_jti(jti: &str) -> bool {
    jti.len() <= 64 && encoding::decode(jti).is_ok_and(|bytes| bytes.len() >= JTI_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> HandoffClaims {
        HandoffClaims {
            subject: "admin@acme".into(),
            actor: Some("operator:7".into()),
            audience: "acme".into(),
            session_version: None,
            jti: encoding::encode([7u8; JTI_LEN]),
        }
    }

    #[test]
    fn well_formed_claims_pass() {
        assert!(claims().is_well_formed());
    }

    #[test]
    fn control_characters_empty_texts_and_short_jtis_fail() {
        let mut c = claims();
        c.subject = "a\r\nb".into();
        assert!(!c.is_well_formed());
        let mut c = claims();
        c.actor = Some(String::new());
        assert!(!c.is_well_formed());
        let mut c = claims();
        c.audience = "x".repeat(MAX_TEXT_LEN + 1);
        assert!(!c.is_well_formed());
        let mut c = claims();
        c.jti = encoding::encode([7u8; 15]);
        assert!(!c.is_well_formed());
        let mut c = claims();
        c.jti = "not base64!".into();
        assert!(!c.is_well_formed());
    }
}
