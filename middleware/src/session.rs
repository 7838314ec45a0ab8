//! `SessionLayer`: verifies the session cookie a handoff started.
//!
//! On every request the layer reads the session cookie
//! ([`SessionCookie`]: `keystile_session`, or `__Host-keystile_session`
//! over https), verifies its signature and expiry, and checks that it was
//! issued for the tenant this request is for ([`TenantResolver`]) — a
//! cookie copied from `acme` to `globex` is refused. On success it inserts
//! a [`Principal`] (method `session`, with
//! subject, actor and tenant) for the `Session` and `Principal`
//! extractors.
//!
//! | request | required (default) | [`optional`](SessionLayer::optional) |
//! |---------|--------------------|------------|
//! | no cookie | 401 `missing_credentials` | passes, no principal |
//! | valid cookie | passes with the principal | passes with the principal |
//! | bad signature / expired / other tenant / host names no tenant | 401 | 401 |
//! | the cookie twice | 401 `malformed` | 401 `malformed` |
//! | a cookie, and the host named ambiguously (two `Host` headers, or a target authority that is not `Host`'s) | 400 `malformed` | 400 `malformed` |
//!
//! A presented cookie that fails is refused in both modes: the request
//! claimed an identity it cannot prove. Rejections are problem+json from the
//! shared [`rejection`](keystile_core::rejection) conventions; the cookie
//! value is never echoed. Verification is synchronous, so the layer adds
//! no allocation to requests it admits.
//!
//! ```
//! use axum::{Router, routing::get};
//! use keystile_core::keys::Keyring;
//! use keystile_middleware::session::SessionLayer;
//! use keystile_middleware::session_cookie::SessionCookie;
//! use keystile_middleware::tenant::HostTenant;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let keyring = Keyring::generate()?;
//! let sessions = SessionLayer::new(keyring, HostTenant::under("example.test")?)
//!     .with_cookie(SessionCookie::https());
//!
//! let app: Router = Router::new()
//!     .route("/admin/", get(|| async { "signed in" }))
//!     .route_layer(sessions.clone())
//!     .route("/", get(|| async { "welcome" }))
//!     .route_layer(sessions.optional());
//! # Ok(()) }
//! ```

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use futures_util::future::{Either, Ready, ready};
use http::{Request, StatusCode};
use keystile_core::clock::SharedClock;
use keystile_core::identity::Principal;
use keystile_core::keys::Keyring;
use keystile_core::rejection::{Reason, Rejection};
use keystile_core::session::SessionCodec;
use tower_layer::Layer;
use tower_service::Service;

use crate::layers_seen::{AuthLayer, LayersSeen};
use crate::response::rejection_response;
use crate::session_cookie::SessionCookie;
use crate::tenant::{SharedTenantResolver, TenantResolver, request_authority};

const SOURCE: &str = "SessionLayer";

/// Verifies session cookies; see the [module docs](self).
#[derive(Clone)]
pub struct SessionLayer {
    config: Arc<Config>,
}

#[derive(Clone)]
struct Config {
    codec: SessionCodec,
    cookie: SessionCookie,
    tenant: SharedTenantResolver,
    optional: bool,
}

impl SessionLayer {
    /// Verifies cookies signed by `keyring` for the tenant `tenant`
    /// resolves. Defaults: required, [`SessionCookie::http`], system clock,
    /// no leeway.
    pub fn new(keyring: Keyring, tenant: impl TenantResolver) -> Self {
        Self::with_shared(keyring, Arc::new(tenant))
    }

    /// Like [`new`](Self::new), with a resolver already shared.
    pub fn with_shared(keyring: Keyring, tenant: SharedTenantResolver) -> Self {
        Self {
            config: Arc::new(Config {
                codec: SessionCodec::new(keyring),
                cookie: SessionCookie::http(),
                tenant,
                optional: false,
            }),
        }
    }

    fn map(mut self, f: impl FnOnce(&mut Config)) -> Self {
        f(Arc::make_mut(&mut self.config));
        self
    }

    /// Reads the cookie `cookie` names (use the `HandoffLayer`'s value).
    pub fn with_cookie(self, cookie: SessionCookie) -> Self {
        self.map(|c| c.cookie = cookie)
    }

    /// Reads time from `clock`.
    pub fn with_clock(self, clock: SharedClock) -> Self {
        self.map(|c| c.codec = c.codec.clone().with_clock(clock))
    }

