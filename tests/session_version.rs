//! Session-version freshness (SPEC §5) over real TCP: a resource server
//! behind `SessionVersionLayer` asks a userinfo endpoint the test controls.

mod session_version_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use keystile::ManualClock;
use keystile::session_version::{
    FetchError, FetchRequest, MemorySessionVersionCache, SessionVersionValidator, UserinfoFetcher,
};
use session_version_support::{Idp, Mode, ResourceServer, closed_port, reason, token};

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

fn userinfo(url: &str) -> UserinfoFetcher {
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    UserinfoFetcher::new(url).unwrap().client(client)
}

/// An IdP, and a resource server with an in-memory cache on `clock`.
async fn setup(clock: &ManualClock) -> (Idp, SessionVersionValidator, ResourceServer) {
    let idp = Idp::start().await;
    let cache = MemorySessionVersionCache::new().clock(clock.shared());
    let validator = SessionVersionValidator::new(cache, userinfo(&idp.userinfo_url));
    let server = ResourceServer::start(validator.clone()).await;
    (idp, validator, server)
}

async fn assert_unavailable(response: reqwest::Response) {
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(reason(response).await, "backend_unavailable");
}

#[tokio::test]
async fn a_token_without_sv_is_admitted_without_asking_the_idp() {
    let (idp, _, server) = setup(&ManualClock::starting_now()).await;
    let response = server.me(&client(), &token("alice", None)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "alice sv=None");
    assert_eq!(idp.calls(), 0);
}

#[tokio::test]
async fn strict_mode_refuses_a_token_without_sv() {
    let idp = Idp::start().await;
    let validator = SessionVersionValidator::new(
        MemorySessionVersionCache::new(),
        userinfo(&idp.userinfo_url),
    )
    .strict();
    let server = ResourceServer::start(validator).await;
    let response = server.me(&client(), &token("alice", None)).await;
    assert_eq!(response.status(), 401);
    let challenge = response.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains(r#"error="invalid_token""#),
        "{challenge}"
    );
    assert_eq!(reason(response).await, "invalid_credentials");
    assert_eq!(idp.calls(), 0);
}

#[tokio::test]
async fn a_miss_fetches_once_then_the_cache_answers() {
    let (idp, _, server) = setup(&ManualClock::starting_now()).await;
    idp.set_version("alice", 4);
    let client = client();
    for _ in 0..3 {
        let response = server.me(&client, &token("alice", Some(4))).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), "alice sv=Some(4)");
    }
    assert_eq!(idp.calls(), 1);
}

