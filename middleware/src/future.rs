//! The response future the auth layers share.
//!
//! A layer that can decide inside `call` — the credential checked against an
//! in-memory store or a pre-keyed verifier — returns the inner service's own
//! future (no allocation) or its rejection; only a decision that must wait on
//! a backend is boxed. `ApiKeyLayer`, `BearerLayer` and `SessionVersionLayer`
//! all return this type.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use pin_project_lite::pin_project;

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
