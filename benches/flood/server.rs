//! The service under flood: every in-memory store keystile has, behind its
//! layers, and a flood of distinct bogus or merely numerous credentials
//! driven in-process through `tower::ServiceExt::oneshot`. Used by
//! `benches/flood/main.rs` (1,000,000 of each by default) and by
//! `benches/tests/flood_memory.rs` (a bounded count for CI).
//!
//! The clock is frozen for the whole flood, so nothing expires and every
//! store must hold its bound by refusing or evicting: the worst case.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, StatusCode};
use axum::routing::{get, post};
use keystile::api_key::{
    ApiKeyLayer, ApiKeys, CachedApiKeyStore, KeyPrefix, LastUsedRecorder, MemoryApiKeyStore,
    NewApiKey, cache, last_used,
};
use keystile::auth::Principal;
use keystile::bearer::{
    BearerLayer, BearerTokens, DEFAULT_REVOCATION_CAPACITY, Grant, MemoryRevocationList,
    TokenLifecycle,
};
use keystile::clock::ManualClock;
use keystile::handoff::{Handoff, HandoffCodec, HandoffLayer};
use keystile::keys::{Keyring, SigningKey};
use keystile::one_time::{self, MemoryOneTimeStore, OneTimeConfig, OneTimeError, OneTimeStore};
use keystile::random::OsRandom;
use keystile::replay::{DEFAULT_REPLAY_CAPACITY, MemoryReplayStore};
use keystile::session_version::{
    DEFAULT_SESSION_VERSION_CAPACITY, FetchRequest, MemorySessionVersionCache, SessionVersionLayer,
    SessionVersionValidator,
};
use keystile::tenant::HostTenant;
use tower::ServiceExt as _;

use crate::measure::sharded;

/// The frozen time of the flood.
pub const NOW: u64 = 1_700_000_000;

/// The service and handles on each of its stores, to read their sizes.
pub struct Target {
    router: Router,
    /// Burned handoff ids.
    pub replay: Arc<MemoryReplayStore>,
    /// Cached session versions, one per subject.
    pub versions: Arc<MemorySessionVersionCache>,
    /// The validator in front of `versions` (its single-flight map).
    pub validator: SessionVersionValidator,
    /// Revoked token ids.
    pub revocations: Arc<MemoryRevocationList>,
    /// Known keys and unknown digests cached in front of the key store.
    pub api_keys: Arc<CachedApiKeyStore<MemoryApiKeyStore>>,
    /// Last-used times waiting to be flushed.
    pub last_used: LastUsedRecorder,
    /// Pending one-time tokens.
    pub one_time: Arc<MemoryOneTimeStore>,
    tokens: TokenLifecycle,
    handoffs: HandoffCodec,
    bounds: Bounds,
}

/// The bound the flood gave each store: the stores do not read their
/// configuration back, so the flood remembers what it set.
struct Bounds {
    replay: usize,
    versions: usize,
    revocations: usize,
    known_keys: usize,
    unknown_keys: usize,
    last_used: usize,
    one_time: usize,
}

impl Bounds {
    /// Every store at `bound`, or each at its own default when `None`.
    fn new(bound: Option<usize>) -> Self {
        let or = |default| bound.unwrap_or(default);
        Self {
            replay: or(DEFAULT_REPLAY_CAPACITY),
            versions: or(DEFAULT_SESSION_VERSION_CAPACITY),
            revocations: or(DEFAULT_REVOCATION_CAPACITY),
            known_keys: or(cache::DEFAULT_CAPACITY),
            unknown_keys: or(cache::DEFAULT_NEGATIVE_CAPACITY),
            last_used: or(last_used::DEFAULT_MAX_PENDING),
            one_time: or(one_time::DEFAULT_MAX_PENDING),
        }
    }
}

/// Sizes of every store after a flood, each with its bound.
#[derive(Debug)]
pub struct StoreSizes {
    /// `(entries, bound)` per store name.
    pub stores: BTreeMap<&'static str, (usize, usize)>,
}

impl StoreSizes {
    /// The stores whose entry count is above their bound.
    pub fn over_bound(&self) -> Vec<&'static str> {
        self.stores
            .iter()
            .filter(|(_, (len, cap))| len > cap)
            .map(|(name, _)| *name)
            .collect()
    }
}

/// Statuses the flood received, per kind of request.
pub type Statuses = BTreeMap<&'static str, BTreeMap<u16, usize>>;