    /// Tolerates this much clock skew on expiry.
    pub fn with_leeway(self, leeway: Duration) -> Self {
        self.map(|c| c.codec = c.codec.clone().with_leeway(leeway))
    }

    /// Authenticates `request` the way the layer does: `Ok(None)` when no
    /// session cookie was presented in optional mode, `Err` with the
    /// rejection to send otherwise. For composing layers, e.g.
    /// [`AuthChainLayer`](crate::auth_chain::AuthChainLayer); most users add
    /// the layer.
    pub fn authenticate(&self, request: &Request<Body>) -> Result<Option<Principal>, Rejection> {
        self.config.authenticate(request)
    }

    /// Passes requests that carry no session cookie, without a principal
    /// (handlers take `Option<Session>`). A presented but invalid cookie is
    /// still refused.
    pub fn optional(self) -> Self {
        self.map(|c| c.optional = true)
    }
}

impl<S> Layer<S> for SessionLayer {
    type Service = VerifySession<S>;

    fn layer(&self, inner: S) -> Self::Service {
        VerifySession {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}

/// The service [`SessionLayer`] produces.
#[derive(Clone)]
pub struct VerifySession<S> {
    inner: S,
    config: Arc<Config>,
}

/// The response future of [`VerifySession`]: the inner service's future, or a
/// ready rejection.
pub type SessionFuture<F, E> = Either<F, Ready<Result<Response, E>>>;

impl<S> Service<Request<Body>> for VerifySession<S>
where
    S: Service<Request<Body>, Response = Response> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = Response;
    type Error = S::Error;
    type Future = SessionFuture<S::Future, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        match self.config.authenticate(&request) {
            Ok(principal) => {
                match principal {
                    // The Principal marks the request as seen by this layer
                    // (see `LayersSeen::ran`): one extension, not two.
                    Some(principal) => LayersSeen::admit(request.extensions_mut(), principal),
                    None => LayersSeen::mark(request.extensions_mut(), AuthLayer::Session),
                }
                // Called synchronously on the service that was polled
                // ready: no clone-and-swap needed.
                Either::Left(self.inner.call(request))
            }
            Err(rejection) => Either::Right(ready(Ok(rejection_response(rejection)))),
        }
    }
}

impl Config {
    fn authenticate(&self, request: &Request<Body>) -> Result<Option<Principal>, Rejection> {
        let value = self.cookie.find(request.headers()).map_err(|_| {
            Rejection::new(Reason::Malformed, SOURCE)
                .with_detail("the session cookie appears more than once")
        })?;
        let Some(value) = value else {
            return if self.optional {
                Ok(None)
            } else {
                Err(Rejection::new(Reason::MissingCredentials, SOURCE))
            };
        };
        request_authority(request).map_err(|_| {
            Rejection::new(Reason::Malformed, SOURCE)
                .with_status(StatusCode::BAD_REQUEST)
                .with_detail("the request names its host ambiguously")
        })?;
        let tenant = self.tenant.resolve(request).ok_or_else(|| {
            Rejection::new(Reason::WrongAudience, SOURCE)
                .with_detail("the request's host names no tenant")
        })?;
        let claims = self
            .codec
            .verify(value, &tenant)
            .map_err(|error| Rejection::new(error.reason(), SOURCE))?;
        Ok(Some(Principal::from_session(Arc::new(claims))))
    }
}

impl fmt::Debug for SessionLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionLayer")
            .field("cookie", &self.config.cookie)
            .field("optional", &self.config.optional)
            .finish_non_exhaustive()
    }
}

