//! A chain of authenticators over real TCP: API key, JWT and session
//! cookie on one route (one `AuthLayer` over a tuple), hard errors that stop
//! the chain, extractors behind it, and the session-version check after it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::routing::get;
use keystile::api_key::{ApiKeyAdmin, ApiKeys, KeyPrefix, MemoryApiKeyStore, NewApiKey};
use keystile::auth::{AuthLayer, Principal};
use keystile::bearer::{BearerTokens, Grant, MemoryRevocationList, TokenLifecycle};
use keystile::clock::{Clock, SystemClock};
use keystile::keys::{Keyring, SigningKey};
use keystile::random::OsRandom;
use keystile::replay::MemoryReplayStore;
use keystile::session::{
    DEFAULT_SESSION_TTL, Session, SessionClaims, SessionCodec, SessionCookies,
};
use keystile::session_version::{
    FetchError, FetchRequest, MemorySessionVersionCache, SessionVersionLayer,
    SessionVersionValidator,
};
use keystile::tenant::HostTenant;
use reqwest::StatusCode;
use serde_json::Value;

fn keyring() -> Keyring {
    Keyring::new(SigningKey::from_bytes(&[31; 32]).expect("32-byte key"))
}

struct Fixture {
    base: String,
    api_key: String,
    tokens: TokenLifecycle,
    cookie: String,
    /// The session version the test's "identity provider" reports.
    current_sv: Arc<AtomicU64>,
    validator: SessionVersionValidator,
}

async fn whoami(who: Principal, session: Option<Session>) -> String {
    format!(
        "{} via {} session_extractor={}",
        who.subject,
        who.method(),
        session.is_some()
    )
}

async fn fixture(optional: bool) -> Fixture {
    let keys = Arc::new(MemoryApiKeyStore::new());
    let (key, record) = NewApiKey::new(KeyPrefix::new("sk_test").unwrap(), "robot")
        .mint(&OsRandom, SystemClock.unix_seconds())
        .unwrap();
    keys.create(record).await.unwrap();

    let tokens = TokenLifecycle::builder(keyring())
        .replay_store(Arc::new(MemoryReplayStore::new()))
        .revocation_list(Arc::new(MemoryRevocationList::new()))
        .issuer("https://idp.test")
        .audience("api")
        .build()
        .unwrap();

    let claims = SessionClaims {
        subject: "carol".into(),
        actor: None,
        tenant: "acme".into(),
        session_version: None,
        expires_at: 0,
    };
    let cookie = SessionCodec::new(keyring())
        .issue(&claims, DEFAULT_SESSION_TTL)
        .unwrap();

    let current_sv = Arc::new(AtomicU64::new(0));
    let source = Arc::clone(&current_sv);
    let fetch = move |_: FetchRequest<'_>| {
        let version = source.load(Ordering::SeqCst);
        async move { Ok::<u64, FetchError>(version) }
    };
    let validator = SessionVersionValidator::new(MemorySessionVersionCache::new(), fetch);

    // API keys before bearer tokens: what is not an API key in
    // `Authorization` is left to the bearer authenticator.
    let mut chain = AuthLayer::new((
        ApiKeys::new(keys),
        BearerTokens::new(Arc::new(tokens.clone())),
        SessionCookies::new(keyring(), HostTenant::under("localhost").unwrap()),
    ))
    .realm("reports");
    if optional {
        chain = chain.optional();
    }
    let router = Router::new()
        .route("/whoami", get(whoami))
        .route(
            "/maybe",
            get(|who: Option<Principal>| async move {
                who.map_or_else(|| "anonymous".to_owned(), |p| p.subject.to_string())
            }),
        )
        // The layer added last runs first: the chain inserts the Principal
        // that SessionVersionLayer checks.
        .route_layer(SessionVersionLayer::new(validator.clone()))
        .route_layer(chain);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    Fixture {
        base,
        api_key: key.as_str().to_owned(),
        tokens,
        cookie: format!("keystile_session={cookie}"),
        current_sv,
        validator,
    }
}

struct Answer {
    status: StatusCode,
    challenge: Option<String>,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }
}

