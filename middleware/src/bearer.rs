//! `BearerLayer`: verify `Authorization: Bearer <token>` with any
//! [`TokenVerifier`] and insert the verified
//! [`Principal`].
//!
//! What users rely on:
//!
//! - The token is read by the shared Authorization parser: the scheme word
//!   is case-insensitive, an empty value counts as absent, a repeated or
//!   non-ASCII header is malformed (400 `invalid_request`).
//! - No credentials: 401 with `WWW-Authenticate: Bearer realm="…"` and no
//!   `error` (RFC 6750 §3) — or, in [optional](BearerLayer::optional) mode,
//!   the request goes on without a `Principal`.
//! - A token that does not verify: 401 with `error="invalid_token"` and a
//!   problem+json body whose `reason` is `malformed`, `invalid_credentials`,
//!   `expired`, `not_yet_valid` or `wrong_audience`. Optional mode never
//!   admits a bad token.
//! - A verifier backend that cannot answer (revocation list down): 503 with
//!   `Retry-After`, never admitted.
//! - On success one `Principal` (method `bearer`) carrying the claims AND the
//!   raw token (for calling the issuer on the caller's behalf, e.g. a
//!   userinfo endpoint) is inserted; the `Claims` and `Bearer` extractors
//!   read it.
//!
//! ```
//! use axum::{Router, routing::get};
//! use keystile_core::bearer::{Claims, TokenError};
//! use keystile_core::identity::Principal;
//! use keystile_middleware::bearer::BearerLayer;
//!
//! async fn me(axum::Extension(who): axum::Extension<Principal>) -> String {
//!     who.subject.to_string()
//! }
//!
//! let verifier = |token: String| async move {
//!     match token.as_str() {
//!         "t0ken" => Ok(Claims { subject: "alice".into(), ..Claims::default() }),
//!         _ => Err(TokenError::BadSignature),
//!     }
//! };
//! let app: Router = Router::new()
//!     .route("/me", get(me))
//!     .route_layer(BearerLayer::new(verifier).realm("reports"));
//! ```

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::response::Response;
use http::{HeaderMap, Request, StatusCode};
use keystile_core::bearer::{BearerToken, Claims, TokenError, TokenVerifier};
use keystile_core::identity::Principal;
use keystile_core::rejection::{Reason, Rejection};
use tower_layer::Layer;
use tower_service::Service;

use crate::credentials::bearer_token;
use crate::future::{Authenticate, call_authenticated};
use crate::layers_seen::AuthLayer;

/// The realm challenges name unless configured.
pub const DEFAULT_REALM: &str = "api";

const SOURCE: &str = "BearerLayer";

/// Configures bearer-token authentication; see the [module docs](self).
/// Cloning is cheap.
#[derive(Clone)]
pub struct BearerLayer {
    config: Arc<Config>,
}

struct Config {
    verifier: Arc<dyn TokenVerifier>,
    realm: Cow<'static, str>,
    optional: bool,
}

impl BearerLayer {
    /// A layer verifying tokens with `verifier`, in realm `"api"`, requiring
    /// credentials.
    pub fn new(verifier: impl TokenVerifier) -> Self {
        Self::from_shared(Arc::new(verifier))
    }

    /// A layer over a verifier shared with other code.
    pub fn from_shared(verifier: Arc<dyn TokenVerifier>) -> Self {
        Self {
            config: Arc::new(Config {
                verifier,
                realm: Cow::Borrowed(DEFAULT_REALM),
                optional: false,
            }),
        }
    }

    /// Names `realm` in `WWW-Authenticate` challenges.
    #[must_use]
    pub fn realm(self, realm: impl Into<Cow<'static, str>>) -> Self {
        self.map(|c| c.realm = realm.into())
    }

    /// Lets requests without credentials through without a `Principal`
    /// (use `Option<Claims>` in handlers). Bad tokens are still refused.
    #[must_use]
    pub fn optional(self) -> Self {
        self.map(|c| c.optional = true)
    }

    /// Authenticates `headers` the way the layer does: `Ok(None)` when no
    /// token was presented in optional mode, `Err` with the rejection to send
    /// otherwise (challenge included). For composing layers, e.g.
    /// [`AuthChainLayer`](crate::auth_chain::AuthChainLayer); most users add
    /// the layer.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Option<Principal>, Rejection> {
        self.config.authenticate(headers).await
    }

    fn map(self, change: impl FnOnce(&mut Config)) -> Self {
        let mut config = Config {
            verifier: Arc::clone(&self.config.verifier),
            realm: self.config.realm.clone(),
            optional: self.config.optional,
        };
        change(&mut config);
        Self {
            config: Arc::new(config),
        }
    }
}

impl fmt::Debug for BearerLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BearerLayer")
            .field("realm", &self.config.realm)
            .field("optional", &self.config.optional)
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for BearerLayer {
    type Service = Bearer<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Bearer {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}

/// The service [`BearerLayer`] wraps around `S`.
#[derive(Clone)]
pub struct Bearer<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> fmt::Debug for Bearer<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bearer")
            .field("realm", &self.config.realm)
            .field("optional", &self.config.optional)
            .finish_non_exhaustive()
    }
}

pub use crate::future::ResponseFuture;

impl<S> Service<Request<Body>> for Bearer<S>
where
    S: Service<Request<Body>, Response = Response> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        call_authenticated(&mut self.inner, &self.config, req)
    }
}

impl Config {
    fn reject(&self, rejection: Rejection) -> Rejection {
        rejection.with_challenge(self.realm.clone())
    }

