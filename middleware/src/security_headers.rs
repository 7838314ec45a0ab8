//! [`SecurityHeadersLayer`]: the response headers that tell browsers to
//! lock a page down, from one of four presets, each header changeable.
//!
//! | header | [`strict`](SecurityHeadersLayer::strict) | [`relaxed`](SecurityHeadersLayer::relaxed) (embeddable) | [`dev`](SecurityHeadersLayer::dev) |
//! |--------|--------|---------|-----|
//! | `Strict-Transport-Security` (https only) | `max-age=31536000; includeSubDomains` | same | — (localhost is never pinned to https) |
//! | `Content-Security-Policy` | `default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'` | `frame-ancestors 'self'` instead | as strict |
//! | `X-Frame-Options` | `DENY` | `SAMEORIGIN` | `DENY` |
//! | `X-Content-Type-Options` | `nosniff` | same | same |
//! | `Referrer-Policy` | `no-referrer` | `strict-origin-when-cross-origin` | `no-referrer` |
//! | `Cross-Origin-Opener-Policy` | `same-origin` | `same-origin-allow-popups` | `same-origin` |
//! | `Cross-Origin-Resource-Policy` | `same-origin` | `same-site` | `same-origin` |
//! | `Origin-Agent-Cluster` | `?1` | same | same |
//! | `X-XSS-Protection` | `0` (the old filter is itself an attack surface) | same | same |
//! | `Permissions-Policy` | powerful features off ([`PERMISSIONS_POLICY`]) | same | same |
//!
//! [`empty`](SecurityHeadersLayer::empty) sets nothing. Every header can be
//! replaced ([`header`](SecurityHeadersLayer::header),
//! [`csp`](SecurityHeadersLayer::csp), [`hsts`](SecurityHeadersLayer::hsts))
//! or removed ([`without`](SecurityHeadersLayer::without)); a header the
//! handler already set is kept, so one route can loosen or tighten its own.
//!
//! **HSTS only over https.** A `Strict-Transport-Security` header on plain
//! http is ignored by browsers at best; on `localhost` during development
//! it pins the name to https for a year at worst. The layer sends it when
//! the request arrived over https: an HTTP/2 request's scheme says `https`, or
//! [`https`](SecurityHeadersLayer::https) says the service is reachable
//! only over https (TLS ends in the process), or `X-Forwarded-Proto: https`
//! was set by a proxy you trust ([`HttpsDetection::ForwardedProto`]; from
//! anyone else it is ignored).
//!
//! **Nonces.** With a [`Csp`] built with `.nonce()`, every response gets a
//! fresh 128-bit nonce from the OS CSPRNG, in `script-src` and `style-src`;
//! handlers read it with the [`CspNonce`] extractor to stamp
//! `<script nonce="…">`.
//!
//! ```
//! use axum::{Router, response::Html, routing::get};
//! use keystile_middleware::csp::{Csp, Directive};
//! use keystile_middleware::security_headers::{CspNonce, SecurityHeadersLayer};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! async fn page(CspNonce(nonce): CspNonce) -> Html<String> {
//!     Html(format!(r#"<script nonce="{nonce}">console.log("allowed")</script>"#))
//! }
//!
//! let csp = Csp::builder()
//!     .directive(Directive::DefaultSrc, ["'self'"])
//!     .directive(Directive::ObjectSrc, ["'none'"])
//!     .nonce()
//!     .build()?;
//! let app: Router = Router::new()
//!     .route("/", get(page))
//!     .layer(SecurityHeadersLayer::strict().csp(csp));
//! # Ok(()) }
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use http::header::{
    REFERRER_POLICY, STRICT_TRANSPORT_SECURITY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
    X_XSS_PROTECTION,
};
use http::request::Parts;
use http::{HeaderName, HeaderValue, Request, Version};
use keystile_core::random::{OsRandom, RandomSource};
use keystile_core::rejection::{Reason, Rejection};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::client_ip::ClientIp;
use crate::csp::{Csp, Directive, REPORTING_ENDPOINTS};

/// The locked-down `Permissions-Policy` of the presets: features a page
/// rarely needs and an attacker's script would like, off for every origin.
pub const PERMISSIONS_POLICY: &str = "accelerometer=(), autoplay=(), camera=(), \
     display-capture=(), geolocation=(), gyroscope=(), magnetometer=(), microphone=(), \
     midi=(), payment=(), usb=(), xr-spatial-tracking=()";

