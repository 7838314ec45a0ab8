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
//! | request | required (default) | [`optional`](AuthLayer::optional) |
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
//! value is never echoed.
//!
//! ```
//! use axum::{Router, routing::get};
//! use keystile_core::keys::Keyring;
//! use keystile_middleware::session::{SessionCookies, SessionLayer};
//! use keystile_middleware::session_cookie::SessionCookie;
//! use keystile_middleware::tenant::HostTenant;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let keyring = Keyring::generate()?;
//! let sessions = SessionLayer::new(
//!     SessionCookies::new(keyring, HostTenant::under("example.test")?)
//!         .cookie(SessionCookie::https()),
//! );
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
use std::time::Duration;

use http::StatusCode;
use http::request::Parts;
use keystile_core::clock::SharedClock;
use keystile_core::identity::{AuthMethod, Principal};
use keystile_core::keys::Keyring;
use keystile_core::rejection::{Reason, Rejection};
use keystile_core::session::SessionCodec;

use crate::auth::{AuthLayer, Authenticator, Outcome};
use crate::session_cookie::SessionCookie;
use crate::tenant::{SharedTenantResolver, TenantResolver, request_authority};
use keystile_core::layers_seen::LayersSeen;

const SOURCE: &str = "SessionLayer";

/// The layer that verifies session cookies: an [`AuthLayer`] running
/// [`SessionCookies`].
pub type SessionLayer = AuthLayer<SessionCookies>;

/// Verifies session cookies; see the [module docs](self).
#[derive(Clone)]
pub struct SessionCookies {
    codec: SessionCodec,
    cookie: SessionCookie,
    tenant: SharedTenantResolver,
}

impl SessionCookies {
    /// Verifies cookies signed by `keyring` for the tenant `tenant`
    /// resolves. Defaults: [`SessionCookie::http`], system clock, no
    /// leeway.
    pub fn new(keyring: Keyring, tenant: impl TenantResolver) -> Self {
        Self {
            codec: SessionCodec::new(keyring),
            cookie: SessionCookie::http(),
            tenant: Arc::new(tenant),
        }
    }

    /// Reads the cookie `cookie` names (use the `HandoffLayer`'s value).
    #[must_use]
    pub fn cookie(mut self, cookie: SessionCookie) -> Self {
        self.cookie = cookie;
        self
    }

    /// Reads time from `clock`.
    #[must_use]
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.codec = self.codec.clock(clock);
        self
    }

    /// Tolerates this much clock skew on expiry.
    #[must_use]
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.codec = self.codec.leeway(leeway);
        self
    }

    fn verify(&self, value: &str, request: &Parts) -> Result<Principal, Rejection> {
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
        Ok(Principal::from_session(Arc::new(claims)))
    }
}

impl Authenticator for SessionCookies {
    fn mark(&self, seen: &mut LayersSeen) {
        seen.insert(AuthMethod::Session);
    }

    async fn authenticate(&self, request: &Parts) -> Outcome {
        match self.cookie.find(&request.headers) {
            Err(_) => Outcome::Refused(
                Rejection::new(Reason::Malformed, SOURCE)
                    .with_detail("the session cookie appears more than once"),
            ),
            Ok(None) => Outcome::Absent,
            Ok(Some(value)) => match self.verify(value, request) {
                Ok(principal) => Outcome::Admitted(principal),
                Err(rejection) => Outcome::Refused(rejection),
            },
        }
    }
}

impl fmt::Debug for SessionCookies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionCookies")
            .field("cookie", &self.cookie)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::get;
    use axum::{Extension, Router};
    use http::Request;
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

    fn cookies(clock: &ManualClock) -> SessionCookies {
        SessionCookies::new(keyring(), HostTenant::under("localhost").unwrap())
            .clock(clock.shared())
    }

    fn layer(clock: &ManualClock) -> SessionLayer {
        SessionLayer::new(cookies(clock))
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
            .clock(clock.shared())
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
        let secure = SessionLayer::new(cookies(&clock).cookie(SessionCookie::https()));
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
