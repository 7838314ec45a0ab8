//! `OidcVerifier` against an identity provider of the test's own over real
//! TCP on 127.0.0.1: discovery, key rotation, unknown-kid floods, provider
//! outages at start and later, discovery mismatches, key sets with keys
//! keystile cannot use, RFC 9068 access tokens, several issuers, the
//! outbound HTTP rules, and tokens minted by an independent JOSE
//! implementation (tests/vectors/jose_interop.json).
#![cfg(feature = "oidc")]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::Request;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use keystile::bearer::{
    BearerLayer, BearerTokens, JwtIssuers, OidcError, OidcVerifier, OidcVerifierBuilder,
    TokenError, TokenVerifier,
};
use keystile::clock::ManualClock;
use serde_json::{Value, json};
use tower::ServiceExt;

const T0: u64 = 1_900_000_000;
const AUDIENCE: &str = "reports-api";

const RSA_PRIVATE: &[u8] = include_bytes!("fixtures/rsa_private.pem");
const EC_PRIVATE: &[u8] = include_bytes!("fixtures/ec_private.pem");

/// RFC 7515 A.4's P-521 key: an ES512 key keystile cannot use.
const ES512_JWK: &str = r#"{"kty":"EC","kid":"es512","crv":"P-521","x":"AekpBQ8ST8a8VcfVOTNl353vSrDCLLJXmPk06wTjxrrjcBpXp5EOnYG_NjFZ6OvLFV1jSfS9tsz4qUxcWceqwQGk","y":"ADSmRA43Z1DSNx_RvcLI87cdL07l6jQyyBXMoxVg_l2Th-x3S1WDhjDly79ajL4Kkd0AZMaZmh9ubmf63e3kyMj2"}"#;

/// What the provider serves, and what it was asked.
#[derive(Default)]
struct Provider {
    /// The `issuer` its discovery document names.
    issuer: String,
    keys: Vec<Value>,
    cache_control: Option<&'static str>,
    /// Answer every request with this status instead.
    failing: Option<StatusCode>,
    /// Answer the key set with a redirect to this URL instead.
    redirect: Option<String>,
    /// Pad the key set to this many bytes.
    padding: usize,
}

#[derive(Clone)]
struct Idp {
    provider: Arc<Mutex<Provider>>,
    discoveries: Arc<AtomicUsize>,
    fetches: Arc<AtomicUsize>,
    addr: SocketAddr,
}

impl Idp {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let idp = Idp {
            provider: Arc::new(Mutex::new(Provider {
                issuer: format!("http://{addr}/realms/acme"),
                ..Provider::default()
            })),
            discoveries: Arc::default(),
            fetches: Arc::default(),
            addr,
        };
        let app = Router::new()
            .route(
                "/realms/acme/.well-known/openid-configuration",
                get(discovery),
            )
            .route("/jwks", get(jwks))
            .with_state(idp.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        idp
    }

    fn issuer(&self) -> String {
        format!("http://{}/realms/acme", self.addr)
    }

    fn jwks_url(&self) -> String {
        format!("http://{}/jwks", self.addr)
    }

    fn set(&self, change: impl FnOnce(&mut Provider)) {
        change(&mut self.provider.lock().unwrap());
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    fn verifier(&self, clock: &ManualClock) -> OidcVerifierBuilder {
        OidcVerifier::discover(self.issuer())
            .audience(AUDIENCE)
            .clock(clock.shared())
            .timeout(Duration::from_secs(2))
    }

    /// Waits (bounded) until the provider has served `n` key sets.
    async fn await_fetches(&self, n: usize) {
        for _ in 0..500 {
            if self.fetches() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the provider served {} key sets, not {n}", self.fetches());
    }
}

async fn discovery(State(idp): State<Idp>) -> Response {
    idp.discoveries.fetch_add(1, Ordering::SeqCst);
    let provider = idp.provider.lock().unwrap();
    if let Some(status) = provider.failing {
        return status.into_response();
    }
    axum::Json(json!({
        "issuer": provider.issuer,
        "jwks_uri": format!("http://{}/jwks", idp.addr),
    }))
    .into_response()
}

async fn jwks(State(idp): State<Idp>) -> Response {
    idp.fetches.fetch_add(1, Ordering::SeqCst);
    let provider = idp.provider.lock().unwrap();
    if let Some(status) = provider.failing {
        return status.into_response();
    }
    if let Some(target) = &provider.redirect {
        return (StatusCode::FOUND, [(header::LOCATION, target.clone())]).into_response();
    }
    let mut body = json!({"keys": provider.keys}).to_string();
    if provider.padding > body.len() {
        body.insert_str(1, &format!("\"pad\":\"{}\",", "x".repeat(provider.padding)));
    }
    let mut response = ([(header::CONTENT_TYPE, "application/json")], body).into_response();
    if let Some(cache_control) = provider.cache_control {
        response.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(cache_control),
        );
    }
    response
}

/// A signing key and its public JWK under `kid`.
struct Key {
    kid: &'static str,
    alg: Algorithm,
    encoding: EncodingKey,
}

impl Key {
    fn rsa(kid: &'static str) -> Self {
        let encoding = EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap();
        Key {
            kid,
            alg: Algorithm::RS256,
            encoding,
        }
    }

