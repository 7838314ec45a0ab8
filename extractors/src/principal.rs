//! The [`Principal`] extractor: whoever any auth layer verified.
//!
//! ```
//! use axum::{Router, routing::get};
//! use keystile_extractors::Principal;
//!
//! async fn whoami(Principal(who): Principal) -> String {
//!     format!("{} via {}", who.subject, who.method())
//! }
//!
//! async fn greeting(who: Option<Principal>) -> String {
//!     match who {
//!         Some(p) => format!("hello {}", p.subject),
//!         None => "hello stranger".to_owned(),
//!     }
//! }
//!
//! // Add an auth layer (ApiKeyLayer, BearerLayer or SessionLayer) to these
//! // routes; without one the extractors answer 500 naming what is missing.
//! let app: Router = Router::new().route("/whoami", get(whoami)).route("/", get(greeting));
//! ```

use std::ops::Deref;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use http::request::Parts;
use keystile_core::identity;
use keystile_middleware::layers_seen::LayersSeen;

use crate::rejection::AuthRejection;

const LAYERS: &str = "an auth layer (ApiKeyLayer, BearerLayer or SessionLayer)";

/// The verified identity of the request, from whichever auth layer ran.
///
/// As `Option<Principal>` it is `None` when an auth layer ran in optional
/// mode and found no credentials. Either way, a route with no auth layer is a
/// 500 whose detail names the missing layer.
#[derive(Debug, Clone)]
pub struct Principal(pub identity::Principal);

impl Deref for Principal {
    type Target = identity::Principal;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        <Self as OptionalFromRequestParts<S>>::from_request_parts(parts, state)
            .await?
            .ok_or_else(|| AuthRejection::unauthenticated("Principal"))
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Principal {
    type Rejection = AuthRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        if let Some(principal) = parts.extensions.get::<identity::Principal>() {
            return Ok(Some(Self(principal.clone())));
        }
        if LayersSeen::any(&parts.extensions) {
            Ok(None)
        } else {
            Err(AuthRejection::missing_layer("Principal", LAYERS))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use keystile_core::identity::AuthMethod;
    use keystile_middleware::layers_seen::LayersSeen;
    use tower::ServiceExt;

    async fn required(Principal(p): Principal) -> String {
        p.subject.to_string()
    }

    async fn optional(p: Option<Principal>) -> String {
        p.map_or_else(|| "nobody".to_owned(), |p| p.subject.to_string())
    }

    fn app() -> Router {
        Router::new()
            .route("/required", get(required))
            .route("/optional", get(optional))
    }

    async fn body(response: axum::response::Response) -> String {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn without_a_layer_is_500_naming_the_layers() {
        for path in ["/required", "/optional"] {
            let response = app()
                .oneshot(Request::get(path).body(Body::empty()).unwrap())
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
            let text = body(response).await;
            assert!(text.contains("missing_layer"), "{text}");
            assert!(
                text.contains("ApiKeyLayer, BearerLayer or SessionLayer"),
                "{text}"
            );
        }
    }

    #[tokio::test]
    async fn layer_ran_without_credentials() {
        let mark = |mut req: Request<Body>| {
            LayersSeen::mark(req.extensions_mut(), AuthMethod::Session);
            req
        };
        let response = app()
            .oneshot(mark(Request::get("/optional").body(Body::empty()).unwrap()))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(body(response).await, "nobody");

        let response = app()
            .oneshot(mark(Request::get("/required").body(Body::empty()).unwrap()))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
}
