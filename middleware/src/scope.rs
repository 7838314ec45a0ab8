//! [`RequireScopeLayer`]: refuse requests whose identity lacks a scope.
//!
//! Works on the [`Principal`] any auth layer inserted (API key, bearer
//! token, session). Put it INSIDE the auth layer: with axum's
//! `route_layer`, add it first and the auth layer after it, so the auth
//! layer runs first.
//!
//! | request                                  | response |
//! |------------------------------------------|----------|
//! | principal has every needed scope (or `*`) | passed on |
//! | principal lacks one                      | 403, `Bearer realm="…", error="insufficient_scope", scope="…"` |
//! | no principal, an auth layer ran (optional mode) | 401, `Bearer realm="…"` |
//! | no auth layer ran at all                 | 500 naming the missing layer (a wiring mistake) |
//!
//! Challenges name the request's [`Realm`], set on the auth layer.
//!
//! ```
//! use std::sync::Arc;
//! use axum::{Router, routing::{get, post}};
//! use keystile_core::api_key::MemoryApiKeyStore;
//! use keystile_middleware::{api_key::{ApiKeyLayer, ApiKeys}, scope::RequireScopeLayer};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = Arc::new(MemoryApiKeyStore::new());
//! let reads = Router::new()
//!     .route("/reports", get(|| async { "reports" }))
//!     .route_layer(RequireScopeLayer::new("reports:read")?);
//! let writes = Router::new()
//!     .route("/reports", post(|| async { "created" }))
//!     .route_layer(RequireScopeLayer::new("reports:write")?);
//! let app: Router = reads.merge(writes).route_layer(ApiKeyLayer::new(ApiKeys::new(store)));
//! # Ok(()) }
//! ```

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use futures_util::future::{Either, Ready, ready};
use http::Request;
use keystile_core::identity::Principal;
use keystile_core::rejection::{Reason, Rejection};
use tower_layer::Layer;
use tower_service::Service;

use crate::auth::Realm;
use keystile_core::layers_seen::LayersSeen;

const SOURCE: &str = "RequireScopeLayer";

/// Requires scopes of the request's [`Principal`]; see the
/// [module docs](self).
#[derive(Clone)]
pub struct RequireScopeLayer {
    config: Arc<Config>,
}

#[derive(Clone)]
struct Config {
    needed: Vec<Cow<'static, str>>,
    // The RFC 6750 `scope` attribute: every needed scope, space-separated.
    scope_attr: Cow<'static, str>,
}

/// A scope requirement that cannot be checked: refused when the router is
/// built, never reachable from a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidScope {
    /// No scope was named: a requirement that admits everybody.
    #[error("RequireScopeLayer needs at least one scope")]
    NoScope,
    /// A scope is empty or contains whitespace (scopes are space-separated).
    #[error("RequireScopeLayer scopes must be non-empty and contain no whitespace")]
    Malformed,
}

impl RequireScopeLayer {
    /// Requires `scope`.
    pub fn new(scope: impl Into<Cow<'static, str>>) -> Result<Self, InvalidScope> {
        Self::all([scope])
    }

    /// Requires every scope in `scopes`; refuses an empty list and empty or
    /// whitespace-bearing scopes.
    pub fn all<I, T>(scopes: I) -> Result<Self, InvalidScope>
    where
        I: IntoIterator<Item = T>,
        T: Into<Cow<'static, str>>,
    {
        let needed: Vec<Cow<'static, str>> = scopes.into_iter().map(Into::into).collect();
        if needed.is_empty() {
            return Err(InvalidScope::NoScope);
        }
        if needed
            .iter()
            .any(|s| s.is_empty() || s.contains(char::is_whitespace))
        {
            return Err(InvalidScope::Malformed);
        }
        let scope_attr = match needed.as_slice() {
            [one] => one.clone(),
            many => Cow::Owned(many.join(" ")),
        };
        Ok(Self {
            config: Arc::new(Config { needed, scope_attr }),
        })
    }
}

impl Config {
    fn check(&self, req: &Request<Body>) -> Result<(), Rejection> {
        let extensions = req.extensions();
        match extensions.get::<Principal>() {
            Some(principal)
                if principal
                    .scopes
                    .allows_all(self.needed.iter().map(|s| &**s)) =>
            {
                Ok(())
            }
            Some(_) => Err(Rejection::new(Reason::InsufficientScope, SOURCE)
                .with_challenge(Realm::of(extensions))
                .with_scope(self.scope_attr.clone())),
            None if LayersSeen::any(extensions) => {
                Err(Rejection::new(Reason::MissingCredentials, SOURCE)
                    .with_challenge(Realm::of(extensions)))
            }
            None => Err(Rejection::new(Reason::MissingLayer, SOURCE).with_detail(
                "RequireScopeLayer needs an auth layer (ApiKeyLayer, BearerLayer or \
                 SessionLayer) to run before it: add the auth layer after it, e.g. \
                 `.route_layer(RequireScopeLayer::new(..)).route_layer(ApiKeyLayer::new(..))`",
            )),
        }
    }
}

