//! Chains of authenticators (a tuple run by one `AuthLayer`): API key,
//! bearer token and session cookie on one route. The first admission wins,
//! the first refusal stops, absence passes on; what is not an API key in
//! `Authorization` is left to the bearer authenticator.

use axum::Router;
use axum::routing::get;
use http::StatusCode;
use http::header::{RETRY_AFTER, WWW_AUTHENTICATE};
use http_body_util::BodyExt;
use keystile_core::api_key::{ApiKeyAdmin, KeyPrefix, MintedKey, NewApiKey};
use keystile_core::bearer::{Claims, TokenError};
use keystile_core::clock::ManualClock;
use keystile_core::keys::{Keyring, SigningKey};
use keystile_core::random::OsRandom;
use keystile_core::scopes::Scopes;
use keystile_core::session::{DEFAULT_SESSION_TTL, SessionClaims, SessionCodec};

use keystile_core::testing::CountingStore;
use tower::ServiceExt;

use std::sync::Arc;

use axum::body::Body;
use http::Request;
use keystile_core::identity::{AuthMethod, Principal};
use keystile_core::layers_seen::LayersSeen;
use keystile_middleware::auth::AuthLayer;
use keystile_middleware::{ApiKeys, BearerTokens, HostTenant, SessionCookies};

const NOW: u64 = 1_700_000_000;

async fn verify(token: String) -> Result<Claims, TokenError> {
    match token.as_str() {
        "jwt.for.alice" => Ok(Claims {
            subject: "alice".into(),
            ..Claims::default()
        }),
        "expired.jwt.token" => Err(TokenError::Expired),
        _ => Err(TokenError::BadSignature),
    }
}

fn keyring() -> Keyring {
    Keyring::new(SigningKey::from_bytes(&[5; 32]).unwrap())
}

struct Fixture {
    keys: Arc<CountingStore>,
    key: MintedKey,
    clock: ManualClock,
    cookie: String,
}

async fn fixture() -> Fixture {
    let keys = Arc::new(CountingStore::default());
    let (key, record) = NewApiKey::new(KeyPrefix::new("sk_test").unwrap(), "robot")
        .with_scopes(Scopes::parse("reports:read"))
        .mint(&OsRandom, NOW)
        .unwrap();
    keys.create(record).await.unwrap();
    let clock = ManualClock::at_unix(NOW);
    let claims = SessionClaims {
        subject: "carol".into(),
        actor: None,
        tenant: "acme".into(),
        session_version: None,
        expires_at: 0,
    };
    let value = SessionCodec::new(keyring())
        .clock(clock.shared())
        .issue(&claims, DEFAULT_SESSION_TTL)
        .unwrap();
    Fixture {
        keys,
        key,
        clock,
        cookie: format!("keystile_session={value}"),
    }
}

type Chain = (ApiKeys, BearerTokens, SessionCookies);

fn sessions(f: &Fixture) -> SessionCookies {
    SessionCookies::new(keyring(), HostTenant::under("localhost").unwrap()).clock(f.clock.shared())
}

fn chain(f: &Fixture) -> AuthLayer<Chain> {
    AuthLayer::new((
        ApiKeys::new(f.keys.clone()).clock(f.clock.shared()),
        BearerTokens::new(Arc::new(verify)),
        sessions(f),
    ))
    .realm("chain-realm")
}

async fn whoami(req: Request<Body>) -> String {
    let seen = [AuthMethod::ApiKey, AuthMethod::Bearer, AuthMethod::Session]
        .map(|method| LayersSeen::ran(req.extensions(), method));
    match req.extensions().get::<Principal>() {
        Some(p) => format!("{} via {} seen={seen:?}", p.subject, p.method()),
        None => format!("nobody seen={seen:?}"),
    }
}

struct Answer {
    status: StatusCode,
    challenge: Option<String>,
    retry_after: bool,
    body: String,
}

async fn send<A: keystile_middleware::Authenticator>(
    layer: AuthLayer<A>,
    headers: &[(&str, &str)],
) -> Answer {
    let app = Router::new().route("/", get(whoami)).route_layer(layer);
    let mut req = Request::get("/").header("host", "acme.localhost");
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let res = app.oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
    let status = res.status();
    let challenge = res
        .headers()
        .get(WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_owned());
    let retry_after = res.headers().contains_key(RETRY_AFTER);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        challenge,
        retry_after,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

const ALL_SEEN: &str = "seen=[true, true, true]";

#[tokio::test]
async fn api_key_in_x_api_key_authenticates_as_api_key() {
    let f = fixture().await;
    let a = send(chain(&f), &[("x-api-key", f.key.as_str())]).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body, format!("robot via api_key {ALL_SEEN}"));
}

#[tokio::test]
async fn api_key_in_authorization_authenticates_as_api_key() {
    let f = fixture().await;
    let auth = format!("Bearer {}", f.key.as_str());
    let a = send(chain(&f), &[("authorization", &auth)]).await;
    assert_eq!(a.body, format!("robot via api_key {ALL_SEEN}"));
}

