//! [`CspReports`]: the endpoint browsers send Content-Security-Policy
//! violation reports to.
//!
//! It accepts both formats browsers send: `application/csp-report` (the
//! `report-uri` directive: `{"csp-report": {…}}`) and
//! `application/reports+json` (the Reporting API behind `report-to`: a list
//! of reports, of which those of type `csp-violation` are read). Each
//! violation becomes one `tracing` event (target `keystile::csp`, level
//! warn) with the document, the directive, the blocked resource and the
//! disposition — URLs with their credential parameters redacted as the
//! access log does, every field cut to 256 characters — and is handed to an
//! optional callback.
//!
//! | request | response |
//! |---------|----------|
//! | a report in either format | 204 |
//! | another content type | 415 |
//! | a body over the cap (default 16 KiB) | 413, unread past the cap |
//! | not JSON of the format its type names | 400 |
//! | over the per-source budget (default 20 violations a minute per client address; an IPv6 client is its /64) | 429 with `Retry-After`; a batch is cut at the budget |
//!
//! The per-source budget is kept for a bounded number of sources (default
//! 10 000, constant-time eviction), so a flood of reports from many
//! addresses costs bounded memory. Sources come from [`ClientIp`]; requests
//! without a readable address share one budget.
//!
//! ```
//! use axum::Router;
//! use keystile_middleware::csp_report::CspReports;
//!
//! let reports = CspReports::new().on_violation(|violation| {
//!     eprintln!("{} blocked {}", violation.directive, violation.blocked);
//! });
//! let app: Router = Router::new().route("/csp-reports", reports.method_router());
//! ```

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, post};
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{Request, StatusCode};
use keystile_core::clock::{SharedClock, SystemClock};
use keystile_core::rejection::{Reason, Rejection};
use quick_cache::sync::Cache;
use serde_json::Value;

use crate::access_log::AccessLog;
use crate::client_ip::ClientIp;

const SOURCE: &str = "CspReports";

/// Default cap on a report body.
pub const DEFAULT_MAX_BODY: usize = 16 * 1024;
/// Default reports accepted per source per window.
pub const DEFAULT_PER_SOURCE: u32 = 20;
/// Default budget window.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(60);
/// Default number of sources whose budget is remembered.
pub const DEFAULT_SOURCES: usize = 10_000;
/// Longest text kept of any report field.
const MAX_FIELD: usize = 256;

/// One reported violation.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CspViolation {
    /// The page the violation happened on (credential parameters redacted).
    pub document: String,
    /// The directive that was violated (`script-src-elem`, …).
    pub directive: String,
    /// What was blocked: a URL (redacted likewise), `inline`, `eval`, ….
    pub blocked: String,
    /// `enforce` or `report`.
    pub disposition: String,
    /// The client address that sent the report, when readable.
    pub source: Option<IpAddr>,
}

type Callback = Arc<dyn Fn(&CspViolation) + Send + Sync>;

/// Receives CSP violation reports; see the [module docs](self). Cloning is
/// cheap.
#[derive(Clone)]
pub struct CspReports {
    config: Arc<Config>,
}

#[derive(Clone)]
struct Config {
    max_body: usize,
    per_source: u32,
    window: Duration,
    client: ClientIp,
    clock: SharedClock,
    /// Per source: the window index (high 32 bits) and the violations
    /// taken in it (low 32 bits), updated atomically.
    budgets: Arc<Cache<Option<IpAddr>, Arc<AtomicU64>>>,
    scrub: AccessLog,
    callback: Option<Callback>,
}

impl Default for CspReports {
    fn default() -> Self {
        Self::new()
    }
}

impl CspReports {
    /// The defaults: 16 KiB bodies, 20 reports a minute per source, 10 000
    /// sources remembered, client address = TCP peer, system clock.
    pub fn new() -> Self {
        Self {
            config: Arc::new(Config {
                max_body: DEFAULT_MAX_BODY,
                per_source: DEFAULT_PER_SOURCE,
                window: DEFAULT_WINDOW,
                client: ClientIp::new(),
                clock: SystemClock::shared(),
                budgets: Arc::new(Cache::new(DEFAULT_SOURCES)),
                scrub: AccessLog::new(),
                callback: None,
            }),
        }
    }

    /// Refuses bodies over `bytes`.
    #[must_use]
    pub fn max_body(self, bytes: usize) -> Self {
        self.with(|c| c.max_body = bytes)
    }

