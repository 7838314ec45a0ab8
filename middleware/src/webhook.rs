//! [`WebhookLayer`]: verifies an inbound webhook's signature over its raw
//! body before the handler runs, and refuses replays.
//!
//! The layer reads the body (up to [`max_body`](WebhookLayer::max_body),
//! default 1 MiB), checks it with a
//! [`WebhookScheme`] (GitHub, Slack, Stripe, Standard Webhooks, a generic
//! HMAC header, or yours), records the delivery in a
//! [`ReplayStore`](keystile_core::replay::ReplayStore) when one is given,
//! and hands the handler
//! the same bytes with a [`VerifiedWebhook`] extension.
//!
//! | request | response |
//! |---|---|
//! | signature verifies, delivery new | the handler's |
//! | signature missing, malformed or wrong; timestamp stale | 401 problem+json naming the failed check, never the body |
//! | the same delivery again within the replay window | 401 problem+json (`already received`) |
//! | body larger than the cap | 413 |
//! | replay store down | 503: fail closed |
//!
//! ```
//! use axum::{Router, routing::post};
//! use keystile_core::replay::MemoryReplayStore;
//! use keystile_core::webhook::GitHub;
//! use keystile_middleware::webhook::WebhookLayer;
//!
//! let secret = std::env::var("GITHUB_WEBHOOK_SECRET").unwrap_or_else(|_| "change-me".into());
//! let app: Router = Router::new()
//!     .route("/hooks/github", post(|body: String| async move { format!("{} bytes", body.len()) }))
//!     .route_layer(
//!         WebhookLayer::new(GitHub::new([secret.as_bytes()]))
//!             .replay(std::sync::Arc::new(MemoryReplayStore::new())),
//!     );
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Limited};
use keystile_core::clock::{SharedClock, SystemClock};
use keystile_core::rejection::{Reason, Rejection};
use keystile_core::replay::{Redemption, SharedReplayStore};
use keystile_core::webhook::{DEFAULT_TOLERANCE, Delivery, WebhookError, WebhookScheme};
use tower_layer::Layer;
use tower_service::Service;

const SOURCE: &str = "WebhookLayer";

/// The largest body read unless told otherwise.
pub const DEFAULT_MAX_WEBHOOK_BODY: usize = 1024 * 1024;

/// What the handler learns of a verified delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedWebhook(pub Delivery);

/// Verifies webhooks in front of a route; see the [module docs](self).
#[derive(Clone)]
pub struct WebhookLayer {
    config: Arc<Config>,
}

#[derive(Clone)]
struct Config {
    scheme: Arc<dyn WebhookScheme>,
    replay: Option<SharedReplayStore>,
    window: Duration,
    max_body: usize,
    clock: SharedClock,
}

impl WebhookLayer {
    /// Verifies with `scheme`; no replay defence until
    /// [`replay`](Self::replay) is set.
    pub fn new(scheme: impl WebhookScheme) -> Self {
        Self {
            config: Arc::new(Config {
                scheme: Arc::new(scheme),
                replay: None,
                window: DEFAULT_TOLERANCE,
                max_body: DEFAULT_MAX_WEBHOOK_BODY,
                clock: SystemClock::shared(),
            }),
        }
    }

    /// Records every delivery in `store` for the replay window, and
    /// refuses one already there.
    #[must_use]
    pub fn replay(mut self, store: SharedReplayStore) -> Self {
        Arc::make_mut(&mut self.config).replay = Some(store);
        self
    }

    /// How long past its signed timestamp (or its arrival) a delivery is
    /// remembered (default 300 s, the schemes' tolerance: an older one is
    /// refused as stale anyway).
    #[must_use]
    pub fn window(mut self, window: Duration) -> Self {
        Arc::make_mut(&mut self.config).window = window;
        self
    }

    /// Reads at most `bytes` of body (default 1 MiB).
    #[must_use]
    pub fn max_body(mut self, bytes: usize) -> Self {
        Arc::make_mut(&mut self.config).max_body = bytes;
        self
    }

    /// Reads time from `clock`.
    #[must_use]
    pub fn clock(mut self, clock: SharedClock) -> Self {
        Arc::make_mut(&mut self.config).clock = clock;
        self
    }
}

impl fmt::Debug for WebhookLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookLayer")
            .field("replay", &self.config.replay.is_some())
            .field("window", &self.config.window)
            .field("max_body", &self.config.max_body)
            .finish_non_exhaustive()
    }
}

fn refusal(error: &WebhookError) -> Rejection {
    let detail = match error {
        WebhookError::Missing(_) => "the signature headers are missing",
        WebhookError::Malformed(_) => "a signature header is malformed",
        WebhookError::BadSignature => "the signature does not match",
        WebhookError::Stale => "the signed timestamp is outside the tolerance",
        _ => "the delivery could not be verified",
    };
    Rejection::new(Reason::InvalidCredentials, SOURCE).with_detail(detail)
}

impl Config {
    async fn check(
        &self,
        parts: &http::request::Parts,
        body: &[u8],
    ) -> Result<Delivery, Rejection> {
        let now = self.clock.unix_seconds();
        let delivery = self
            .scheme
            .verify(&parts.headers, body, now)
            .map_err(|error| {
                tracing::info!(target: "keystile::webhook", %error, "webhook refused");
                refusal(&error)
            })?;
        if let Some(store) = &self.replay {
            // Remembered past the last moment the scheme would still accept
            // it: the window, or the tolerance when that is longer.
            let from = delivery.timestamp.unwrap_or(now).max(now);
            let keep = self.window.max(self.scheme.tolerance()).as_secs();
            let expires_at = from.saturating_add(keep).saturating_add(1);
            let recorded = store
                .redeem(&delivery.id, expires_at)
                .await
                .map_err(|error| {
                    tracing::warn!(target: "keystile::webhook", %error, "replay store failed");
                    Rejection::new(Reason::BackendUnavailable, SOURCE)
                })?;
            if recorded == Redemption::AlreadyUsed {
                tracing::info!(target: "keystile::webhook", "webhook refused: replayed delivery");
                return Err(Rejection::new(Reason::InvalidCredentials, SOURCE)
                    .with_detail("this delivery was already received"));
            }
        }
        Ok(delivery)
    }
}

impl<S> Layer<S> for WebhookLayer {
    type Service = Webhook<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Webhook {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}

/// The service [`WebhookLayer`] wraps around a route.
#[derive(Clone)]
pub struct Webhook<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> fmt::Debug for Webhook<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Webhook").finish_non_exhaustive()
    }
}

impl<S> Service<Request<Body>> for Webhook<S>
where
    S: Service<Request<Body>, Response = Response> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let config = Arc::clone(&self.config);
        Box::pin(async move {
            let (mut parts, body) = request.into_parts();
            let bytes = match Limited::new(body, config.max_body).collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(_) => {
                    return Ok(IntoResponse::into_response(
                        Rejection::new(Reason::Malformed, SOURCE)
                            .with_status(StatusCode::PAYLOAD_TOO_LARGE)
                            .with_detail(
                                "the body is larger than this endpoint reads, or was cut off",
                            ),
                    ));
                }
            };
            match config.check(&parts, &bytes).await {
                Ok(delivery) => {
                    parts.extensions.insert(VerifiedWebhook(delivery));
                    inner
                        .call(Request::from_parts(parts, Body::from(bytes)))
                        .await
                }
                Err(rejection) => Ok(IntoResponse::into_response(rejection)),
            }
        })
    }
}
