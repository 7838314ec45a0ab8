//! API keys end to end over real TCP, against the in-memory store and
//! against PostgreSQL (a schema of its own per test): every check runs on
//! both.

mod api_key_support;
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use api_key_support::{NOW, REALM, app, client, counting, mint, serve};
use keystile::api_key::{
    ApiKeyAdmin, ApiKeyStore, CachedApiKeyStore, LastUsedRecorder, MemoryApiKeyStore,
};
use keystile::clock::ManualClock;
use reqwest::{Response, StatusCode};
use serde_json::Value;

/// One store under test, its clock, and what keeps its backend alive.
struct Env {
    store: Arc<dyn ApiKeyAdmin>,
    clock: ManualClock,
    #[cfg(feature = "postgres")]
    _schema: Option<api_key_support::TestSchema>,
}

impl Env {
    fn memory() -> Self {
        Self {
            store: Arc::new(MemoryApiKeyStore::new()),
            clock: ManualClock::at_unix(NOW),
            #[cfg(feature = "postgres")]
            _schema: None,
        }
    }

    #[cfg(feature = "postgres")]
    async fn postgres() -> Self {
        let clock = ManualClock::at_unix(NOW);
        let schema = api_key_support::TestSchema::create("apikey").await;
        Self {
            store: Arc::new(schema.store(&clock)),
            clock,
            _schema: Some(schema),
        }
    }

    async fn serve(&self, store: Arc<dyn ApiKeyAdmin>) -> String {
        serve(app(store, &self.clock, None)).await
    }
}

/// Runs each named check against both stores.
macro_rules! on_both_stores {
    ($($check:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $check() {
                    super::$check(super::Env::memory()).await;
                }
            )*
        }

        #[cfg(feature = "postgres")]
        mod postgres {
            $(
                #[tokio::test]
                async fn $check() {
                    super::$check(super::Env::postgres().await).await;
                }
            )*
        }
    };
}

on_both_stores!(
    valid_key_works_via_both_headers_and_every_scheme_casing,
    authorization_wins_over_x_api_key,
    no_key_is_401_with_a_bare_challenge,
    bad_keys_are_401_invalid_token_and_never_echoed,
    checksum_bad_keys_never_reach_the_store,
    expired_and_revoked_keys_are_refused_like_unknown_ones,
    lacking_scope_is_403_and_wildcard_passes,
    revoked_key_is_refused_within_the_cache_bound,
    a_burst_of_requests_is_a_handful_of_last_used_writes,
);

async fn get(base: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    let mut req = client().get(format!("{base}{path}"));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.send().await.unwrap()
}

