//! The benchmark scenarios: one trivial handler behind each auth layer, and
//! a prepared request that layer admits.
//!
//! One definition serves the criterion router bench (`benches/router.rs`),
//! the instruction counter (`benches/bin/bench_instructions.rs`), the load-test
//! server (`benches/bin/bench_server.rs`) and the allocation test
//! (`benches/tests/api_key_allocations.rs`), so every measure times the same stacks.
#![allow(dead_code)]

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::response::IntoResponse as _;
use axum::routing::get;
use axum_extra::extract::cookie::{Cookie, Key, SignedCookieJar};
use http::{HeaderMap, HeaderValue, Request, header};
use keystile::api_key::{ApiKeyLayer, ApiKeys, KeyPrefix, MemoryApiKeyStore, MintedKey, NewApiKey};
use keystile::bearer::{
    BearerLayer, BearerTokens, JwtAlgorithm, JwtVerifier, OidcVerifier, jwt::sign_hs256,
};
use keystile::client_ip::ClientIp;
use keystile::handoff::HandoffLayer;
use keystile::identity::Principal;
use keystile::keys::{Keyring, SigningKey};
use keystile::random::OsRandom;
use keystile::rate_limit::{KeyBy, Limit, MemoryLimiter, Policy, RateLimitLayer};
use keystile::replay::MemoryReplayStore;
use keystile::session::{SessionClaims, SessionCodec, SessionCookies, SessionLayer};
use keystile::session_version::{
    FetchError, FetchRequest, MemorySessionVersionCache, SessionVersionLayer,
    SessionVersionValidator,
};
use keystile::tenant::HostTenant;

/// Keys in the API-key store, so the lookup is a real hash-map probe.
pub const API_KEYS: usize = 10_000;

/// The bearer token tower-http's static-string layer compares against.
const STATIC_BEARER: &str = "c3RhdGljLWJlYXJlci10b2tlbi1vZi1maWZ0eS1ieXRlcy1sb25nLTAxMjM0NTY3";

/// The shared secret of the `jwt_authorizer_hs256` peer (jwt-authorizer
/// takes HMAC secrets as text).
const PEER_HS256_SECRET: &str = "jwt-authorizer-bench-secret-of-32-bytes-or-more";

/// The RS256 and ES256 keys of the public-key scenarios (the test fixtures).
const RSA_PRIVATE: &[u8] = include_bytes!("../../tests/fixtures/rsa_private.pem");
const RSA_PUBLIC: &[u8] = include_bytes!("../../tests/fixtures/rsa_public.pem");
const EC_PRIVATE: &[u8] = include_bytes!("../../tests/fixtures/ec_private.pem");
const EC_PUBLIC: &[u8] = include_bytes!("../../tests/fixtures/ec_public.pem");

/// The issuer and audience of the OIDC scenarios' access tokens.
const OIDC_ISSUER: &str = "https://idp.example.test/realms/bench";
const OIDC_AUDIENCE: &str = "reports-api";

/// The name of the `signed_cookie_jar` peer's cookie.
const PEER_COOKIE: &str = "session";

/// Every scenario, baseline first.
pub const ALL: [Scenario; 26] = [
    Scenario::Baseline,
    Scenario::NoopLayer,
    Scenario::PassThrough,
    Scenario::TowerHttpBearer,
    Scenario::IdentityOnly,
    Scenario::ApiKey,
    Scenario::ApiKeyFromFn,
    Scenario::ApiKeyFromFnIdentity,
    Scenario::Session,
    Scenario::SignedCookieJar,
    Scenario::Bearer,
    Scenario::BearerRs256,
    Scenario::BearerEs256,
    Scenario::JwtAuthorizerHs256,
    Scenario::JwtAuthorizerRs256,
    Scenario::JwtAuthorizerEs256,
    Scenario::OidcRs256,
    Scenario::OidcEs256,
    Scenario::BearerSessionVersion,
    Scenario::BearerSessionVersionTwoLayers,
    Scenario::HandoffOtherPath,
    Scenario::TowerHttpHeaders,
    Scenario::SecurityHeaders,
    Scenario::IpFilter,
    Scenario::RateLimitIp,
    Scenario::TowerGovernorIp,
];

/// Networks in the IP filter's allow list.
pub const CIDRS: usize = 1_000;

