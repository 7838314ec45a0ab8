//! [`RequestIdLayer`]: one id per request, checked when it comes from
//! outside, in the response, the access log and every keystile error body.
//!
//! The layer composes tower-http's `SetRequestIdLayer` and
//! `PropagateRequestIdLayer` (header `x-request-id`) with two things of
//! keystile's:
//!
//! - **Inbound validation.** A client's `X-Request-Id` is kept only when it
//!   is one header of 1–128 visible ASCII characters (no controls, spaces or
//!   non-ASCII bytes, which could forge log lines or break a log parser);
//!   otherwise a fresh id is made: 22 characters, base64url of 128 bits from
//!   the OS CSPRNG. [`always_generate`](RequestIdLayer::always_generate)
//!   ignores inbound ids altogether (a zero-trust edge).
//! - **Error bodies.** Every keystile problem+json response that passes
//!   through names the id (`"request_id": "…"`), so a user quoting an error
//!   can be found in the logs.
//!
//! Handlers read the id with the [`RequestId`] extractor; the access log
//! ([`AccessLog`](crate::access_log::AccessLog)) records it when
//! `TraceLayer` runs inside this layer.
//!
//! ```
//! use axum::{Router, routing::get};
//! use keystile_middleware::request_id::{RequestId, RequestIdLayer};
//!
//! async fn which(RequestId(id): RequestId) -> String {
//!     format!("you are request {id}")
//! }
//! let app: Router = Router::new().route("/", get(which)).layer(RequestIdLayer::new());
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{HeaderName, HeaderValue, Request};
use keystile_core::random::{OsRandom, SharedRandom};
use keystile_core::rejection::{PROBLEM_JSON, Reason, Rejection, RenderedRejection};
use pin_project_lite::pin_project;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestId, PropagateRequestIdLayer, RequestId as TowerRequestId,
    SetRequestId, SetRequestIdLayer,
};
use tower_layer::Layer;
use tower_service::Service;

/// The `X-Request-Id` header.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest inbound id kept.
pub const MAX_INBOUND_LEN: usize = 128;

/// Sets, checks and propagates request ids; see the [module docs](self).
#[derive(Clone)]
pub struct RequestIdLayer {
    always_generate: bool,
    random: SharedRandom,
}

impl Default for RequestIdLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for RequestIdLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestIdLayer")
            .field("always_generate", &self.always_generate)
            .finish_non_exhaustive()
    }
}

impl RequestIdLayer {
    /// Keeps valid inbound ids, makes the rest.
    pub fn new() -> Self {
        Self {
            always_generate: false,
            random: Arc::new(OsRandom),
        }
    }

    /// Ignores every inbound id and makes a fresh one.
    #[must_use]
    pub fn always_generate(mut self) -> Self {
        self.always_generate = true;
        self
    }

    /// Draws ids from `random` (tests; the default is the OS CSPRNG).
    #[must_use]
    pub fn random(mut self, random: SharedRandom) -> Self {
        self.random = random;
        self
    }
}

/// Whether an inbound id is kept: 1–128 visible ASCII characters.
pub fn is_acceptable(id: &[u8]) -> bool {
    (1..=MAX_INBOUND_LEN).contains(&id.len()) && id.iter().all(u8::is_ascii_graphic)
}

/// The stack [`RequestIdLayer`] builds around a service.
pub type RequestIdService<S> =
    CheckInbound<SetRequestId<PropagateRequestId<StampRequestId<S>>, MakeId>>;

impl<S> Layer<S> for RequestIdLayer {
    type Service = RequestIdService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        let stamped = StampRequestId { inner };
        let propagated = PropagateRequestIdLayer::new(X_REQUEST_ID).layer(stamped);
        let make = MakeId {
            random: Arc::clone(&self.random),
        };
        CheckInbound {
            inner: SetRequestIdLayer::new(X_REQUEST_ID, make).layer(propagated),
            always_generate: self.always_generate,
        }
    }
}

/// Makes ids: 128 random bits, base64url (22 characters).
#[derive(Clone)]
pub struct MakeId {
    random: SharedRandom,
}

