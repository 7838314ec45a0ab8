//! The one place an authentication failure becomes a response.
//!
//! Every layer and extractor describes a failure as a [`Rejection`]: a
//! stable [`Reason`], an HTTP status, a fixed human-readable detail, and
//! optionally an RFC 6750 Bearer challenge. [`Rejection::into_response`]
//! turns it into:
//!
//! - the status (401 for bad or missing credentials, 403 for a missing scope,
//!   503 with `Retry-After` when a backend is down, 500 for a missing layer);
//! - `WWW-Authenticate: Bearer realm="…"` when the rejection has a
//!   challenge, with `error="invalid_token"` only when credentials were
//!   presented (RFC 6750 §3: none when the request carried none), and
//!   `error="insufficient_scope", scope="…"` on 403;
//! - an `application/problem+json` body (RFC 9457) with `type`, `title`,
//!   `status`, `detail` and the stable `reason`;
//! - a `tracing` event (target `keystile::rejection`) carrying the reason,
//!   status and source layer, so operators can count failures by reason.
//!
//! Nothing in the response or the event is taken from the request: a
//! presented secret is never echoed.
//!
//! ```
//! use keystile_core::rejection::{Reason, Rejection};
//!
//! let response = Rejection::new(Reason::Expired, "ApiKeyLayer")
//!     .with_challenge("api")
//!     .into_response();
//! assert_eq!(response.status(), 401);
//! assert_eq!(
//!     response.headers()["www-authenticate"],
//!     r#"Bearer realm="api", error="invalid_token", error_description="the credential has expired""#
//! );
//! assert_eq!(response.headers()["content-type"], "application/problem+json");
//! ```

use std::borrow::Cow;
use std::fmt;

use http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, Response, StatusCode};

/// Default `Retry-After` seconds on a 503.
pub const DEFAULT_RETRY_AFTER: u32 = 5;

/// The content type of rejection bodies.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Why a request was rejected: a stable, machine-readable class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// The request carried no credentials.
    MissingCredentials,
    /// Credentials were presented but are not well formed.
    Malformed,
    /// Credentials were presented but are not valid: bad signature, unknown,
    /// revoked, or expired keys (API keys do not say which).
    InvalidCredentials,
    /// A signed token has expired.
    Expired,
    /// A signed token is not valid yet.
    NotYetValid,
    /// A token was minted for another tenant or audience.
    WrongAudience,
    /// A single-use token was already redeemed.
    AlreadyUsed,
    /// The session behind the token was revoked (session version moved on).
    SessionRevoked,
    /// The credential lacks a required scope.
    InsufficientScope,
    /// A backend (store, cache, identity provider) failed; failing closed.
    BackendUnavailable,
    /// An extractor ran on a route without the layer it needs, or a layer
    /// ran without what it needs from the server (a wiring mistake).
    MissingLayer,
    /// This client may not use the resource (e.g. its address is not
    /// allowed), whatever it presents.
    Forbidden,
    /// Too many requests from this client; retry later.
    RateLimited,
}