/// The peer address a server hands every request of the client-address
/// scenarios (`ConnectInfo`); inside the IP filter's last network.
const PEER: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 77), 40_000));

/// The burst of the rate-limit scenarios' per-address policy: more requests
/// than any run sends from [`PEER`] (criterion sends a few million per
/// scenario), so none is refused and every measure times admissions.
pub const RATE_LIMIT_BURST: u32 = 1_000_000_000;

/// Their refill: one request per millisecond, the finest `Limit::per`
/// accepts.
pub const RATE_LIMIT_INTERVAL: Duration = Duration::from_millis(1);

/// One layer stack in front of the trivial handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// No layer at all.
    Baseline,
    /// `Router::layer` with tower's `Identity` layer: what axum's boxing of
    /// a layered route costs before the layer does anything.
    NoopLayer,
    /// `axum::middleware::from_fn` that only calls `next`.
    PassThrough,
    /// tower-http's deprecated `ValidateRequestHeaderLayer::bearer`.
    TowerHttpBearer,
    /// A layer that only inserts an API-key `Principal` it already holds:
    /// the cost of handing any identity to extractors, with no checking.
    IdentityOnly,
    /// `ApiKeyLayer` over a memory store of [`API_KEYS`] keys.
    ApiKey,
    /// The peer a user would write by hand: `axum::middleware::from_fn`
    /// hashing the `Authorization: Bearer` key with SHA-256 and looking it
    /// up in a `HashMap` of the same [`API_KEYS`] digests (no checksum, no
    /// expiry, no identity handed on).
    ApiKeyFromFn,
    /// [`Scenario::ApiKeyFromFn`] handing the key's owner on to handlers
    /// in the request's extensions, the way axum's middleware docs pass
    /// state to handlers: the hand-written peer that tells a handler who
    /// is calling, as `ApiKeyLayer` does.
    ApiKeyFromFnIdentity,
    /// `SessionLayer` verifying a session cookie.
    Session,
    /// The peer a user would write with axum-extra:
    /// `axum::middleware::from_fn` reading a `SignedCookieJar` from the
    /// request headers, verifying its session cookie (HMAC-SHA256) and
    /// inserting the cookie's value into the extensions (no expiry,
    /// tenant or session-version check).
    SignedCookieJar,
    /// `BearerLayer` verifying an HS256 JWT.
    Bearer,
    /// `BearerLayer` verifying an RS256 JWT (2048-bit key) from a PEM key.
    BearerRs256,
    /// `BearerLayer` verifying an ES256 JWT from a PEM key.
    BearerEs256,
    /// The peer crate jwt-authorizer's layer, built from a secret as its
    /// README shows, verifying an HS256 JWT with the same claims.
    JwtAuthorizerHs256,
    /// jwt-authorizer's layer built from the PEM public key, verifying the
    /// same RS256 JWT as [`Scenario::BearerRs256`].
    JwtAuthorizerRs256,
    /// jwt-authorizer's layer built from the PEM public key, verifying the
    /// same ES256 JWT as [`Scenario::BearerEs256`].
    JwtAuthorizerEs256,
    /// `BearerLayer` over an `OidcVerifier` whose key set (the RS256
    /// fixture's public key as a JWK) was fetched once from a provider on
    /// 127.0.0.1: verification between refreshes. Its token also carries
    /// `iss`, `aud` and `typ: at+jwt`, which the verifier checks.
    OidcRs256,
    /// [`Scenario::OidcRs256`] with the ES256 fixture key.
    OidcEs256,
    /// `BearerLayer` then `SessionVersionLayer` in one `ServiceBuilder`
    /// route layer, the version cached.
    BearerSessionVersion,
    /// The same two layers as two `route_layer` calls: one more boxed
    /// route for axum to clone per request.
    BearerSessionVersionTwoLayers,
    /// `HandoffLayer` on a request for another path.
    HandoffOtherPath,
    /// The headers of `SecurityHeadersLayer::strict()` (a fixed CSP, no
    /// nonce, no HSTS over http) as nine tower-http
    /// `SetResponseHeaderLayer::if_not_present` layers: the peer a user
    /// would stack by hand.
    TowerHttpHeaders,
    /// `SecurityHeadersLayer::strict()` with a nonce CSP: a fresh nonce,
    /// the `CspNonce` extension and the rendered policy per response.
    SecurityHeaders,
    /// `IpFilterLayer` with an allow list of [`CIDRS`] networks, behind a
    /// map that inserts the peer address (`ConnectInfo`) a server would.
    IpFilter,
    /// `RateLimitLayer` with one traffic policy over a `MemoryLimiter`,
    /// keyed by the client address (`KeyBy::ClientIp`, no trusted proxy):
    /// [`RATE_LIMIT_BURST`] requests, one more every
    /// [`RATE_LIMIT_INTERVAL`]. Behind the same `ConnectInfo` map as
    /// [`Scenario::IpFilter`].
    RateLimitIp,
    /// The peer crate tower_governor's `GovernorLayer` with the same
    /// policy (burst and replenish interval), keyed by the peer address
    /// from `ConnectInfo` (`PeerIpKeyExtractor`), as its README adds it;
    /// behind the same map.
    TowerGovernorIp,
}