    fn ec(kid: &'static str) -> Self {
        let encoding = EncodingKey::from_ec_pem(EC_PRIVATE).unwrap();
        Key {
            kid,
            alg: Algorithm::ES256,
            encoding,
        }
    }

    fn jwk(&self) -> Value {
        let mut jwk = Jwk::from_encoding_key(&self.encoding, self.alg).unwrap();
        jwk.common.key_id = Some(self.kid.into());
        serde_json::to_value(jwk).unwrap()
    }

    fn sign(&self, typ: &str, claims: Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.into());
        header.typ = Some(typ.into());
        jsonwebtoken::encode(&header, &claims, &self.encoding).unwrap()
    }

    /// An access token of `issuer` for the test audience, valid for a day.
    fn token(&self, issuer: &str) -> String {
        self.sign(
            "at+jwt",
            json!({
                "iss": issuer, "sub": "alice", "aud": AUDIENCE, "client_id": "reports-cli",
                "scope": "reports:read reports:write", "iat": T0, "exp": T0 + 86_400,
            }),
        )
    }
}

#[tokio::test]
async fn discovered_keys_verify_access_tokens_into_claims() {
    let idp = Idp::start().await;
    let key = Key::rsa("k1");
    idp.set(|p| p.keys = vec![key.jwk()]);
    let clock = ManualClock::at_unix(T0);
    let verifier = idp.verifier(&clock).build().unwrap();

    let claims = verifier.verify(&key.token(&idp.issuer())).await.unwrap();
    assert_eq!(claims.subject, "alice");
    assert!(claims.scopes.allows("reports:read") && claims.scopes.allows("reports:write"));
    assert_eq!(claims.extra.get("client_id"), Some(&json!("reports-cli")));
    // One discovery and one key set, then the cache answers.
    verifier.verify(&key.token(&idp.issuer())).await.unwrap();
    assert_eq!(
        (idp.discoveries.load(Ordering::SeqCst), idp.fetches()),
        (1, 1)
    );

    for (token, refused) in [
        (key.sign("at+jwt", json!({"iss": idp.issuer(), "sub": "a", "aud": "other", "exp": T0 + 60})), "wrong audience"),
        (key.sign("at+jwt", json!({"iss": "https://elsewhere.test", "sub": "a", "aud": AUDIENCE, "exp": T0 + 60})), "wrong issuer"),
        (key.sign("at+jwt", json!({"iss": idp.issuer(), "sub": "a", "aud": AUDIENCE, "exp": T0 - 60})), "expired"),
        (key.sign("at+jwt", json!({"iss": idp.issuer(), "sub": "a", "aud": AUDIENCE})), "no exp"),
    ] {
        assert!(verifier.verify(&token).await.is_err(), "{refused}");
    }
}

#[tokio::test]
async fn a_new_kid_verifies_after_one_refetch_and_a_removed_one_stops_after_the_refresh() {
    let idp = Idp::start().await;
    let (old, new) = (Key::rsa("k1"), Key::ec("k2"));
    idp.set(|p| p.keys = vec![old.jwk()]);
    let clock = ManualClock::at_unix(T0);
    let verifier = idp.verifier(&clock).build().unwrap();
    verifier.verify(&old.token(&idp.issuer())).await.unwrap();

    // The provider publishes k2. Within the refetch interval of the first
    // fetch a k2 token is refused without a fetch; after it, one refetch.
    idp.set(|p| p.keys = vec![old.jwk(), new.jwk()]);
    assert!(matches!(
        verifier.verify(&new.token(&idp.issuer())).await,
        Err(TokenError::UnknownKey)
    ));
    assert_eq!(idp.fetches(), 1);
    clock.advance(Duration::from_secs(31));
    verifier.verify(&new.token(&idp.issuer())).await.unwrap();
    assert_eq!(idp.fetches(), 2);

    // The provider drops k1. Once the set is due (¾ of its 5 min lifetime),
    // a request is still answered from it and starts a background refresh;
    // after that refresh k1 is refused.
    idp.set(|p| p.keys = vec![new.jwk()]);
    clock.advance(Duration::from_secs(240));
    verifier.verify(&old.token(&idp.issuer())).await.unwrap();
    idp.await_fetches(3).await;
    assert!(matches!(
        verifier.verify(&old.token(&idp.issuer())).await,
        Err(TokenError::UnknownKey)
    ));
    verifier.verify(&new.token(&idp.issuer())).await.unwrap();
}

