//! `HandoffLayer`: redeems handoff links and starts a host-only session.
//!
//! The layer intercepts one path (default `/_keystile/handoff`) and passes
//! every other request to the inner service untouched. A `GET` to that path
//! with `?token=…` is redeemed:
//!
//! 1. the tenant is resolved from the request ([`TenantResolver`]; by
//!    default the first label of `Host` under a parent domain);
//! 2. the token is verified for that tenant: signature (constant time),
//!    expiry, audience;
//! 3. its `jti` is burned in the [`ReplayStore`] — atomically, so of any
//!    number of concurrent redemptions exactly one succeeds, across every
//!    process sharing the store;
//! 4. the response is a redirect (303 See Other unless configured) to the
//!    landing path, setting the host-only session cookie described in
//!    [`session_cookie`](crate::session_cookie).
//!
//! An optional `next` query parameter overrides the landing path for one
//! redemption; it must be a same-origin path ([`LandingPath`]), so the
//! handoff can never be turned into an open redirect.
//!
//! Every response of the handoff path, success or failure, carries
//! `Referrer-Policy: no-referrer` and `Cache-Control: no-store`, so the
//! token in the URL leaks through neither `Referer` nor a cache. Failures
//! are `application/problem+json` bodies from the shared
//! [`rejection`](keystile_core::rejection) conventions:
//!
//! | status | reason | when |
//! |--------|--------|------|
//! | 400 | `malformed` | no token, bad encoding, duplicate parameters, landing path not same-origin, a host named ambiguously (two `Host` headers, or a target authority that is not `Host`'s) |
//! | 401 | `invalid_credentials` | bad signature, unknown key, token for another purpose |
//! | 401 | `expired` / `not_yet_valid` | outside the token's lifetime |
//! | 401 | `wrong_audience` | token for another tenant, or a host that names no tenant |
//! | 405 | `malformed` | any method but `GET` |
//! | 410 | `already_used` | the token was redeemed before (410 Gone: it existed and is gone for good, which retrying cannot change; 409 would suggest a resolvable conflict) |
//! | 503 | `backend_unavailable` | the replay store failed: fail closed, with `Retry-After` |
//!
//! The token never appears in a response body, a `tracing` event, or an
//! error's `Display`; it is wiped from memory once verified. Note that
//! access logs which record full URIs (such as tower-http's default trace
//! span) do record it: scrub the query there.
//!
//! ```
//! use axum::{Extension, Router, routing::get};
//! use keystile_core::Principal;
//! use keystile_core::keys::Keyring;
//! use keystile_core::replay::MemoryReplayStore;
//! use keystile_middleware::handoff::HandoffLayer;
//! use keystile_middleware::session::{SessionCookies, SessionLayer};
//! use keystile_middleware::session_cookie::SessionCookie;
//! use keystile_middleware::tenant::HostTenant;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let keyring = Keyring::from_env().or_else(|_| Keyring::generate())?;
//! let tenants = HostTenant::under("localhost")?;
//! let cookie = SessionCookie::http(); // SessionCookie::https() in production
//!
//! let handoff = HandoffLayer::new(keyring.clone(), MemoryReplayStore::new(), tenants.clone())
//!     .cookie(cookie.clone())
//!     .landing("/admin/".parse()?);
//! let sessions = SessionLayer::new(SessionCookies::new(keyring, tenants).cookie(cookie));
//!
//! // Handlers usually take `keystile::session::Session`; the layer inserts a Principal.
//! async fn admin(Extension(who): Extension<Principal>) -> String {
//!     format!("hello {}", who.subject)
//! }
//!
//! let app: Router = Router::new()
//!     .route("/admin/", get(admin))
//!     .route_layer(sessions)
//!     .layer(handoff);
//! # Ok(()) }
//! ```

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Query;
use axum::response::{IntoResponse, Response};
use futures_util::future::Either;
use http::header::{ALLOW, CACHE_CONTROL, LOCATION, REFERRER_POLICY, SET_COOKIE};
use http::request::Parts;
use http::{HeaderValue, Method, Request, StatusCode};
use keystile_core::clock::SharedClock;
use keystile_core::handoff::{DEFAULT_HANDOFF_PATH, HandoffCodec, LandingPath, VerifiedHandoff};
use keystile_core::keys::Keyring;
use keystile_core::rejection::{Reason, Rejection};
use keystile_core::replay::{Redemption, ReplayStore, SharedReplayStore};
use keystile_core::session::{SessionClaims, SessionCodec};
use serde::Deserialize;
use tower_layer::Layer;
use tower_service::Service;
use zeroize::Zeroizing;

