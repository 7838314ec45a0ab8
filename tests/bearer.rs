//! `BearerLayer`, the `Claims`/`Bearer` extractors and the token lifecycle
//! over real TCP: RFC 6750 responses, expiry on the injected clock,
//! revocation, refresh replay, and fail-closed backends — in one process and
//! across two instances sharing Redis.
#![cfg(all(feature = "jwt", feature = "redis"))]

mod support;

use support::redis_server::ThrowawayRedis;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use keystile::Scopes;
use keystile::bearer::{
    Bearer, BearerLayer, BearerTokens, Claims, Grant, LifecycleError, MemoryRevocationList,
    RedisRevocationList, RevocationList, TokenError, TokenLifecycle,
};
use keystile::clock::ManualClock;
use keystile::keys::{Keyring, SigningKey};
use keystile::replay::{MemoryReplayStore, RedisReplayStore, ReplayStore};
use redis::aio::ConnectionManager;
use serde_json::{Value, json};

const T0: u64 = 1_700_000_000;

async fn redis_connection(url: &str) -> ConnectionManager {
    let client = redis::Client::open(url).expect("redis url");
    ConnectionManager::new(client)
        .await
        .unwrap_or_else(|e| panic!("Redis at {url} must be reachable for this test: {e}"))
}

fn keyring() -> Keyring {
    Keyring::new(SigningKey::from_bytes(&[7; 32]).unwrap())
}

/// One app instance: a resource route behind `BearerLayer`, and the token
/// endpoints of a tiny issuer, sharing one lifecycle.
fn app(tokens: TokenLifecycle) -> Router {
    async fn me(claims: Claims, Bearer(raw): Bearer) -> Json<Value> {
        Json(json!({
            "sub": claims.subject,
            "sv": claims.session_version,
            "scope": claims.scopes.to_string(),
            "tenant": claims.extra.get("tenant"),
            "raw_len": raw.token().len(),
        }))
    }
    async fn maybe(claims: Option<Claims>) -> String {
        claims.map_or_else(|| "anonymous".into(), |c| c.subject)
    }
    async fn refresh(
        State(tokens): State<TokenLifecycle>,
        Json(body): Json<Value>,
    ) -> (StatusCode, Json<Value>) {
        let token = body["refresh_token"].as_str().unwrap_or_default();
        match tokens.refresh(token).await {
            Ok(pair) => (StatusCode::OK, Json(serde_json::to_value(&pair).unwrap())),
            Err(LifecycleError::AlreadyUsed) => (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": "invalid_grant", "why": "already_used"})),
            ),
            Err(LifecycleError::Unavailable(_)) => (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"error": "temporarily_unavailable"})),
            ),
            Err(_) => (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": "invalid_grant"})),
            ),
        }
    }
    async fn revoke(State(tokens): State<TokenLifecycle>, Json(body): Json<Value>) -> StatusCode {
        let token = body["token"].as_str().unwrap_or_default();
        match tokens.revoke(token).await {
            Ok(()) => StatusCode::OK,
            Err(LifecycleError::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
            Err(_) => StatusCode::BAD_REQUEST,
        }
    }
    let protected = Router::new().route("/api/me", get(me)).route_layer(
        BearerLayer::new(BearerTokens::new(Arc::new(tokens.clone()))).realm("reports"),
    );
    let optional = Router::new()
        .route("/api/maybe", get(maybe))
        .route_layer(BearerLayer::new(BearerTokens::new(Arc::new(tokens.clone()))).optional());
    let issuer = Router::new()
        .route("/token/refresh", post(refresh))
        .route("/token/revoke", post(revoke))
        .with_state(tokens);
    protected.merge(optional).merge(issuer)
}

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

fn lifecycle(
    clock: &ManualClock,
    replay: Arc<dyn ReplayStore>,
    revocations: Arc<dyn RevocationList>,
) -> TokenLifecycle {
    TokenLifecycle::builder(keyring())
        .replay_store(replay)
        .revocation_list(revocations)
        .clock(clock.shared())
        .issuer("https://idp.test")
        .audience("reports")
        .build()
        .unwrap()
}

async fn memory_instance(clock: &ManualClock) -> (TokenLifecycle, String) {
    let replay = Arc::new(MemoryReplayStore::new().clock(clock.shared()));
    let revocations = Arc::new(MemoryRevocationList::new().clock(clock.shared()));
    let tokens = lifecycle(clock, replay, revocations);
    let base = serve(app(tokens.clone())).await;
    (tokens, base)
}

