//! `SignedUrlLayer` over HTTP: a magic link admits once, behind a proxy
//! that rewrote the host; expired, tampered, unsigned and reused links are
//! refused, each with its own status.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, StatusCode};
use keystile::clock::ManualClock;
use keystile::codec::Purpose;
use keystile::keys::{Keyring, SigningKey};
use keystile::replay::MemoryReplayStore;
use keystile::signed_url::{SignedUrlLayer, UrlSigner, VerifiedUrl};
use tower::ServiceExt;

const ORIGIN: &str = "https://app.example.test";

fn signer(clock: &ManualClock) -> UrlSigner {
    let keyring = Keyring::new(SigningKey::from_bytes(&[9; 32]).unwrap());
    UrlSigner::new(keyring, Purpose::new("test/magic-link")).clock(clock.shared())
}

fn app(clock: &ManualClock) -> Router {
    Router::new()
        .route(
            "/magic",
            get(
                |axum::Extension(link): axum::Extension<VerifiedUrl>| async move {
                    format!("welcome until {}", link.expires_at)
                },
            ),
        )
        .route_layer(
            SignedUrlLayer::new(signer(clock), ORIGIN)
                .single_use(Arc::new(MemoryReplayStore::new().clock(clock.shared()))),
        )
}

/// The request a proxy forwards for `url`: the path and query, another host.
fn forwarded(url: &str) -> Request<Body> {
    let path = url.strip_prefix(ORIGIN).expect("a link of this origin");
    Request::get(path)
        .header("host", "10.0.0.7:8080")
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn a_magic_link_admits_once() {
    let clock = ManualClock::at_unix(1_700_000_000);
    let app = app(&clock);
    let link = signer(&clock)
        .sign(
            &format!("{ORIGIN}/magic?user=alice&next=%2Freports"),
            Duration::from_secs(900),
        )
        .unwrap();
    let first = app.clone().oneshot(forwarded(&link)).await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let again = app.clone().oneshot(forwarded(&link)).await.unwrap();
    assert_eq!(again.status(), StatusCode::GONE);
}

#[tokio::test]
async fn expired_tampered_and_unsigned_links_are_refused() {
    let clock = ManualClock::at_unix(1_700_000_000);
    let app = app(&clock);
    let signer = signer(&clock);
    let link = |query: &str| {
        signer
            .sign(&format!("{ORIGIN}/magic?{query}"), Duration::from_secs(60))
            .unwrap()
    };

    let tampered = link("user=alice").replace("user=alice", "user=admin");
    assert_eq!(
        app.clone()
            .oneshot(forwarded(&tampered))
            .await
            .unwrap()
            .status(),
        401
    );
    let unsigned = format!("{ORIGIN}/magic?user=alice");
    assert_eq!(
        app.clone()
            .oneshot(forwarded(&unsigned))
            .await
            .unwrap()
            .status(),
        401
    );
    let other_purpose = UrlSigner::new(
        Keyring::new(SigningKey::from_bytes(&[9; 32]).unwrap()),
        Purpose::new("test/other"),
    )
    .clock(clock.shared())
    .sign(
        &format!("{ORIGIN}/magic?user=alice"),
        Duration::from_secs(60),
    )
    .unwrap();
    assert_eq!(
        app.clone()
            .oneshot(forwarded(&other_purpose))
            .await
            .unwrap()
            .status(),
        401
    );

    let expiring = link("user=bob");
    clock.advance(Duration::from_secs(61));
    let response = app.clone().oneshot(forwarded(&expiring)).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body = axum::body::to_bytes(response.into_body(), 4096)
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&body).contains("expired"));
}