impl Scenario {
    /// The short name used on the command line, in routes and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Baseline => "baseline",
            Self::NoopLayer => "noop_layer",
            Self::PassThrough => "pass_through",
            Self::TowerHttpBearer => "tower_http_bearer",
            Self::IdentityOnly => "identity_only",
            Self::ApiKey => "api_key",
            Self::ApiKeyFromFn => "api_key_from_fn",
            Self::ApiKeyFromFnIdentity => "api_key_from_fn_identity",
            Self::Session => "session",
            Self::SignedCookieJar => "signed_cookie_jar",
            Self::Bearer => "bearer_hs256",
            Self::BearerRs256 => "bearer_rs256",
            Self::BearerEs256 => "bearer_es256",
            Self::JwtAuthorizerHs256 => "jwt_authorizer_hs256",
            Self::JwtAuthorizerRs256 => "jwt_authorizer_rs256",
            Self::JwtAuthorizerEs256 => "jwt_authorizer_es256",
            Self::OidcRs256 => "oidc_rs256",
            Self::OidcEs256 => "oidc_es256",
            Self::BearerSessionVersion => "bearer_session_version",
            Self::BearerSessionVersionTwoLayers => "bearer_session_version_two_layers",
            Self::HandoffOtherPath => "handoff_other_path",
            Self::TowerHttpHeaders => "tower_http_headers",
            Self::SecurityHeaders => "security_headers",
            Self::IpFilter => "ip_filter",
            Self::RateLimitIp => "rate_limit_ip",
            Self::TowerGovernorIp => "tower_governor_ip",
        }
    }

    /// The scenario called `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        ALL.into_iter().find(|s| s.name() == name)
    }
}

async fn ok() -> &'static str {
    "ok"
}

/// A router for one scenario and the headers its requests carry.
pub struct Prepared {
    /// The scenario's stack, serving `GET {path}`.
    pub router: Router,
    /// The path the handler is on.
    pub path: String,
    /// Headers that make the layer admit the request.
    pub headers: HeaderMap,
}

impl Prepared {
    /// A fresh request (cheap: header values are reference-counted).
    pub fn request(&self) -> Request<Body> {
        let mut request = Request::get(self.path.as_str())
            .body(Body::empty())
            .unwrap_or_default();
        *request.headers_mut() = self.headers.clone();
        request
    }
}

