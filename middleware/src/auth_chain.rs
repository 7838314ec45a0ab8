//! [`AuthChainLayer`]: accept an API key, a Bearer token or a session cookie
//! on the same route.
//!
//! The chain tries the layers it was given in a fixed order — API key, then
//! Bearer, then session cookie — using each layer's own verification, so a
//! credential is judged exactly as the layer alone would judge it:
//!
//! - **First success wins.** Its [`Principal`] is inserted (exactly one) and
//!   the later layers are not consulted.
//! - **No credential of a kind moves on.** A layer that finds nothing of its
//!   kind (its `missing_credentials` outcome) hands over to the next one.
//! - **The first hard error stops.** A credential that was presented but is
//!   invalid (malformed, bad signature, expired, revoked, wrong tenant) is
//!   refused with that layer's own rejection — a valid session cookie next to
//!   a forged token does not rescue the request. A backend that cannot answer
//!   is 503 with `Retry-After`, never a reason to try the next layer.
//! - **Nothing at all:** 401 `missing_credentials` with
//!   `WWW-Authenticate: Bearer realm="…"` and no `error` (RFC 6750 §3) when
//!   an API key or Bearer layer is in the chain — or, in
//!   [optional](AuthChainLayer::optional) mode, the request goes on without a
//!   principal.
//!
//! API keys and Bearer tokens share `Authorization: Bearer`. When both are
//! in the chain, an Authorization credential that does not have the API-key
//! grammar (prefix and checksum) — a JWT, say — is not an API key and goes to
//! the Bearer layer; a malformed Authorization header goes there too, which
//! answers 400 `invalid_request`. `X-API-Key` only ever carries API keys;
//! as in `ApiKeyLayer`, Authorization wins when both headers are present, so
//! a token in Authorization means `X-API-Key` is not consulted.
//!
//! The chain marks [`LayersSeen`] for every layer it was configured with,
//! whether or not that layer's turn came: each is on the route, so an
//! `Option<Session>` extractor on a request authenticated by API key yields
//! `None` rather than the 500 reserved for routes that lack the layer.
//! Rejections go through the shared
//! [`rejection_response`]: problem+json, a
//! `tracing` event, never the presented secret. The optional mode of the
//! layers handed in is irrelevant; the chain's own mode decides.
//!
//! ```
//! use std::sync::Arc;
//! use axum::{Extension, Router, routing::get};
//! use keystile_core::api_key::MemoryApiKeyStore;
//! use keystile_core::bearer::{Claims, TokenError};
//! use keystile_core::identity::Principal;
//! use keystile_core::keys::Keyring;
//! use keystile_middleware::{ApiKeyLayer, BearerLayer, HostTenant, SessionLayer};
//! use keystile_middleware::auth_chain::AuthChainLayer;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! async fn whoami(Extension(who): Extension<Principal>) -> String {
//!     format!("{} via {}", who.subject, who.method())
//! }
//!
//! let verifier = |token: String| async move {
//!     match token.as_str() {
//!         "t0ken" => Ok(Claims { subject: "alice".into(), ..Claims::default() }),
//!         _ => Err(TokenError::BadSignature),
//!     }
//! };
//! let chain = AuthChainLayer::new()
//!     .api_key(ApiKeyLayer::new(Arc::new(MemoryApiKeyStore::new())))
//!     .bearer(BearerLayer::new(verifier))
//!     .session(SessionLayer::new(Keyring::generate()?, HostTenant::under("example.test")?))
//!     .realm("reports");
//! let app: Router = Router::new()
//!     .route("/whoami", get(whoami))
//!     .route_layer(chain);
//! # Ok(()) }
//! ```

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::response::Response;
use http::{HeaderMap, Request};
use keystile_core::api_key::parse;
use keystile_core::identity::Principal;
use keystile_core::rejection::{Reason, Rejection};
use tower_layer::Layer;
use tower_service::Service;

use crate::api_key::ApiKeyLayer;
use crate::bearer::BearerLayer;
use crate::credentials::bearer_token;
use crate::layers_seen::{AuthLayer, LayersSeen};
use crate::response::rejection_response;
use crate::session::SessionLayer;

/// The realm in the "no credentials" challenge unless configured.
pub const DEFAULT_REALM: &str = "api";

const SOURCE: &str = "AuthChainLayer";