async fn get_with(f: &Fixture, path: &str, headers: &[(&str, &str)]) -> Answer {
    let mut req = reqwest::Client::new()
        .get(format!("{}{path}", f.base))
        .header("host", "acme.localhost");
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let res = req.send().await.unwrap();
    Answer {
        status: res.status(),
        challenge: res
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned()),
        text: res.text().await.unwrap(),
    }
}

#[tokio::test]
async fn each_credential_kind_authenticates_through_one_route() {
    let f = fixture(false).await;
    let a = get_with(&f, "/whoami", &[("x-api-key", &f.api_key)]).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.text, "robot via api_key session_extractor=false");

    let access = f.tokens.issue(&Grant::new("alice")).unwrap();
    let auth = format!("Bearer {}", access.access_token());
    let a = get_with(&f, "/whoami", &[("authorization", &auth)]).await;
    assert_eq!(a.text, "alice via bearer session_extractor=false");

    let a = get_with(&f, "/whoami", &[("cookie", &f.cookie)]).await;
    assert_eq!(a.text, "carol via session session_extractor=true");
}

#[tokio::test]
async fn a_forged_token_is_not_rescued_by_a_valid_session_cookie() {
    let f = fixture(false).await;
    let access = f.tokens.issue(&Grant::new("alice")).unwrap();
    let token = access.access_token();
    let (head, signature) = token.rsplit_once('.').unwrap();
    let mut raw = keystile::encoding::decode(signature).unwrap();
    let middle = raw.len() / 2;
    raw[middle] ^= 0x04;
    let forged = format!("Bearer {head}.{}", keystile::encoding::encode(&raw));
    let a = get_with(
        &f,
        "/whoami",
        &[("authorization", &forged), ("cookie", &f.cookie)],
    )
    .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(
        a.challenge
            .as_deref()
            .unwrap_or_default()
            .contains(r#"error="invalid_token""#),
        "a presented token is a hard error"
    );
    assert_eq!(a.json()["reason"], "invalid_credentials");
    assert!(!a.text.contains(head), "the token is never echoed");
}

#[tokio::test]
async fn an_unknown_api_key_stops_the_chain() {
    let f = fixture(false).await;
    let (other, _) = NewApiKey::new(KeyPrefix::new("sk_test").unwrap(), "robot")
        .mint(&OsRandom, 0)
        .unwrap();
    let a = get_with(
        &f,
        "/whoami",
        &[("x-api-key", other.as_str()), ("cookie", &f.cookie)],
    )
    .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    // The API key's own rejection, in the one realm of the stack.
    let challenge = a.challenge.as_deref().unwrap_or_default();
    assert!(
        challenge.starts_with(r#"Bearer realm="reports", error="invalid_token""#),
        "{challenge}"
    );
}

#[tokio::test]
async fn no_credentials_is_401_with_the_chain_realm_or_anonymous_when_optional() {
    let f = fixture(false).await;
    let a = get_with(&f, "/whoami", &[]).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.challenge.as_deref(), Some(r#"Bearer realm="reports""#));
    assert_eq!(a.json()["reason"], "missing_credentials");

    let f = fixture(true).await;
    let a = get_with(&f, "/maybe", &[]).await;
    assert_eq!((a.status, a.text.as_str()), (StatusCode::OK, "anonymous"));
    let a = get_with(&f, "/maybe", &[("cookie", &f.cookie)]).await;
    assert_eq!(a.text, "carol");
    let a = get_with(&f, "/maybe", &[("authorization", "Bearer forged")]).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn session_version_layer_after_the_chain_refuses_a_stale_bearer_token() {
    let f = fixture(false).await;
    let pair = f
        .tokens
        .issue(&Grant::new("alice").session_version(0))
        .unwrap();
    let auth = format!("Bearer {}", pair.access_token());
    assert_eq!(
        get_with(&f, "/whoami", &[("authorization", &auth)])
            .await
            .status,
        StatusCode::OK
    );

    f.current_sv.store(1, Ordering::SeqCst);
    f.validator.invalidate("alice").await.unwrap();
    let a = get_with(&f, "/whoami", &[("authorization", &auth)]).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.json()["reason"], "session_revoked");

    // An API key carries no session version: it passes.
    let a = get_with(&f, "/whoami", &[("x-api-key", &f.api_key)]).await;
    assert_eq!(a.status, StatusCode::OK);
}