#[tokio::test]
async fn a_flood_of_unknown_kids_costs_at_most_one_refetch() {
    let idp = Idp::start().await;
    let key = Key::rsa("k1");
    idp.set(|p| p.keys = vec![key.jwk()]);
    let clock = ManualClock::at_unix(T0);
    let verifier = idp.verifier(&clock).build().unwrap();
    verifier.verify(&key.token(&idp.issuer())).await.unwrap();
    clock.advance(Duration::from_secs(31));

    // Well-formed tokens naming invented kids; the signature is never
    // reached, so one placeholder serves them all.
    let payload = keystile::encoding::encode(
        json!({"iss": idp.issuer(), "sub": "x", "aud": AUDIENCE, "exp": T0 + 600}).to_string(),
    );
    let tokens: Vec<String> = (0..10_000)
        .map(|i| {
            let header = json!({"alg": "RS256", "typ": "at+jwt", "kid": format!("invented-{i}")});
            let header = keystile::encoding::encode(header.to_string());
            format!("{header}.{payload}.c2lnbmF0dXJl")
        })
        .collect();
    // Four waves of 2 500 concurrent requests: concurrent ones share one
    // fetch, and later waves fall within the refetch interval.
    for wave in tokens.chunks(2_500) {
        let results = futures_util::future::join_all(wave.iter().map(|t| verifier.verify(t))).await;
        assert!(
            results
                .iter()
                .all(|r| matches!(r, Err(TokenError::UnknownKey)))
        );
    }
    assert_eq!(idp.fetches(), 2, "the first fetch and one shared refetch");
}

#[tokio::test]
async fn a_provider_down_at_start_is_503_until_its_first_answer() {
    let idp = Idp::start().await;
    let key = Key::rsa("k1");
    idp.set(|p| {
        p.keys = vec![key.jwk()];
        p.failing = Some(StatusCode::SERVICE_UNAVAILABLE);
    });
    let clock = ManualClock::at_unix(T0);
    let verifier = idp.verifier(&clock).build().unwrap();
    assert!(matches!(
        verifier.refresh().await,
        Err(OidcError::Status { status: 503, .. })
    ));

    let app = Router::new()
        .route("/me", get(|| async { "ok" }))
        .route_layer(BearerLayer::new(BearerTokens::new(Arc::new(
            verifier.clone(),
        ))));
    let get_me = |token: String| {
        Request::get("/me")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap()
    };
    let response = app
        .clone()
        .oneshot(get_me(key.token(&idp.issuer())))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key(header::RETRY_AFTER));

    // The provider recovers; the next attempt, one refetch interval later,
    // loads the keys.
    idp.set(|p| p.failing = None);
    clock.advance(Duration::from_secs(31));
    let response = app.oneshot(get_me(key.token(&idp.issuer()))).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_provider_down_later_is_served_from_the_last_keys_within_the_bound_then_503() {
    let idp = Idp::start().await;
    let key = Key::rsa("k1");
    idp.set(|p| {
        p.keys = vec![key.jwk()];
        p.cache_control = Some("public, max-age=600");
    });
    let clock = ManualClock::at_unix(T0);
    let verifier = idp
        .verifier(&clock)
        .max_stale(Duration::from_secs(1800))
        .build()
        .unwrap();
    verifier.refresh().await.unwrap();
    idp.set(|p| p.failing = Some(StatusCode::BAD_GATEWAY));

    // Lifetime 600 s plus 1 800 s stale: the last good keys until then.
    clock.advance(Duration::from_secs(600 + 1799));
    verifier.verify(&key.token(&idp.issuer())).await.unwrap();
    clock.advance(Duration::from_secs(1));
    assert!(matches!(
        verifier.verify(&key.token(&idp.issuer())).await,
        Err(TokenError::Unavailable(_))
    ));
    // Recovery loads the keys again.
    idp.set(|p| p.failing = None);
    clock.advance(Duration::from_secs(31));
    verifier.verify(&key.token(&idp.issuer())).await.unwrap();
}

