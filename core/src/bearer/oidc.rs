//! [`OidcVerifier`]: bearer tokens from an OpenID Connect identity provider
//! (feature `oidc`), whose keys are discovered, cached and rotated.
//!
//! Name the issuer and the audience; the verifier does the rest:
//!
//! 1. **Discovery** (OIDC Discovery 1.0, RFC 8414): `GET
//!    <issuer>/.well-known/openid-configuration`, whose `issuer` must equal
//!    the configured one byte for byte; its `jwks_uri` is the key set. A
//!    JWK Set URL can be given instead ([`OidcVerifier::jwks`]).
//! 2. **Key set**: the usable keys of the JWK Set (RS256, ES256, ES384,
//!    EdDSA; `use: sig`; `key_ops` with `verify`; the configured
//!    algorithms), each pinned to its `kid` and algorithm. Keys keystile
//!    cannot use (an `RSA-OAEP` encryption key, ES512, symmetric keys) are
//!    skipped and named at debug level.
//! 3. **Tokens**: [`JwtVerifier`]'s one verification: `iss` and `aud`
//!    enforced, `exp` required, `nbf` with leeway, the header's `alg` must
//!    be its key's, `none` and embedded `jwk`/`jku`/`x5u` never used.
//!    RFC 9068 access tokens map into [`Claims`]: `scope` (space-separated)
//!    into scopes, `client_id` into `extra`. With
//!    [`at_jwt_only`](OidcVerifierBuilder::at_jwt_only) the header must say
//!    `typ: at+jwt`, so ID tokens are refused as bearer credentials.
//!
//! Keys stay current without a restart:
//!
//! | event | what happens |
//! |---|---|
//! | first request (or [`refresh`](OidcVerifier::refresh) at start-up) | the key set is fetched; until that succeeds, requests are 503 |
//! | the key set's age passes ¾ of its lifetime (`Cache-Control: max-age`, held within 5 min–24 h) | a request starts a background refresh and is verified with the current keys |
//! | a token names a `kid` the set does not hold | one refetch, shared by every request waiting on it, at most once per [`refetch_interval`](OidcVerifierBuilder::refetch_interval) (30 s); a flood of invented kids costs one fetch |
//! | a key is removed from the set | it stops verifying after the next successful fetch |
//! | the provider is down later | the last good set is used until its lifetime plus [`max_stale`](OidcVerifierBuilder::max_stale) (1 h) has passed, then requests are 503 |
//!
//! Every fetch, at most one per refetch interval whatever causes it, has a
//! timeout (5 s), follows no redirect, ignores environment proxies unless
//! one is configured, reads at most 256 KiB, and is logged (target
//! `keystile::oidc`: a debug event per fetch, a warning per failure). Time
//! is read from the injected clock.
//!
//! ```
//! use keystile_core::bearer::{JwtAlgorithm, OidcVerifier};
//!
//! let verifier = OidcVerifier::discover("https://login.example.test/realms/acme")
//!     .audience("reports-api")
//!     .algorithms([JwtAlgorithm::RS256])
//!     .at_jwt_only()
//!     .build()
//!     .unwrap();
//! // Nothing is fetched until the first request or `verifier.refresh().await`.
//! assert_eq!(verifier.issuer(), "https://login.example.test/realms/acme");
//! ```

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use async_trait::async_trait;
use reqwest::header::{ACCEPT, CACHE_CONTROL, HeaderMap};
use reqwest::{Client, Proxy, Url};
use serde::Deserialize;

use crate::bearer::jwt::DEFAULT_LEEWAY;
use crate::bearer::{Claims, JwtAlgorithm, JwtConfigError, JwtVerifier, TokenError, TokenVerifier};
use crate::clock::{SharedClock, SystemClock};
use crate::http::{self, BodyError};
use crate::store::StoreError;

/// Shortest lifetime given to a fetched key set (also the lifetime of one
/// served without `Cache-Control: max-age`).
pub const DEFAULT_MIN_REFRESH: Duration = Duration::from_secs(5 * 60);
/// Longest lifetime given to a fetched key set, whatever `max-age` says.
pub const DEFAULT_MAX_REFRESH: Duration = Duration::from_secs(24 * 60 * 60);
/// Least time between two fetches, whatever causes them.
pub const DEFAULT_REFETCH_INTERVAL: Duration = Duration::from_secs(30);
/// How long past its lifetime the last good key set is used while fetches
/// fail.
pub const DEFAULT_MAX_STALE: Duration = Duration::from_secs(60 * 60);
/// Bound on one fetch, connection to last body byte.
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest discovery document or key set read.
pub const DEFAULT_MAX_DOCUMENT: usize = 256 * 1024;