    /// Accepts `reports` violations per source per `window` (at least one
    /// second).
    #[must_use]
    pub fn per_source(self, reports: u32, window: Duration) -> Self {
        self.with(|c| {
            c.per_source = reports;
            c.window = window.max(Duration::from_secs(1));
        })
    }

    /// Remembers the budget of at most `sources` sources.
    #[must_use]
    pub fn sources(self, sources: usize) -> Self {
        self.with(|c| c.budgets = Arc::new(Cache::new(sources.max(1))))
    }

    /// Reads the source address with `client` (behind trusted proxies).
    #[must_use]
    pub fn client_ip(self, client: ClientIp) -> Self {
        self.with(|c| c.client = client)
    }

    /// Reads time from `clock` (tests move a `ManualClock`).
    #[must_use]
    pub fn clock(self, clock: SharedClock) -> Self {
        self.with(|c| c.clock = clock)
    }

    /// Calls `callback` with every violation accepted.
    #[must_use]
    pub fn on_violation(self, callback: impl Fn(&CspViolation) + Send + Sync + 'static) -> Self {
        self.with(|c| c.callback = Some(Arc::new(callback)))
    }

    fn with(mut self, change: impl FnOnce(&mut Config)) -> Self {
        change(Arc::make_mut(&mut self.config));
        self
    }

    /// A `POST` route answering with [`handle`](Self::handle).
    pub fn method_router<S: Clone + Send + Sync + 'static>(self) -> MethodRouter<S> {
        post(move |request: Request<Body>| {
            let reports = self.clone();
            async move { reports.handle(request).await }
        })
    }

    /// Reads one report request.
    pub async fn handle(&self, request: Request<Body>) -> Response {
        match self.config.read(request).await {
            Ok(()) => StatusCode::NO_CONTENT.into_response(),
            Err(rejection) => IntoResponse::into_response(rejection),
        }
    }
}

enum Format {
    CspReport,
    Reports,
}

