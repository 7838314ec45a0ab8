//! The handoff in a real Chromium, driven over WebDriver: the operator
//! console on `localhost` sends the browser to `acme.localhost`, which must
//! be signed in on that first navigation, while `globex.localhost` stays
//! signed out because the session cookie is host-only.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`scripts/test` installs
//! them). Paths: `KEYSTILE_TEST_CHROMEDRIVER` (default
//! `/usr/bin/chromedriver`) and `KEYSTILE_TEST_CHROMIUM` (default
//! `/usr/bin/chromium`). Missing binaries fail the test; it never skips.

#[allow(dead_code)]
#[path = "../examples/handoff/app.rs"]
mod app;
mod handoff_support;
mod support;

use std::net::TcpListener as StdListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use keystile::keys::Keyring;
use serde_json::json;

use app::{AppConfig, app};
use handoff_support::{listener, serve};

/// Bounds each wait for the browser; a hung browser fails the test
/// instead of hanging it. Not a performance assertion.
const BROWSER_WAIT: Duration = Duration::from_secs(30);

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
struct Browser {
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

async fn start_browser() -> (Browser, fantoccini::Client) {
    let chromedriver = binary("KEYSTILE_TEST_CHROMEDRIVER", "/usr/bin/chromedriver");
    let chromium = binary("KEYSTILE_TEST_CHROMIUM", "/usr/bin/chromium");
    let port = free_port();
    let profile = std::env::temp_dir().join(support::unique("chromium_profile"));
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

async fn body_text(client: &fantoccini::Client) -> String {
    client
        .find(Locator::Css("body"))
        .await
        .expect("a body")
        .text()
        .await
        .expect("body text")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impersonate_in_chromium_lands_signed_in_on_the_first_navigation() {
    let (listener, port) = listener().await;
    let keyring = Keyring::generate().expect("a key");
    serve(listener, app(AppConfig::new(keyring, port)));

    let (_browser, client) = start_browser().await;
    let result = async {
        client.goto(&format!("http://localhost:{port}/")).await?;
        client
            .find(Locator::Id("impersonate-acme"))
            .await?
            .click()
            .await?;

        // One click: POST → 303 to the handoff link → 303 to /admin/.
        let subject = client
            .wait()
            .at_most(BROWSER_WAIT)
            .for_element(Locator::Id("subject"))
            .await?
            .text()
            .await?;
        assert_eq!(
            client.current_url().await?.as_str(),
            format!("http://acme.localhost:{port}/admin/")
        );
        assert_eq!(subject, "Signed in as admin@acme");
        let actor = client.find(Locator::Id("actor")).await?.text().await?;
        assert_eq!(actor, "impersonated by operator 7");

        // The cookie is host-only: the browser keeps it for acme only.
        let cookies = client.get_all_cookies().await?;
        let session = cookies
            .iter()
            .find(|c| c.name() == "keystile_session")
            .expect("the session cookie is stored");
        assert_eq!(session.domain(), Some("acme.localhost"));
        assert_eq!(session.http_only(), Some(true));

        client
            .goto(&format!("http://acme.localhost:{port}/admin/whoami"))
            .await?;
        let whoami: serde_json::Value =
            serde_json::from_str(&body_text(&client).await).expect("whoami JSON");
        assert_eq!(
            whoami,
            json!({"subject": "admin@acme", "actor": "operator:7", "tenant": "acme"})
        );

        client
            .goto(&format!("http://globex.localhost:{port}/admin/whoami"))
            .await?;
        let problem: serde_json::Value =
            serde_json::from_str(&body_text(&client).await).expect("problem JSON");
        assert_eq!(problem["status"], 401);
        assert_eq!(problem["reason"], "missing_credentials");
        Ok::<_, fantoccini::error::CmdError>(())
    }
    .await;
    let _ = client.close().await;
    result.expect("the browser session");
}