impl Reason {
    /// The stable name, used as the problem `reason` and in events.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::MissingCredentials => "missing_credentials",
            Self::Malformed => "malformed",
            Self::InvalidCredentials => "invalid_credentials",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::WrongAudience => "wrong_audience",
            Self::AlreadyUsed => "already_used",
            Self::SessionRevoked => "session_revoked",
            Self::InsufficientScope => "insufficient_scope",
            Self::BackendUnavailable => "backend_unavailable",
            Self::MissingLayer => "missing_layer",
            Self::Forbidden => "forbidden",
            Self::RateLimited => "rate_limited",
        }
    }

    /// The status this reason gets unless a layer chooses another.
    pub fn default_status(&self) -> StatusCode {
        match self {
            Self::InsufficientScope | Self::Forbidden => StatusCode::FORBIDDEN,
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::AlreadyUsed => StatusCode::GONE,
            Self::BackendUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::MissingLayer => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    /// A short fixed title.
    pub fn title(&self) -> &'static str {
        match self {
            Self::MissingCredentials => "Authentication required",
            Self::Malformed => "Malformed credentials",
            Self::InvalidCredentials => "Invalid credentials",
            Self::Expired => "Credentials expired",
            Self::NotYetValid => "Credentials not yet valid",
            Self::WrongAudience => "Credentials for another audience",
            Self::AlreadyUsed => "Credentials already used",
            Self::SessionRevoked => "Session revoked",
            Self::InsufficientScope => "Insufficient scope",
            Self::BackendUnavailable => "Authentication backend unavailable",
            Self::MissingLayer => "Authentication layer missing",
            Self::Forbidden => "Forbidden",
            Self::RateLimited => "Too many requests",
        }
    }

    /// The default detail sentence.
    pub fn default_detail(&self) -> &'static str {
        match self {
            Self::MissingCredentials => "the request carried no credentials",
            Self::Malformed => "the credential is not well formed",
            Self::InvalidCredentials => "the credential is not valid",
            Self::Expired => "the credential has expired",
            Self::NotYetValid => "the credential is not valid yet",
            Self::WrongAudience => "the credential was issued for another audience",
            Self::AlreadyUsed => "the credential was already used",
            Self::SessionRevoked => "session revoked",
            Self::InsufficientScope => "the credential lacks a required scope",
            Self::BackendUnavailable => "authentication could not be checked; retry later",
            Self::MissingLayer => "an extractor ran without its layer",
            Self::Forbidden => "this client may not use this resource",
            Self::RateLimited => "too many requests; retry later",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An authentication failure, ready to become a response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    reason: Reason,
    status: StatusCode,
    detail: Cow<'static, str>,
    source: &'static str,
    realm: Option<Cow<'static, str>>,
    scope: Option<Cow<'static, str>>,
    retry_after: Option<u32>,
    request_id: Option<Box<str>>,
}

impl Rejection {
    /// A rejection for `reason`, raised by `source` (the layer or
    /// extractor's name, e.g. `"ApiKeyLayer"`).
    pub fn new(reason: Reason, source: &'static str) -> Self {
        Self {
            reason,
            status: reason.default_status(),
            detail: Cow::Borrowed(reason.default_detail()),
            source,
            realm: None,
            scope: None,
            retry_after: (reason == Reason::BackendUnavailable).then_some(DEFAULT_RETRY_AFTER),
            request_id: None,
        }
    }

    /// Overrides the status (e.g. 400 for a malformed handoff link).
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// Replaces the detail. Never put request input here.
    pub fn with_detail(mut self, detail: impl Into<Cow<'static, str>>) -> Self {
        self.detail = detail.into();
        self
    }

    /// Adds an RFC 6750 `WWW-Authenticate: Bearer` challenge for `realm`.
    pub fn with_challenge(mut self, realm: impl Into<Cow<'static, str>>) -> Self {
        self.realm = Some(realm.into());
        self
    }

    /// Names the scope that was needed (with [`Reason::InsufficientScope`]).
    pub fn with_scope(mut self, scope: impl Into<Cow<'static, str>>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// Sets `Retry-After` seconds.
    pub fn with_retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// Names the request in the body (`request_id`), so a user who quotes
    /// the error can be found in the logs. The request id layer sets it on
    /// every keystile rejection that passes through it.
    pub fn with_request_id(mut self, id: impl Into<Box<str>>) -> Self {
        self.request_id = Some(id.into());
        self
    }

    /// The request id the body names, if any.
    pub fn request_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }

    /// The reason.
    pub fn reason(&self) -> Reason {
        self.reason
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The detail sentence.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// The layer or extractor that raised it.
    pub fn source(&self) -> &'static str {
        self.source
    }

    /// The RFC 6750 error code this rejection carries in a challenge.
    pub fn bearer_error(&self) -> Option<&'static str> {
        match (self.status, self.reason) {
            (_, Reason::MissingCredentials) => None,
            (StatusCode::UNAUTHORIZED, _) => Some("invalid_token"),
            (StatusCode::FORBIDDEN, _) => Some("insufficient_scope"),
            (StatusCode::BAD_REQUEST, _) => Some("invalid_request"),
            _ => None,
        }
    }

    /// The `WWW-Authenticate` value, when this rejection has a challenge and
    /// its status is one RFC 6750 challenges on (400, 401, 403).
    pub fn www_authenticate(&self) -> Option<HeaderValue> {
        let realm = self.realm.as_deref()?;
        if !matches!(self.status.as_u16(), 400 | 401 | 403) {
            return None;
        }
        let mut value = format!("Bearer realm=\"{}\"", quoted(realm));
        if let Some(error) = self.bearer_error() {
            value.push_str(&format!(
                ", error=\"{error}\", error_description=\"{}\"",
                quoted(&self.detail)
            ));
        }
        if let (Some(scope), StatusCode::FORBIDDEN) = (&self.scope, self.status) {
            value.push_str(&format!(", scope=\"{}\"", quoted(scope)));
        }
        HeaderValue::from_str(&value).ok()
    }

    /// The `application/problem+json` body.
    pub fn problem_body(&self) -> String {
        let mut body = serde_json::json!({
            "type": format!("urn:keystile:problem:{}", self.reason.as_str()),
            "title": self.reason.title(),
            "status": self.status.as_u16(),
            "detail": self.detail,
            "reason": self.reason.as_str(),
        });
        if let Some(map) = body.as_object_mut() {
            if let Some(scope) = &self.scope {
                map.insert("scope".into(), scope.as_ref().into());
            }
            if let Some(id) = &self.request_id {
                map.insert("request_id".into(), id.as_ref().into());
            }
        }
        body.to_string()
    }

    /// Emits the `tracing` event for this rejection (done by
    /// [`Rejection::into_response`]; call it yourself only when building the
    /// response another way).
    pub fn emit_event(&self) {
        let status = self.status.as_u16();
        if self.status.is_server_error() {
            tracing::warn!(
                target: "keystile::rejection",
                reason = self.reason.as_str(),
                status,
                source = self.source,
                "request rejected"
            );
        } else {
            tracing::info!(
                target: "keystile::rejection",
                reason = self.reason.as_str(),
                status,
                source = self.source,
                "request rejected"
            );
        }
    }

    /// The complete response, with the rejection's `tracing` event emitted.
    /// A [`RenderedRejection`] rides along in the response's extensions, so
    /// a layer further out can render the body again with more context
    /// (the request id).
    pub fn into_response(self) -> Response<String> {
        self.emit_event();
        let body = self.problem_body();
        let rendered = RenderedRejection {
            body_len: body.len(),
            rejection: self.clone(),
        };
        let mut response = Response::new(body);
        response.extensions_mut().insert(rendered);
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(challenge) = self.www_authenticate() {
            headers.insert(WWW_AUTHENTICATE, challenge);
        }
        if let Some(seconds) = self.retry_after {
            headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// The rejection a response's problem body was rendered from, and that
/// body's length: a layer further out may render it again (with the
/// request id) while the body is still exactly the one rendered here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenderedRejection {
    /// The rejection.
    pub rejection: Rejection,
    /// The length in bytes of the body it was rendered as.
    pub body_len: usize,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.reason, self.status, self.detail)
    }
}