/// Credentials and stores shared by every scenario of one process.
pub struct Fixtures {
    keyring: Keyring,
    store: Arc<MemoryApiKeyStore>,
    digests: Arc<std::collections::HashMap<[u8; 32], Arc<str>>>,
    api_key: MintedKey,
    other_api_key: MintedKey,
    session_cookie: String,
    jwt: String,
    rs256_jwt: String,
    es256_jwt: String,
    oidc_rs256_jwt: String,
    oidc_es256_jwt: String,
    peer_hs256_jwt: String,
    cookie_key: Key,
    signed_cookie: String,
    validator: SessionVersionValidator,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Fixtures {
    /// Mints the keys and tokens (benchmark setup: failures panic).
    pub fn new() -> Self {
        let keyring = Keyring::new(SigningKey::from_bytes(&[7; 32]).expect("32-byte key"));
        let prefix = KeyPrefix::new("sk_bench").expect("valid prefix");
        let mut records = Vec::with_capacity(API_KEYS);
        let mut api_key = None;
        let mut other_api_key = None;
        for i in 0..API_KEYS {
            let (key, record) = NewApiKey::new(prefix.clone(), format!("owner-{i}"))
                .mint(&OsRandom, now())
                .expect("OS randomness");
            if i == API_KEYS / 2 {
                api_key = Some(key);
            } else if i == API_KEYS / 3 {
                other_api_key = Some(key);
            }
            records.push(record);
        }
        let digests = Arc::new(
            records
                .iter()
                .map(|r| (r.digest.0, Arc::clone(&r.owner)))
                .collect(),
        );
        let store = Arc::new(MemoryApiKeyStore::from_records(records).expect("unique keys"));

        let session_cookie = SessionCodec::new(keyring.clone())
            .issue(
                &SessionClaims {
                    subject: "alice".into(),
                    actor: None,
                    tenant: "acme".into(),
                    session_version: Some(1),
                    expires_at: 0,
                },
                Duration::from_secs(3600),
            )
            .expect("session cookie");

        let claims = serde_json::json!({"sub": "alice", "sv": 1, "exp": now() + 3600});
        let jwt = match &claims {
            serde_json::Value::Object(map) => sign_hs256(&keyring, map).expect("HS256"),
            _ => unreachable!("a JSON object"),
        };

        let public_key_jwt = |alg, kid: &str, key| {
            let mut header = jsonwebtoken::Header::new(alg);
            header.kid = Some(kid.to_owned());
            jsonwebtoken::encode(&header, &claims, &key).expect("signed")
        };
        let rs256_jwt = public_key_jwt(
            jsonwebtoken::Algorithm::RS256,
            "rsa-1",
            jsonwebtoken::EncodingKey::from_rsa_pem(RSA_PRIVATE).expect("RSA fixture"),
        );
        let es256_jwt = public_key_jwt(
            jsonwebtoken::Algorithm::ES256,
            "ec-1",
            jsonwebtoken::EncodingKey::from_ec_pem(EC_PRIVATE).expect("EC fixture"),
        );
        let access_token = |alg, kid: &str, key| {
            let mut header = jsonwebtoken::Header::new(alg);
            header.kid = Some(kid.to_owned());
            header.typ = Some("at+jwt".to_owned());
            let claims = serde_json::json!({
                "sub": "alice", "iss": OIDC_ISSUER, "aud": OIDC_AUDIENCE,
                "scope": "reports:read", "exp": now() + 3600,
            });
            jsonwebtoken::encode(&header, &claims, &key).expect("signed")
        };
        let oidc_rs256_jwt = access_token(
            jsonwebtoken::Algorithm::RS256,
            "rsa-1",
            jsonwebtoken::EncodingKey::from_rsa_pem(RSA_PRIVATE).expect("RSA fixture"),
        );
        let oidc_es256_jwt = access_token(
            jsonwebtoken::Algorithm::ES256,
            "ec-1",
            jsonwebtoken::EncodingKey::from_ec_pem(EC_PRIVATE).expect("EC fixture"),
        );
        let peer_hs256_jwt = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(PEER_HS256_SECRET.as_bytes())
                .expect("a non-empty secret"),
        )
        .expect("HS256");

        let cookie_key = Key::from(&[9; 64]);
        let signed_cookie = signed_cookie(&cookie_key, "alice");

        let current_version = |_: FetchRequest<'_>| async { Ok::<u64, FetchError>(1) };
        let validator =
            SessionVersionValidator::new(MemorySessionVersionCache::new(), current_version);

        Self {
            keyring,
            store,
            digests,
            api_key: api_key.expect("minted"),
            other_api_key: other_api_key.expect("minted"),
            session_cookie,
            jwt,
            rs256_jwt,
            es256_jwt,
            oidc_rs256_jwt,
            oidc_es256_jwt,
            peer_hs256_jwt,
            cookie_key,
            signed_cookie,
            validator,
        }
    }

    /// The API-key store (for the store micro benchmarks).
    pub fn store(&self) -> &Arc<MemoryApiKeyStore> {
        &self.store
    }

    /// A key held by [`Self::store`].
    pub fn api_key(&self) -> &str {
        self.api_key.as_str()
    }

    /// Another key held by [`Self::store`].
    pub fn other_api_key(&self) -> &str {
        self.other_api_key.as_str()
    }