/// `Cross-Origin-Opener-Policy`.
pub const CROSS_ORIGIN_OPENER_POLICY: HeaderName =
    HeaderName::from_static("cross-origin-opener-policy");
/// `Cross-Origin-Resource-Policy`.
pub const CROSS_ORIGIN_RESOURCE_POLICY: HeaderName =
    HeaderName::from_static("cross-origin-resource-policy");
/// `Origin-Agent-Cluster`.
pub const ORIGIN_AGENT_CLUSTER: HeaderName = HeaderName::from_static("origin-agent-cluster");
/// `Permissions-Policy`.
pub const PERMISSIONS_POLICY_HEADER: HeaderName = HeaderName::from_static("permissions-policy");
/// `X-Forwarded-Proto`.
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// One year, the HSTS `max-age` of the presets.
pub const HSTS_MAX_AGE: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// How the layer knows a request arrived over https (for HSTS).
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub enum HttpsDetection {
    /// An HTTP/2 request's `:scheme` says `https` (an HTTP/1 request line
    /// is the client's text and never counts). The default.
    #[default]
    RequestScheme,
    /// The service is reachable over https only.
    Always,
    /// `X-Forwarded-Proto: https` from a peer that [`ClientIp`] trusts as a
    /// proxy (the peer itself, `ConnectInfo`, must be one of its trusted
    /// proxies), or the request scheme.
    ForwardedProto(ClientIp),
}

/// The `Strict-Transport-Security` policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hsts {
    max_age: Duration,
    include_subdomains: bool,
    preload: bool,
}

impl Hsts {
    /// `max-age` of `max_age` (whole seconds), this host only.
    pub fn new(max_age: Duration) -> Self {
        Self {
            max_age,
            include_subdomains: false,
            preload: false,
        }
    }

    /// Also every subdomain (`includeSubDomains`).
    #[must_use]
    pub fn include_subdomains(mut self) -> Self {
        self.include_subdomains = true;
        self
    }

    /// Asks to be on the browsers' preload list (`preload`): hard to undo,
    /// so never on by default.
    #[must_use]
    pub fn preload(mut self) -> Self {
        self.preload = true;
        self
    }

    fn value(self) -> HeaderValue {
        let mut text = format!("max-age={}", self.max_age.as_secs());
        if self.include_subdomains {
            text.push_str("; includeSubDomains");
        }
        if self.preload {
            text.push_str("; preload");
        }
        HeaderValue::from_str(&text).unwrap_or(HeaderValue::from_static("max-age=0"))
    }
}

/// Adds security headers to responses; see the [module docs](self).
/// Cloning is cheap.
#[derive(Clone)]
pub struct SecurityHeadersLayer {
    config: Arc<Config>,
}

#[derive(Clone)]
struct Config {
    headers: Vec<(HeaderName, HeaderValue)>,
    hsts: Option<HeaderValue>,
    csp: Option<Csp>,
    https: HttpsDetection,
    random: Arc<dyn RandomSource>,
}

fn preset_csp(frame_ancestors: &str) -> Csp {
    Csp::builder()
        .directive(Directive::DefaultSrc, ["'self'"])
        .directive(Directive::BaseUri, ["'none'"])
        .directive(Directive::FormAction, ["'self'"])
        .directive(Directive::FrameAncestors, [frame_ancestors])
        .directive(Directive::ObjectSrc, ["'none'"])
        .build()
        .unwrap_or_else(|_| unreachable!("the preset policy is valid"))
}

impl SecurityHeadersLayer {
    /// Sets no header at all: a base to add your own to.
    pub fn empty() -> Self {
        Self {
            config: Arc::new(Config {
                headers: Vec::new(),
                hsts: None,
                csp: None,
                https: HttpsDetection::default(),
                random: Arc::new(OsRandom),
            }),
        }
    }

    /// The strictest preset (see the table in the [module docs](self)).
    pub fn strict() -> Self {
        let value = HeaderValue::from_static;
        Self::empty()
            .hsts(Hsts::new(HSTS_MAX_AGE).include_subdomains())
            .csp(preset_csp("'none'"))
            .header(X_FRAME_OPTIONS, value("DENY"))
            .header(X_CONTENT_TYPE_OPTIONS, value("nosniff"))
            .header(REFERRER_POLICY, value("no-referrer"))
            .header(CROSS_ORIGIN_OPENER_POLICY, value("same-origin"))
            .header(CROSS_ORIGIN_RESOURCE_POLICY, value("same-origin"))
            .header(ORIGIN_AGENT_CLUSTER, value("?1"))
            .header(X_XSS_PROTECTION, value("0"))
            .header(PERMISSIONS_POLICY_HEADER, value(PERMISSIONS_POLICY))
    }