/// Tries API key, then Bearer, then session cookie; see the
/// [module docs](self). Cloning is cheap.
#[derive(Clone, Default)]
pub struct AuthChainLayer {
    config: Arc<Config>,
}

#[derive(Clone)]
struct Config {
    api_key: Option<ApiKeyLayer>,
    bearer: Option<BearerLayer>,
    session: Option<SessionLayer>,
    realm: Cow<'static, str>,
    optional: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            api_key: None,
            bearer: None,
            session: None,
            realm: Cow::Borrowed(DEFAULT_REALM),
            optional: false,
        }
    }
}

/// What one layer of the chain concluded.
enum Step {
    Authenticated(Principal),
    /// Nothing of this layer's kind was presented.
    Absent,
    Refused(Rejection),
}

impl From<Result<Option<Principal>, Rejection>> for Step {
    fn from(outcome: Result<Option<Principal>, Rejection>) -> Self {
        match outcome {
            Ok(Some(principal)) => Self::Authenticated(principal),
            Ok(None) => Self::Absent,
            // A layer in required mode says "missing" where an optional one
            // says `None`; for the chain both mean "not my kind".
            Err(rejection) if rejection.reason() == Reason::MissingCredentials => Self::Absent,
            Err(rejection) => Self::Refused(rejection),
        }
    }
}

impl AuthChainLayer {
    /// An empty chain; add layers with [`api_key`](Self::api_key),
    /// [`bearer`](Self::bearer) and [`session`](Self::session). An empty
    /// chain admits nobody (or everybody anonymously, when optional).
    pub fn new() -> Self {
        Self::default()
    }

    fn map(mut self, change: impl FnOnce(&mut Config)) -> Self {
        change(Arc::make_mut(&mut self.config));
        self
    }

    /// Tries API keys first, verified by `layer`.
    #[must_use]
    pub fn api_key(self, layer: ApiKeyLayer) -> Self {
        self.map(|c| c.api_key = Some(layer))
    }

    /// Tries Bearer tokens after API keys, verified by `layer`.
    #[must_use]
    pub fn bearer(self, layer: BearerLayer) -> Self {
        self.map(|c| c.bearer = Some(layer))
    }

    /// Tries the session cookie last, verified by `layer`.
    #[must_use]
    pub fn session(self, layer: SessionLayer) -> Self {
        self.map(|c| c.session = Some(layer))
    }

    /// Names `realm` in the challenge sent when no credentials were
    /// presented. Rejections of a presented credential carry the realm of
    /// the layer that refused it.
    #[must_use]
    pub fn realm(self, realm: impl Into<Cow<'static, str>>) -> Self {
        self.map(|c| c.realm = realm.into())
    }

    /// Lets requests without any credentials through without a principal
    /// (handlers take `Option<Principal>`). A presented credential that
    /// fails is still refused.
    #[must_use]
    pub fn optional(self) -> Self {
        self.map(|c| c.optional = true)
    }

    /// Runs the chain on `request`: `Ok(Some(_))` for the winning identity,
    /// `Ok(None)` for an anonymous request in optional mode, `Err` with the
    /// rejection to send otherwise. The layer calls this; it is public for
    /// composing the chain into other middleware. The request is borrowed
    /// mutably only so the future stays `Send` (`Body` is not `Sync`); it is
    /// not changed.
    pub async fn authenticate(
        &self,
        request: &mut Request<Body>,
    ) -> Result<Option<Principal>, Rejection> {
        self.config.authenticate(request).await
    }
}

impl Config {
    async fn authenticate(
        &self,
        request: &mut Request<Body>,
    ) -> Result<Option<Principal>, Rejection> {
        let headers = request.headers();
        if let Some(layer) = &self.api_key {
            let step = if self.bearer.is_some() && authorization_is_not_an_api_key(headers) {
                Step::Absent
            } else {
                layer.authenticate(headers).await.into()
            };
            if let Some(decided) = step.decided() {
                return decided;
            }
        }
        if let Some(layer) = &self.bearer {
            let step: Step = layer.authenticate(headers).await.into();
            if let Some(decided) = step.decided() {
                return decided;
            }
        }
        if let Some(layer) = &self.session {
            let step: Step = layer.authenticate(request).into();
            if let Some(decided) = step.decided() {
                return decided;
            }
        }
        if self.optional {
            return Ok(None);
        }
        let missing = Rejection::new(Reason::MissingCredentials, SOURCE);
        // A Bearer challenge only makes sense where a header credential
        // would be accepted; a cookie-only chain answers without one.
        Err(if self.api_key.is_some() || self.bearer.is_some() {
            missing.with_challenge(self.realm.clone())
        } else {
            missing
        })
    }