impl MakeRequestId for MakeId {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<TowerRequestId> {
        // Without randomness the request simply has no id: ids identify,
        // they do not protect anything.
        let mut bytes = [0u8; 16];
        self.random.fill(&mut bytes).ok()?;
        let id = keystile_core::encoding::encode(bytes);
        HeaderValue::from_str(&id).ok().map(TowerRequestId::new)
    }
}

/// Drops inbound ids that are not [acceptable](is_acceptable) (or all of
/// them), so the next service makes a fresh one.
#[derive(Clone, Debug)]
pub struct CheckInbound<S> {
    inner: S,
    always_generate: bool,
}

impl<S, B> Service<Request<B>> for CheckInbound<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let mut ids = request.headers().get_all(X_REQUEST_ID).iter();
        let keep = match (ids.next(), ids.next()) {
            (Some(id), None) => !self.always_generate && is_acceptable(id.as_bytes()),
            (None, _) => true,
            (Some(_), Some(_)) => false,
        };
        if !keep {
            request.headers_mut().remove(X_REQUEST_ID);
        }
        self.inner.call(request)
    }
}

/// Names the request id in the body of every keystile rejection.
#[derive(Clone, Debug)]
pub struct StampRequestId<S> {
    inner: S,
}

/// The response body of [`StampRequestId`]: the inner service's, or a
/// rejection body rendered again with the request id (no boxing on the way
/// through).
pub type StampedBody<B> = http_body_util::Either<B, Body>;

impl<S, B, ResBody> Service<Request<B>> for StampRequestId<S>
where
    S: Service<Request<B>, Response = http::Response<ResBody>>,
    ResBody: http_body::Body,
{
    type Response = http::Response<StampedBody<ResBody>>;
    type Error = S::Error;
    type Future = StampFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let id = request
            .extensions()
            .get::<TowerRequestId>()
            .map(|id| id.header_value().clone());
        StampFuture {
            future: self.inner.call(request),
            id,
        }
    }
}

pin_project! {
    /// The response future of [`StampRequestId`].
    pub struct StampFuture<F> {
        #[pin]
        future: F,
        id: Option<HeaderValue>,
    }
}

impl<F, E, ResBody> Future for StampFuture<F>
where
    F: Future<Output = Result<http::Response<ResBody>, E>>,
    ResBody: http_body::Body,
{
    type Output = Result<http::Response<StampedBody<ResBody>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = match this.future.poll(cx) {
            Poll::Ready(Ok(response)) => response,
            Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
            Poll::Pending => return Poll::Pending,
        };
        let rendered = response.extensions_mut().remove::<RenderedRejection>();
        let stamped = match (this.id.take(), rendered) {
            (Some(id), Some(rendered)) => restamped(&response, rendered, &id),
            _ => None,
        };
        Poll::Ready(Ok(match stamped {
            Some(body) => {
                let (mut parts, _) = response.into_parts();
                parts.headers.remove(http::header::CONTENT_LENGTH);
                http::Response::from_parts(parts, http_body_util::Either::Right(Body::from(body)))
            }
            None => response.map(http_body_util::Either::Left),
        }))
    }
}

/// The problem body rendered again with the request id, but only while the
/// response still carries exactly the body `rendered` was rendered as: a
/// layer in between that compressed it, or replaced it (to hide a detail,
/// say), is left alone.
fn restamped<B: http_body::Body>(
    response: &http::Response<B>,
    rendered: RenderedRejection,
    id: &HeaderValue,
) -> Option<String> {
    use http::header::{CONTENT_ENCODING, CONTENT_TYPE};

    let headers = response.headers();
    let untouched = !headers.contains_key(CONTENT_ENCODING)
        && headers
            .get(CONTENT_TYPE)
            .is_some_and(|t| t.as_bytes() == PROBLEM_JSON.as_bytes())
        && response.body().size_hint().exact() == u64::try_from(rendered.body_len).ok();
    let id = id.to_str().ok()?;
    untouched.then(|| rendered.rejection.with_request_id(id).problem_body())
}

/// The request's id, for handlers behind [`RequestIdLayer`]. As an
/// extractor it is a 500 naming the layer when the route has none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<TowerRequestId>()
            .and_then(|id| id.header_value().to_str().ok())
            .map(|id| Self(id.to_owned()))
            .ok_or_else(|| {
                IntoResponse::into_response(
                    Rejection::new(Reason::MissingLayer, "RequestId")
                        .with_detail("RequestId needs RequestIdLayer on the route"),
                )
                .into_response()
            })
    }
}

