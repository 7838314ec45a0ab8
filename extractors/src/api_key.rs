//! The [`ApiKey`] extractor: the record of the API key that authenticated
//! the request.
//!
//! Needs [`ApiKeyLayer`](keystile_middleware::ApiKeyLayer) on the route.
//! `Option<ApiKey>` is `None` when the layer ran in optional mode and no key
//! was presented (or another credential authenticated the request). Used
//! without the layer, both forms answer 500 naming `ApiKeyLayer`.
//!
//! ```
//! use std::sync::Arc;
//! use axum::{Router, routing::get};
//! use keystile_core::api_key::MemoryApiKeyStore;
//! use keystile_extractors::ApiKey;
//! use keystile_middleware::{ApiKeyLayer, ApiKeys};
//!
//! async fn whoami(key: ApiKey) -> String {
//!     format!("key {} ({}) of {}", key.id, key.prefix, key.owner)
//! }
//!
//! async fn greeting(key: Option<ApiKey>) -> String {
//!     key.map_or_else(|| "hello stranger".to_owned(), |k| format!("hello {}", k.owner))
//! }
//!
//! let store = Arc::new(MemoryApiKeyStore::new());
//! let app: Router = Router::new()
//!     .route("/whoami", get(whoami))
//!     .route_layer(ApiKeyLayer::new(ApiKeys::new(store.clone())))
//!     .merge(
//!         Router::new()
//!             .route("/", get(greeting))
//!             .route_layer(ApiKeyLayer::new(ApiKeys::new(store)).optional()),
//!     );
//! ```

use std::ops::Deref;
use std::sync::Arc;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use http::request::Parts;
use keystile_core::api_key::ApiKeyRecord;
use keystile_core::identity;
use keystile_core::identity::AuthMethod;
use keystile_core::layers_seen::LayersSeen;

use keystile_core::rejection::Rejection;

/// The stored record of the API key that authenticated the request.
#[derive(Debug, Clone)]
pub struct ApiKey(pub Arc<ApiKeyRecord>);

impl Deref for ApiKey {
    type Target = ApiKeyRecord;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ApiKey {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        <Self as OptionalFromRequestParts<S>>::from_request_parts(parts, state)
            .await?
            .ok_or_else(|| Rejection::unauthenticated("ApiKey"))
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for ApiKey {
    type Rejection = Rejection;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        let record = parts
            .extensions
            .get::<identity::Principal>()
            .and_then(|p| p.api_key());
        match record {
            Some(record) => Ok(Some(Self(record.clone()))),
            None if LayersSeen::ran(&parts.extensions, AuthMethod::ApiKey) => Ok(None),
            None => Err(Rejection::missing_layer(
                "ApiKey",
                LayersSeen::layer_name(AuthMethod::ApiKey),
            )),
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
    use keystile_core::api_key::{KeyPrefix, NewApiKey};
    use keystile_core::random::OsRandom;
    use tower::ServiceExt;

    async fn required(key: ApiKey) -> String {
        key.owner.to_string()
    }

    async fn optional(key: Option<ApiKey>) -> String {
        key.map_or_else(|| "nobody".to_owned(), |k| k.owner.to_string())
    }

    fn app() -> Router {
        Router::new()
            .route("/required", get(required))
            .route("/optional", get(optional))
    }

    async fn send(path: &str, mark: bool, with_key: bool) -> (StatusCode, String) {
        let mut req = Request::get(path).body(Body::empty()).unwrap();
        if mark {
            LayersSeen::mark(req.extensions_mut(), AuthMethod::ApiKey);
        }
        if with_key {
            let (_, record) = NewApiKey::new(KeyPrefix::new("sk").unwrap(), "acme")
                .mint(&OsRandom, 0)
                .unwrap();
            let principal = identity::Principal::from_api_key(Arc::new(record));
            req.extensions_mut().insert(principal);
        }
        let r = app().oneshot(req).await.unwrap();
        let status = r.status();
        let body = r.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn yields_the_record_the_layer_inserted() {
        assert_eq!(
            send("/required", true, true).await,
            (StatusCode::OK, "acme".into())
        );
        assert_eq!(
            send("/optional", true, true).await,
            (StatusCode::OK, "acme".into())
        );
    }

    #[tokio::test]
    async fn layer_ran_without_a_key() {
        assert_eq!(
            send("/optional", true, false).await,
            (StatusCode::OK, "nobody".into())
        );
        assert_eq!(
            send("/required", true, false).await.0,
            StatusCode::UNAUTHORIZED
        );
    }

    #[tokio::test]
    async fn without_the_layer_is_500_naming_api_key_layer() {
        for path in ["/required", "/optional"] {
            let (status, body) = send(path, false, false).await;
            assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
            assert!(body.contains("ApiKeyLayer"), "{body}");
        }
    }
}
