//! [`RateLimitLayer`]: refuses requests over their [`Policy`]'s limit with
//! 429, and tells every client its budget in the IETF `RateLimit` headers.
//!
//! A policy is a name, a [`Limiter`] (the limit and where its state lives:
//! [`MemoryLimiter`](keystile_core::rate_limit::MemoryLimiter) or, across a
//! fleet, `RedisLimiter`), what requests are counted by ([`KeyBy`]: the
//! client address, the authenticated principal, a header's value, one
//! budget for the route, or a function of yours), and what a failing
//! limiter means:
//!
//! - [`Policy::security`]: fail closed — a limiter that cannot answer is
//!   503, as for a login, token or key-minting route, whose limit is a
//!   defence;
//! - [`Policy::traffic`]: fail open — the request goes on and a warning is
//!   logged, for limits that only share capacity fairly.
//!
//! Several policies stack on one route (a burst limit and an hourly one);
//! every policy whose key the request has is counted, in order, and the
//! first refusal answers. A policy keyed by something the request lacks (no
//! principal, no such header) does not apply to it.
//!
//! | outcome | response |
//! |---|---|
//! | every policy allows | the route's response, with `RateLimit-Policy` naming every policy that applied and `RateLimit` the one closest to its limit |
//! | a policy refuses | 429 problem+json `rate_limited`, `Retry-After` (whole seconds, at least 1), the same headers |
//! | a security policy's limiter fails | 503 problem+json with `Retry-After` |
//! | a traffic policy's limiter fails | the request goes on; a warning (target `keystile::rate_limit`) |
//! | client address unknown (no `ConnectInfo`) / unreadable forwarding header | 500 naming the fix / 400 |
//!
//! The header format is that of the IETF httpapi draft
//! (`RateLimit-Policy: "per-ip";q=5;w=10`, `RateLimit: "per-ip";r=4;t=2`);
//! [`legacy_headers`](RateLimitLayer::legacy_headers) adds
//! `X-RateLimit-Limit`, `-Remaining` and `-Reset`.
//!
//! ```
//! use std::time::Duration;
//! use axum::{Router, routing::get};
//! use keystile_core::rate_limit::{Limit, MemoryLimiter};
//! use keystile_middleware::client_ip::ClientIp;
//! use keystile_middleware::rate_limit::{KeyBy, Policy, RateLimitLayer};
//!
//! let per_ip = MemoryLimiter::new(Limit::per(5, Duration::from_secs(10)).unwrap());
//! let app: Router = Router::new()
//!     .route("/limited", get(|| async { "ok" }))
//!     .route_layer(RateLimitLayer::new(Policy::traffic(
//!         "per-ip",
//!         per_ip,
//!         KeyBy::ClientIp(ClientIp::new()),
//!     )));
//! ```

use std::borrow::Cow;
use std::fmt;
use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use http::header::HeaderName;
use http::{HeaderMap, HeaderValue, Request, StatusCode};
use keystile_core::identity::Principal;
use keystile_core::layers_seen::LayersSeen;
use keystile_core::rate_limit::{Decision, FailureLog, Limiter};
use keystile_core::rejection::{Reason, Rejection, RenderedRejection};
use sha2::{Digest, Sha256};
use tower_layer::Layer;
use tower_service::Service;

use crate::client_ip::{ClientIp, ClientIpError};

const SOURCE: &str = "RateLimitLayer";

/// The `RateLimit-Policy` header (IETF httpapi draft).
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// The `RateLimit` header (IETF httpapi draft).
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
const X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
const X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
const X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

/// A user function naming the key a request is counted by (`None`: the
/// policy does not apply to it).
pub type KeyFn = Arc<dyn Fn(&http::request::Parts) -> Option<String> + Send + Sync>;