impl std::error::Error for Rejection {}

/// Text safe inside an HTTP quoted-string: quotes and backslashes escaped,
/// control characters (header injection) dropped.
fn quoted(text: &str) -> Cow<'_, str> {
    if text
        .bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 2);
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_ascii() && !c.is_ascii_control() => out.push(c),
            _ => {}
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(r: &Response<String>, name: &str) -> Option<String> {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    }

    #[test]
    fn missing_credentials_challenge_has_no_error() {
        let r = Rejection::new(Reason::MissingCredentials, "ApiKeyLayer")
            .with_challenge("api")
            .into_response();
        assert_eq!(r.status(), 401);
        assert_eq!(
            header(&r, "www-authenticate").unwrap(),
            r#"Bearer realm="api""#
        );
    }

    #[test]
    fn insufficient_scope_is_403_with_scope() {
        let r = Rejection::new(Reason::InsufficientScope, "RequireScopeLayer")
            .with_challenge("api")
            .with_scope("reports:write")
            .into_response();
        assert_eq!(r.status(), 403);
        let challenge = header(&r, "www-authenticate").unwrap();
        assert!(challenge.contains(r#"error="insufficient_scope""#));
        assert!(challenge.ends_with(r#"scope="reports:write""#));
        let body: serde_json::Value = serde_json::from_str(r.body()).unwrap();
        assert_eq!(body["reason"], "insufficient_scope");
        assert_eq!(body["scope"], "reports:write");
        assert_eq!(body["status"], 403);
    }

    #[test]
    fn backend_failure_is_503_with_retry_after_and_no_challenge() {
        let r = Rejection::new(Reason::BackendUnavailable, "ApiKeyLayer")
            .with_challenge("api")
            .into_response();
        assert_eq!(r.status(), 503);
        assert_eq!(header(&r, "retry-after").unwrap(), "5");
        assert!(header(&r, "www-authenticate").is_none());
    }

    #[test]
    fn problem_body_is_rfc9457() {
        let r = Rejection::new(Reason::AlreadyUsed, "HandoffLayer").into_response();
        assert_eq!(r.status(), 410);
        assert_eq!(header(&r, "content-type").unwrap(), PROBLEM_JSON);
        assert_eq!(header(&r, "cache-control").unwrap(), "no-store");
        let body: serde_json::Value = serde_json::from_str(r.body()).unwrap();
        assert_eq!(body["type"], "urn:keystile:problem:already_used");
        assert_eq!(body["title"], "Credentials already used");
        assert_eq!(body["detail"], "the credential was already used");
        assert!(header(&r, "www-authenticate").is_none());
    }

    #[test]
    fn realm_cannot_inject_headers() {
        let r = Rejection::new(Reason::MissingCredentials, "test")
            .with_challenge("a\"b\r\nSet-Cookie: x=1")
            .into_response();
        assert_eq!(
            header(&r, "www-authenticate").unwrap(),
            r#"Bearer realm="a\"bSet-Cookie: x=1""#
        );
    }

    #[test]
    fn malformed_with_400_is_invalid_request() {
        let r = Rejection::new(Reason::Malformed, "test")
            .with_status(StatusCode::BAD_REQUEST)
            .with_challenge("api");
        assert_eq!(r.bearer_error(), Some("invalid_request"));
    }
}
