//! The bearer example app: a mock identity provider and a resource server in
//! one process.
//!
//! Identity provider (`/idp/…`):
//!
//! - `POST /idp/token` `{"sub":"alice"}` → `{"access_token","refresh_token",…}`:
//!   an HS256 pair carrying the user's current session version as `sv`. (A
//!   demo: a real provider authenticates the user first.)
//! - `POST /idp/refresh` `{"refresh_token"}` → a new pair. A refresh token
//!   works once; one minted before a break-glass is refused.
//! - Both answer with `Cache-Control: no-store` (RFC 6749 §5.1), errors too.
//! - `GET /idp/userinfo` (Bearer) → `{"sub","session_version"}`: the CURRENT
//!   version for any validly signed token, stale or not — that is how the
//!   resource server learns a token is stale.
//! - `POST /idp/break-glass/{sub}` → bumps the user's version and calls
//!   `invalidate(sub)` on the resource server's validator, so the very next
//!   request with an older token is refused.
//!
//! Resource server: `GET /api/me` behind `BearerLayer` + `SessionVersionLayer`
//! → the verified claims as JSON. It learns current versions from the
//! userinfo endpoint over real HTTP, at the address the app is bound to.
//!
//! `tests/example_bearer.rs` includes this file, so it exercises the same app
//! `cargo run --example bearer` serves.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::header::{CACHE_CONTROL, PRAGMA};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use keystile::auth::credentials::bearer_token;
use keystile::bearer::{
    BearerLayer, BearerTokens, Claims, Grant, LifecycleError, MemoryRevocationList, RevocationList,
    TokenError, TokenLifecycle,
};
use keystile::clock::{SharedClock, SystemClock};
use keystile::keys::Keyring;
use keystile::replay::{MemoryReplayStore, SharedReplayStore};
use keystile::session_version::{
    MemorySessionVersionCache, SessionVersionCache, SessionVersionLayer, SessionVersionValidator,
    UserinfoFetcher,
};
use keystile::store::StoreError;
use serde_json::{Value, json};
use tower::ServiceBuilder;

/// The issuer (`iss`) the mock identity provider signs and the resource
/// server requires.
pub const ISSUER: &str = "keystile-example-idp";

/// The audience (`aud`) of the access tokens.
pub const AUDIENCE: &str = "keystile-example-api";

/// Where the identity provider keeps each user's current session version.
#[derive(Clone)]
pub enum VersionSource {
    /// In this process only.
    Memory(Arc<Mutex<HashMap<String, u64>>>),
    /// In Redis (`INCR {prefix}{sub}`), shared by every instance.
    #[cfg(feature = "redis")]
    Redis {
        /// The connection.
        connection: redis::aio::ConnectionManager,
        /// Key prefix.
        prefix: String,
    },
}

impl VersionSource {
    /// An empty in-memory source: every user starts at version 0.
    pub fn memory() -> Self {
        Self::Memory(Arc::default())
    }

    async fn current(&self, subject: &str) -> Result<u64, StoreError> {
        match self {
            Self::Memory(versions) => Ok(versions
                .lock()
                .map_err(StoreError::message)?
                .get(subject)
                .copied()
                .unwrap_or(0)),
            #[cfg(feature = "redis")]
            Self::Redis { connection, prefix } => {
                let mut connection = connection.clone();
                let version: Option<u64> = redis::cmd("GET")
                    .arg(format!("{prefix}{subject}"))
                    .query_async(&mut connection)
                    .await
                    .map_err(StoreError::backend)?;
                Ok(version.unwrap_or(0))
            }
        }
    }

    async fn bump(&self, subject: &str) -> Result<u64, StoreError> {
        match self {
            Self::Memory(versions) => {
                let mut versions = versions.lock().map_err(StoreError::message)?;
                let version = versions.entry(subject.to_owned()).or_insert(0);
                *version += 1;
                Ok(*version)
            }
            #[cfg(feature = "redis")]
            Self::Redis { connection, prefix } => {
                let mut connection = connection.clone();
                redis::cmd("INCR")
                    .arg(format!("{prefix}{subject}"))
                    .query_async(&mut connection)
                    .await
                    .map_err(StoreError::backend)
            }
        }
    }
}

/// The stores the app keeps state in: in memory for one process, Redis
/// for several instances sharing tokens.
#[derive(Clone)]
pub struct Backends {
    /// Burns refresh-token ids.
    pub replay: SharedReplayStore,
    /// Revoked token ids.
    pub revocations: Arc<dyn RevocationList>,
    /// The resource server's cache of current session versions.
    pub session_versions: Arc<dyn SessionVersionCache>,
    /// The identity provider's source of truth.
    pub versions: VersionSource,
    /// With Redis: how many session-version invalidations (from any
    /// instance) this instance has applied — a health check, and what tests
    /// wait on instead of sleeping.
    pub invalidations_applied: Option<tokio::sync::watch::Receiver<u64>>,
}

