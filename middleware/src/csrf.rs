//! [`CsrfLayer`]: cross-site request forgery defences for routes behind a
//! cookie session, two of them, each switchable.
//!
//! 1. **Fetch Metadata and `Origin`** (on by default): an unsafe request
//!    (anything but GET, HEAD, OPTIONS, TRACE) whose `Sec-Fetch-Site` is
//!    `cross-site` or `same-site` is refused, unless its `Origin` is one of
//!    the trusted origins. Tenants on sibling subdomains are the same
//!    *site*, so `same-site` is not trusted by default, and neither is
//!    `SameSite=Lax`. Without `Sec-Fetch-Site`, a present `Origin` must be
//!    the request's own or a trusted one. A request with neither (not a
//!    browser) passes this check.
//! 2. **Signed double-submit token** ([`tokens`](CsrfLayer::tokens), as
//!    OWASP describes it): a random nonce and the digest of the session
//!    cookie, sealed by the keyring's signed codec under its own purpose, so
//!    it is bound to one login and a new login gets a new one. It is set as a cookie (`__Host-keystile_csrf` under https)
//!    on safe requests of a session that has none, given to handlers as
//!    [`CsrfToken`], and required back on unsafe requests in `X-CSRF-Token`
//!    or, for `application/x-www-form-urlencoded` bodies (read up to
//!    64 KiB, then handed on intact), the `csrf_token` field. Compared in
//!    constant time.
//!
//! Safe methods are never refused. Every refusal is 403 problem+json
//! (`forbidden`) whose detail names the check that failed.
//!
//! ```
//! use axum::{Router, routing::{get, post}};
//! use keystile_core::keys::Keyring;
//! use keystile_middleware::csrf::{CsrfLayer, CsrfToken};
//! use keystile_middleware::session_cookie::SessionCookie;
//!
//! async fn form(token: CsrfToken) -> String {
//!     format!(r#"<form method="post"><input type="hidden" name="csrf_token" value="{}"></form>"#, token.as_str())
//! }
//! let keyring = Keyring::generate().unwrap();
//! let app: Router = Router::new()
//!     .route("/profile", get(form).post(|| async { "saved" }))
//!     .layer(
//!         CsrfLayer::new()
//!             .trusted_origin("https://admin.example.test")
//!             .tokens(&keyring, SessionCookie::https()),
//!     );
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use cookie::{Cookie, SameSite};
use http::header::{CONTENT_TYPE, HOST, ORIGIN, SET_COOKIE};
use http::request::Parts;
use http::{HeaderName, HeaderValue, Method, Request};
use http_body_util::BodyExt;
use keystile_core::codec::{Purpose, SignedCodec};
use keystile_core::encoding;
use keystile_core::keys::Keyring;
use keystile_core::random::{OsRandom, RandomSource};
use keystile_core::rejection::{Reason, Rejection};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tower_layer::Layer;
use tower_service::Service;

use crate::session_cookie::{SessionCookie, find_cookie};

const SOURCE: &str = "CsrfLayer";
/// The purpose CSRF tokens are sealed under: no other artifact opens as one.
const PURPOSE: Purpose = Purpose::new("keystile/csrf");
/// The header an unsafe request carries the token in.
pub const CSRF_HEADER: HeaderName = HeaderName::from_static("x-csrf-token");
/// The form field an unsafe form post carries the token in.
pub const CSRF_FIELD: &str = "csrf_token";
/// The token cookie over plain http.
pub const CSRF_COOKIE: &str = "keystile_csrf";
/// The token cookie over https.
pub const SECURE_CSRF_COOKIE: &str = "__Host-keystile_csrf";
/// The largest form body read for the token.
pub const MAX_FORM: usize = 64 * 1024;
const NONCE_LEN: usize = 16;

/// The request's CSRF token, for templates; see the [module docs](self).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsrfToken(String);

impl CsrfToken {
    /// The token text, for a hidden form field or a header.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for CsrfToken {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<CsrfToken>().cloned().ok_or_else(|| {
            Rejection::missing_layer(
                "CsrfToken",
                "CsrfLayer with tokens, and a session cookie on the request",
            )
        })
    }
}

/// CSRF defences in front of a service; see the [module docs](self).
#[derive(Clone)]
pub struct CsrfLayer {
    config: Arc<Config>,
}

#[derive(Clone)]
struct Config {
    fetch_metadata: bool,
    trusted: Vec<String>,
    tokens: Option<Tokens>,
}

