//! The hygiene layers over real TCP: every header of every preset, HSTS
//! only over https (and `X-Forwarded-Proto` only from trusted proxies), CSP
//! report ingestion, request-id validation, credential-free access logs, IP
//! filters with and without trusted proxies, and CORS preflights answered
//! before authentication — most of it through `examples/hardened`.

mod hardened_support;
mod support;

use std::net::SocketAddr;

use axum::Router;
use axum::routing::get;
use keystile::client_ip::ClientIp;
use keystile::csp::{Csp, CspError, Directive};
use keystile::ip_filter::IpFilterLayer;
use keystile::security_headers::{HttpsDetection, SecurityHeadersLayer};
use reqwest::StatusCode;
use tokio::net::TcpListener;

/// Serves `app` with connection info on a fresh loopback port.
async fn serve(app: Router) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap()
    });
    port
}

use hardened_support::{Example, LOOPBACK, client, example};
use support::raw_http::{Answer, raw};

// Security headers ------------------------------------------------------

async fn headers_of(
    layer: SecurityHeadersLayer,
    extra: &[(&str, &str)],
) -> reqwest::header::HeaderMap {
    let port = serve(
        Router::new()
            .route("/", get(|| async { "ok" }))
            .layer(layer),
    )
    .await;
    let mut request = client().get(format!("http://127.0.0.1:{port}/"));
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.headers().clone()
}

const STRICT: [(&str, &str); 9] = [
    (
        "content-security-policy",
        "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'",
    ),
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
    ("origin-agent-cluster", "?1"),
    ("x-xss-protection", "0"),
    (
        "permissions-policy",
        keystile::security_headers::PERMISSIONS_POLICY,
    ),
];

#[tokio::test]
async fn every_preset_sends_every_one_of_its_headers() {
    let trusted =
        || HttpsDetection::ForwardedProto(ClientIp::new().trusted_proxies(["127.0.0.1"]).unwrap());
    let https = [("x-forwarded-proto", "https")];
    let hsts = "max-age=31536000; includeSubDomains";

    let strict = headers_of(SecurityHeadersLayer::strict().https(trusted()), &https).await;
    for (name, value) in STRICT {
        assert_eq!(strict[name], value, "strict {name}");
    }
    assert_eq!(strict["strict-transport-security"], hsts);

    let relaxed = headers_of(SecurityHeadersLayer::relaxed().https(trusted()), &https).await;
    let mut expected: Vec<(&str, &str)> = STRICT.to_vec();
    for (name, value) in [
        (
            "content-security-policy",
            "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'self'; object-src 'none'",
        ),
        ("x-frame-options", "SAMEORIGIN"),
        ("referrer-policy", "strict-origin-when-cross-origin"),
        ("cross-origin-opener-policy", "same-origin-allow-popups"),
        ("cross-origin-resource-policy", "same-site"),
    ] {
        expected.retain(|(n, _)| *n != name);
        expected.push((name, value));
    }
    for (name, value) in expected {
        assert_eq!(relaxed[name], value, "relaxed {name}");
    }
    assert_eq!(relaxed["strict-transport-security"], hsts);

    let dev = headers_of(SecurityHeadersLayer::dev().https(trusted()), &https).await;
    for (name, value) in STRICT {
        assert_eq!(dev[name], value, "dev {name}");
    }
    assert!(
        !dev.contains_key("strict-transport-security"),
        "dev never pins https"
    );

    let empty = headers_of(SecurityHeadersLayer::empty().https(trusted()), &https).await;
    for (name, _) in STRICT {
        assert!(!empty.contains_key(name), "empty {name}");
    }
    assert!(!empty.contains_key("strict-transport-security"));
}

#[tokio::test]
async fn hsts_needs_https_from_a_trusted_proxy() {
    let https = [("x-forwarded-proto", "https")];
    // Plain http, no claim: no HSTS.
    let plain = headers_of(SecurityHeadersLayer::strict(), &https).await;
    assert!(
        !plain.contains_key("strict-transport-security"),
        "X-Forwarded-Proto not trusted by default"
    );
    // A claim from a peer that is not a trusted proxy: ignored.
    let untrusted =
        HttpsDetection::ForwardedProto(ClientIp::new().trusted_proxies(["10.0.0.0/8"]).unwrap());
    let spoofed = headers_of(SecurityHeadersLayer::strict().https(untrusted), &https).await;
    assert!(!spoofed.contains_key("strict-transport-security"));
    // The trusted proxy saying http: no HSTS.
    let trusted =
        HttpsDetection::ForwardedProto(ClientIp::new().trusted_proxies(["127.0.0.1"]).unwrap());
    let http = headers_of(
        SecurityHeadersLayer::strict().https(trusted),
        &[("x-forwarded-proto", "http")],
    )
    .await;
    assert!(!http.contains_key("strict-transport-security"));
    // TLS ends in the process.
    let always = headers_of(
        SecurityHeadersLayer::strict().https(HttpsDetection::Always),
        &[],
    )
    .await;
    assert!(always.contains_key("strict-transport-security"));
}

