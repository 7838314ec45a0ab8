//! `ThrottleLayer` around an auth layer, on a moved clock: free attempts,
//! delays that double, a lock-out, a success that clears, the same answers
//! for known and unknown accounts, and requests that present nothing left
//! uncounted.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::routing::get;
use http::request::Parts;
use http::{Request, StatusCode};
use keystile::auth::{AuthLayer, Authenticator, LayersSeen, Outcome};
use keystile::client_ip::ClientIp;
use keystile::clock::ManualClock;
use keystile::identity::{AuthMethod, Principal};
use keystile::rate_limit::{Backoff, KeyBy, MemoryFailureLog, ThrottleLayer};
use keystile::rejection::{Reason, Rejection};
use tower::ServiceExt;

const T0: u64 = 1_700_000_000;

/// Username and password in two headers: alice and bob exist.
struct Passwords;

impl Authenticator for Passwords {
    fn mark(&self, seen: &mut LayersSeen) {
        seen.insert(AuthMethod::Custom("password"));
    }

    async fn authenticate(&self, request: &Parts) -> Outcome {
        let header = |name| request.headers.get(name).and_then(|v| v.to_str().ok());
        let (Some(user), Some(password)) = (header("x-user"), header("x-password")) else {
            return Outcome::Absent;
        };
        match (user, password) {
            ("alice", "correct horse") | ("bob", "battery staple") => {
                Outcome::Admitted(Principal::from_custom("password", user, ()))
            }
            // Unknown users and wrong passwords: one answer.
            _ => Outcome::Refused(Rejection::new(Reason::InvalidCredentials, "password")),
        }
    }
}

fn app(clock: &ManualClock) -> Router {
    let log = MemoryFailureLog::new(Backoff::default()).clock(clock.shared());
    Router::new()
        .route("/private", get(|| async { "ok" }))
        .route_layer(AuthLayer::new(Passwords))
        .route_layer(
            ThrottleLayer::new(log, KeyBy::Header(http::HeaderName::from_static("x-user")))
                .key(KeyBy::ClientIp(ClientIp::new())),
        )
}

fn attempt(ip: [u8; 4], user: Option<&str>, password: &str) -> Request<Body> {
    let mut builder = Request::get("/private").header("x-password", password);
    if let Some(user) = user {
        builder = builder.header("x-user", user);
    }
    let mut request = builder.body(Body::empty()).unwrap();
    request
        .extensions_mut()
        .insert(ConnectInfo(SocketAddr::from((ip, 40_000))));
    request
}

/// Status and `Retry-After` of one attempt.
async fn answer(app: &Router, request: Request<Body>) -> (StatusCode, Option<String>) {
    let response = app.clone().oneshot(request).await.unwrap();
    let retry = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (response.status(), retry)
}

/// Ten wrong passwords for `user`, waiting out each delay on the clock;
/// the answers, including the refusals while blocked.
async fn ten_failures(
    app: &Router,
    clock: &ManualClock,
    ip: [u8; 4],
    user: &str,
) -> Vec<(StatusCode, Option<String>)> {
    let mut answers = Vec::new();
    for _ in 0..10 {
        let (status, retry) = answer(app, attempt(ip, Some(user), "guess")).await;
        answers.push((status, retry.clone()));
        // Blocked now? The next attempt is refused before the password is
        // looked at; wait the delay out.
        let (blocked, wait) = answer(app, attempt(ip, Some(user), "guess")).await;
        if blocked == StatusCode::TOO_MANY_REQUESTS {
            answers.push((blocked, wait.clone()));
            let seconds: u64 = wait.unwrap().parse().unwrap();
            clock.advance(Duration::from_secs(seconds));
        } else {
            answers.push((blocked, wait));
        }
    }
    answers
}

