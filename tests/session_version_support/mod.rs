//! What the session-version tests share: a userinfo endpoint the test
//! controls, a resource server behind `SessionVersionLayer`, and a TCP proxy
//! that can be cut to take a backend down without touching the shared one.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{Next, from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use keystile::auth::{LayersSeen, Principal, credentials::bearer_token};
use keystile::bearer::{BearerToken, Claims};
use keystile::identity;
use keystile::identity::AuthMethod;
use keystile::session::SessionClaims;
use keystile::session_version::{SessionVersionLayer, SessionVersionValidator};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// How the test identity provider's userinfo endpoint behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `{"sub", "session_version"}` with the current version.
    Answer,
    /// HTTP 500.
    ServerError,
    /// A 200 whose body is not JSON.
    Garbage,
    /// A 200 JSON object without `session_version`.
    MissingField,
    /// Never answers.
    Hang,
}

/// The identity provider: the source of truth for session versions.
#[derive(Clone)]
pub struct Idp {
    pub userinfo_url: String,
    versions: Arc<Mutex<HashMap<String, u64>>>,
    calls: Arc<AtomicUsize>,
    mode: Arc<Mutex<Mode>>,
    /// When set, each answer waits for one permit (after reading the version).
    gate: Arc<Mutex<Option<Arc<Semaphore>>>>,
}

impl Idp {
    /// Starts the endpoint on 127.0.0.1, on a port of its own.
    pub async fn start() -> Self {
        let idp = Self {
            userinfo_url: String::new(),
            versions: Arc::default(),
            calls: Arc::default(),
            mode: Arc::new(Mutex::new(Mode::Answer)),
            gate: Arc::default(),
        };
        let app = Router::new()
            .route("/userinfo", get(userinfo))
            .with_state(idp.clone());
        let addr = serve(app).await;
        Self {
            userinfo_url: format!("http://{addr}/userinfo"),
            ..idp
        }
    }

