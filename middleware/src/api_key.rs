//! [`ApiKeyLayer`]: authenticate requests by API key.
//!
//! For each request the layer:
//!
//! 1. reads the key from `Authorization: Bearer <key>` (scheme word in any
//!    case) or else `X-API-Key` — Authorization wins when both are present,
//!    empty values are absent (see [`credentials`](crate::credentials));
//! 2. checks the key's grammar and checksum ([`parse`]), so typos and
//!    invented keys never reach the store;
//! 3. looks its SHA-256 digest up in the [`ApiKeyStore`], then refuses
//!    expired and revoked records exactly like unknown ones;
//! 4. inserts a [`Principal`] carrying the record (read it with the
//!    `ApiKey` or `Principal` extractors) and notes the use for
//!    [`LastUsedRecorder`] when one is configured.
//!
//! | request                                   | response |
//! |-------------------------------------------|----------|
//! | no key                                    | 401, `WWW-Authenticate: Bearer realm="…"` (no `error`) — or passed through with [`ApiKeyLayer::optional`] |
//! | malformed header, bad checksum, unknown, expired or revoked key | 401, `Bearer realm="…", error="invalid_token"` |
//! | store failure or timeout                  | 503 with `Retry-After`: fail closed |
//!
//! Bodies are `application/problem+json` and never echo the key. Add the
//! layer with `route_layer` so requests to unknown routes stay 404 instead
//! of becoming 401.
//!
//! ```
//! use std::sync::Arc;
//! use axum::{Router, routing::get};
//! use keystile_core::api_key::MemoryApiKeyStore;
//! use keystile_core::identity::Principal;
//! use keystile_middleware::api_key::ApiKeyLayer;
//!
//! async fn whoami(axum::Extension(who): axum::Extension<Principal>) -> String {
//!     who.subject.to_string()
//! }
//!
//! let store = Arc::new(MemoryApiKeyStore::new());
//! let app: Router = Router::new()
//!     .route("/whoami", get(whoami))
//!     .route_layer(ApiKeyLayer::new(store).with_realm("reports"));
//! ```

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::response::Response;
use http::{HeaderMap, Request};
use keystile_core::api_key::{ApiKeyRecord, ApiKeyStore, KeyDigest, LastUsedRecorder, parse};
use keystile_core::clock::{SharedClock, SystemClock};
use keystile_core::identity::Principal;
use keystile_core::rejection::{Reason, Rejection};
use keystile_core::store::StoreError;
use tower_layer::Layer;
use tower_service::Service;

use crate::credentials::api_key;
use crate::future::{Authenticate, call_authenticated};
use crate::layers_seen::AuthLayer;

/// The realm in `WWW-Authenticate` challenges unless configured.
pub const DEFAULT_REALM: &str = "api";

const SOURCE: &str = "ApiKeyLayer";

/// Authenticates requests by API key; see the [module docs](self).
#[derive(Clone)]
pub struct ApiKeyLayer {
    config: Arc<Config>,
}

#[derive(Clone)]
struct Config {
    store: Arc<dyn ApiKeyStore>,
    clock: SharedClock,
    realm: Cow<'static, str>,
    optional: bool,
    last_used: Option<LastUsedRecorder>,
}

impl ApiKeyLayer {
    /// A layer looking keys up in `store`, requiring a key on every request.
    pub fn new(store: Arc<dyn ApiKeyStore>) -> Self {
        Self {
            config: Arc::new(Config {
                store,
                clock: SystemClock::shared(),
                realm: Cow::Borrowed(DEFAULT_REALM),
                optional: false,
                last_used: None,
            }),
        }
    }

    /// Lets requests without any key through unauthenticated (handlers see
    /// `Option<ApiKey>` as `None`). A key that is presented must still be
    /// valid.
    pub fn optional(mut self) -> Self {
        Arc::make_mut(&mut self.config).optional = true;
        self
    }

    /// Sets the realm named in `WWW-Authenticate` challenges.
    pub fn with_realm(mut self, realm: impl Into<Cow<'static, str>>) -> Self {
        Arc::make_mut(&mut self.config).realm = realm.into();
        self
    }

    /// Uses `clock` to decide expiry and revocation.
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        Arc::make_mut(&mut self.config).clock = clock;
        self
    }

    /// Notes every successful use in `recorder`, which writes last-used
    /// times in batches off the request path.
    pub fn with_last_used(mut self, recorder: LastUsedRecorder) -> Self {
        Arc::make_mut(&mut self.config).last_used = Some(recorder);
        self
    }

    /// Authenticates `headers` the way the layer does: `Ok(None)` when no key
    /// was presented, `Err` with the rejection to send otherwise. For
    /// composing layers (e.g. an auth chain); most users add the layer.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Option<Principal>, Rejection> {
        self.config.authenticate(headers).await
    }
}

impl Config {
    fn reject(&self, reason: Reason) -> Rejection {
        Rejection::new(reason, SOURCE).with_challenge(self.realm.clone())
    }

