//! Access logs that never hold a credential: a span maker and response
//! logger for tower-http's `TraceLayer`, and the sensitive-header marking
//! that goes with it.
//!
//! tower-http's default span records the full URI, so a handoff link's
//! `?token=…` or an OAuth `?code=…` lands in the logs. [`AccessLog`]
//! records instead:
//!
//! - `method`, `path`, and the `query` with the VALUES of credential
//!   parameters replaced by `[redacted]` — names compared ASCII
//!   case-insensitively after percent-decoding, so `%74oken=` and `TOKEN=`
//!   are `token=` ([`DEFAULT_REDACTED`]; extend or replace the list);
//! - `request_id` (the `x-request-id` header that [`RequestIdLayer`]
//!   sets, when it runs first);
//! - `principal` and `auth`: the subject and the method of whichever
//!   keystile auth layer admitted the request — who, never the credential;
//! - on the response, `status` and `latency_ms`, in one event
//!   (target `keystile::access`).
//!
//! [`sensitive_headers`] marks `Authorization`, `Cookie`, `Set-Cookie`,
//! `X-API-Key` and `Proxy-Authorization` sensitive (tower-http's
//! `SetSensitiveHeadersLayer`), so any other logger that prints headers
//! prints `Sensitive` instead of their values.
//!
//! [`RequestIdLayer`]: crate::request_id::RequestIdLayer
//!
//! ```
//! use axum::{Router, routing::get};
//! use keystile_middleware::access_log::{AccessLog, sensitive_headers};
//! use keystile_middleware::request_id::RequestIdLayer;
//! use tower::ServiceBuilder;
//! use tower_http::trace::TraceLayer;
//!
//! let log = AccessLog::new().redact_also(["otp"]);
//! let app: Router = Router::new().route("/", get(|| async { "hi" })).layer(
//!     ServiceBuilder::new()
//!         .layer(sensitive_headers())
//!         .layer(RequestIdLayer::new())
//!         .layer(TraceLayer::new_for_http().make_span_with(log.clone()).on_response(log)),
//! );
//! assert_eq!(
//!     AccessLog::new().scrub_query("page=2&%74oken=abc&Code=x"),
//!     "page=2&%74oken=[redacted]&Code=[redacted]"
//! );
//! ```

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use http::header::{AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION, SET_COOKIE};
use http::{HeaderName, Request, Response};
use keystile_core::identity::Principal;
use tower_http::sensitive_headers::SetSensitiveHeadersLayer;
use tower_http::trace::{MakeSpan, OnResponse};
use tracing::Span;
use tracing::field::Empty;

use crate::credentials::X_API_KEY;
use crate::request_id::X_REQUEST_ID;

/// The query parameters whose values are never logged, by default.
/// `token` is also the handoff link's parameter.
pub const DEFAULT_REDACTED: [&str; 16] = [
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "code",
    "password",
    "passwd",
    "secret",
    "api_key",
    "apikey",
    "key",
    "signature",
    "sig",
    "auth",
    "session",
    "client_secret",
];

/// What replaces a redacted value.
pub const REDACTED: &str = "[redacted]";

/// The headers [`sensitive_headers`] marks.
pub const SENSITIVE_HEADERS: [HeaderName; 5] = [
    AUTHORIZATION,
    COOKIE,
    SET_COOKIE,
    X_API_KEY,
    PROXY_AUTHORIZATION,
];

/// Marks [`SENSITIVE_HEADERS`] sensitive on requests and responses.
pub fn sensitive_headers() -> SetSensitiveHeadersLayer {
    SetSensitiveHeadersLayer::new(SENSITIVE_HEADERS)
}

/// A `MakeSpan` and `OnResponse` for tower-http's `TraceLayer`; see the
/// [module docs](self). Cloning is cheap.
#[derive(Clone, Debug)]
pub struct AccessLog {
    redacted: Arc<[Box<[u8]>]>,
}

impl Default for AccessLog {
    fn default() -> Self {
        Self::new()
    }
}