    fn mark(&self, request: &mut Request<Body>) {
        let extensions = request.extensions_mut();
        let configured = [
            (self.api_key.is_some(), AuthLayer::ApiKey),
            (self.bearer.is_some(), AuthLayer::Bearer),
            (self.session.is_some(), AuthLayer::Session),
        ];
        for (present, layer) in configured {
            if present {
                LayersSeen::mark(extensions, layer);
            }
        }
    }
}

impl Step {
    /// `Some` when this step ends the chain.
    fn decided(self) -> Option<Result<Option<Principal>, Rejection>> {
        match self {
            Self::Authenticated(principal) => Some(Ok(Some(principal))),
            Self::Absent => None,
            Self::Refused(rejection) => Some(Err(rejection)),
        }
    }
}

/// Whether `Authorization` carries something other than an API key (a JWT,
/// an opaque token, a malformed header): that belongs to the Bearer layer.
fn authorization_is_not_an_api_key(headers: &HeaderMap) -> bool {
    match bearer_token(headers) {
        Ok(Some(token)) => parse(token).is_err(),
        Ok(None) => false,
        Err(_) => true,
    }
}

impl fmt::Debug for AuthChainLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthChainLayer")
            .field("api_key", &self.config.api_key)
            .field("bearer", &self.config.bearer)
            .field("session", &self.config.session)
            .field("realm", &self.config.realm)
            .field("optional", &self.config.optional)
            .finish()
    }
}

impl<S> Layer<S> for AuthChainLayer {
    type Service = AuthChain<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthChain {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}

/// The service [`AuthChainLayer`] wraps around a route.
#[derive(Clone)]
pub struct AuthChain<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> fmt::Debug for AuthChain<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthChain")
            .field("optional", &self.config.optional)
            .finish_non_exhaustive()
    }
}

/// The response future of [`AuthChain`]: boxed, because the layers it runs
/// are async behind trait objects anyway.
pub type ResponseFuture<E> = Pin<Box<dyn Future<Output = Result<Response, E>> + Send>>;

impl<S> Service<Request<Body>> for AuthChain<S>
where
    S: Service<Request<Body>, Response = Response> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        // The readied service goes into the future; a fresh clone stays.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let config = Arc::clone(&self.config);
        config.mark(&mut req);
        Box::pin(async move {
            match config.authenticate(&mut req).await {
                Ok(Some(principal)) => {
                    LayersSeen::admit(req.extensions_mut(), principal);
                    inner.call(req).await
                }
                Ok(None) => inner.call(req).await,
                Err(rejection) => Ok(rejection_response(rejection)),
            }
        })
    }
}

#[cfg(test)]
mod tests {

    use axum::Router;
    use axum::routing::get;
    use http::StatusCode;
    use http::header::{RETRY_AFTER, WWW_AUTHENTICATE};
    use http_body_util::BodyExt;
    use keystile_core::api_key::{ApiKeyAdmin, KeyPrefix, MintedKey, NewApiKey};
    use keystile_core::bearer::{Claims, TokenError};
    use keystile_core::clock::ManualClock;
    use keystile_core::keys::{Keyring, SigningKey};
    use keystile_core::random::OsRandom;
    use keystile_core::scopes::Scopes;
    use keystile_core::session::{DEFAULT_SESSION_TTL, SessionClaims, SessionCodec};

    use keystile_core::testing::CountingStore;
    use tower::ServiceExt;

    use super::*;
    use crate::tenant::HostTenant;

    const NOW: u64 = 1_700_000_000;

    async fn verify(token: String) -> Result<Claims, TokenError> {
        match token.as_str() {
            "jwt.for.alice" => Ok(Claims {
                subject: "alice".into(),
                ..Claims::default()
            }),
            "expired.jwt.token" => Err(TokenError::Expired),
            _ => Err(TokenError::BadSignature),
        }
    }

    fn keyring() -> Keyring {
        Keyring::new(SigningKey::from_bytes(&[5; 32]).unwrap())
    }

    struct Fixture {
        keys: Arc<CountingStore>,
        key: MintedKey,
        clock: ManualClock,
        cookie: String,
    }