#[tokio::test]
async fn a_discovery_document_naming_another_issuer_is_refused() {
    let idp = Idp::start().await;
    let key = Key::rsa("k1");
    idp.set(|p| {
        p.keys = vec![key.jwk()];
        p.issuer = format!("{}/", idp.issuer()); // one byte more
    });
    let clock = ManualClock::at_unix(T0);
    let verifier = idp.verifier(&clock).build().unwrap();
    match verifier.refresh().await {
        Err(error @ OidcError::IssuerMismatch { .. }) => {
            let text = error.to_string();
            assert!(
                text.contains(&idp.issuer()) && text.contains("not the configured"),
                "{text}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        idp.fetches(),
        0,
        "the key set of another issuer is never fetched"
    );
    clock.advance(Duration::from_secs(31));
    assert!(matches!(
        verifier.verify(&key.token(&idp.issuer())).await,
        Err(TokenError::Unavailable(_))
    ));
}

#[tokio::test]
async fn a_key_set_with_keys_keystile_cannot_use_loads_the_usable_ones() {
    let idp = Idp::start().await;
    let key = Key::rsa("sig");
    let mut encryption = key.jwk();
    encryption["kid"] = json!("enc");
    encryption["use"] = json!("enc");
    encryption["alg"] = json!("RSA-OAEP");
    let mut verify_forbidden = key.jwk();
    verify_forbidden["kid"] = json!("sign-only");
    verify_forbidden["key_ops"] = json!(["sign"]);
    let mut no_kid = Key::ec("unused").jwk();
    no_kid.as_object_mut().unwrap().remove("kid");
    idp.set(|p| {
        p.keys = vec![
            encryption,
            serde_json::from_str(ES512_JWK).unwrap(),
            json!({"kty": "oct", "kid": "hmac", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"}),
            json!({"kty": "XYZ", "kid": "future"}),
            verify_forbidden,
            no_kid,
            key.jwk(),
        ];
    });
    let clock = ManualClock::at_unix(T0);
    let verifier = idp.verifier(&clock).build().unwrap();
    verifier.verify(&key.token(&idp.issuer())).await.unwrap();

    let same_key_as = |kid: &'static str| {
        Key {
            kid,
            ..Key::rsa("x")
        }
        .token(&idp.issuer())
    };
    for kid in ["enc", "sign-only", "es512", "hmac", "future"] {
        assert!(
            matches!(
                verifier.verify(&same_key_as(kid)).await,
                Err(TokenError::UnknownKey)
            ),
            "{kid}"
        );
    }
    // An HS256 token naming the RSA key: algorithm confusion.
    let confused = jsonwebtoken::encode(
        &Header {
            kid: Some("sig".into()),
            ..Header::new(Algorithm::HS256)
        },
        &json!({"iss": idp.issuer(), "sub": "a", "aud": AUDIENCE, "exp": T0 + 60}),
        &EncodingKey::from_secret(b"the public key as a secret, say").unwrap(),
    )
    .unwrap();
    assert!(matches!(
        verifier.verify(&confused).await,
        Err(TokenError::WrongAlgorithm)
    ));

    // A set with nothing usable is no key set: 503.
    let clock = ManualClock::at_unix(T0);
    idp.set(|p| p.keys = vec![serde_json::from_str(ES512_JWK).unwrap()]);
    let empty = idp.verifier(&clock).build().unwrap();
    assert!(matches!(
        empty.refresh().await,
        Err(OidcError::NoUsableKeys)
    ));
}

#[tokio::test]
async fn at_jwt_only_refuses_id_tokens_as_bearer_credentials() {
    let idp = Idp::start().await;
    let key = Key::rsa("k1");
    idp.set(|p| p.keys = vec![key.jwk()]);
    let clock = ManualClock::at_unix(T0);
    let strict = idp.verifier(&clock).at_jwt_only().build().unwrap();
    let claims = json!({"iss": idp.issuer(), "sub": "alice", "aud": AUDIENCE, "exp": T0 + 60});
    strict
        .verify(&key.sign("at+jwt", claims.clone()))
        .await
        .unwrap();
    strict
        .verify(&key.sign("application/AT+JWT", claims.clone()))
        .await
        .unwrap();
    let id_token = key.sign("JWT", claims.clone());
    assert!(matches!(
        strict.verify(&id_token).await,
        Err(TokenError::Invalid(_))
    ));

    let lenient = idp.verifier(&clock).build().unwrap();
    lenient.verify(&id_token).await.unwrap();
}

#[tokio::test]
async fn several_issuers_pick_by_iss_and_an_unknown_one_costs_no_fetch() {
    let (a, b) = (Idp::start().await, Idp::start().await);
    let (key_a, key_b) = (Key::rsa("a1"), Key::ec("b1"));
    a.set(|p| p.keys = vec![key_a.jwk()]);
    b.set(|p| p.keys = vec![key_b.jwk()]);
    let clock = ManualClock::at_unix(T0);
    let issuers = JwtIssuers::new()
        .oidc(a.verifier(&clock).build().unwrap())
        .unwrap()
        .oidc(b.verifier(&clock).build().unwrap())
        .unwrap();

    assert!(matches!(
        issuers
            .verify(&key_a.token("https://nobody.example.test"))
            .await,
        Err(TokenError::WrongIssuer)
    ));
    assert_eq!((a.fetches(), b.fetches()), (0, 0));

    issuers.verify(&key_a.token(&a.issuer())).await.unwrap();
    issuers.verify(&key_b.token(&b.issuer())).await.unwrap();
    // Issuer A's key cannot sign in issuer B's name.
    let forged = Key {
        kid: "b1",
        ..Key::rsa("x")
    }
    .token(&b.issuer());
    assert!(issuers.verify(&forged).await.is_err());
    assert_eq!((a.fetches(), b.fetches()), (1, 1));
}

#[tokio::test]
async fn redirects_are_not_followed_and_documents_are_capped() {
    let idp = Idp::start().await;
    let clock = ManualClock::at_unix(T0);
    idp.set(|p| {
        p.keys = vec![Key::rsa("k1").jwk()];
        p.redirect = Some(format!("http://{}/jwks?followed", idp.addr));
    });
    let verifier = OidcVerifier::jwks(idp.issuer(), idp.jwks_url())
        .audience(AUDIENCE)
        .clock(clock.shared())
        .build()
        .unwrap();
    assert!(matches!(
        verifier.refresh().await,
        Err(OidcError::Status { status: 302, .. })
    ));
    assert_eq!(idp.fetches(), 1, "the redirect target was never asked");

    idp.set(|p| {
        p.redirect = None;
        p.padding = 300 * 1024;
    });
    let capped = OidcVerifier::jwks(idp.issuer(), idp.jwks_url())
        .audience(AUDIENCE)
        .clock(clock.shared())
        .build()
        .unwrap();
    assert!(matches!(
        capped.refresh().await,
        Err(OidcError::TooLarge(_))
    ));
}

#[tokio::test]
async fn an_unreachable_provider_is_unavailable_not_an_open_door() {
    // A port nobody listens on.
    let addr = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let clock = ManualClock::at_unix(T0);
    let verifier = OidcVerifier::discover(format!("http://{addr}"))
        .audience(AUDIENCE)
        .clock(clock.shared())
        .build()
        .unwrap();
    assert!(matches!(
        verifier.refresh().await,
        Err(OidcError::Unreachable { .. })
    ));
    let token = Key::rsa("k1").token(&format!("http://{addr}"));
    assert!(matches!(
        verifier.verify(&token).await,
        Err(TokenError::Unavailable(_))
    ));
}

/// The valid tokens of tests/vectors/jose_interop.json, minted by jose,
/// verify through a key set fetched over HTTP; every tampered one is
/// refused.
#[tokio::test]
async fn tokens_minted_by_an_independent_implementation_verify_from_a_fetched_key_set() {
    let vectors: Value = serde_json::from_str(include_str!("vectors/jose_interop.json")).unwrap();
    let parameters = &vectors["parameters"];
    let idp = Idp::start().await;
    idp.set(|p| p.keys = parameters["jwks"]["keys"].as_array().unwrap().clone());
    let clock = ManualClock::at_unix(parameters["now"].as_u64().unwrap());
    let verifier = OidcVerifier::jwks(parameters["issuer"].as_str().unwrap(), idp.jwks_url())
        .audience(parameters["audience"].as_str().unwrap())
        .at_jwt_only()
        .clock(clock.shared())
        .build()
        .unwrap();
    let cases = vectors["cases"].as_array().unwrap();
    let (mut valid, mut invalid) = (0, 0);
    for case in cases {
        let result = verifier.verify(case["token"].as_str().unwrap()).await;
        match case["expected"].as_str().unwrap() {
            "valid" => {
                valid += 1;
                assert!(result.is_ok(), "{}: {result:?}", case["id"]);
            }
            _ => {
                invalid += 1;
                assert!(result.is_err(), "{}", case["id"]);
            }
        }
    }
    assert!(
        valid >= 3 && invalid >= 3 * 9,
        "{valid} valid, {invalid} tampered"
    );
}