#[test]
fn the_csp_builder_refuses_what_browsers_would_misread() {
    let one = |d, v: &[&str]| Csp::builder().directive(d, v.iter().copied()).build();
    assert!(matches!(
        one(Directive::DefaultSrc, &["self"]),
        Err(CspError::UnquotedKeyword { .. })
    ));
    assert!(matches!(
        one(Directive::ScriptSrc, &["'none'", "'self'"]),
        Err(CspError::NoneWithOthers(_))
    ));
    assert!(matches!(
        one(Directive::ImgSrc, &["a;b"]),
        Err(CspError::InvalidValue { .. })
    ));
    assert!(matches!(
        one(Directive::ImgSrc, &["x\u{7}"]),
        Err(CspError::InvalidValue { .. })
    ));
    let twice = Csp::builder()
        .directive(Directive::ScriptSrc, ["'self'"])
        .directive(Directive::ScriptSrc, ["'self'"])
        .build();
    assert!(matches!(
        twice,
        Err(CspError::DuplicateDirective(Directive::ScriptSrc))
    ));
    let inline = Csp::builder()
        .directive(Directive::StyleSrc, ["'unsafe-inline'"])
        .nonce()
        .strict()
        .build();
    assert!(matches!(
        inline,
        Err(CspError::UnsafeInlineWithNonce(Directive::StyleSrc))
    ));
}

#[tokio::test]
async fn the_example_page_carries_a_fresh_nonce_in_header_and_html() {
    let Example { port, .. } = example(&LOOPBACK).await;
    let mut nonces = Vec::new();
    for _ in 0..2 {
        let response = client()
            .get(format!("http://127.0.0.1:{port}/"))
            .send()
            .await
            .unwrap();
        let csp = response.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        let html = response.text().await.unwrap();
        let nonce = html
            .split("nonce=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap()
            .to_owned();
        assert!(
            csp.contains(&format!("script-src 'self' 'nonce-{nonce}'")),
            "{csp}"
        );
        assert!(csp.contains("report-uri /csp-reports"));
        nonces.push(nonce);
    }
    assert_ne!(nonces[0], nonces[1]);
}

// CSP reports -----------------------------------------------------------

#[tokio::test]
async fn csp_reports_are_read_in_both_formats_and_oversize_is_refused() {
    let Example {
        port,
        reports: seen,
        ..
    } = example(&LOOPBACK).await;
    let url = format!("http://127.0.0.1:{port}/csp-reports");
    let post = |content_type: &'static str, body: String| {
        client()
            .post(&url)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let legacy = r#"{"csp-report": {"document-uri": "http://localhost/?token=SECRET1",
        "violated-directive": "script-src-elem", "blocked-uri": "inline", "disposition": "enforce"}}"#;
    assert_eq!(
        post("application/csp-report", legacy.into())
            .await
            .unwrap()
            .status(),
        204
    );
    let modern = r#"[{"type": "csp-violation", "body": {"documentURL": "http://localhost/",
        "effectiveDirective": "img-src", "blockedURL": "https://evil.test/p.png?sig=SECRET2",
        "disposition": "report"}}]"#;
    assert_eq!(
        post("application/reports+json", modern.into())
            .await
            .unwrap()
            .status(),
        204
    );
    let big = format!(
        r#"{{"csp-report": {{"blocked-uri": "{}"}}}}"#,
        "a".repeat(20_000)
    );
    assert_eq!(
        post("application/csp-report", big).await.unwrap().status(),
        413
    );
    assert_eq!(
        post("text/plain", legacy.into()).await.unwrap().status(),
        415
    );
    assert_eq!(
        post("application/csp-report", "{".into())
            .await
            .unwrap()
            .status(),
        400
    );
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].directive, "script-src-elem");
    assert_eq!(seen[0].document, "http://localhost/?token=[redacted]");
    assert_eq!(seen[1].blocked, "https://evil.test/p.png?sig=[redacted]");
    assert_eq!(seen[1].source, Some("127.0.0.1".parse().unwrap()));
}

// Request ids -------------------------------------------------------------

fn response_request_id(text: &str) -> Option<String> {
    text.lines()
        .find_map(|line| line.strip_prefix("x-request-id: "))
        .map(str::to_owned)
}

