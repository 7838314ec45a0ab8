//! Request integrity in a real Chromium: the profile form posts from its
//! own origin; the same post from a page on `evil.localhost` (the same
//! *site* as `acme.localhost`, so the `SameSite=Lax` session cookie rides
//! along) is refused and changes nothing; a magic link works once.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`scripts/test` installs
//! them); missing binaries fail the test, it never skips.

#[allow(dead_code)]
#[path = "../examples/integrity/app.rs"]
mod app;
mod support;

use axum::Router;
use axum::response::Html;
use axum::routing::get;
use fantoccini::Locator;
use keystile::keys::Keyring;
use support::browser::{BROWSER_WAIT, body_text, start_browser};

use app::{AppConfig, app};

async fn serve(router: Router) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forms_post_from_their_own_origin_only_and_magic_links_work_once() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let site = format!("http://acme.localhost:{port}");
    let router = app(AppConfig {
        keyring: Keyring::generate().unwrap(),
        origin: site.clone(),
        github_secret: "g".into(),
        stripe_secret: "s".into(),
    });
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let evil_page = format!(
        r#"<!doctype html><form method="post" action="{site}/profile">
<input type="hidden" name="name" value="pwned"><button id="attack">Win a prize</button></form>"#
    );
    let evil = serve(Router::new().route(
        "/",
        get(move || std::future::ready(Html(evil_page.clone()))),
    ))
    .await;

    let (_browser, client) = start_browser().await;
    let result = async {
        // Sign in, then change the name through the page's own form.
        client.goto(&format!("{site}/")).await?;
        client.find(Locator::Id("login")).await?.click().await?;
        let shown = client
            .wait()
            .at_most(BROWSER_WAIT)
            .for_element(Locator::Id("display-name"))
            .await?;
        assert_eq!(shown.text().await?, "alice");
        client
            .find(Locator::Id("new-name"))
            .await?
            .send_keys("bob")
            .await?;
        client.find(Locator::Id("save")).await?.click().await?;
        let shown = client
            .wait()
            .at_most(BROWSER_WAIT)
            .for_element(Locator::Id("display-name"))
            .await?;
        assert_eq!(shown.text().await?, "bob");

        // The same post from a sibling subdomain: refused, nothing changed.
        client
            .goto(&format!("http://evil.localhost:{evil}/"))
            .await?;
        client.find(Locator::Id("attack")).await?.click().await?;
        client
            .wait()
            .at_most(BROWSER_WAIT)
            .for_element(Locator::Css("body"))
            .await?;
        let refused = body_text(&client).await;
        assert!(
            refused.contains("forbidden") || refused.contains("Forbidden"),
            "{refused}"
        );
        client.goto(&format!("{site}/profile")).await?;
        let shown = client
            .wait()
            .at_most(BROWSER_WAIT)
            .for_element(Locator::Id("display-name"))
            .await?;
        assert_eq!(shown.text().await?, "bob");

        // A magic link, asked for outside the browser, works once in it.
        let link = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{port}/magic-link"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("user=carol")
            .send()
            .await?
            .text()
            .await?;
        assert!(
            link.starts_with(&format!("{site}/magic?user=carol&sig=")),
            "{link}"
        );
        client.goto(&link).await?;
        let accepted = client
            .wait()
            .at_most(BROWSER_WAIT)
            .for_element(Locator::Id("magic"))
            .await?;
        assert_eq!(accepted.text().await?, "magic link accepted for carol");
        client.goto(&link).await?;
        let again = body_text(&client).await;
        assert!(again.contains("already used"), "{again}");
        Ok::<(), Box<dyn std::error::Error>>(())
    }
    .await;
    let _ = client.close().await;
    result.unwrap();
}
