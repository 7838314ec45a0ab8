//! The oidc example as a process of its own, over real TCP: without
//! `OIDC_ISSUER` it starts its demo issuer and prints a token, which reaches
//! `/me` and `/reports` and is refused where it lacks the scope; a missing
//! audience and a discovery document naming another issuer stop it at
//! start-up, an unreachable provider does not.
//!
//! The example's `main` is compiled into this test binary; the child
//! process is this binary again, told by [`RUN_EXAMPLE`] to be the example
//! (see `example_support`). Every wait is bounded, and each test kills its
//! child.

#[path = "../examples/oidc.rs"]
mod example;
mod example_support;

use std::process::ExitCode;
use std::time::Duration;

use axum::Json;
use axum::routing::get;
use reqwest::{Client, RequestBuilder, StatusCode};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use example_support::Example;

/// Set in the child's environment: run the example instead of a test.
const RUN_EXAMPLE: &str = "KEYSTILE_TEST_RUN_OIDC_EXAMPLE";

/// The child's entry point. Run by [`start`] with `RUN_EXAMPLE`
/// set, it is the example and serves until killed; otherwise it does
/// nothing.
#[test]
fn example_process() {
    if std::env::var_os(RUN_EXAMPLE).is_some() && example::main() != ExitCode::SUCCESS {
        // A start-up error must not look like a passing test to the parent.
        std::process::exit(1);
    }
}

/// Starts the example with `env` on top of an environment naming no issuer.
fn start(env: &[(&str, &str)]) -> Example {
    Example::start(RUN_EXAMPLE, &["OIDC_ISSUER", "OIDC_AUDIENCE"], env)
}

struct Answer {
    status: StatusCode,
    challenge: String,
    body: Value,
}

async fn send(request: RequestBuilder) -> Answer {
    let res = request.send().await.unwrap();
    Answer {
        status: res.status(),
        challenge: res
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default(),
        body: res.json().await.unwrap_or(Value::Null),
    }
}

fn client() -> Client {
    Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// `token` with one byte flipped in the middle of its signature.
fn tampered(token: &str) -> String {
    let (head, signature) = token.rsplit_once('.').unwrap();
    let mut raw = keystile::encoding::decode(signature).unwrap();
    let middle = raw.len() / 2;
    raw[middle] ^= 0x01;
    format!("{head}.{}", keystile::encoding::encode(&raw))
}

/// Serves `router` on a free loopback port; returns its base URL.
async fn serve(router: axum::Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    url
}

#[tokio::test]
async fn the_demo_token_reaches_me_and_reports_and_lacks_reports_write() {
    let mut example = start(&[]);
    let base = example.base_url().await;
    let token = example.line("TOKEN=").await;
    let me_line = example.line("curl -s ").await;
    assert!(me_line.starts_with(&format!("{base}/me ")), "{me_line}");
    let http = client();

    let me = send(http.get(format!("{base}/me")).bearer_auth(&token)).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    assert_eq!(
        me.body,
        json!({"sub": "alice", "scopes": ["reports:read"], "client_id": "demo-client"})
    );

    let reports = send(http.get(format!("{base}/reports")).bearer_auth(&token)).await;
    assert_eq!(reports.status, StatusCode::OK, "{}", reports.body);
    assert_eq!(reports.body["for"], "alice");

    let create = send(http.post(format!("{base}/reports")).bearer_auth(&token)).await;
    assert_eq!(create.status, StatusCode::FORBIDDEN, "{}", create.body);
    assert!(
        create.challenge.contains(r#"error="insufficient_scope""#)
            && create.challenge.contains(r#"scope="reports:write""#),
        "{}",
        create.challenge
    );

    // No credentials: a challenge without an error (RFC 6750 §3.1).
    let anonymous = send(http.get(format!("{base}/me"))).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.challenge, r#"Bearer realm="reports""#);

    let forged = send(http.get(format!("{base}/me")).bearer_auth(tampered(&token))).await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED, "{}", forged.body);
    assert!(
        forged.challenge.contains(r#"error="invalid_token""#),
        "{}",
        forged.challenge
    );
    assert_eq!(forged.body["reason"], "invalid_credentials");

    example.stop().await;
}

#[tokio::test]
async fn an_issuer_without_an_audience_is_refused_at_start_up() {
    let example = start(&[("OIDC_ISSUER", "https://idp.example.test")]);
    let (status, printed) = example.exit().await;
    assert!(!status.success(), "{printed}");
    assert!(printed.contains("OIDC_AUDIENCE must name"), "{printed}");
}

#[tokio::test]
async fn a_discovery_document_naming_another_issuer_stops_it_at_start_up() {
    let provider = serve(axum::Router::new().route(
        "/.well-known/openid-configuration",
        get(Json(json!({
            "issuer": "https://elsewhere.example.test",
            "jwks_uri": "https://elsewhere.example.test/jwks",
        }))),
    ))
    .await;
    let example = start(&[("OIDC_ISSUER", &provider), ("OIDC_AUDIENCE", "reports-api")]);
    let (status, printed) = example.exit().await;
    assert!(!status.success(), "{printed}");
    assert!(
        printed.contains(r#"discovery names the issuer "https://elsewhere.example.test""#),
        "{printed}"
    );
}

#[tokio::test]
async fn an_unreachable_provider_is_logged_and_answered_with_503() {
    // A loopback port nobody listens on: connections are refused at once.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let mut example = start(&[("OIDC_ISSUER", &issuer), ("OIDC_AUDIENCE", "reports-api")]);
    let base = example.base_url().await;
    assert!(
        example
            .printed
            .iter()
            .any(|line| line.contains("identity provider unreachable")),
        "{example}"
    );

    // Any token: without keys none can be checked, and none is admitted.
    let res = client()
        .get(format!("{base}/me"))
        .bearer_auth("e30.e30.c2ln")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers().contains_key("retry-after"));

    example.stop().await;
}