/// What a policy counts requests by.
#[derive(Clone)]
#[non_exhaustive]
pub enum KeyBy {
    /// The client address, resolved behind the proxies `ClientIp` trusts
    /// (the resolver `IpFilterLayer` uses).
    ClientIp(ClientIp),
    /// The authenticated [`Principal`]: its method and subject (an API
    /// key's owner, so one owner's keys share a budget; a token's `sub`).
    /// The auth layer must run first (add the rate limit with
    /// `route_layer` before the auth layer); without any auth layer the
    /// request is a 500 naming the fix, and a request the auth layer let
    /// through anonymously (`optional`) is not counted by this policy.
    Principal,
    /// The value of a header, hashed (SHA-256) before it is used as a key.
    Header(HeaderName),
    /// One budget for every request the layer sees (a route, a service).
    Global,
    /// A function of the request head.
    Custom(KeyFn),
}

impl KeyBy {
    /// Keys by `key(parts)`.
    pub fn custom(
        key: impl Fn(&http::request::Parts) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        Self::Custom(Arc::new(key))
    }

    /// The key `parts` is counted under by the policy `policy`: its name
    /// first, so policies sharing one backend (a Redis prefix) keep apart.
    fn key_of(
        &self,
        policy: &str,
        parts: &http::request::Parts,
    ) -> Result<Option<String>, Rejection> {
        Ok(match self {
            Self::ClientIp(resolver) => {
                let ip = resolver
                    .resolve_head(&parts.headers, &parts.extensions)
                    .map_err(client_ip_rejection)?;
                Some(ip_key(policy, ip))
            }
            Self::Principal => match parts.extensions.get::<Principal>() {
                Some(who) => Some(format!(
                    "{policy}:principal:{}:{}",
                    who.method(),
                    who.subject
                )),
                // An auth layer ran and found nobody: the policy does not
                // apply. No auth layer at all is a wiring mistake.
                None if LayersSeen::any(&parts.extensions) => None,
                None => {
                    return Err(Rejection::new(Reason::MissingLayer, SOURCE).with_detail(
                        "a RateLimitLayer keyed by the principal needs an auth layer that runs \
                         before it: add the auth layer with `.route_layer(...)` after the rate limit",
                    ));
                }
            },
            Self::Header(name) => {
                let mut values = parts.headers.get_all(name).iter();
                values.next().map(|first| {
                    let mut hash = Sha256::new();
                    hash.update(first.as_bytes());
                    for more in values {
                        hash.update(b"\n");
                        hash.update(more.as_bytes());
                    }
                    let digest: [u8; 32] = hash.finalize().into();
                    let mut key = format!("{policy}:header:");
                    for byte in digest {
                        let _ = write!(key, "{byte:02x}");
                    }
                    key
                })
            }
            Self::Global => Some(format!("{policy}:global")),
            Self::Custom(key) => key(parts).map(|key| format!("{policy}:custom:{key}")),
        })
    }
}

fn client_ip_rejection(error: ClientIpError) -> Rejection {
    match error {
        ClientIpError::MissingConnectInfo => Rejection::new(Reason::MissingLayer, SOURCE)
            .with_detail(
                "RateLimitLayer needs the client address: serve the router with \
                 `into_make_service_with_connect_info::<SocketAddr>()`",
            ),
        ClientIpError::BadForwardedHeader => Rejection::new(Reason::Malformed, SOURCE)
            .with_status(StatusCode::BAD_REQUEST)
            .with_detail("the forwarding header is not a list of addresses"),
    }
}

impl fmt::Debug for KeyBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ClientIp(_) => f.write_str("ClientIp"),
            Self::Principal => f.write_str("Principal"),
            Self::Header(name) => write!(f, "Header({name})"),
            Self::Global => f.write_str("Global"),
            Self::Custom(_) => f.write_str("Custom"),
        }
    }
}

/// What a failing limiter means for the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnFailure {
    /// 503: the limit is a defence and must hold.
    FailClosed,
    /// The request goes on, with a warning.
    FailOpen,
}

