//! Building the redirect URL that carries a handoff token to its tenant.

use std::fmt;

use crate::dns;

use super::landing::LandingPath;
use super::token::{Handoff, HandoffCodec, MintError};

/// The path the handoff layer serves unless configured otherwise.
pub const DEFAULT_HANDOFF_PATH: &str = "/_keystile/handoff";

/// `http` or `https`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// Plain HTTP (local development).
    Http,
    /// HTTPS.
    Https,
}

impl Scheme {
    /// `"http"` or `"https"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
        }
    }
}

/// Why a tenant origin or redirect URL was refused. `Display` never
/// contains a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IssueError {
    /// Not `http://` or `https://` followed by a host, an optional port and
    /// an optional `/`.
    #[error("tenant URL must be http(s)://host[:port] with nothing after the port")]
    InvalidUrl,
    /// The host is not a DNS name (LDH labels, at most 253 characters).
    #[error("tenant host is not a valid DNS name")]
    InvalidHost,
    /// The port is not 1-65535.
    #[error("tenant port must be 1-65535")]
    InvalidPort,
    /// The handoff path has a query or fragment.
    #[error("handoff path must be a plain same-origin path without query or fragment")]
    InvalidPath,
    /// Minting the token failed.
    #[error(transparent)]
    Mint(#[from] MintError),
}

/// Where a tenant is served: scheme, DNS host and optional port. Validated
/// on construction, so a URL built from it cannot point anywhere else.
///
/// ```
/// use keystile_core::handoff::{Scheme, TenantOrigin};
///
/// let origin = TenantOrigin::parse("http://Acme.localhost:3000").unwrap();
/// assert_eq!(origin.to_string(), "http://acme.localhost:3000");
/// assert_eq!(
///     TenantOrigin::for_tenant(Scheme::Https, "acme", "example.test", None).unwrap().to_string(),
///     "https://acme.example.test"
/// );
/// assert!(TenantOrigin::parse("http://evil.test@acme.localhost").is_err());
/// assert!(TenantOrigin::parse("http://acme.localhost:99999").is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TenantOrigin {
    scheme: Scheme,
    host: String,
    port: Option<u16>,
}

impl TenantOrigin {
    /// An origin from its parts; `host` must be a DNS name and `port`
    /// non-zero.
    pub fn new(scheme: Scheme, host: &str, port: Option<u16>) -> Result<Self, IssueError> {
        let host = dns::dns_name(host).ok_or(IssueError::InvalidHost)?;
        if port == Some(0) {
            return Err(IssueError::InvalidPort);
        }
        Ok(Self { scheme, host, port })
    }

    /// The origin `{tenant}.{parent_domain}`: `tenant` must be a single
    /// DNS label.
    pub fn for_tenant(
        scheme: Scheme,
        tenant: &str,
        parent_domain: &str,
        port: Option<u16>,
    ) -> Result<Self, IssueError> {
        let label = dns::dns_label(tenant).ok_or(IssueError::InvalidHost)?;
        Self::new(scheme, &format!("{label}.{parent_domain}"), port)
    }

    /// Parses `http(s)://host[:port][/]`; user info, paths, queries and
    /// fragments are refused.
    pub fn parse(url: &str) -> Result<Self, IssueError> {
        let (scheme, rest) = if let Some(rest) = strip_prefix_ignore_case(url, "https://") {
            (Scheme::Https, rest)
        } else if let Some(rest) = strip_prefix_ignore_case(url, "http://") {
            (Scheme::Http, rest)
        } else {
            return Err(IssueError::InvalidUrl);
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains(['/', '?', '#', '@', '\\']) {
            return Err(IssueError::InvalidUrl);
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) => {
                let valid = !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit());
                let port = port
                    .parse::<u16>()
                    .ok()
                    .filter(|_| valid)
                    .ok_or(IssueError::InvalidPort)?;
                (host, Some(port))
            }
            None => (authority, None),
        };
        Self::new(scheme, host, port)
    }

    /// The scheme.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The lowercase host.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port, if not the scheme's default.
    pub fn port(&self) -> Option<u16> {
        self.port
    }
}

impl fmt::Display for TenantOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme.as_str(), self.host)?;
        match self.port {
            Some(port) => write!(f, ":{port}"),
            None => Ok(()),
        }
    }
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// Mints handoff tokens and wraps them in the URL the browser is sent to:
/// `{origin}{handoff path}?token={token}` (plus `&next=` when a landing
/// path is given). Sets no cookie anywhere: the issuer's origin never holds
/// the tenant's session.
///
/// ```
/// use keystile_core::handoff::{Handoff, HandoffCodec, HandoffIssuer, TenantOrigin};
/// use keystile_core::keys::Keyring;
///
/// let issuer = HandoffIssuer::new(HandoffCodec::new(Keyring::generate().unwrap()));
/// let origin = TenantOrigin::parse("http://acme.localhost:3000").unwrap();
/// let url = issuer
///     .redirect_url(&origin, &Handoff::new("admin@acme", "acme").acting_as("operator:7"))
///     .unwrap();
/// assert!(url.starts_with("http://acme.localhost:3000/_keystile/handoff?token="));
/// ```
#[derive(Clone, Debug)]
pub struct HandoffIssuer {
    codec: HandoffCodec,
    path: LandingPath,
}

impl HandoffIssuer {
    /// An issuer minting with `codec`, targeting [`DEFAULT_HANDOFF_PATH`].
    pub fn new(codec: HandoffCodec) -> Self {
        Self {
            codec,
            path: LandingPath(DEFAULT_HANDOFF_PATH.into()),
        }
    }