fn challenge(r: &Response) -> String {
    r.headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

async fn valid_key_works_via_both_headers_and_every_scheme_casing(env: Env) {
    let (key, record) = mint(&*env.store, "reports:read", None).await;
    let base = env.serve(env.store.clone()).await;
    let mut ways: Vec<(&str, String)> = ["Bearer", "bearer", "BEARER", "bEaReR"]
        .iter()
        .map(|scheme| ("authorization", format!("{scheme} {}", key.as_str())))
        .collect();
    ways.push(("x-api-key", key.as_str().to_owned()));
    for (header, value) in &ways {
        let r = get(&base, "/whoami", &[(header, value)]).await;
        assert_eq!(r.status(), StatusCode::OK, "{header}: {value}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["key_id"], record.id.as_str());
        assert_eq!(body["prefix"], "sk_test");
        assert_eq!(body["owner"], "acme");
        assert_eq!(body["scopes"], serde_json::json!(["reports:read"]));
    }
}

async fn authorization_wins_over_x_api_key(env: Env) {
    let (key, _) = mint(&*env.store, "", None).await;
    let (other, _) = mint(&*env.store, "", None).await;
    let base = env.serve(env.store.clone()).await;
    let bearer = format!("Bearer {}", key.as_str());
    let r = get(
        &base,
        "/whoami",
        &[("authorization", &bearer), ("x-api-key", "junk")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK, "valid Bearer, junk X-API-Key");

    let r = get(
        &base,
        "/whoami",
        &[
            ("authorization", "Bearer junk"),
            ("x-api-key", key.as_str()),
        ],
    )
    .await;
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "junk Bearer is not skipped"
    );

    // Both valid: the key in Authorization is the one used.
    let other_bearer = format!("Bearer {}", other.as_str());
    let r = get(
        &base,
        "/whoami",
        &[
            ("authorization", &other_bearer),
            ("x-api-key", key.as_str()),
        ],
    )
    .await;
    let body: Value = r.json().await.unwrap();
    let other_id = env
        .store
        .lookup(&other.digest())
        .await
        .unwrap()
        .unwrap()
        .id
        .clone();
    assert_eq!(body["key_id"], other_id.as_str());

    // Another scheme in Authorization is not a Bearer credential.
    let r = get(
        &base,
        "/whoami",
        &[("authorization", "Basic YTpi"), ("x-api-key", key.as_str())],
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
}

async fn no_key_is_401_with_a_bare_challenge(env: Env) {
    let base = env.serve(env.store.clone()).await;
    let bare = format!(r#"Bearer realm="{REALM}""#);
    for headers in [
        vec![],
        vec![("x-api-key", "")],
        vec![("authorization", "Bearer ")],
        vec![("authorization", "")],
    ] {
        let r = get(&base, "/whoami", &headers).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{headers:?}");
        assert_eq!(challenge(&r), bare, "{headers:?}");
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["reason"], "missing_credentials");
    }
    // Unknown routes stay 404: the layer is a route_layer.
    let r = get(&base, "/nope", &[]).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

/// The key with one character in the middle of its random part changed.
fn tampered(key: &str) -> String {
    let mut bytes = key.as_bytes().to_vec();
    let mid = "sk_test_".len() + 20;
    bytes[mid] = if bytes[mid] == b'x' { b'y' } else { b'x' };
    String::from_utf8(bytes).unwrap()
}

async fn bad_keys_are_401_invalid_token_and_never_echoed(env: Env) {
    let (key, _) = mint(&*env.store, "*", None).await;
    let base = env.serve(env.store.clone()).await;
    let bad = [
        "garbage".to_owned(),
        tampered(key.as_str()),
        format!("{}x", key.as_str()),
        key.as_str()[..key.as_str().len() - 1].to_owned(),
        key.as_str().to_uppercase(),
        "a".repeat(5000),
    ];
    for presented in &bad {
        for header in ["x-api-key", "authorization"] {
            let value = if header == "authorization" {
                format!("Bearer {presented}")
            } else {
                presented.clone()
            };
            let r = get(&base, "/whoami", &[(header, &value)]).await;
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{header}");
            let c = challenge(&r);
            assert!(
                c.starts_with(&format!(r#"Bearer realm="{REALM}", error="invalid_token""#)),
                "{c}"
            );
            let body = r.text().await.unwrap();
            assert!(
                !body.contains(presented.as_str()),
                "the key is never echoed"
            );
        }
    }
    // Two values for one header are ambiguous: refused, not guessed at.
    let r = client()
        .get(format!("{base}/whoami"))
        .header("x-api-key", key.as_str())
        .header("x-api-key", key.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

async fn checksum_bad_keys_never_reach_the_store(env: Env) {
    let (key, _) = mint(&*env.store, "", None).await;
    let counting = counting(env.store.clone());
    let base = env.serve(counting.clone()).await;
    let text = key.as_str();
    let checksum_bad = [
        tampered(text),
        format!("{}zzzzzz", &text[..text.len() - 6]),
        format!("sk_live{}", &text["sk_test".len()..]),
        "sk_test_0000000000000000000000000000000000000000000000000".to_owned(),
        "garbage".to_owned(),
    ];
    for presented in &checksum_bad {
        let r = get(&base, "/whoami", &[("x-api-key", presented)]).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        counting.lookups(),
        0,
        "no checksum-bad key reached the store"
    );
    let r = get(&base, "/whoami", &[("x-api-key", text)]).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(counting.lookups(), 1);
}

async fn expired_and_revoked_keys_are_refused_like_unknown_ones(env: Env) {
    let (expiring, _) = mint(&*env.store, "", Some(NOW + 60)).await;
    let (revoked, revoked_record) = mint(&*env.store, "", None).await;
    let (unknown, _) = keystile::api_key::NewApiKey::new(
        keystile::api_key::KeyPrefix::new("sk_test").unwrap(),
        "acme",
    )
    .mint(&keystile::random::OsRandom, NOW)
    .unwrap();
    let base = env.serve(env.store.clone()).await;

    let answer = |r: Response| async move {
        let status = r.status();
        let c = challenge(&r);
        (status, c, r.text().await.unwrap())
    };
    let unknown_answer =
        answer(get(&base, "/whoami", &[("x-api-key", unknown.as_str())]).await).await;
    assert_eq!(unknown_answer.0, StatusCode::UNAUTHORIZED);

    let r = get(&base, "/whoami", &[("x-api-key", expiring.as_str())]).await;
    assert_eq!(r.status(), StatusCode::OK, "valid until its expiry");
    env.clock.advance(Duration::from_secs(60));
    let expired_answer =
        answer(get(&base, "/whoami", &[("x-api-key", expiring.as_str())]).await).await;
    assert_eq!(expired_answer, unknown_answer);

    let r = get(&base, "/whoami", &[("x-api-key", revoked.as_str())]).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        env.store
            .revoke(&revoked_record.id, NOW + 60)
            .await
            .unwrap()
    );
    let revoked_answer =
        answer(get(&base, "/whoami", &[("x-api-key", revoked.as_str())]).await).await;
    assert_eq!(revoked_answer, unknown_answer);
}

async fn lacking_scope_is_403_and_wildcard_passes(env: Env) {
    let (reader, _) = mint(&*env.store, "reports:read", None).await;
    let (admin, _) = mint(&*env.store, "*", None).await;
    let (nobody, _) = mint(&*env.store, "billing:read", None).await;
    let base = env.serve(env.store.clone()).await;
    let post = |key: String| {
        let base = base.clone();
        async move {
            client()
                .post(format!("{base}/reports"))
                .header("x-api-key", key)
                .send()
                .await
                .unwrap()
        }
    };

    assert_eq!(
        get(&base, "/reports", &[("x-api-key", reader.as_str())])
            .await
            .status(),
        200
    );
    assert_eq!(
        get(&base, "/typed", &[("x-api-key", reader.as_str())])
            .await
            .status(),
        200
    );
    let r = post(reader.as_str().to_owned()).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        challenge(&r),
        format!(
            r#"Bearer realm="{REALM}", error="insufficient_scope", error_description="the credential lacks a required scope", scope="reports:write""#
        )
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["reason"], "insufficient_scope");
    assert_eq!(body["scope"], "reports:write");

    for path in ["/reports", "/typed"] {
        let r = get(&base, path, &[("x-api-key", nobody.as_str())]).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path}");
        assert!(challenge(&r).ends_with(r#"scope="reports:read""#), "{path}");
    }

    assert_eq!(
        get(&base, "/reports", &[("x-api-key", admin.as_str())])
            .await
            .status(),
        200
    );
    assert_eq!(
        post(admin.as_str().to_owned()).await.status(),
        StatusCode::OK
    );
    // 401 stays 401 on scoped routes: authentication comes first.
    assert_eq!(
        get(&base, "/reports", &[]).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

async fn revoked_key_is_refused_within_the_cache_bound(env: Env) {
    let (key, record) = mint(&*env.store, "", None).await;
    let counting = counting(env.store.clone());
    let cached: Arc<dyn ApiKeyAdmin> = Arc::new(
        CachedApiKeyStore::new(counting.clone())
            .clock(env.clock.shared())
            .max_staleness(Duration::from_secs(30)),
    );
    let base = env.serve(cached).await;
    for _ in 0..3 {
        let r = get(&base, "/whoami", &[("x-api-key", key.as_str())]).await;
        assert_eq!(r.status(), StatusCode::OK);
    }
    assert_eq!(counting.lookups(), 1, "served from the cache");

    // Another process revokes the key in the backing store.
    assert!(env.store.revoke(&record.id, NOW).await.unwrap());
    env.clock.advance(Duration::from_secs(29));
    let r = get(&base, "/whoami", &[("x-api-key", key.as_str())]).await;
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "inside the documented 30 s bound"
    );
    env.clock.advance(Duration::from_secs(1));
    let r = get(&base, "/whoami", &[("x-api-key", key.as_str())]).await;
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "refused once the bound has passed"
    );
}

async fn a_burst_of_requests_is_a_handful_of_last_used_writes(env: Env) {
    let (key, _) = mint(&*env.store, "", None).await;
    let counting = counting(env.store.clone());
    let every = Duration::from_secs(1);
    let started = Instant::now();
    let recorder = LastUsedRecorder::spawn(counting.clone(), every);
    let base = serve(app(counting.clone(), &env.clock, Some(recorder.clone()))).await;

    let http = client();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (http, base, key) = (http.clone(), base.clone(), key.as_str().to_owned());
        tasks.push(tokio::spawn(async move {
            for _ in 0..125 {
                let r = http
                    .get(format!("{base}/whoami"))
                    .header("x-api-key", &key)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), StatusCode::OK);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    recorder.flush().await.unwrap();
    let elapsed = started.elapsed();
    let writes = counting.writes();
    // At most one background write per elapsed second, plus the final flush.
    let bound = elapsed.as_secs() as usize + 2;
    assert!(
        (1..=bound).contains(&writes),
        "{writes} writes for 1,000 requests in {elapsed:?}"
    );
    assert_eq!(counting.lookups(), 1000);
    let stored = env.store.lookup(&key.digest()).await.unwrap().unwrap();
    assert_eq!(stored.last_used_at, Some(NOW));
}
