//! A resource server trusting an OpenID Connect provider's access tokens.
//!
//! ```text
//! cargo run --example oidc                   # with a demo issuer of its own; prints a token
//! OIDC_ISSUER=https://idp.example.com/realms/acme OIDC_AUDIENCE=reports-api \
//!   cargo run --example oidc                 # with a real provider (see docs/oidc.md)
//! ```
//!
//! Routes (every one needs `Authorization: Bearer <access token>`):
//!
//! - `GET /me` — any valid token: `{"sub","scopes","client_id"}`
//! - `GET /reports` — needs `reports:read`
//! - `POST /reports` — needs `reports:write`
//!
//! A missing or invalid token is 401, a valid one lacking the scope 403
//! `insufficient_scope` (RFC 6750), and while the provider's keys cannot be
//! fetched every token is 503.
//!
//! Environment:
//!
//! - `PORT`: the port to listen on (default 3003; on 127.0.0.1).
//! - `OIDC_ISSUER`: the issuer URL, exactly as the provider writes `iss`;
//!   its keys are found by discovery.
//! - `OIDC_AUDIENCE`: the audience the tokens must name (required with
//!   `OIDC_ISSUER`).
//! - `OIDC_AT_JWT_ONLY=1`: accept only RFC 9068 access tokens (header
//!   `typ: at+jwt`), refusing ID tokens. Off by default for an external
//!   issuer, since many providers do not mark their access tokens so
//!   (docs/oidc.md says which); always on for the demo issuer.
//! - `RUST_LOG`: log filter (default `info`).
//!
//! Without `OIDC_ISSUER` the example starts its own issuer on another
//! loopback port, with one Ed25519 key made at start-up, and prints an
//! access token for `alice` (client `demo-client`, scope `reports:read`,
//! valid for 1 h) with curl lines to try it.
//!
//! A wrong issuer URL or audience stops the example at start-up; a provider
//! that is merely unreachable is logged, and the example serves 503s until
//! it answers.

use std::error::Error;
use std::process::ExitCode;
use std::sync::Arc;

use axum::http::header::CACHE_CONTROL;
use axum::routing::{get, post};
use axum::{Json, Router};
use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use keystile::auth::{RequireScopeLayer, Scoped, scope};
use keystile::bearer::{BearerLayer, BearerTokens, Claims, OidcError, OidcVerifier};
use keystile::clock::{Clock as _, SystemClock};
use keystile::random::{self, OsRandom};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

const DEFAULT_PORT: u16 = 3003;
const DEMO_AUDIENCE: &str = "reports-api";

scope!(
    /// May create reports.
    ReportsWrite = "reports:write"
);

async fn me(claims: Claims) -> Json<Value> {
    Json(json!({
        "sub": claims.subject,
        "scopes": claims.scopes,
        // RFC 9068: the OAuth client the token was issued to.
        "client_id": claims.extra.get("client_id"),
    }))
}

async fn list_reports(claims: Claims) -> Json<Value> {
    Json(json!({ "for": claims.subject, "reports": ["q1", "q2"] }))
}

// The scope can also be required in the handler's signature.
async fn create_report(who: Scoped<ReportsWrite>) -> Json<Value> {
    Json(json!({ "created": true, "by": &*who.subject }))
}

fn app(verifier: OidcVerifier) -> Result<Router, Box<dyn Error>> {
    let auth = BearerLayer::new(BearerTokens::new(Arc::new(verifier))).realm("reports");
    Ok(Router::new()
        .route("/me", get(me))
        .merge(
            Router::new()
                .route("/reports", get(list_reports))
                .route_layer(RequireScopeLayer::new("reports:read")?),
        )
        .route("/reports", post(create_report))
        // route_layer: unknown paths stay 404 rather than 401.
        .route_layer(auth))
}

fn verifier(
    issuer: &str,
    audience: &str,
    at_jwt_only: bool,
) -> Result<OidcVerifier, Box<dyn Error>> {
    let builder = OidcVerifier::discover(issuer).audience(audience);
    let builder = if at_jwt_only {
        builder.at_jwt_only()
    } else {
        builder
    };
    builder
        .build()
        .map_err(|e| format!("OIDC_ISSUER {issuer:?}: {e}").into())
}

/// Whether a failed fetch may succeed later without a configuration change.
fn provider_down(error: &OidcError) -> bool {
    match error {
        OidcError::Timeout(_) | OidcError::Unreachable { .. } => true,
        OidcError::Status { status, .. } => *status >= 500,
        _ => false,
    }
}

/// A stand-in identity provider on its own loopback port: the discovery
/// document, a JWK Set with one key, and one access token signed by it.
struct DemoIssuer {
    url: String,
    token: String,
}