    /// Targets another handoff path (it must match the tenant's
    /// `HandoffLayer`).
    pub fn path(mut self, path: &str) -> Result<Self, IssueError> {
        let path = LandingPath::parse(path).map_err(|_| IssueError::InvalidPath)?;
        if path.has_query_or_fragment() {
            return Err(IssueError::InvalidPath);
        }
        self.path = path;
        Ok(self)
    }

    /// The codec minting the tokens.
    pub fn codec(&self) -> &HandoffCodec {
        &self.codec
    }

    /// Mints a token for `handoff` and returns the URL that redeems it at
    /// `origin`.
    pub fn redirect_url(
        &self,
        origin: &TenantOrigin,
        handoff: &Handoff,
    ) -> Result<String, IssueError> {
        let token = self.codec.mint(handoff)?;
        // Tokens are base64url and `.`: nothing to percent-encode.
        Ok(format!("{origin}{}?token={token}", self.path))
    }

    /// Like [`redirect_url`](Self::redirect_url), landing on `next` after
    /// the handoff instead of the layer's default landing path.
    pub fn redirect_url_to(
        &self,
        origin: &TenantOrigin,
        handoff: &Handoff,
        next: &LandingPath,
    ) -> Result<String, IssueError> {
        let mut url = self.redirect_url(origin, handoff)?;
        url.push_str("&next=");
        percent_encode_into(next.as_str(), &mut url);
        Ok(url)
    }
}

/// Percent-encodes everything but unreserved characters and `/`, so the
/// value survives as one query parameter.
fn percent_encode_into(text: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::keys::{Keyring, SigningKey};

    fn issuer() -> HandoffIssuer {
        let ring = Keyring::new(SigningKey::from_bytes(&[3; 32]).unwrap());
        HandoffIssuer::new(
            HandoffCodec::new(ring).clock(ManualClock::at_unix(1_700_000_000).shared()),
        )
    }

    #[test]
    fn parse_accepts_scheme_host_port_only() {
        let o = TenantOrigin::parse("HTTPS://ACME.example.test/").unwrap();
        assert_eq!(o.scheme(), Scheme::Https);
        assert_eq!(o.host(), "acme.example.test");
        assert_eq!(o.port(), None);
        assert_eq!(
            TenantOrigin::parse("http://a.localhost:1").unwrap().port(),
            Some(1)
        );

        let cases = [
            ("ftp://acme.test", IssueError::InvalidUrl),
            ("acme.test", IssueError::InvalidUrl),
            ("http://acme.test/admin", IssueError::InvalidUrl),
            ("http://acme.test?x", IssueError::InvalidUrl),
            ("http://acme.test#x", IssueError::InvalidUrl),
            ("http://user@acme.test", IssueError::InvalidUrl),
            ("http://acme.test\\@evil", IssueError::InvalidUrl),
            ("http://acme.test:0", IssueError::InvalidPort),
            ("http://acme.test:65536", IssueError::InvalidPort),
            ("http://acme.test:", IssueError::InvalidPort),
            ("http://acme.test:+1", IssueError::InvalidPort),
            ("http://", IssueError::InvalidHost),
            ("http://acme_x.test", IssueError::InvalidHost),
            ("http://acme.test.", IssueError::InvalidHost),
            ("http://[::1]:80", IssueError::InvalidHost),
            ("http://é.test", IssueError::InvalidHost),
        ];
        for (url, error) in cases {
            assert_eq!(TenantOrigin::parse(url), Err(error), "{url}");
        }
    }

    #[test]
    fn for_tenant_needs_a_single_label() {
        assert!(TenantOrigin::for_tenant(Scheme::Http, "acme", "localhost", Some(3000)).is_ok());
        for bad in ["", "a.b", "-a", "a/b"] {
            assert_eq!(
                TenantOrigin::for_tenant(Scheme::Http, bad, "localhost", None),
                Err(IssueError::InvalidHost),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn redirect_url_carries_a_verifiable_token() {
        let issuer = issuer();
        let origin = TenantOrigin::parse("http://acme.localhost:3000").unwrap();
        let url = issuer
            .redirect_url(&origin, &Handoff::new("u", "acme"))
            .unwrap();
        let token = url
            .strip_prefix("http://acme.localhost:3000/_keystile/handoff?token=")
            .unwrap();
        assert_eq!(
            issuer.codec().verify(token, "acme").unwrap().claims.subject,
            "u"
        );
    }

    #[test]
    fn next_is_percent_encoded_as_one_parameter() {
        let issuer = issuer().path("/login/handoff").unwrap();
        let origin = TenantOrigin::parse("https://acme.example.test").unwrap();
        let next = LandingPath::parse("/admin/?tab=a&b=c#x").unwrap();
        let url = issuer
            .redirect_url_to(&origin, &Handoff::new("u", "acme"), &next)
            .unwrap();
        assert!(url.starts_with("https://acme.example.test/login/handoff?token="));
        assert!(
            url.ends_with("&next=/admin/%3Ftab%3Da%26b%3Dc%23x"),
            "{url}"
        );
    }

    #[test]
    fn handoff_path_must_be_plain() {
        assert_eq!(
            issuer().path("/h?x=1").unwrap_err(),
            IssueError::InvalidPath
        );
        assert_eq!(
            issuer().path("//evil").unwrap_err(),
            IssueError::InvalidPath
        );
    }
}