const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";

/// An OpenID Connect issuer's tokens, verified with its published keys;
/// see the [module docs](self). Cloning is cheap: clones share the keys.
#[derive(Clone)]
pub struct OidcVerifier {
    shared: Arc<Shared>,
}

/// Configures an [`OidcVerifier`].
#[must_use]
pub struct OidcVerifierBuilder {
    issuer: String,
    jwks: Option<String>,
    audiences: Vec<String>,
    algorithms: Vec<JwtAlgorithm>,
    at_jwt_only: bool,
    leeway: Duration,
    clock: SharedClock,
    refresh: (Duration, Duration),
    refetch_interval: Duration,
    max_stale: Duration,
    timeout: Duration,
    max_document: usize,
    proxy: Option<Proxy>,
}

/// Why an [`OidcVerifier`] could not be configured.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OidcConfigError {
    /// The issuer or JWK Set URL does not parse, or is plain `http` to a
    /// host other than a loopback address.
    #[error("{0} must be an https URL (http only to a loopback address)")]
    InvalidUrl(&'static str),
    /// No audience was configured: tokens of every client of the issuer
    /// would be accepted.
    #[error("an OIDC verifier needs the audience its tokens must name")]
    NoAudience,
    /// No algorithm is allowed.
    #[error("an OIDC verifier needs at least one algorithm")]
    NoAlgorithms,
    /// The shortest key-set lifetime is zero or longer than the longest.
    #[error("the key-set lifetime bounds must satisfy 0 < min <= max")]
    RefreshBounds,
    /// The refetch interval is shorter than a second: fetches would not be
    /// bounded at all.
    #[error("the refetch interval must be at least one second")]
    RefetchInterval,
    /// The HTTP client could not be built.
    #[error("the HTTP client could not be built")]
    Client(#[source] reqwest::Error),
}

/// Why the key set could not be fetched. Requests are answered 503 while
/// no usable key set is held.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum OidcError {
    /// The discovery document names another issuer: the configured URL is
    /// wrong, or the document is not the issuer's.
    #[error("discovery names the issuer {discovered:?}, not the configured {configured:?}")]
    IssuerMismatch {
        /// The issuer this verifier was configured with.
        configured: String,
        /// The `issuer` of the discovery document.
        discovered: String,
    },
    /// The document's `jwks_uri` is not https (or http to loopback).
    #[error("jwks_uri must be an https URL (http only to a loopback address)")]
    InsecureJwksUri,
    /// The provider answered with a status other than 200.
    #[error("{what} answered HTTP {status}")]
    Status {
        /// Which document was fetched.
        what: &'static str,
        /// The status code.
        status: u16,
    },
    /// The provider did not answer within the timeout.
    #[error("{0} timed out")]
    Timeout(&'static str),
    /// The provider could not be reached.
    #[error("{what} is unreachable: {source}")]
    Unreachable {
        /// Which document was fetched.
        what: &'static str,
        /// The transport error.
        #[source]
        source: Arc<reqwest::Error>,
    },
    /// The document is larger than the configured cap.
    #[error("{0} is too large")]
    TooLarge(&'static str),
    /// The document is not what it should be.
    #[error("invalid document: {0}")]
    InvalidDocument(&'static str),
    /// The key set holds no key this verifier may use.
    #[error("the key set holds no usable key")]
    NoUsableKeys,
    /// No fetch was made: the last one was less than the refetch interval
    /// ago, and no usable key set is held.
    #[error("no key set yet, and the last fetch was too recent to try again")]
    NotYet,
}

impl From<OidcError> for TokenError {
    fn from(error: OidcError) -> Self {
        TokenError::Unavailable(StoreError::backend(error))
    }
}

struct Shared {
    issuer: String,
    /// The JWK Set URL given, or the discovery document's URL.
    source: Source,
    audiences: Vec<String>,
    algorithms: Vec<JwtAlgorithm>,
    at_jwt_only: bool,
    leeway: Duration,
    clock: SharedClock,
    refresh: (u64, u64),
    refetch_interval: u64,
    max_stale: u64,
    timeout: Duration,
    max_document: usize,
    client: Client,
    keys: ArcSwapOption<KeySet>,
    /// Held for the whole of a fetch: concurrent callers wait for it and
    /// then use its result (single flight).
    fetch: tokio::sync::Mutex<FetchState>,
    /// No fetch starts before this time (clock seconds): the last attempt
    /// plus the refetch interval. Written under `fetch`.
    next_attempt: AtomicU64,
    refreshing: AtomicBool,
}

enum Source {
    Discovery(Url),
    Jwks(Url),
}

/// One fetched key set, and the times that govern it (clock seconds).
struct KeySet {
    verifier: JwtVerifier,
    /// From here a request starts a background refresh.
    refresh_at: u64,
    /// From here the set is no longer used: its lifetime plus the stale
    /// allowance.
    usable_until: u64,
    generation: u64,
}

#[derive(Default)]
struct FetchState {
    /// The discovered `jwks_uri`, kept once discovery succeeded.
    jwks_uri: Option<Url>,
    generation: u64,
}

impl OidcVerifier {
    /// Configures a verifier that discovers the key set of `issuer` (its
    /// URL exactly as the provider writes it in the `iss` claim).
    pub fn discover(issuer: impl Into<String>) -> OidcVerifierBuilder {
        OidcVerifierBuilder::new(issuer.into(), None)
    }

    /// Configures a verifier for tokens whose `iss` is `issuer`, with the
    /// key set at `jwks_url` (no discovery).
    pub fn jwks(issuer: impl Into<String>, jwks_url: impl Into<String>) -> OidcVerifierBuilder {
        OidcVerifierBuilder::new(issuer.into(), Some(jwks_url.into()))
    }

    /// The issuer whose tokens this verifier accepts.
    pub fn issuer(&self) -> &str {
        &self.shared.issuer
    }

    /// Fetches the key set now (discovering it first when needed), unless
    /// the last fetch was less than the refetch interval ago. Call it at
    /// start-up to find a misconfiguration ([`OidcError::IssuerMismatch`])
    /// before the first request does; requests fetch on their own
    /// otherwise.
    pub async fn refresh(&self) -> Result<(), OidcError> {
        let seen = self.shared.keys.load().as_ref().map(|set| set.generation);
        match self.fetch(seen).await? {
            Some(_) => Ok(()),
            None => Err(OidcError::NotYet),
        }
    }

    /// The key set to verify with now: the held one while usable (starting
    /// a background refresh once it is due), else a fresh one.
    async fn current_keys(&self, now: u64) -> Result<Arc<KeySet>, OidcError> {
        if let Some(set) = self.shared.keys.load_full()
            && now < set.usable_until
        {
            if now >= set.refresh_at {
                self.refresh_in_background(now, set.generation);
            }
            return Ok(set);
        }
        let seen = self.shared.keys.load().as_ref().map(|set| set.generation);
        self.fetch(seen).await?.ok_or(OidcError::NotYet)
    }

    fn refresh_in_background(&self, now: u64, seen: u64) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return; // Not on tokio: the set is fetched inline once unusable.
        };
        // While fetches fail, requests between two attempts start nothing.
        if now < self.shared.next_attempt.load(Ordering::Acquire)
            || self.shared.refreshing.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let verifier = self.clone();
        runtime.spawn(async move {
            // A failure is logged by `fetch`; the current set stays.
            let _ = verifier.fetch(Some(seen)).await;
            verifier.shared.refreshing.store(false, Ordering::Release);
        });
    }

    /// The one fetch path. `seen` is the generation the caller holds: when
    /// a newer usable set arrived while it waited for the lock, that set is
    /// the answer and nothing is fetched. `Ok(None)` when the last attempt
    /// was less than the refetch interval ago.
    async fn fetch(&self, seen: Option<u64>) -> Result<Option<Arc<KeySet>>, OidcError> {
        let shared = &*self.shared;
        let mut state = shared.fetch.lock().await;
        let now = shared.clock.unix_seconds();
        if let Some(set) = shared.keys.load_full()
            && Some(set.generation) != seen
            && now < set.usable_until
        {
            return Ok(Some(set));
        }
        if now < shared.next_attempt.load(Ordering::Acquire) {
            return Ok(None);
        }
        shared.next_attempt.store(
            now.saturating_add(shared.refetch_interval),
            Ordering::Release,
        );
        match self.load(&mut state, now).await {
            Ok(set) => Ok(Some(set)),
            Err(error) => {
                tracing::warn!(target: "keystile::oidc", issuer = %shared.issuer, %error, "key set fetch failed");
                Err(error)
            }
        }
    }

    async fn load(&self, state: &mut FetchState, now: u64) -> Result<Arc<KeySet>, OidcError> {
        let shared = &*self.shared;
        let jwks_uri = match (&shared.source, &state.jwks_uri) {
            (Source::Jwks(url), _) | (Source::Discovery(_), Some(url)) => url.clone(),
            (Source::Discovery(document), None) => {
                let url = self.discover_jwks_uri(document).await?;
                state.jwks_uri = Some(url.clone());
                url
            }
        };
        let (body, headers) = self.get(&jwks_uri, "the key set").await?;
        let json = std::str::from_utf8(&body)
            .map_err(|_| OidcError::InvalidDocument("the key set is not UTF-8"))?;
        let verifier = self.verifier_for(json)?;
        let (min, max) = shared.refresh;
        let lifetime = max_age(&headers).unwrap_or(min).clamp(min, max);
        state.generation += 1;
        let set = Arc::new(KeySet {
            verifier,
            refresh_at: now.saturating_add(lifetime - lifetime / 4),
            usable_until: now
                .saturating_add(lifetime)
                .saturating_add(shared.max_stale),
            generation: state.generation,
        });
        tracing::debug!(
            target: "keystile::oidc",
            issuer = %shared.issuer,
            url = %jwks_uri,
            lifetime,
            "key set fetched"
        );
        shared.keys.store(Some(Arc::clone(&set)));
        Ok(set)
    }

    async fn discover_jwks_uri(&self, document: &Url) -> Result<Url, OidcError> {
        #[derive(Deserialize)]
        struct Discovery {
            issuer: String,
            jwks_uri: String,
        }
        let (body, _) = self.get(document, "the discovery document").await?;
        let discovery: Discovery = serde_json::from_slice(&body).map_err(|_| {
            OidcError::InvalidDocument("the discovery document lacks issuer or jwks_uri")
        })?;
        if discovery.issuer != self.shared.issuer {
            return Err(OidcError::IssuerMismatch {
                configured: self.shared.issuer.clone(),
                discovered: discovery.issuer,
            });
        }
        secure_url(&discovery.jwks_uri).ok_or(OidcError::InsecureJwksUri)
    }

    async fn get(&self, url: &Url, what: &'static str) -> Result<(Vec<u8>, HeaderMap), OidcError> {
        let shared = &*self.shared;
        let response = shared
            .client
            .get(url.clone())
            .header(ACCEPT, "application/json")
            .timeout(shared.timeout)
            .send()
            .await
            .map_err(|error| transport(what, error))?;
        if response.status() != reqwest::StatusCode::OK {
            return Err(OidcError::Status {
                what,
                status: response.status().as_u16(),
            });
        }
        let headers = response.headers().clone();
        let body = http::read_capped(response, shared.max_document)
            .await
            .map_err(|error| match error {
                BodyError::TooLarge => OidcError::TooLarge(what),
                BodyError::Transport(error) => transport(what, error),
            })?;
        Ok((body, headers))
    }

    /// A [`JwtVerifier`] for this issuer over the keys of `jwks`.
    fn verifier_for(&self, jwks: &str) -> Result<JwtVerifier, OidcError> {
        let shared = &*self.shared;
        let mut builder = JwtVerifier::builder()
            .jwk_set(jwks)
            .map_err(|_| OidcError::InvalidDocument("the key set is not a JWK Set"))?
            .issuer(shared.issuer.clone())
            .algorithms(shared.algorithms.iter().copied())
            .leeway(shared.leeway)
            .clock(Arc::clone(&shared.clock));
        for audience in &shared.audiences {
            builder = builder.audience(audience.clone());
        }
        if shared.at_jwt_only {
            builder = builder.at_jwt_only();
        }
        builder.build().map_err(|error| match error {
            JwtConfigError::NoKeys => OidcError::NoUsableKeys,
            _ => OidcError::InvalidDocument("the key set holds conflicting keys"),
        })
    }
}

#[async_trait]
impl TokenVerifier for OidcVerifier {
    async fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let now = self.shared.clock.unix_seconds();
        let keys = self.current_keys(now).await?;
        match keys.verifier.verify_token(token) {
            // Perhaps signed with a key published since the set was
            // fetched: one shared, rate-limited refetch, then one retry.
            Err(TokenError::UnknownKey) => match self.fetch(Some(keys.generation)).await? {
                Some(fresh) => fresh.verifier.verify_token(token),
                None => Err(TokenError::UnknownKey),
            },
            result => result,
        }
    }
}