    /// The `Principal` that `ApiKeyLayer` inserts for [`Self::api_key`].
    pub fn api_key_principal(&self) -> Principal {
        let digest = keystile::api_key::parse(self.api_key())
            .expect("a minted key parses")
            .digest();
        // The memory store answers with a ready future.
        let lookup = keystile::api_key::ApiKeyStore::lookup(&*self.store, &digest);
        let record = futures_util::FutureExt::now_or_never(lookup)
            .and_then(Result::ok)
            .flatten()
            .expect("the memory store holds the key");
        Principal::from_api_key(record)
    }

    /// The keyring every token is signed with.
    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// A valid session cookie value for tenant `acme`.
    pub fn session_cookie(&self) -> &str {
        &self.session_cookie
    }

    /// A valid HS256 JWT for `alice` with `sv` 1.
    pub fn jwt(&self) -> &str {
        &self.jwt
    }

    fn jwt_verifier(&self) -> JwtVerifier {
        JwtVerifier::builder()
            .keyring(&self.keyring)
            .build()
            .expect("HS256 verifier")
    }

    /// The router and request headers of `scenario`, its handler on `path`.
    pub fn prepare(&self, scenario: Scenario, path: &str) -> Prepared {
        let route = Router::new().route(path, get(ok));
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("acme.example.test"));
        let bearer =
            |token: &str| HeaderValue::from_str(&format!("Bearer {token}")).expect("ASCII token");
        let router = match scenario {
            Scenario::Baseline => route,
            Scenario::NoopLayer => route.layer(tower::layer::util::Identity::new()),
            Scenario::PassThrough => route.route_layer(axum::middleware::from_fn(
                |request: Request<Body>, next: axum::middleware::Next| next.run(request),
            )),
            Scenario::TowerHttpBearer => {
                headers.insert(header::AUTHORIZATION, bearer(STATIC_BEARER));
                // tower-http 0.7's replacement for the removed `bearer`: the
                // same plain comparison of the whole header value.
                let layer =
                    tower_http::validate_request::ValidateRequestHeaderLayer::has_header_value(
                        "authorization",
                        &format!("Bearer {STATIC_BEARER}"),
                    )
                    .expect("a valid header name");
                route.route_layer(layer)
            }
            Scenario::IdentityOnly => {
                headers.insert(header::AUTHORIZATION, bearer(self.api_key()));
                let principal = self.api_key_principal();
                route.route_layer(tower::util::MapRequestLayer::new(
                    move |mut request: Request<Body>| {
                        request.extensions_mut().insert(principal.clone());
                        request
                    },
                ))
            }
            Scenario::ApiKey => {
                headers.insert(header::AUTHORIZATION, bearer(self.api_key()));
                route.route_layer(ApiKeyLayer::new(ApiKeys::new(self.store.clone())))
            }
            Scenario::ApiKeyFromFn | Scenario::ApiKeyFromFnIdentity => {
                headers.insert(header::AUTHORIZATION, bearer(self.api_key()));
                let digests = Arc::clone(&self.digests);
                let hand_on = scenario == Scenario::ApiKeyFromFnIdentity;
                route.route_layer(axum::middleware::from_fn(
                    move |mut request: Request<Body>, next: axum::middleware::Next| {
                        let digests = Arc::clone(&digests);
                        async move {
                            use axum::response::IntoResponse as _;
                            use sha2::Digest as _;
                            let owner = request
                                .headers()
                                .get(header::AUTHORIZATION)
                                .and_then(|v| v.to_str().ok())
                                .and_then(|v| v.strip_prefix("Bearer "))
                                .and_then(|key| {
                                    let digest: [u8; 32] = sha2::Sha256::digest(key).into();
                                    digests.get(&digest)
                                });
                            match owner {
                                Some(owner) => {
                                    if hand_on {
                                        request.extensions_mut().insert(Arc::clone(owner));
                                    }
                                    next.run(request).await
                                }
                                None => http::StatusCode::UNAUTHORIZED.into_response(),
                            }
                        }
                    },
                ))
            }
            Scenario::Session => {
                let cookie = format!("keystile_session={}", self.session_cookie);
                headers.insert(
                    header::COOKIE,
                    HeaderValue::from_str(&cookie).expect("ASCII cookie"),
                );
                route.route_layer(SessionLayer::new(SessionCookies::new(
                    self.keyring.clone(),
                    tenants(),
                )))
            }
            Scenario::SignedCookieJar => {
                let cookie = format!("{PEER_COOKIE}={}", self.signed_cookie);
                headers.insert(
                    header::COOKIE,
                    HeaderValue::from_str(&cookie).expect("ASCII cookie"),
                );
                let key = self.cookie_key.clone();
                route.route_layer(axum::middleware::from_fn(
                    move |mut request: Request<Body>, next: axum::middleware::Next| {
                        let jar = SignedCookieJar::from_headers(request.headers(), key.clone());
                        async move {
                            match jar.get(PEER_COOKIE) {
                                Some(cookie) => {
                                    let user = PeerSession(cookie.value().to_owned());
                                    request.extensions_mut().insert(user);
                                    next.run(request).await
                                }
                                None => http::StatusCode::UNAUTHORIZED.into_response(),
                            }
                        }
                    },
                ))
            }
            Scenario::Bearer => {
                headers.insert(header::AUTHORIZATION, bearer(&self.jwt));
                route.route_layer(BearerLayer::new(BearerTokens::new(Arc::new(
                    self.jwt_verifier(),
                ))))
            }
            Scenario::BearerRs256 => {
                headers.insert(header::AUTHORIZATION, bearer(&self.rs256_jwt));
                let verifier = JwtVerifier::builder()
                    .public_key_pem("rsa-1", JwtAlgorithm::RS256, RSA_PUBLIC)
                    .and_then(|b| b.build())
                    .expect("RS256 verifier");
                route.route_layer(BearerLayer::new(BearerTokens::new(Arc::new(verifier))))
            }
            Scenario::BearerEs256 => {
                headers.insert(header::AUTHORIZATION, bearer(&self.es256_jwt));
                let verifier = JwtVerifier::builder()
                    .public_key_pem("ec-1", JwtAlgorithm::ES256, EC_PUBLIC)
                    .and_then(|b| b.build())
                    .expect("ES256 verifier");
                route.route_layer(BearerLayer::new(BearerTokens::new(Arc::new(verifier))))
            }
            Scenario::JwtAuthorizerHs256 => {
                headers.insert(header::AUTHORIZATION, bearer(&self.peer_hs256_jwt));
                let authorizer = without_waiting(
                    jwt_authorizer::JwtAuthorizer::from_secret(PEER_HS256_SECRET).build(),
                )
                .expect("jwt-authorizer from a secret");
                behind_jwt_authorizer(route, authorizer)
            }
            Scenario::JwtAuthorizerRs256 => {
                headers.insert(header::AUTHORIZATION, bearer(&self.rs256_jwt));
                let pem = std::str::from_utf8(RSA_PUBLIC).expect("PEM text");
                let authorizer =
                    without_waiting(jwt_authorizer::JwtAuthorizer::from_rsa_pem_text(pem).build())
                        .expect("jwt-authorizer from a PEM key");
                behind_jwt_authorizer(route, authorizer)
            }
            Scenario::JwtAuthorizerEs256 => {
                headers.insert(header::AUTHORIZATION, bearer(&self.es256_jwt));
                let pem = std::str::from_utf8(EC_PUBLIC).expect("PEM text");
                let authorizer =
                    without_waiting(jwt_authorizer::JwtAuthorizer::from_ec_pem_text(pem).build())
                        .expect("jwt-authorizer from a PEM key");
                behind_jwt_authorizer(route, authorizer)
            }
            Scenario::OidcRs256 | Scenario::OidcEs256 => {
                let (token, alg, kid, key) = if scenario == Scenario::OidcRs256 {
                    let key = jsonwebtoken::EncodingKey::from_rsa_pem(RSA_PRIVATE);
                    (
                        &self.oidc_rs256_jwt,
                        jsonwebtoken::Algorithm::RS256,
                        "rsa-1",
                        key,
                    )
                } else {
                    let key = jsonwebtoken::EncodingKey::from_ec_pem(EC_PRIVATE);
                    (
                        &self.oidc_es256_jwt,
                        jsonwebtoken::Algorithm::ES256,
                        "ec-1",
                        key,
                    )
                };
                headers.insert(header::AUTHORIZATION, bearer(token));
                let mut jwk =
                    jsonwebtoken::jwk::Jwk::from_encoding_key(&key.expect("fixture"), alg)
                        .expect("a public JWK");
                jwk.common.key_id = Some(kid.to_owned());
                let verifier = oidc_verifier(serde_json::json!({"keys": [jwk]}));
                route.route_layer(BearerLayer::new(BearerTokens::new(Arc::new(verifier))))
            }
            Scenario::BearerSessionVersion => {
                headers.insert(header::AUTHORIZATION, bearer(&self.jwt));
                // One route layer, run top to bottom: bearer, then version.
                route.route_layer(
                    tower::ServiceBuilder::new()
                        .layer(BearerLayer::new(BearerTokens::new(Arc::new(
                            self.jwt_verifier(),
                        ))))
                        .layer(SessionVersionLayer::new(self.validator.clone())),
                )
            }
            Scenario::BearerSessionVersionTwoLayers => {
                headers.insert(header::AUTHORIZATION, bearer(&self.jwt));
                // axum runs the layer added last first: bearer, then version.
                route
                    .route_layer(SessionVersionLayer::new(self.validator.clone()))
                    .route_layer(BearerLayer::new(BearerTokens::new(Arc::new(
                        self.jwt_verifier(),
                    ))))
            }
            Scenario::HandoffOtherPath => route.layer(HandoffLayer::new(
                self.keyring.clone(),
                MemoryReplayStore::new(),
                tenants(),
            )),
            Scenario::TowerHttpHeaders => {
                use tower_http::set_header::SetResponseHeaderLayer;
                // One `ServiceBuilder`, applied with one `Router::layer`, as
                // the keystile layer is: the comparison is the header work,
                // not axum's boxing per layer call.
                let [a, b, c, d, e, f, g, h, i] = strict_headers()
                    .map(|(name, value)| SetResponseHeaderLayer::if_not_present(name, value));
                route.layer(
                    tower::ServiceBuilder::new()
                        .layer(a)
                        .layer(b)
                        .layer(c)
                        .layer(d)
                        .layer(e)
                        .layer(f)
                        .layer(g)
                        .layer(h)
                        .layer(i),
                )
            }
            Scenario::SecurityHeaders => {
                let csp = keystile::csp::Csp::builder()
                    .directive(keystile::csp::Directive::DefaultSrc, ["'self'"])
                    .directive(keystile::csp::Directive::ObjectSrc, ["'none'"])
                    .directive(keystile::csp::Directive::BaseUri, ["'none'"])
                    .directive(keystile::csp::Directive::FrameAncestors, ["'none'"])
                    .nonce()
                    .build()
                    .expect("a valid policy");
                route.layer(keystile::security_headers::SecurityHeadersLayer::strict().csp(csp))
            }
            Scenario::IpFilter => from_peer(
                route.layer(
                    keystile::ip_filter::IpFilterLayer::new()
                        .allow(allow_list())
                        .expect("valid networks"),
                ),
            ),
            Scenario::RateLimitIp => {
                let limit = Limit::per(RATE_LIMIT_BURST, RATE_LIMIT_INTERVAL * RATE_LIMIT_BURST)
                    .expect("1 ms per request");
                from_peer(route.layer(RateLimitLayer::new(Policy::traffic(
                    "per-ip",
                    MemoryLimiter::new(limit),
                    KeyBy::ClientIp(ClientIp::new()),
                ))))
            }
            Scenario::TowerGovernorIp => {
                use tower_governor::GovernorLayer;
                use tower_governor::governor::GovernorConfigBuilder;
                use tower_governor::key_extractor::PeerIpKeyExtractor;
                let config = GovernorConfigBuilder::default()
                    .period(RATE_LIMIT_INTERVAL)
                    .burst_size(RATE_LIMIT_BURST)
                    .key_extractor(PeerIpKeyExtractor)
                    .finish()
                    .expect("a non-zero burst and period");
                from_peer(route.layer(GovernorLayer::new(config)))
            }
        };
        Prepared {
            // What `axum::serve` does once per connection (`Router` as a
            // make-service calls `with_state(())`): handlers become routes
            // with their layers applied now, instead of on every request.
            router: router.with_state(()),
            path: path.to_owned(),
            headers,
        }
    }
}