impl Config {
    async fn read(&self, request: Request<Body>) -> Result<(), Rejection> {
        let format = match content_type(&request).as_deref() {
            Some("application/csp-report") => Format::CspReport,
            Some("application/reports+json") => Format::Reports,
            _ => {
                return Err(refusal(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "reports are application/csp-report or application/reports+json",
                ));
            }
        };
        let too_large = || refusal(StatusCode::PAYLOAD_TOO_LARGE, "the report is too large");
        let declared = request
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > self.max_body as u64) {
            return Err(too_large());
        }
        let source = self.client.resolve(&request).ok().map(source_key);
        if self.take(source, 0) == 0 {
            return Err(self.over_budget());
        }
        let body = axum::body::to_bytes(request.into_body(), self.max_body)
            .await
            .map_err(|_| too_large())?;
        let json: Value = serde_json::from_slice(&body)
            .map_err(|_| refusal(StatusCode::BAD_REQUEST, "the report is not JSON"))?;
        let mut violations = match format {
            Format::CspReport => vec![self.read_csp_report(&json, source)?],
            Format::Reports => self.read_reports(&json, source)?,
        };
        let wanted = u32::try_from(violations.len()).unwrap_or(u32::MAX).max(1);
        let taken = self.take(source, wanted);
        if taken == 0 {
            return Err(self.over_budget());
        }
        if (taken as usize) < violations.len() {
            tracing::warn!(
                target: "keystile::csp",
                dropped = violations.len() - taken as usize,
                source = ?source,
                "CSP violations over the source's budget dropped"
            );
            violations.truncate(taken as usize);
        }
        for violation in &violations {
            // Debug formatting quotes and escapes: a report cannot forge
            // fields or lines of its own.
            tracing::warn!(
                target: "keystile::csp",
                document = ?violation.document,
                directive = ?violation.directive,
                blocked = ?violation.blocked,
                disposition = ?violation.disposition,
                source = ?violation.source,
                "CSP violation"
            );
            if let Some(callback) = &self.callback {
                callback(violation);
            }
        }
        Ok(())
    }

    /// Takes up to `wanted` violations from `source`'s budget in the
    /// current window and says how many it took; with `wanted` 0, says
    /// whether any is left (1) or not (0) without taking.
    fn take(&self, source: Option<IpAddr>, wanted: u32) -> u32 {
        let window_secs = self.window.as_secs().max(1);
        // The window index wraps at 2^32 windows (136 years of seconds).
        let now = (self.clock.unix_seconds() / window_secs) as u32;
        let cell = self
            .budgets
            .get_or_insert_with(&source, || Ok::<_, ()>(Arc::new(AtomicU64::new(0))))
            .unwrap_or_else(|()| Arc::new(AtomicU64::new(0)));
        let mut current = cell.load(Ordering::Acquire);
        loop {
            let (window, used) = ((current >> 32) as u32, current as u32);
            let used = if window == now { used } else { 0 };
            let left = self.per_source.saturating_sub(used);
            if wanted == 0 {
                return u32::from(left > 0);
            }
            let taking = left.min(wanted);
            if taking == 0 {
                return 0;
            }
            let next = (u64::from(now) << 32) | u64::from(used + taking);
            match cell.compare_exchange(current, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return taking,
                Err(actual) => current = actual,
            }
        }
    }

    fn over_budget(&self) -> Rejection {
        let window_secs = self.window.as_secs().max(1);
        let retry = window_secs - self.clock.unix_seconds() % window_secs;
        Rejection::new(Reason::RateLimited, SOURCE)
            .with_detail("too many reports from this source")
            .with_retry_after(u32::try_from(retry).unwrap_or(u32::MAX))
    }

    fn read_csp_report(
        &self,
        json: &Value,
        source: Option<IpAddr>,
    ) -> Result<CspViolation, Rejection> {
        let report = json
            .get("csp-report")
            .filter(|r| r.is_object())
            .ok_or_else(|| refusal(StatusCode::BAD_REQUEST, "no csp-report object"))?;
        let field = |name: &str| text(report.get(name));
        let directive = match field("effective-directive") {
            d if d.is_empty() => field("violated-directive"),
            d => d,
        };
        Ok(CspViolation {
            document: self.url(&field("document-uri")),
            directive,
            blocked: self.url(&field("blocked-uri")),
            disposition: field("disposition"),
            source,
        })
    }

    fn read_reports(
        &self,
        json: &Value,
        source: Option<IpAddr>,
    ) -> Result<Vec<CspViolation>, Rejection> {
        let reports = json
            .as_array()
            .ok_or_else(|| refusal(StatusCode::BAD_REQUEST, "reports+json is a list"))?;
        Ok(reports
            .iter()
            .filter(|r| r.get("type").and_then(Value::as_str) == Some("csp-violation"))
            .filter_map(|r| r.get("body").filter(|b| b.is_object()))
            .map(|body| {
                let field = |name: &str| text(body.get(name));
                CspViolation {
                    document: self.url(&field("documentURL")),
                    directive: field("effectiveDirective"),
                    blocked: self.url(&field("blockedURL")),
                    disposition: field("disposition"),
                    source,
                }
            })
            .collect())
    }

    fn url(&self, url: &str) -> String {
        self.scrub.scrub_url(url).into_owned()
    }
}

/// The budget key of a client: its address, or for IPv6 its /64 (one
/// subscriber's allocation, which it may rotate through freely).
fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
    }
}

/// The media type of the request, lowercased, without parameters.
fn content_type(request: &Request<Body>) -> Option<String> {
    let value = request.headers().get(CONTENT_TYPE)?.to_str().ok()?;
    let essence = value.split(';').next()?.trim_matches([' ', '\t']);
    Some(essence.to_ascii_lowercase())
}