async fn get_me(base: &str, auth: Option<&str>) -> (StatusCode, Option<String>, Value) {
    let mut req = reqwest::Client::new().get(format!("{base}/api/me"));
    if let Some(auth) = auth {
        req = req.header("authorization", auth);
    }
    let res = req.send().await.unwrap();
    let status = StatusCode::from_u16(res.status().as_u16()).unwrap();
    let challenge = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = res.json::<Value>().await.unwrap_or(Value::Null);
    (status, challenge, body)
}

async fn post_json(url: String, body: Value) -> (StatusCode, Value) {
    let res = reqwest::Client::new()
        .post(url)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = StatusCode::from_u16(res.status().as_u16()).unwrap();
    (status, res.json::<Value>().await.unwrap_or(Value::Null))
}

fn grant() -> Grant {
    Grant::new("alice")
        .scopes(Scopes::parse("reports:read"))
        .session_version(3)
        .claim("tenant", "acme")
}

#[tokio::test]
async fn valid_access_token_reaches_the_handler_with_its_claims_and_raw_token() {
    let clock = ManualClock::at_unix(T0);
    let (tokens, base) = memory_instance(&clock).await;
    let pair = tokens.issue(&grant()).unwrap();
    let (status, _, body) = get_me(&base, Some(&format!("bEaReR {}", pair.access_token()))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["sub"], "alice");
    assert_eq!(body["sv"], 3);
    assert_eq!(body["scope"], "reports:read");
    assert_eq!(body["tenant"], "acme");
    assert_eq!(body["raw_len"], pair.access_token().len());
}

