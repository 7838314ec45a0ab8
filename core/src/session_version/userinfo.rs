//! Fetching session versions from an OIDC-style userinfo endpoint.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::ACCEPT;
use reqwest::{Client, Proxy, Url};

use crate::http::{self, BodyError};

use super::{FetchError, FetchRequest, SessionVersionFetcher};

/// Default bound on one userinfo call.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// Userinfo answers are small; anything larger is refused unread.
const MAX_BODY: usize = 64 * 1024;

/// Asks the identity provider's userinfo endpoint for the current session
/// version: `GET <url>` with the caller's own bearer token, reading an
/// integer `session_version` from the JSON answer.
///
/// Fails (and so the request fails closed with 503) when the request has no
/// bearer token, the endpoint is unreachable or slower than the timeout
/// (default 2 s), answers non-2xx (redirects are not followed), or answers
/// something other than a JSON object with a non-negative integer version.
/// When the answer carries a `sub`, it must be the token's subject.
///
/// Proxies named by the environment (`HTTP_PROXY`, `HTTPS_PROXY`,
/// `ALL_PROXY`) are ignored, since every call carries a caller's token; set
/// one explicitly with [`with_proxy`](Self::proxy).
///
/// ```
/// use std::time::Duration;
/// use keystile_core::session_version::{MemorySessionVersionCache, SessionVersionValidator, UserinfoFetcher};
///
/// let fetcher = UserinfoFetcher::new("https://idp.example.test/userinfo")?
///     .timeout(Duration::from_secs(2));
/// let validator = SessionVersionValidator::new(MemorySessionVersionCache::new(), fetcher);
/// # Ok::<(), keystile_core::session_version::UserinfoConfigError>(())
/// ```
#[derive(Clone)]
pub struct UserinfoFetcher {
    client: Client,
    url: Url,
    field: Cow<'static, str>,
    timeout: Duration,
}

/// A userinfo fetcher that cannot be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UserinfoConfigError {
    /// The URL does not parse, or is not `http`/`https`.
    #[error("the userinfo URL is not a valid http(s) URL")]
    InvalidUrl,
    /// The HTTP client could not be built.
    #[error("the HTTP client could not be built: {0}")]
    Client(#[source] reqwest::Error),
}