use crate::session_cookie::SessionCookie;
use crate::tenant::{SharedTenantResolver, TenantResolver, request_authority};

/// The name rejections and events carry.
const SOURCE: &str = "HandoffLayer";

/// Longest query string read, in bytes; a token is far shorter.
const MAX_QUERY_LEN: usize = 8 * 1024;

/// A `HandoffLayer` setting that cannot work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandoffConfigError {
    /// The handoff path is not a plain same-origin path.
    #[error("the handoff path must be a same-origin path without query or fragment")]
    InvalidPath,
    /// The redirect status is not 302, 303 or 307.
    #[error("the redirect status must be 302, 303 or 307")]
    InvalidRedirectStatus,
}

/// Redeems handoff links on one path; see the [module docs](self).
#[derive(Clone)]
pub struct HandoffLayer {
    config: Arc<Config>,
}

#[derive(Clone)]
struct Config {
    path: LandingPath,
    landing: LandingPath,
    redirect: StatusCode,
    tokens: HandoffCodec,
    sessions: SessionCodec,
    cookie: SessionCookie,
    replay: SharedReplayStore,
    tenant: SharedTenantResolver,
}

impl HandoffLayer {
    /// Redeems tokens signed by `keyring`, burning their ids in `replay`,
    /// for the tenant `tenant` resolves. Defaults: path
    /// `/_keystile/handoff`, landing `/`, 303, [`SessionCookie::http`],
    /// system clock, no leeway.
    pub fn new(keyring: Keyring, replay: impl ReplayStore, tenant: impl TenantResolver) -> Self {
        Self::from_shared(keyring, Arc::new(replay), Arc::new(tenant))
    }

    /// Like [`new`](Self::new), with a store and resolver already shared.
    pub fn from_shared(
        keyring: Keyring,
        replay: SharedReplayStore,
        tenant: SharedTenantResolver,
    ) -> Self {
        Self {
            config: Arc::new(Config {
                path: LandingPath::parse(DEFAULT_HANDOFF_PATH)
                    .unwrap_or_else(|_| LandingPath::root()),
                landing: LandingPath::root(),
                redirect: StatusCode::SEE_OTHER,
                tokens: HandoffCodec::new(keyring.clone()),
                sessions: SessionCodec::new(keyring),
                cookie: SessionCookie::http(),
                replay,
                tenant,
            }),
        }
    }

    fn map(mut self, f: impl FnOnce(&mut Config)) -> Self {
        f(Arc::make_mut(&mut self.config));
        self
    }

    /// Serves handoffs on `path` instead of `/_keystile/handoff`.
    pub fn path(self, path: &str) -> Result<Self, HandoffConfigError> {
        let path = LandingPath::parse(path)
            .ok()
            .filter(|p| !p.has_query_or_fragment())
            .ok_or(HandoffConfigError::InvalidPath)?;
        Ok(self.map(|c| c.path = path))
    }

    /// Redirects to `landing` after a successful handoff (default `/`),
    /// unless the link carries its own same-origin `next`.
    #[must_use]
    pub fn landing(self, landing: LandingPath) -> Self {
        self.map(|c| c.landing = landing)
    }

    /// Answers a successful handoff with `status`: 302, 303 (default) or
    /// 307.
    pub fn redirect_status(self, status: StatusCode) -> Result<Self, HandoffConfigError> {
        if !matches!(status.as_u16(), 302 | 303 | 307) {
            return Err(HandoffConfigError::InvalidRedirectStatus);
        }
        Ok(self.map(|c| c.redirect = status))
    }

    /// Sets the session cookie's name, security and lifetime. Give the
    /// `SessionLayer` the same value.
    #[must_use]
    pub fn cookie(self, cookie: SessionCookie) -> Self {
        self.map(|c| c.cookie = cookie)
    }

