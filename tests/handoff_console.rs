//! The handoff example's operator console refuses cross-site form posts, so
//! another site cannot make an operator's browser mint an impersonation link.

#[allow(dead_code)]
#[path = "../examples/handoff/app.rs"]
mod app;
mod handoff_support;

use app::{AppConfig, app};
use handoff_support::{client, listener, serve};
use keystile::keys::Keyring;

async fn post_impersonate(headers: &[(&str, String)]) -> reqwest::StatusCode {
    let (listener, port) = listener().await;
    serve(
        listener,
        app(AppConfig::new(Keyring::generate().unwrap(), port)),
    );
    let mut request = client(port).post(format!("http://localhost:{port}/impersonate/acme"));
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    request.send().await.unwrap().status()
}

#[tokio::test]
async fn same_origin_form_post_mints_a_link() {
    let status = post_impersonate(&[("sec-fetch-site", "same-origin".into())]).await;
    assert_eq!(status, 303);
}

#[tokio::test]
async fn cross_site_fetch_metadata_is_refused() {
    let status = post_impersonate(&[("sec-fetch-site", "cross-site".into())]).await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn foreign_origin_is_refused() {
    let status = post_impersonate(&[("origin", "http://evil.test".into())]).await;
    assert_eq!(status, 403);
}
