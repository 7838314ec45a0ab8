//! The PostgreSQL API-key store losing its database in the middle of a
//! bounded request load, through a TCP proxy this test owns (the shared
//! server is never stopped): every request is 503 with nothing admitted
//! while the database is away, and the same app — its pool not rebuilt —
//! admits again once the database is back. A database that answers too
//! slowly is a 503 within the store's timeout, not a hang.
#![cfg(feature = "postgres")]

mod api_key_support;
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use api_key_support::{NOW, TestSchema, app, client, mint, serve};
use keystile::clock::ManualClock;
use reqwest::StatusCode;
use support::outage::{Answer, Request, outage_under_load};
use support::proxy::Proxy;

/// The timeout every store call of these tests is given.
const STORE_TIMEOUT: Duration = Duration::from_millis(500);

/// A key stored through `proxy`, and an app over that store.
async fn app_behind(proxy: &Proxy, tag: &str) -> (TestSchema, String, String) {
    let schema = TestSchema::create_via(tag, &proxy.url_for(&support::database_url())).await;
    let clock = ManualClock::at_unix(NOW);
    let store = Arc::new(schema.store(&clock).timeout(STORE_TIMEOUT));
    let (key, _) = mint(&*store, "*", None).await;
    let base = serve(app(store, &clock, None)).await;
    (schema, key.as_str().to_owned(), base)
}

fn whoami(base: String, key: String) -> Request {
    let client = client();
    Arc::new(move || {
        let (client, base, key) = (client.clone(), base.clone(), key.clone());
        Box::pin(async move {
            let response = client
                .get(format!("{base}/whoami"))
                .header("x-api-key", key)
                .send()
                .await
                .expect("the app answers");
            let status = response.status().as_u16();
            let retry_after = response.headers().contains_key("retry-after");
            assert!(
                status == 200 || !response.headers().contains_key("www-authenticate"),
                "a database failure is not a credential failure"
            );
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            if status == 503 {
                assert_eq!(body["reason"], "backend_unavailable");
            }
            Answer {
                status,
                admitted: body["owner"].is_string(),
                retry_after,
            }
        })
    })
}

#[tokio::test]
async fn api_key_requests_fail_closed_while_the_database_is_down_and_recover_when_it_returns() {
    let mut proxy = Proxy::in_front_of(&support::database_url()).await;
    let (_schema, key, base) = app_behind(&proxy, "fault_pg_down").await;
    let report = outage_under_load(&mut proxy, whoami(base, key), 200).await;
    assert!(report.refused > 0 && report.after > 0, "{report:?}");
}

#[tokio::test]
async fn a_database_slower_than_the_timeout_is_503_within_a_bound_not_a_hang() {
    let proxy = Proxy::in_front_of(&support::database_url()).await;
    let (_schema, key, base) = app_behind(&proxy, "fault_pg_slow").await;
    let request = whoami(base, key);
    assert_eq!(request().await.status, 200);

    proxy.delay(Duration::from_secs(3));
    // A liveness bound, not a performance figure: five times the timeout.
    let bound = STORE_TIMEOUT * 5;
    for _ in 0..3 {
        let started = Instant::now();
        let answer = request().await;
        let took = started.elapsed();
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE.as_u16());
        assert!(!answer.admitted && answer.retry_after);
        assert!(took < bound, "took {took:?}, bound {bound:?}");
    }

    proxy.delay(Duration::ZERO);
    let mut recovered = false;
    for _ in 0..100 {
        if request().await.status == 200 {
            recovered = true;
            break;
        }
    }
    assert!(recovered, "admits again once the database is fast again");
}
