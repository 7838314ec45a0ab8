//! The handoff token never reaches the logs. Its own test binary: tracing
//! caches per-callsite interest globally, so tests running on other threads
//! without a subscriber could hide events from this one.

#[allow(dead_code)]
#[path = "../examples/handoff/app.rs"]
mod app;
mod handoff_support;
mod support;

use std::sync::Arc;

use keystile::clock::ManualClock;
use keystile::keys::{Keyring, SigningKey};
use keystile::replay::MemoryReplayStore;
use reqwest::StatusCode;

use app::{AppConfig, app};
use handoff_support::*;
use support::logs::Captured;

#[tokio::test(flavor = "current_thread")]
async fn the_token_never_appears_in_logs() {
    // A current-thread runtime keeps server and client on this thread, so
    // the thread-local subscriber sees every event.
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let (listener, port) = listener().await;
    let mut config = AppConfig::new(
        Keyring::new(SigningKey::from_bytes(&[1; 32]).unwrap()),
        port,
    );
    config.clock = ManualClock::starting_now().shared();
    config.replay = Arc::new(MemoryReplayStore::new());
    serve(listener, app(config));
    let client = client(port);
    let minted = client
        .post(format!("http://localhost:{port}/impersonate/acme"))
        .send()
        .await
        .unwrap();
    assert_eq!(minted.status(), StatusCode::SEE_OTHER);
    let url = header(&minted, "location").unwrap();
    let token = token_of(&url);
    let sig = token.rsplit_once('.').unwrap().1.to_owned();
    client
        .get(format!("{url}&next=//evil.test"))
        .send()
        .await
        .unwrap();
    client
        .get(format!(
            "http://globex.localhost:{port}/_keystile/handoff?token={token}"
        ))
        .send()
        .await
        .unwrap();
    client.get(&url).send().await.unwrap();
    client.get(&url).send().await.unwrap();

    let logs = captured.text();
    assert!(logs.contains("handoff redeemed"), "{logs}");
    assert!(logs.contains("already_used"), "{logs}");
    assert!(
        !logs.contains(&sig),
        "the token's signature is in the logs:\n{logs}"
    );
    let payload = token.split('.').nth(1).unwrap();
    assert!(
        !logs.contains(payload),
        "the token's payload is in the logs:\n{logs}"
    );
}