#[tokio::test]
async fn a_token_newer_than_the_current_version_is_admitted() {
    let (idp, _, server) = setup(&ManualClock::starting_now()).await;
    idp.set_version("alice", 4);
    let response = server.me(&client(), &token("alice", Some(5))).await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_stale_token_is_401_invalid_token_session_revoked() {
    let (idp, _, server) = setup(&ManualClock::starting_now()).await;
    idp.set_version("alice", 4);
    let response = server.me(&client(), &token("alice", Some(3))).await;
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let challenge = response.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.starts_with(r#"Bearer realm="api", error="invalid_token""#),
        "{challenge}"
    );
    assert_eq!(reason(response).await, "session_revoked");
}

#[tokio::test]
async fn break_glass_with_invalidate_refuses_the_old_token_on_the_next_request() {
    let (idp, validator, server) = setup(&ManualClock::starting_now()).await;
    idp.set_version("alice", 1);
    let client = client();
    let old = token("alice", Some(1));
    assert_eq!(server.me(&client, &old).await.status(), 200);

    idp.set_version("alice", 2);
    // Without invalidate the cached version 1 still admits the old token…
    assert_eq!(server.me(&client, &old).await.status(), 200);
    // …with it, the very next request learns version 2.
    validator.invalidate("alice").await.unwrap();
    let response = server.me(&client, &old).await;
    assert_eq!(response.status(), 401);
    assert_eq!(reason(response).await, "session_revoked");
    let fresh = token("alice", Some(2));
    assert_eq!(server.me(&client, &fresh).await.status(), 200);
    assert_eq!(idp.calls(), 2);
}

#[tokio::test]
async fn the_cache_expires_by_the_clock_and_a_bump_then_takes_effect() {
    let clock = ManualClock::starting_now();
    let (idp, _, server) = setup(&clock).await;
    idp.set_version("alice", 1);
    let client = client();
    let old = token("alice", Some(1));
    assert_eq!(server.me(&client, &old).await.status(), 200);
    idp.set_version("alice", 2);

    clock.advance(Duration::from_secs(59));
    assert_eq!(server.me(&client, &old).await.status(), 200, "still cached");
    assert_eq!(idp.calls(), 1);

    clock.advance(Duration::from_secs(1));
    assert_eq!(
        server.me(&client, &old).await.status(),
        401,
        "TTL of 60 s passed"
    );
    assert_eq!(idp.calls(), 2);
}

#[tokio::test]
async fn one_hundred_concurrent_first_requests_make_exactly_one_fetch() {
    let (idp, _, server) = setup(&ManualClock::starting_now()).await;
    idp.set_version("alice", 7);
    let gate = idp.gate();
    let client = client();
    let requests: Vec<_> = (0..100)
        .map(|_| {
            let (server, client) = (server.clone(), client.clone());
            tokio::spawn(async move { server.me(&client, &token("alice", Some(7))).await })
        })
        .collect();
    // Hold the one fetch until every request is inside the server, so they
    // all miss the cache together.
    for _ in 0..2_000 {
        if server.arrivals.load(Ordering::SeqCst) == 100 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(server.arrivals.load(Ordering::SeqCst), 100);
    gate.add_permits(100);
    for request in requests {
        assert_eq!(request.await.unwrap().status(), 200);
    }
    assert_eq!(idp.calls(), 1);
}

#[tokio::test]
async fn an_unreachable_userinfo_endpoint_is_503() {
    let url = format!("http://{}/userinfo", closed_port().await);
    let validator = SessionVersionValidator::new(MemorySessionVersionCache::new(), userinfo(&url));
    let server = ResourceServer::start(validator).await;
    assert_unavailable(server.me(&client(), &token("alice", Some(1))).await).await;
}

#[tokio::test]
async fn a_userinfo_endpoint_slower_than_the_timeout_is_503() {
    let idp = Idp::start().await;
    idp.set_mode(Mode::Hang);
    let fetcher = userinfo(&idp.userinfo_url).timeout(Duration::from_millis(200));
    let validator = SessionVersionValidator::new(MemorySessionVersionCache::new(), fetcher);
    let server = ResourceServer::start(validator).await;
    assert_unavailable(server.me(&client(), &token("alice", Some(1))).await).await;
    assert_eq!(idp.calls(), 1);
}

#[tokio::test]
async fn a_userinfo_500_is_503() {
    let (idp, _, server) = setup(&ManualClock::starting_now()).await;
    idp.set_mode(Mode::ServerError);
    assert_unavailable(server.me(&client(), &token("alice", Some(1))).await).await;
}

#[tokio::test]
async fn a_userinfo_answer_that_is_not_json_is_503() {
    let (idp, _, server) = setup(&ManualClock::starting_now()).await;
    idp.set_mode(Mode::Garbage);
    assert_unavailable(server.me(&client(), &token("alice", Some(1))).await).await;
}

#[tokio::test]
async fn a_userinfo_answer_without_session_version_is_503() {
    let (idp, _, server) = setup(&ManualClock::starting_now()).await;
    idp.set_mode(Mode::MissingField);
    assert_unavailable(server.me(&client(), &token("alice", Some(1))).await).await;
}

#[tokio::test]
async fn a_failed_fetch_is_not_cached_and_the_next_request_retries() {
    let (idp, _, server) = setup(&ManualClock::starting_now()).await;
    idp.set_version("alice", 1);
    idp.set_mode(Mode::ServerError);
    let client = client();
    assert_unavailable(server.me(&client, &token("alice", Some(1))).await).await;
    idp.set_mode(Mode::Answer);
    assert_eq!(
        server.me(&client, &token("alice", Some(1))).await.status(),
        200
    );
    assert_eq!(idp.calls(), 2);
}

#[tokio::test]
async fn a_fetch_racing_an_invalidation_never_caches_the_old_version() {
    let (idp, validator, server) = setup(&ManualClock::starting_now()).await;
    idp.set_version("alice", 1);
    let gate = idp.gate();
    let client = client();
    let old = token("alice", Some(1));
    let racing = tokio::spawn({
        let (server, client, old) = (server.clone(), client.clone(), old.clone());
        async move { server.me(&client, &old).await }
    });
    // The userinfo answer (version 1) is computed; hold it back while the
    // break-glass happens.
    for _ in 0..2_000 {
        if idp.calls() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(idp.calls(), 1);
    idp.set_version("alice", 2);
    validator.invalidate("alice").await.unwrap();
    gate.add_permits(1);
    // A request in flight during the break-glass may pass…
    assert_eq!(racing.await.unwrap().status(), 200);
    // …but its old answer was not cached: the next request refetches.
    gate.add_permits(1);
    let response = server.me(&client, &old).await;
    assert_eq!(response.status(), 401);
    assert_eq!(idp.calls(), 2);
}

#[tokio::test]
async fn a_session_cookie_request_cannot_use_the_userinfo_fetcher_and_fails_closed() {
    let (idp, _, server) = setup(&ManualClock::starting_now()).await;
    let response = client()
        .get(format!("{}/session/me", server.base))
        .header("x-test-session", "alice:1")
        .send()
        .await
        .unwrap();
    assert_unavailable(response).await;
    assert_eq!(idp.calls(), 0);
}

#[tokio::test]
async fn a_session_cookie_request_is_checked_through_a_closure_fetcher() {
    let fetches = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&fetches);
    let fetcher = move |request: FetchRequest<'_>| {
        counted.fetch_add(1, Ordering::SeqCst);
        let answer = if request.subject == "alice" {
            Ok(2)
        } else {
            Err(FetchError::other("unknown user"))
        };
        async move { answer }
    };
    let validator = SessionVersionValidator::new(MemorySessionVersionCache::new(), fetcher);
    let server = ResourceServer::start(validator).await;
    let session = |value: &'static str| {
        client()
            .get(format!("{}/session/me", server.base))
            .header("x-test-session", value)
            .send()
    };
    let current = session("alice:2").await.unwrap();
    assert_eq!(current.status(), 200);
    let stale = session("alice:1").await.unwrap();
    assert_eq!(stale.status(), 401);
    assert!(
        stale.headers().get("www-authenticate").is_none(),
        "no Bearer challenge for a cookie session"
    );
    assert_eq!(reason(stale).await, "session_revoked");
    assert_unavailable(session("mallory:1").await.unwrap()).await;
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_route_without_an_auth_layer_in_front_is_500_naming_the_layers() {
    let (_, _, server) = setup(&ManualClock::starting_now()).await;
    let response = client()
        .get(format!("{}/unguarded/me", server.base))
        .bearer_auth(token("alice", Some(1)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 500);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["reason"], "missing_layer");
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("BearerLayer or SessionLayer"), "{detail}");
}