impl fmt::Debug for OidcVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcVerifier")
            .field("issuer", &self.shared.issuer)
            .field("audiences", &self.shared.audiences)
            .field("keys_loaded", &self.shared.keys.load().is_some())
            .finish_non_exhaustive()
    }
}

impl OidcVerifierBuilder {
    fn new(issuer: String, jwks: Option<String>) -> Self {
        Self {
            issuer,
            jwks,
            audiences: Vec::new(),
            algorithms: vec![
                JwtAlgorithm::RS256,
                JwtAlgorithm::ES256,
                JwtAlgorithm::ES384,
                JwtAlgorithm::EdDSA,
            ],
            at_jwt_only: false,
            leeway: DEFAULT_LEEWAY,
            clock: SystemClock::shared(),
            refresh: (DEFAULT_MIN_REFRESH, DEFAULT_MAX_REFRESH),
            refetch_interval: DEFAULT_REFETCH_INTERVAL,
            max_stale: DEFAULT_MAX_STALE,
            timeout: DEFAULT_FETCH_TIMEOUT,
            max_document: DEFAULT_MAX_DOCUMENT,
            proxy: None,
        }
    }

    /// Accepts only tokens whose `aud` names `audience` (call again to
    /// accept several). At least one is required.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Verifies with keys of these algorithms only (default RS256, ES256,
    /// ES384 and EdDSA).
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = JwtAlgorithm>) -> Self {
        self.algorithms = algorithms.into_iter().collect();
        self
    }

    /// Accepts only RFC 9068 JWT access tokens (header `typ: at+jwt`), so
    /// ID tokens are refused as bearer credentials.
    pub fn at_jwt_only(mut self) -> Self {
        self.at_jwt_only = true;
        self
    }

    /// Tolerates this much clock skew on `exp` and `nbf` (default 30 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Reads time from `clock`: token expiry and the key set's lifetime.
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Holds each key set's lifetime (`Cache-Control: max-age`, or `min`
    /// without it) within `min..=max` (default 5 min to 24 h).
    pub fn refresh(mut self, min: Duration, max: Duration) -> Self {
        self.refresh = (min, max);
        self
    }

    /// Least time between two fetches, whatever causes them (default 30 s,
    /// at least 1 s, whole seconds): the bound on what unknown `kid`s or a
    /// provider outage make the verifier send.
    pub fn refetch_interval(mut self, interval: Duration) -> Self {
        self.refetch_interval = interval;
        self
    }

    /// How long past its lifetime the last good key set is still used while
    /// fetches fail (default 1 h); then requests are 503.
    pub fn max_stale(mut self, max_stale: Duration) -> Self {
        self.max_stale = max_stale;
        self
    }

    /// Bounds each fetch, connection to last body byte (default 5 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Reads at most this many bytes of a discovery document or key set
    /// (default 256 KiB).
    pub fn max_document(mut self, bytes: usize) -> Self {
        self.max_document = bytes;
        self
    }

    /// Fetches through `proxy`. Without it no proxy is used, not even one
    /// named by `HTTP_PROXY`, `HTTPS_PROXY` or `ALL_PROXY`.
    pub fn proxy(mut self, proxy: Proxy) -> Self {
        self.proxy = Some(proxy);
        self
    }

    /// The verifier. Nothing is fetched yet.
    pub fn build(self) -> Result<OidcVerifier, OidcConfigError> {
        let source = match &self.jwks {
            Some(jwks) => Source::Jwks(
                secure_url(jwks).ok_or(OidcConfigError::InvalidUrl("the JWK Set URL"))?,
            ),
            None => {
                secure_url(&self.issuer).ok_or(OidcConfigError::InvalidUrl("the issuer"))?;
                let document = format!("{}{DISCOVERY_PATH}", self.issuer.trim_end_matches('/'));
                Source::Discovery(
                    secure_url(&document).ok_or(OidcConfigError::InvalidUrl("the issuer"))?,
                )
            }
        };
        if self.audiences.is_empty() {
            return Err(OidcConfigError::NoAudience);
        }
        if self.algorithms.is_empty() {
            return Err(OidcConfigError::NoAlgorithms);
        }
        let (min, max) = (self.refresh.0.as_secs(), self.refresh.1.as_secs());
        if min == 0 || min > max {
            return Err(OidcConfigError::RefreshBounds);
        }
        if self.refetch_interval.as_secs() == 0 {
            return Err(OidcConfigError::RefetchInterval);
        }
        Ok(OidcVerifier {
            shared: Arc::new(Shared {
                issuer: self.issuer,
                source,
                audiences: self.audiences,
                algorithms: self.algorithms,
                at_jwt_only: self.at_jwt_only,
                leeway: self.leeway,
                clock: self.clock,
                refresh: (min, max),
                refetch_interval: self.refetch_interval.as_secs(),
                max_stale: self.max_stale.as_secs(),
                timeout: self.timeout,
                max_document: self.max_document,
                client: http::client(self.proxy).map_err(OidcConfigError::Client)?,
                keys: ArcSwapOption::empty(),
                fetch: tokio::sync::Mutex::new(FetchState::default()),
                next_attempt: AtomicU64::new(0),
                refreshing: AtomicBool::new(false),
            }),
        })
    }
}