    /// Reads time from `clock` (token expiry and session issue time).
    #[must_use]
    pub fn clock(self, clock: SharedClock) -> Self {
        self.map(|c| {
            c.tokens = c.tokens.clone().clock(Arc::clone(&clock));
            c.sessions = c.sessions.clone().clock(clock);
        })
    }

    /// Tolerates this much clock skew between issuer and tenant when
    /// checking token times. Burned ids are kept for the extra time too.
    #[must_use]
    pub fn leeway(self, leeway: Duration) -> Self {
        self.map(|c| c.tokens = c.tokens.clone().leeway(leeway))
    }
}

impl<S> Layer<S> for HandoffLayer {
    type Service = RedeemHandoff<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RedeemHandoff {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}

/// The service [`HandoffLayer`] produces.
#[derive(Clone)]
pub struct RedeemHandoff<S> {
    inner: S,
    config: Arc<Config>,
}

/// The response future of [`RedeemHandoff`]: the inner service's own future for
/// other paths; boxed for the handoff path, whose replay-store call is
/// async anyway.
pub type HandoffFuture<F, E> =
    Either<F, Pin<Box<dyn Future<Output = Result<Response, E>> + Send + 'static>>>;

impl<S> Service<Request<Body>> for RedeemHandoff<S>
where
    S: Service<Request<Body>, Response = Response> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = HandoffFuture<S::Future, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        if request.uri().path() != self.config.path.as_str() {
            // Called synchronously on the service that was polled ready, so
            // no clone-and-swap is needed.
            return Either::Left(self.inner.call(request));
        }
        // Everything but the replay store is synchronous: check it here so
        // the boxed future holds no reference to the request.
        let config = Arc::clone(&self.config);
        let (parts, _body) = request.into_parts();
        let checked = config.check(&parts);
        Either::Right(Box::pin(async move { Ok(config.respond(checked).await) }))
    }
}

/// The query of a handoff link. Unknown parameters (tracking tags added by
/// mail clients) are ignored; a repeated `token` or `next` is refused.
#[derive(Deserialize)]
struct HandoffQuery {
    token: Option<String>,
    next: Option<String>,
}

/// A handoff request whose token verified, before its id is burned.
struct Checked {
    verified: VerifiedHandoff,
    tenant: Arc<str>,
    landing: LandingPath,
}

impl Config {
    async fn respond(&self, checked: Result<Checked, Rejection>) -> Response {
        let redeemed = match checked {
            Ok(checked) => self.redeem(checked).await,
            Err(rejection) => Err(rejection),
        };
        let mut response = match redeemed {
            Ok(response) => response,
            Err(rejection) => {
                let method_not_allowed = rejection.status() == StatusCode::METHOD_NOT_ALLOWED;
                let mut response = IntoResponse::into_response(rejection);
                if method_not_allowed {
                    response
                        .headers_mut()
                        .insert(ALLOW, HeaderValue::from_static("GET"));
                }
                response
            }
        };
        let headers = response.headers_mut();
        headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }

    fn check(&self, request: &Parts) -> Result<Checked, Rejection> {
        if request.method != Method::GET {
            return Err(malformed("the handoff path only accepts GET")
                .with_status(StatusCode::METHOD_NOT_ALLOWED));
        }
        let (token, landing) = self.read_query(request)?;
        request_authority(request)
            .map_err(|_| malformed("the request names its host ambiguously"))?;
        let tenant = self.tenant.resolve(request).ok_or_else(|| {
            Rejection::new(Reason::WrongAudience, SOURCE)
                .with_detail("the request's host names no tenant")
        })?;
        let verified = self
            .tokens
            .verify(token.as_bytes(), &tenant)
            .map_err(|error| {
                let rejection = Rejection::new(error.reason(), SOURCE);
                if error.reason() == Reason::Malformed {
                    rejection.with_status(StatusCode::BAD_REQUEST)
                } else {
                    rejection
                }
            })?;
        Ok(Checked {
            verified,
            tenant,
            landing,
        })
    }

    async fn redeem(&self, checked: Checked) -> Result<Response, Rejection> {
        self.burn(&checked.verified).await?;
        self.start_session(checked.verified, &checked.tenant, &checked.landing)
    }

