//! The hardened example in a real Chromium: the script that carries the
//! response's CSP nonce runs, the injected one without it is blocked, and
//! the browser's violation report arrives at the report endpoint.
//!
//! Needs Debian's `chromium` and `chromium-driver` (see `support::browser`).

mod hardened_support;
mod support;

use std::time::{Duration, Instant};

use fantoccini::Locator;
use hardened_support::{LOOPBACK, example};
use support::browser::{BROWSER_WAIT, start_browser};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nonced_script_runs_the_injected_one_is_blocked_and_reported() {
    let hardened_support::Example {
        port,
        reports: seen,
        ..
    } = example(&LOOPBACK).await;

    let (_browser, client) = start_browser().await;
    let result = async {
        client.goto(&format!("http://localhost:{port}/")).await?;
        let nonced = client
            .wait()
            .at_most(BROWSER_WAIT)
            .for_element(Locator::Id("nonced"))
            .await?
            .text()
            .await?;
        let injected = client.find(Locator::Id("injected")).await?.text().await?;
        Ok::<_, fantoccini::error::CmdError>((nonced, injected))
    }
    .await;
    let _ = client.close().await;
    let (nonced, injected) = result.expect("the browser session");
    assert_eq!(nonced, "the nonce'd script ran");
    assert_eq!(injected, "the injected script did not run");

    // The report is posted by the browser on its own schedule; wait for it
    // (bounded), then look at what arrived.
    let deadline = Instant::now() + BROWSER_WAIT;
    while seen.lock().unwrap().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seen = seen.lock().unwrap();
    let report = seen
        .iter()
        .find(|v| v.directive.starts_with("script-src"))
        .unwrap_or_else(|| panic!("no script-src violation reported: {seen:?}"));
    assert_eq!(report.blocked, "inline");
    assert_eq!(report.disposition, "enforce");
    assert_eq!(report.document, format!("http://localhost:{port}/"));
}