    /// Like [`strict`](Self::strict), for pages your own origin may frame
    /// and that open popups.
    pub fn relaxed() -> Self {
        let value = HeaderValue::from_static;
        Self::strict()
            .csp(preset_csp("'self'"))
            .header(X_FRAME_OPTIONS, value("SAMEORIGIN"))
            .header(REFERRER_POLICY, value("strict-origin-when-cross-origin"))
            .header(
                CROSS_ORIGIN_OPENER_POLICY,
                value("same-origin-allow-popups"),
            )
            .header(CROSS_ORIGIN_RESOURCE_POLICY, value("same-site"))
    }

    /// [`strict`](Self::strict) without HSTS, for local development.
    pub fn dev() -> Self {
        Self::strict().without(STRICT_TRANSPORT_SECURITY)
    }

    /// Sets `name` to `value` on every response that does not carry it.
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        if name == STRICT_TRANSPORT_SECURITY {
            self.config_mut().hsts = Some(value);
            return self;
        }
        let headers = &mut self.config_mut().headers;
        headers.retain(|(n, _)| *n != name);
        headers.push((name, value));
        self
    }

    /// Sends no `name` header (any header, HSTS and CSP included).
    pub fn without(mut self, name: HeaderName) -> Self {
        let config = self.config_mut();
        if name == STRICT_TRANSPORT_SECURITY {
            config.hsts = None;
        }
        if config
            .csp
            .as_ref()
            .is_some_and(|csp| csp.header_name() == name)
        {
            config.csp = None;
        }
        config.headers.retain(|(n, _)| *n != name);
        self
    }

    /// Sends this HSTS policy over https.
    pub fn hsts(mut self, hsts: Hsts) -> Self {
        self.config_mut().hsts = Some(hsts.value());
        self
    }

    /// Sends this Content-Security-Policy (enforcing or report-only, as it
    /// was built), replacing the preset's.
    pub fn csp(mut self, csp: Csp) -> Self {
        self.config_mut().csp = Some(csp);
        self
    }

    /// How https requests are told apart (default: the request scheme).
    pub fn https(mut self, detection: HttpsDetection) -> Self {
        self.config_mut().https = detection;
        self
    }

    /// Draws nonces from `random` (tests; the default is the OS CSPRNG).
    #[must_use]
    pub fn random(mut self, random: Arc<dyn RandomSource>) -> Self {
        self.config_mut().random = random;
        self
    }

    fn config_mut(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.config)
    }
}

impl Config {
    fn is_https<B>(&self, request: &Request<B>) -> bool {
        // HTTP/2 carries the scheme the connection was made with; an
        // HTTP/1 absolute-form target (`GET https://… HTTP/1.1`) is the
        // client's text, on whatever connection it came.
        if request.version() >= Version::HTTP_2 && request.uri().scheme_str() == Some("https") {
            return true;
        }
        match &self.https {
            HttpsDetection::RequestScheme => false,
            HttpsDetection::Always => true,
            HttpsDetection::ForwardedProto(proxies) => {
                // The resolver answers the peer itself when the peer is not
                // a trusted proxy; only then is the header someone else's.
                let from_trusted_proxy = proxies.peer_is_trusted(request);
                let mut protos = request.headers().get_all(X_FORWARDED_PROTO).iter();
                from_trusted_proxy
                    && matches!(
                        (protos.next(), protos.next()),
                        (Some(proto), None) if proto.as_bytes().eq_ignore_ascii_case(b"https")
                    )
            }
        }
    }

    fn draw_nonce(&self) -> Result<Arc<str>, Rejection> {
        let mut bytes = [0u8; 16];
        self.random.fill(&mut bytes).map_err(|_| {
            Rejection::new(Reason::BackendUnavailable, "SecurityHeadersLayer")
                .with_detail("no randomness for the CSP nonce")
        })?;
        Ok(keystile_core::encoding::encode(bytes).into())
    }