    fn read_query(&self, request: &Parts) -> Result<(Zeroizing<String>, LandingPath), Rejection> {
        let query = request.uri.query().unwrap_or_default();
        if query.len() > MAX_QUERY_LEN {
            return Err(malformed("the handoff link is too long"));
        }
        // Parse errors are not echoed: they may quote the token.
        let Query(HandoffQuery { token, next }) = Query::try_from_uri(&request.uri)
            .map_err(|_| malformed("the handoff link's query is not well formed"))?;
        let token = Zeroizing::new(
            token
                .filter(|t| !t.is_empty())
                .ok_or_else(|| malformed("the handoff link carries no token"))?,
        );
        let landing = match next {
            None => self.landing.clone(),
            Some(next) => LandingPath::parse(&next)
                .map_err(|_| malformed("the landing path must be a same-origin path"))?,
        };
        Ok((token, landing))
    }

    async fn burn(&self, verified: &VerifiedHandoff) -> Result<(), Rejection> {
        match self
            .replay
            .redeem(&verified.claims.jti, verified.replay_until)
            .await
        {
            Ok(Redemption::First) => Ok(()),
            Ok(Redemption::AlreadyUsed) => Err(Rejection::new(Reason::AlreadyUsed, SOURCE)),
            Err(error) => {
                tracing::warn!(target: "keystile::handoff", %error, "replay store failed; refusing the handoff");
                Err(Rejection::new(Reason::BackendUnavailable, SOURCE))
            }
        }
    }

    fn start_session(
        &self,
        verified: VerifiedHandoff,
        tenant: &str,
        landing: &LandingPath,
    ) -> Result<Response, Rejection> {
        let claims = verified.claims;
        let impersonated = claims.actor.is_some();
        let session = SessionClaims {
            subject: claims.subject.into(),
            actor: claims.actor.map(Into::into),
            tenant: claims.audience.into(),
            session_version: claims.session_version,
            expires_at: 0,
        };
        let value = self
            .sessions
            .issue(&session, self.cookie.ttl)
            .map_err(|_| {
                Rejection::new(Reason::BackendUnavailable, SOURCE)
                    .with_detail("the session could not be issued")
            })?;
        let set_cookie = HeaderValue::try_from(self.cookie.build(value).to_string());
        let location = HeaderValue::from_str(landing.as_str());
        let (Ok(set_cookie), Ok(location)) = (set_cookie, location) else {
            // Both are visible ASCII by construction; refuse rather than
            // answer without a session.
            return Err(Rejection::new(Reason::BackendUnavailable, SOURCE)
                .with_detail("the session could not be issued"));
        };
        tracing::info!(target: "keystile::handoff", tenant, impersonated, "handoff redeemed");
        let mut response = Response::new(Body::empty());
        *response.status_mut() = self.redirect;
        response.headers_mut().insert(LOCATION, location);
        response.headers_mut().insert(SET_COOKIE, set_cookie);
        Ok(response)
    }
}

fn malformed(detail: &'static str) -> Rejection {
    Rejection::new(Reason::Malformed, SOURCE)
        .with_status(StatusCode::BAD_REQUEST)
        .with_detail(detail)
}

impl fmt::Debug for HandoffLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandoffLayer")
            .field("path", &self.config.path)
            .field("landing", &self.config.landing)
            .field("redirect", &self.config.redirect)
            .field("cookie", &self.config.cookie)
            .finish_non_exhaustive()
    }
}