    /// The digest of the presented key; `Ok(None)` when none was presented
    /// and the layer is optional.
    fn presented_digest(&self, headers: &HeaderMap) -> Result<Option<KeyDigest>, Rejection> {
        let presented = match api_key(headers) {
            Ok(Some(text)) => text,
            Ok(None) if self.optional => return Ok(None),
            Ok(None) => return Err(self.reject(Reason::MissingCredentials)),
            Err(_) => return Err(self.reject(Reason::Malformed)),
        };
        let Ok(parsed) = parse(presented) else {
            return Err(self.reject(Reason::Malformed));
        };
        Ok(Some(parsed.digest()))
    }

    /// The identity behind `digest`, given the store's answer.
    fn admit(
        &self,
        digest: &KeyDigest,
        found: Result<Option<Arc<ApiKeyRecord>>, StoreError>,
    ) -> Result<Principal, Rejection> {
        let record = match found {
            Ok(Some(record)) => record,
            Ok(None) => return Err(self.reject(Reason::InvalidCredentials)),
            Err(error) => {
                tracing::warn!(target: "keystile::api_key", %error, "API key store failed");
                return Err(self.reject(Reason::BackendUnavailable));
            }
        };
        // A key without expiry or revocation time needs no clock, unless
        // last-used times are recorded.
        let needs_time =
            record.expires_at.is_some() || record.revoked_at.is_some() || self.last_used.is_some();
        let now = needs_time.then(|| self.clock.unix_seconds());
        // The digest check guards against a store returning the wrong row;
        // expired and revoked keys get the same answer as unknown ones.
        if !record.digest.ct_eq(digest) || now.is_some_and(|now| !record.is_usable_at(now)) {
            return Err(self.reject(Reason::InvalidCredentials));
        }
        if let (Some(recorder), Some(now)) = (&self.last_used, now) {
            recorder.record(digest, now);
        }
        Ok(Principal::from_api_key(record))
    }
}

impl Authenticate for Config {
    const LAYER: AuthLayer = AuthLayer::ApiKey;

    async fn authenticate(&self, headers: &HeaderMap) -> Result<Option<Principal>, Rejection> {
        let Some(digest) = self.presented_digest(headers)? else {
            return Ok(None);
        };
        let found = match self.store.lookup_now(&digest) {
            Some(found) => found,
            None => self.store.lookup(&digest).await,
        };
        self.admit(&digest, found).map(Some)
    }

    fn authenticate_now(
        &self,
        headers: &HeaderMap,
    ) -> Option<Result<Option<Principal>, Rejection>> {
        let digest = match self.presented_digest(headers) {
            Ok(Some(digest)) => digest,
            Ok(None) => return Some(Ok(None)),
            Err(rejection) => return Some(Err(rejection)),
        };
        let found = self.store.lookup_now(&digest)?;
        Some(self.admit(&digest, found).map(Some))
    }
}

impl fmt::Debug for ApiKeyLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeyLayer")
            .field("realm", &self.config.realm)
            .field("optional", &self.config.optional)
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for ApiKeyLayer {
    type Service = ApiKey<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ApiKey {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The service [`ApiKeyLayer`] wraps around a route.
#[derive(Clone)]
pub struct ApiKey<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> fmt::Debug for ApiKey<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKey").finish_non_exhaustive()
    }
}

pub use crate::future::ResponseFuture;

impl<S> Service<Request<Body>> for ApiKey<S>
where
    S: Service<Request<Body>, Response = Response> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        call_authenticated(&mut self.inner, &self.config, req)
    }
}

#[cfg(test)]
mod tests {

    use std::time::Duration;

    use axum::Router;
    use axum::routing::get;
    use http::StatusCode;
    use http_body_util::BodyExt;
    use keystile_core::api_key::{ApiKeyAdmin, ApiKeyRecord, KeyPrefix, MintedKey, NewApiKey};
    use keystile_core::clock::ManualClock;
    use keystile_core::random::OsRandom;
    use keystile_core::scopes::Scopes;

    use keystile_core::testing::CountingStore;
    use tower::ServiceExt;

    use super::*;

    const NOW: u64 = 1_700_000_000;

    struct Fixture {
        store: Arc<CountingStore>,
        clock: ManualClock,
        key: MintedKey,
        record: ApiKeyRecord,
    }

    async fn fixture() -> Fixture {
        let store = Arc::new(CountingStore::default());
        let (key, record) = NewApiKey::new(KeyPrefix::new("sk_test").unwrap(), "acme")
            .with_scopes(Scopes::parse("reports:read"))
            .expires_at(NOW + 3600)
            .mint(&OsRandom, NOW)
            .unwrap();
        store.create(record.clone()).await.unwrap();
        Fixture {
            store,
            clock: ManualClock::at_unix(NOW),
            key,
            record,
        }
    }

    async fn whoami(req: Request<Body>) -> String {
        req.extensions()
            .get::<Principal>()
            .map_or_else(|| "nobody".to_owned(), |p| p.subject.to_string())
    }

