//! [`IpFilterLayer`]: allow or block clients by address (CIDR lists, IPv4
//! and IPv6).
//!
//! The client address comes from [`ClientIp`]: the TCP peer from axum's
//! `ConnectInfo`, or behind proxies you trust, the rightmost
//! `X-Forwarded-For` / `Forwarded` hop they did not write themselves — never
//! the leftmost, which the client controls. IPv4 clients on a dual-stack
//! socket (`::ffff:a.b.c.d`) match IPv4 rules.
//!
//! | request | response |
//! |---------|----------|
//! | address in the allow list (or no allow list), not in the block list | passed on |
//! | address outside the allow list, or in the block list | 403 `forbidden` (problem+json) |
//! | a trusted proxy's forwarding header unreadable where it matters | 400 `malformed` |
//! | no `ConnectInfo` on the request | 500 `missing_layer`, naming `into_make_service_with_connect_info` — never an admit |
//!
//! Membership costs one hash lookup per distinct prefix length in a list
//! ([`CidrSet`]), so a list of a thousand networks costs what a list of a
//! few does.
//!
//! ```
//! use std::net::SocketAddr;
//! use axum::{Router, routing::get};
//! use keystile_middleware::client_ip::ClientIp;
//! use keystile_middleware::ip_filter::IpFilterLayer;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let office = IpFilterLayer::new()
//!     .allow(["192.0.2.0/24", "2001:db8::/32"])?
//!     .block(["192.0.2.66"])?
//!     .client_ip(ClientIp::new().trusted_proxies(["10.0.0.0/8"])?);
//! let app: Router = Router::new().route("/admin", get(|| async { "hi" })).layer(office);
//! // Serve with connection info, or every request is a 500:
//! let _service = app.into_make_service_with_connect_info::<SocketAddr>();
//! # Ok(()) }
//! ```

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use futures_util::future::{Either, Ready, ready};
use http::{Request, StatusCode};
use keystile_core::rejection::{Reason, Rejection};
use tower_layer::Layer;
use tower_service::Service;

use crate::cidr::{CidrError, CidrSet};
use crate::client_ip::{ClientIp, ClientIpError};

const SOURCE: &str = "IpFilterLayer";

/// Filters requests by client address; see the [module docs](self).
/// Cloning is cheap.
#[derive(Clone, Debug, Default)]
pub struct IpFilterLayer {
    config: Arc<Config>,
}

#[derive(Clone, Debug, Default)]
struct Config {
    allow: Option<CidrSet>,
    block: CidrSet,
    client: ClientIp,
}

impl IpFilterLayer {
    /// A filter that admits every address until lists are set; the client
    /// is the TCP peer (no trusted proxies).
    pub fn new() -> Self {
        Self::default()
    }

    /// Admits only addresses in these networks.
    pub fn allow<I, S>(mut self, cidrs: I) -> Result<Self, CidrError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Arc::make_mut(&mut self.config).allow = Some(CidrSet::parse(cidrs)?);
        Ok(self)
    }

    /// Refuses addresses in these networks (even when the allow list has
    /// them).
    pub fn block<I, S>(mut self, cidrs: I) -> Result<Self, CidrError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Arc::make_mut(&mut self.config).block = CidrSet::parse(cidrs)?;
        Ok(self)
    }

    /// Reads the client address with `client` (e.g. behind trusted proxies).
    pub fn client_ip(mut self, client: ClientIp) -> Self {
        Arc::make_mut(&mut self.config).client = client;
        self
    }
}

impl Config {
    fn check(&self, request: &Request<Body>) -> Result<(), Rejection> {
        let ip = self.client.resolve(request).map_err(|error| match error {
            ClientIpError::MissingConnectInfo => Rejection::new(Reason::MissingLayer, SOURCE)
                .with_detail(
                    "IpFilterLayer needs the client address: serve the router with \
                     `into_make_service_with_connect_info::<SocketAddr>()`",
                ),
            ClientIpError::BadForwardedHeader => Rejection::new(Reason::Malformed, SOURCE)
                .with_status(StatusCode::BAD_REQUEST)
                .with_detail("the forwarding header is not a list of addresses"),
        })?;
        let allowed = self.allow.as_ref().is_none_or(|allow| allow.contains(ip));
        if allowed && !self.block.contains(ip) {
            Ok(())
        } else {
            Err(Rejection::new(Reason::Forbidden, SOURCE)
                .with_detail("requests from this address are not allowed here"))
        }
    }
}