    pub fn set_version(&self, subject: &str, version: u64) {
        self.versions
            .lock()
            .unwrap()
            .insert(subject.to_owned(), version);
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    /// Makes answers wait for permits from the returned semaphore.
    pub fn gate(&self) -> Arc<Semaphore> {
        let gate = Arc::new(Semaphore::new(0));
        *self.gate.lock().unwrap() = Some(Arc::clone(&gate));
        gate
    }

    /// Userinfo calls received so far.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

/// Test tokens are `tok:{subject}:{sv}` (`-` for no sv); a real identity
/// provider would verify the token, this one only reads who it is for.
async fn userinfo(State(idp): State<Idp>, headers: HeaderMap) -> Response {
    idp.calls.fetch_add(1, Ordering::SeqCst);
    let Ok(Some(token)) = bearer_token(&headers) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let Some((subject, _)) = parse_token(token) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let version = idp
        .versions
        .lock()
        .unwrap()
        .get(&subject)
        .copied()
        .unwrap_or(0);
    let gate = idp.gate.lock().unwrap().clone();
    if let Some(gate) = gate {
        gate.acquire().await.unwrap().forget();
    }
    let mode = *idp.mode.lock().unwrap();
    match mode {
        Mode::Answer => {
            Json(serde_json::json!({"sub": subject, "session_version": version})).into_response()
        }
        Mode::ServerError => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        Mode::Garbage => "<html>oops</html>".into_response(),
        Mode::MissingField => Json(serde_json::json!({"sub": subject})).into_response(),
        Mode::Hang => std::future::pending().await,
    }
}

/// `(subject, sv)` from a test token.
pub fn parse_token(token: &str) -> Option<(String, Option<u64>)> {
    let rest = token.strip_prefix("tok:")?;
    let (subject, sv) = rest.rsplit_once(':')?;
    let sv = if sv == "-" {
        None
    } else {
        Some(sv.parse().ok()?)
    };
    Some((subject.to_owned(), sv))
}

/// A test token for `subject` carrying `sv`.
pub fn token(subject: &str, sv: Option<u64>) -> String {
    match sv {
        Some(sv) => format!("tok:{subject}:{sv}"),
        None => format!("tok:{subject}:-"),
    }
}

/// A resource server behind `SessionVersionLayer`.
#[derive(Clone)]
pub struct ResourceServer {
    pub base: String,
    /// Requests that reached the stand-in auth layer.
    pub arrivals: Arc<AtomicUsize>,
}

/// Stands in for `BearerLayer`: verifies nothing, but inserts exactly the
/// `Principal` a bearer layer would (raw token included).
async fn bearer_stand_in(
    State(arrivals): State<Arc<AtomicUsize>>,
    mut request: Request,
    next: Next,
) -> Response {
    arrivals.fetch_add(1, Ordering::SeqCst);
    LayersSeen::mark(request.extensions_mut(), AuthMethod::Bearer);
    let parsed = bearer_token(request.headers())
        .ok()
        .flatten()
        .map(|raw| (raw.to_owned(), parse_token(raw)));
    if let Some((raw, Some((subject, sv)))) = parsed {
        let claims = Claims {
            subject,
            session_version: sv,
            ..Claims::default()
        };
        let principal = identity::Principal::from_bearer(Arc::new(BearerToken::new(raw, claims)));
        request.extensions_mut().insert(principal);
    }
    next.run(request).await
}

/// Stands in for `SessionLayer`: `x-test-session: {subject}:{sv}`.
async fn session_stand_in(mut request: Request, next: Next) -> Response {
    LayersSeen::mark(request.extensions_mut(), AuthMethod::Session);
    let value = request
        .headers()
        .get("x-test-session")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_token(&format!("tok:{v}")));
    if let Some((subject, sv)) = value {
        let claims = SessionClaims {
            subject: subject.into(),
            actor: None,
            tenant: "acme".into(),
            session_version: sv,
            expires_at: 0,
        };
        request
            .extensions_mut()
            .insert(identity::Principal::from_session(Arc::new(claims)));
    }
    next.run(request).await
}

async fn me(who: Principal) -> String {
    format!("{} sv={:?}", who.subject, who.session_version)
}

impl ResourceServer {
    /// `/api/me` (bearer), `/session/me` (cookie session) and `/unguarded/me`
    /// (no auth layer at all: a mis-ordered stack).
    pub async fn start(validator: SessionVersionValidator) -> Self {
        let arrivals = Arc::new(AtomicUsize::new(0));
        let layer = SessionVersionLayer::new(validator);
        let bearer = Router::new()
            .route("/api/me", get(me))
            .route_layer(layer.clone())
            .route_layer(from_fn_with_state(Arc::clone(&arrivals), bearer_stand_in));
        let session = Router::new()
            .route("/session/me", get(me))
            .route_layer(layer.clone())
            .route_layer(from_fn(session_stand_in));
        let unguarded = Router::new()
            .route("/unguarded/me", get(|| async { "reached" }))
            .route_layer(layer);
        let addr = serve(bearer.merge(session).merge(unguarded)).await;
        Self {
            base: format!("http://{addr}"),
            arrivals,
        }
    }

    /// `GET /api/me` with `Authorization: Bearer {token}`.
    pub async fn me(&self, client: &reqwest::Client, token: &str) -> reqwest::Response {
        client
            .get(format!("{}/api/me", self.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("the resource server answers")
    }
}

/// Serves `app` on 127.0.0.1 and returns its address.
pub async fn serve(app: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

/// An address nothing listens on (bound, then released).
pub async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

/// The problem `reason` of a rejection body.
pub async fn reason(response: reqwest::Response) -> String {
    let body: serde_json::Value = response.json().await.expect("a problem+json body");
    body["reason"].as_str().unwrap_or_default().to_owned()
}