fn is_generated(id: &str) -> bool {
    id.len() == 22
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[tokio::test]
async fn inbound_request_ids_are_kept_only_when_clean() {
    let Example { port, .. } = example(&LOOPBACK).await;
    let get = |id: &[u8]| {
        [
            b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Request-Id: ".as_slice(),
            id,
            b"\r\n",
        ]
        .concat()
    };
    let Answer { status, text, .. } = raw(port, &get(b"trace-42")).await;
    assert_eq!(status, 200);
    assert_eq!(response_request_id(&text).as_deref(), Some("trace-42"));
    let long_ok = "a".repeat(128);
    let Answer { text, .. } = raw(port, &get(long_ok.as_bytes())).await;
    assert_eq!(response_request_id(&text), Some(long_ok));
    let too_long = "a".repeat(129);
    for bad in [
        too_long.as_bytes(),
        b"caf\xc3\xa9",
        b"two words",
        b"tab\there",
    ] {
        let Answer { status, text, .. } = raw(port, &get(bad)).await;
        let id = response_request_id(&text);
        assert!(
            status == 200 && id.as_deref().is_some_and(is_generated),
            "{:?} -> {status} {id:?}",
            String::from_utf8_lossy(bad)
        );
    }
    // Control characters never reach the layer (the HTTP parser refuses
    // them); whatever happens, they are never echoed.
    let Answer { text, .. } = raw(port, &get(b"evil\x01id")).await;
    assert!(!text.contains("evil"), "{text}");
    // A "header injection" is just another request header: the id before
    // it is kept, and nothing is set on the response.
    let Answer { status, text, .. } = raw(
        port,
        b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Request-Id: a\r\nSet-Cookie: session=planted\r\n",
    )
    .await;
    assert_eq!(status, 200);
    assert!(!text.to_ascii_lowercase().contains("set-cookie"), "{text}");
}

#[tokio::test]
async fn problem_bodies_name_the_request_id() {
    let Example { port, .. } = example(&LOOPBACK).await;
    let response = client()
        .get(format!("http://127.0.0.1:{port}/api/me"))
        .header("x-request-id", "ticket-7")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["x-request-id"], "ticket-7");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["request_id"], "ticket-7");
    assert_eq!(body["reason"], "missing_credentials");
}

// IP filters ------------------------------------------------------------

#[tokio::test]
async fn the_example_admits_only_its_allow_list() {
    let Example { port, .. } = example(&["192.0.2.0/24"]).await;
    let response = client()
        .get(format!("http://127.0.0.1:{port}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["reason"], "forbidden");
    let Example { port, .. } = example(&LOOPBACK).await;
    let response = client()
        .get(format!("http://127.0.0.1:{port}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

async fn status_with_xff(port: u16, xff: Option<&str>) -> u16 {
    let mut request = client().get(format!("http://127.0.0.1:{port}/"));
    if let Some(xff) = xff {
        request = request.header("x-forwarded-for", xff);
    }
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn forwarded_addresses_count_only_from_trusted_proxies() {
    let route = || Router::new().route("/", get(|| async { "ok" }));
    // 127.0.0.1 (the test client) is a trusted proxy here.
    let behind_proxy = IpFilterLayer::new()
        .block(["203.0.113.0/24"])
        .unwrap()
        .client_ip(ClientIp::new().trusted_proxies(["127.0.0.1"]).unwrap());
    let port = serve(route().layer(behind_proxy)).await;
    assert_eq!(status_with_xff(port, Some("203.0.113.9")).await, 403);
    // A spoofed leftmost entry does not hide the blocked client.
    assert_eq!(
        status_with_xff(port, Some("192.0.2.1, 203.0.113.9")).await,
        403
    );
    assert_eq!(
        status_with_xff(port, Some("203.0.113.9, 192.0.2.1")).await,
        200
    );
    assert_eq!(status_with_xff(port, Some("not-an-address")).await, 400);
    assert_eq!(status_with_xff(port, None).await, 200);

    // Without trusted proxies the header is the client's own text.
    let direct = IpFilterLayer::new().allow(["203.0.113.0/24"]).unwrap();
    let port = serve(route().layer(direct)).await;
    assert_eq!(status_with_xff(port, Some("203.0.113.9")).await, 403);
}

#[tokio::test]
async fn without_connect_info_the_filter_is_a_500_naming_the_fix() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(IpFilterLayer::new());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let response = client()
        .get(format!("http://127.0.0.1:{port}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 500);
    let body = response.text().await.unwrap();
    assert!(
        body.contains("into_make_service_with_connect_info"),
        "{body}"
    );
}

// CORS --------------------------------------------------------------------

#[tokio::test]
async fn cors_preflights_are_answered_before_authentication() {
    let Example { port, key, .. } = example(&LOOPBACK).await;
    let allowed = format!("http://localhost:{}", port.wrapping_add(1));
    let url = format!("http://127.0.0.1:{port}/api/me");
    let preflight = |origin: &str| {
        client()
            .request(reqwest::Method::OPTIONS, &url)
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "x-api-key")
            .send()
    };
    let ok = preflight(&allowed).await.unwrap();
    assert_eq!(
        ok.status(),
        200,
        "a preflight carries no key and is not refused"
    );
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        allowed.as_str()
    );
    assert_eq!(ok.headers()["access-control-allow-credentials"], "true");
    assert!(ok.headers()["vary"].to_str().unwrap().contains("origin"));
    let foreign = preflight("https://evil.test").await.unwrap();
    assert!(
        !foreign
            .headers()
            .contains_key("access-control-allow-origin")
    );
    // The request itself is authenticated as any other.
    let anonymous = client()
        .get(&url)
        .header("origin", &allowed)
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let keyed = client()
        .get(&url)
        .header("origin", &allowed)
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(keyed.status(), 200);
    assert_eq!(
        keyed.headers()["access-control-allow-origin"],
        allowed.as_str()
    );
}