impl Backends {
    /// Everything in this process.
    pub fn memory(clock: &SharedClock) -> Self {
        Self {
            replay: Arc::new(MemoryReplayStore::new().clock(clock.clone())),
            revocations: Arc::new(MemoryRevocationList::new().clock(clock.clone())),
            session_versions: Arc::new(MemorySessionVersionCache::new().clock(clock.clone())),
            versions: VersionSource::memory(),
            invalidations_applied: None,
        }
    }

    /// Everything shared through the Redis at `url`, under keys and a
    /// pub/sub channel starting with `prefix`. The session-version cache is
    /// tiered: a local copy in front of Redis, dropped on every instance when
    /// any instance invalidates.
    #[cfg(feature = "redis")]
    pub async fn redis(url: &str, prefix: &str, clock: &SharedClock) -> Result<Self, String> {
        use keystile::bearer::RedisRevocationList;
        use keystile::replay::RedisReplayStore;
        use keystile::session_version::{RedisSessionVersionCache, TieredSessionVersionCache};

        let error = |e: StoreError| format!("Redis at KEYSTILE_REDIS_URL: {e}");
        let replay = RedisReplayStore::connect(url)
            .await
            .map_err(error)?
            .prefix(format!("{prefix}replay:"));
        let revocations = RedisRevocationList::connect(url)
            .await
            .map_err(error)?
            .prefix(format!("{prefix}revoked:"))
            .clock(clock.clone());
        let shared = RedisSessionVersionCache::builder(url)
            .key_prefix(format!("{prefix}sv:"))
            .channel(format!("{prefix}sv-invalidate"))
            .connect()
            .await
            .map_err(error)?;
        let local = MemorySessionVersionCache::new().clock(clock.clone());
        let session_versions = TieredSessionVersionCache::connect(shared, local)
            .await
            .map_err(error)?;
        let client = redis::Client::open(url).map_err(|e| e.to_string())?;
        let connection = redis::aio::ConnectionManager::new(client)
            .await
            .map_err(|e| format!("Redis at KEYSTILE_REDIS_URL: {e}"))?;
        Ok(Self {
            invalidations_applied: Some(session_versions.applied_invalidations()),
            replay: Arc::new(replay),
            revocations: Arc::new(revocations),
            session_versions: Arc::new(session_versions),
            versions: VersionSource::Redis {
                connection,
                prefix: format!("{prefix}idp-version:"),
            },
        })
    }
}

/// What the app needs.
#[derive(Clone)]
pub struct AppConfig {
    /// Signs and verifies the tokens (HS256, by `kid`).
    pub keyring: Keyring,
    /// Where this app is reachable, e.g. `http://127.0.0.1:3002`: the
    /// resource server calls `{base_url}/idp/userinfo`.
    pub base_url: String,
    /// Stores.
    pub backends: Backends,
    /// Time source for tokens and caches.
    pub clock: SharedClock,
}

impl AppConfig {
    /// In-memory stores and the system clock, for an app bound to `port`
    /// on 127.0.0.1.
    pub fn new(keyring: Keyring, port: u16) -> Self {
        let clock = SystemClock::shared();
        Self {
            keyring,
            base_url: format!("http://127.0.0.1:{port}"),
            backends: Backends::memory(&clock),
            clock,
        }
    }
}

#[derive(Clone)]
struct Idp {
    tokens: TokenLifecycle,
    versions: VersionSource,
    /// The resource server's validator, told about break-glass at once.
    validator: SessionVersionValidator,
}

/// Builds the app: identity provider and resource server on one router.
pub fn app(config: AppConfig) -> Result<Router, String> {
    let tokens = TokenLifecycle::builder(config.keyring)
        .replay_store(config.backends.replay)
        .revocation_list(config.backends.revocations)
        .clock(config.clock)
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .build()
        .map_err(|e| e.to_string())?;
    let userinfo = UserinfoFetcher::new(&format!("{}/idp/userinfo", config.base_url))
        .map_err(|e| e.to_string())?;
    let validator =
        SessionVersionValidator::from_shared(config.backends.session_versions, Arc::new(userinfo));
    let idp = Idp {
        tokens: tokens.clone(),
        versions: config.backends.versions,
        validator: validator.clone(),
    };

    let resource = Router::new()
        .route("/api/me", get(me))
        // One stack, run top to bottom: BearerLayer inserts the Principal
        // that SessionVersionLayer then checks.
        .route_layer(
            ServiceBuilder::new()
                .layer(BearerLayer::new(BearerTokens::new(Arc::new(tokens))))
                .layer(SessionVersionLayer::new(validator)),
        );
    let provider = Router::new()
        .route("/idp/token", post(token))
        .route("/idp/refresh", post(refresh))
        // Every answer of the token endpoints, tokens and errors alike.
        .route_layer(axum::middleware::map_response(no_store))
        .route("/idp/userinfo", get(userinfo_endpoint))
        .route("/idp/break-glass/{sub}", post(break_glass))
        .with_state(idp);
    Ok(resource.merge(provider))
}

