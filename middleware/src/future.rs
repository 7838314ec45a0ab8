//! The response future the auth layers share.
//!
//! A layer that can decide inside `call` — the credential checked against an
//! in-memory store or a pre-keyed verifier — returns the inner service's own
//! future (no allocation) or its rejection; only a decision that must wait on
//! a backend is boxed. `ApiKeyLayer`, `BearerLayer` and `SessionVersionLayer`
//! all return this type. `ApiKeyLayer` and `BearerLayer` also share their
//! `call`, defined here.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, Request, StatusCode};
use keystile_core::identity::Principal;
use keystile_core::rejection::Rejection;
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::layers_seen::{AuthLayer, LayersSeen};
use crate::response::rejection_response;

type Pending<E> = Pin<Box<dyn Future<Output = Result<Response, E>> + Send>>;

pin_project! {
    /// The response future of keystile's auth layers: the inner service's
    /// future when the request was decided inside `call`, a ready rejection,
    /// or one boxed future when the decision waits on a backend.
    pub struct ResponseFuture<F, E> {
        #[pin]
        state: State<F, E>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, E> {
        Inner { #[pin] future: F },
        Rejected { response: Option<Response> },
        Pending { future: Pending<E> },
    }
}

impl<F, E> ResponseFuture<F, E> {
    /// The request was admitted inside `call`: the inner service's future.
    pub(crate) fn inner(future: F) -> Self {
        Self {
            state: State::Inner { future },
        }
    }

    /// The request was refused inside `call`.
    pub(crate) fn rejected(response: Response) -> Self {
        Self {
            state: State::Rejected {
                response: Some(response),
            },
        }
    }

    /// The decision waits on a backend.
    pub(crate) fn pending(
        future: impl Future<Output = Result<Response, E>> + Send + 'static,
    ) -> Self {
        Self {
            state: State::Pending {
                future: Box::pin(future),
            },
        }
    }
}

impl<F, E> Future for ResponseFuture<F, E>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Inner { future } => future.poll(cx),
            // `take` is `Some` on the only poll: a ready future is not
            // polled again, and a second poll gets an empty 500 rather than a
            // panic.
            StateProj::Rejected { response } => Poll::Ready(Ok(response
                .take()
                .unwrap_or_else(|| StatusCode::INTERNAL_SERVER_ERROR.into_response()))),
            StateProj::Pending { future } => future.as_mut().poll(cx),
        }
    }
}

impl<F, E> fmt::Debug for ResponseFuture<F, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

/// A layer's credential check, in the two forms its `call` uses.
pub(crate) trait Authenticate: Send + Sync + 'static {
    /// The layer, for [`LayersSeen`].
    const LAYER: AuthLayer;

    /// `Ok(None)` when no credential was presented (optional mode), `Err`
    /// with the rejection to send otherwise.
    fn authenticate(
        &self,
        headers: &HeaderMap,
    ) -> impl Future<Output = Result<Option<Principal>, Rejection>> + Send;

    /// [`Self::authenticate`] without waiting: `None` when the answer needs
    /// a backend.
    fn authenticate_now(&self, headers: &HeaderMap)
    -> Option<Result<Option<Principal>, Rejection>>;
}

/// An auth layer's `call`: decided at once when it can be (the inner
/// service's own future, unboxed), else one boxed future that waits for the
/// backend and then calls the inner service.
pub(crate) fn call_authenticated<S, A>(
    inner: &mut S,
    config: &Arc<A>,
    mut req: Request<Body>,
) -> ResponseFuture<S::Future, S::Error>
where
    S: Service<Request<Body>, Response = Response> + Clone + Send + 'static,
    S::Future: Send,
    A: Authenticate,
{
    match config.authenticate_now(req.headers()) {
        Some(Ok(found)) => {
            LayersSeen::record(req.extensions_mut(), A::LAYER, found);
            ResponseFuture::inner(inner.call(req))
        }
        Some(Err(rejection)) => ResponseFuture::rejected(rejection_response(rejection)),
        None => {
            LayersSeen::mark(req.extensions_mut(), A::LAYER);
            // The clone takes over readiness from the instance that was
            // polled ready (tower's contract); the clone left behind is
            // polled next time.
            let clone = inner.clone();
            let mut inner = std::mem::replace(inner, clone);
            let config = Arc::clone(config);
            ResponseFuture::pending(async move {
                match config.authenticate(req.headers()).await {
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
}