/// One limit on a route; see the [module docs](self).
#[derive(Clone)]
pub struct Policy {
    name: Cow<'static, str>,
    limiter: Arc<dyn Limiter>,
    key: KeyBy,
    on_failure: OnFailure,
    /// The name as a structured-field string, written once.
    quoted: String,
    /// This policy's `RateLimit-Policy` item, written once.
    described: String,
}

impl Policy {
    /// A limit that is a defence (login, token, key minting): a limiter
    /// that cannot answer is 503.
    pub fn security(name: impl Into<Cow<'static, str>>, limiter: impl Limiter, key: KeyBy) -> Self {
        Self::new(name, Arc::new(limiter), key, OnFailure::FailClosed)
    }

    /// A limit that shares capacity: a limiter that cannot answer lets the
    /// request through, with a warning.
    pub fn traffic(name: impl Into<Cow<'static, str>>, limiter: impl Limiter, key: KeyBy) -> Self {
        Self::new(name, Arc::new(limiter), key, OnFailure::FailOpen)
    }

    /// A policy over a shared limiter, with the failure mode given.
    pub fn new(
        name: impl Into<Cow<'static, str>>,
        limiter: Arc<dyn Limiter>,
        key: KeyBy,
        on_failure: OnFailure,
    ) -> Self {
        let name = name.into();
        let quoted = quoted(&name);
        let limit = limiter.limit();
        let described = format!(
            "{quoted};q={};w={}",
            limit.requests(),
            whole_seconds(limit.window()).max(1)
        );
        Self {
            name,
            limiter,
            key,
            on_failure,
            quoted,
            described,
        }
    }

    /// The policy's name, as the headers give it.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("name", &self.name)
            .field("limit", &self.limiter.limit())
            .field("key", &self.key)
            .field("on_failure", &self.on_failure)
            .finish()
    }
}

/// Enforces [`Policy`]s in front of a service; see the [module docs](self).
#[derive(Clone, Debug)]
pub struct RateLimitLayer {
    config: Arc<Config>,
}

#[derive(Clone, Debug)]
struct Config {
    policies: Vec<Policy>,
    legacy_headers: bool,
    /// `RateLimit-Policy` when every policy applies (the usual case).
    all_policies: HeaderValue,
}

impl Config {
    fn new(policies: Vec<Policy>, legacy_headers: bool) -> Self {
        let all_policies = describe(policies.iter());
        Self {
            policies,
            legacy_headers,
            all_policies,
        }
    }
}

