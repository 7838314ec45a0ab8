//! Fetching the current session version from the source of truth.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;

/// What a fetcher is asked: whose version, and the caller's own bearer token
/// when the request carried one (a session-cookie request has none).
#[derive(Clone, Copy)]
pub struct FetchRequest<'a> {
    /// The subject whose current version is wanted.
    pub subject: &'a str,
    /// The caller's raw bearer token, for fetchers that call the identity
    /// provider on the caller's behalf.
    pub bearer: Option<&'a str>,
}

impl fmt::Debug for FetchRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FetchRequest")
            .field("subject", &self.subject)
            .field("bearer", &self.bearer.map(|_| "<redacted>"))
            .finish()
    }
}

/// Why the current version could not be fetched. Every variant makes the
/// request fail closed (503).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The fetcher needs the caller's bearer token and the request had none
    /// (e.g. a session-cookie request reaching a userinfo fetcher).
    #[error("no bearer token to ask the identity provider with")]
    NoBearer,
    /// The source of truth could not be reached.
    #[error("session-version source unreachable: {0}")]
    Unreachable(Arc<dyn StdError + Send + Sync>),
    /// The source of truth did not answer in time.
    #[error("session-version source timed out")]
    Timeout,
    /// The source of truth answered with a non-2xx HTTP status.
    #[error("session-version source answered HTTP {0}")]
    Status(u16),
    /// The answer was not usable: not JSON, too large, or without a
    /// non-negative integer version.
    #[error("session-version source answer unusable: {0}")]
    InvalidResponse(&'static str),
    /// Any other failure of a custom fetcher.
    #[error("session-version fetch failed: {0}")]
    Other(Arc<dyn StdError + Send + Sync>),
}

impl FetchError {
    /// A custom fetcher's failure.
    pub fn other(error: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        Self::Other(Arc::from(error.into()))
    }
}

/// Fetches a subject's current session version from the source of truth.
///
/// Built in: `UserinfoFetcher` (feature `userinfo`). Any closure
/// `Fn(FetchRequest<'_>) -> impl Future<Output = Result<u64, FetchError>>` is
/// a fetcher too; copy what it needs out of the request before the `async`
/// block:
///
/// ```
/// use keystile_core::session_version::{FetchError, FetchRequest, SessionVersionFetcher};
///
/// fn assert_fetcher(_: impl SessionVersionFetcher) {}
///
/// assert_fetcher(|request: FetchRequest<'_>| {
///     let subject = request.subject.to_owned();
///     async move {
///         // e.g. SELECT session_version FROM users WHERE id = $1
///         if subject.is_empty() { Err(FetchError::other("no such user")) } else { Ok(7) }
///     }
/// });
/// ```
#[async_trait]
pub trait SessionVersionFetcher: Send + Sync + 'static {
    /// The current session version of `request.subject`.
    async fn fetch(&self, request: FetchRequest<'_>) -> Result<u64, FetchError>;
}

#[async_trait]
impl<F, Fut> SessionVersionFetcher for F
where
    F: Fn(FetchRequest<'_>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<u64, FetchError>> + Send,
{
    async fn fetch(&self, request: FetchRequest<'_>) -> Result<u64, FetchError> {
        self(request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_the_bearer() {
        let request = FetchRequest {
            subject: "alice",
            bearer: Some("secret-token"),
        };
        let debug = format!("{request:?}");
        assert!(debug.contains("alice"));
        assert!(!debug.contains("secret-token"));
    }

    #[tokio::test]
    async fn closures_are_fetchers() {
        let fetcher = |request: FetchRequest<'_>| {
            let has_bearer = request.bearer.is_some();
            async move {
                if has_bearer {
                    Ok(2)
                } else {
                    Err(FetchError::NoBearer)
                }
            }
        };
        let with = FetchRequest {
            subject: "a",
            bearer: Some("t"),
        };
        let without = FetchRequest {
            subject: "a",
            bearer: None,
        };
        assert_eq!(fetcher.fetch(with).await.unwrap(), 2);
        assert!(matches!(
            fetcher.fetch(without).await,
            Err(FetchError::NoBearer)
        ));
    }
}