impl Default for Fixtures {
    fn default() -> Self {
        Self::new()
    }
}

/// The headers `SecurityHeadersLayer::strict()` sends over http, with its
/// preset policy as a fixed CSP.
fn strict_headers() -> [(http::HeaderName, HeaderValue); 9] {
    let fixed = |name: &'static str, value: &'static str| {
        (
            http::HeaderName::from_static(name),
            HeaderValue::from_static(value),
        )
    };
    [
        fixed(
            "content-security-policy",
            "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'",
        ),
        fixed("x-frame-options", "DENY"),
        fixed("x-content-type-options", "nosniff"),
        fixed("referrer-policy", "no-referrer"),
        fixed("cross-origin-opener-policy", "same-origin"),
        fixed("cross-origin-resource-policy", "same-origin"),
        fixed("origin-agent-cluster", "?1"),
        fixed("x-xss-protection", "0"),
        fixed(
            "permissions-policy",
            keystile::security_headers::PERMISSIONS_POLICY,
        ),
    ]
}

/// [`CIDRS`] networks: /24s spread over 10.0.0.0/8 and /48s over
/// 2001:db8::/32, plus the benchmark client's own /24, last.
fn allow_list() -> Vec<String> {
    let mut nets: Vec<String> = (0..CIDRS - 1)
        .map(|i| {
            if i % 2 == 0 {
                format!("10.{}.{}.0/24", (i / 256) % 256, i % 256)
            } else {
                format!("2001:db8:{:x}::/48", i)
            }
        })
        .collect();
    nets.push("192.0.2.0/24".into());
    nets
}

