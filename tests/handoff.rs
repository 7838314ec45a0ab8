//! Handoff redemption over real TCP, against the example app users run.

#[allow(dead_code)]
#[path = "../examples/handoff/app.rs"]
mod app;
mod handoff_support;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::routing::get;
use cookie::SameSite;
use keystile::clock::ManualClock;
use keystile::handoff::{Handoff, HandoffCodec, HandoffLayer};
use keystile::keys::{Keyring, SigningKey};
use keystile::replay::{MemoryReplayStore, Redemption, ReplayStore};
use keystile::session::{Session, SessionCookie, SessionCookies, SessionLayer};
use keystile::store::StoreError;
use keystile::tenant::HostTenant;
use reqwest::StatusCode;

use app::{AppConfig, app};
use handoff_support::*;

fn keyring() -> Keyring {
    Keyring::new(SigningKey::from_bytes(&[42; 32]).expect("32-byte key"))
}

/// The example app on a free port, reading time from `clock`.
async fn start(clock: &ManualClock, replay: impl ReplayStore) -> u16 {
    let (listener, port) = listener().await;
    let mut config = AppConfig::new(keyring(), port);
    config.clock = clock.shared();
    config.replay = Arc::new(replay);
    serve(listener, app(config));
    port
}

/// Clicks "Impersonate" for `tenant` on the console; returns the handoff URL.
async fn impersonate(client: &reqwest::Client, port: u16, tenant: &str) -> String {
    let response = client
        .post(format!("http://localhost:{port}/impersonate/{tenant}"))
        .send()
        .await
        .expect("console answers");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(
        set_cookie(&response).is_none(),
        "the console sets no cookie"
    );
    assert_no_referrer_no_store(&response);
    header(&response, "location").expect("a Location")
}

fn handoff_url(port: u16, tenant: &str, query: &str) -> String {
    format!("http://{tenant}.localhost:{port}/_keystile/handoff?{query}")
}

async fn body(response: reqwest::Response) -> String {
    response.text().await.expect("a text body")
}

#[tokio::test]
async fn impersonation_lands_on_admin_with_a_host_only_session_cookie() {
    let clock = ManualClock::starting_now();
    let port = start(&clock, MemoryReplayStore::new()).await;
    let client = client(port);

    let url = impersonate(&client, port, "acme").await;
    assert!(
        url.starts_with(&format!(
            "http://acme.localhost:{port}/_keystile/handoff?token="
        )),
        "{url}"
    );
    let response = client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(header(&response, "location").as_deref(), Some("/admin/"));
    assert_no_referrer_no_store(&response);

    let cookie = set_cookie(&response).expect("a session cookie");
    assert_eq!(cookie.name(), "keystile_session");
    assert_eq!(cookie.domain(), None, "host-only: no Domain attribute");
    assert_eq!(cookie.path(), Some("/"));
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(cookie.same_site(), Some(SameSite::Lax));
    assert_ne!(cookie.secure(), Some(true), "plain http deployment");
    assert_eq!(
        cookie.max_age(),
        Some(cookie::time::Duration::seconds(3600))
    );
    assert_eq!(cookie.expires(), None);
    assert!(!body(response).await.contains(&token_of(&url)));

    let pair = format!("keystile_session={}", cookie.value());
    let whoami = client
        .get(format!("http://acme.localhost:{port}/admin/whoami"))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(whoami.status(), StatusCode::OK);
    let json: serde_json::Value = whoami.json().await.unwrap();
    assert_eq!(
        json,
        serde_json::json!({"subject": "admin@acme", "actor": "operator:7", "tenant": "acme"})
    );

    let page = client
        .get(format!("http://acme.localhost:{port}/admin/"))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    let page = body(page).await;
    assert!(page.contains("Signed in as admin@acme"), "{page}");
    assert!(page.contains("impersonated by operator 7"), "{page}");

    // The cookie is bound to acme: presented at globex it is refused.
    let elsewhere = client
        .get(format!("http://globex.localhost:{port}/admin/whoami"))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), StatusCode::UNAUTHORIZED);
    assert!(body(elsewhere).await.contains("wrong_audience"));
    let anonymous = client
        .get(format!("http://globex.localhost:{port}/admin/whoami"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        header(&anonymous, "content-type").as_deref(),
        Some("application/problem+json")
    );
}

