//! The integrity example's router: a demo session, a CSRF-protected
//! profile form, single-use magic links and two verified webhook
//! endpoints. Kept apart from `main.rs` so the browser test serves the same
//! app.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use keystile::codec::Purpose;
use keystile::csrf::{CsrfLayer, CsrfToken};
use keystile::keys::Keyring;
use keystile::random::{OsRandom, RandomSource};
use keystile::replay::MemoryReplayStore;
use keystile::session::SessionCookie;
use keystile::signed_url::{SignedUrlLayer, UrlSigner, VerifiedUrl};
use keystile::webhook::{GitHub, Stripe, VerifiedWebhook, WebhookLayer};
use serde::Deserialize;

/// What the app needs from its environment.
pub struct AppConfig {
    /// Signs CSRF tokens and magic links.
    pub keyring: Keyring,
    /// The origin browsers use (`http://localhost:3006`).
    pub origin: String,
    /// The GitHub webhook secret.
    pub github_secret: String,
    /// The Stripe endpoint secret.
    pub stripe_secret: String,
}

#[derive(Clone)]
struct AppState {
    /// Display names by session id: the demo's whole "database".
    profiles: Arc<Mutex<HashMap<String, String>>>,
    signer: UrlSigner,
    origin: String,
    cookie: SessionCookie,
}

/// The router; see the module docs.
pub fn app(config: AppConfig) -> Router {
    let cookie = SessionCookie::http();
    let signer = UrlSigner::new(config.keyring.clone(), Purpose::new("integrity/magic-link"));
    let state = AppState {
        profiles: Arc::default(),
        signer: signer.clone(),
        origin: config.origin.clone(),
        cookie: cookie.clone(),
    };
    let pages = Router::new()
        .route("/", get(index))
        .route("/demo-login", post(demo_login))
        .route("/profile", get(profile).post(save_profile))
        .route("/magic-link", post(magic_link))
        .layer(CsrfLayer::new().tokens(&config.keyring, cookie));
    let magic = Router::new().route("/magic", get(redeem)).route_layer(
        SignedUrlLayer::new(signer, config.origin).single_use(Arc::new(MemoryReplayStore::new())),
    );
    let replay = Arc::new(MemoryReplayStore::new());
    let hooks = Router::new()
        .route(
            "/hooks/github",
            post(hook).route_layer(
                WebhookLayer::new(GitHub::new([config.github_secret.as_bytes()]))
                    .replay(replay.clone()),
            ),
        )
        .route(
            "/hooks/stripe",
            post(hook).route_layer(
                WebhookLayer::new(Stripe::new([config.stripe_secret.as_bytes()])).replay(replay),
            ),
        );
    pages.merge(magic).merge(hooks).with_state(state)
}

fn session_of(state: &AppState, headers: &HeaderMap) -> Option<String> {
    state.cookie.find(headers).ok().flatten().map(str::to_owned)
}

async fn index() -> Html<&'static str> {
    Html(
        r#"<!doctype html><title>integrity demo</title>
<form method="post" action="/demo-login"><input name="name" id="name" value="alice">
<button id="login">Sign in (demo)</button></form>"#,
    )
}

#[derive(Deserialize)]
struct Name {
    name: String,
}

async fn demo_login(State(state): State<AppState>, Form(form): Form<Name>) -> Response {
    let mut id = [0u8; 16];
    if OsRandom.fill(&mut id).is_err() {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let id = hex::encode(id);
    state
        .profiles
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(id.clone(), form.name);
    let cookie = state.cookie.build(id);
    (
        [(header::SET_COOKIE, cookie.to_string())],
        Redirect::to("/profile"),
    )
        .into_response()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

async fn profile(
    State(state): State<AppState>,
    headers: HeaderMap,
    token: Result<CsrfToken, keystile::Rejection>,
) -> Response {
    let Some(session) = session_of(&state, &headers) else {
        return Redirect::to("/").into_response();
    };
    let name = state
        .profiles
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&session)
        .cloned()
        .unwrap_or_default();
    let token = token.map(|t| t.as_str().to_owned()).unwrap_or_default();
    Html(format!(
        r#"<!doctype html><title>profile</title>
<p id="display-name">{}</p>
<form method="post" action="/profile">
<input type="hidden" name="csrf_token" value="{}">
<input name="name" id="new-name"><button id="save">Save</button></form>"#,
        escape(&name),
        escape(&token)
    ))
    .into_response()
}

async fn save_profile(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<Name>,
) -> Response {
    let Some(session) = session_of(&state, &headers) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    state
        .profiles
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(session, form.name);
    Redirect::to("/profile").into_response()
}

#[derive(Deserialize)]
struct MagicFor {
    user: String,
}

async fn magic_link(State(state): State<AppState>, Form(form): Form<MagicFor>) -> Response {
    let target = format!("{}/magic?user={}", state.origin, form.user);
    match state.signer.sign(&target, Duration::from_secs(15 * 60)) {
        Ok(link) => link.into_response(),
        Err(_) => StatusCode::BAD_REQUEST.into_response(),
    }
}

async fn redeem(
    Extension(_link): Extension<VerifiedUrl>,
    Query(target): Query<MagicFor>,
) -> Html<String> {
    Html(format!(
        r#"<!doctype html><p id="magic">magic link accepted for {}</p>"#,
        escape(&target.user)
    ))
}

async fn hook(Extension(delivery): Extension<VerifiedWebhook>, body: axum::body::Bytes) -> String {
    format!("delivery {} verified ({} bytes)", delivery.0.id, body.len())
}
