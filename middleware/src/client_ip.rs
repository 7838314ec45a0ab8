//! Which address a request came from, behind proxies you trust and no
//! others: the one resolver `IpFilterLayer` (and anything else that keys on
//! the client) reads.
//!
//! The starting point is the TCP peer, from axum's
//! [`ConnectInfo`] (serve the router with
//! `into_make_service_with_connect_info::<SocketAddr>()`). When that peer is
//! one of the configured trusted proxies, the forwarding header
//! (`X-Forwarded-For` by default, or RFC 7239 `Forwarded`) is read from the
//! RIGHT: every hop a trusted proxy appended is skipped, and the first
//! address no trusted proxy vouches for is the client. The leftmost entries
//! are whatever the client wrote, so they are never believed just for being
//! first. IPv4 clients seen on a dual-stack socket (`::ffff:a.b.c.d`) are
//! normalised to IPv4.
//!
//! | situation | client address |
//! |-----------|----------------|
//! | peer is not a trusted proxy | the peer (forwarding headers ignored) |
//! | peer trusted, header lists hops | the rightmost hop that is not a trusted proxy |
//! | every hop trusted | the leftmost hop |
//! | peer trusted, no header | the peer |
//! | peer trusted, a hop to read is not an address | [`ClientIpError::BadForwardedHeader`] (400) |
//! | no `ConnectInfo` | [`ClientIpError::MissingConnectInfo`] (500, naming the fix) |
//!
//! ```
//! use std::net::{IpAddr, SocketAddr};
//! use axum::extract::ConnectInfo;
//! use keystile_middleware::client_ip::ClientIp;
//!
//! let resolver = ClientIp::new().trusted_proxies(["10.0.0.0/8"])?;
//! let mut request = http::Request::get("/")
//!     .header("x-forwarded-for", "6.6.6.6, 203.0.113.9, 10.0.0.2")
//!     .body(())?;
//! request
//!     .extensions_mut()
//!     .insert(ConnectInfo(SocketAddr::from(([10, 0, 0, 1], 4000))));
//! // 6.6.6.6 was written by the client itself; 203.0.113.9 is where the
//! // trusted proxies got the request from.
//! assert_eq!(resolver.resolve(&request)?, "203.0.113.9".parse::<IpAddr>()?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::ConnectInfo;
use http::header::FORWARDED;
use http::{HeaderName, Request};

use crate::cidr::{CidrError, CidrSet};