    fn finish(&self, response: &mut Response, https: bool, nonce: Option<&str>) {
        let headers = response.headers_mut();
        for (name, value) in &self.headers {
            if !headers.contains_key(name) {
                headers.insert(name.clone(), value.clone());
            }
        }
        if https
            && let Some(hsts) = &self.hsts
            && !headers.contains_key(STRICT_TRANSPORT_SECURITY)
        {
            headers.insert(STRICT_TRANSPORT_SECURITY, hsts.clone());
        }
        if let Some(csp) = &self.csp {
            let name = csp.header_name();
            if !headers.contains_key(&name)
                && let Ok(value) = HeaderValue::try_from(csp.render(nonce.unwrap_or_default()))
            {
                headers.insert(name, value);
            }
            if let Some(endpoints) = csp.reporting_endpoints()
                && !headers.contains_key(REPORTING_ENDPOINTS)
                && let Ok(value) = HeaderValue::from_str(endpoints)
            {
                headers.insert(REPORTING_ENDPOINTS, value);
            }
        }
    }
}

impl<S> Layer<S> for SecurityHeadersLayer {
    type Service = SecurityHeaders<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SecurityHeaders {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}

/// The service [`SecurityHeadersLayer`] produces.
#[derive(Clone)]
pub struct SecurityHeaders<S> {
    inner: S,
    config: Arc<Config>,
}

/// The per-response CSP nonce, for handlers behind a
/// [`SecurityHeadersLayer`] whose policy uses nonces. As an extractor it is
/// a 500 naming the layer when the route has none (a wiring mistake).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CspNonce(pub Arc<str>);

impl<S: Send + Sync> FromRequestParts<S> for CspNonce {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<CspNonce>().cloned().ok_or_else(|| {
            IntoResponse::into_response(
                Rejection::new(Reason::MissingLayer, "CspNonce").with_detail(
                    "CspNonce needs SecurityHeadersLayer with a Csp built with `.nonce()`",
                ),
            )
            .into_response()
        })
    }
}

impl<S> Service<Request<Body>> for SecurityHeaders<S>
where
    S: Service<Request<Body>, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        let https = self.config.is_https(&request);
        let nonce = if self.config.csp.as_ref().is_some_and(Csp::uses_nonce) {
            match self.config.draw_nonce() {
                Ok(nonce) => {
                    request
                        .extensions_mut()
                        .insert(CspNonce(Arc::clone(&nonce)));
                    Some(nonce)
                }
                Err(rejection) => {
                    return ResponseFuture {
                        state: State::Refused {
                            response: Some(IntoResponse::into_response(rejection)),
                        },
                        config: Arc::clone(&self.config),
                        https,
                        nonce: None,
                    };
                }
            }
        } else {
            None
        };
        ResponseFuture {
            state: State::Inner {
                future: self.inner.call(request),
            },
            config: Arc::clone(&self.config),
            https,
            nonce,
        }
    }
}

pin_project! {
    /// The response future of [`SecurityHeaders`].
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
        config: Arc<Config>,
        https: bool,
        nonce: Option<Arc<str>>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Inner { #[pin] future: F },
        Refused { response: Option<Response> },
    }
}

impl<F, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = match this.state.project() {
            StateProj::Inner { future } => match future.poll(cx) {
                Poll::Ready(Ok(response)) => response,
                other => return other,
            },
            StateProj::Refused { response } => response
                .take()
                .unwrap_or_else(|| Response::new(Body::empty())),
        };
        this.config
            .finish(&mut response, *this.https, this.nonce.as_deref());
        Poll::Ready(Ok(response))
    }
}

impl fmt::Debug for SecurityHeadersLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecurityHeadersLayer")
            .field("headers", &self.config.headers)
            .field("hsts", &self.config.hsts)
            .field("csp", &self.config.csp)
            .field("https", &self.config.https)
            .finish_non_exhaustive()
    }
}

