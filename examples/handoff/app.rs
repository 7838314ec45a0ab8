//! The handoff example app: an operator console and two tenant admins on
//! one port, told apart by the `Host` header.
//!
//! - `localhost:PORT` is the operator console. `GET /` lists the tenants
//!   with an "Impersonate" button; `POST /impersonate/{tenant}` answers 303
//!   to the tenant's handoff URL, minted for the tenant's admin with
//!   operator 7 as the actor. The console sets no cookie.
//! - `{tenant}.localhost:PORT` is that tenant's admin: the handoff path
//!   (`HandoffLayer`), `GET /admin/` (who is signed in) and
//!   `GET /admin/whoami` (JSON), both behind `SessionLayer`.
//!
//! Integration and browser tests include this file, so they exercise the
//! same app `cargo run --example handoff` serves.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Request};
use axum::http::header::{CACHE_CONTROL, LOCATION, REFERRER_POLICY};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use keystile::clock::{SharedClock, SystemClock};
use keystile::handoff::{Handoff, HandoffCodec, HandoffIssuer, HandoffLayer, Scheme, TenantOrigin};
use keystile::keys::Keyring;
use keystile::replay::{MemoryReplayStore, SharedReplayStore};
use keystile::session::{Session, SessionCookie, SessionCookies, SessionLayer};
use keystile::tenant::{HostTenant, TenantResolver, request_authority};
use tower::ServiceExt as _;

/// The tenants the console lists.
pub const TENANTS: [&str; 2] = ["acme", "globex"];

/// The operator the console acts as (a demo: a real console has its own
/// operator login).
pub const OPERATOR_ID: &str = "7";

/// The domain tenants live under.
pub const PARENT_DOMAIN: &str = "localhost";

/// What the app needs: the signing keys, the replay store and the port it
/// is reachable on (to build tenant URLs).
#[derive(Clone)]
pub struct AppConfig {
    /// Signs handoff tokens and session cookies.
    pub keyring: Keyring,
    /// Burns handoff token ids; share it (Redis) across instances.
    pub replay: SharedReplayStore,
    /// The port browsers reach the app on.
    pub port: u16,
    /// Time source for tokens and sessions.
    pub clock: SharedClock,
}

impl AppConfig {
    /// In-memory replay store, system clock.
    pub fn new(keyring: Keyring, port: u16) -> Self {
        Self {
            keyring,
            replay: Arc::new(MemoryReplayStore::new()),
            port,
            clock: SystemClock::shared(),
        }
    }
}

/// The whole app: console on `localhost`, tenant admins on
/// `{tenant}.localhost`, 404 for any other host.
pub fn app(config: AppConfig) -> Router {
    let tenants = HostTenant::under(PARENT_DOMAIN).expect("`localhost` is a DNS name");
    let console = console(&config);
    let admin = tenant_admin(&config, tenants.clone());
    let dispatch = tower::service_fn(move |request: Request| {
        // The host is read once, the way the keystile layers read it: two
        // `Host` headers, or a target authority that disagrees with `Host`,
        // is a bad request here too, not a guess at which one counts.
        let (head, body) = request.into_parts();
        let target = match request_authority(&head) {
            Err(_) => Err((StatusCode::BAD_REQUEST, "ambiguous host")),
            Ok(authority) => match tenants.resolve(&head).as_deref() {
                Some(tenant) if TENANTS.contains(&tenant) => Ok(admin.clone()),
                Some(_) => Err((StatusCode::NOT_FOUND, "unknown host")),
                None if authority.is_some_and(is_console_host) => Ok(console.clone()),
                None => Err((StatusCode::NOT_FOUND, "unknown host")),
            },
        };
        async move {
            match target {
                Ok(router) => router.oneshot(Request::from_parts(head, body)).await,
                Err(refusal) => Ok::<_, Infallible>(refusal.into_response()),
            }
        }
    });
    Router::new().fallback_service(dispatch)
}

fn is_console_host(authority: &str) -> bool {
    keystile::dns::host_and_port(authority).is_some_and(|(host, _)| host == PARENT_DOMAIN)
}

