//! The bearer example app over real TCP: tokens from the mock identity
//! provider reach `/api/me`, break-glass refuses them on the very next
//! request, refresh tokens work once — in one process and across two
//! instances sharing Redis and a secret.

#[allow(dead_code)]
#[path = "../examples/bearer/app.rs"]
mod app;
mod support;

#[cfg(feature = "redis")]
use std::time::Duration;

use keystile::keys::{Keyring, SigningKey};
use reqwest::StatusCode;
use serde_json::{Value, json};

use app::{AppConfig, Backends, app};

fn keyring() -> Keyring {
    Keyring::new(SigningKey::from_bytes(&[23; 32]).expect("32-byte key"))
}

/// Serves the example app on a free port; returns its base URL.
async fn start(backends: Option<Backends>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut config = AppConfig::new(keyring(), port);
    if let Some(backends) = backends {
        config.backends = backends;
    }
    let router = app(config).expect("the app builds");
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://127.0.0.1:{port}")
}

async fn post(url: String, body: Value) -> (StatusCode, Value) {
    let res = reqwest::Client::new()
        .post(url)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// `(access_token, refresh_token)` for `sub`.
async fn tokens_for(base: &str, sub: &str) -> (String, String) {
    let (status, body) = post(format!("{base}/idp/token"), json!({ "sub": sub })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (
        body["access_token"].as_str().unwrap().to_owned(),
        body["refresh_token"].as_str().unwrap().to_owned(),
    )
}

struct Answer {
    status: StatusCode,
    challenge: Option<String>,
    body: Value,
}

async fn me(base: &str, token: &str) -> Answer {
    let res = reqwest::Client::new()
        .get(format!("{base}/api/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    Answer {
        status: res.status(),
        challenge: res
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned()),
        body: res.json().await.unwrap_or(Value::Null),
    }
}

fn assert_session_revoked(answer: &Answer) {
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.body);
    let challenge = answer.challenge.as_deref().unwrap_or_default();
    assert!(
        challenge.contains(r#"error="invalid_token""#),
        "{challenge}"
    );
    assert_eq!(answer.body["reason"], "session_revoked");
}

async fn break_glass(base: &str, sub: &str) -> u64 {
    let (status, body) = post(format!("{base}/idp/break-glass/{sub}"), Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["session_version"].as_u64().unwrap()
}

#[tokio::test]
async fn token_from_the_idp_reaches_api_me_with_its_claims() {
    let base = start(None).await;
    let (access, _) = tokens_for(&base, "alice").await;
    let answer = me(&base, &access).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body["sub"], "alice");
    assert_eq!(answer.body["sv"], 0);
    assert_eq!(answer.body["iss"], app::ISSUER);
    assert_eq!(answer.body["aud"], json!([app::AUDIENCE]));
}

#[tokio::test]
async fn break_glass_refuses_the_same_token_on_the_very_next_request() {
    let base = start(None).await;
    let (access, _) = tokens_for(&base, "alice").await;
    // The first request caches version 0 for alice.
    assert_eq!(me(&base, &access).await.status, StatusCode::OK);
    let (bob, _) = tokens_for(&base, "bob").await;

    assert_eq!(break_glass(&base, "alice").await, 1);
    assert_session_revoked(&me(&base, &access).await);
    // Only alice's sessions died.
    assert_eq!(me(&base, &bob).await.status, StatusCode::OK);

    // A token minted after break-glass carries the new version and works.
    let (fresh, _) = tokens_for(&base, "alice").await;
    let answer = me(&base, &fresh).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body["sv"], 1);
}

#[tokio::test]
async fn userinfo_answers_the_current_version_even_for_a_stale_token() {
    let base = start(None).await;
    let (access, _) = tokens_for(&base, "alice").await;
    break_glass(&base, "alice").await;
    let res = reqwest::Client::new()
        .get(format!("{base}/idp/userinfo"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body, json!({"sub": "alice", "session_version": 1}));
}

#[tokio::test]
async fn refresh_token_works_once() {
    let base = start(None).await;
    let (_, refresh) = tokens_for(&base, "alice").await;
    let (status, pair) = post(
        format!("{base}/idp/refresh"),
        json!({ "refresh_token": refresh }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{pair}");
    let access = pair["access_token"].as_str().unwrap();
    assert_eq!(me(&base, access).await.status, StatusCode::OK);

    let (status, body) = post(
        format!("{base}/idp/refresh"),
        json!({ "refresh_token": refresh }),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    assert!(!body.to_string().contains(&refresh), "token echoed");
}

#[tokio::test]
async fn refresh_token_from_before_break_glass_mints_nothing() {
    let base = start(None).await;
    let (_, refresh) = tokens_for(&base, "alice").await;
    break_glass(&base, "alice").await;
    let (status, body) = post(
        format!("{base}/idp/refresh"),
        json!({ "refresh_token": refresh }),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error_description"], "the session was revoked");
}

#[tokio::test]
async fn tampered_and_missing_tokens_are_refused() {
    let base = start(None).await;
    let (access, _) = tokens_for(&base, "alice").await;
    let (head, signature) = access.rsplit_once('.').unwrap();
    let mut raw = keystile::encoding::decode(signature).unwrap();
    let middle = raw.len() / 2;
    raw[middle] ^= 0x01;
    let tampered = format!("{head}.{}", keystile::encoding::encode(&raw));
    let answer = me(&base, &tampered).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.body["reason"], "invalid_credentials");

    let res = reqwest::get(format!("{base}/api/me")).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let challenge = res.headers()["www-authenticate"].to_str().unwrap();
    assert!(!challenge.contains("error="), "{challenge}");

    let (status, _) = post(format!("{base}/idp/token"), json!({ "sub": "" })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[cfg(feature = "redis")]
async fn redis_instance(prefix: &str) -> (String, tokio::sync::watch::Receiver<u64>) {
    let clock = keystile::clock::SystemClock::shared();
    let backends = Backends::redis(&support::redis_url(), prefix, &clock)
        .await
        .expect("Redis must be reachable for this test");
    let applied = backends
        .invalidations_applied
        .clone()
        .expect("Redis backends report applied invalidations");
    (start(Some(backends)).await, applied)
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn break_glass_on_one_instance_refuses_the_stale_token_on_the_other() {
    let prefix = format!("{}:", support::unique("example_bearer"));
    let (a, _) = redis_instance(&prefix).await;
    let (b, mut applied_b) = redis_instance(&prefix).await;

    let (access, _) = tokens_for(&a, "alice").await;
    // B learns and caches alice's version 0 through its own userinfo call.
    assert_eq!(me(&b, &access).await.status, StatusCode::OK);
    let before = *applied_b.borrow();

    assert_eq!(break_glass(&a, "alice").await, 1);
    // Synchronise on B having applied the published invalidation; the bound
    // only keeps a broken subscription from hanging the test.
    tokio::time::timeout(Duration::from_secs(10), applied_b.wait_for(|n| *n > before))
        .await
        .expect("B applies the invalidation")
        .unwrap();
    assert_session_revoked(&me(&b, &access).await);

    // Tokens minted on either instance after break-glass work on both.
    let (fresh, _) = tokens_for(&b, "alice").await;
    assert_eq!(me(&a, &fresh).await.status, StatusCode::OK);
    assert_eq!(me(&b, &fresh).await.status, StatusCode::OK);
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn refresh_token_used_on_one_instance_is_refused_on_the_other() {
    let prefix = format!("{}:", support::unique("example_bearer"));
    let (a, _) = redis_instance(&prefix).await;
    let (b, _) = redis_instance(&prefix).await;
    let (_, refresh) = tokens_for(&a, "alice").await;
    let (status, _) = post(
        format!("{a}/idp/refresh"),
        json!({ "refresh_token": refresh }),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = post(
        format!("{b}/idp/refresh"),
        json!({ "refresh_token": refresh }),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["error_description"],
        "the refresh token was already used"
    );
}
