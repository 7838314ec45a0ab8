//! A real Chromium driven over WebDriver, for the browser tests.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`scripts/test` installs
//! them). Paths: `KEYSTILE_TEST_CHROMEDRIVER` (default
//! `/usr/bin/chromedriver`) and `KEYSTILE_TEST_CHROMIUM` (default
//! `/usr/bin/chromium`). Missing binaries fail the test; it never skips.

use std::net::TcpListener as StdListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;

/// Bounds each wait for the browser; a hung browser fails the test
/// instead of hanging it. Not a performance assertion.
pub const BROWSER_WAIT: Duration = Duration::from_secs(30);

fn binary(var: &str, default: &str) -> PathBuf {
    let path = PathBuf::from(std::env::var(var).unwrap_or_else(|_| default.to_owned()));
    assert!(
        path.is_file(),
        "{} not found: install chromium and chromium-driver \
         (`apt-get install -y chromium chromium-driver`) or set {var}",
        path.display()
    );
    path
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// chromedriver and a fresh profile directory, removed on drop.
pub struct Browser {
    driver: Child,
    profile: PathBuf,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

pub async fn start_browser() -> (Browser, fantoccini::Client) {
    let chromedriver = binary("KEYSTILE_TEST_CHROMEDRIVER", "/usr/bin/chromedriver");
    let chromium = binary("KEYSTILE_TEST_CHROMIUM", "/usr/bin/chromium");
    let port = free_port();
    let profile = std::env::temp_dir().join(super::unique("chromium_profile"));
    std::fs::create_dir_all(&profile).expect("profile directory");
    let driver = Command::new(&chromedriver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromedriver.display()));
    let browser = Browser { driver, profile };

    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": [
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                format!("--user-data-dir={}", browser.profile.display()),
            ],
        }),
    );
    let webdriver = format!("http://127.0.0.1:{port}");
    // chromedriver needs a moment to listen; retry the session a bounded
    // number of times.
    for _ in 0..100 {
        let connected = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities.clone())
            .connect(&webdriver)
            .await;
        match connected {
            Ok(client) => return (browser, client),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    panic!(
        "could not open a WebDriver session on {}",
        chromedriver.display()
    );
}

pub async fn body_text(client: &fantoccini::Client) -> String {
    client
        .find(Locator::Css("body"))
        .await
        .expect("a body")
        .text()
        .await
        .expect("body text")
}