fn console(config: &AppConfig) -> Router {
    let issuer = HandoffIssuer::new(
        HandoffCodec::new(config.keyring.clone()).clock(Arc::clone(&config.clock)),
    );
    let port = config.port;
    Router::new().route("/", get(console_page)).route(
        "/impersonate/{tenant}",
        post(
            move |Path(tenant): Path<String>, headers: HeaderMap| async move {
                if is_cross_site(&headers, port) {
                    return (StatusCode::FORBIDDEN, "cross-site request refused").into_response();
                }
                impersonate(&issuer, port, &tenant)
            },
        ),
    )
}

/// Whether a browser says this POST came from another site. Browsers send
/// `Sec-Fetch-Site` and `Origin` on form posts; clients that send neither
/// (curl, tests) are not browsers riding an operator's ambient session.
fn is_cross_site(headers: &HeaderMap, port: u16) -> bool {
    let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap_or(""));
    if let Some(site) = header("sec-fetch-site")
        && site != "same-origin"
        && site != "none"
    {
        return true;
    }
    header("origin").is_some_and(|origin| origin != format!("http://{PARENT_DOMAIN}:{port}"))
}

async fn console_page() -> Html<String> {
    let rows: String = TENANTS
        .iter()
        .map(|t| {
            format!(
                r#"<li>{t} <form method="post" action="/impersonate/{t}" style="display:inline"><button id="impersonate-{t}" type="submit">Impersonate</button></form></li>"#
            )
        })
        .collect();
    Html(format!(
        "<!doctype html><title>Operator console</title><h1>Operator console</h1>\
         <p>Signed in as operator {OPERATOR_ID}.</p><ul>{rows}</ul>"
    ))
}

fn impersonate(issuer: &HandoffIssuer, port: u16, tenant: &str) -> Response {
    if !TENANTS.contains(&tenant) {
        return (StatusCode::NOT_FOUND, "unknown tenant").into_response();
    }
    let url = TenantOrigin::for_tenant(Scheme::Http, tenant, PARENT_DOMAIN, Some(port)).and_then(
        |origin| {
            let handoff = Handoff::new(format!("admin@{tenant}"), tenant)
                .acting_as(format!("operator:{OPERATOR_ID}"));
            issuer.redirect_url(&origin, &handoff)
        },
    );
    let Ok(Ok(location)) = url.map(HeaderValue::try_from) else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "could not mint a handoff",
        )
            .into_response();
    };
    // The redirect carries the token: keep it out of Referer and caches.
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    headers.insert(LOCATION, location);
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn tenant_admin(config: &AppConfig, tenants: HostTenant) -> Router {
    let cookie = SessionCookie::http();
    let handoff = HandoffLayer::from_shared(
        config.keyring.clone(),
        Arc::clone(&config.replay),
        Arc::new(tenants.clone()),
    )
    .clock(Arc::clone(&config.clock))
    .cookie(cookie.clone())
    .landing("/admin/".parse().expect("a same-origin path"));
    let sessions = SessionLayer::new(
        SessionCookies::new(config.keyring.clone(), tenants)
            .clock(Arc::clone(&config.clock))
            .cookie(cookie),
    );
    Router::new()
        .route("/admin/", get(admin_page))
        .route("/admin/whoami", get(whoami))
        .route_layer(sessions)
        .route(
            "/",
            get(|| async { Html("<p>Tenant home. <a href=\"/admin/\">Admin</a></p>") }),
        )
        .layer(handoff)
}

async fn admin_page(session: Session) -> Html<String> {
    let by = match session.actor.as_deref() {
        Some(actor) => {
            let who = actor
                .strip_prefix("operator:")
                .map_or_else(|| escape(actor), |id| format!("operator {}", escape(id)));
            format!(r#"<p id="actor">impersonated by {who}</p>"#)
        }
        None => String::new(),
    };
    Html(format!(
        r#"<!doctype html><title>{tenant} admin</title><h1>{tenant} admin</h1><p id="subject">Signed in as {subject}</p>{by}"#,
        tenant = escape(&session.tenant),
        subject = escape(&session.subject),
    ))
}

async fn whoami(session: Session) -> Response {
    axum::Json(serde_json::json!({
        "subject": session.subject,
        "actor": session.actor,
        "tenant": session.tenant,
    }))
    .into_response()
}

fn escape(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '&' => "&amp;".to_owned(),
            '"' => "&quot;".to_owned(),
            '\'' => "&#39;".to_owned(),
            c => c.to_string(),
        })
        .collect()
}
