//! Refusing requests whose session was revoked (break-glass), SPEC §5.
//!
//! [`SessionVersionLayer`] runs after the layer that authenticated the
//! request (`BearerLayer` or `SessionLayer`) and checks the session version
//! the verified [`Principal`] carries against the subject's current one,
//! through a [`SessionVersionValidator`]:
//!
//! - no version on the credential → passes (strict mode: 401);
//! - version older than the current one → 401 `invalid_token`, reason
//!   `session_revoked`;
//! - the current version cannot be learned (fetch or cache failure) → 503
//!   with `Retry-After`: never admitted, or an attacker could defeat
//!   break-glass by forcing a cache miss during an outage;
//! - no `Principal` and no auth layer ran → 500 naming the layers it needs
//!   in front of it (a mis-ordered stack). When an auth layer ran in optional
//!   mode and found no credentials, there is nothing to check: it passes.
//!
//! The raw bearer token (from [`Principal::bearer`]) is handed to the
//! fetcher, so a userinfo fetcher can ask the identity provider on the
//! caller's behalf; session-cookie requests have none.
//!
//! ```
//! use axum::{Router, routing::get};
//! use keystile_core::session_version::{
//!     FetchError, FetchRequest, MemorySessionVersionCache, SessionVersionValidator,
//! };
//! use keystile_middleware::session_version::SessionVersionLayer;
//!
//! // The source of truth; `UserinfoFetcher` (feature `userinfo`) asks an
//! // identity provider instead.
//! let current_version = |_: FetchRequest<'_>| async { Ok::<u64, FetchError>(1) };
//! let validator = SessionVersionValidator::new(MemorySessionVersionCache::new(), current_version);
//!
//! let app: Router = Router::new()
//!     .route("/api/me", get(|| async { "still current" }))
//!     // axum runs the layer added LAST first: add BearerLayer or
//!     // SessionLayer after this line so the Principal exists when it runs,
//!     // or stack both in one `tower::ServiceBuilder` (top to bottom), which
//!     // saves a boxed route per request.
//!     .route_layer(SessionVersionLayer::new(validator.clone()));
//!
//! // Break-glass: after bumping the version at the source of truth,
//! // `validator.invalidate(subject).await` drops the cached copy at once.
//! ```

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{Extensions, Request};
use keystile_core::identity::{AuthMethod, Principal};
use keystile_core::session_version::{FetchRequest, FreshnessError, SessionVersionValidator};
use keystile_core::{Reason, Rejection};
use tower_layer::Layer;
use tower_service::Service;

use crate::auth::{Realm, ResponseFuture};
use keystile_core::layers_seen::LayersSeen;

const NAME: &str = "SessionVersionLayer";

const MISORDERED: &str = "SessionVersionLayer found no verified identity: it needs BearerLayer or \
     SessionLayer in front of it (with axum, add them AFTER SessionVersionLayer: the layer added \
     last runs first)";

/// Checks the session version of the request's [`Principal`]; see the
/// [module documentation](self).
///
/// Its 401s to bearer and API-key requests challenge in the request's
/// [`Realm`], set on the auth layer in front.
#[derive(Clone)]
pub struct SessionVersionLayer {
    validator: SessionVersionValidator,
}

impl SessionVersionLayer {
    /// A layer checking with `validator`.
    pub fn new(validator: SessionVersionValidator) -> Self {
        Self { validator }
    }

    /// Refuses credentials without a session version (see
    /// [`SessionVersionValidator::strict`]); the cache and in-flight fetches
    /// stay shared with the validator this layer was built from.
    #[must_use]
    pub fn strict(mut self) -> Self {
        self.validator = self.validator.strict();
        self
    }

    /// The validator (e.g. to [`invalidate`](SessionVersionValidator::invalidate)).
    pub fn validator(&self) -> &SessionVersionValidator {
        &self.validator
    }
}

impl fmt::Debug for SessionVersionLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionVersionLayer")
            .field("validator", &self.validator)
            .finish()
    }
}

impl<S> Layer<S> for SessionVersionLayer {
    type Service = SessionVersion<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionVersion {
            inner,
            layer: Arc::new(self.clone()),
        }
    }
}

/// The service [`SessionVersionLayer`] wraps around a route.
#[derive(Clone)]
pub struct SessionVersion<S> {
    inner: S,
    // Shared: axum clones the service for every request.
    layer: Arc<SessionVersionLayer>,
}

impl<S> fmt::Debug for SessionVersion<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionVersion")
            .field("layer", &self.layer)
            .finish_non_exhaustive()
    }
}

impl<S> Service<Request<Body>> for SessionVersion<S>
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

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        // The clone is not ready; the instance polled ready is the one used.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = Arc::clone(&self.layer);
        Box::pin(async move {
            // The principal is read where it lies, in the request the
            // future owns: no copy of it.
            match check(&layer, request.extensions()).await {
                Ok(()) => inner.call(request).await,
                Err(rejection) => Ok(IntoResponse::into_response(rejection)),
            }
        })
    }
}

async fn check(layer: &SessionVersionLayer, extensions: &Extensions) -> Result<(), Rejection> {
    let Some(principal) = extensions.get::<Principal>() else {
        return if LayersSeen::any(extensions) {
            Ok(())
        } else {
            Err(Rejection::new(Reason::MissingLayer, NAME).with_detail(MISORDERED))
        };
    };
    let request = FetchRequest {
        subject: &principal.subject,
        bearer: principal.bearer().map(|token| token.token()),
    };
    match layer
        .validator
        .check(request, principal.session_version)
        .await
    {
        Ok(_) => Ok(()),
        Err(error) => Err(rejection_for(principal, error, Realm::of(extensions))),
    }
}