#[tokio::test]
async fn no_credentials_is_401_with_a_challenge_without_error() {
    let clock = ManualClock::at_unix(T0);
    let (_, base) = memory_instance(&clock).await;
    let (status, challenge, body) = get_me(&base, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(challenge.as_deref(), Some(r#"Bearer realm="reports""#));
    assert_eq!(body["reason"], "missing_credentials");
    // An empty Bearer value and another scheme count as no credentials.
    for auth in ["Bearer ", "Basic YWxpY2U6cHc="] {
        let (status, challenge, _) = get_me(&base, Some(auth)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{auth}");
        assert_eq!(
            challenge.as_deref(),
            Some(r#"Bearer realm="reports""#),
            "{auth}"
        );
    }
}

#[tokio::test]
async fn bad_tokens_are_401_invalid_token_with_their_reason() {
    let clock = ManualClock::at_unix(T0);
    let (tokens, base) = memory_instance(&clock).await;
    let pair = tokens.issue(&grant()).unwrap();
    let access = pair.access_token().to_owned();
    let mut signature = keystile::encoding::decode(access.rsplit('.').next().unwrap()).unwrap();
    signature[16] ^= 0x80;
    let (head, _) = access.rsplit_once('.').unwrap();
    let tampered = format!("{head}.{}", keystile::encoding::encode(&signature));

    let other_audience = TokenLifecycle::builder(keyring())
        .replay_store(Arc::new(MemoryReplayStore::new().clock(clock.shared())))
        .revocation_list(Arc::new(MemoryRevocationList::new()))
        .clock(clock.shared())
        .issuer("https://idp.test")
        .audience("billing")
        .build()
        .unwrap()
        .issue(&grant())
        .unwrap();

    let cases = [
        (tampered.as_str(), "invalid_credentials"),
        ("not-a-jwt", "malformed"),
        (pair.refresh_token(), "invalid_credentials"),
        (other_audience.access_token(), "wrong_audience"),
    ];
    for (token, reason) in cases {
        let (status, challenge, body) = get_me(&base, Some(&format!("Bearer {token}"))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{reason}");
        let challenge = challenge.unwrap();
        assert!(
            challenge.starts_with(r#"Bearer realm="reports", error="invalid_token""#),
            "{challenge}"
        );
        assert_eq!(body["reason"], reason);
        assert!(!body.to_string().contains(token), "token echoed");
    }
}

#[tokio::test]
async fn malformed_authorization_header_is_400_invalid_request() {
    let clock = ManualClock::at_unix(T0);
    let (_, base) = memory_instance(&clock).await;
    let (status, challenge, body) = get_me(&base, Some("Bearer two tokens")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(challenge.unwrap().contains(r#"error="invalid_request""#));
    assert_eq!(body["reason"], "malformed");
}

#[tokio::test]
async fn expired_and_not_yet_valid_follow_the_injected_clock() {
    let clock = ManualClock::at_unix(T0);
    let (tokens, base) = memory_instance(&clock).await;
    let pair = tokens.issue(&grant()).unwrap();
    let auth = format!("Bearer {}", pair.access_token());
    clock.advance(Duration::from_secs(15 * 60 + 29));
    assert_eq!(
        get_me(&base, Some(&auth)).await.0,
        StatusCode::OK,
        "inside leeway"
    );
    clock.advance(Duration::from_secs(1));
    let (status, _, body) = get_me(&base, Some(&auth)).await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("expired"))
    );

    // A token whose issuer's clock runs far ahead of ours.
    let mut nbf_claims = serde_json::Map::new();
    nbf_claims.insert("sub".into(), "alice".into());
    nbf_claims.insert("exp".into(), (T0 + 20_000).into());
    nbf_claims.insert("nbf".into(), (T0 + 10_000).into());
    nbf_claims.insert("iss".into(), "https://idp.test".into());
    nbf_claims.insert("aud".into(), "reports".into());
    nbf_claims.insert("jti".into(), "nbf-test".into());
    nbf_claims.insert("typ".into(), "access".into());
    let early = keystile::bearer::jwt::sign_hs256(&keyring(), &nbf_claims).unwrap();
    clock.set_unix_millis(T0 * 1000);
    let (status, _, body) = get_me(&base, Some(&format!("Bearer {early}"))).await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("not_yet_valid"))
    );
}

#[tokio::test]
async fn optional_mode_serves_anonymous_requests_but_refuses_bad_tokens() {
    let clock = ManualClock::at_unix(T0);
    let (tokens, base) = memory_instance(&clock).await;
    let client = reqwest::Client::new();
    let res = client
        .get(format!("{base}/api/maybe"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.text().await.unwrap(), "anonymous");
    let pair = tokens.issue(&grant()).unwrap();
    let res = client
        .get(format!("{base}/api/maybe"))
        .bearer_auth(pair.access_token())
        .send()
        .await
        .unwrap();
    assert_eq!(res.text().await.unwrap(), "alice");
    let res = client
        .get(format!("{base}/api/maybe"))
        .bearer_auth("forged")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);
}

#[tokio::test]
async fn closure_verifier_behind_bearer_layer() {
    let verifier = |token: String| async move {
        match token.as_str() {
            "opaque-123" => Ok(Claims {
                subject: "svc:etl".into(),
                ..Claims::default()
            }),
            _ => Err(TokenError::BadSignature),
        }
    };
    async fn me(c: Claims) -> String {
        c.subject.clone()
    }
    let base = serve(
        Router::new()
            .route("/api/me", get(me))
            .route_layer(BearerLayer::new(BearerTokens::new(Arc::new(verifier)))),
    )
    .await;
    let res = reqwest::Client::new()
        .get(format!("{base}/api/me"))
        .bearer_auth("opaque-123")
        .send()
        .await
        .unwrap();
    assert_eq!(res.text().await.unwrap(), "svc:etl");
}

#[tokio::test]
async fn refresh_keeps_custom_claims_and_works_once() {
    let clock = ManualClock::at_unix(T0);
    let (tokens, base) = memory_instance(&clock).await;
    let pair = tokens.issue(&grant()).unwrap();
    let (status, next) = post_json(
        format!("{base}/token/refresh"),
        json!({"refresh_token": pair.refresh_token()}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{next}");
    let access = next["access_token"].as_str().unwrap();
    assert_ne!(access, pair.access_token());
    let (status, _, body) = get_me(&base, Some(&format!("Bearer {access}"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (body["tenant"].as_str(), body["sv"].as_u64()),
        (Some("acme"), Some(3))
    );

    let (status, again) = post_json(
        format!("{base}/token/refresh"),
        json!({"refresh_token": pair.refresh_token()}),
    )
    .await;
    assert_eq!(
        (status, again["why"].as_str()),
        (StatusCode::BAD_REQUEST, Some("already_used"))
    );
}

#[tokio::test]
async fn refresh_with_replaces_custom_claims_and_updates_sv() {
    let clock = ManualClock::at_unix(T0);
    let (tokens, _) = memory_instance(&clock).await;
    let pair = tokens.issue(&grant()).unwrap();
    let next = tokens
        .refresh_with(pair.refresh_token(), |g| {
            g.session_version(4).claims(serde_json::Map::from_iter([(
                "plan".to_owned(),
                json!("pro"),
            )]))
        })
        .await
        .unwrap();
    let claims = tokens.verify_access(next.access_token()).await.unwrap();
    assert_eq!(claims.session_version, Some(4));
    assert_eq!(claims.extra.get("plan"), Some(&json!("pro")));
    assert!(!claims.extra.contains_key("tenant"));
    // A replacement may not smuggle in a reserved claim either.
    let again = tokens.issue(&grant()).unwrap();
    let err = tokens
        .refresh_with(again.refresh_token(), |g| g.claim("sub", "admin"))
        .await
        .unwrap_err();
    assert!(matches!(err, LifecycleError::ReservedClaim(ref n) if n == "sub"));
}

#[tokio::test]
async fn revoked_access_token_is_refused_until_it_expires() {
    let clock = ManualClock::at_unix(T0);
    let (tokens, base) = memory_instance(&clock).await;
    let pair = tokens.issue(&grant()).unwrap();
    let auth = format!("Bearer {}", pair.access_token());
    assert_eq!(get_me(&base, Some(&auth)).await.0, StatusCode::OK);
    let (status, _) = post_json(
        format!("{base}/token/revoke"),
        json!({"token": pair.access_token()}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, challenge, body) = get_me(&base, Some(&auth)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(challenge.unwrap().contains("invalid_token"));
    assert_eq!(body["detail"], "the token was revoked");
    // A revoked refresh token cannot mint a pair.
    tokens.revoke(pair.refresh_token()).await.unwrap();
    assert!(matches!(
        tokens.refresh(pair.refresh_token()).await,
        Err(LifecycleError::InvalidToken(TokenError::Revoked))
    ));
}

/// Two instances sharing one Redis for the replay store and revocation list.
/// Redis expires entries on its own clock (`EXAT`), so these tests run the
/// injected clock at the real time.
async fn fleet(clock: &ManualClock) -> [(TokenLifecycle, String); 2] {
    let url = support::redis_url();
    let replay_prefix = support::unique("replay");
    let revoked_prefix = support::unique("revoked");
    let mut out = Vec::new();
    for _ in 0..2 {
        let conn = redis_connection(&url).await;
        let replay = Arc::new(RedisReplayStore::new(conn.clone()).prefix(replay_prefix.clone()));
        let revocations = Arc::new(
            RedisRevocationList::new(conn)
                .prefix(revoked_prefix.clone())
                .clock(clock.shared()),
        );
        let tokens = lifecycle(clock, replay, revocations);
        let base = serve(app(tokens.clone())).await;
        out.push((tokens, base));
    }
    let b = out.pop().unwrap();
    let a = out.pop().unwrap();
    [a, b]
}

#[tokio::test]
async fn refresh_token_replayed_on_a_second_instance_is_refused() {
    let clock = ManualClock::starting_now();
    let [(a, base_a), (_, base_b)] = fleet(&clock).await;
    let pair = a.issue(&grant()).unwrap();
    let body = json!({"refresh_token": pair.refresh_token()});
    let (status, _) = post_json(format!("{base_a}/token/refresh"), body.clone()).await;
    assert_eq!(status, StatusCode::OK);
    let (status, again) = post_json(format!("{base_b}/token/refresh"), body).await;
    assert_eq!(
        (status, again["why"].as_str()),
        (StatusCode::BAD_REQUEST, Some("already_used"))
    );
}

#[tokio::test]
async fn revocation_on_one_instance_is_honoured_by_the_other() {
    let clock = ManualClock::starting_now();
    let [(a, base_a), (_, base_b)] = fleet(&clock).await;
    let pair = a.issue(&grant()).unwrap();
    let auth = format!("Bearer {}", pair.access_token());
    assert_eq!(get_me(&base_b, Some(&auth)).await.0, StatusCode::OK);
    let (status, _) = post_json(
        format!("{base_a}/token/revoke"),
        json!({"token": pair.access_token()}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, body) = get_me(&base_b, Some(&auth)).await;
    assert_eq!(
        (status, body["detail"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("the token was revoked"))
    );
}

#[tokio::test]
async fn revocation_list_down_fails_closed_with_503() {
    let clock = ManualClock::starting_now();
    let mut redis = ThrowawayRedis::start().await;
    let conn = redis_connection(&redis.url()).await;
    let revocations = Arc::new(
        RedisRevocationList::new(conn.clone())
            .timeout(Duration::from_millis(500))
            .clock(clock.shared()),
    );
    let replay = Arc::new(
        RedisReplayStore::new(conn)
            .prefix(support::unique("replay"))
            .timeout(Duration::from_millis(500)),
    );
    let tokens = lifecycle(&clock, replay, revocations);
    let base = serve(app(tokens.clone())).await;
    let pair = tokens.issue(&grant()).unwrap();
    let auth = format!("Bearer {}", pair.access_token());
    assert_eq!(get_me(&base, Some(&auth)).await.0, StatusCode::OK);

    redis.stop();
    let res = reqwest::Client::new()
        .get(format!("{base}/api/me"))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 503);
    assert!(res.headers().contains_key("retry-after"));
    assert!(!res.headers().contains_key("www-authenticate"));
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["reason"], "backend_unavailable");

    // Refresh and revoke fail closed too: nothing is minted or lost silently.
    let (status, _) = post_json(
        format!("{base}/token/refresh"),
        json!({"refresh_token": pair.refresh_token()}),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let (status, _) = post_json(
        format!("{base}/token/revoke"),
        json!({"token": pair.access_token()}),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}

/// Two issuers behind one `BearerLayer` through `JwtIssuers`: an RS256
/// identity provider and an HS256 one whose key ids collide. Each issuer's
/// tokens pass; a token naming one issuer but signed with the other's key,
/// or naming an issuer nobody trusts, is refused.
#[tokio::test]
async fn jwt_issuers_verify_each_issuer_only_with_its_own_keys() {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    use keystile::bearer::{JwtAlgorithm, JwtIssuers, JwtVerifier};

    const RSA_PRIVATE: &[u8] = include_bytes!("fixtures/rsa_private.pem");
    const RSA_PUBLIC: &[u8] = include_bytes!("fixtures/rsa_public.pem");
    const A: &str = "https://idp-a.example.test";
    const B: &str = "https://idp-b.example.test";
    let secret_b = [0xb2u8; 32];
    let clock = ManualClock::at_unix(T0);
    let issuer_a = JwtVerifier::builder()
        .public_key_pem("k1", JwtAlgorithm::RS256, RSA_PUBLIC)
        .unwrap()
        .issuer(A)
        .audience("api")
        .clock(clock.shared())
        .build()
        .unwrap();
    let issuer_b = JwtVerifier::builder()
        .hs256_secret("k1", &secret_b)
        .unwrap()
        .issuer(B)
        .audience("api")
        .clock(clock.shared())
        .build()
        .unwrap();
    let issuers = JwtIssuers::new()
        .issuer(issuer_a)
        .unwrap()
        .issuer(issuer_b)
        .unwrap();
    let router = Router::new()
        .route(
            "/api/me",
            get(|c: Claims| async move { Json(json!({"sub": c.subject, "iss": c.issuer})) }),
        )
        .route_layer(BearerLayer::new(BearerTokens::new(Arc::new(issuers))));
    let base = serve(router).await;

    let rsa = EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap();
    let hmac = EncodingKey::from_secret(&secret_b).unwrap();
    let token = |alg, key: &EncodingKey, iss: Option<&str>| {
        let mut header = Header::new(alg);
        header.kid = Some("k1".into());
        let mut claims = json!({"sub": "alice", "aud": "api", "exp": T0 + 300});
        if let Some(iss) = iss {
            claims["iss"] = json!(iss);
        }
        format!(
            "Bearer {}",
            jsonwebtoken::encode(&header, &claims, key).unwrap()
        )
    };

    for (alg, key, iss) in [(Algorithm::RS256, &rsa, A), (Algorithm::HS256, &hmac, B)] {
        let (status, _, body) = get_me(&base, Some(&token(alg, key, Some(iss)))).await;
        assert_eq!(status, StatusCode::OK, "{iss}: {body}");
        assert_eq!(body["iss"], iss);
    }
    for (alg, key, iss, why) in [
        (
            Algorithm::RS256,
            &rsa,
            Some(B),
            "idp-a's key in idp-b's name",
        ),
        (
            Algorithm::HS256,
            &hmac,
            Some(A),
            "idp-b's key in idp-a's name",
        ),
        (
            Algorithm::HS256,
            &hmac,
            Some("https://idp-c.example.test"),
            "an untrusted issuer",
        ),
        (Algorithm::HS256, &hmac, None, "no issuer"),
    ] {
        let (status, challenge, body) = get_me(&base, Some(&token(alg, key, iss))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{why}: {body}");
        assert!(challenge.unwrap().contains("invalid_token"), "{why}");
    }
}
