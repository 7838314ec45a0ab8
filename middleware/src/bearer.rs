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
//!   `error` (RFC 6750 §3) — or, in [optional](AuthLayer::optional) mode,
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
//! use std::sync::Arc;
//! use keystile_middleware::bearer::{BearerLayer, BearerTokens};
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
//!     .route_layer(BearerLayer::new(BearerTokens::new(Arc::new(verifier))).realm("reports"));
//! ```

use std::fmt;
use std::sync::Arc;

use http::StatusCode;
use http::request::Parts;
use keystile_core::bearer::{BearerToken, TokenVerifier};
use keystile_core::identity::{AuthMethod, Principal};
use keystile_core::rejection::{Reason, Rejection};

use crate::auth::{AuthLayer, Authenticator, Outcome, Realm};
use crate::credentials::bearer_token;
use keystile_core::layers_seen::LayersSeen;

const SOURCE: &str = "BearerLayer";

/// The layer that authenticates requests by bearer token: an [`AuthLayer`]
/// running [`BearerTokens`].
pub type BearerLayer = AuthLayer<BearerTokens>;

/// Authenticates `Authorization: Bearer` tokens with a [`TokenVerifier`];
/// see the [module docs](self). Cloning is cheap.
#[derive(Clone)]
pub struct BearerTokens {
    verifier: Arc<dyn TokenVerifier>,
}

impl BearerTokens {
    /// Verifies tokens with `verifier` (a `JwtVerifier`, an async closure,
    /// any [`TokenVerifier`]).
    pub fn new(verifier: Arc<dyn TokenVerifier>) -> Self {
        Self { verifier }
    }
}

impl Authenticator for BearerTokens {
    fn mark(&self, seen: &mut LayersSeen) {
        seen.insert(AuthMethod::Bearer);
    }

    fn challenges(&self) -> bool {
        true
    }

    async fn authenticate(&self, request: &Parts) -> Outcome {
        let realm = || Realm::of(&request.extensions);
        let token = match bearer_token(&request.headers) {
            Ok(Some(token)) => token,
            Ok(None) => return Outcome::Absent,
            Err(_) => {
                return Outcome::Refused(
                    Rejection::new(Reason::Malformed, SOURCE)
                        .with_status(StatusCode::BAD_REQUEST)
                        .with_detail("the Authorization header is not a single Bearer credential")
                        .with_challenge(realm()),
                );
            }
        };
        match self.verifier.verify(token).await {
            Ok(claims) => Outcome::Admitted(Principal::from_bearer(Arc::new(BearerToken::new(
                token, claims,
            )))),
            Err(error) => Outcome::Refused(error.to_rejection(SOURCE).with_challenge(realm())),
        }
    }
}

impl fmt::Debug for BearerTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BearerTokens").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use http::Request;
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
        let (status, _, body) = send(
            BearerLayer::new(BearerTokens::new(Arc::new(verify))),
            Some("bearer good"),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "alice sv=Some(4) raw=good");
    }

    #[tokio::test]
    async fn missing_credentials_401_challenge_without_error() {
        let (status, challenge, body) = send(
            BearerLayer::new(BearerTokens::new(Arc::new(verify))).realm("reports"),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(challenge.as_deref(), Some(r#"Bearer realm="reports""#));
        assert!(body.contains(r#""reason":"missing_credentials""#));
    }

    #[tokio::test]
    async fn bad_token_401_invalid_token_without_echoing_it() {
        let (status, challenge, body) = send(
            BearerLayer::new(BearerTokens::new(Arc::new(verify))),
            Some("Bearer forged-xyz"),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(challenge.unwrap().contains(r#"error="invalid_token""#));
        assert!(body.contains("invalid_credentials") && !body.contains("forged-xyz"));

        let (_, _, body) = send(
            BearerLayer::new(BearerTokens::new(Arc::new(verify))),
            Some("Bearer expired"),
        )
        .await;
        assert!(body.contains(r#""reason":"expired""#));
    }

    #[tokio::test]
    async fn malformed_header_is_400_invalid_request() {
        let (status, challenge, _) = send(
            BearerLayer::new(BearerTokens::new(Arc::new(verify))),
            Some("Bearer a b"),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(challenge.unwrap().contains(r#"error="invalid_request""#));
    }

    #[tokio::test]
    async fn verifier_backend_down_is_503_with_retry_after() {
        let res = app(BearerLayer::new(BearerTokens::new(Arc::new(verify))))
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
        let layer = BearerLayer::new(BearerTokens::new(Arc::new(verify))).optional();
        let (status, _, body) = send(layer.clone(), None).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "anonymous"));
        let (status, _, _) = send(layer, Some("Bearer forged")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
}
