//! Access logs of the hardened example never hold a credential: every
//! credential form goes through the real server and the captured `tracing`
//! output is searched for it. Its own test binary: tracing caches
//! per-callsite interest globally, so tests running on other threads without
//! a subscriber could hide events from this one.

mod hardened_support;
mod support;

use hardened_support::{LOOPBACK, client, example};
use support::logs::Captured;

#[tokio::test(flavor = "current_thread")]
async fn access_logs_never_hold_a_credential() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("keystile=trace,tower_http=trace")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let hardened_support::Example { port, key, .. } = example(&LOOPBACK).await;
    let base = format!("http://127.0.0.1:{port}");
    let c = client();
    let secrets = [
        "SECRET-QUERY-TOKEN",
        "SECRET-ENCODED-NAME",
        "SECRET-ACCESS-TOKEN",
        "SECRET-CODE",
        "SECRET-COOKIE",
        "SECRET-BEARER",
    ];
    let sent = [
        c.get(format!("{base}/api/me?token=SECRET-QUERY-TOKEN")),
        c.get(format!("{base}/api/me?%74oken=SECRET-ENCODED-NAME&page=2")),
        c.get(format!("{base}/?access_token=SECRET-ACCESS-TOKEN")),
        c.get(format!("{base}/?CODE=SECRET-CODE")),
        c.get(format!("{base}/"))
            .header("cookie", "keystile_session=SECRET-COOKIE"),
        c.get(format!("{base}/api/me"))
            .header("authorization", "Bearer SECRET-BEARER"),
        c.get(format!("{base}/api/me")).header("x-api-key", &key),
        c.get(format!("{base}/api/me"))
            .header("authorization", format!("Bearer {key}")),
    ];
    for request in sent {
        request.send().await.unwrap();
    }
    let log = captured.text();
    for secret in secrets.iter().copied().chain([key.as_str()]) {
        assert!(!log.contains(secret), "{secret} is in the log:\n{log}");
    }
    // ... while the log still says what happened.
    assert!(log.contains("query=\"token=[redacted]\""), "{log}");
    assert!(log.contains("query=\"%74oken=[redacted]&page=2\""), "{log}");
    assert!(log.contains("principal=\"demo\""), "{log}");
    assert!(log.contains("auth=\"api_key\""), "{log}");
    assert!(
        log.contains("status=200") && log.contains("status=401"),
        "{log}"
    );
}