#[tokio::test]
async fn delays_double_after_the_free_attempts_then_lock_the_account_out() {
    let clock = ManualClock::at_unix(T0);
    let app = app(&clock);
    // Three free failures, each a plain 401; from different addresses so
    // only the account key counts.
    for i in 0..3 {
        let (status, retry) = answer(&app, attempt([192, 0, 2, i], Some("alice"), "guess")).await;
        assert_eq!((status, retry), (StatusCode::UNAUTHORIZED, None));
    }
    // The fourth blocks for 1 s: even the right password waits.
    assert_eq!(
        answer(&app, attempt([192, 0, 2, 3], Some("alice"), "guess"))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    let (status, retry) = answer(
        &app,
        attempt([192, 0, 2, 4], Some("alice"), "correct horse"),
    )
    .await;
    assert_eq!(
        (status, retry.as_deref()),
        (StatusCode::TOO_MANY_REQUESTS, Some("1"))
    );
    clock.advance(Duration::from_secs(1));
    // The fifth failure blocks for 2 s, the sixth for 4 s.
    for expected in ["2", "4"] {
        answer(&app, attempt([192, 0, 2, 5], Some("alice"), "guess")).await;
        let (status, retry) = answer(&app, attempt([192, 0, 2, 6], Some("alice"), "guess")).await;
        assert_eq!(
            (status, retry.as_deref()),
            (StatusCode::TOO_MANY_REQUESTS, Some(expected))
        );
        clock.advance(Duration::from_secs(expected.parse().unwrap()));
    }
    // Failures 7 to 9 (8 s, 16 s, 32 s), then the tenth locks for 15 min.
    for wait in [8, 16, 32] {
        answer(&app, attempt([192, 0, 2, 7], Some("alice"), "guess")).await;
        clock.advance(Duration::from_secs(wait));
    }
    answer(&app, attempt([192, 0, 2, 8], Some("alice"), "guess")).await;
    let (status, retry) = answer(
        &app,
        attempt([192, 0, 2, 9], Some("alice"), "correct horse"),
    )
    .await;
    assert_eq!(
        (status, retry.as_deref()),
        (StatusCode::TOO_MANY_REQUESTS, Some("900"))
    );
    clock.advance(Duration::from_secs(900));
    let (status, _) = answer(
        &app,
        attempt([192, 0, 2, 10], Some("alice"), "correct horse"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn known_and_unknown_accounts_get_the_same_answers() {
    let clock = ManualClock::at_unix(T0);
    let known = ten_failures(&app(&clock), &clock, [198, 51, 100, 1], "alice").await;
    let clock = ManualClock::at_unix(T0);
    let unknown = ten_failures(&app(&clock), &clock, [198, 51, 100, 1], "nobody").await;
    assert_eq!(known, unknown);
    assert!(known.contains(&(StatusCode::TOO_MANY_REQUESTS, Some("900".into()))));
}

#[tokio::test]
async fn a_success_clears_the_account_but_not_the_address() {
    let clock = ManualClock::at_unix(T0);
    let app = app(&clock);
    let ip = [203, 0, 113, 5];
    for _ in 0..4 {
        answer(&app, attempt(ip, Some("bob"), "guess")).await;
    }
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        answer(&app, attempt(ip, Some("bob"), "battery staple"))
            .await
            .0,
        StatusCode::OK
    );
    // The account starts again from zero: the next failure is free...
    let from_elsewhere = [203, 0, 113, 6];
    assert_eq!(
        answer(&app, attempt(from_elsewhere, Some("bob"), "guess")).await,
        (StatusCode::UNAUTHORIZED, None)
    );
    assert_eq!(
        answer(&app, attempt(from_elsewhere, Some("bob"), "battery staple"))
            .await
            .0,
        StatusCode::OK
    );
    // ...while the address keeps its four failures: one more blocks it,
    // whichever account it tries.
    answer(&app, attempt(ip, Some("mallory"), "guess")).await;
    let (status, retry) = answer(&app, attempt(ip, Some("alice"), "correct horse")).await;
    assert_eq!(
        (status, retry.as_deref()),
        (StatusCode::TOO_MANY_REQUESTS, Some("2"))
    );
}

#[tokio::test]
async fn requests_that_present_nothing_are_not_failures() {
    let clock = ManualClock::at_unix(T0);
    let app = app(&clock);
    for _ in 0..20 {
        let (status, _) = answer(&app, attempt([192, 0, 2, 77], None, "")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        answer(
            &app,
            attempt([192, 0, 2, 77], Some("alice"), "correct horse")
        )
        .await
        .0,
        StatusCode::OK
    );
}

#[cfg(feature = "redis")]
mod redis {
    use super::*;
    use keystile::rate_limit::RedisFailureLog;
    use keystile::store::redis::connect;

    use crate::support;

    async fn instance(url: &str, prefix: &str) -> Router {
        let connection = connect(url, Duration::from_millis(500)).await.unwrap();
        // Four free failures, the fifth locks for a minute: no delay to
        // wait out on Redis's own clock.
        let backoff = Backoff::default()
            .free_attempts(4)
            .lock_after(5)
            .lock_for(Duration::from_secs(60));
        let log = RedisFailureLog::new(connection, backoff)
            .prefix(prefix)
            .timeout(Duration::from_millis(300));
        Router::new()
            .route("/private", get(|| async { "ok" }))
            .route_layer(AuthLayer::new(Passwords))
            .route_layer(ThrottleLayer::new(
                log,
                KeyBy::Header(http::HeaderName::from_static("x-user")),
            ))
    }

    #[tokio::test]
    async fn two_instances_share_one_count_per_account() {
        let prefix = format!("{}:", support::unique("failures"));
        let url = support::redis_url();
        let (a, b) = (instance(&url, &prefix).await, instance(&url, &prefix).await);
        let ip = [192, 0, 2, 1];
        // A success on either instance clears the count.
        for app in [&a, &b, &a] {
            assert_eq!(
                answer(app, attempt(ip, Some("alice"), "guess")).await.0,
                401
            );
        }
        assert_eq!(
            answer(&b, attempt(ip, Some("alice"), "correct horse"))
                .await
                .0,
            200
        );
        // Five failures spread over both lock the account on both.
        for app in [&a, &b, &a, &b, &a] {
            assert_eq!(
                answer(app, attempt(ip, Some("alice"), "guess")).await.0,
                401
            );
        }
        for app in [&a, &b] {
            let (status, retry) = answer(app, attempt(ip, Some("alice"), "correct horse")).await;
            assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
            let retry: u64 = retry.unwrap().parse().unwrap();
            assert!((59..=60).contains(&retry), "{retry}");
        }
        // Another account is untouched.
        assert_eq!(
            answer(&b, attempt(ip, Some("bob"), "battery staple"))
                .await
                .0,
            200
        );
    }

    #[tokio::test]
    async fn a_failure_log_that_cannot_answer_fails_closed() {
        let mut redis = support::redis_server::ThrowawayRedis::start().await;
        let app = instance(&redis.url(), "failures:").await;
        assert_eq!(
            answer(
                &app,
                attempt([192, 0, 2, 2], Some("alice"), "correct horse")
            )
            .await
            .0,
            200
        );
        redis.stop();
        let (status, retry) = answer(
            &app,
            attempt([192, 0, 2, 2], Some("alice"), "correct horse"),
        )
        .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(retry.is_some());
    }
}