    async fn fixture() -> Fixture {
        let keys = Arc::new(CountingStore::default());
        let (key, record) = NewApiKey::new(KeyPrefix::new("sk_test").unwrap(), "robot")
            .with_scopes(Scopes::parse("reports:read"))
            .mint(&OsRandom, NOW)
            .unwrap();
        keys.create(record).await.unwrap();
        let clock = ManualClock::at_unix(NOW);
        let claims = SessionClaims {
            subject: "carol".into(),
            actor: None,
            tenant: "acme".into(),
            session_version: None,
            expires_at: 0,
        };
        let value = SessionCodec::new(keyring())
            .with_clock(clock.shared())
            .issue(&claims, DEFAULT_SESSION_TTL)
            .unwrap();
        Fixture {
            keys,
            key,
            clock,
            cookie: format!("keystile_session={value}"),
        }
    }

    fn chain(f: &Fixture) -> AuthChainLayer {
        AuthChainLayer::new()
            .api_key(ApiKeyLayer::new(f.keys.clone()).with_clock(f.clock.shared()))
            .bearer(BearerLayer::new(verify).realm("bearer-realm"))
            .session(
                SessionLayer::new(keyring(), HostTenant::under("localhost").unwrap())
                    .with_clock(f.clock.shared()),
            )
            .realm("chain-realm")
    }

    async fn whoami(req: Request<Body>) -> String {
        let seen = [AuthLayer::ApiKey, AuthLayer::Bearer, AuthLayer::Session]
            .map(|layer| LayersSeen::ran(req.extensions(), layer));
        match req.extensions().get::<Principal>() {
            Some(p) => format!("{} via {} seen={seen:?}", p.subject, p.method()),
            None => format!("nobody seen={seen:?}"),
        }
    }

    struct Answer {
        status: StatusCode,
        challenge: Option<String>,
        retry_after: bool,
        body: String,
    }

    async fn send(layer: AuthChainLayer, headers: &[(&str, &str)]) -> Answer {
        let app = Router::new().route("/", get(whoami)).route_layer(layer);
        let mut req = Request::get("/").header("host", "acme.localhost");
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let res = app.oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
        let status = res.status();
        let challenge = res
            .headers()
            .get(WWW_AUTHENTICATE)
            .map(|v| v.to_str().unwrap().to_owned());
        let retry_after = res.headers().contains_key(RETRY_AFTER);
        let body = res.into_body().collect().await.unwrap().to_bytes();
        Answer {
            status,
            challenge,
            retry_after,
            body: String::from_utf8(body.to_vec()).unwrap(),
        }
    }

    const ALL_SEEN: &str = "seen=[true, true, true]";

    #[tokio::test]
    async fn api_key_in_x_api_key_authenticates_as_api_key() {
        let f = fixture().await;
        let a = send(chain(&f), &[("x-api-key", f.key.as_str())]).await;
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(a.body, format!("robot via api_key {ALL_SEEN}"));
    }

    #[tokio::test]
    async fn api_key_in_authorization_authenticates_as_api_key() {
        let f = fixture().await;
        let auth = format!("Bearer {}", f.key.as_str());
        let a = send(chain(&f), &[("authorization", &auth)]).await;
        assert_eq!(a.body, format!("robot via api_key {ALL_SEEN}"));
    }

    #[tokio::test]
    async fn token_without_api_key_grammar_goes_to_the_bearer_layer() {
        let f = fixture().await;
        let a = send(chain(&f), &[("authorization", "Bearer jwt.for.alice")]).await;
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(a.body, format!("alice via bearer {ALL_SEEN}"));
        assert_eq!(f.keys.lookups(), 0);
    }

    #[tokio::test]
    async fn session_cookie_is_tried_when_no_header_credential_is_present() {
        // The layers handed in are required, not optional: the chain still
        // moves on when a layer finds nothing of its kind.
        let f = fixture().await;
        let a = send(chain(&f), &[("cookie", &f.cookie)]).await;
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(a.body, format!("carol via session {ALL_SEEN}"));
    }

    #[tokio::test]
    async fn first_success_wins_and_later_layers_are_not_consulted() {
        let f = fixture().await;
        // A forged bearer token and a tampered cookie would be refused, but
        // the API key came first.
        let a = send(
            chain(&f),
            &[
                ("x-api-key", f.key.as_str()),
                ("cookie", "keystile_session=forged"),
            ],
        )
        .await;
        assert_eq!(a.body, format!("robot via api_key {ALL_SEEN}"));
        let a = send(
            chain(&f),
            &[
                ("authorization", "Bearer jwt.for.alice"),
                ("cookie", "keystile_session=forged"),
            ],
        )
        .await;
        assert_eq!(a.body, format!("alice via bearer {ALL_SEEN}"));
    }