/// The `RateLimit-Policy` value naming `policies`.
fn describe<'a>(policies: impl Iterator<Item = &'a Policy>) -> HeaderValue {
    let text = policies
        .map(|policy| policy.described.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    HeaderValue::try_from(text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

impl RateLimitLayer {
    /// A layer enforcing `policy`.
    pub fn new(policy: Policy) -> Self {
        Self {
            config: Arc::new(Config::new(vec![policy], false)),
        }
    }

    /// Enforces `policy` too, after the ones before it.
    #[must_use]
    pub fn policy(mut self, policy: Policy) -> Self {
        let mut policies = self.config.policies.clone();
        policies.push(policy);
        self.config = Arc::new(Config::new(policies, self.config.legacy_headers));
        self
    }

    /// Adds `X-RateLimit-Limit`, `X-RateLimit-Remaining` and
    /// `X-RateLimit-Reset` (seconds) beside the IETF headers, for clients
    /// that read only those.
    #[must_use]
    pub fn legacy_headers(mut self) -> Self {
        Arc::make_mut(&mut self.config).legacy_headers = true;
        self
    }
}

/// The verdict on one request, before the inner service runs.
enum Verdict {
    /// Go on; what to tell the client on the response.
    Pass(Report),
    /// Answer this instead.
    Stop(Response),
}

/// The budgets a response reports: which policies applied, and the
/// decision of the one closest to its limit.
struct Report {
    /// `RateLimit-Policy`, or `None` when no policy applied.
    policies: Option<HeaderValue>,
    tightest: Option<(usize, Decision)>,
}

impl Config {
    async fn decide(&self, parts: &http::request::Parts) -> Verdict {
        // Indices of the policies that applied, kept only once one did not.
        let mut applied: Option<Vec<usize>> = None;
        let mut tightest: Option<(usize, Decision)> = None;
        let mut any = false;
        for (index, policy) in self.policies.iter().enumerate() {
            let key = match policy.key.key_of(&policy.name, parts) {
                Ok(Some(key)) => key,
                Ok(None) => {
                    applied.get_or_insert_with(|| (0..index).collect());
                    continue;
                }
                Err(rejection) => return Verdict::Stop(IntoResponse::into_response(rejection)),
            };
            match policy.limiter.check(&key).await {
                Ok(decision) => {
                    any = true;
                    if let Some(applied) = &mut applied {
                        applied.push(index);
                    }
                    // The policy closest to its limit is the one a client
                    // should heed; a refusal is that one.
                    if !decision.allowed
                        || tightest.is_none_or(|(_, t)| decision.remaining < t.remaining)
                    {
                        tightest = Some((index, decision));
                    }
                    if !decision.allowed {
                        let seconds = whole_seconds(decision.retry_after).max(1);
                        let mut response = IntoResponse::into_response(
                            Rejection::new(Reason::RateLimited, SOURCE)
                                .with_retry_after(u32::try_from(seconds).unwrap_or(u32::MAX)),
                        );
                        let report = self.report(applied.as_deref(), any, tightest);
                        self.write(&report, response.headers_mut());
                        return Verdict::Stop(response);
                    }
                }
                Err(error) => {
                    applied.get_or_insert_with(|| (0..index).collect());
                    match policy.on_failure {
                        OnFailure::FailClosed => {
                            tracing::warn!(target: "keystile::rate_limit", policy = %policy.name, %error, "limiter failed; refusing (fail closed)");
                            return Verdict::Stop(IntoResponse::into_response(Rejection::new(
                                Reason::BackendUnavailable,
                                SOURCE,
                            )));
                        }
                        OnFailure::FailOpen => {
                            tracing::warn!(target: "keystile::rate_limit", policy = %policy.name, %error, "limiter failed; letting the request through (fail open)");
                        }
                    }
                }
            }
        }
        Verdict::Pass(self.report(applied.as_deref(), any, tightest))
    }

    fn report(
        &self,
        applied: Option<&[usize]>,
        any: bool,
        tightest: Option<(usize, Decision)>,
    ) -> Report {
        let policies = match applied {
            _ if !any => None,
            // Every policy applied: the value written when the layer was built.
            None => Some(self.all_policies.clone()),
            Some(applied) => Some(describe(applied.iter().map(|&index| &self.policies[index]))),
        };
        Report { policies, tightest }
    }

    /// Writes `report` into a response's headers: `RateLimit-Policy`, then
    /// `RateLimit` (and the legacy headers) for the tightest policy.
    fn write(&self, report: &Report, headers: &mut HeaderMap) {
        let Some(policies) = &report.policies else {
            return;
        };
        headers.insert(RATELIMIT_POLICY, policies.clone());
        let Some((index, decision)) = report.tightest else {
            return;
        };
        let reset = whole_seconds(decision.reset_after);
        let quoted = &self.policies[index].quoted;
        let mut value = String::with_capacity(quoted.len() + 24);
        value.push_str(quoted);
        value.push_str(";r=");
        let mut digits = itoa::Buffer::new();
        value.push_str(digits.format(decision.remaining));
        value.push_str(";t=");
        value.push_str(digits.format(reset));
        if let Ok(value) = HeaderValue::try_from(value) {
            headers.insert(RATELIMIT, value);
        }
        if self.legacy_headers {
            headers.insert(
                X_RATELIMIT_LIMIT,
                HeaderValue::from(decision.limit.requests()),
            );
            headers.insert(X_RATELIMIT_REMAINING, HeaderValue::from(decision.remaining));
            headers.insert(X_RATELIMIT_RESET, HeaderValue::from(reset));
        }
    }
}

/// The key of a client address under `policy`: the address's bytes in
/// hex, written without the formatting machinery (this runs on every
/// request of a per-address policy).
fn ip_key(policy: &str, ip: std::net::IpAddr) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let octets: &[u8] = match &ip {
        std::net::IpAddr::V4(v4) => &v4.octets(),
        std::net::IpAddr::V6(v6) => &v6.octets(),
    };
    let mut key = String::with_capacity(policy.len() + 4 + 2 * octets.len());
    key.push_str(policy);
    key.push_str(":ip:");
    for byte in octets {
        key.push(char::from(HEX[usize::from(byte >> 4)]));
        key.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    key
}

/// A structured-field string: the name in quotes, with `"` and `\` escaped.
fn quoted(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for c in name
        .chars()
        .filter(|c| c.is_ascii() && !c.is_ascii_control())
    {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// `duration` in whole seconds, rounded up.
fn whole_seconds(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}

/// The service [`RateLimitLayer`] wraps around a route.
#[derive(Clone, Debug)]
pub struct RateLimit<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S, B> Service<Request<B>> for RateLimit<S>
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

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // The clone takes over readiness from the instance polled ready.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let config = Arc::clone(&self.config);
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            match config.decide(&parts).await {
                Verdict::Stop(response) => Ok(response),
                Verdict::Pass(report) => {
                    let mut response = inner.call(Request::from_parts(parts, body)).await?;
                    config.write(&report, response.headers_mut());
                    Ok(response)
                }
            }
        })
    }
}

/// Throttles failed authentication: wrap it around an auth layer (add it
/// after the auth layer with `route_layer`, so it runs first).
///
/// Each request is counted under every key it has ([`KeyBy`]: the client
/// address, a username header, a function of the request). A request
/// whose auth layer refuses it as invalid or malformed counts as a failure
/// of each key; a [`Backoff`](keystile_core::rate_limit::Backoff) turns the
/// count into a delay that doubles, then a lock-out. While a key is
/// blocked, its requests are answered 429 with `Retry-After` before the
/// auth layer sees them. A success clears the request's keys, except the
/// client address (one good account must not launder an address's
/// failures). A request that presents nothing is not a failure.
///
/// The decision uses only what the request presents, never whether the
/// account exists: known and unknown usernames are throttled alike. A
/// failing log is 503: throttling is a defence.
///
/// A failure is counted once the auth layer has answered, so guesses sent
/// in parallel before the first one fails are all decided: stack a
/// security [`RateLimitLayer`] policy keyed the same way, whose count is
/// taken before the request runs, to bound them.
///
/// ```
/// use axum::{Router, routing::get};
/// use keystile_core::api_key::MemoryApiKeyStore;
/// use keystile_core::rate_limit::{Backoff, MemoryFailureLog};
/// use keystile_middleware::api_key::{ApiKeyLayer, ApiKeys};
/// use keystile_middleware::client_ip::ClientIp;
/// use keystile_middleware::rate_limit::{KeyBy, ThrottleLayer};
///
/// let store = std::sync::Arc::new(MemoryApiKeyStore::new());
/// let app: Router = Router::new()
///     .route("/api", get(|| async { "ok" }))
///     .route_layer(ApiKeyLayer::new(ApiKeys::new(store)))
///     .route_layer(ThrottleLayer::new(
///         MemoryFailureLog::new(Backoff::default()),
///         KeyBy::ClientIp(ClientIp::new()),
///     ));
/// ```
#[derive(Clone)]
pub struct ThrottleLayer {
    config: Arc<ThrottleConfig>,
}

struct ThrottleConfig {
    log: Arc<dyn FailureLog>,
    keys: Vec<KeyBy>,
}

impl ThrottleLayer {
    /// Counts failures in `log` under `key`.
    pub fn new(log: impl FailureLog, key: KeyBy) -> Self {
        Self {
            config: Arc::new(ThrottleConfig {
                log: Arc::new(log),
                keys: vec![key],
            }),
        }
    }

    /// Counts failures under `key` too.
    #[must_use]
    pub fn key(mut self, key: KeyBy) -> Self {
        let mut keys = self.config.keys.clone();
        keys.push(key);
        self.config = Arc::new(ThrottleConfig {
            log: Arc::clone(&self.config.log),
            keys,
        });
        self
    }
}

impl fmt::Debug for ThrottleLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThrottleLayer")
            .field("keys", &self.config.keys)
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for ThrottleLayer {
    type Service = Throttle<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Throttle {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}

/// The service [`ThrottleLayer`] wraps around a route.
#[derive(Clone)]
pub struct Throttle<S> {
    inner: S,
    config: Arc<ThrottleConfig>,
}

impl<S> fmt::Debug for Throttle<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Throttle")
            .field("keys", &self.config.keys)
            .finish_non_exhaustive()
    }
}

