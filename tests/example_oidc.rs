//! The oidc example as a process of its own, over real TCP: without
//! `OIDC_ISSUER` it starts its demo issuer and prints a token, which reaches
//! `/me` and `/reports` and is refused where it lacks the scope; a missing
//! audience and a discovery document naming another issuer stop it at
//! start-up, an unreachable provider does not.
//!
//! The example's `main` is compiled into this test binary; the child
//! process is this binary again, told by [`RUN_EXAMPLE`] to be the example,
//! so no second cargo build is needed. Every wait is bounded, and each test
//! kills its child.

#[path = "../examples/oidc.rs"]
mod example;

use std::process::{ExitCode, ExitStatus, Stdio};
use std::time::Duration;

use axum::Json;
use axum::routing::get;
use reqwest::{Client, RequestBuilder, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout_at};

/// Set in the child's environment: run the example instead of a test.
const RUN_EXAMPLE: &str = "KEYSTILE_TEST_RUN_OIDC_EXAMPLE";
/// Bound on the example starting, or stopping on its own.
const STARTUP: Duration = Duration::from_secs(30);

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

/// The example running in a child process, and what it has printed.
struct Example {
    child: Child,
    lines: mpsc::UnboundedReceiver<String>,
    printed: Vec<String>,
}

impl Example {
    /// Starts the example on a port of its choosing (`PORT=0`) with `env`
    /// on top of an environment naming no issuer.
    fn start(env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "example_process",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(RUN_EXAMPLE, "1")
            .env("PORT", "0")
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .env_remove("OIDC_ISSUER")
            .env_remove("OIDC_AUDIENCE")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let (sender, lines) = mpsc::unbounded_channel();
        // Read to the end, so a full pipe never blocks the child.
        tokio::spawn(async move {
            while let Ok(Some(line)) = stdout.next_line().await {
                let _ = sender.send(line);
            }
        });
        Self {
            child,
            lines,
            printed: Vec::new(),
        }
    }

    /// The rest of the first line printed from now on that starts with
    /// `prefix`.
    async fn line(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + STARTUP;
        loop {
            let line = match timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) => line,
                Ok(None) => panic!("the example exited before printing {prefix:?}:\n{self}"),
                Err(_) => panic!("the example printed no {prefix:?} in {STARTUP:?}:\n{self}"),
            };
            self.printed.push(line);
            if let Some(rest) = self.printed.last().unwrap().strip_prefix(prefix) {
                return rest.to_owned();
            }
        }
    }

    /// The example's base URL, once it is listening.
    async fn base_url(&mut self) -> String {
        self.line("listening on ").await
    }

    /// Waits for the example to stop on its own; its status and everything
    /// it printed.
    async fn exit(mut self) -> (ExitStatus, String) {
        let deadline = Instant::now() + STARTUP;
        let status = timeout_at(deadline, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("the example kept running:\n{self}"))
            .unwrap();
        while let Ok(Some(line)) = timeout_at(deadline, self.lines.recv()).await {
            self.printed.push(line);
        }
        (status, self.printed.join("\n"))
    }

    async fn stop(mut self) {
        self.child.kill().await.unwrap();
    }
}

impl std::fmt::Display for Example {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.printed.join("\n"))
    }
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
    let mut example = Example::start(&[]);
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
    let example = Example::start(&[("OIDC_ISSUER", "https://idp.example.test")]);
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
    let example = Example::start(&[("OIDC_ISSUER", &provider), ("OIDC_AUDIENCE", "reports-api")]);
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
    let mut example = Example::start(&[("OIDC_ISSUER", &issuer), ("OIDC_AUDIENCE", "reports-api")]);
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
