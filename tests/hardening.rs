//! Regression tests for the findings of the black-box attack on keystile's
//! examples, each over real TCP (raw request bytes where a client library
//! would normalise the attack away):
//!
//! 1. a cookie whose name is the session cookie's behind a Unicode space;
//! 2. environment proxies receiving the userinfo fetcher's bearer tokens;
//! 3. absolute-form request targets naming another tenant than `Host`;
//! 4. `Authorization: Bearer<TAB><key>` overruled by `X-API-Key`;
//! 5. a duplicate session cookie whose value is not text;
//! 6. two `Host` headers on the example console;
//! 7. token endpoint answers without `Cache-Control: no-store`;
//! 8. one issuer's key signing tokens in another issuer's name;
//! 9. keystile's sqlx migrations breaking the application's.

mod api_key_support;
#[allow(dead_code)]
#[path = "../examples/handoff/app.rs"]
mod app;
#[allow(dead_code)]
#[path = "../examples/bearer/app.rs"]
mod bearer_app;
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use keystile::bearer::{BearerLayer, BearerTokens, JwtVerifier};
use keystile::clock::ManualClock;
use keystile::handoff::{Handoff, HandoffCodec, HandoffLayer};
use keystile::keys::{Keyring, SigningKey};
use keystile::replay::MemoryReplayStore;
use keystile::session::{SessionClaims, SessionCodec, SessionCookies, SessionLayer};
use keystile::tenant::HostTenant;
use serde_json::json;
use support::raw_http::{Answer, raw};
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpListener;

const T0: u64 = 1_700_000_000;

fn keyring() -> Keyring {
    Keyring::new(SigningKey::from_bytes(&[0x42; 32]).expect("32-byte key"))
}

/// Serves `app` on a fresh loopback port.
async fn serve(app: Router) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    port
}