impl UserinfoFetcher {
    /// A fetcher for the userinfo endpoint at `url`.
    pub fn new(url: &str) -> Result<Self, UserinfoConfigError> {
        let url = Url::parse(url).map_err(|_| UserinfoConfigError::InvalidUrl)?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(UserinfoConfigError::InvalidUrl);
        }
        let client = credential_client(None)?;
        Ok(Self {
            client,
            url,
            field: Cow::Borrowed("session_version"),
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// Sends every call through `proxy`. Without it no proxy is used, not
    /// even one named by `HTTP_PROXY`, `HTTPS_PROXY` or `ALL_PROXY`: each
    /// call carries a caller's bearer token, which must not go to whatever
    /// proxy the process environment happens to name.
    pub fn proxy(mut self, proxy: Proxy) -> Result<Self, UserinfoConfigError> {
        self.client = credential_client(Some(proxy))?;
        Ok(self)
    }

    /// Uses `client` (e.g. with custom roots). Build it as this fetcher
    /// does: redirects off (`redirect::Policy::none()`) and environment
    /// proxies off (`no_proxy()`), or it may hand the caller's token to a
    /// redirect target or an environment proxy.
    #[must_use]
    pub fn client(mut self, client: Client) -> Self {
        self.client = client;
        self
    }

    /// Bounds each call, connection to last body byte (default 2 s).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Reads the version from another top-level field (default
    /// `session_version`).
    #[must_use]
    pub fn field(mut self, field: impl Into<Cow<'static, str>>) -> Self {
        self.field = field.into();
        self
    }

    /// The endpoint.
    pub fn url(&self) -> &Url {
        &self.url
    }

    fn version_from(&self, body: &[u8], subject: &str) -> Result<u64, FetchError> {
        let value: serde_json::Value = serde_json::from_slice(body)
            .map_err(|_| FetchError::InvalidResponse("the answer is not JSON"))?;
        let object = value.as_object().ok_or(FetchError::InvalidResponse(
            "the answer is not a JSON object",
        ))?;
        // OIDC Core §5.3.2: the answer's `sub` must be present and match, or
        // it may describe another user's sessions.
        match object.get("sub").and_then(|sub| sub.as_str()) {
            Some(sub) if sub == subject => {}
            Some(_) => {
                return Err(FetchError::InvalidResponse(
                    "the answer is about another subject",
                ));
            }
            None => return Err(FetchError::InvalidResponse("the answer has no sub")),
        }
        object
            .get(self.field.as_ref())
            .ok_or(FetchError::InvalidResponse(
                "the answer has no session version",
            ))?
            .as_u64()
            .ok_or(FetchError::InvalidResponse(
                "the session version is not a non-negative integer",
            ))
    }
}

#[async_trait]
impl SessionVersionFetcher for UserinfoFetcher {
    async fn fetch(&self, request: FetchRequest<'_>) -> Result<u64, FetchError> {
        let bearer = request.bearer.ok_or(FetchError::NoBearer)?;
        let response = self
            .client
            .get(self.url.clone())
            .bearer_auth(bearer)
            .header(ACCEPT, "application/json")
            .timeout(self.timeout)
            .send()
            .await
            .map_err(transport)?;
        let status = response.status();
        if !status.is_success() {
            return Err(FetchError::Status(status.as_u16()));
        }
        let body = http::read_capped(response, MAX_BODY)
            .await
            .map_err(|error| match error {
                BodyError::TooLarge => FetchError::InvalidResponse("the answer is too large"),
                BodyError::Transport(error) => transport(error),
            })?;
        self.version_from(&body, request.subject)
    }
}

/// The client for calls that carry a credential: no redirects and no proxy
/// but the one configured explicitly ([`http::client`]).
fn credential_client(proxy: Option<Proxy>) -> Result<Client, UserinfoConfigError> {
    http::client(proxy).map_err(UserinfoConfigError::Client)
}

fn transport(error: reqwest::Error) -> FetchError {
    if error.is_timeout() {
        FetchError::Timeout
    } else {
        FetchError::Unreachable(Arc::new(error))
    }
}

impl fmt::Debug for UserinfoFetcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserinfoFetcher")
            .field("url", &self.url.as_str())
            .field("field", &self.field)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fetcher() -> UserinfoFetcher {
        UserinfoFetcher::new("http://127.0.0.1:9/userinfo").unwrap()
    }

    #[test]
    fn only_http_urls_are_accepted() {
        assert!(UserinfoFetcher::new("https://idp.test/userinfo").is_ok());
        for bad in ["ftp://idp.test/", "not a url", "file:///etc/passwd", ""] {
            assert!(matches!(
                UserinfoFetcher::new(bad),
                Err(UserinfoConfigError::InvalidUrl)
            ));
        }
    }

    #[test]
    fn the_answer_must_hold_a_non_negative_integer_for_the_same_subject() {
        let f = fetcher();
        assert_eq!(
            f.version_from(br#"{"sub":"a","session_version":3}"#, "a")
                .unwrap(),
            3
        );
        assert_eq!(
            f.version_from(br#"{"sub":"a","session_version":0}"#, "a")
                .unwrap(),
            0
        );
        for bad in [
            &br#"{"session_version":3}"#[..],
            br#"{"sub":"b","session_version":3}"#,
            br#"{"session_version":"3"}"#,
            br#"{"session_version":-1}"#,
            br#"{"session_version":1.5}"#,
            br#"{"session_version":null}"#,
            br#"{"sub":"a"}"#,
            br#"[1]"#,
            b"<html>",
            b"",
            b"\xff\xfe",
        ] {
            assert!(
                matches!(
                    f.version_from(bad, "a"),
                    Err(FetchError::InvalidResponse(_))
                ),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn the_field_name_is_configurable() {
        let f = fetcher().field("sv");
        assert_eq!(f.version_from(br#"{"sub":"a","sv":9}"#, "a").unwrap(), 9);
    }

    #[tokio::test]
    async fn without_a_bearer_there_is_nothing_to_ask_with() {
        let request = FetchRequest {
            subject: "a",
            bearer: None,
        };
        assert!(matches!(
            fetcher().fetch(request).await,
            Err(FetchError::NoBearer)
        ));
    }
}
