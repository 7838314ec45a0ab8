//! The rate_limits example as a process of its own, over real TCP: on
//! `/limited` five requests from one address pass and the sixth is 429 with
//! `Retry-After` and the `RateLimit` headers; `/api/limited` is 401 without
//! a key, then allows three requests per key and refuses the fourth, while
//! the other demo key keeps its own budget. In memory, and (feature
//! `redis`) with the budgets in Redis.
//!
//! The example's `main` is compiled into this test binary; the child
//! process is this binary again, told by [`RUN_EXAMPLE`] to be the example
//! (see `example_support`). Every wait is bounded, and each test kills its
//! child.

#[path = "../examples/rate_limits.rs"]
mod example;
mod example_support;
#[cfg(feature = "redis")]
mod support;

use std::process::ExitCode;
use std::time::Duration;

use reqwest::{Client, RequestBuilder, StatusCode};

use example_support::Example;

/// Set in the child's environment: run the example instead of a test.
const RUN_EXAMPLE: &str = "KEYSTILE_TEST_RUN_RATE_LIMITS_EXAMPLE";

/// The child's entry point. Run by [`Example::start`] with `RUN_EXAMPLE`
/// set, it is the example and serves until killed; otherwise it does
/// nothing.
#[test]
fn example_process() {
    if std::env::var_os(RUN_EXAMPLE).is_some() && example::main() != ExitCode::SUCCESS {
        // A start-up error must not look like a passing test to the parent.
        std::process::exit(1);
    }
}

struct Answer {
    status: StatusCode,
    body: String,
    retry_after: String,
    policy: String,
    limit: String,
}

async fn send(request: RequestBuilder) -> Answer {
    let res = request.send().await.unwrap();
    let header = |name: &str| {
        res.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    Answer {
        status: res.status(),
        retry_after: header("retry-after"),
        policy: header("ratelimit-policy"),
        limit: header("ratelimit"),
        body: res.text().await.unwrap(),
    }
}

fn client() -> Client {
    Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// The seconds of a `Retry-After` header, checked to lie in `range`.
fn retry_after_within(answer: &Answer, range: std::ops::RangeInclusive<u64>) {
    let seconds: u64 = answer.retry_after.parse().unwrap_or_else(|_| {
        panic!("Retry-After {:?} is not seconds", answer.retry_after);
    });
    assert!(range.contains(&seconds), "Retry-After: {seconds}");
}

/// Runs the example with `env`, checks it keeps its budgets in `backend`,
/// and spends them as a client would. Each request is sent as soon as the
/// one before is answered: well inside the 2 s a per-address request takes
/// to refill.
async fn budgets_hold(backend: &str, env: &[(&str, &str)]) {
    let mut example = Example::start(RUN_EXAMPLE, &["KEYSTILE_REDIS_URL"], env);
    let base = example.base_url().await;
    let said = format!("limiters: {backend}");
    assert!(
        example.printed.iter().any(|line| line.contains(&said)),
        "{example}"
    );
    let key_a = example.line("KEY_A=").await;
    let key_b = example.line("KEY_B=").await;
    let http = client();

    let limited = format!("{base}/limited");
    for remaining in (0..5).rev() {
        let ok = send(http.get(&limited)).await;
        assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
        assert_eq!(ok.policy, r#""per-ip";q=5;w=10"#);
        assert!(
            ok.limit
                .starts_with(&format!(r#""per-ip";r={remaining};t="#)),
            "{}",
            ok.limit
        );
    }
    let refused = send(http.get(&limited)).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    // One request refills every 2 s.
    retry_after_within(&refused, 1..=2);
    assert_eq!(refused.policy, r#""per-ip";q=5;w=10"#);
    assert!(
        refused.limit.starts_with(r#""per-ip";r=0;t="#),
        "{}",
        refused.limit
    );
    assert!(refused.body.contains("rate_limited"), "{}", refused.body);

    let api = format!("{base}/api/limited");
    let anonymous = send(http.get(&api)).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    // Refused before the limit: nothing counted, no budget told.
    assert_eq!(anonymous.limit, "");
    for remaining in (0..3).rev() {
        let ok = send(http.get(&api).header("x-api-key", &key_a)).await;
        assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
        assert_eq!(ok.body, "hello, alice\n");
        assert_eq!(ok.policy, r#""per-key";q=3;w=10"#);
        assert!(
            ok.limit
                .starts_with(&format!(r#""per-key";r={remaining};t="#)),
            "{}",
            ok.limit
        );
    }
    let refused = send(http.get(&api).header("x-api-key", &key_a)).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    // One request refills every 3.33 s.
    retry_after_within(&refused, 1..=4);
    assert!(
        refused.limit.starts_with(r#""per-key";r=0;t="#),
        "{}",
        refused.limit
    );

    let other = send(http.get(&api).bearer_auth(&key_b)).await;
    assert_eq!(other.status, StatusCode::OK, "{}", other.body);
    assert_eq!(other.body, "hello, bob\n");
    assert!(
        other.limit.starts_with(r#""per-key";r=2;t="#),
        "{}",
        other.limit
    );

    example.stop().await;
}

#[tokio::test]
async fn in_memory_five_per_address_and_three_per_key() {
    budgets_hold("memory", &[]).await;
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn on_redis_the_same_budgets_hold() {
    let url = support::redis_url();
    // The example's keys are fixed: forget what an earlier run counted.
    let mut redis = keystile::store::redis::connect(&url, Duration::from_secs(2))
        .await
        .unwrap();
    let left: Vec<String> = redis::cmd("KEYS")
        .arg("keystile-example:rate:*")
        .query_async(&mut redis)
        .await
        .unwrap();
    if !left.is_empty() {
        let _: () = redis::cmd("DEL")
            .arg(&left)
            .query_async(&mut redis)
            .await
            .unwrap();
    }
    budgets_hold("Redis", &[("KEYSTILE_REDIS_URL", &url)]).await;
}