/// Concatenates byte pieces into one request head.
fn head(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// `HandoffLayer` and `SessionLayer` straight on a router (no example
/// dispatch in front), tenants under `localhost`, time frozen at `T0`.
struct Tenants {
    port: u16,
    handoff: HandoffCodec,
    session: String,
}

async fn tenants() -> Tenants {
    let ring = keyring();
    let clock = ManualClock::at_unix(T0);
    let hosts = HostTenant::under("localhost").unwrap();
    let app = Router::new()
        .route("/admin", get(|| async { "admin" }))
        .route_layer(SessionLayer::new(
            SessionCookies::new(ring.clone(), hosts.clone()).clock(clock.shared()),
        ))
        .layer(
            HandoffLayer::new(ring.clone(), MemoryReplayStore::new(), hosts).clock(clock.shared()),
        );
    let session = SessionCodec::new(ring.clone())
        .clock(clock.shared())
        .issue(
            &SessionClaims {
                subject: "admin@acme".into(),
                actor: None,
                tenant: "acme".into(),
                session_version: None,
                expires_at: 0,
            },
            Duration::from_secs(3600),
        )
        .unwrap();
    Tenants {
        port: serve(app).await,
        handoff: HandoffCodec::new(ring).clock(clock.shared()),
        session,
    }
}

impl Tenants {
    fn token(&self) -> String {
        self.handoff
            .mint(&Handoff::new("admin@acme", "acme"))
            .unwrap()
    }

    /// `GET /admin` on acme with `cookie` as the whole `Cookie` value.
    async fn admin_with_cookie(&self, cookie: &[u8]) -> Answer {
        let host = format!("Host: acme.localhost:{}\r\n", self.port);
        raw(
            self.port,
            &head(&[
                b"GET /admin HTTP/1.1\r\n",
                host.as_bytes(),
                b"Cookie: ",
                cookie,
                b"\r\n",
            ]),
        )
        .await
    }
}

// 1 -------------------------------------------------------------------

#[tokio::test]
async fn a_cookie_named_with_a_unicode_space_is_not_the_session_cookie() {
    let t = tenants().await;
    let valid = t.session.as_bytes();
    let real = t
        .admin_with_cookie(&head(&[b"keystile_session=", valid]))
        .await;
    assert_eq!((real.status, real.body.as_str()), (200, "admin"));
    // U+00A0 NO-BREAK SPACE, U+3000 IDEOGRAPHIC SPACE and U+2028 LINE
    // SEPARATOR before the name; U+00A0 after it.
    for name in [
        &b"\xc2\xa0keystile_session"[..],
        b"\xe3\x80\x80keystile_session",
        b"\xe2\x80\xa8keystile_session",
        b"keystile_session\xc2\xa0",
    ] {
        let answer = t.admin_with_cookie(&head(&[name, b"=", valid])).await;
        assert_eq!(answer.status, 401, "{name:?}");
        assert!(
            answer.body.contains("missing_credentials"),
            "{}",
            answer.body
        );
    }
    // SP and HTAB around the name are the only blanks RFC 6265 strips.
    let blanks = t
        .admin_with_cookie(&head(&[b" \tkeystile_session\t =", valid]))
        .await;
    assert_eq!(blanks.status, 200);
}

// 5 -------------------------------------------------------------------

#[tokio::test]
async fn a_duplicate_session_cookie_that_is_not_text_is_refused() {
    let t = tenants().await;
    let valid = t.session.as_bytes();
    for cookie in [
        head(&[b"keystile_session=\xff\xfe; keystile_session=", valid]),
        head(&[b"keystile_session=", valid, b"; keystile_session=\xff\xfe"]),
    ] {
        let answer = t.admin_with_cookie(&cookie).await;
        assert_eq!(answer.status, 401, "{:?}", String::from_utf8_lossy(&cookie));
        assert!(answer.body.contains("malformed"), "{}", answer.body);
    }
    // Another application's cookie that is not text changes nothing.
    let other = t
        .admin_with_cookie(&head(&[b"theme=\xff\xfe; keystile_session=", valid]))
        .await;
    assert_eq!(other.status, 200);
}

// 3 -------------------------------------------------------------------

#[tokio::test]
async fn an_absolute_form_target_must_agree_with_host() {
    let t = tenants().await;
    let port = t.port;
    let token = t.token();
    let target = |tenant: &str, path: &str| {
        format!("GET http://{tenant}.localhost:{port}{path} HTTP/1.1\r\n")
    };
    let acme_host = format!("Host: acme.localhost:{port}\r\n");
    let handoff = format!("/_keystile/handoff?token={token}");

    // The target names globex while Host names acme (the token's tenant).
    let crossed = raw(
        port,
        &head(&[target("globex", &handoff).as_bytes(), acme_host.as_bytes()]),
    )
    .await;
    assert_eq!(crossed.status, 400, "{}", crossed.body);
    assert!(crossed.body.contains("malformed"), "{}", crossed.body);
    assert!(!crossed.body.contains(&token));
    assert_eq!(crossed.header("referrer-policy"), Some("no-referrer"));

    // The same for the session cookie.
    let cookie = format!("Cookie: keystile_session={}\r\n", t.session);
    let session = raw(
        port,
        &head(&[
            target("globex", "/admin").as_bytes(),
            acme_host.as_bytes(),
            cookie.as_bytes(),
        ]),
    )
    .await;
    assert_eq!(session.status, 400, "{}", session.body);

    // Nothing was lost: the refused request burned no token, and a target
    // that agrees with Host is served as usual.
    let agreed = raw(
        port,
        &head(&[target("acme", &handoff).as_bytes(), acme_host.as_bytes()]),
    )
    .await;
    assert_eq!(agreed.status, 303, "{}", agreed.body);
}

#[tokio::test]
async fn two_host_headers_are_refused_by_the_layers() {
    let t = tenants().await;
    let port = t.port;
    let token = t.token();
    let hosts = format!("Host: acme.localhost:{port}\r\nHost: acme.localhost:{port}\r\n");
    let handoff = format!("GET /_keystile/handoff?token={token} HTTP/1.1\r\n");
    let answer = raw(port, &head(&[handoff.as_bytes(), hosts.as_bytes()])).await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    let cookie = format!("Cookie: keystile_session={}\r\n", t.session);
    let answer = raw(
        port,
        &head(&[
            b"GET /admin HTTP/1.1\r\n",
            hosts.as_bytes(),
            cookie.as_bytes(),
        ]),
    )
    .await;
    assert_eq!(answer.status, 400, "{}", answer.body);
}

// 6 -------------------------------------------------------------------

#[tokio::test]
async fn two_host_headers_are_a_400_on_the_example_console() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let router = app::app(app::AppConfig::new(keyring(), port));
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let console = format!("Host: localhost:{port}\r\n");
    let acme = format!("Host: acme.localhost:{port}\r\n");
    let one = raw(port, &head(&[b"GET / HTTP/1.1\r\n", console.as_bytes()])).await;
    assert_eq!(one.status, 200);
    for hosts in [
        [console.as_bytes(), acme.as_bytes()],
        [acme.as_bytes(), console.as_bytes()],
        [console.as_bytes(), console.as_bytes()],
    ] {
        let answer = raw(port, &head(&[b"GET / HTTP/1.1\r\n", hosts[0], hosts[1]])).await;
        assert_eq!(answer.status, 400, "{}", answer.body);
        let answer = raw(
            port,
            &head(&[
                b"POST /impersonate/acme HTTP/1.1\r\nContent-Length: 0\r\n",
                hosts[0],
                hosts[1],
            ]),
        )
        .await;
        assert_eq!(answer.status, 400, "{}", answer.body);
    }
}