impl AccessLog {
    /// Redacts [`DEFAULT_REDACTED`].
    pub fn new() -> Self {
        Self::redact_only(DEFAULT_REDACTED)
    }

    /// Redacts exactly `names` (compared ASCII case-insensitively).
    pub fn redact_only<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Self {
            redacted: names
                .into_iter()
                .map(|n| {
                    n.as_ref()
                        .to_ascii_lowercase()
                        .into_bytes()
                        .into_boxed_slice()
                })
                .collect(),
        }
    }

    /// Redacts `names` as well as the current list.
    #[must_use]
    pub fn redact_also<I, S>(self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut all: Vec<Box<[u8]>> = self.redacted.to_vec();
        all.extend(names.into_iter().map(|n| {
            n.as_ref()
                .to_ascii_lowercase()
                .into_bytes()
                .into_boxed_slice()
        }));
        Self {
            redacted: all.into(),
        }
    }

    /// `query` with the value of every redacted parameter replaced by
    /// [`REDACTED`]; everything else as it was.
    pub fn scrub_query<'q>(&self, query: &'q str) -> Cow<'q, str> {
        if !query.split('&').any(|pair| self.is_redacted(pair)) {
            return Cow::Borrowed(query);
        }
        let scrubbed: Vec<Cow<'_, str>> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) if self.is_redacted(pair) => {
                    Cow::Owned(format!("{name}={REDACTED}"))
                }
                _ => Cow::Borrowed(pair),
            })
            .collect();
        Cow::Owned(scrubbed.join("&"))
    }

    /// `url` (absolute or a path) with its query scrubbed, its fragment
    /// (never sent to a server, but quoted in reports, and where implicit
    /// OAuth flows put tokens) and any user information replaced by
    /// [`REDACTED`].
    pub fn scrub_url<'u>(&self, url: &'u str) -> Cow<'u, str> {
        let (rest, fragment) = match url.split_once('#') {
            Some((rest, _)) => (rest, true),
            None => (url, false),
        };
        let (head, query) = match rest.split_once('?') {
            Some((head, query)) => (head, Some(query)),
            None => (rest, None),
        };
        let head = without_userinfo(head);
        let query = query.map(|q| self.scrub_query(q));
        let unchanged = !fragment
            && matches!(head, Cow::Borrowed(_))
            && query.as_ref().is_none_or(|q| matches!(q, Cow::Borrowed(_)));
        if unchanged {
            return Cow::Borrowed(url);
        }
        let mut out = head.into_owned();
        if let Some(query) = query {
            out.push('?');
            out.push_str(&query);
        }
        if fragment {
            out.push('#');
            out.push_str(REDACTED);
        }
        Cow::Owned(out)
    }

    fn is_redacted(&self, pair: &str) -> bool {
        let Some((name, _)) = pair.split_once('=') else {
            return false;
        };
        // Compared while decoding: no allocation per parameter on a
        // request's path.
        self.redacted
            .iter()
            .any(|r| percent_decoded_lowercase(name).eq(r.iter().copied()))
    }
}

/// `scheme://user:password@host/…` without the `user:password@`.
fn without_userinfo(head: &str) -> Cow<'_, str> {
    let Some((scheme, rest)) = head.split_once("://") else {
        return Cow::Borrowed(head);
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => Cow::Owned(format!("{scheme}://{REDACTED}@{}", &rest[at + 1..])),
        None => Cow::Borrowed(head),
    }
}

/// The bytes of `name` percent-decoded (`+` as a space, as forms encode
/// it) and ASCII-lowercased; a broken escape is kept as it is.
fn percent_decoded_lowercase(name: &str) -> impl Iterator<Item = u8> + '_ {
    let bytes = name.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        let byte = *bytes.get(i)?;
        i += 1;
        let decoded = match byte {
            b'%' => match (hex(bytes.get(i)), hex(bytes.get(i + 1))) {
                (Some(high), Some(low)) => {
                    i += 2;
                    high << 4 | low
                }
                _ => b'%',
            },
            b'+' => b' ',
            other => other,
        };
        Some(decoded.to_ascii_lowercase())
    })
}