impl fmt::Debug for RequireScopeLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireScopeLayer")
            .field("needed", &self.config.needed)
            .finish()
    }
}

impl<S> Layer<S> for RequireScopeLayer {
    type Service = RequireScope<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireScope {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The service [`RequireScopeLayer`] wraps around a route.
#[derive(Clone)]
pub struct RequireScope<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> fmt::Debug for RequireScope<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireScope").finish_non_exhaustive()
    }
}

impl<S> Service<Request<Body>> for RequireScope<S>
where
    S: Service<Request<Body>, Response = Response> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Either<S::Future, Ready<Result<Response, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        match self.config.check(&req) {
            Ok(()) => {
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                Either::Left(inner.call(req))
            }
            Err(rejection) => Either::Right(ready(Ok(IntoResponse::into_response(rejection)))),
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::routing::get;
    use http::StatusCode;
    use keystile_core::api_key::{KeyPrefix, NewApiKey};
    use keystile_core::random::OsRandom;
    use keystile_core::scopes::Scopes;
    use tower::ServiceExt;

    use super::*;
    use keystile_core::identity::AuthMethod;

    fn principal(scopes: &str) -> Principal {
        let (_, record) = NewApiKey::new(KeyPrefix::new("sk").unwrap(), "acme")
            .with_scopes(Scopes::parse(scopes))
            .mint(&OsRandom, 0)
            .unwrap();
        Principal::from_api_key(Arc::new(record))
    }

    async fn send(layer: RequireScopeLayer, who: Option<Principal>, mark: bool) -> Response {
        let app = Router::new()
            .route("/", get(|| async { "ok" }))
            .route_layer(layer);
        let mut req = Request::get("/").body(Body::empty()).unwrap();
        if mark {
            LayersSeen::mark(req.extensions_mut(), AuthMethod::ApiKey);
            req.extensions_mut().insert(Realm("r".into()));
        }
        if let Some(who) = who {
            req.extensions_mut().insert(who);
        }
        app.oneshot(req).await.unwrap()
    }

    fn challenge(r: &Response) -> &str {
        r.headers()["www-authenticate"].to_str().unwrap()
    }

    #[tokio::test]
    async fn exact_scope_and_wildcard_pass() {
        let layer = RequireScopeLayer::new("reports:read").unwrap();
        for scopes in ["reports:read", "a reports:read", "*"] {
            let r = send(layer.clone(), Some(principal(scopes)), true).await;
            assert_eq!(r.status(), StatusCode::OK, "{scopes}");
        }
    }

    #[tokio::test]
    async fn missing_scope_is_403_insufficient_scope_naming_it() {
        let layer = RequireScopeLayer::all(["reports:read", "reports:write"]).unwrap();
        let r = send(layer, Some(principal("reports:read")), true).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let c = challenge(&r);
        assert!(
            c.starts_with(r#"Bearer realm="r", error="insufficient_scope""#),
            "{c}"
        );
        assert!(c.ends_with(r#"scope="reports:read reports:write""#), "{c}");
    }

    #[tokio::test]
    async fn no_principal_after_an_auth_layer_is_401() {
        let r = send(RequireScopeLayer::new("a").unwrap(), None, true).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            challenge(&r),
            r#"Bearer realm="r""#,
            "the realm the auth layer set"
        );
    }

    #[tokio::test]
    async fn no_auth_layer_is_500_naming_it() {
        let r = send(RequireScopeLayer::new("a").unwrap(), None, false).await;
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = http_body_util::BodyExt::collect(r.into_body())
            .await
            .unwrap()
            .to_bytes();
        let body = String::from_utf8_lossy(&body);
        assert!(body.contains("ApiKeyLayer"), "{body}");
    }

    #[test]
    fn requirements_that_cannot_be_checked_are_refused_at_construction() {
        let none = RequireScopeLayer::all(Vec::<&'static str>::new());
        assert_eq!(none.unwrap_err(), InvalidScope::NoScope);
        for bad in ["", "reports read", "a\tb"] {
            let refused = RequireScopeLayer::new(bad);
            assert_eq!(refused.unwrap_err(), InvalidScope::Malformed, "{bad:?}");
        }
        assert!(RequireScopeLayer::all(["a", "b:c"]).is_ok());
    }
}
