//! Outbound HTTP, for the fetchers that call other services: the userinfo
//! session-version fetcher and OIDC discovery and key sets.
//!
//! One client recipe: redirects are never followed (a redirect could carry
//! a caller's token elsewhere, and no endpoint called here has a reason to
//! redirect) and environment proxies (`HTTP_PROXY`, `HTTPS_PROXY`,
//! `ALL_PROXY`) are ignored unless one is configured explicitly. Bodies are
//! read up to a cap, whatever `Content-Length` says.

use reqwest::{Client, Proxy, Response, redirect};

/// A client that follows no redirect and uses `proxy` or no proxy at all.
pub(crate) fn client(proxy: Option<Proxy>) -> Result<Client, reqwest::Error> {
    let builder = Client::builder().redirect(redirect::Policy::none());
    let builder = match proxy {
        Some(proxy) => builder.proxy(proxy),
        None => builder.no_proxy(),
    };
    builder.build()
}

/// Why a body could not be read.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// The body is longer than the cap.
    TooLarge,
    /// The connection failed or timed out mid-body.
    Transport(reqwest::Error),
}

/// The body of `response`, refused unread past `max` bytes when it says its
/// length, and read no further than `max` bytes when it does not.
pub(crate) async fn read_capped(mut response: Response, max: usize) -> Result<Vec<u8>, BodyError> {
    if response
        .content_length()
        .is_some_and(|len| len > max as u64)
    {
        return Err(BodyError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Transport)? {
        if body.len() + chunk.len() > max {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