/// The `X-Forwarded-For` header.
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Which forwarding header trusted proxies write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (the default).
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client, for=proxy1`.
    Forwarded,
}

/// Why the client address could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientIpError {
    /// The router was not served with connection info: a wiring mistake.
    #[error(
        "no ConnectInfo<SocketAddr> on the request: serve the router with \
         `into_make_service_with_connect_info::<SocketAddr>()`"
    )]
    MissingConnectInfo,
    /// A trusted proxy's forwarding header holds something that is not an
    /// address where an address was needed.
    #[error("the forwarding header from a trusted proxy is not a list of addresses")]
    BadForwardedHeader,
}

/// Resolves the client address; see the [module docs](self). Cloning is
/// cheap.
#[derive(Clone, Debug, Default)]
pub struct ClientIp {
    trusted: Arc<CidrSet>,
    header: ForwardedHeader,
}

impl ClientIp {
    /// Trusts no proxy: the client is the TCP peer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Trusts the proxies in these CIDRs (`10.0.0.0/8`, `::1/128`; a bare
    /// address is a single host) to append the hop they received the
    /// request from.
    ///
    /// List the proxies' own addresses and nothing else: a client whose
    /// address falls inside a trusted network is believed about the hops
    /// to its left, so it can name any address it likes.
    pub fn trusted_proxies<I, S>(mut self, cidrs: I) -> Result<Self, CidrError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.trusted = Arc::new(CidrSet::parse(cidrs)?);
        Ok(self)
    }

    /// Reads `header` from trusted proxies (default `X-Forwarded-For`).
    pub fn header(mut self, header: ForwardedHeader) -> Self {
        self.header = header;
        self
    }

    /// Whether the TCP peer of `request` is one of the trusted proxies
    /// (false without `ConnectInfo`): whether its forwarding headers may be
    /// believed at all.
    pub fn peer_is_trusted<B>(&self, request: &Request<B>) -> bool {
        request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .is_some_and(|peer| self.trusted.contains(peer.0.ip()))
    }

    /// The client address of `request`.
    pub fn resolve<B>(&self, request: &Request<B>) -> Result<IpAddr, ClientIpError> {
        self.resolve_head(request.headers(), request.extensions())
    }

    /// The client address of a request whose head is `headers` and
    /// `extensions` (for middleware that holds the request's `Parts`).
    pub fn resolve_head(
        &self,
        headers: &http::HeaderMap,
        extensions: &http::Extensions,
    ) -> Result<IpAddr, ClientIpError> {
        let peer = extensions
            .get::<ConnectInfo<SocketAddr>>()
            .ok_or(ClientIpError::MissingConnectInfo)?
            .0
            .ip()
            .to_canonical();
        if !self.trusted.contains(peer) {
            return Ok(peer);
        }
        let mut leftmost = peer;
        // Every field line, last first; in each, the hops right to left.
        for value in headers.get_all(self.header_name()).iter().rev() {
            let text = value
                .to_str()
                .map_err(|_| ClientIpError::BadForwardedHeader)?;
            for hop in text.rsplit(',') {
                let hop = match self.header {
                    ForwardedHeader::XForwardedFor => parse_hop(hop),
                    ForwardedHeader::Forwarded => forwarded_for(hop),
                }
                .ok_or(ClientIpError::BadForwardedHeader)?;
                if !self.trusted.contains(hop) {
                    return Ok(hop);
                }
                leftmost = hop;
            }
        }
        Ok(leftmost)
    }

    fn header_name(&self) -> HeaderName {
        match self.header {
            ForwardedHeader::XForwardedFor => X_FORWARDED_FOR,
            ForwardedHeader::Forwarded => FORWARDED,
        }
    }
}

/// One `X-Forwarded-For` hop: an address, optionally `[v6]:port` or
/// `v4:port` as some proxies write it.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim_matches([' ', '\t']);
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    hop.parse::<SocketAddr>()
        .ok()
        .map(|addr| addr.ip().to_canonical())
}

/// The `for=` node of one RFC 7239 element (`for=192.0.2.60;proto=http`,
/// `for="[2001:db8::17]:4711"`). Obfuscated and `unknown` nodes name no
/// address, so they cannot be the client nor be trusted: `None`.
fn forwarded_for(element: &str) -> Option<IpAddr> {
    let node = element.split(';').find_map(|pair| {
        let (name, value) = pair.trim_matches([' ', '\t']).split_once('=')?;
        name.eq_ignore_ascii_case("for").then_some(value)
    })?;
    let node = node
        .strip_prefix('"')
        .and_then(|n| n.strip_suffix('"'))
        .unwrap_or(node);
    if let Some(v6) = node.strip_prefix('[') {
        let (address, _port) = v6.split_once(']')?;
        return address.parse::<IpAddr>().ok().map(|ip| ip.to_canonical());
    }
    parse_hop(node)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(peer: &str, forwarded: &[(&str, &str)]) -> Request<()> {
        let mut builder = Request::get("/");
        for (name, value) in forwarded {
            builder = builder.header(*name, *value);
        }
        let mut request = builder.body(()).unwrap();
        request
            .extensions_mut()
            .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
        request
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let r = ClientIp::new().trusted_proxies(["10.0.0.0/8"]).unwrap();
        let req = request("203.0.113.5:1", &[("x-forwarded-for", "1.2.3.4")]);
        assert_eq!(r.resolve(&req), Ok(ip("203.0.113.5")));
        let none = ClientIp::new();
        let req = request("10.0.0.1:1", &[("x-forwarded-for", "1.2.3.4")]);
        assert_eq!(none.resolve(&req), Ok(ip("10.0.0.1")));
    }

    #[test]
    fn the_rightmost_untrusted_hop_wins_over_a_spoofed_leftmost_one() {
        let r = ClientIp::new()
            .trusted_proxies(["10.0.0.0/8", "192.168.1.1"])
            .unwrap();
        let req = request(
            "10.1.1.1:1",
            &[("x-forwarded-for", "6.6.6.6, 203.0.113.9, 192.168.1.1")],
        );
        assert_eq!(r.resolve(&req), Ok(ip("203.0.113.9")));
        // Several field lines are one list, in order.
        let req = request(
            "10.1.1.1:1",
            &[
                ("x-forwarded-for", "6.6.6.6"),
                ("x-forwarded-for", "203.0.113.9, 10.2.2.2"),
            ],
        );
        assert_eq!(r.resolve(&req), Ok(ip("203.0.113.9")));
        // All hops trusted: the leftmost one.
        let req = request("10.1.1.1:1", &[("x-forwarded-for", "10.3.3.3, 10.2.2.2")]);
        assert_eq!(r.resolve(&req), Ok(ip("10.3.3.3")));
        // No header from a trusted peer: the peer.
        assert_eq!(r.resolve(&request("10.1.1.1:1", &[])), Ok(ip("10.1.1.1")));
    }

    #[test]
    fn garbage_where_an_address_is_needed_is_an_error_but_not_beyond_it() {
        let r = ClientIp::new().trusted_proxies(["10.0.0.0/8"]).unwrap();
        for value in ["not-an-ip", "203.0.113.9, ", "1.2.3.4, evil"] {
            let req = request("10.1.1.1:1", &[("x-forwarded-for", value)]);
            assert_eq!(
                r.resolve(&req),
                Err(ClientIpError::BadForwardedHeader),
                "{value}"
            );
        }
        // Left of the client, the client's own text is never read.
        let req = request("10.1.1.1:1", &[("x-forwarded-for", "garbage, 203.0.113.9")]);
        assert_eq!(r.resolve(&req), Ok(ip("203.0.113.9")));
    }

    #[test]
    fn v4_mapped_peers_and_hops_are_normalised() {
        let r = ClientIp::new().trusted_proxies(["10.0.0.0/8"]).unwrap();
        let req = request(
            "[::ffff:10.0.0.1]:1",
            &[("x-forwarded-for", "::ffff:203.0.113.9")],
        );
        assert_eq!(r.resolve(&req), Ok(ip("203.0.113.9")));
        let req = request("[::ffff:203.0.113.7]:1", &[]);
        assert_eq!(ClientIp::new().resolve(&req), Ok(ip("203.0.113.7")));
    }

    #[test]
    fn rfc7239_forwarded_elements() {
        let r = ClientIp::new()
            .trusted_proxies(["10.0.0.0/8"])
            .unwrap()
            .header(ForwardedHeader::Forwarded);
        let req = request(
            "10.1.1.1:1",
            &[(
                "forwarded",
                r#"for=6.6.6.6, for="[2001:db8:cafe::17]:4711";proto=https, For=10.2.2.2;by=10.1.1.1"#,
            )],
        );
        assert_eq!(r.resolve(&req), Ok(ip("2001:db8:cafe::17")));
        let hidden = request("10.1.1.1:1", &[("forwarded", "for=_hidden, for=10.2.2.2")]);
        assert_eq!(r.resolve(&hidden), Err(ClientIpError::BadForwardedHeader));
    }

    #[test]
    fn no_connect_info_names_the_fix() {
        let req = Request::get("/").body(()).unwrap();
        let error = ClientIp::new().resolve(&req).unwrap_err();
        assert_eq!(error, ClientIpError::MissingConnectInfo);
        assert!(
            error
                .to_string()
                .contains("into_make_service_with_connect_info")
        );
    }
}