impl DemoIssuer {
    async fn start(audience: &str) -> Result<Self, Box<dyn Error>> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let key = ed25519_key()?;
        let mut jwk = Jwk::from_encoding_key(&key, Algorithm::EdDSA)?;
        jwk.common.key_id = Some("demo-1".into());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);

        let discovery = json!({ "issuer": url, "jwks_uri": format!("{url}/jwks") });
        // max-age: how long the verifier keeps the set before fetching it again.
        let jwks = (
            [(CACHE_CONTROL, "max-age=3600")],
            Json(json!({ "keys": [jwk] })),
        );
        let router = Router::new()
            .route("/.well-known/openid-configuration", get(Json(discovery)))
            .route("/jwks", get(jwks));
        tokio::spawn(async move { axum::serve(listener, router).await });

        let now = SystemClock.unix_seconds();
        let claims = json!({
            "iss": url,
            "sub": "alice",
            "aud": audience,
            "client_id": "demo-client",
            "scope": "reports:read",
            "iat": now,
            "exp": now + 3600,
            "jti": keystile::encoding::encode(random::bytes::<16>(&OsRandom)?),
        });
        let mut header = Header::new(Algorithm::EdDSA);
        header.typ = Some("at+jwt".into());
        header.kid = jwk.common.key_id.clone();
        let token = jsonwebtoken::encode(&header, &claims, &key)?;
        Ok(Self { url, token })
    }
}

/// A fresh Ed25519 signing key. jsonwebtoken signs but makes no keys, and
/// RSA or EC key generation would take another dependency; an Ed25519
/// private key, though, is any 32 random bytes. They are wrapped here in
/// the fixed PKCS#8 header of RFC 8410, the form jsonwebtoken reads.
fn ed25519_key() -> Result<EncodingKey, Box<dyn Error>> {
    const PKCS8_HEADER: [u8; 16] = [
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    let mut der = PKCS8_HEADER.to_vec();
    der.extend_from_slice(&random::bytes::<32>(&OsRandom)?);
    Ok(EncodingKey::from_ed_der(&der))
}

async fn run() -> Result<(), Box<dyn Error>> {
    let port = match std::env::var("PORT") {
        Ok(port) => port
            .parse::<u16>()
            .map_err(|_| format!("PORT must be a port number, not {port:?}"))?,
        Err(_) => DEFAULT_PORT,
    };
    let (verifier, demo) = match std::env::var("OIDC_ISSUER") {
        Ok(issuer) => {
            let audience = std::env::var("OIDC_AUDIENCE").map_err(|_| {
                "OIDC_AUDIENCE must name the audience of the issuer's access tokens \
                 (the API identifier or client id; see docs/oidc.md)"
            })?;
            let at_jwt_only = std::env::var("OIDC_AT_JWT_ONLY").is_ok_and(|v| v == "1");
            (verifier(&issuer, &audience, at_jwt_only)?, None)
        }
        Err(_) => {
            let demo = DemoIssuer::start(DEMO_AUDIENCE).await?;
            tracing::info!(issuer = demo.url, "demo issuer started");
            (verifier(&demo.url, DEMO_AUDIENCE, true)?, Some(demo))
        }
    };

    // Fetch the keys now: a wrong issuer URL stops the server here instead
    // of turning every request into a 503.
    match verifier.refresh().await {
        Ok(()) => tracing::info!(issuer = verifier.issuer(), "key set loaded"),
        Err(error) if provider_down(&error) => tracing::warn!(
            issuer = verifier.issuer(),
            %error,
            "identity provider unreachable: requests are 503 until it answers"
        ),
        Err(error) => return Err(format!("OIDC issuer {:?}: {error}", verifier.issuer()).into()),
    }

    let listener = TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| format!("cannot listen on 127.0.0.1:{port}: {e}"))?;
    let base = format!("http://{}", listener.local_addr()?);
    println!("listening on {base}");
    if let Some(demo) = demo {
        println!("demo access token (alice, scope reports:read, 1 h):");
        println!("TOKEN={}", demo.token);
        println!("curl -s {base}/me -H \"authorization: Bearer $TOKEN\"");
        println!("curl -s {base}/reports -H \"authorization: Bearer $TOKEN\"");
        println!("curl -si -X POST {base}/reports -H \"authorization: Bearer $TOKEN\"   # 403");
    }
    axum::serve(listener, app(verifier)?).await?;
    Ok(())
}

/// Serves until stopped. `pub` because tests/example_oidc.rs runs this very
/// `main` in a child process.
#[tokio::main]
pub async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!("{message}");
            ExitCode::FAILURE
        }
    }
}