impl Target {
    /// A service whose stores hold at most `bound` entries each, or their
    /// defaults when `None`.
    pub fn new(bound: Option<usize>) -> Self {
        let clock = ManualClock::at_unix(NOW);
        let keyring = Keyring::new(SigningKey::from_bytes(&[61; 32]).expect("32-byte key"));

        let bounds = Bounds::new(bound);

        let replay = Arc::new(
            MemoryReplayStore::new()
                .capacity(bounds.replay)
                .clock(clock.shared()),
        );
        let versions = Arc::new(
            MemorySessionVersionCache::new()
                .capacity(bounds.versions)
                .clock(clock.shared()),
        );
        let revocations = Arc::new(
            MemoryRevocationList::new()
                .capacity(bounds.revocations)
                .clock(clock.shared()),
        );
        let one_time = Arc::new(MemoryOneTimeStore::new(
            OneTimeConfig::default()
                .max_pending(bounds.one_time)
                .clock(clock.shared()),
        ));
        let api_keys = Arc::new(
            CachedApiKeyStore::new(MemoryApiKeyStore::new())
                .capacity(bounds.known_keys)
                .negative_capacity(bounds.unknown_keys)
                .clock(clock.shared()),
        );
        let last_used = LastUsedRecorder::new(api_keys.clone()).max_pending(bounds.last_used);

        let tokens = TokenLifecycle::builder(keyring.clone())
            .replay_store(Arc::new(MemoryReplayStore::new().clock(clock.shared())))
            .revocation_list(revocations.clone())
            .clock(clock.shared())
            .issuer("https://idp.test")
            .audience("flood")
            .build()
            .expect("a valid lifecycle");
        // The identity provider answers at once: the flood measures the
        // cache, not the network.
        let fetcher = |_: FetchRequest<'_>| async { Ok(1) };
        let validator = SessionVersionValidator::from_shared(versions.clone(), Arc::new(fetcher));
        let tenants = HostTenant::under("localhost").expect("a DNS name");
        let handoff = HandoffLayer::from_shared(keyring.clone(), replay.clone(), Arc::new(tenants))
            .clock(clock.shared());

        let keyed = Router::new()
            .route("/api/key", get(|| async { "key ok" }))
            .route_layer(ApiKeyLayer::new(
                ApiKeys::new(api_keys.clone())
                    .clock(clock.shared())
                    .last_used(last_used.clone()),
            ));
        let bearer = Router::new()
            .route(
                "/api/me",
                get(|who: Principal| async move { who.subject.to_string() }),
            )
            .route_layer(SessionVersionLayer::new(validator.clone()))
            .route_layer(BearerLayer::new(BearerTokens::new(Arc::new(
                tokens.clone(),
            ))));
        let issuer = Router::new()
            .route("/token/revoke", post(revoke))
            .with_state(tokens.clone());
        let resets = Router::new()
            .route("/reset/issue", post(issue_reset))
            .route("/reset/consume", post(consume_reset))
            .with_state(one_time.clone());
        let router = keyed
            .merge(bearer)
            .merge(issuer)
            .merge(resets)
            .layer(handoff);
        Self {
            router,
            replay,
            versions,
            validator,
            revocations,
            api_keys,
            last_used,
            one_time,
            tokens,
            handoffs: HandoffCodec::new(keyring).clock(clock.shared()),
            bounds,
        }
    }

    /// Every store's entry count and bound.
    pub async fn sizes(&self) -> StoreSizes {
        let bounds = &self.bounds;
        let (known, unknown) = self.api_keys.cached();
        let pending = self.one_time.pending().await.unwrap_or(usize::MAX);
        let stores = BTreeMap::from([
            ("replay (handoff ids)", (self.replay.len(), bounds.replay)),
            (
                "session versions",
                (self.versions.len(), sharded(bounds.versions)),
            ),
            (
                "session-version fetches in flight",
                (self.validator.fetches_in_flight(), 0),
            ),
            (
                "revocation list",
                (self.revocations.len(), bounds.revocations),
            ),
            ("api-key cache (known)", (known, sharded(bounds.known_keys))),
            (
                "api-key cache (unknown)",
                (unknown, sharded(bounds.unknown_keys)),
            ),
            (
                "last-used batch",
                (self.last_used.pending(), bounds.last_used),
            ),
            ("one-time tokens", (pending, bounds.one_time)),
        ]);
        StoreSizes { stores }
    }

