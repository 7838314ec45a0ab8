//! `RateLimitLayer` over HTTP: the memory limiter on a moved clock (no
//! sleeping), stacked policies, principal and header keys, the IETF
//! headers, and on a real Redis two app instances sharing one budget and
//! the failure modes of a Redis that is killed and comes back.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::routing::get;
use http::{Request, StatusCode};
use keystile::client_ip::ClientIp;
use keystile::clock::ManualClock;
use keystile::identity::Principal;
use keystile::rate_limit::{KeyBy, Limit, Limiter, MemoryLimiter, Policy, RateLimitLayer};
use tower::ServiceExt;

const T0: u64 = 1_700_000_000;

fn app(layer: RateLimitLayer) -> Router {
    Router::new()
        .route("/limited", get(|| async { "ok" }))
        .route_layer(layer)
}

fn from(ip: [u8; 4]) -> Request<Body> {
    let mut request = Request::get("/limited").body(Body::empty()).unwrap();
    request
        .extensions_mut()
        .insert(ConnectInfo(SocketAddr::from((ip, 40_000))));
    request
}

fn header_of(response: &http::Response<Body>, name: &str) -> String {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

fn memory(requests: u32, window: u64, clock: &ManualClock) -> MemoryLimiter {
    MemoryLimiter::new(Limit::per(requests, Duration::from_secs(window)).unwrap())
        .clock(clock.shared())
}

#[tokio::test]
async fn five_per_ten_seconds_per_address_on_a_moved_clock() {
    let clock = ManualClock::at_unix(T0);
    let layer = RateLimitLayer::new(Policy::traffic(
        "per-ip",
        memory(5, 10, &clock),
        KeyBy::ClientIp(ClientIp::new()),
    ))
    .legacy_headers();
    let app = app(layer);

    for remaining in (0..5).rev() {
        let response = app.clone().oneshot(from([203, 0, 113, 9])).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            header_of(&response, "ratelimit-policy"),
            r#""per-ip";q=5;w=10"#
        );
        assert!(
            header_of(&response, "ratelimit").starts_with(&format!(r#""per-ip";r={remaining};t="#)),
            "{}",
            header_of(&response, "ratelimit")
        );
        assert_eq!(
            header_of(&response, "x-ratelimit-remaining"),
            remaining.to_string()
        );
    }
    let refused = app.clone().oneshot(from([203, 0, 113, 9])).await.unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header_of(&refused, "retry-after"), "2"); // one request per 2 s
    assert_eq!(header_of(&refused, "ratelimit"), r#""per-ip";r=0;t=10"#);
    assert_eq!(
        header_of(&refused, "content-type"),
        "application/problem+json"
    );

    // Another address has its own budget.
    let other = app.clone().oneshot(from([198, 51, 100, 7])).await.unwrap();
    assert_eq!(other.status(), StatusCode::OK);

    // One interval later, one more request; then refused again.
    clock.advance(Duration::from_secs(2));
    let again = app.clone().oneshot(from([203, 0, 113, 9])).await.unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    let refused = app.clone().oneshot(from([203, 0, 113, 9])).await.unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    // A full window later, the whole burst.
    clock.advance(Duration::from_secs(10));
    for _ in 0..5 {
        let response = app.clone().oneshot(from([203, 0, 113, 9])).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn stacked_policies_each_count_and_the_tightest_is_named() {
    let clock = ManualClock::at_unix(T0);
    let layer = RateLimitLayer::new(Policy::traffic(
        "burst",
        memory(3, 1, &clock),
        KeyBy::ClientIp(ClientIp::new()),
    ))
    .policy(Policy::traffic(
        "hourly",
        memory(4, 3600, &clock),
        KeyBy::ClientIp(ClientIp::new()),
    ));
    let app = app(layer);
    for _ in 0..3 {
        let ok = app.clone().oneshot(from([192, 0, 2, 1])).await.unwrap();
        assert_eq!(ok.status(), StatusCode::OK);
        assert_eq!(
            header_of(&ok, "ratelimit-policy"),
            r#""burst";q=3;w=1, "hourly";q=4;w=3600"#
        );
    }
    // The burst refuses the fourth at once...
    let refused = app.clone().oneshot(from([192, 0, 2, 1])).await.unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(header_of(&refused, "ratelimit").starts_with(r#""burst";r=0"#));
    // ...a second later the hourly budget has one left, then none.
    clock.advance(Duration::from_secs(1));
    let last = app.clone().oneshot(from([192, 0, 2, 1])).await.unwrap();
    assert_eq!(last.status(), StatusCode::OK);
    assert!(header_of(&last, "ratelimit").starts_with(r#""hourly";r=0"#));
    clock.advance(Duration::from_secs(1));
    let refused = app.clone().oneshot(from([192, 0, 2, 1])).await.unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    // 2 s after the first request, the hourly budget frees one in 898 s.
    assert_eq!(header_of(&refused, "retry-after"), "898");
}

#[tokio::test]
async fn principal_and_header_keys_and_requests_without_them() {
    let clock = ManualClock::at_unix(T0);
    let by_principal = app(RateLimitLayer::new(Policy::traffic(
        "per-key",
        memory(1, 60, &clock),
        KeyBy::Principal,
    )));
    let as_who = |subject: &str| {
        let mut request = Request::get("/limited").body(Body::empty()).unwrap();
        request
            .extensions_mut()
            .insert(Principal::from_custom("test", subject, ()));
        request
    };
    assert_eq!(
        by_principal
            .clone()
            .oneshot(as_who("alice"))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        by_principal
            .clone()
            .oneshot(as_who("alice"))
            .await
            .unwrap()
            .status(),
        429
    );
    assert_eq!(
        by_principal
            .clone()
            .oneshot(as_who("bob"))
            .await
            .unwrap()
            .status(),
        200
    );
    // An (optional) auth layer ran and found nobody: the policy does not
    // apply, and says nothing.
    let mut nobody = Request::get("/limited").body(Body::empty()).unwrap();
    keystile::auth::LayersSeen::mark(nobody.extensions_mut(), keystile::auth::AuthMethod::ApiKey);
    let anonymous = by_principal.clone().oneshot(nobody).await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::OK);
    assert!(anonymous.headers().get("ratelimit").is_none());
    // No auth layer at all: a wiring mistake, named.
    let unwired = by_principal
        .clone()
        .oneshot(Request::get("/limited").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(unwired.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = axum::body::to_bytes(unwired.into_body(), 4096)
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&body).contains("auth layer"));

    let by_header = app(RateLimitLayer::new(Policy::traffic(
        "per-tenant",
        memory(1, 60, &clock),
        KeyBy::Header(http::HeaderName::from_static("x-tenant")),
    )));
    let tenant = |name: &str| {
        Request::get("/limited")
            .header("x-tenant", name)
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(
        by_header
            .clone()
            .oneshot(tenant("acme"))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        by_header
            .clone()
            .oneshot(tenant("acme"))
            .await
            .unwrap()
            .status(),
        429
    );
    assert_eq!(
        by_header
            .clone()
            .oneshot(tenant("umbrella"))
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn a_client_address_policy_without_connect_info_names_the_fix() {
    let clock = ManualClock::at_unix(T0);
    let app = app(RateLimitLayer::new(Policy::traffic(
        "per-ip",
        memory(5, 10, &clock),
        KeyBy::ClientIp(ClientIp::new()),
    )));
    let response = app
        .oneshot(Request::get("/limited").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = axum::body::to_bytes(response.into_body(), 4096)
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&body).contains("into_make_service_with_connect_info"));
}

#[tokio::test]
async fn the_memory_limiter_stays_within_its_capacity() {
    let clock = ManualClock::at_unix(T0);
    let limiter = memory(5, 10, &clock).capacity(1_000);
    for i in 0..20_000 {
        limiter.check(&format!("key-{i}")).await.unwrap();
    }
    assert!(limiter.len() <= 1_100, "{} keys held", limiter.len());
}

#[cfg(feature = "redis")]
mod redis {
    use std::sync::Arc;

    use http::header;

    use super::*;
    use keystile::rate_limit::RedisLimiter;
    use keystile::store::redis::connect;
    use support::redis_server::ThrowawayRedis;

    async fn limiter(url: &str, prefix: &str, requests: u32) -> RedisLimiter {
        let connection = connect(url, Duration::from_millis(500)).await.unwrap();
        RedisLimiter::new(
            connection,
            Limit::per(requests, Duration::from_secs(60)).unwrap(),
        )
        .prefix(prefix)
        .timeout(Duration::from_millis(300))
    }

    #[tokio::test]
    async fn two_instances_on_one_redis_admit_exactly_the_budget_between_them() {
        let prefix = format!("{}:", support::unique("rate"));
        let instance = |limiter: RedisLimiter| {
            app(RateLimitLayer::new(Policy::security(
                "per-ip",
                limiter,
                KeyBy::ClientIp(ClientIp::new()),
            )))
        };
        let a = instance(limiter(&support::redis_url(), &prefix, 10).await);
        let b = instance(limiter(&support::redis_url(), &prefix, 10).await);
        let requests = (0..100).map(|i| {
            let app = if i % 2 == 0 { a.clone() } else { b.clone() };
            async move { app.oneshot(from([203, 0, 113, 50])).await.unwrap().status() }
        });
        let statuses = futures_util::future::join_all(requests).await;
        let admitted = statuses.iter().filter(|s| **s == StatusCode::OK).count();
        let refused = statuses
            .iter()
            .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
            .count();
        assert_eq!((admitted, refused), (10, 90));
    }

    #[tokio::test]
    async fn redis_killed_mid_load_fails_per_policy_and_recovers_without_restart() {
        let mut redis = ThrowawayRedis::start().await;
        let security = app(RateLimitLayer::new(Policy::security(
            "login",
            limiter(&redis.url(), "login:", 1_000).await,
            KeyBy::Global,
        )));
        let traffic = app(RateLimitLayer::new(Policy::traffic(
            "pages",
            limiter(&redis.url(), "pages:", 1_000).await,
            KeyBy::Global,
        )));
        let get = || Request::get("/limited").body(Body::empty()).unwrap();
        assert_eq!(security.clone().oneshot(get()).await.unwrap().status(), 200);
        assert_eq!(traffic.clone().oneshot(get()).await.unwrap().status(), 200);

        redis.stop();
        for _ in 0..20 {
            let closed = security.clone().oneshot(get()).await.unwrap();
            assert_eq!(closed.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert!(closed.headers().contains_key(header::RETRY_AFTER));
            let open = traffic.clone().oneshot(get()).await.unwrap();
            assert_eq!(open.status(), StatusCode::OK);
            assert!(open.headers().get("ratelimit").is_none());
        }

        redis.restart().await;
        let mut recovered = false;
        for _ in 0..50 {
            if security.clone().oneshot(get()).await.unwrap().status() == StatusCode::OK {
                recovered = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(recovered, "the same app admits again once Redis is back");
        let counted = traffic.clone().oneshot(get()).await.unwrap();
        assert_eq!(counted.status(), StatusCode::OK);
        assert!(counted.headers().get("ratelimit").is_some());
    }

    #[tokio::test]
    async fn two_policies_on_one_prefix_keep_their_budgets_apart() {
        let prefix = format!("{}:", support::unique("rate"));
        let connection = connect(&support::redis_url(), Duration::from_millis(500))
            .await
            .unwrap();
        let limiter = |requests, window| {
            RedisLimiter::new(
                connection.clone(),
                Limit::per(requests, Duration::from_secs(window)).unwrap(),
            )
            .prefix(prefix.clone())
        };
        // The same key under two limits on one prefix: each policy counts
        // its own requests.
        let app = app(
            RateLimitLayer::new(Policy::security("burst", limiter(3, 1), KeyBy::Global)).policy(
                Policy::security("hourly", limiter(100, 3600), KeyBy::Global),
            ),
        );
        let get = || Request::get("/limited").body(Body::empty()).unwrap();
        for _ in 0..3 {
            assert_eq!(app.clone().oneshot(get()).await.unwrap().status(), 200);
        }
    }

    #[tokio::test]
    async fn the_script_is_reloaded_after_redis_forgets_it() {
        let prefix = format!("{}:", support::unique("rate"));
        let limiter = Arc::new(limiter(&support::redis_url(), &prefix, 2).await);
        assert!(limiter.check("k").await.unwrap().allowed);
        let connection = connect(&support::redis_url(), Duration::from_millis(500))
            .await
            .unwrap();
        let mut c = connection.clone();
        let _: () = ::redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query_async(&mut c)
            .await
            .unwrap();
        assert!(limiter.check("k").await.unwrap().allowed);
        let third = limiter.check("k").await.unwrap();
        assert!(!third.allowed);
        assert!(
            (29..=30).contains(&third.retry_after.as_secs()),
            "{:?}",
            third.retry_after
        );
    }
}