fn hex(byte: Option<&u8>) -> Option<u8> {
    match byte? {
        b @ b'0'..=b'9' => Some(b - b'0'),
        b @ b'a'..=b'f' => Some(b - b'a' + 10),
        b @ b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

impl<B> MakeSpan<B> for AccessLog {
    fn make_span(&mut self, request: &Request<B>) -> Span {
        let query = request.uri().query().map(|q| self.scrub_query(q));
        let request_id = request
            .headers()
            .get(X_REQUEST_ID)
            .and_then(|id| id.to_str().ok());
        tracing::info_span!(
            target: "keystile::access",
            "request",
            method = %request.method(),
            path = request.uri().path(),
            query = query.as_deref().unwrap_or(""),
            request_id = request_id.unwrap_or(""),
            principal = Empty,
            auth = Empty,
            status = Empty,
            latency_ms = Empty,
        )
    }
}

impl<B> OnResponse<B> for AccessLog {
    fn on_response(self, response: &Response<B>, latency: Duration, span: &Span) {
        span.record("status", response.status().as_u16());
        span.record("latency_ms", latency.as_secs_f64() * 1000.0);
        tracing::info!(target: "keystile::access", parent: span, "request finished");
    }
}

/// Records who a keystile auth layer admitted on the current span (the
/// access log's, when `TraceLayer` runs outside the auth layers): the
/// subject and the method, never the credential.
pub(crate) fn record_principal(principal: &Principal) {
    let span = Span::current();
    span.record("principal", &*principal.subject);
    span.record("auth", principal.method().as_str());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_values_are_redacted_however_their_names_are_spelled() {
        let log = AccessLog::new();
        for (query, scrubbed) in [
            ("token=abc", "token=[redacted]"),
            ("TOKEN=abc&x=1", "TOKEN=[redacted]&x=1"),
            ("%74oken=abc", "%74oken=[redacted]"),
            ("%54%4F%4B%45%4E=abc", "%54%4F%4B%45%4E=[redacted]"),
            ("access%5Ftoken=a", "access%5Ftoken=[redacted]"),
            (
                "a=1&code=xyz&b=2&code=again",
                "a=1&code=[redacted]&b=2&code=[redacted]",
            ),
            (
                "api_key=k&apikey=k&key=k",
                "api_key=[redacted]&apikey=[redacted]&key=[redacted]",
            ),
            ("page=2&sort=asc", "page=2&sort=asc"),
            ("token", "token"),
            ("tokens=1&mytoken=2", "tokens=1&mytoken=2"),
            ("to%ken=abc", "to%ken=abc"),
            ("%7", "%7"),
            ("", ""),
        ] {
            assert_eq!(log.scrub_query(query), scrubbed, "{query}");
        }
    }

    #[test]
    fn the_list_can_be_extended_or_replaced() {
        let more = AccessLog::new().redact_also(["OTP"]);
        assert_eq!(
            more.scrub_query("otp=1&token=2"),
            "otp=[redacted]&token=[redacted]"
        );
        let only = AccessLog::redact_only(["otp"]);
        assert_eq!(only.scrub_query("otp=1&token=2"), "otp=[redacted]&token=2");
    }

    #[test]
    fn urls_keep_everything_but_the_secrets() {
        let log = AccessLog::new();
        assert_eq!(
            log.scrub_url("https://acme.test/_keystile/handoff?token=abc&next=/x"),
            "https://acme.test/_keystile/handoff?token=[redacted]&next=/x"
        );
        assert_eq!(log.scrub_url("/a/b"), "/a/b");
        assert_eq!(
            log.scrub_url("/cb?state=1#access_token=abc"),
            "/cb?state=1#[redacted]"
        );
        assert_eq!(
            log.scrub_url("https://app.test/cb#access_token=abc"),
            "https://app.test/cb#[redacted]"
        );
        assert_eq!(
            log.scrub_url("https://user:pw@app.test/x?page=1"),
            "https://[redacted]@app.test/x?page=1"
        );
        assert_eq!(
            log.scrub_url("https://app.test/a@b"),
            "https://app.test/a@b"
        );
    }
}
