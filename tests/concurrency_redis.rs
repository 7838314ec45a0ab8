//! Single use under contention across a fleet: one handoff token, one
//! refresh token and one one-time token, each presented by 500 concurrent
//! tasks spread over two app instances that share one Redis (each instance
//! with its own connection, as two processes would have). Exactly one
//! presentation wins; every other is refused as already used — none fails
//! for any other reason. And a break-glass invalidation racing with
//! in-flight version fetches never leaves the old version cached.
//! Needs Redis (see `support`); fails, never skips, when it is unreachable.
#![cfg(feature = "redis")]

#[allow(dead_code)]
#[path = "../examples/handoff/app.rs"]
mod app;
mod handoff_support;
mod session_version_support;
mod support;

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use keystile::bearer::{Grant, LifecycleError, RedisRevocationList, TokenLifecycle};
use keystile::clock::ManualClock;
use keystile::keys::{Keyring, SigningKey};
use keystile::one_time::{OneTimeConfig, OneTimeError, OneTimeStore, RedisOneTimeStore};
use keystile::replay::RedisReplayStore;
use keystile::session_version::{
    RedisSessionVersionCache, SessionVersionValidator, UserinfoFetcher,
};
use serde_json::{Value, json};
use tokio::sync::Barrier;

use handoff_support::{mint_on, redeem_with, serve_app};
use session_version_support::{Idp, ResourceServer, token};

/// Concurrent presentations of one token.
const RACERS: usize = 500;

fn keyring() -> Keyring {
    Keyring::new(SigningKey::from_bytes(&[29; 32]).expect("32-byte key"))
}

async fn replay_store(prefix: &str) -> RedisReplayStore {
    RedisReplayStore::connect(&support::redis_url())
        .await
        .unwrap_or_else(|e| panic!("Redis must be reachable for this test: {e}"))
        .prefix(prefix)
}

/// Serves `router` on 127.0.0.1 and returns its base URL.
async fn serve_router(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    base
}

