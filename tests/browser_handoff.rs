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

use fantoccini::Locator;
use keystile::keys::Keyring;
use serde_json::json;
use support::browser::{BROWSER_WAIT, body_text, start_browser};

use app::{AppConfig, app};
use handoff_support::{listener, serve};

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
