//! [`SignedUrlLayer`]: admits only requests whose own URL carries a valid
//! signature (a magic link, a download link), optionally once.
//!
//! Behind a proxy the server does not see the URL the client used, so the
//! layer is given the external origin (`https://app.example.test`) and
//! verifies that origin plus the request's path and query. The verified
//! link's [`VerifiedUrl`] is inserted for the handler.
//!
//! | request | response |
//! |---|---|
//! | signature valid (and, single-use, not used before) | the handler's |
//! | no `sig`, or a signature for another URL, purpose or key | 401 problem+json `invalid_credentials` |
//! | expired | 401 `expired` |
//! | single-use link used before | 410 `already_used` |
//! | replay store down | 503: fail closed |
//!
//! ```
//! use std::sync::Arc;
//! use axum::{Router, routing::get};
//! use keystile_core::codec::Purpose;
//! use keystile_core::keys::Keyring;
//! use keystile_core::replay::MemoryReplayStore;
//! use keystile_core::signed_url::UrlSigner;
//! use keystile_middleware::signed_url::SignedUrlLayer;
//!
//! let signer = UrlSigner::new(Keyring::generate().unwrap(), Purpose::new("magic-link"));
//! let app: Router = Router::new()
//!     .route("/magic", get(|| async { "signed in" }))
//!     .route_layer(
//!         SignedUrlLayer::new(signer, "https://app.example.test")
//!             .single_use(Arc::new(MemoryReplayStore::new())),
//!     );
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::response::{IntoResponse, Response};
use http::Request;
use keystile_core::rejection::{Reason, Rejection};
use keystile_core::replay::SharedReplayStore;
use keystile_core::signed_url::{SignedUrlError, UrlSigner, VerifiedUrl};
use tower_layer::Layer;
use tower_service::Service;

const SOURCE: &str = "SignedUrlLayer";

/// Verifies signed URLs in front of a route; see the [module docs](self).
#[derive(Clone)]
pub struct SignedUrlLayer {
    config: Arc<Config>,
}

#[derive(Clone)]
struct Config {
    signer: UrlSigner,
    origin: String,
    single_use: Option<SharedReplayStore>,
}

impl SignedUrlLayer {
    /// Verifies with `signer` the URL `origin` + the request's path and
    /// query (`origin` as the client sees it: scheme, host, port).
    pub fn new(signer: UrlSigner, origin: impl Into<String>) -> Self {
        let origin = origin.into().trim_end_matches('/').to_owned();
        Self {
            config: Arc::new(Config {
                signer,
                origin,
                single_use: None,
            }),
        }
    }

    /// Admits each link once, burning its nonce in `store` (shared by
    /// every instance that must agree).
    #[must_use]
    pub fn single_use(mut self, store: SharedReplayStore) -> Self {
        Arc::make_mut(&mut self.config).single_use = Some(store);
        self
    }
}

impl fmt::Debug for SignedUrlLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedUrlLayer")
            .field("origin", &self.config.origin)
            .field("single_use", &self.config.single_use.is_some())
            .finish_non_exhaustive()
    }
}

fn rejection(error: SignedUrlError) -> Rejection {
    let reason = match error {
        SignedUrlError::Expired => Reason::Expired,
        SignedUrlError::AlreadyUsed => Reason::AlreadyUsed,
        SignedUrlError::Unavailable => Reason::BackendUnavailable,
        _ => Reason::InvalidCredentials,
    };
    Rejection::new(reason, SOURCE).with_detail(error.to_string())
}

impl Config {
    /// The URL the client requested: the external origin, then the path
    /// and query.
    fn url_of<B>(&self, request: &Request<B>) -> String {
        let path = request
            .uri()
            .path_and_query()
            .map_or("/", |path| path.as_str());
        format!("{}{path}", self.origin)
    }

    async fn check(&self, url: &str) -> Result<VerifiedUrl, Rejection> {
        match &self.single_use {
            Some(store) => self.signer.redeem(url, store.as_ref()).await,
            None => self.signer.verify(url),
        }
        .map_err(rejection)
    }
}

impl<S> Layer<S> for SignedUrlLayer {
    type Service = SignedUrl<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SignedUrl {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}

/// The service [`SignedUrlLayer`] wraps around a route.
#[derive(Clone)]
pub struct SignedUrl<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> fmt::Debug for SignedUrl<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedUrl").finish_non_exhaustive()
    }
}

impl<S, B> Service<Request<B>> for SignedUrl<S>
where
    S: Service<Request<B>, Response = Response> + Clone + Send + 'static,
    S::Future: Send,
    B: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let config = Arc::clone(&self.config);
        let url = config.url_of(&request);
        Box::pin(async move {
            match config.check(&url).await {
                Ok(verified) => {
                    request.extensions_mut().insert(verified);
                    inner.call(request).await
                }
                Err(rejection) => Ok(IntoResponse::into_response(rejection)),
            }
        })
    }
}