/// `router` behind a map that inserts [`PEER`] as `ConnectInfo`, as a
/// router served with `into_make_service_with_connect_info` gets it.
fn from_peer(router: Router) -> Router {
    router.layer(tower::util::MapRequestLayer::new(
        |mut request: Request<Body>| {
            request.extensions_mut().insert(ConnectInfo(PEER));
            request
        },
    ))
}

fn tenants() -> HostTenant {
    HostTenant::under("example.test").expect("valid parent domain")
}

/// What the `signed_cookie_jar` peer hands on: the cookie's value.
#[derive(Clone, Debug)]
struct PeerSession(String);

/// The value of a cookie `name = value` signed with `key`, as
/// `SignedCookieJar` writes it into `Set-Cookie`.
fn signed_cookie(key: &Key, value: &str) -> String {
    let response = SignedCookieJar::new(key.clone())
        .add(Cookie::new(PEER_COOKIE, value.to_owned()))
        .into_response();
    let set_cookie = response
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .expect("a Set-Cookie header");
    let pair = set_cookie.split(';').next().unwrap_or_default();
    pair.split_once('=')
        .map(|(_, signed)| signed.to_owned())
        .expect("name=value")
}

/// axum 0.8's response, as jwt-authorizer's service wants its inner
/// service's response to be: something its `AuthError` converts into
/// (jwt-authorizer renders refusals with axum 0.7; the benchmark only
/// counts admitted requests, so a refusal is a bare 401 here).
struct PeerResponse(axum::response::Response);

