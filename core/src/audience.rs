//! Why a token bound to an audience (a tenant) was refused.
//!
//! Handoff tokens and session cookies are both signed for one tenant and
//! checked against the tenant the request is for. They fail in the same
//! five ways, so they share one error, and one mapping to the
//! [`Reason`] a rejection reports.
//!
//! A token signed by an unknown key is reported as
//! [`BadSignature`](VerifyError::BadSignature): callers cannot act on the
//! difference, and an attacker learns nothing about which key ids exist.
//!
//! ```
//! use keystile_core::audience::VerifyError;
//! use keystile_core::codec::CodecError;
//! use keystile_core::rejection::Reason;
//!
//! assert_eq!(VerifyError::from(CodecError::UnknownKey), VerifyError::BadSignature);
//! assert_eq!(VerifyError::WrongAudience.reason(), Reason::WrongAudience);
//! ```

use crate::codec::CodecError;
use crate::rejection::Reason;

/// Why an audience-bound token was refused. The `Display` text is fixed and
/// never contains the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// Not well formed: length, structure, encoding or claims schema.
    #[error("malformed token")]
    Malformed,
    /// Forged, tampered, signed by an unknown key, or minted for another
    /// purpose.
    #[error("bad token signature")]
    BadSignature,
    /// Past its expiry.
    #[error("token expired")]
    Expired,
    /// Issued in the future (clock skew beyond the leeway, or forged time).
    #[error("token not yet valid")]
    NotYetValid,
    /// Valid, but for another tenant than the request's.
    #[error("token issued for another audience")]
    WrongAudience,
}

impl VerifyError {
    /// The stable rejection reason for this failure.
    pub fn reason(&self) -> Reason {
        match self {
            Self::Malformed => Reason::Malformed,
            Self::BadSignature => Reason::InvalidCredentials,
            Self::Expired => Reason::Expired,
            Self::NotYetValid => Reason::NotYetValid,
            Self::WrongAudience => Reason::WrongAudience,
        }
    }
}

impl From<CodecError> for VerifyError {
    fn from(error: CodecError) -> Self {
        match error {
            CodecError::UnknownKey | CodecError::BadSignature => Self::BadSignature,
            CodecError::Expired => Self::Expired,
            CodecError::NotYetValid => Self::NotYetValid,
            // `Seal` cannot come out of `open`; anything unexpected is
            // treated as input we do not understand.
            _ => Self::Malformed,
        }
    }
}