impl<S: fmt::Debug> fmt::Debug for SecurityHeaders<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecurityHeaders")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use tower::ServiceExt as _;

    use super::*;

    async fn respond(layer: SecurityHeadersLayer, request: Request<Body>) -> Response {
        let service = layer.layer(tower::service_fn(|request: Request<Body>| async move {
            let nonce = request
                .extensions()
                .get::<CspNonce>()
                .map(|n| n.0.to_string());
            let mut response = Response::new(Body::from(nonce.unwrap_or_default()));
            if request.uri().path() == "/framed" {
                response
                    .headers_mut()
                    .insert(X_FRAME_OPTIONS, HeaderValue::from_static("SAMEORIGIN"));
            }
            Ok::<_, std::convert::Infallible>(response)
        }));
        service.oneshot(request).await.unwrap()
    }

    fn get(uri: &str) -> Request<Body> {
        Request::get(uri).body(Body::empty()).unwrap()
    }

    #[tokio::test]
    async fn hsts_only_over_https() {
        let plain = respond(SecurityHeadersLayer::strict(), get("/")).await;
        assert!(!plain.headers().contains_key(STRICT_TRANSPORT_SECURITY));
        let mut h2 = get("https://example.test/");
        *h2.version_mut() = Version::HTTP_2;
        let https = respond(SecurityHeadersLayer::strict(), h2).await;
        assert_eq!(
            https.headers()[STRICT_TRANSPORT_SECURITY],
            "max-age=31536000; includeSubDomains"
        );
        // An HTTP/1 absolute-form `https://` target is the client's claim.
        let claimed = respond(SecurityHeadersLayer::strict(), get("https://example.test/")).await;
        assert!(!claimed.headers().contains_key(STRICT_TRANSPORT_SECURITY));
        let always = SecurityHeadersLayer::strict().https(HttpsDetection::Always);
        assert!(
            respond(always, get("/"))
                .await
                .headers()
                .contains_key(STRICT_TRANSPORT_SECURITY)
        );
        let dev = SecurityHeadersLayer::dev().https(HttpsDetection::Always);
        assert!(
            !respond(dev, get("/"))
                .await
                .headers()
                .contains_key(STRICT_TRANSPORT_SECURITY)
        );
    }

    #[tokio::test]
    async fn a_handlers_own_header_is_kept() {
        let response = respond(SecurityHeadersLayer::strict(), get("/framed")).await;
        assert_eq!(response.headers()[X_FRAME_OPTIONS], "SAMEORIGIN");
        let response = respond(SecurityHeadersLayer::strict(), get("/")).await;
        assert_eq!(response.headers()[X_FRAME_OPTIONS], "DENY");
    }

    #[tokio::test]
    async fn every_header_can_be_replaced_or_removed() {
        let layer = SecurityHeadersLayer::strict()
            .header(REFERRER_POLICY, HeaderValue::from_static("same-origin"))
            .without(PERMISSIONS_POLICY_HEADER)
            .without(http::header::CONTENT_SECURITY_POLICY)
            .hsts(Hsts::new(Duration::from_secs(60)).preload())
            .https(HttpsDetection::Always);
        let response = respond(layer, get("/")).await;
        let headers = response.headers();
        assert_eq!(headers[REFERRER_POLICY], "same-origin");
        assert!(!headers.contains_key(PERMISSIONS_POLICY_HEADER));
        assert!(!headers.contains_key(http::header::CONTENT_SECURITY_POLICY));
        assert_eq!(headers[STRICT_TRANSPORT_SECURITY], "max-age=60; preload");
        let empty = respond(SecurityHeadersLayer::empty(), get("/")).await;
        assert!(empty.headers().is_empty());
    }

    #[tokio::test]
    async fn each_response_gets_a_fresh_nonce_in_header_and_extension() {
        let csp = Csp::builder()
            .directive(Directive::DefaultSrc, ["'self'"])
            .nonce()
            .build()
            .unwrap();
        let layer = SecurityHeadersLayer::strict().csp(csp);
        let mut nonces = Vec::new();
        for _ in 0..3 {
            let response = respond(layer.clone(), get("/")).await;
            let header = response.headers()[http::header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap()
                .to_owned();
            let body = axum::body::to_bytes(response.into_body(), 1024)
                .await
                .unwrap();
            let nonce = String::from_utf8(body.to_vec()).unwrap();
            assert_eq!(nonce.len(), 22, "128 bits, base64url");
            assert!(
                header.contains(&format!("script-src 'self' 'nonce-{nonce}'")),
                "{header}"
            );
            assert!(
                header.contains(&format!("style-src 'self' 'nonce-{nonce}'")),
                "{header}"
            );
            nonces.push(nonce);
        }
        nonces.dedup();
        assert_eq!(nonces.len(), 3);
    }

    #[tokio::test]
    async fn no_randomness_is_a_503_not_a_reused_nonce() {
        let csp = Csp::builder()
            .directive(Directive::DefaultSrc, ["'self'"])
            .nonce()
            .build()
            .unwrap();
        let broken = |_: &mut [u8]| Err(keystile_core::random::RandomError("down".into()));
        let layer = SecurityHeadersLayer::strict()
            .csp(csp)
            .random(Arc::new(broken));
        let response = respond(layer, get("/")).await;
        assert_eq!(response.status(), 503);
    }
}