/// `text` as a URL when it is https, or http to a loopback address (a
/// provider on the same host, a test).
fn secure_url(text: &str) -> Option<Url> {
    let url = Url::parse(text).ok()?;
    let host = url.host_str()?;
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match url.scheme() {
        "https" => Some(url),
        "http" if loopback => Some(url),
        _ => None,
    }
}

/// The `max-age` (seconds) of a response's `Cache-Control`, if it gives one
/// and does not forbid caching.
fn max_age(headers: &HeaderMap) -> Option<u64> {
    let mut age = None;
    for value in headers.get_all(CACHE_CONTROL) {
        for directive in value.to_str().ok()?.split(',') {
            let directive = directive.trim_ascii();
            if directive.eq_ignore_ascii_case("no-store")
                || directive.eq_ignore_ascii_case("no-cache")
            {
                return None;
            }
            if let Some((name, seconds)) = directive.split_once('=')
                && name.trim_ascii().eq_ignore_ascii_case("max-age")
            {
                age = seconds.trim_ascii().trim_matches('"').parse().ok();
            }
        }
    }
    age
}

fn transport(what: &'static str, error: reqwest::Error) -> OidcError {
    if error.is_timeout() {
        OidcError::Timeout(what)
    } else {
        OidcError::Unreachable {
            what,
            source: Arc::new(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn cache_control(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(CACHE_CONTROL, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn max_age_is_read_unless_caching_is_forbidden() {
        assert_eq!(max_age(&cache_control("public, max-age=3600")), Some(3600));
        assert_eq!(
            max_age(&cache_control("Max-Age=60, must-revalidate")),
            Some(60)
        );
        assert_eq!(max_age(&cache_control("no-cache, max-age=3600")), None);
        assert_eq!(max_age(&cache_control("no-store")), None);
        assert_eq!(max_age(&cache_control("max-age=soon")), None);
        assert_eq!(max_age(&HeaderMap::new()), None);
    }

    #[test]
    fn urls_must_be_https_or_loopback_http() {
        assert!(secure_url("https://idp.example.test/realms/a").is_some());
        assert!(secure_url("http://127.0.0.1:8080").is_some());
        assert!(secure_url("http://[::1]:8080/x").is_some());
        assert!(secure_url("http://localhost:3000").is_some());
        assert!(secure_url("http://idp.example.test").is_none());
        assert!(secure_url("http://10.0.0.1").is_none());
        assert!(secure_url("ftp://idp.example.test").is_none());
        assert!(secure_url("not a url").is_none());
    }

    #[test]
    fn configuration_is_validated_when_built() {
        let err = |builder: OidcVerifierBuilder| builder.build().unwrap_err();
        assert!(matches!(
            err(OidcVerifier::discover("https://idp.example.test")),
            OidcConfigError::NoAudience
        ));
        assert!(matches!(
            err(OidcVerifier::discover("http://idp.example.test").audience("a")),
            OidcConfigError::InvalidUrl(_)
        ));
        assert!(matches!(
            err(
                OidcVerifier::jwks("https://idp.example.test", "http://idp.example.test/jwks")
                    .audience("a")
            ),
            OidcConfigError::InvalidUrl(_)
        ));
        assert!(matches!(
            err(OidcVerifier::discover("https://idp.example.test")
                .audience("a")
                .algorithms([])),
            OidcConfigError::NoAlgorithms
        ));
        assert!(matches!(
            err(OidcVerifier::discover("https://idp.example.test")
                .audience("a")
                .refresh(Duration::from_secs(600), Duration::from_secs(60))),
            OidcConfigError::RefreshBounds
        ));
        assert!(matches!(
            err(OidcVerifier::discover("https://idp.example.test")
                .audience("a")
                .refetch_interval(Duration::from_millis(900))),
            OidcConfigError::RefetchInterval
        ));
    }
}