impl From<jwt_authorizer::AuthError> for PeerResponse {
    fn from(_: jwt_authorizer::AuthError) -> Self {
        Self(http::StatusCode::UNAUTHORIZED.into_response())
    }
}

/// `route` behind jwt-authorizer's layer, as its README adds it
/// (`authorizer.into_layer()`), between the two response conversions above.
fn behind_jwt_authorizer(route: Router, authorizer: jwt_authorizer::Authorizer) -> Router {
    use jwt_authorizer::IntoLayer as _;
    route.route_layer(
        tower::ServiceBuilder::new()
            .map_response(|response: PeerResponse| response.0)
            .layer(authorizer.into_layer())
            .map_response(PeerResponse),
    )
}

/// The output of a future that never waits: jwt-authorizer's async
/// `build` for keys given in memory.
/// An `OidcVerifier` for [`OIDC_ISSUER`] whose key set `jwks` was fetched
/// once from a provider on 127.0.0.1, which then stops. Run on a thread of
/// its own, so a caller already inside a runtime can use it too.
fn oidc_verifier(jwks: serde_json::Value) -> OidcVerifier {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("a loopback port");
            let url = format!("http://{}/jwks", listener.local_addr().expect("bound"));
            let body = jwks.to_string();
            let app = Router::new().route("/jwks", get(move || std::future::ready(body.clone())));
            let provider = tokio::spawn(async move { axum::serve(listener, app).await });
            let verifier = OidcVerifier::jwks(OIDC_ISSUER, url)
                .audience(OIDC_AUDIENCE)
                .at_jwt_only()
                .build()
                .expect("an OIDC verifier");
            verifier.refresh().await.expect("the key set fetched");
            provider.abort();
            verifier
        })
    })
    .join()
    .expect("the provider thread")
}

fn without_waiting<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the future waited"),
    }
}