/// Starts `RACERS` tasks, alternating between the two instances, released
/// together by a barrier; returns how many answers had each status.
async fn race<F, Fut>(present: F) -> std::collections::BTreeMap<u16, usize>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = u16> + Send + 'static,
{
    let barrier = Arc::new(Barrier::new(RACERS));
    let tasks: Vec<_> = (0..RACERS)
        .map(|i| {
            let (barrier, presentation) = (Arc::clone(&barrier), present(i));
            tokio::spawn(async move {
                barrier.wait().await;
                presentation.await
            })
        })
        .collect();
    let mut statuses = std::collections::BTreeMap::new();
    for task in tasks {
        *statuses.entry(task.await.unwrap()).or_default() += 1;
    }
    statuses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_handoff_token_raced_by_500_tasks_on_two_instances_is_redeemed_once() {
    let prefix = format!("{}:", support::unique("race_handoff"));
    let mut ports = Vec::new();
    for _ in 0..2 {
        ports.push(serve_app(keyring(), Arc::new(replay_store(&prefix).await)).await);
    }
    let clients: Vec<_> = ports.iter().map(|&p| handoff_support::client(p)).collect();
    let url = mint_on(&clients[0], ports[0]).await;
    let statuses = race(|i| {
        let (client, port, url) = (clients[i % 2].clone(), ports[i % 2], url.clone());
        async move { redeem_with(&client, port, &url).await.status().as_u16() }
    })
    .await;
    assert_eq!(
        statuses,
        [(303, 1), (410, RACERS - 1)].into(),
        "one redirect, every other presentation refused as already used"
    );
}

/// The refresh endpoint of one instance: 200 with a new pair, 400 when the
/// refresh token was already used, 503 when the store cannot say.
async fn refresh(State(tokens): State<TokenLifecycle>, Json(body): Json<Value>) -> StatusCode {
    let token = body["refresh_token"].as_str().unwrap_or_default();
    match tokens.refresh(token).await {
        Ok(_) => StatusCode::OK,
        Err(LifecycleError::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
        Err(_) => StatusCode::BAD_REQUEST,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_refresh_token_raced_by_500_tasks_on_two_instances_mints_one_pair() {
    // Redis expires entries on its own clock, so the injected one runs at
    // the real time here.
    let clock = ManualClock::starting_now();
    let replay_prefix = format!("{}:", support::unique("race_refresh"));
    let revoked_prefix = format!("{}:", support::unique("race_revoked"));
    let mut instances = Vec::new();
    for _ in 0..2 {
        let revocations = RedisRevocationList::connect(&support::redis_url())
            .await
            .unwrap_or_else(|e| panic!("Redis must be reachable for this test: {e}"))
            .prefix(revoked_prefix.clone())
            .clock(clock.shared());
        let tokens = TokenLifecycle::builder(keyring())
            .replay_store(Arc::new(replay_store(&replay_prefix).await))
            .revocation_list(Arc::new(revocations))
            .clock(clock.shared())
            .issuer("https://idp.test")
            .audience("reports")
            .build()
            .expect("a valid lifecycle");
        let router = Router::new()
            .route("/token/refresh", post(refresh))
            .with_state(tokens.clone());
        instances.push((tokens, serve_router(router).await));
    }
    let pair = instances[0].0.issue(&Grant::new("alice")).unwrap();
    let body = json!({"refresh_token": pair.refresh_token()});
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let statuses = race(|i| {
        let url = format!("{}/token/refresh", instances[i % 2].1);
        let request = client.post(url).json(&body);
        async move { request.send().await.unwrap().status().as_u16() }
    })
    .await;
    assert_eq!(statuses, [(200, 1), (400, RACERS - 1)].into());
}

/// The redeem endpoint of one instance: 204 when the token was consumed,
/// 410 when it is not pending (already consumed), 503 on a store failure.
async fn consume(
    State(store): State<Arc<RedisOneTimeStore>>,
    Json(body): Json<Value>,
) -> StatusCode {
    let token = body["token"].as_str().unwrap_or_default();
    match store.consume(token, b"reset:alice").await {
        Ok(()) => StatusCode::NO_CONTENT,
        Err(OneTimeError::NotPending) => StatusCode::GONE,
        Err(OneTimeError::Backend(_)) => StatusCode::SERVICE_UNAVAILABLE,
        Err(_) => StatusCode::BAD_REQUEST,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_one_time_token_raced_by_500_tasks_on_two_instances_is_consumed_once() {
    let prefix = support::unique("race_onetime");
    let mut instances = Vec::new();
    for _ in 0..2 {
        let store = RedisOneTimeStore::connect(&support::redis_url(), OneTimeConfig::default())
            .await
            .unwrap_or_else(|e| panic!("Redis must be reachable for this test: {e}"))
            .prefix(&prefix)
            .expect("a valid prefix");
        let store = Arc::new(store);
        let router = Router::new()
            .route("/reset/consume", post(consume))
            .with_state(Arc::clone(&store));
        instances.push((store, serve_router(router).await));
    }
    let token = instances[0].0.issue(b"reset:alice").await.unwrap();
    let body = json!({"token": token.expose_secret()});
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let statuses = race(|i| {
        let url = format!("{}/reset/consume", instances[i % 2].1);
        let request = client.post(url).json(&body);
        async move { request.send().await.unwrap().status().as_u16() }
    })
    .await;
    assert_eq!(statuses, [(204, 1), (410, RACERS - 1)].into());
    assert_eq!(instances[1].0.pending().await.unwrap(), 0);
}

/// Rounds of the invalidation race; each uses a subject of its own.
const ROUNDS: usize = 20;
/// Requests in flight with the soon-stale token in each round.
const IN_FLIGHT: usize = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidation_racing_with_fetches_never_leaves_the_old_version_cached() {
    let idp = Idp::start().await;
    let namespace = support::unique("race_sv");
    let mut servers = Vec::new();
    let mut validators = Vec::new();
    for _ in 0..2 {
        let cache = RedisSessionVersionCache::builder(support::redis_url())
            .key_prefix(format!("{namespace}:"))
            .channel(format!("{namespace}:invalidate"))
            .connect()
            .await
            .unwrap_or_else(|e| panic!("Redis must be reachable for this test: {e}"));
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let fetcher = UserinfoFetcher::new(&idp.userinfo_url)
            .unwrap()
            .client(client);
        let validator = SessionVersionValidator::new(cache, fetcher);
        servers.push(ResourceServer::start(validator.clone()).await);
        validators.push(validator);
    }
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    for round in 0..ROUNDS {
        let subject = format!("user{round}");
        idp.set_version(&subject, 1);
        let old = token(&subject, Some(1));
        // Even rounds hold every userinfo answer (version 1 already read)
        // until the invalidation is done: the worst interleaving, forced.
        // Odd rounds let timing decide.
        let gate = idp.gate();
        let held = round % 2 == 0;
        if !held {
            gate.add_permits(IN_FLIGHT * 2);
        }
        let calls_before = idp.calls();
        // Fetches of version 1 on both instances, in flight while the
        // break-glass below happens: bump the source of truth, then
        // invalidate (on alternating instances).
        let racing: Vec<_> = (0..IN_FLIGHT)
            .map(|i| {
                let (server, client, old) = (servers[i % 2].clone(), client.clone(), old.clone());
                tokio::spawn(async move { server.me(&client, &old).await.status().as_u16() })
            })
            .collect();
        if held {
            // Bounded wait until at least one fetch read version 1.
            for _ in 0..2_000 {
                if idp.calls() > calls_before {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            assert!(
                idp.calls() > calls_before,
                "round {round}: no fetch started"
            );
        } else {
            for _ in 0..round % 5 {
                tokio::task::yield_now().await;
            }
        }
        idp.set_version(&subject, 2);
        validators[round % 2]
            .invalidate(&subject)
            .await
            .expect("the invalidation reaches Redis");
        gate.add_permits(IN_FLIGHT * 2);
        for task in racing {
            let status = task.await.unwrap();
            assert!(status == 200 || status == 401, "round {round}: {status}");
        }
        // Everything in flight has settled: no instance may still hold
        // version 1, on its own or in Redis.
        for server in &servers {
            let response = server.me(&client, &old).await;
            assert_eq!(
                response.status(),
                401,
                "round {round}: stale token admitted"
            );
            let fresh = server.me(&client, &token(&subject, Some(2))).await;
            assert_eq!(fresh.status(), 200, "round {round}: current token refused");
        }
    }
}