#[tokio::test]
async fn session_expires_when_the_test_clock_passes_its_ttl() {
    let clock = ManualClock::starting_now();
    let port = start(&clock, MemoryReplayStore::new()).await;
    let client = client(port);
    let url = impersonate(&client, port, "acme").await;
    let response = client.get(&url).send().await.unwrap();
    let cookie = set_cookie(&response).unwrap();
    let whoami = format!("http://acme.localhost:{port}/admin/whoami");
    let pair = format!("keystile_session={}", cookie.value());

    clock.advance(Duration::from_secs(3599));
    let ok = client
        .get(&whoami)
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    clock.advance(Duration::from_secs(1));
    let expired = client
        .get(&whoami)
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(expired.status(), StatusCode::UNAUTHORIZED);
    assert!(body(expired).await.contains("\"reason\":\"expired\""));
}

#[tokio::test]
async fn https_deployment_sets_a_secure_host_prefixed_cookie() {
    let ring = keyring();
    let tenants = HostTenant::under("localhost").unwrap();
    let cookie = SessionCookie::https()
        .ttl(Duration::from_secs(900))
        .unwrap();
    let router = Router::new()
        .route(
            "/admin/",
            get(|s: Session| async move { s.subject.to_string() }),
        )
        .route_layer(SessionLayer::new(
            SessionCookies::new(ring.clone(), tenants.clone()).cookie(cookie.clone()),
        ))
        .layer(
            HandoffLayer::new(ring.clone(), MemoryReplayStore::new(), tenants)
                .cookie(cookie)
                .landing("/admin/".parse().unwrap()),
        );
    let (listener, port) = listener().await;
    serve(listener, router);
    let client = client(port);

    let token = HandoffCodec::new(ring)
        .mint(&Handoff::new("u1", "acme"))
        .unwrap();
    let response = client
        .get(handoff_url(port, "acme", &format!("token={token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let cookie = set_cookie(&response).unwrap();
    assert_eq!(cookie.name(), "__Host-keystile_session");
    assert_eq!(cookie.secure(), Some(true));
    assert_eq!(cookie.domain(), None);
    assert_eq!(cookie.path(), Some("/"));
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(cookie.same_site(), Some(SameSite::Lax));
    assert_eq!(cookie.max_age(), Some(cookie::time::Duration::seconds(900)));

    let admin = client
        .get(format!("http://acme.localhost:{port}/admin/"))
        .header(
            "cookie",
            format!("__Host-keystile_session={}", cookie.value()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(body(admin).await, "u1");
}

/// Sends a handoff request and checks what every failure shares: the
/// status, the reason, problem+json, no cookie, the protective headers,
/// and no trace of `secret` in the body.
async fn expect_failure(
    client: &reqwest::Client,
    url: &str,
    status: StatusCode,
    reason: &str,
    secret: &str,
) {
    let response = client.get(url).send().await.unwrap();
    assert_eq!(response.status(), status, "{url}");
    assert_no_referrer_no_store(&response);
    assert!(
        set_cookie(&response).is_none(),
        "no cookie on failure: {url}"
    );
    assert!(
        header(&response, "location").is_none(),
        "no redirect on failure: {url}"
    );
    assert_eq!(
        header(&response, "content-type").as_deref(),
        Some("application/problem+json")
    );
    let text = body(response).await;
    assert!(
        text.contains(&format!("\"reason\":\"{reason}\"")),
        "{url}: {text}"
    );
    assert!(
        !text.contains(secret),
        "the token leaked into the body: {text}"
    );
}

#[tokio::test]
async fn every_failure_class_has_its_status_and_keeps_the_headers() {
    let clock = ManualClock::starting_now();
    let port = start(&clock, MemoryReplayStore::new()).await;
    let client = client(port);
    let url = impersonate(&client, port, "acme").await;
    let token = token_of(&url);
    let sig = token.rsplit_once('.').unwrap().1.to_owned();
    let q = |query: &str| handoff_url(port, "acme", query);

    // 400: malformed.
    for query in [
        String::new(),
        "token=".into(),
        "token=abc".into(),
        "token=%FF%FE".into(),
        format!("token={}", "A".repeat(5000)),
        format!("token={token}&token={token}"),
        format!("token={}", &token[..token.len() - 10]),
    ] {
        expect_failure(
            &client,
            &q(&query),
            StatusCode::BAD_REQUEST,
            "malformed",
            &sig,
        )
        .await;
    }
    // 401: a signature byte flipped mid-tag, or another key.
    let tampered = tamper_signature(&token);
    expect_failure(
        &client,
        &q(&format!("token={tampered}")),
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
        &sig,
    )
    .await;
    let foreign = HandoffCodec::new(Keyring::generate().unwrap())
        .mint(&Handoff::new("admin@acme", "acme"))
        .unwrap();
    expect_failure(
        &client,
        &q(&format!("token={foreign}")),
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
        &sig,
    )
    .await;
    // 401: presented at another tenant. This burns nothing.
    expect_failure(
        &client,
        &handoff_url(port, "globex", &format!("token={token}")),
        StatusCode::UNAUTHORIZED,
        "wrong_audience",
        &sig,
    )
    .await;
    // The genuine token still works once, then is gone.
    let first = client.get(&url).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::SEE_OTHER);
    expect_failure(&client, &url, StatusCode::GONE, "already_used", &sig).await;

    // 401: expired, by moving the test clock past the 60 s lifetime.
    let late = impersonate(&client, port, "acme").await;
    clock.advance(Duration::from_secs(60));
    expect_failure(
        &client,
        &late,
        StatusCode::UNAUTHORIZED,
        "expired",
        &token_of(&late),
    )
    .await;

    // 405 for anything but GET, with the same headers.
    let fresh = impersonate(&client, port, "acme").await;
    let post = client.post(&fresh).send().await.unwrap();
    assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_no_referrer_no_store(&post);
}

struct Down;

#[async_trait]
impl ReplayStore for Down {
    async fn redeem(&self, _id: &str, _expires_at: u64) -> Result<Redemption, StoreError> {
        Err(StoreError::message("connection refused"))
    }
}

#[tokio::test]
async fn store_failure_is_503_and_admits_nothing() {
    let clock = ManualClock::starting_now();
    let port = start(&clock, Down).await;
    let client = client(port);
    let url = impersonate(&client, port, "acme").await;
    let response = client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(header(&response, "retry-after").is_some());
    assert!(set_cookie(&response).is_none());
    assert_no_referrer_no_store(&response);
    assert!(body(response).await.contains("backend_unavailable"));
}

#[tokio::test]
async fn open_redirect_attempts_are_refused() {
    let clock = ManualClock::starting_now();
    let port = start(&clock, MemoryReplayStore::new()).await;
    let client = client(port);
    let url = impersonate(&client, port, "acme").await;
    let token = token_of(&url);
    for next in [
        "//evil.test",
        "%2F%2Fevil.test",
        "https://evil.test/",
        "https:%2F%2Fevil.test",
        "%2F%5Cevil.test",
        "/%5C/evil.test",
        "%5C%5Cevil.test",
        "/%09/evil.test",
        "/admin%0D%0ASet-Cookie:%20x=1",
        "javascript:alert(1)",
        "evil.test",
        "",
    ] {
        let attempt = format!("{url}&next={next}");
        expect_failure(
            &client,
            &attempt,
            StatusCode::BAD_REQUEST,
            "malformed",
            &token,
        )
        .await;
    }
    // Nothing was burned by the refused attempts; a same-origin next works.
    let ok = client
        .get(format!("{url}&next=%2Fadmin%2Fwhoami"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    assert_eq!(header(&ok, "location").as_deref(), Some("/admin/whoami"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_redemptions_yield_exactly_one_redirect() {
    let clock = ManualClock::starting_now();
    let port = start(&clock, MemoryReplayStore::new()).await;
    let client = client(port);
    let url = impersonate(&client, port, "acme").await;
    let attempts: Vec<_> = (0..200)
        .map(|_| {
            let client = client.clone();
            let url = url.clone();
            tokio::spawn(async move {
                let response = client.get(&url).send().await.expect("a response");
                (response.status(), set_cookie(&response).is_some())
            })
        })
        .collect();
    let mut redirects = 0;
    let mut gone = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            (StatusCode::SEE_OTHER, true) => redirects += 1,
            (StatusCode::GONE, false) => gone += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((redirects, gone), (1, 199));
}