impl<S> Layer<S> for IpFilterLayer {
    type Service = IpFilter<S>;

    fn layer(&self, inner: S) -> Self::Service {
        IpFilter {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}

/// The service [`IpFilterLayer`] produces.
#[derive(Clone)]
pub struct IpFilter<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> Service<Request<Body>> for IpFilter<S>
where
    S: Service<Request<Body>, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Either<S::Future, Ready<Result<Response, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        match self.config.check(&request) {
            Ok(()) => Either::Left(self.inner.call(request)),
            Err(rejection) => Either::Right(ready(Ok(IntoResponse::into_response(rejection)))),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for IpFilter<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IpFilter")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use axum::extract::ConnectInfo;
    use tower::ServiceExt as _;

    use super::*;

    async fn status(layer: &IpFilterLayer, peer: Option<&str>, xff: Option<&str>) -> StatusCode {
        let service = layer.layer(tower::service_fn(|_: Request<Body>| async {
            Ok::<_, std::convert::Infallible>(Response::new(Body::empty()))
        }));
        let mut builder = Request::get("/");
        if let Some(xff) = xff {
            builder = builder.header("x-forwarded-for", xff);
        }
        let mut request = builder.body(Body::empty()).unwrap();
        if let Some(peer) = peer {
            request
                .extensions_mut()
                .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
        }
        service.oneshot(request).await.unwrap().status()
    }

    #[tokio::test]
    async fn allow_and_block_lists() {
        let layer = IpFilterLayer::new()
            .allow(["192.0.2.0/24", "2001:db8::/32"])
            .unwrap()
            .block(["192.0.2.66"])
            .unwrap();
        assert_eq!(
            status(&layer, Some("192.0.2.1:1"), None).await,
            StatusCode::OK
        );
        assert_eq!(
            status(&layer, Some("[2001:db8::1]:1"), None).await,
            StatusCode::OK
        );
        assert_eq!(
            status(&layer, Some("[::ffff:192.0.2.9]:1"), None).await,
            StatusCode::OK
        );
        assert_eq!(
            status(&layer, Some("192.0.2.66:1"), None).await,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            status(&layer, Some("198.51.100.1:1"), None).await,
            StatusCode::FORBIDDEN
        );
        let block_only = IpFilterLayer::new().block(["198.51.100.0/24"]).unwrap();
        assert_eq!(
            status(&block_only, Some("192.0.2.1:1"), None).await,
            StatusCode::OK
        );
        assert_eq!(
            status(&block_only, Some("198.51.100.7:1"), None).await,
            StatusCode::FORBIDDEN
        );
    }

    #[tokio::test]
    async fn missing_connect_info_is_a_500_never_an_admit() {
        let layer = IpFilterLayer::new();
        assert_eq!(
            status(&layer, None, None).await,
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    #[tokio::test]
    async fn forwarded_hops_count_only_from_trusted_proxies() {
        let layer = IpFilterLayer::new()
            .block(["203.0.113.0/24"])
            .unwrap()
            .client_ip(ClientIp::new().trusted_proxies(["10.0.0.0/8"]).unwrap());
        // Through the trusted proxy, the blocked client is found behind a
        // spoofed leftmost entry.
        assert_eq!(
            status(&layer, Some("10.0.0.1:1"), Some("192.0.2.1, 203.0.113.5")).await,
            StatusCode::FORBIDDEN
        );
        // An untrusted peer cannot clean itself with a header.
        assert_eq!(
            status(&layer, Some("203.0.113.5:1"), Some("192.0.2.1")).await,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            status(&layer, Some("10.0.0.1:1"), Some("nonsense")).await,
            StatusCode::BAD_REQUEST
        );
    }
}