#[cfg(test)]
mod tests {
    use tower::ServiceExt as _;

    use super::*;

    async fn answer(layer: RequestIdLayer, inbound: &[&[u8]]) -> (String, String) {
        let service = layer.layer(tower::service_fn(|request: Request<Body>| async move {
            let seen = request
                .headers()
                .get(X_REQUEST_ID)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .unwrap_or_default();
            Ok::<_, std::convert::Infallible>(Response::new(Body::from(seen)))
        }));
        let mut builder = Request::get("/");
        for id in inbound {
            builder = builder.header(X_REQUEST_ID, HeaderValue::from_bytes(id).unwrap());
        }
        let response = service
            .oneshot(builder.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let echoed = response.headers()[X_REQUEST_ID]
            .to_str()
            .unwrap()
            .to_owned();
        let body = axum::body::to_bytes(Body::new(response.into_body()), 1024)
            .await
            .unwrap();
        (String::from_utf8(body.to_vec()).unwrap(), echoed)
    }

    fn generated(id: &str) -> bool {
        id.len() == 22
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    }

    #[tokio::test]
    async fn valid_inbound_ids_are_kept_and_propagated() {
        let long = "a".repeat(128);
        for id in ["abc-123", "x", long.as_str(), "!~#"] {
            let (seen, echoed) = answer(RequestIdLayer::new(), &[id.as_bytes()]).await;
            assert_eq!((seen.as_str(), echoed.as_str()), (id, id));
        }
    }

    #[tokio::test]
    async fn anything_else_is_replaced_by_a_fresh_id() {
        let too_long = "a".repeat(129);
        for ids in [
            vec![too_long.as_bytes()],
            vec![b"has space".as_slice()],
            vec![b"tab\there".as_slice()],
            vec![b"caf\xc3\xa9".as_slice()],
            vec![b"".as_slice()],
            vec![b"one".as_slice(), b"two".as_slice()],
        ] {
            let (seen, echoed) = answer(RequestIdLayer::new(), &ids).await;
            assert!(generated(&seen), "{ids:?} -> {seen}");
            assert_eq!(seen, echoed);
        }
        let (seen, _) = answer(RequestIdLayer::new().always_generate(), &[b"fine"]).await;
        assert!(generated(&seen), "{seen}");
    }

    #[tokio::test]
    async fn only_an_untouched_problem_body_is_stamped() {
        async fn body_with(change: fn(&mut Response)) -> String {
            let service =
                RequestIdLayer::new().layer(tower::service_fn(move |_: Request<Body>| {
                    let mut response = IntoResponse::into_response(Rejection::new(
                        Reason::MissingCredentials,
                        "test",
                    ));
                    change(&mut response);
                    async move { Ok::<_, std::convert::Infallible>(response) }
                }));
            let request = Request::get("/")
                .header(X_REQUEST_ID, "req-1")
                .body(Body::empty())
                .unwrap();
            let response = service.oneshot(request).await.unwrap();
            let bytes = axum::body::to_bytes(Body::new(response.into_body()), 4096)
                .await
                .unwrap();
            String::from_utf8(bytes.to_vec()).unwrap()
        }
        assert!(body_with(|_| {}).await.contains(r#""request_id":"req-1""#));
        let hidden = body_with(|r| *r.body_mut() = Body::from(r#"{"reason":"x"}"#)).await;
        assert_eq!(hidden, r#"{"reason":"x"}"#, "a replaced body is left alone");
        let compressed = body_with(|r| {
            r.headers_mut().insert(
                http::header::CONTENT_ENCODING,
                HeaderValue::from_static("gzip"),
            );
        })
        .await;
        assert!(
            !compressed.contains("req-1"),
            "an encoded body is left alone"
        );
    }

    #[test]
    fn acceptable_ids() {
        assert!(is_acceptable(b"a"));
        assert!(!is_acceptable(b""));
        assert!(!is_acceptable(b"a\x7f"));
        assert!(!is_acceptable(&[b'a'; 129]));
    }
}
