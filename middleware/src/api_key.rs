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
//! use keystile_middleware::api_key::{ApiKeyLayer, ApiKeys};
//!
//! async fn whoami(axum::Extension(who): axum::Extension<Principal>) -> String {
//!     who.subject.to_string()
//! }
//!
//! let store = Arc::new(MemoryApiKeyStore::new());
//! let app: Router = Router::new()
//!     .route("/whoami", get(whoami))
//!     .route_layer(ApiKeyLayer::new(ApiKeys::new(store)).realm("reports"));
//! ```

use std::fmt;
use std::sync::Arc;

use http::request::Parts;
use keystile_core::api_key::{ApiKeyRecord, ApiKeyStore, KeyDigest, LastUsedRecorder, parse};
use keystile_core::clock::{SharedClock, SystemClock};
use keystile_core::identity::{AuthMethod, Principal};
use keystile_core::rejection::{Reason, Rejection};
use keystile_core::store::StoreError;

use crate::auth::{AuthLayer, Authenticator, Outcome, Realm};
use crate::credentials::{KeyHeader, api_key_in};
use keystile_core::layers_seen::LayersSeen;

const SOURCE: &str = "ApiKeyLayer";

/// The layer that authenticates requests by API key: an [`AuthLayer`]
/// running [`ApiKeys`].
pub type ApiKeyLayer = AuthLayer<ApiKeys>;

/// Authenticates requests by API key; see the [module docs](self).
#[derive(Clone)]
pub struct ApiKeys {
    store: Arc<dyn ApiKeyStore>,
    clock: SharedClock,
    last_used: Option<LastUsedRecorder>,
}

impl ApiKeys {
    /// Looks keys up in `store`, on the system clock.
    pub fn new(store: Arc<dyn ApiKeyStore>) -> Self {
        Self {
            store,
            clock: SystemClock::shared(),
            last_used: None,
        }
    }

    /// Uses `clock` to decide expiry and revocation.
    #[must_use]
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Notes every successful use in `recorder`, which writes last-used
    /// times in batches off the request path.
    #[must_use]
    pub fn last_used(mut self, recorder: LastUsedRecorder) -> Self {
        self.last_used = Some(recorder);
        self
    }

    /// The identity behind `digest`, given the store's answer.
    fn admit(
        &self,
        digest: &KeyDigest,
        found: Result<Option<Arc<ApiKeyRecord>>, StoreError>,
        reject: impl Fn(Reason) -> Rejection,
    ) -> Outcome {
        let record = match found {
            Ok(Some(record)) => record,
            Ok(None) => return Outcome::Refused(reject(Reason::InvalidCredentials)),
            Err(error) => {
                tracing::warn!(target: "keystile::api_key", %error, "API key store failed");
                return Outcome::Refused(reject(Reason::BackendUnavailable));
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
            return Outcome::Refused(reject(Reason::InvalidCredentials));
        }
        if let (Some(recorder), Some(now)) = (&self.last_used, now) {
            recorder.record(digest, now);
        }
        Outcome::Admitted(Principal::from_api_key(record))
    }
}

impl Authenticator for ApiKeys {
    fn mark(&self, seen: &mut LayersSeen) {
        seen.insert(AuthMethod::ApiKey);
    }

    fn challenges(&self) -> bool {
        true
    }

    async fn authenticate(&self, request: &Parts) -> Outcome {
        let reject =
            |reason| Rejection::new(reason, SOURCE).with_challenge(Realm::of(&request.extensions));
        // `Authorization` is shared with bearer tokens: what is not an API
        // key there is foreign (a later authenticator may claim it);
        // `X-API-Key` carries API keys only.
        let (header, presented) = api_key_in(&request.headers);
        let refuse = |reason| match header {
            KeyHeader::Authorization => Outcome::Foreign(reject(reason)),
            KeyHeader::XApiKey => Outcome::Refused(reject(reason)),
        };
        let presented = match presented {
            Ok(Some(text)) => text,
            Ok(None) => return Outcome::Absent,
            Err(_) => return refuse(Reason::Malformed),
        };
        let Ok(parsed) = parse(presented) else {
            return refuse(Reason::Malformed);
        };
        let digest = parsed.digest();
        let found = self.store.lookup(&digest).await;
        self.admit(&digest, found, reject)
    }
}

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeys")
            .field("last_used", &self.last_used.is_some())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {

    use std::time::Duration;

    use axum::Router;
    use axum::body::Body;
    use axum::response::Response;
    use axum::routing::get;
    use http::Request;
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
        ApiKeyLayer::new(ApiKeys::new(f.store.clone()).clock(f.clock.shared()))
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
        let r = send(app(layer(&f).realm("reports")), &[]).await;
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
        let layer = ApiKeyLayer::new(
            ApiKeys::new(f.store.clone())
                .clock(f.clock.shared())
                .last_used(recorder.clone()),
        );
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
