//! `WebhookLayer` over HTTP with signatures computed by an independent
//! implementation (Python's `hmac` module, run from the test) following
//! each provider's documented algorithm: valid deliveries reach the handler
//! with their exact bytes; tampered bodies, wrong and rotated secrets,
//! stale timestamps, replayed deliveries and oversized bodies do not.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::routing::post;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::{Request, StatusCode};
use keystile::clock::ManualClock;
use keystile::replay::MemoryReplayStore;
use keystile::webhook::{
    GitHub, HmacHeader, Slack, StandardWebhooks, Stripe, VerifiedWebhook, WebhookLayer,
    WebhookScheme,
};
use tower::ServiceExt;

const NOW: u64 = 1_700_000_000;
const BODY: &[u8] = br#"{"id":"evt_1","type":"payment_intent.succeeded","amount":4200}"#;

/// HMAC-SHA256 of `message` under `key`, by Python's standard library.
fn python_hmac(key: &[u8], message: &[u8]) -> Vec<u8> {
    let output = Command::new("python3")
        .args([
            "-c",
            "import hmac, hashlib, sys; \
             print(hmac.new(bytes.fromhex(sys.argv[1]), bytes.fromhex(sys.argv[2]), hashlib.sha256).hexdigest())",
            &hex::encode(key),
            &hex::encode(message),
        ])
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    hex::decode(String::from_utf8(output.stdout).unwrap().trim()).unwrap()
}

fn app(scheme: impl WebhookScheme, clock: &ManualClock) -> Router {
    Router::new()
        .route(
            "/hook",
            post(|axum::Extension(delivery): axum::Extension<VerifiedWebhook>, body: Bytes| async move {
                format!("{}|{}", delivery.0.id, String::from_utf8_lossy(&body))
            }),
        )
        .route_layer(
            WebhookLayer::new(scheme)
                .replay(Arc::new(MemoryReplayStore::new().clock(clock.shared())))
                .clock(clock.shared())
                .max_body(4096),
        )
}

async fn deliver(app: &Router, headers: &[(&str, String)], body: &[u8]) -> (StatusCode, String) {
    let mut request = Request::post("/hook");
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::from(body.to_vec())).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test]
async fn github_deliveries_verify_once_with_any_current_secret() {
    let clock = ManualClock::at_unix(NOW);
    let app = app(
        GitHub::new([b"new-secret".as_slice(), b"old-secret"]),
        &clock,
    );
    let signed = |secret: &[u8], body: &[u8], id: &str| {
        vec![
            (
                "x-hub-signature-256",
                format!("sha256={}", hex::encode(python_hmac(secret, body))),
            ),
            ("x-github-delivery", id.to_owned()),
        ]
    };
    let (status, echoed) = deliver(&app, &signed(b"new-secret", BODY, "d-1"), BODY).await;
    assert_eq!(status, StatusCode::OK);
    let tag = hex::encode(python_hmac(b"new-secret", BODY));
    assert_eq!(
        echoed,
        format!("github:{tag}|{}", String::from_utf8_lossy(BODY))
    );
    // GitHub does not sign X-GitHub-Delivery: the same delivery under
    // another id, or its signature in upper case, is still a replay.
    for (name, value) in [
        ("x-github-delivery", "d-1-again".to_owned()),
        (
            "x-hub-signature-256",
            format!("sha256={}", tag.to_uppercase()),
        ),
    ] {
        let mut replay = signed(b"new-secret", BODY, "d-1");
        replay.retain(|(n, _)| *n != name);
        replay.push((name, value));
        let (status, problem) = deliver(&app, &replay, BODY).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{name}");
        assert!(problem.contains("already received"), "{problem}");
    }
    // During a rotation the old secret still verifies.
    assert_eq!(
        deliver(&app, &signed(b"old-secret", BODY, "d-2"), BODY)
            .await
            .0,
        200
    );
    // The same delivery again: refused.
    let (status, problem) = deliver(&app, &signed(b"new-secret", BODY, "d-1"), BODY).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(problem.contains("already received"), "{problem}");
    // Tampered body, unknown secret, missing or malformed signature.
    let tampered = BODY
        .to_vec()
        .into_iter()
        .map(|b| if b == b'2' { b'9' } else { b })
        .collect::<Vec<_>>();
    for (headers, body) in [
        (signed(b"new-secret", BODY, "d-3"), tampered.as_slice()),
        (signed(b"another-secret", BODY, "d-4"), BODY),
        (vec![("x-github-delivery", "d-5".to_owned())], BODY),
        (
            vec![
                ("x-hub-signature-256", "sha1=abc".to_owned()),
                ("x-github-delivery", "d-6".to_owned()),
            ],
            BODY,
        ),
    ] {
        let (status, problem) = deliver(&app, &headers, body).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{headers:?}");
        assert!(
            !problem.contains("payment_intent"),
            "the body is never echoed: {problem}"
        );
    }
}

#[tokio::test]
async fn slack_signs_the_timestamp_and_refuses_stale_ones() {
    let clock = ManualClock::at_unix(NOW);
    let app = app(Slack::new([b"slack-signing-secret".as_slice()]), &clock);
    let signed = |ts: u64, body: &[u8]| {
        let base = [format!("v0:{ts}:").as_bytes(), body].concat();
        vec![
            (
                "x-slack-signature",
                format!(
                    "v0={}",
                    hex::encode(python_hmac(b"slack-signing-secret", &base))
                ),
            ),
            ("x-slack-request-timestamp", ts.to_string()),
        ]
    };
    assert_eq!(deliver(&app, &signed(NOW - 10, BODY), BODY).await.0, 200);
    assert_eq!(
        deliver(&app, &signed(NOW - 10, BODY), BODY).await.0,
        401,
        "replayed"
    );
    assert_eq!(
        deliver(&app, &signed(NOW - 301, BODY), BODY).await.0,
        401,
        "stale"
    );
    assert_eq!(
        deliver(&app, &signed(NOW + 301, BODY), BODY).await.0,
        401,
        "from the future"
    );
    // A timestamp changed after signing breaks the signature.
    let mut moved = signed(NOW - 20, BODY);
    moved[1].1 = (NOW - 19).to_string();
    let (status, problem) = deliver(&app, &moved, BODY).await;
    assert_eq!(status, 401);
    assert!(problem.contains("does not match"), "{problem}");
}