impl<S: fmt::Debug> fmt::Debug for RedeemHandoff<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedeemHandoff")
            .field("inner", &self.inner)
            .field("path", &self.config.path)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use axum::Router;
    use axum::routing::get;
    use cookie::Cookie;
    use http_body_util::BodyExt;
    use keystile_core::clock::ManualClock;
    use keystile_core::encoding;
    use keystile_core::handoff::Handoff as Grant;
    use keystile_core::keys::SigningKey;
    use keystile_core::replay::MemoryReplayStore;
    use keystile_core::store::StoreError;
    use tower::ServiceExt;

    use crate::tenant::HostTenant;

    const T0: u64 = 1_700_000_000;

    fn keyring() -> Keyring {
        Keyring::new(SigningKey::from_bytes(&[9; 32]).unwrap())
    }

    fn layer(clock: &ManualClock, replay: impl ReplayStore) -> HandoffLayer {
        HandoffLayer::new(keyring(), replay, HostTenant::under("localhost").unwrap())
            .clock(clock.shared())
            .landing("/admin/".parse().unwrap())
    }

    fn app(layer: HandoffLayer) -> Router {
        Router::new()
            .route("/other", get(|| async { "inner" }))
            .layer(layer)
    }

    fn mint(clock: &ManualClock, audience: &str) -> String {
        HandoffCodec::new(keyring())
            .clock(clock.shared())
            .mint(&Grant::new("admin@acme", audience).acting_as("operator:7"))
            .unwrap()
    }

    fn get_req(host: &str, uri: &str) -> Request<Body> {
        Request::get(uri)
            .header("host", host)
            .body(Body::empty())
            .unwrap()
    }

    async fn text(response: Response) -> String {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    fn assert_protected(response: &Response) {
        assert_eq!(response.headers()[REFERRER_POLICY], "no-referrer");
        assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
    }

    #[tokio::test]
    async fn other_paths_pass_through_untouched() {
        let clock = ManualClock::at_unix(T0);
        let response = app(layer(&clock, MemoryReplayStore::new()))
            .oneshot(get_req("acme.localhost", "/other"))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.headers().get(REFERRER_POLICY).is_none());
        assert_eq!(text(response).await, "inner");
    }

    #[tokio::test]
    async fn valid_token_redirects_with_a_host_only_session_cookie() {
        let clock = ManualClock::at_unix(T0);
        let token = mint(&clock, "acme");
        let response = app(layer(&clock, MemoryReplayStore::new()))
            .oneshot(get_req(
                "acme.localhost:3000",
                &format!("/_keystile/handoff?token={token}"),
            ))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_eq!(response.headers()[LOCATION], "/admin/");
        assert_protected(&response);
        let set = response.headers()[SET_COOKIE].to_str().unwrap();
        let cookie = Cookie::parse(set).unwrap();
        assert_eq!(cookie.name(), "keystile_session");
        assert_eq!(cookie.domain(), None);
        let claims = SessionCodec::new(keyring())
            .clock(clock.shared())
            .verify(cookie.value(), "acme")
            .unwrap();
        assert_eq!(&*claims.subject, "admin@acme");
        assert_eq!(claims.actor.as_deref(), Some("operator:7"));
    }

    #[tokio::test]
    async fn second_redemption_is_410_gone() {
        let clock = ManualClock::at_unix(T0);
        let token = mint(&clock, "acme");
        let app = app(layer(&clock, MemoryReplayStore::new()));
        let uri = format!("/_keystile/handoff?token={token}");
        let first = app
            .clone()
            .oneshot(get_req("acme.localhost", &uri))
            .await
            .unwrap();
        assert_eq!(first.status(), StatusCode::SEE_OTHER);
        let second = app.oneshot(get_req("acme.localhost", &uri)).await.unwrap();
        assert_eq!(second.status(), StatusCode::GONE);
        assert_protected(&second);
        assert!(second.headers().get(SET_COOKIE).is_none());
        let body = text(second).await;
        assert!(body.contains("already_used"), "{body}");
        assert!(!body.contains(&token));
    }

    #[tokio::test]
    async fn failures_map_to_their_status_and_reason() {
        let clock = ManualClock::at_unix(T0);
        let token = mint(&clock, "acme");
        let (head, tag) = token.rsplit_once('.').unwrap();
        let mut raw: [u8; 32] = encoding::decode_array(tag).unwrap();
        raw[16] ^= 0x01;
        let tampered = format!("{head}.{}", encoding::encode(raw));
        let cases = [
            (
                "acme.localhost",
                "/_keystile/handoff".to_owned(),
                400,
                "malformed",
            ),
            (
                "acme.localhost",
                "/_keystile/handoff?token=".to_owned(),
                400,
                "malformed",
            ),
            (
                "acme.localhost",
                "/_keystile/handoff?token=abc".to_owned(),
                400,
                "malformed",
            ),
            (
                "acme.localhost",
                format!("/_keystile/handoff?token={token}&token={token}"),
                400,
                "malformed",
            ),
            (
                "acme.localhost",
                format!("/_keystile/handoff?token={token}&next=//evil.test"),
                400,
                "malformed",
            ),
            (
                "acme.localhost",
                format!("/_keystile/handoff?token={tampered}"),
                401,
                "invalid_credentials",
            ),
            (
                "globex.localhost",
                format!("/_keystile/handoff?token={token}"),
                401,
                "wrong_audience",
            ),
            (
                "localhost",
                format!("/_keystile/handoff?token={token}"),
                401,
                "wrong_audience",
            ),
        ];
        for (host, uri, status, reason) in cases {
            let response = app(layer(&clock, MemoryReplayStore::new()))
                .oneshot(get_req(host, &uri))
                .await
                .unwrap();
            assert_eq!(response.status().as_u16(), status, "{host} {uri}");
            assert_protected(&response);
            assert_eq!(
                response.headers()["content-type"],
                "application/problem+json"
            );
            let body = text(response).await;
            assert!(
                body.contains(&format!("\"reason\":\"{reason}\"")),
                "{uri}: {body}"
            );
            assert!(!body.contains(&token[10..]), "token echoed: {body}");
        }
    }

    #[tokio::test]
    async fn expired_token_is_401_after_moving_the_clock() {
        let clock = ManualClock::at_unix(T0);
        let token = mint(&clock, "acme");
        clock.advance(Duration::from_secs(60));
        let response = app(layer(&clock, MemoryReplayStore::new()))
            .oneshot(get_req(
                "acme.localhost",
                &format!("/_keystile/handoff?token={token}"),
            ))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(text(response).await.contains("\"reason\":\"expired\""));
    }

    #[tokio::test]
    async fn non_get_is_405_and_burns_nothing() {
        let clock = ManualClock::at_unix(T0);
        let token = mint(&clock, "acme");
        let app = app(layer(&clock, MemoryReplayStore::new()));
        let uri = format!("/_keystile/handoff?token={token}");
        let post = Request::post(&uri)
            .header("host", "acme.localhost")
            .body(Body::empty())
            .unwrap();
        let response = app.clone().oneshot(post).await.unwrap();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers()[ALLOW], "GET");
        assert_protected(&response);
        let response = app.oneshot(get_req("acme.localhost", &uri)).await.unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
    }

    struct Down;

    #[async_trait]
    impl ReplayStore for Down {
        async fn redeem(&self, _: &str, _: u64) -> Result<Redemption, StoreError> {
            Err(StoreError::Timeout)
        }
    }

    #[tokio::test]
    async fn store_failure_is_503_without_a_cookie() {
        let clock = ManualClock::at_unix(T0);
        let token = mint(&clock, "acme");
        let response = app(layer(&clock, Down))
            .oneshot(get_req(
                "acme.localhost",
                &format!("/_keystile/handoff?token={token}"),
            ))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(response.headers().get(SET_COOKIE).is_none());
        assert!(response.headers().get("retry-after").is_some());
        assert_protected(&response);
    }

    #[tokio::test]
    async fn same_origin_next_overrides_the_landing() {
        let clock = ManualClock::at_unix(T0);
        let token = mint(&clock, "acme");
        let response = app(layer(&clock, MemoryReplayStore::new()))
            .oneshot(get_req(
                "acme.localhost",
                &format!("/_keystile/handoff?token={token}&next=%2Fadmin%2Fusers%3Fpage%3D2"),
            ))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_eq!(response.headers()[LOCATION], "/admin/users?page=2");
    }

    #[test]
    fn invalid_settings_are_refused_at_construction() {
        let clock = ManualClock::at_unix(T0);
        let l = layer(&clock, MemoryReplayStore::new());
        assert_eq!(
            l.clone().path("//x").unwrap_err(),
            HandoffConfigError::InvalidPath
        );
        assert_eq!(
            l.clone().path("/h?x").unwrap_err(),
            HandoffConfigError::InvalidPath
        );
        assert_eq!(
            l.redirect_status(StatusCode::MOVED_PERMANENTLY)
                .unwrap_err(),
            HandoffConfigError::InvalidRedirectStatus
        );
    }
}