    /// The presented token; `Ok(None)` when none was presented and the
    /// layer is optional.
    fn presented_token<'h>(&self, headers: &'h HeaderMap) -> Result<Option<&'h str>, Rejection> {
        match bearer_token(headers) {
            Ok(Some(token)) => Ok(Some(token)),
            Ok(None) if self.optional => Ok(None),
            Ok(None) => Err(self.reject(Rejection::new(Reason::MissingCredentials, SOURCE))),
            Err(_) => {
                let rejection = Rejection::new(Reason::Malformed, SOURCE)
                    .with_status(StatusCode::BAD_REQUEST)
                    .with_detail("the Authorization header is not a single Bearer credential");
                Err(self.reject(rejection))
            }
        }
    }

    /// The identity behind `token`, given the verifier's answer.
    fn admit(
        &self,
        token: &str,
        verified: Result<Claims, TokenError>,
    ) -> Result<Principal, Rejection> {
        match verified {
            Ok(claims) => Ok(Principal::from_bearer(Arc::new(BearerToken::new(
                token, claims,
            )))),
            Err(error) => Err(self.reject(error.to_rejection(SOURCE))),
        }
    }
}

impl Authenticate for Config {
    const LAYER: AuthLayer = AuthLayer::Bearer;

    async fn authenticate(&self, headers: &HeaderMap) -> Result<Option<Principal>, Rejection> {
        let Some(token) = self.presented_token(headers)? else {
            return Ok(None);
        };
        let verified = self.verifier.verify(token).await;
        self.admit(token, verified).map(Some)
    }

    fn authenticate_now(
        &self,
        headers: &HeaderMap,
    ) -> Option<Result<Option<Principal>, Rejection>> {
        let token = match self.presented_token(headers) {
            Ok(Some(token)) => token,
            Ok(None) => return Some(Ok(None)),
            Err(rejection) => return Some(Err(rejection)),
        };
        let verified = self.verifier.verify_now(token)?;
        Some(self.admit(token, verified).map(Some))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::routing::get;
    use http::header::{AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE};
    use http_body_util::BodyExt;
    use keystile_core::bearer::{Claims, TokenError};
    use keystile_core::store::StoreError;
    use tower::ServiceExt;

    async fn verify(token: String) -> Result<Claims, TokenError> {
        match token.as_str() {
            "good" => Ok(Claims {
                subject: "alice".into(),
                session_version: Some(4),
                ..Claims::default()
            }),
            "expired" => Err(TokenError::Expired),
            "down" => Err(TokenError::Unavailable(StoreError::Timeout)),
            _ => Err(TokenError::BadSignature),
        }
    }

    async fn me(req: Request<Body>) -> String {
        match req.extensions().get::<Principal>() {
            Some(p) => {
                let raw = p.bearer().map(|b| b.token().to_owned()).unwrap_or_default();
                format!("{} sv={:?} raw={raw}", p.subject, p.session_version)
            }
            None => "anonymous".into(),
        }
    }

    fn app(layer: BearerLayer) -> Router {
        Router::new().route("/", get(me)).route_layer(layer)
    }

    async fn send(layer: BearerLayer, auth: Option<&str>) -> (StatusCode, Option<String>, String) {
        let mut req = Request::get("/");
        if let Some(auth) = auth {
            req = req.header(AUTHORIZATION, auth);
        }
        let res = app(layer)
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = res.status();
        let challenge = res
            .headers()
            .get(WWW_AUTHENTICATE)
            .map(|v| v.to_str().unwrap().to_owned());
        let body = res.into_body().collect().await.unwrap().to_bytes();
        (status, challenge, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn valid_token_inserts_principal_with_raw_token() {
        let (status, _, body) = send(BearerLayer::new(verify), Some("bearer good")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "alice sv=Some(4) raw=good");
    }

    #[tokio::test]
    async fn missing_credentials_401_challenge_without_error() {
        let (status, challenge, body) = send(BearerLayer::new(verify).realm("reports"), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(challenge.as_deref(), Some(r#"Bearer realm="reports""#));
        assert!(body.contains(r#""reason":"missing_credentials""#));
    }

    #[tokio::test]
    async fn bad_token_401_invalid_token_without_echoing_it() {
        let (status, challenge, body) =
            send(BearerLayer::new(verify), Some("Bearer forged-xyz")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(challenge.unwrap().contains(r#"error="invalid_token""#));
        assert!(body.contains("invalid_credentials") && !body.contains("forged-xyz"));

        let (_, _, body) = send(BearerLayer::new(verify), Some("Bearer expired")).await;
        assert!(body.contains(r#""reason":"expired""#));
    }

    #[tokio::test]
    async fn malformed_header_is_400_invalid_request() {
        let (status, challenge, _) = send(BearerLayer::new(verify), Some("Bearer a b")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(challenge.unwrap().contains(r#"error="invalid_request""#));
    }

    #[tokio::test]
    async fn verifier_backend_down_is_503_with_retry_after() {
        let res = app(BearerLayer::new(verify))
            .oneshot(
                Request::get("/")
                    .header(AUTHORIZATION, "Bearer down")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(res.headers().contains_key(RETRY_AFTER));
    }

    #[tokio::test]
    async fn optional_mode_admits_anonymous_but_never_a_bad_token() {
        let layer = BearerLayer::new(verify).optional();
        let (status, _, body) = send(layer.clone(), None).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "anonymous"));
        let (status, _, _) = send(layer, Some("Bearer forged")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
}