impl<S: fmt::Debug> fmt::Debug for VerifySession<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifySession")
            .field("inner", &self.inner)
            .field("optional", &self.config.optional)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use axum::{Extension, Router};
    use http::StatusCode;
    use http_body_util::BodyExt;
    use keystile_core::clock::ManualClock;
    use keystile_core::encoding;
    use keystile_core::keys::SigningKey;
    use keystile_core::session::{DEFAULT_SESSION_TTL, SessionClaims};
    use tower::ServiceExt;

    use crate::tenant::HostTenant;

    const T0: u64 = 1_700_000_000;

    fn keyring() -> Keyring {
        Keyring::new(SigningKey::from_bytes(&[4; 32]).unwrap())
    }

    fn layer(clock: &ManualClock) -> SessionLayer {
        SessionLayer::new(keyring(), HostTenant::under("localhost").unwrap())
            .with_clock(clock.shared())
    }

    async fn whoami(principal: Option<Extension<Principal>>) -> String {
        principal.map_or_else(
            || "nobody".to_owned(),
            |Extension(p)| format!("{} {:?} {:?}", p.subject, p.actor, p.tenant),
        )
    }

    fn app(layer: SessionLayer) -> Router {
        Router::new().route("/", get(whoami)).route_layer(layer)
    }

    fn cookie_for(clock: &ManualClock, tenant: &str) -> String {
        let claims = SessionClaims {
            subject: "admin@acme".into(),
            actor: Some("operator:7".into()),
            tenant: tenant.into(),
            session_version: None,
            expires_at: 0,
        };
        SessionCodec::new(keyring())
            .with_clock(clock.shared())
            .issue(&claims, DEFAULT_SESSION_TTL)
            .unwrap()
    }

    fn request(host: &str, cookie: Option<&str>) -> Request<Body> {
        let mut builder = Request::get("/").header("host", host);
        if let Some(cookie) = cookie {
            builder = builder.header("cookie", cookie);
        }
        builder.body(Body::empty()).unwrap()
    }

    async fn call(layer: SessionLayer, request: Request<Body>) -> (StatusCode, String) {
        let response = app(layer).oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn valid_cookie_inserts_the_session_principal() {
        let clock = ManualClock::at_unix(T0);
        let value = cookie_for(&clock, "acme");
        let (status, body) = call(
            layer(&clock),
            request(
                "acme.localhost:3000",
                Some(&format!("keystile_session={value}")),
            ),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, r#"admin@acme Some("operator:7") Some("acme")"#);
    }

    #[tokio::test]
    async fn cookie_for_another_tenant_is_401_wrong_audience() {
        let clock = ManualClock::at_unix(T0);
        let value = cookie_for(&clock, "acme");
        let (status, body) = call(
            layer(&clock),
            request(
                "globex.localhost",
                Some(&format!("keystile_session={value}")),
            ),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(body.contains("wrong_audience"), "{body}");
        assert!(!body.contains(&value));
    }

    #[tokio::test]
    async fn expired_and_tampered_cookies_are_401() {
        let clock = ManualClock::at_unix(T0);
        let value = cookie_for(&clock, "acme");
        let (head, tag) = value.rsplit_once('.').unwrap();
        let mut raw: [u8; 32] = encoding::decode_array(tag).unwrap();
        raw[16] ^= 0x02;
        let tampered = format!("{head}.{}", encoding::encode(raw));
        let (status, body) = call(
            layer(&clock),
            request(
                "acme.localhost",
                Some(&format!("keystile_session={tampered}")),
            ),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(body.contains("invalid_credentials"), "{body}");

        clock.advance(DEFAULT_SESSION_TTL);
        let (status, body) = call(
            layer(&clock),
            request("acme.localhost", Some(&format!("keystile_session={value}"))),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(body.contains("\"reason\":\"expired\""), "{body}");
    }

    #[tokio::test]
    async fn missing_cookie_is_401_when_required_and_passes_when_optional() {
        let clock = ManualClock::at_unix(T0);
        let (status, body) = call(layer(&clock), request("acme.localhost", None)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(body.contains("missing_credentials"), "{body}");

        let (status, body) = call(layer(&clock).optional(), request("acme.localhost", None)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "nobody");

        let (status, _) = call(
            layer(&clock).optional(),
            request("acme.localhost", Some("keystile_session=garbage")),
        )
        .await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "a bad cookie is refused in optional mode"
        );
    }

    #[tokio::test]
    async fn duplicate_cookies_are_refused() {
        let clock = ManualClock::at_unix(T0);
        let value = cookie_for(&clock, "acme");
        let header = format!("keystile_session={value}; keystile_session={value}");
        let (status, body) = call(layer(&clock), request("acme.localhost", Some(&header))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(body.contains("malformed"), "{body}");
    }

    #[tokio::test]
    async fn https_layer_reads_only_the_host_prefixed_cookie() {
        let clock = ManualClock::at_unix(T0);
        let value = cookie_for(&clock, "acme");
        let secure = layer(&clock).with_cookie(SessionCookie::https());
        let (status, _) = call(
            secure.clone(),
            request("acme.localhost", Some(&format!("keystile_session={value}"))),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, _) = call(
            secure,
            request(
                "acme.localhost",
                Some(&format!("__Host-keystile_session={value}")),
            ),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
    }
}