// 4 -------------------------------------------------------------------

#[tokio::test]
async fn a_tab_after_bearer_keeps_authorization_in_charge() {
    let store: Arc<dyn keystile::api_key::ApiKeyAdmin> =
        Arc::new(keystile::api_key::MemoryApiKeyStore::new());
    let clock = ManualClock::at_unix(api_key_support::NOW);
    let (key, _) = api_key_support::mint(store.as_ref(), "reports:read", None).await;
    let port = serve(api_key_support::app(store, &clock, None)).await;
    let request = |authorization: &str| {
        format!(
            "GET /whoami HTTP/1.1\r\nHost: api.test\r\nX-API-Key: {}\r\nAuthorization: {authorization}\r\n",
            key.as_str()
        )
    };
    // A bad key in Authorization, a good one in X-API-Key: Authorization wins.
    for authorization in ["Bearer\tnot-a-key", "Bearer \t not-a-key", "bearer\t"] {
        let answer = raw(port, request(authorization).as_bytes()).await;
        assert_eq!(answer.status, 401, "{authorization:?}: {}", answer.body);
    }
    // The tab-separated key itself is read.
    let tabbed = raw(
        port,
        request(&format!("Bearer\t{}", key.as_str())).as_bytes(),
    )
    .await;
    assert_eq!(tabbed.status, 200, "{}", tabbed.body);
}

// 7 -------------------------------------------------------------------

#[tokio::test]
async fn token_endpoint_answers_are_never_stored() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let router = bearer_app::app(bearer_app::AppConfig::new(keyring(), port)).unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let client = api_key_support::client();
    let base = format!("http://127.0.0.1:{port}");
    let requests = [
        ("/idp/token", r#"{"sub":"alice"}"#, 200),
        ("/idp/token", r#"{"sub":""}"#, 400),
        ("/idp/refresh", r#"{"refresh_token":"not-a-token"}"#, 400),
        ("/idp/refresh", "not json", 400),
    ];
    for (path, body, status) in requests {
        let answer = client
            .post(format!("{base}{path}"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status().as_u16(), status, "{path} {body}");
        let header = |name| answer.headers().get(name).and_then(|v| v.to_str().ok());
        assert_eq!(header("cache-control"), Some("no-store"), "{path} {body}");
        assert_eq!(header("pragma"), Some("no-cache"), "{path} {body}");
    }
}

// 2 -------------------------------------------------------------------

const CHILD_URL: &str = "KEYSTILE_HARDENING_USERINFO_URL";

#[tokio::test]
async fn userinfo_calls_ignore_environment_proxies() {
    // Run again by itself in a child process whose environment names a
    // proxy (this process cannot change its own environment safely): there
    // it is the fetch, and the parent below checks where the call went.
    if let Ok(url) = std::env::var(CHILD_URL) {
        fetch_with_proxies_in_the_environment(&url).await;
        return;
    }

    // A "proxy" that counts the connections it is offered and answers none.
    let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
    let offered = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&offered);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = proxy.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let _ = stream
                .write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
                .await;
        }
    });
    let answered = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&answered);
    let userinfo = Router::new().route(
        "/userinfo",
        get(move || {
            seen.fetch_add(1, Ordering::SeqCst);
            async { axum::Json(json!({"sub": "alice", "session_version": 5})) }
        }),
    );
    let port = serve(userinfo).await;

    // The fetcher runs in a child process whose environment names the
    // proxy (this process cannot change its own environment safely).
    let output = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "userinfo_calls_ignore_environment_proxies",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_URL, format!("http://127.0.0.1:{port}/userinfo"))
        .env("HTTP_PROXY", &proxy_url)
        .env("http_proxy", &proxy_url)
        .env("HTTPS_PROXY", &proxy_url)
        .env("ALL_PROXY", &proxy_url)
        .env("all_proxy", &proxy_url)
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(offered.load(Ordering::SeqCst), 0, "the proxy saw a call");
    assert_eq!(
        answered.load(Ordering::SeqCst),
        1,
        "the endpoint saw no call"
    );
}

/// The child's half of [`userinfo_calls_ignore_environment_proxies`].
async fn fetch_with_proxies_in_the_environment(url: &str) {
    use keystile::session_version::{FetchRequest, SessionVersionFetcher, UserinfoFetcher};
    let fetcher = UserinfoFetcher::new(url).unwrap();
    let request = FetchRequest {
        subject: "alice",
        bearer: Some("the-callers-token"),
    };
    assert_eq!(fetcher.fetch(request).await.unwrap(), 5);
}

