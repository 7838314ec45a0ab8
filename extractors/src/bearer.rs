//! The [`Bearer`] extractor, with the [`Claims`] extractor: what
//! `BearerLayer` verified.
//!
//! - [`Claims`] (keystile-core's type, an extractor itself) yields the verified claims (subject, `sv`, scopes, custom
//!   claims); `Bearer` yields the whole [`BearerToken`] — claims plus the raw
//!   token, for calling the issuer on the caller's behalf.
//! - As `Option<_>` they are `None` when `BearerLayer` ran in optional mode
//!   and found no credentials (or another auth layer authenticated the
//!   request); as plain extractors that case is a 401 with a Bearer
//!   challenge-free problem body.
//! - On a route without `BearerLayer` both are a 500 whose detail names
//!   `BearerLayer`: a programming error, never a silent 401.
//!
//! ```
//! use std::sync::Arc;
//! use axum::{Router, routing::get};
//! use keystile_core::bearer::{Claims, TokenError};
//! use keystile_extractors::Bearer;
//! use keystile_middleware::bearer::{BearerLayer, BearerTokens};
//!
//! async fn me(claims: Claims) -> String {
//!     format!("{} (sv {:?})", claims.subject, claims.session_version)
//! }
//!
//! async fn raw_len(token: Option<Bearer>) -> String {
//!     token.map_or(0, |t| t.token().len()).to_string()
//! }
//!
//! let verifier = |token: String| async move {
//!     if token == "t0ken" {
//!         Ok(Claims { subject: "alice".into(), ..Claims::default() })
//!     } else {
//!         Err(TokenError::BadSignature)
//!     }
//! };
//! let app: Router = Router::new()
//!     .route("/me", get(me))
//!     .route("/len", get(raw_len))
//!     .route_layer(BearerLayer::new(BearerTokens::new(Arc::new(verifier))).optional());
//! ```

use std::ops::Deref;

#[cfg(doc)]
use keystile_core::bearer::Claims;
use std::sync::Arc;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use http::request::Parts;
use keystile_core::bearer::BearerToken;
use keystile_core::identity::AuthMethod;
use keystile_core::identity::Principal;
use keystile_core::layers_seen::LayersSeen;

use keystile_core::rejection::Rejection;

/// The verified bearer token (claims and raw token) of the request.
#[derive(Debug, Clone)]
pub struct Bearer(pub Arc<BearerToken>);

impl Deref for Bearer {
    type Target = BearerToken;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

/// The bearer token `BearerLayer` verified; `Ok(None)` when it ran and found
/// none; the 500 when it did not run.
fn verified(parts: &Parts, extractor: &'static str) -> Result<Option<Arc<BearerToken>>, Rejection> {
    if let Some(token) = parts.extensions.get::<Principal>().and_then(|p| p.bearer()) {
        return Ok(Some(Arc::clone(token)));
    }
    if LayersSeen::ran(&parts.extensions, AuthMethod::Bearer) {
        Ok(None)
    } else {
        Err(Rejection::missing_layer(
            extractor,
            LayersSeen::layer_name(AuthMethod::Bearer),
        ))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Bearer {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        verified(parts, "Bearer")?
            .map(Self)
            .ok_or_else(|| Rejection::unauthenticated("Bearer"))
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Bearer {
    type Rejection = Rejection;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(verified(parts, "Bearer")?.map(Self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use http::header::AUTHORIZATION;
    use http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use keystile_core::bearer::{self, TokenError};
    use keystile_middleware::bearer::BearerLayer;
    use tower::ServiceExt;

    async fn verify(token: String) -> Result<bearer::Claims, TokenError> {
        if token == "good" {
            Ok(bearer::Claims {
                subject: "alice".into(),
                ..bearer::Claims::default()
            })
        } else {
            Err(TokenError::BadSignature)
        }
    }

    async fn required(c: bearer::Claims) -> String {
        c.subject
    }

    async fn optional(c: Option<bearer::Claims>) -> String {
        c.map_or_else(|| "nobody".into(), |c| c.subject)
    }

    async fn raw(Bearer(t): Bearer) -> String {
        t.token().to_owned()
    }

    fn routes() -> Router {
        Router::new()
            .route("/required", get(required))
            .route("/optional", get(optional))
            .route("/raw", get(raw))
    }

    async fn get_text(app: Router, path: &str, auth: Option<&str>) -> (StatusCode, String) {
        let mut req = Request::get(path);
        if let Some(auth) = auth {
            req = req.header(AUTHORIZATION, auth);
        }
        let res = app.oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
        let status = res.status();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn extractors_read_what_the_layer_verified() {
        let app = routes().route_layer(
            BearerLayer::new(keystile_middleware::BearerTokens::new(std::sync::Arc::new(
                verify,
            )))
            .optional(),
        );
        assert_eq!(
            get_text(app.clone(), "/required", Some("Bearer good"))
                .await
                .1,
            "alice"
        );
        assert_eq!(
            get_text(app.clone(), "/raw", Some("Bearer good")).await.1,
            "good"
        );
        assert_eq!(get_text(app.clone(), "/optional", None).await.1, "nobody");
        assert_eq!(
            get_text(app, "/required", None).await.0,
            StatusCode::UNAUTHORIZED
        );
    }

    #[tokio::test]
    async fn without_bearer_layer_is_500_naming_it() {
        for path in ["/required", "/optional", "/raw"] {
            let (status, body) = get_text(routes(), path, Some("Bearer good")).await;
            assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{path}");
            assert!(body.contains("BearerLayer"), "{body}");
        }
    }
}