/// Whether a refusal is a failed attempt: something was presented, and it
/// is not a valid credential.
fn is_failed_attempt(reason: Reason) -> bool {
    matches!(reason, Reason::InvalidCredentials | Reason::Malformed)
}

impl ThrottleConfig {
    /// The request's keys, and whether each survives a success.
    fn keys_of(&self, parts: &http::request::Parts) -> Result<Vec<(String, bool)>, Rejection> {
        let mut keys = Vec::with_capacity(self.keys.len());
        for key in &self.keys {
            if let Some(value) = key.key_of("throttle", parts)? {
                keys.push((value, matches!(key, KeyBy::ClientIp(_))));
            }
        }
        Ok(keys)
    }

    async fn blocked_for(&self, keys: &[(String, bool)]) -> Result<Duration, Rejection> {
        let mut longest = Duration::ZERO;
        for (key, _) in keys {
            let blocked = self.log.blocked_for(key).await.map_err(|error| {
                tracing::warn!(target: "keystile::rate_limit", %error, "failure log failed; refusing (fail closed)");
                Rejection::new(Reason::BackendUnavailable, SOURCE)
            })?;
            longest = longest.max(blocked);
        }
        Ok(longest)
    }

    /// Records the outcome for every key: a failure when the auth layer
    /// refused the request as `refusal`, a success when it passed.
    async fn learn(&self, keys: &[(String, bool)], refusal: Option<Reason>, success: bool) {
        for (key, survives_success) in keys {
            let outcome = match refusal {
                Some(reason) if is_failed_attempt(reason) => self.log.failed(key).await.map(|_| ()),
                None if success && !survives_success => self.log.succeeded(key).await,
                _ => Ok(()),
            };
            if let Err(error) = outcome {
                tracing::warn!(target: "keystile::rate_limit", %error, "failure log could not record an attempt");
            }
        }
    }
}

impl<S, B> Service<Request<B>> for Throttle<S>
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

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let config = Arc::clone(&self.config);
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let keys = match config.keys_of(&parts) {
                Ok(keys) => keys,
                Err(rejection) => return Ok(IntoResponse::into_response(rejection)),
            };
            match config.blocked_for(&keys).await {
                Ok(blocked) if blocked > Duration::ZERO => {
                    let seconds = u32::try_from(whole_seconds(blocked)).unwrap_or(u32::MAX);
                    return Ok(IntoResponse::into_response(
                        Rejection::new(Reason::RateLimited, SOURCE)
                            .with_detail("too many failed attempts; retry later")
                            .with_retry_after(seconds),
                    ));
                }
                Ok(_) => {}
                Err(rejection) => return Ok(IntoResponse::into_response(rejection)),
            }
            let response = inner.call(Request::from_parts(parts, body)).await?;
            let refusal = response
                .extensions()
                .get::<RenderedRejection>()
                .map(|rendered| rendered.rejection.reason());
            let success = response.status().is_success();
            config.learn(&keys, refusal, success).await;
            Ok(response)
        })
    }
}