#[derive(Clone)]
struct Tokens {
    /// The signed codec under the CSRF purpose: fallback keys still verify
    /// after a rotation.
    codec: SignedCodec,
    session: SessionCookie,
}

/// What a CSRF token seals: the session it belongs to and a nonce.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenClaims {
    /// base64url SHA-256 of the session cookie's value.
    s: String,
    /// base64url random nonce.
    n: String,
}

impl Default for CsrfLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl CsrfLayer {
    /// The Fetch Metadata and `Origin` checks, no trusted origin, no
    /// tokens.
    pub fn new() -> Self {
        Self {
            config: Arc::new(Config {
                fetch_metadata: true,
                trusted: Vec::new(),
                tokens: None,
            }),
        }
    }

    /// Lets unsafe requests from `origin` (`https://admin.example.test`)
    /// through the Fetch Metadata and `Origin` checks.
    #[must_use]
    pub fn trusted_origin(mut self, origin: impl Into<String>) -> Self {
        let origin = origin.into().trim_end_matches('/').to_ascii_lowercase();
        Arc::make_mut(&mut self.config).trusted.push(origin);
        self
    }

    /// Turns the Fetch Metadata and `Origin` checks off (the tokens alone
    /// then defend).
    #[must_use]
    pub fn without_fetch_metadata(mut self) -> Self {
        Arc::make_mut(&mut self.config).fetch_metadata = false;
        self
    }

    /// Requires signed double-submit tokens on the unsafe requests of a
    /// session read with `session`, keyed from `keyring`.
    #[must_use]
    pub fn tokens(mut self, keyring: &Keyring, session: SessionCookie) -> Self {
        let codec = SignedCodec::new(keyring.clone(), PURPOSE);
        Arc::make_mut(&mut self.config).tokens = Some(Tokens { codec, session });
        self
    }
}

impl fmt::Debug for CsrfLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CsrfLayer")
            .field("fetch_metadata", &self.config.fetch_metadata)
            .field("trusted", &self.config.trusted)
            .field("tokens", &self.config.tokens.is_some())
            .finish()
    }
}

fn refuse(detail: &'static str) -> Rejection {
    Rejection::new(Reason::Forbidden, SOURCE).with_detail(detail)
}