#[tokio::test]
async fn token_without_api_key_grammar_goes_to_the_bearer_layer() {
    let f = fixture().await;
    let a = send(chain(&f), &[("authorization", "Bearer jwt.for.alice")]).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body, format!("alice via bearer {ALL_SEEN}"));
    assert_eq!(f.keys.lookups(), 0);
}

#[tokio::test]
async fn session_cookie_is_tried_when_no_header_credential_is_present() {
    let f = fixture().await;
    let a = send(chain(&f), &[("cookie", &f.cookie)]).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body, format!("carol via session {ALL_SEEN}"));
}

#[tokio::test]
async fn first_success_wins_and_later_layers_are_not_consulted() {
    let f = fixture().await;
    // A forged bearer token and a tampered cookie would be refused, but
    // the API key came first.
    let a = send(
        chain(&f),
        &[
            ("x-api-key", f.key.as_str()),
            ("cookie", "keystile_session=forged"),
        ],
    )
    .await;
    assert_eq!(a.body, format!("robot via api_key {ALL_SEEN}"));
    let a = send(
        chain(&f),
        &[
            ("authorization", "Bearer jwt.for.alice"),
            ("cookie", "keystile_session=forged"),
        ],
    )
    .await;
    assert_eq!(a.body, format!("alice via bearer {ALL_SEEN}"));
}

#[tokio::test]
async fn invalid_api_key_stops_the_chain_despite_a_valid_session() {
    let f = fixture().await;
    let (unknown, _) = NewApiKey::new(KeyPrefix::new("sk_test").unwrap(), "robot")
        .mint(&OsRandom, NOW)
        .unwrap();
    for presented in [unknown.as_str(), "sk_test_garbage"] {
        let a = send(
            chain(&f),
            &[("x-api-key", presented), ("cookie", &f.cookie)],
        )
        .await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{presented}");
        let challenge = a.challenge.unwrap();
        assert!(
            challenge.contains(r#"error="invalid_token""#),
            "{challenge}"
        );
        assert!(!a.body.contains(presented), "the key is never echoed");
    }
}

#[tokio::test]
async fn invalid_bearer_token_stops_the_chain_despite_a_valid_session() {
    let f = fixture().await;
    let a = send(
        chain(&f),
        &[
            ("authorization", "Bearer expired.jwt.token"),
            ("cookie", &f.cookie),
        ],
    )
    .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    let challenge = a.challenge.unwrap();
    assert!(
        challenge.starts_with(r#"Bearer realm="chain-realm", error="invalid_token""#),
        "{challenge}"
    );
    assert!(a.body.contains(r#""reason":"expired""#), "{}", a.body);
}

#[tokio::test]
async fn tampered_session_cookie_is_refused_not_treated_as_absent() {
    let f = fixture().await;
    let (head, tag) = f.cookie.rsplit_once('.').unwrap();
    let mut raw: [u8; 32] = keystile_core::encoding::decode_array(tag).unwrap();
    raw[16] ^= 0x10;
    let tampered = format!("{head}.{}", keystile_core::encoding::encode(raw));
    let a = send(chain(&f).optional(), &[("cookie", &tampered)]).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(a.body.contains("invalid_credentials"), "{}", a.body);
}

#[tokio::test]
async fn malformed_authorization_header_is_400_from_the_bearer_layer() {
    let f = fixture().await;
    let a = send(chain(&f), &[("authorization", "Bearer two words")]).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.challenge.unwrap().contains(r#"error="invalid_request""#));
}

#[tokio::test]
async fn no_credentials_is_401_with_the_chain_realm_and_no_error_code() {
    let f = fixture().await;
    let a = send(chain(&f), &[]).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        a.challenge.as_deref(),
        Some(r#"Bearer realm="chain-realm""#)
    );
    assert!(
        a.body.contains(r#""reason":"missing_credentials""#),
        "{}",
        a.body
    );
}

#[tokio::test]
async fn cookie_only_chain_sends_no_bearer_challenge() {
    let f = fixture().await;
    let a = send(AuthLayer::new(sessions(&f)), &[]).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.challenge, None);
}

#[tokio::test]
async fn optional_chain_admits_anonymous_requests_and_marks_every_layer() {
    let f = fixture().await;
    let a = send(chain(&f).optional(), &[]).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body, format!("nobody {ALL_SEEN}"));
    let a = send(chain(&f).optional(), &[("authorization", "Bearer forged")]).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn only_the_kinds_of_the_layer_are_marked() {
    let layer = AuthLayer::new(BearerTokens::new(Arc::new(verify)));
    let a = send(layer, &[("authorization", "Bearer jwt.for.alice")]).await;
    assert_eq!(a.body, "alice via bearer seen=[false, true, false]");
}

#[tokio::test]
async fn api_key_store_down_is_503_and_the_session_is_not_tried() {
    let f = fixture().await;
    f.keys.set_down(true);
    let a = send(
        chain(&f),
        &[("x-api-key", f.key.as_str()), ("cookie", &f.cookie)],
    )
    .await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(a.retry_after);
    assert!(a.body.contains("backend_unavailable"));
}