/// The response to a failed check of `principal`'s version.
fn rejection_for(
    principal: &Principal,
    error: FreshnessError,
    realm: Cow<'static, str>,
) -> Rejection {
    let rejection = match error {
        FreshnessError::Stale { .. } => Rejection::new(Reason::SessionRevoked, NAME),
        FreshnessError::Unversioned => Rejection::new(Reason::InvalidCredentials, NAME)
            .with_detail("the credential carries no session version and this route requires one"),
        _ => return Rejection::new(Reason::BackendUnavailable, NAME),
    };
    // A Bearer challenge is meaningful only to clients that sent a token.
    match principal.method() {
        AuthMethod::Session => rejection,
        _ => rejection.with_challenge(realm),
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http::StatusCode;
    use http_body_util::BodyExt;
    use keystile_core::bearer::{BearerToken, Claims};
    use keystile_core::session::SessionClaims;
    use keystile_core::session_version::{FetchError, MemorySessionVersionCache};
    use tower::{ServiceExt, service_fn};

    use super::*;

    const CURRENT: u64 = 3;

    fn layer(fetches: &Arc<AtomicUsize>) -> SessionVersionLayer {
        let fetches = Arc::clone(fetches);
        let fetcher = move |request: FetchRequest<'_>| {
            fetches.fetch_add(1, Ordering::SeqCst);
            let answer = match request.subject {
                "down" => Err(FetchError::Status(500)),
                _ => Ok(CURRENT),
            };
            async move { answer }
        };
        SessionVersionLayer::new(SessionVersionValidator::new(
            MemorySessionVersionCache::new(),
            fetcher,
        ))
    }

    fn bearer(subject: &str, sv: Option<u64>) -> Principal {
        let claims = Claims {
            subject: subject.to_owned(),
            session_version: sv,
            ..Claims::default()
        };
        Principal::from_bearer(Arc::new(BearerToken::new("raw-token", claims)))
    }

    fn session(subject: &str, sv: Option<u64>) -> Principal {
        Principal::from_session(Arc::new(SessionClaims {
            subject: subject.into(),
            actor: None,
            tenant: "acme".into(),
            session_version: sv,
            expires_at: 0,
        }))
    }

    async fn call(layer: &SessionVersionLayer, principal: Option<Principal>) -> Response {
        let service = layer.layer(service_fn(|_: Request<Body>| async {
            Ok::<_, Infallible>(Response::new(Body::from("inner")))
        }));
        let mut request = Request::get("/").body(Body::empty()).unwrap();
        if let Some(principal) = principal {
            LayersSeen::mark(request.extensions_mut(), AuthMethod::Bearer);
            request.extensions_mut().insert(principal);
        }
        service.oneshot(request).await.unwrap()
    }

    async fn body(response: Response) -> String {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn current_and_newer_versions_pass() {
        let fetches = Arc::new(AtomicUsize::new(0));
        let layer = layer(&fetches);
        for sv in [CURRENT, CURRENT + 1] {
            let response = call(&layer, Some(bearer("alice", Some(sv)))).await;
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(body(response).await, "inner");
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn stale_bearer_is_401_session_revoked_with_challenge() {
        let layer = layer(&Arc::new(AtomicUsize::new(0)));
        let response = call(&layer, Some(bearer("alice", Some(CURRENT - 1)))).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let challenge = response.headers()["www-authenticate"].to_str().unwrap();
        assert!(challenge.starts_with(r#"Bearer realm="api", error="invalid_token""#));
        assert!(challenge.contains("session revoked"));
        let text = body(response).await;
        assert!(text.contains(r#""reason":"session_revoked""#), "{text}");
        assert!(!text.contains("raw-token"));
    }

    #[tokio::test]
    async fn stale_session_cookie_is_401_without_bearer_challenge() {
        let layer = layer(&Arc::new(AtomicUsize::new(0)));
        let response = call(&layer, Some(session("alice", Some(1)))).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(response.headers().get("www-authenticate").is_none());
    }

    #[tokio::test]
    async fn unversioned_passes_unless_strict() {
        let fetches = Arc::new(AtomicUsize::new(0));
        let lenient = layer(&fetches);
        let response = call(&lenient, Some(bearer("alice", None))).await;
        assert_eq!(response.status(), StatusCode::OK);
        let strict = lenient.clone().strict();
        let response = call(&strict, Some(bearer("alice", None))).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(body(response).await.contains("invalid_credentials"));
        assert_eq!(fetches.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn fetch_failure_is_503_with_retry_after() {
        let layer = layer(&Arc::new(AtomicUsize::new(0)));
        let response = call(&layer, Some(bearer("down", Some(1)))).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(response.headers().contains_key("retry-after"));
        assert!(response.headers().get("www-authenticate").is_none());
    }

    #[tokio::test]
    async fn no_principal_and_no_auth_layer_is_500_naming_the_layers() {
        let layer = layer(&Arc::new(AtomicUsize::new(0)));
        let response = call(&layer, None).await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let text = body(response).await;
        assert!(text.contains("BearerLayer or SessionLayer"), "{text}");
    }

    #[tokio::test]
    async fn an_optional_auth_layer_without_credentials_passes_through() {
        let layer = layer(&Arc::new(AtomicUsize::new(0)));
        let service = layer.layer(service_fn(|_: Request<Body>| async {
            Ok::<_, Infallible>(Response::new(Body::from("anonymous")))
        }));
        let mut request = Request::get("/").body(Body::empty()).unwrap();
        LayersSeen::mark(request.extensions_mut(), AuthMethod::Bearer);
        let response = service.oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(body(response).await, "anonymous");
    }
}