fn is_safe(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

impl Config {
    /// The Fetch Metadata and `Origin` checks of an unsafe request.
    fn check_origin(&self, parts: &Parts) -> Result<(), Rejection> {
        let header = |name: &HeaderName| parts.headers.get(name).and_then(|v| v.to_str().ok());
        let origin = header(&ORIGIN).map(|o| o.trim_end_matches('/').to_ascii_lowercase());
        let trusted = origin
            .as_deref()
            .is_some_and(|origin| self.trusted.iter().any(|t| t == origin));
        match header(&HeaderName::from_static("sec-fetch-site")) {
            Some("same-origin" | "none") => Ok(()),
            Some(_) if trusted => Ok(()),
            Some("same-site") => Err(refuse("same-site request from another origin")),
            Some(_) => Err(refuse("cross-site request")),
            None => match origin {
                None => Ok(()),
                Some(_) if trusted => Ok(()),
                Some(origin) => {
                    // Without Fetch Metadata: the origin must be the request's
                    // own (its host, on either scheme the deployment uses).
                    let own = header(&HOST).map(str::to_ascii_lowercase);
                    let host = origin.split_once("://").map(|(_, host)| host);
                    if own.is_some() && host == own.as_deref() {
                        Ok(())
                    } else {
                        Err(refuse("origin not allowed"))
                    }
                }
            },
        }
    }
}

impl Tokens {
    fn cookie_name(&self) -> &'static str {
        if self.session.is_secure() {
            SECURE_CSRF_COOKIE
        } else {
            CSRF_COOKIE
        }
    }

    fn session_digest(session: &str) -> String {
        encoding::encode(Sha256::digest(session.as_bytes()))
    }

    fn mint(&self, session: &str) -> Result<String, Rejection> {
        let mut nonce = [0u8; NONCE_LEN];
        let unavailable = |_| Rejection::new(Reason::BackendUnavailable, SOURCE);
        OsRandom.fill(&mut nonce).map_err(unavailable)?;
        let claims = TokenClaims {
            s: Self::session_digest(session),
            n: encoding::encode(nonce),
        };
        // A token lives as long as the session it is bound to can.
        self.codec
            .seal(&claims, self.session.ttl)
            .map_err(|_| Rejection::new(Reason::BackendUnavailable, SOURCE))
    }

    /// Whether `token` was sealed for `session` (by any key of the ring).
    fn valid_for(&self, token: &str, session: &str) -> bool {
        self.codec
            .open::<TokenClaims>(token.as_bytes())
            .is_ok_and(|opened| opened.claims.s == Self::session_digest(session))
    }

    fn cookie(&self, token: String) -> HeaderValue {
        let cookie = Cookie::build((self.cookie_name(), token))
            .http_only(true)
            .secure(self.session.is_secure())
            .same_site(SameSite::Strict)
            .path("/")
            .build();
        HeaderValue::from_str(&cookie.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

/// The form field `name` of an urlencoded body.
fn form_field(body: &[u8], name: &str) -> Option<String> {
    form_urlencoded::parse(body)
        .find(|(field, _)| field == name)
        .map(|(_, value)| value.into_owned())
}

fn is_form(parts: &Parts) -> bool {
    parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim_ascii()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

impl<S> Layer<S> for CsrfLayer {
    type Service = Csrf<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Csrf {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}

/// The service [`CsrfLayer`] wraps around a route.
#[derive(Clone)]
pub struct Csrf<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> fmt::Debug for Csrf<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Csrf").finish_non_exhaustive()
    }
}

impl<S> Service<Request<Body>> for Csrf<S>
where
    S: Service<Request<Body>, Response = Response> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let config = Arc::clone(&self.config);
        Box::pin(async move {
            let (mut parts, mut body) = request.into_parts();
            let safe = is_safe(&parts.method);
            if !safe
                && config.fetch_metadata
                && let Err(rejection) = config.check_origin(&parts)
            {
                return Ok(IntoResponse::into_response(rejection));
            }
            let Some(tokens) = &config.tokens else {
                return inner.call(Request::from_parts(parts, body)).await;
            };
            // Only a cookie session can be forged; without one there is
            // nothing to bind a token to.
            let session = match tokens.session.find(&parts.headers) {
                Ok(Some(session)) => session.to_owned(),
                Ok(None) => return inner.call(Request::from_parts(parts, body)).await,
                Err(_) => {
                    return Ok(IntoResponse::into_response(refuse(
                        "ambiguous session cookie",
                    )));
                }
            };
            let cookie = match find_cookie(&parts.headers, tokens.cookie_name()) {
                Ok(cookie) => cookie
                    .filter(|token| tokens.valid_for(token, &session))
                    .map(str::to_owned),
                // A cookie planted beside ours (a sibling subdomain over
                // plain http): a safe request gets a fresh token, never a 403.
                Err(_) if safe => None,
                Err(_) => return Ok(IntoResponse::into_response(refuse("ambiguous CSRF cookie"))),
            };
            if safe {
                let (token, fresh) = match cookie {
                    Some(token) => (token, false),
                    None => match tokens.mint(&session) {
                        Ok(token) => (token, true),
                        Err(rejection) => return Ok(IntoResponse::into_response(rejection)),
                    },
                };
                parts.extensions.insert(CsrfToken(token.clone()));
                let mut response = inner.call(Request::from_parts(parts, body)).await?;
                if fresh {
                    response
                        .headers_mut()
                        .append(SET_COOKIE, tokens.cookie(token));
                }
                return Ok(response);
            }
            let Some(expected) = cookie else {
                return Ok(IntoResponse::into_response(refuse(
                    "CSRF cookie missing or not for this session",
                )));
            };
            let presented = match parts.headers.get(&CSRF_HEADER) {
                Some(value) => value.to_str().ok().map(str::to_owned),
                None if is_form(&parts) => {
                    let bytes = match http_body_util::Limited::new(body, MAX_FORM).collect().await {
                        Ok(collected) => collected.to_bytes(),
                        Err(_) => {
                            return Ok(IntoResponse::into_response(refuse(
                                "form too large to check",
                            )));
                        }
                    };
                    let field = form_field(&bytes, CSRF_FIELD);
                    body = Body::from(bytes);
                    field
                }
                None => None,
            };
            let Some(presented) = presented else {
                return Ok(IntoResponse::into_response(refuse("CSRF token missing")));
            };
            // Both tokens verify as the session's; comparing their MACs'
            // inputs in constant time through the keyed check.
            if !tokens.valid_for(&presented, &session)
                || !bool::from(subtle::ConstantTimeEq::ct_eq(
                    presented.as_bytes(),
                    expected.as_bytes(),
                ))
            {
                return Ok(IntoResponse::into_response(refuse("CSRF token mismatch")));
            }
            parts.extensions.insert(CsrfToken(expected));
            inner.call(Request::from_parts(parts, body)).await
        })
    }
}