    fn app(layer: ApiKeyLayer) -> Router {
        Router::new().route("/", get(whoami)).route_layer(layer)
    }

    fn layer(f: &Fixture) -> ApiKeyLayer {
        ApiKeyLayer::new(f.store.clone()).with_clock(f.clock.shared())
    }

    async fn send(app: Router, headers: &[(&str, &str)]) -> Response {
        let mut req = Request::get("/");
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        app.oneshot(req.body(Body::empty()).unwrap()).await.unwrap()
    }

    fn challenge(r: &Response) -> &str {
        r.headers()["www-authenticate"].to_str().unwrap()
    }

    async fn text(r: Response) -> String {
        String::from_utf8(r.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
    }

    #[tokio::test]
    async fn valid_key_inserts_the_principal() {
        let f = fixture().await;
        let bearer = format!("Bearer {}", f.key.as_str());
        let r = send(app(layer(&f)), &[("authorization", &bearer)]).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(text(r).await, "acme");
        let r = send(app(layer(&f)), &[("x-api-key", f.key.as_str())]).await;
        assert_eq!(r.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn no_key_is_401_without_error_code() {
        let f = fixture().await;
        let r = send(app(layer(&f).with_realm("reports")), &[]).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(challenge(&r), r#"Bearer realm="reports""#);
    }

    #[tokio::test]
    async fn optional_mode_passes_requests_without_a_key_but_not_bad_keys() {
        let f = fixture().await;
        let r = send(app(layer(&f).optional()), &[]).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(text(r).await, "nobody");
        let r = send(app(layer(&f).optional()), &[("x-api-key", "sk_test_nope")]).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }

    #[tokio::test]
    async fn checksum_bad_keys_are_refused_without_a_lookup() {
        let f = fixture().await;
        let mut bad = f.key.as_str().to_owned();
        let mid = bad.len() / 2;
        let flipped = if &bad[mid..=mid] == "A" { "B" } else { "A" };
        bad.replace_range(mid..=mid, flipped);
        for presented in [bad.as_str(), "garbage", "sk_test_", "Bearer"] {
            let r = send(app(layer(&f)), &[("x-api-key", presented)]).await;
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{presented}");
            assert!(challenge(&r).contains(r#"error="invalid_token""#));
            let body = text(r).await;
            assert!(!body.contains(presented), "the key is never echoed");
        }
        assert_eq!(f.store.lookups(), 0);
    }

    #[tokio::test]
    async fn unknown_expired_and_revoked_keys_get_the_same_answer() {
        let f = fixture().await;
        let (unknown, _) = NewApiKey::new(KeyPrefix::new("sk_test").unwrap(), "acme")
            .mint(&OsRandom, NOW)
            .unwrap();
        let r = send(app(layer(&f)), &[("x-api-key", unknown.as_str())]).await;
        let unknown_answer = (r.status(), challenge(&r).to_owned(), text(r).await);

        f.clock.advance(Duration::from_secs(3600));
        let r = send(app(layer(&f)), &[("x-api-key", f.key.as_str())]).await;
        let expired_answer = (r.status(), challenge(&r).to_owned(), text(r).await);
        assert_eq!(expired_answer, unknown_answer);

        f.clock.rewind(Duration::from_secs(3600));
        f.store.revoke(&f.record.id, NOW).await.unwrap();
        let r = send(app(layer(&f)), &[("x-api-key", f.key.as_str())]).await;
        let revoked_answer = (r.status(), challenge(&r).to_owned(), text(r).await);
        assert_eq!(revoked_answer, unknown_answer);
        assert_eq!(unknown_answer.0, StatusCode::UNAUTHORIZED);
        assert!(unknown_answer.1.contains(r#"error="invalid_token""#));
    }

    #[tokio::test]
    async fn store_failure_is_503_and_admits_nothing() {
        let f = fixture().await;
        f.store.set_down(true);
        let r = send(app(layer(&f)), &[("x-api-key", f.key.as_str())]).await;
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(r.headers().contains_key("retry-after"));
        assert!(text(r).await.contains("backend_unavailable"));
    }

    #[tokio::test]
    async fn successful_uses_reach_the_last_used_recorder() {
        let f = fixture().await;
        let recorder = LastUsedRecorder::new(f.store.clone());
        let layer = layer(&f).with_last_used(recorder.clone());
        for _ in 0..10 {
            let r = send(app(layer.clone()), &[("x-api-key", f.key.as_str())]).await;
            assert_eq!(r.status(), StatusCode::OK);
        }
        assert_eq!(recorder.pending(), 1);
        recorder.flush().await.unwrap();
        let stored = f.store.lookup(&f.key.digest()).await.unwrap().unwrap();
        assert_eq!(stored.last_used_at, Some(NOW));
    }

    #[tokio::test]
    async fn unknown_routes_stay_404_with_route_layer() {
        let f = fixture().await;
        let r = app(layer(&f))
            .oneshot(Request::get("/nope").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }
}