// 8 -------------------------------------------------------------------

#[tokio::test]
async fn one_issuers_key_never_signs_for_another_issuer() {
    const A: &str = "https://idp-a.example.test";
    const B: &str = "https://idp-b.example.test";
    let secret_a = [0xa1; 32];
    let secret_b = [0xb2; 32];
    let clock = ManualClock::at_unix(T0);
    let built = JwtVerifier::builder()
        .hs256_secret("a", &secret_a)
        .unwrap()
        .hs256_secret("b", &secret_b)
        .unwrap()
        .issuer(A)
        .issuer(B)
        .audience("api")
        .clock(clock.shared())
        .build();
    let verifier = match built {
        // The verifier refuses to be configured so: one issuer per verifier.
        Err(error) => {
            assert!(error.to_string().contains("one issuer"), "{error}");
            return;
        }
        Ok(verifier) => verifier,
    };
    // Built anyway: then idp-a's key must not verify a token claiming idp-b.
    let app = Router::new()
        .route("/me", get(|| async { "me" }))
        .route_layer(BearerLayer::new(BearerTokens::new(Arc::new(verifier))));
    let port = serve(app).await;
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some("a".into());
    let forged = jsonwebtoken::encode(
        &header,
        &json!({"sub": "mallory", "iss": B, "aud": "api", "exp": T0 + 300}),
        &jsonwebtoken::EncodingKey::from_secret(&secret_a).unwrap(),
    )
    .unwrap();
    let answer = raw(
        port,
        format!("GET /me HTTP/1.1\r\nHost: api.test\r\nAuthorization: Bearer {forged}\r\n")
            .as_bytes(),
    )
    .await;
    assert_eq!(
        answer.status, 401,
        "a token in idp-b's name signed by idp-a's key"
    );
}

// 9 -------------------------------------------------------------------

#[cfg(feature = "postgres")]
mod migrations {
    use std::str::FromStr as _;

    use keystile::api_key::PostgresApiKeyStore;
    use sqlx::migrate::Migrator;
    use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

    use crate::support::{database_url, unique};

    /// A fresh schema, and a pool whose `search_path` is it.
    async fn schema(tag: &str) -> (String, PgPool) {
        let name = unique(tag);
        let admin = PgPool::connect(&database_url()).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}")))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
        let options = PgConnectOptions::from_str(&database_url())
            .unwrap()
            .options([("search_path", name.as_str())]);
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await
            .unwrap();
        (name, pool)
    }

    async fn drop_schema(name: &str) {
        let admin = PgPool::connect(&database_url()).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {name} CASCADE")))
            .execute(&admin)
            .await
            .unwrap();
    }

    /// An application's own migration set, as `sqlx::migrate!()` builds it.
    async fn application() -> Migrator {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/app_migrations");
        Migrator::new(dir).await.unwrap()
    }

    async fn assert_both_work(pool: &PgPool) {
        let users: (i64,) = sqlx::query_as("SELECT count(*) FROM app_users")
            .fetch_one(pool)
            .await
            .unwrap();
        assert_eq!(users.0, 0);
        let keys: (i64,) = sqlx::query_as("SELECT count(*) FROM keystile_api_keys")
            .fetch_one(pool)
            .await
            .unwrap();
        assert_eq!(keys.0, 0);
    }

    #[tokio::test]
    async fn application_migrations_then_keystiles_then_both_again() {
        let (name, pool) = schema("migrate_app_first").await;
        let store = PostgresApiKeyStore::new(pool.clone());
        application().await.run(&pool).await.unwrap();
        store
            .migrate()
            .await
            .expect("keystile after the application");
        application()
            .await
            .run(&pool)
            .await
            .expect("the application again");
        store.migrate().await.expect("keystile again");
        assert_both_work(&pool).await;
        pool.close().await;
        drop_schema(&name).await;
    }

    #[tokio::test]
    async fn keystile_migrations_then_the_applications_then_both_again() {
        let (name, pool) = schema("migrate_keystile_first").await;
        let store = PostgresApiKeyStore::new(pool.clone());
        store.migrate().await.unwrap();
        application()
            .await
            .run(&pool)
            .await
            .expect("the application after keystile");
        store.migrate().await.expect("keystile again");
        application()
            .await
            .run(&pool)
            .await
            .expect("the application again");
        assert_both_work(&pool).await;
        pool.close().await;
        drop_schema(&name).await;
    }
}