    #[tokio::test]
    async fn invalid_api_key_stops_the_chain_despite_a_valid_session() {
        let f = fixture().await;
        let (unknown, _) = NewApiKey::new(KeyPrefix::new("sk_test").unwrap(), "robot")
            .mint(&OsRandom, NOW)
            .unwrap();
        for presented in [unknown.as_str(), "sk_test_garbage"] {
            let a = send(
                chain(&f),
                &[("x-api-key", presented), ("cookie", &f.cookie)],
            )
            .await;
            assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{presented}");
            let challenge = a.challenge.unwrap();
            assert!(
                challenge.contains(r#"error="invalid_token""#),
                "{challenge}"
            );
            assert!(!a.body.contains(presented), "the key is never echoed");
        }
    }

    #[tokio::test]
    async fn invalid_bearer_token_stops_the_chain_despite_a_valid_session() {
        let f = fixture().await;
        let a = send(
            chain(&f),
            &[
                ("authorization", "Bearer expired.jwt.token"),
                ("cookie", &f.cookie),
            ],
        )
        .await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED);
        let challenge = a.challenge.unwrap();
        assert!(
            challenge.starts_with(r#"Bearer realm="bearer-realm", error="invalid_token""#),
            "{challenge}"
        );
        assert!(a.body.contains(r#""reason":"expired""#), "{}", a.body);
    }

    #[tokio::test]
    async fn tampered_session_cookie_is_refused_not_treated_as_absent() {
        let f = fixture().await;
        let (head, tag) = f.cookie.rsplit_once('.').unwrap();
        let mut raw: [u8; 32] = keystile_core::encoding::decode_array(tag).unwrap();
        raw[16] ^= 0x10;
        let tampered = format!("{head}.{}", keystile_core::encoding::encode(raw));
        let a = send(chain(&f).optional(), &[("cookie", &tampered)]).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED);
        assert!(a.body.contains("invalid_credentials"), "{}", a.body);
    }

    #[tokio::test]
    async fn malformed_authorization_header_is_400_from_the_bearer_layer() {
        let f = fixture().await;
        let a = send(chain(&f), &[("authorization", "Bearer two words")]).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST);
        assert!(a.challenge.unwrap().contains(r#"error="invalid_request""#));
    }

    #[tokio::test]
    async fn no_credentials_is_401_with_the_chain_realm_and_no_error_code() {
        let f = fixture().await;
        let a = send(chain(&f), &[]).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            a.challenge.as_deref(),
            Some(r#"Bearer realm="chain-realm""#)
        );
        assert!(
            a.body.contains(r#""reason":"missing_credentials""#),
            "{}",
            a.body
        );
    }

    #[tokio::test]
    async fn cookie_only_chain_sends_no_bearer_challenge() {
        let f = fixture().await;
        let layer = AuthChainLayer::new().session(
            SessionLayer::new(keyring(), HostTenant::under("localhost").unwrap())
                .with_clock(f.clock.shared()),
        );
        let a = send(layer, &[]).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED);
        assert_eq!(a.challenge, None);
    }

    #[tokio::test]
    async fn optional_chain_admits_anonymous_requests_and_marks_every_layer() {
        let f = fixture().await;
        let a = send(chain(&f).optional(), &[]).await;
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(a.body, format!("nobody {ALL_SEEN}"));
        let a = send(chain(&f).optional(), &[("authorization", "Bearer forged")]).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    }

    #[tokio::test]
    async fn only_configured_layers_are_marked() {
        let layer = AuthChainLayer::new().bearer(BearerLayer::new(verify));
        let a = send(layer, &[("authorization", "Bearer jwt.for.alice")]).await;
        assert_eq!(a.body, "alice via bearer seen=[false, true, false]");
    }

    #[tokio::test]
    async fn api_key_store_down_is_503_and_the_session_is_not_tried() {
        let f = fixture().await;
        f.keys.set_down(true);
        let a = send(
            chain(&f),
            &[("x-api-key", f.key.as_str()), ("cookie", &f.cookie)],
        )
        .await;
        assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(a.retry_after);
        assert!(a.body.contains("backend_unavailable"));
    }
}
