//! Helpers for the handoff tests: serve a router on a real socket, and a
//! client that reaches `*.localhost` names on it without following
//! redirects.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use cookie::Cookie;

/// Binds 127.0.0.1 on a free port.
pub async fn listener() -> (tokio::net::TcpListener, u16) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let port = listener.local_addr().expect("local addr").port();
    (listener, port)
}

/// Serves `app` on `listener` in the background.
pub fn serve(listener: tokio::net::TcpListener, app: Router) {
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("server");
    });
}

/// A client that resolves `localhost`, `acme.localhost` and
/// `globex.localhost` to the server, never follows redirects and keeps no
/// cookies (tests pass them by hand). The timeout only stops a hung test.
pub fn client(port: u16) -> reqwest::Client {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .resolve("localhost", addr)
        .resolve("acme.localhost", addr)
        .resolve("globex.localhost", addr)
        .resolve("initech.localhost", addr)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// The single `Set-Cookie` of a response, parsed.
pub fn set_cookie(response: &reqwest::Response) -> Option<Cookie<'static>> {
    let mut all = response.headers().get_all("set-cookie").iter();
    let first = all.next()?;
    assert!(all.next().is_none(), "more than one Set-Cookie");
    let text = first.to_str().expect("ascii Set-Cookie").to_owned();
    Some(Cookie::parse(text).expect("a valid Set-Cookie"))
}

/// The header's value as text.
pub fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().expect("ascii header").to_owned())
}

/// Asserts the protections every handoff response carries.
pub fn assert_no_referrer_no_store(response: &reqwest::Response) {
    assert_eq!(
        header(response, "referrer-policy").as_deref(),
        Some("no-referrer"),
        "Referrer-Policy on {}",
        response.status()
    );
    assert_eq!(
        header(response, "cache-control").as_deref(),
        Some("no-store"),
        "Cache-Control on {}",
        response.status()
    );
}

/// The token in a handoff URL.
pub fn token_of(url: &str) -> String {
    let (_, query) = url.split_once("?token=").expect("a handoff URL");
    query.split('&').next().expect("token").to_owned()
}

/// `token` with one byte in the middle of its signature flipped (not the
/// last character, which may only carry padding bits).
pub fn tamper_signature(token: &str) -> String {
    let (head, tag) = token.rsplit_once('.').expect("a signed token");
    let mut raw: [u8; 32] = keystile::encoding::decode_array(tag).expect("a 32-byte tag");
    raw[16] ^= 0x01;
    format!("{head}.{}", keystile::encoding::encode(raw))
}

/// Mints a handoff for tenant `acme` on the console of the instance on
/// `port` and returns the redirect URL carrying the token.
pub async fn mint_on(client: &reqwest::Client, port: u16) -> String {
    let response = client
        .post(format!("http://localhost:{port}/impersonate/acme"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::SEE_OTHER);
    header(&response, "location").unwrap()
}

/// `url` (minted for one instance's port) redeemed on instance `port`.
pub async fn redeem_on(port: u16, url: &str) -> reqwest::Response {
    redeem_with(&client(port), port, url).await
}

/// Like [`redeem_on`], through a client made by [`client`] for `port`
/// (shared by many requests so each does not build its own).
pub async fn redeem_with(client: &reqwest::Client, port: u16, url: &str) -> reqwest::Response {
    let token = token_of(url);
    client
        .get(format!(
            "http://acme.localhost:{port}/_keystile/handoff?token={token}"
        ))
        .send()
        .await
        .unwrap()
}

/// The handoff example app on a port of its own, signing with `keyring` and
/// burning ids in `replay` (e.g. a Redis store shared with other instances).
/// Every test that uses these helpers also includes the example as `app`.
pub async fn serve_app(
    keyring: keystile::keys::Keyring,
    replay: keystile::replay::SharedReplayStore,
) -> u16 {
    let (listener, port) = listener().await;
    let mut config = crate::app::AppConfig::new(keyring, port);
    config.replay = replay;
    serve(listener, crate::app::app(config));
    port
}