/// A report field as text, cut to [`MAX_FIELD`] characters.
fn text(value: Option<&Value>) -> String {
    let text = match value {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    // Controls, line and paragraph separators and the invisible format
    // characters (bidi overrides, zero-width) never reach a log.
    text.chars()
        .filter(|c| {
            !c.is_control()
                && !matches!(c, '\u{2028}' | '\u{2029}' | '\u{200b}'..='\u{200f}'
                    | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}')
        })
        .take(MAX_FIELD)
        .collect()
}

fn refusal(status: StatusCode, detail: &'static str) -> Rejection {
    Rejection::new(Reason::Malformed, SOURCE)
        .with_status(status)
        .with_detail(detail)
}

impl fmt::Debug for CspReports {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CspReports")
            .field("max_body", &self.config.max_body)
            .field("per_source", &self.config.per_source)
            .field("window", &self.config.window)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use keystile_core::clock::ManualClock;

    use super::*;

    fn post_report(content_type: &str, body: &str) -> Request<Body> {
        Request::post("/csp-reports")
            .header(CONTENT_TYPE, content_type)
            .body(Body::from(body.to_owned()))
            .unwrap()
    }

    fn collecting() -> (CspReports, Arc<Mutex<Vec<CspViolation>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        let reports = CspReports::new().on_violation(move |v| sink.lock().unwrap().push(v.clone()));
        (reports, seen)
    }

    #[tokio::test]
    async fn both_formats_are_read_and_urls_scrubbed() {
        let (reports, seen) = collecting();
        let legacy = r#"{"csp-report": {"document-uri": "https://acme.test/_keystile/handoff?token=SECRET",
            "violated-directive": "script-src-elem", "blocked-uri": "inline", "disposition": "enforce"}}"#;
        let answer = reports
            .handle(post_report("application/csp-report", legacy))
            .await;
        assert_eq!(answer.status(), StatusCode::NO_CONTENT);
        let modern = r#"[{"type": "csp-violation", "age": 1, "url": "https://acme.test/",
            "body": {"documentURL": "https://acme.test/?code=SECRET", "effectiveDirective": "img-src",
            "blockedURL": "https://evil.test/x.png", "disposition": "report"}},
            {"type": "deprecation", "body": {}}]"#;
        let answer = reports
            .handle(post_report(
                "application/reports+json; charset=utf-8",
                modern,
            ))
            .await;
        assert_eq!(answer.status(), StatusCode::NO_CONTENT);
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        assert_eq!(
            seen[0].document,
            "https://acme.test/_keystile/handoff?token=[redacted]"
        );
        assert_eq!(seen[0].directive, "script-src-elem");
        assert_eq!(seen[1].document, "https://acme.test/?code=[redacted]");
        assert_eq!(seen[1].blocked, "https://evil.test/x.png");
        assert_eq!(seen[1].disposition, "report");
    }

    #[tokio::test]
    async fn wrong_type_oversize_and_garbage_are_refused() {
        let (reports, seen) = collecting();
        let reports = reports.max_body(64);
        let status = |r: Response| r.status();
        assert_eq!(
            status(reports.handle(post_report("application/json", "{}")).await),
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        let big = format!(
            r#"{{"csp-report": {{"document-uri": "{}"}}}}"#,
            "a".repeat(100)
        );
        assert_eq!(
            status(
                reports
                    .handle(post_report("application/csp-report", &big))
                    .await
            ),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        for garbage in ["not json", "[]", r#"{"other": 1}"#] {
            assert_eq!(
                status(
                    reports
                        .handle(post_report("application/csp-report", garbage))
                        .await
                ),
                StatusCode::BAD_REQUEST,
                "{garbage}"
            );
        }
        assert!(seen.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_batch_is_charged_per_violation_and_cut_at_the_budget() {
        let (reports, seen) = collecting();
        let reports = reports.per_source(3, Duration::from_secs(60));
        let one = r#"{"type": "csp-violation", "body": {"blockedURL": "inline"}}"#;
        let batch = format!("[{}]", [one; 5].join(","));
        let answer = reports
            .handle(post_report("application/reports+json", &batch))
            .await;
        assert_eq!(answer.status(), StatusCode::NO_CONTENT);
        assert_eq!(seen.lock().unwrap().len(), 3, "cut at the budget");
        let answer = reports
            .handle(post_report("application/reports+json", &batch))
            .await;
        assert_eq!(answer.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(seen.lock().unwrap().len(), 3);
    }

    #[test]
    fn ipv6_sources_share_their_slash_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(source_key(a), source_key(b));
        assert_ne!(source_key(a), source_key(c));
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(source_key(v4), v4);
    }

    #[test]
    fn report_text_loses_what_could_forge_a_log_line() {
        let forged = Value::String("x\u{2028}directive=\u{202e}evil\u{200b}\n".into());
        assert_eq!(text(Some(&forged)), "xdirective=evil");
    }

    #[tokio::test]
    async fn each_source_has_a_budget_per_window_on_the_clock() {
        let clock = ManualClock::at_unix(1_700_000_020); // 40 s into a minute
        let reports = CspReports::new()
            .per_source(2, Duration::from_secs(60))
            .clock(clock.shared());
        let report = r#"{"csp-report": {"blocked-uri": "inline"}}"#;
        let send = || reports.handle(post_report("application/csp-report", report));
        assert_eq!(send().await.status(), StatusCode::NO_CONTENT);
        assert_eq!(send().await.status(), StatusCode::NO_CONTENT);
        let refused = send().await;
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.headers()["retry-after"], "20");
        clock.advance(Duration::from_secs(20));
        assert_eq!(send().await.status(), StatusCode::NO_CONTENT);
    }
}
