//! The [`TokenVerifier`] trait: token in, verified [`Claims`] out.

use std::future::Future;

use async_trait::async_trait;

use crate::bearer::Claims;
use crate::rejection::{Reason, Rejection};
use crate::store::StoreError;

/// Why a bearer token was refused.
///
/// One variant per outcome a caller may act on; [`TokenError::reason`] maps
/// each onto the shared [`Reason`]s, so every verifier produces the same
/// RFC 6750 responses.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not a token this verifier can read: too long, not three base64url
    /// parts, bad JSON, an unsupported `alg` (including `none`), or a
    /// registered claim of the wrong type. The text says which, without
    /// quoting the token.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// The token names no key this verifier holds, or names none and the
    /// verifier has no single key for its algorithm.
    #[error("token signed by an unknown key")]
    UnknownKey,
    /// The `alg` is not the one configured for the named key (algorithm
    /// confusion, e.g. HS256 against an RSA key).
    #[error("token algorithm does not match its key")]
    WrongAlgorithm,
    /// The signature does not verify: tampered or forged.
    #[error("bad token signature")]
    BadSignature,
    /// `exp` has passed (beyond the leeway).
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("token not yet valid")]
    NotYetValid,
    /// `iss` is missing or not the configured issuer.
    #[error("token from an unexpected issuer")]
    WrongIssuer,
    /// `aud` is missing or names none of the configured audiences.
    #[error("token issued for another audience")]
    WrongAudience,
    /// The token's id is on the revocation list.
    #[error("token revoked")]
    Revoked,
    /// Valid, but not usable here (e.g. a refresh token presented as an
    /// access token).
    #[error("token not accepted: {0}")]
    Invalid(&'static str),
    /// A backend (revocation list, introspection endpoint) could not answer.
    /// Never treated as "valid": layers answer 503.
    #[error(transparent)]
    Unavailable(#[from] StoreError),
}

impl TokenError {
    /// The shared reason class this error is reported as.
    pub fn reason(&self) -> Reason {
        match self {
            Self::Malformed(_) => Reason::Malformed,
            Self::Expired => Reason::Expired,
            Self::NotYetValid => Reason::NotYetValid,
            Self::WrongAudience => Reason::WrongAudience,
            Self::Unavailable(_) => Reason::BackendUnavailable,
            Self::UnknownKey
            | Self::WrongAlgorithm
            | Self::BadSignature
            | Self::WrongIssuer
            | Self::Revoked
            | Self::Invalid(_) => Reason::InvalidCredentials,
        }
    }

    /// The rejection for this error, raised by `source`. The detail is fixed
    /// text: the token is never echoed.
    pub fn to_rejection(&self, source: &'static str) -> Rejection {
        let rejection = Rejection::new(self.reason(), source);
        match self {
            Self::Revoked => rejection.with_detail("the token was revoked"),
            Self::WrongIssuer => rejection.with_detail("the token was issued by another issuer"),
            Self::Invalid(why) => rejection.with_detail(*why),
            _ => rejection,
        }
    }
}

/// Verifies a bearer token and returns its claims.
///
/// Implement it for your own token format, or pass an async closure taking
/// the token as a `String`. Errors other than
/// [`TokenError::Unavailable`] are the caller's fault (401);
/// `Unavailable` is the verifier's (503, fail closed).
///
/// ```
/// use keystile_core::bearer::{Claims, TokenError, TokenVerifier};
///
/// // An opaque-token verifier as a closure (a lookup table stands in for an
/// // introspection call).
/// let verifier = |token: String| async move {
///     match token.as_str() {
///         "let-me-in" => Ok(Claims { subject: "svc:backup".into(), ..Claims::default() }),
///         _ => Err(TokenError::BadSignature),
///     }
/// };
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let claims = verifier.verify("let-me-in").await.unwrap();
/// assert_eq!(claims.subject, "svc:backup");
/// assert!(verifier.verify("nope").await.is_err());
/// # });
/// ```
#[async_trait]
pub trait TokenVerifier: Send + Sync + 'static {
    /// Verifies `token` (the text after `Bearer `).
    async fn verify(&self, token: &str) -> Result<Claims, TokenError>;
}

#[async_trait]
impl<F, Fut> TokenVerifier for F
where
    F: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Claims, TokenError>> + Send + 'static,
{
    async fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        (self)(token.to_owned()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    #[test]
    fn errors_map_onto_shared_reasons() {
        assert_eq!(TokenError::Malformed("x").reason(), Reason::Malformed);
        assert_eq!(
            TokenError::BadSignature.reason(),
            Reason::InvalidCredentials
        );
        assert_eq!(TokenError::WrongAudience.reason(), Reason::WrongAudience);
        let r = TokenError::Unavailable(StoreError::Timeout).to_rejection("t");
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        let r = TokenError::Revoked.to_rejection("t");
        assert_eq!(
            (r.status(), r.detail()),
            (StatusCode::UNAUTHORIZED, "the token was revoked")
        );
    }
}