    /// Throws `count` distinct API keys, handoff tokens and subjects (and
    /// `count / 10` revocations and one-time tokens) at the service, one
    /// request at a time; `progress` is called after each kind.
    pub async fn flood(&self, count: usize, mut progress: impl FnMut(&str)) -> Statuses {
        let mut statuses = Statuses::new();
        let prefix = KeyPrefix::new("sk_live").expect("a valid prefix");
        for i in 0..count {
            // Even: garbage in the key format; odd: a well-formed key with a
            // valid checksum that was never stored (a store lookup each).
            let key = if i % 2 == 0 {
                format!("sk_live_{i:0>43}")
            } else {
                let (key, _) = NewApiKey::new(prefix.clone(), "nobody")
                    .mint(&OsRandom, NOW)
                    .expect("a minted key");
                key.as_str().to_owned()
            };
            let request = Request::get("/api/key").header("x-api-key", key);
            self.send("api keys", request, Body::empty(), &mut statuses)
                .await;
        }
        progress("api keys");
        for i in 0..count {
            // Even: garbage; odd: a genuine token, so each burns an id.
            let token = if i % 2 == 0 {
                format!("v1.{i}.bogus")
            } else {
                self.handoffs
                    .mint(&Handoff::new(format!("user{i}"), "acme"))
                    .expect("a minted handoff")
            };
            let request = Request::get(format!("/_keystile/handoff?token={token}"))
                .header("host", "acme.localhost");
            self.send("handoff tokens", request, Body::empty(), &mut statuses)
                .await;
        }
        progress("handoff tokens");
        for i in 0..count {
            // Genuine tokens of distinct subjects: each needs a version.
            let grant = Grant::new(format!("subject{i}")).session_version(1);
            let pair = self.tokens.issue(&grant).expect("a token pair");
            let request = Request::get("/api/me")
                .header("authorization", format!("Bearer {}", pair.access_token()));
            self.send("subjects", request, Body::empty(), &mut statuses)
                .await;
        }
        progress("subjects");
        for i in 0..count / 10 {
            let pair = self
                .tokens
                .issue(&Grant::new(format!("leaver{i}")))
                .expect("a token pair");
            let body = Body::from(pair.access_token().to_owned());
            self.send(
                "revocations",
                Request::post("/token/revoke"),
                body,
                &mut statuses,
            )
            .await;
        }
        progress("revocations");
        for i in 0..count / 10 {
            let issue = Body::from(format!("binding{i}"));
            self.send(
                "one-time issue",
                Request::post("/reset/issue"),
                issue,
                &mut statuses,
            )
            .await;
            let bogus = Body::from(format!("{i:0>22}"));
            let consume = Request::post("/reset/consume");
            self.send("one-time consume", consume, bogus, &mut statuses)
                .await;
        }
        progress("one-time tokens");
        statuses
    }

    async fn send(
        &self,
        kind: &'static str,
        request: axum::http::request::Builder,
        body: Body,
        statuses: &mut Statuses,
    ) {
        let status = match request.body(body) {
            Ok(request) => match self.router.clone().oneshot(request).await {
                Ok(response) => response.status().as_u16(),
                Err(infallible) => match infallible {},
            },
            // A request the flood could not even build counts as refused.
            Err(_) => 0,
        };
        *statuses.entry(kind).or_default().entry(status).or_default() += 1;
    }
}

async fn revoke(State(tokens): State<TokenLifecycle>, token: String) -> StatusCode {
    match tokens.revoke(&token).await {
        Ok(()) => StatusCode::NO_CONTENT,
        Err(keystile::bearer::LifecycleError::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
        Err(_) => StatusCode::BAD_REQUEST,
    }
}

async fn issue_reset(State(store): State<Arc<MemoryOneTimeStore>>, binding: String) -> StatusCode {
    match store.issue(binding.as_bytes()).await {
        Ok(_) => StatusCode::CREATED,
        Err(OneTimeError::LimitReached { .. }) => StatusCode::SERVICE_UNAVAILABLE,
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

async fn consume_reset(State(store): State<Arc<MemoryOneTimeStore>>, token: String) -> StatusCode {
    match store.consume(&token, b"binding0").await {
        Ok(()) => StatusCode::NO_CONTENT,
        Err(OneTimeError::Backend(_)) => StatusCode::SERVICE_UNAVAILABLE,
        Err(_) => StatusCode::GONE,
    }
}
