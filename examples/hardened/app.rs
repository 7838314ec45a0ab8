//! The hardened example app: one service with every hygiene layer around an
//! API-key route.
//!
//! - `GET /` — an HTML page with two inline scripts: one carries the
//!   response's CSP nonce and runs, the other stands for an injected script
//!   (no nonce) and is blocked; the page shows which ran. The browser
//!   reports the blocked one to `/csp-reports`.
//! - `GET /api/me` — behind `ApiKeyLayer`: the key's id and owner.
//! - `POST /csp-reports` — `CspReports` (both report formats).
//!
//! Around them, outermost first: sensitive headers marked, request ids,
//! the credential-free access log, an IP allow-list (loopback), CORS for
//! one origin, and security headers (`dev()`: no HSTS on localhost) with a
//! nonce CSP that reports to `/csp-reports`.
//!
//! `tests/hardened.rs` and `tests/browser_hardened.rs` include this file,
//! so they exercise the same app `cargo run --example hardened` serves.

use std::sync::Arc;

use axum::response::Html;
use axum::routing::get;
use axum::{Json, Router};
use http::{HeaderName, Method};
use keystile::access_log::{AccessLog, sensitive_headers};
use keystile::api_key::{ApiKey, ApiKeyAdmin, ApiKeyLayer, ApiKeys};
use keystile::cors::CorsPolicy;
use keystile::csp::{Csp, Directive};
use keystile::csp_report::CspReports;
use keystile::ip_filter::IpFilterLayer;
use keystile::request_id::RequestIdLayer;
use keystile::security_headers::{CspNonce, SecurityHeadersLayer};
use serde_json::{Value, json};
use tower::ServiceBuilder;
use tower_http::trace::TraceLayer;

/// Where the app is served and what backs it.
pub struct AppConfig {
    /// The API keys `/api/me` accepts.
    pub store: Arc<dyn ApiKeyAdmin>,
    /// The CSP report endpoint (tests add a callback to it).
    pub reports: CspReports,
    /// The one origin CORS allows (a front end on another port).
    pub cors_origin: String,
    /// The networks allowed to reach the app.
    pub allow: Vec<String>,
}

impl AppConfig {
    /// Loopback only; CORS for `http://localhost:{port + 1}`.
    pub fn new(store: Arc<dyn ApiKeyAdmin>, port: u16) -> Self {
        Self {
            store,
            reports: CspReports::new(),
            cors_origin: format!("http://localhost:{}", port.wrapping_add(1)),
            allow: vec!["127.0.0.0/8".into(), "::1/128".into()],
        }
    }
}

/// The page: a nonce'd script that runs and an "injected" one that must not.
async fn page(CspNonce(nonce): CspNonce) -> Html<String> {
    Html(format!(
        r#"<!doctype html><title>keystile hardened</title>
<h1>keystile hardened</h1>
<p id="nonced">the nonce'd script did not run</p>
<p id="injected">the injected script did not run</p>
<script nonce="{nonce}">document.getElementById("nonced").textContent = "the nonce'd script ran";</script>
<script>document.getElementById("injected").textContent = "THE INJECTED SCRIPT RAN";</script>
"#
    ))
}

async fn me(key: ApiKey) -> Json<Value> {
    Json(json!({ "key_id": key.id, "owner": &*key.owner, "scopes": key.scopes }))
}

/// The whole app. Serve it with
/// `into_make_service_with_connect_info::<SocketAddr>()`: the IP filter
/// needs the peer address.
pub fn app(config: AppConfig) -> Result<Router, Box<dyn std::error::Error>> {
    let csp = Csp::builder()
        .directive(Directive::DefaultSrc, ["'self'"])
        .directive(Directive::ObjectSrc, ["'none'"])
        .directive(Directive::BaseUri, ["'none'"])
        .directive(Directive::FormAction, ["'self'"])
        .directive(Directive::FrameAncestors, ["'none'"])
        .report_uri("/csp-reports")
        .nonce()
        .strict()
        .build()?;
    let cors = CorsPolicy::new()
        .allow_origins([config.cors_origin])
        .allow_methods([Method::GET])
        .allow_headers([
            http::header::AUTHORIZATION,
            HeaderName::from_static("x-api-key"),
        ])
        .allow_credentials()
        .build()?;
    let log = AccessLog::new();
    let api = Router::new()
        .route("/api/me", get(me))
        .route_layer(ApiKeyLayer::new(ApiKeys::new(config.store)));
    Ok(Router::new()
        .route("/", get(page))
        .route("/csp-reports", config.reports.method_router())
        .merge(api)
        // Run top to bottom; CORS sits outside the auth layer, so
        // preflights (which carry no credentials) are answered first.
        .layer(
            ServiceBuilder::new()
                .layer(sensitive_headers())
                .layer(RequestIdLayer::new())
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(log.clone())
                        .on_response(log),
                )
                .layer(IpFilterLayer::new().allow(config.allow)?)
                .layer(cors)
                .layer(SecurityHeadersLayer::dev().csp(csp)),
        ))
}