#[tokio::test]
async fn stripe_accepts_any_v1_within_the_tolerance() {
    let clock = ManualClock::at_unix(NOW);
    let app = app(Stripe::new([b"whsec_current".as_slice()]), &clock);
    let v1 = |secret: &[u8], ts: u64, body: &[u8]| {
        hex::encode(python_hmac(
            secret,
            &[format!("{ts}.").as_bytes(), body].concat(),
        ))
    };
    // Stripe sends one v1 per active secret while rolling; one matches.
    let rolling = format!(
        "t={NOW},v1={},v1={},v0=ignored",
        v1(b"whsec_previous", NOW, BODY),
        v1(b"whsec_current", NOW, BODY)
    );
    assert_eq!(
        deliver(&app, &[("stripe-signature", rolling.clone())], BODY)
            .await
            .0,
        200
    );
    assert_eq!(
        deliver(&app, &[("stripe-signature", rolling)], BODY)
            .await
            .0,
        401,
        "replayed"
    );
    // The same event re-signed later (a retry, or a replay with a fresh
    // timestamp) is still evt_1: refused.
    let resigned = format!("t={},v1={}", NOW + 5, v1(b"whsec_current", NOW + 5, BODY));
    let (status, problem) = deliver(&app, &[("stripe-signature", resigned)], BODY).await;
    assert_eq!(status, 401);
    assert!(problem.contains("already received"), "{problem}");
    let stale = format!(
        "t={},v1={}",
        NOW - 400,
        v1(b"whsec_current", NOW - 400, BODY)
    );
    assert_eq!(
        deliver(&app, &[("stripe-signature", stale)], BODY).await.0,
        401
    );
    // More signatures than any rotation needs: refused unhashed.
    let many = format!("t={NOW}{}", format!(",v1={}", "00".repeat(32)).repeat(9));
    let (status, problem) = deliver(&app, &[("stripe-signature", many)], BODY).await;
    assert_eq!(status, 401);
    assert!(problem.contains("malformed"), "{problem}");
    let only_old = format!("t={NOW},v1={}", v1(b"whsec_previous", NOW, BODY));
    assert_eq!(
        deliver(&app, &[("stripe-signature", only_old)], BODY)
            .await
            .0,
        401
    );
    let tampered = format!("t={NOW},v1={}", v1(b"whsec_current", NOW, BODY));
    assert_eq!(
        deliver(&app, &[("stripe-signature", tampered)], b"{}")
            .await
            .0,
        401
    );
    assert_eq!(
        deliver(&app, &[("stripe-signature", "t=1".to_owned())], BODY)
            .await
            .0,
        401
    );
}

#[tokio::test]
async fn standard_webhooks_sign_id_timestamp_and_body() {
    let clock = ManualClock::at_unix(NOW);
    let key = b"standard-webhooks-secret-bytes!!";
    let secret = format!("whsec_{}", STANDARD.encode(key));
    let app = app(StandardWebhooks::new([secret.as_str()]).unwrap(), &clock);
    let signed = |id: &str, ts: u64, body: &[u8]| {
        let content = [format!("{id}.{ts}.").as_bytes(), body].concat();
        vec![
            ("webhook-id", id.to_owned()),
            ("webhook-timestamp", ts.to_string()),
            (
                "webhook-signature",
                format!("v1,{}", STANDARD.encode(python_hmac(key, &content))),
            ),
        ]
    };
    assert_eq!(
        deliver(&app, &signed("msg_1", NOW, BODY), BODY).await.0,
        200
    );
    assert_eq!(
        deliver(&app, &signed("msg_1", NOW, BODY), BODY).await.0,
        401,
        "replayed id"
    );
    assert_eq!(
        deliver(&app, &signed("msg_2", NOW - 600, BODY), BODY)
            .await
            .0,
        401,
        "stale"
    );
    let mut swapped = signed("msg_3", NOW, BODY);
    swapped[0].1 = "msg_4".to_owned();
    assert_eq!(
        deliver(&app, &swapped, BODY).await.0,
        401,
        "id not the one signed"
    );
    assert!(StandardWebhooks::new(["whsec_***"]).is_err());
}

#[tokio::test]
async fn a_generic_base64_header_and_the_body_cap() {
    let clock = ManualClock::at_unix(NOW);
    let scheme = HmacHeader::new(
        http::HeaderName::from_static("x-signature"),
        [b"generic".as_slice()],
    )
    .prefix("sha256=")
    .base64();
    let app = app(scheme, &clock);
    let header = |body: &[u8]| {
        vec![(
            "x-signature",
            format!("sha256={}", STANDARD.encode(python_hmac(b"generic", body))),
        )]
    };
    assert_eq!(deliver(&app, &header(BODY), BODY).await.0, 200);
    assert_eq!(deliver(&app, &header(b"{}"), BODY).await.0, 401);
    let large = vec![b'x'; 5000];
    assert_eq!(
        deliver(&app, &header(&large), &large).await.0,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    clock.advance(Duration::from_secs(1));
}
