//! axum integration (feature `axum`): the verified [`Principal`] and the
//! bearer token's [`Claims`] are extractors, and a [`Rejection`] is a
//! response.
//!
//! Each extractor also works as `Option<_>`: `None` when an auth layer ran
//! in optional mode and found no credentials. A route with no auth layer at
//! all answers 500 naming the layer to add — a wiring mistake, never a
//! silent 401.
//!
//! ```
//! use axum::{Router, routing::get};
//! use keystile_core::identity::Principal;
//!
//! async fn whoami(who: Principal) -> String {
//!     format!("{} via {}", who.subject, who.method())
//! }
//!
//! async fn greeting(who: Option<Principal>) -> String {
//!     match who {
//!         Some(who) => format!("hello {}", who.subject),
//!         None => "hello stranger".to_owned(),
//!     }
//! }
//!
//! // Add an auth layer to these routes; without one the extractors answer
//! // 500 naming what is missing.
//! let app: Router = Router::new().route("/whoami", get(whoami)).route("/", get(greeting));
//! ```

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::response::{IntoResponse, Response};
use http::request::Parts;

use crate::bearer::Claims;
use crate::identity::{AuthMethod, Principal};
use crate::layers_seen::LayersSeen;
use crate::rejection::{Reason, Rejection};

const ANY_LAYER: &str = "an auth layer (ApiKeyLayer, BearerLayer or SessionLayer)";

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        Rejection::into_response(self).map(axum::body::Body::from)
    }
}

impl Rejection {
    /// The 500 for an extractor used on a route without the layer it reads;
    /// the detail names `layers`, the layer(s) to add.
    pub fn missing_layer(extractor: &'static str, layers: &str) -> Self {
        let detail = format!(
            "the {extractor} extractor needs {layers} on this route; add it with \
             `.route_layer(...)` or `.layer(...)`"
        );
        Self::new(Reason::MissingLayer, extractor).with_detail(detail)
    }

    /// The 401 for a required extractor when its layer ran in optional mode
    /// and found no credentials.
    pub fn unauthenticated(extractor: &'static str) -> Self {
        Self::new(Reason::MissingCredentials, extractor)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        <Self as OptionalFromRequestParts<S>>::from_request_parts(parts, state)
            .await?
            .ok_or_else(|| Rejection::unauthenticated("Principal"))
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Principal {
    type Rejection = Rejection;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        if let Some(principal) = parts.extensions.get::<Principal>() {
            return Ok(Some(principal.clone()));
        }
        if LayersSeen::any(&parts.extensions) {
            Ok(None)
        } else {
            Err(Rejection::missing_layer("Principal", ANY_LAYER))
        }
    }
}

/// The claims of the bearer token `BearerLayer` verified; `Ok(None)` when
/// it ran and found none; the 500 when it did not run.
fn verified_claims(parts: &Parts) -> Result<Option<Claims>, Rejection> {
    let token = parts
        .extensions
        .get::<Principal>()
        .and_then(|who| who.bearer());
    if let Some(token) = token {
        return Ok(Some(token.claims.clone()));
    }
    if LayersSeen::ran(&parts.extensions, AuthMethod::Bearer) {
        Ok(None)
    } else {
        Err(Rejection::missing_layer(
            "Claims",
            LayersSeen::layer_name(AuthMethod::Bearer),
        ))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Claims {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        verified_claims(parts)?.ok_or_else(|| Rejection::unauthenticated("Claims"))
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Claims {
    type Rejection = Rejection;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        verified_claims(parts)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;
    use crate::bearer::BearerToken;

    async fn required(who: Principal) -> String {
        who.subject.to_string()
    }

    async fn optional(who: Option<Principal>) -> String {
        who.map_or_else(|| "nobody".to_owned(), |who| who.subject.to_string())
    }

    async fn claims(claims: Claims) -> String {
        claims.subject
    }

    async fn maybe_claims(claims: Option<Claims>) -> String {
        claims.map_or_else(|| "nobody".to_owned(), |claims| claims.subject)
    }

    fn app() -> Router {
        Router::new()
            .route("/required", get(required))
            .route("/optional", get(optional))
            .route("/claims", get(claims))
            .route("/maybe-claims", get(maybe_claims))
    }

    async fn send(path: &str, prepare: impl FnOnce(&mut Request<Body>)) -> (StatusCode, String) {
        let mut request = Request::get(path).body(Body::empty()).unwrap();
        prepare(&mut request);
        let response = app().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn without_a_layer_is_500_naming_the_layer() {
        for path in ["/required", "/optional"] {
            let (status, text) = send(path, |_| {}).await;
            assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
            assert!(text.contains("missing_layer"), "{text}");
            assert!(
                text.contains("ApiKeyLayer, BearerLayer or SessionLayer"),
                "{text}"
            );
        }
        for path in ["/claims", "/maybe-claims"] {
            let (status, text) = send(path, |_| {}).await;
            assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
            assert!(text.contains("BearerLayer"), "{text}");
        }
    }

    #[tokio::test]
    async fn a_layer_that_ran_without_credentials_gives_none_or_401() {
        let mark = |request: &mut Request<Body>| {
            LayersSeen::mark(request.extensions_mut(), AuthMethod::Bearer);
        };
        assert_eq!(
            send("/optional", mark).await,
            (StatusCode::OK, "nobody".into())
        );
        assert_eq!(send("/required", mark).await.0, StatusCode::UNAUTHORIZED);
        assert_eq!(
            send("/maybe-claims", mark).await,
            (StatusCode::OK, "nobody".into())
        );
        assert_eq!(send("/claims", mark).await.0, StatusCode::UNAUTHORIZED);
    }

    #[tokio::test]
    async fn the_verified_principal_and_its_claims_are_extracted() {
        let token = BearerToken::new(
            "raw",
            Claims {
                subject: "alice".into(),
                ..Claims::default()
            },
        );
        let admit = |request: &mut Request<Body>| {
            let principal = Principal::from_bearer(Arc::new(token));
            request.extensions_mut().insert(principal);
        };
        assert_eq!(
            send("/claims", admit).await,
            (StatusCode::OK, "alice".into())
        );
        let custom = |request: &mut Request<Body>| {
            let principal = Principal::from_custom("mtls", "robot", ());
            request.extensions_mut().insert(principal);
        };
        assert_eq!(
            send("/required", custom).await,
            (StatusCode::OK, "robot".into())
        );
        // A principal of another kind is not a bearer token: the bearer
        // layer is missing from that route.
        assert_eq!(
            send("/claims", custom).await.0,
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