/// RFC 6749 §5.1: a response carrying tokens must not be stored by any
/// cache (`Pragma` for HTTP/1.0 caches).
async fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

async fn me(claims: Claims) -> Json<Value> {
    Json(claims_json(&claims))
}

fn claims_json(claims: &Claims) -> Value {
    json!({
        "sub": claims.subject,
        "sv": claims.session_version,
        "scope": claims.scopes.to_string(),
        "exp": claims.expires_at,
        "iat": claims.issued_at,
        "iss": claims.issuer,
        "aud": claims.audience,
        "jti": claims.token_id,
        "extra": claims.extra,
    })
}

/// An OAuth-style error body (RFC 6749 §5.2).
fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

fn unavailable(error: &StoreError) -> Response {
    tracing::warn!(target: "keystile::example", %error, "identity provider store failed");
    oauth_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily_unavailable",
        "try again shortly",
    )
}

fn lifecycle_error(error: &LifecycleError) -> Response {
    match error {
        LifecycleError::Unavailable(e) => unavailable(e),
        LifecycleError::AlreadyUsed => oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "the refresh token was already used",
        ),
        LifecycleError::InvalidToken(_) => oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "the refresh token is not valid",
        ),
        _ => oauth_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "no token could be issued",
        ),
    }
}

fn string_field<'a>(body: &'a Value, name: &str) -> Option<&'a str> {
    body.get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

async fn token(State(idp): State<Idp>, Json(body): Json<Value>) -> Response {
    let Some(subject) = string_field(&body, "sub") else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "`sub` must be a non-empty string",
        );
    };
    let version = match idp.versions.current(subject).await {
        Ok(version) => version,
        Err(error) => return unavailable(&error),
    };
    match idp
        .tokens
        .issue(&Grant::new(subject).session_version(version))
    {
        Ok(pair) => Json(pair).into_response(),
        Err(error) => lifecycle_error(&error),
    }
}

async fn refresh(State(idp): State<Idp>, Json(body): Json<Value>) -> Response {
    let Some(refresh_token) = string_field(&body, "refresh_token") else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "`refresh_token` must be a non-empty string",
        );
    };
    let claims = match idp.tokens.redeem_refresh(refresh_token).await {
        Ok(claims) => claims,
        Err(error) => return lifecycle_error(&error),
    };
    let current = match idp.versions.current(&claims.subject).await {
        Ok(version) => version,
        Err(error) => return unavailable(&error),
    };
    // A refresh token minted before a break-glass must not mint fresh
    // access tokens: the session it belongs to is dead.
    if claims.session_version.unwrap_or(0) < current {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "the session was revoked",
        );
    }
    match idp
        .tokens
        .issue(&Grant::new(claims.subject).session_version(current))
    {
        Ok(pair) => Json(pair).into_response(),
        Err(error) => lifecycle_error(&error),
    }
}

async fn userinfo_endpoint(State(idp): State<Idp>, headers: HeaderMap) -> Response {
    let Ok(Some(token)) = bearer_token(&headers) else {
        return (
            StatusCode::UNAUTHORIZED,
            [("www-authenticate", r#"Bearer realm="idp""#)],
        )
            .into_response();
    };
    // Signature, expiry, issuer and audience only: a stale token must still
    // learn the current version, which is how it is found stale.
    let claims = match idp.tokens.jwt_verifier().verify_token(token) {
        Ok(claims) => claims,
        Err(TokenError::Unavailable(error)) => return unavailable(&error),
        Err(_) => {
            return (
                StatusCode::UNAUTHORIZED,
                [(
                    "www-authenticate",
                    r#"Bearer realm="idp", error="invalid_token""#,
                )],
            )
                .into_response();
        }
    };
    match idp.versions.current(&claims.subject).await {
        Ok(version) => {
            Json(json!({"sub": claims.subject, "session_version": version})).into_response()
        }
        Err(error) => unavailable(&error),
    }
}

async fn break_glass(State(idp): State<Idp>, Path(subject): Path<String>) -> Response {
    let version = match idp.versions.bump(&subject).await {
        Ok(version) => version,
        Err(error) => return unavailable(&error),
    };
    // Bumped at the source of truth first, then the cached copy dropped: a
    // fetch racing with this sees the new version.
    if let Err(error) = idp.validator.invalidate(&subject).await {
        return unavailable(&error);
    }
    tracing::info!(target: "keystile::example", subject, version, "break-glass");
    Json(json!({"sub": subject, "session_version": version})).into_response()
}
