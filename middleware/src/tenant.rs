//! Which tenant a request is for: the binding both `HandoffLayer` and
//! `SessionLayer` check tokens against.
//!
//! A [`TenantResolver`] reads the tenant from the request. The default,
//! [`HostTenant`], takes the first label of the `Host` header under a
//! configured parent domain: `acme` for `acme.localhost:3000` under
//! `localhost`. Any closure `Fn(&Parts) -> Option<Arc<str>>` (the request
//! head) is a resolver too, for tenants named by path, header or a lookup
//! table.
//!
//! `None` means "this request is for no tenant": tokens and cookies are
//! refused there (401 `wrong_audience`), never admitted.
//!
//! ```
//! use std::sync::Arc;
//! use http::Request;
//! use http::request::Parts;
//! use keystile_middleware::tenant::{HostTenant, TenantResolver};
//!
//! let hosts = HostTenant::under("localhost").unwrap();
//! let (request, _) = Request::get("/")
//!     .header("host", "ACME.localhost:3000")
//!     .body(())
//!     .unwrap()
//!     .into_parts();
//! assert_eq!(hosts.resolve(&request).as_deref(), Some("acme"));
//!
//! let by_header = |request: &Parts| -> Option<Arc<str>> {
//!     request.headers.get("x-tenant")?.to_str().ok().map(Arc::from)
//! };
//! assert_eq!(by_header.resolve(&request), None);
//! ```

use std::fmt;
use std::sync::Arc;

use http::header::HOST;
use http::request::Parts;
use keystile_core::dns;

/// Reads the tenant a request is for.
pub trait TenantResolver: Send + Sync + 'static {
    /// The request's tenant, or `None` when it names none.
    fn resolve(&self, request: &Parts) -> Option<Arc<str>>;
}

impl<F> TenantResolver for F
where
    F: Fn(&Parts) -> Option<Arc<str>> + Send + Sync + 'static,
{
    fn resolve(&self, request: &Parts) -> Option<Arc<str>> {
        self(request)
    }
}

/// A resolver shared between layers.
pub type SharedTenantResolver = Arc<dyn TenantResolver>;

/// The parent domain is not a DNS name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the parent domain must be a DNS name such as `localhost` or `example.test`")]
pub struct InvalidParentDomain;

/// The tenant is the single label in front of a parent domain in the
/// request's host.
///
/// The host is the one [`request_authority`] reads: the target's
/// authority when the request line is in absolute form or HTTP/2 sent
/// `:authority`, else the `Host` header. The port is ignored; the
/// comparison is case-insensitive and the tenant is returned in lowercase.
/// Refused (`None`): a missing, repeated or non-ASCII `Host`, a target
/// whose authority disagrees with `Host`, a host that is not a DNS name,
/// the parent domain itself, and hosts with more than one label in front
/// of the parent (`a.b.example.test`).
#[derive(Clone)]
pub struct HostTenant {
    /// `.{parent}`, lowercase, so a suffix check is one comparison.
    dotted_parent: Box<str>,
}

impl HostTenant {
    /// Tenants are the subdomains of `parent_domain`.
    pub fn under(parent_domain: &str) -> Result<Self, InvalidParentDomain> {
        let parent = dns::dns_name(parent_domain).ok_or(InvalidParentDomain)?;
        Ok(Self {
            dotted_parent: format!(".{parent}").into(),
        })
    }

    /// The parent domain.
    pub fn parent_domain(&self) -> &str {
        &self.dotted_parent[1..]
    }

    /// The tenant named by a `host[:port]` authority.
    pub fn tenant_of(&self, authority: &str) -> Option<Arc<str>> {
        // Matched in place, whatever the case: the only allocation is the
        // returned tenant.
        // The parent was checked when this resolver was built, and is
        // matched below case-insensitively, so the host is a DNS name
        // exactly when its first label is one and it is not too long: only
        // that label's bytes need checking.
        let (host, _port) = dns::split_port(authority)?;
        if host.len() > dns::MAX_NAME_LEN {
            return None;
        }
        let label_len = host.len().checked_sub(self.dotted_parent.len())?;
        let (label, parent) = host.split_at_checked(label_len)?;
        if !parent.eq_ignore_ascii_case(&self.dotted_parent) || !dns::is_dns_label(label) {
            return None;
        }
        if label.bytes().any(|b| b.is_ascii_uppercase()) {
            Some(label.to_ascii_lowercase().into())
        } else {
            Some(label.into())
        }
    }
}

impl TenantResolver for HostTenant {
    fn resolve(&self, request: &Parts) -> Option<Arc<str>> {
        self.tenant_of(request_authority(request).ok()??)
    }
}

/// The request names its host more than one way, or unreadably: two `Host`
/// headers, a `Host` that is not visible ASCII, a target with user
/// information (`user@host`), or an absolute-form target (or HTTP/2
/// `:authority`) whose authority is not the `Host` header's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the request names its host ambiguously")]
pub struct AmbiguousHost;

/// The `host[:port]` a request is for: the authority of its target when the
/// request line is in absolute form (`GET http://acme.example.test/ …`) or
/// HTTP/2 sent `:authority` — RFC 9112 §3.2.2 makes that authority win over
/// `Host` — else its single `Host` header. `Ok(None)` when it names none.
///
/// A request that names two different hosts is refused rather than read
/// either way: a proxy or cache in front may have acted on the other one.
/// `HandoffLayer` and `SessionLayer` answer such a request 400, whatever
/// their [`TenantResolver`].
///
/// ```
/// use keystile_middleware::tenant::{AmbiguousHost, request_authority};
///
/// let (plain, _) = http::Request::get("/")
///     .header("host", "acme.localhost:3000")
///     .body(())
///     .unwrap()
///     .into_parts();
/// assert_eq!(request_authority(&plain), Ok(Some("acme.localhost:3000")));
///
/// let (absolute, _) = http::Request::get("http://globex.localhost/x")
///     .header("host", "acme.localhost")
///     .body(())
///     .unwrap()
///     .into_parts();
/// assert_eq!(request_authority(&absolute), Err(AmbiguousHost));
/// ```
pub fn request_authority(request: &Parts) -> Result<Option<&str>, AmbiguousHost> {
    let mut hosts = request.headers.get_all(HOST).iter();
    let host = match (hosts.next(), hosts.next()) {
        (None, _) => None,
        (Some(host), None) => Some(host.to_str().map_err(|_| AmbiguousHost)?),
        (Some(_), Some(_)) => return Err(AmbiguousHost),
    };
    let Some(target) = request.uri.authority().map(|a| a.as_str()) else {
        return Ok(host);
    };
    if target.contains('@') {
        return Err(AmbiguousHost);
    }
    match host {
        Some(host) if !host.eq_ignore_ascii_case(target) => Err(AmbiguousHost),
        _ => Ok(Some(target)),
    }
}

impl fmt::Debug for HostTenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostTenant")
            .field("parent_domain", &self.parent_domain())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Request;

    fn with_host(host: &[u8]) -> Parts {
        Request::get("/")
            .header(HOST, http::HeaderValue::from_bytes(host).unwrap())
            .body(())
            .unwrap()
            .into_parts()
            .0
    }

    #[test]
    fn first_label_under_the_parent_ignoring_port_and_case() {
        let r = HostTenant::under("LocalHost").unwrap();
        assert_eq!(
            r.resolve(&with_host(b"acme.localhost:3000")).as_deref(),
            Some("acme")
        );
        assert_eq!(
            r.resolve(&with_host(b"ACME.LOCALHOST")).as_deref(),
            Some("acme")
        );
        let r = HostTenant::under("example.test").unwrap();
        assert_eq!(
            r.resolve(&with_host(b"globex.example.test")).as_deref(),
            Some("globex")
        );
    }

    #[test]
    fn hosts_that_name_no_tenant_are_refused() {
        let r = HostTenant::under("localhost").unwrap();
        for host in [
            &b"localhost:3000"[..],
            b"a.b.localhost",
            b"acme.localhost.",
            b"acme.evil.test",
            b"evilacme-localhost",
            b"xlocalhost",
            b".localhost",
            b"-x.localhost",
            b"ac_me.localhost",
            b"acme.localhost:",
            b"acme.localhost:abc",
            b"acme.localhost:99999",
            b"user@acme.localhost",
            b"\xc3\xa9.localhost",
            b"",
        ] {
            assert_eq!(
                r.resolve(&with_host(host)),
                None,
                "{:?}",
                String::from_utf8_lossy(host)
            );
        }
    }

    /// What `tenant_of` answers by definition: the host, checked whole as
    /// a DNS name, is one label in front of the parent.
    fn by_definition(r: &HostTenant, authority: &str) -> Option<Arc<str>> {
        let (host, _) = dns::split_host_port(authority)?;
        let (label, parent) = host.split_once('.')?;
        parent
            .eq_ignore_ascii_case(r.parent_domain())
            .then(|| label.to_ascii_lowercase().into())
    }

    #[test]
    fn matching_in_place_agrees_with_checking_the_whole_host() {
        let r = HostTenant::under("example.test").unwrap();
        let long_label = "a".repeat(63);
        let too_long_label = "a".repeat(64);
        let long_parent = format!(
            "{}.example.test",
            ["b".repeat(63), "c".repeat(63), "d".repeat(50)].join(".")
        );
        let deep = HostTenant::under(&long_parent).unwrap();
        let labels = [
            "acme",
            "ACME",
            "a-b",
            "-a",
            "a-",
            "a_b",
            "",
            "a.b",
            "é",
            &long_label,
            &too_long_label,
        ];
        let parents = [
            "example.test",
            "EXAMPLE.test",
            "example.test.",
            "xexample.test",
            "test",
        ];
        let ports = ["", ":1", ":8080", ":0", ":", ":x"];
        for label in labels {
            for parent in parents {
                for port in ports {
                    let authority = format!("{label}.{parent}{port}");
                    assert_eq!(
                        r.tenant_of(&authority),
                        by_definition(&r, &authority),
                        "{authority}"
                    );
                }
            }
            // Near the 253-byte limit on the whole name.
            let authority = format!("{label}.{long_parent}");
            assert_eq!(
                deep.tenant_of(&authority),
                by_definition(&deep, &authority),
                "{authority}"
            );
        }
    }

    #[test]
    fn repeated_host_headers_are_refused() {
        let r = HostTenant::under("localhost").unwrap();
        let mut request = with_host(b"acme.localhost");
        request
            .headers
            .append(HOST, "globex.localhost".parse().unwrap());
        assert_eq!(r.resolve(&request), None);
    }

    #[test]
    fn falls_back_to_the_uri_authority_without_a_host_header() {
        let r = HostTenant::under("localhost").unwrap();
        let request = Request::get("http://acme.localhost:8080/x")
            .body(())
            .unwrap()
            .into_parts()
            .0;
        assert_eq!(r.resolve(&request).as_deref(), Some("acme"));
    }

    #[test]
    fn an_absolute_form_target_wins_and_must_agree_with_host() {
        let r = HostTenant::under("localhost").unwrap();
        let request = |target: &str, host: Option<&str>| {
            let mut builder = Request::get(target);
            if let Some(host) = host {
                builder = builder.header(HOST, host);
            }
            builder.body(()).unwrap().into_parts().0
        };
        let agree = request("http://acme.localhost:3000/x", Some("ACME.localhost:3000"));
        assert_eq!(r.resolve(&agree).as_deref(), Some("acme"));
        for (target, host) in [
            ("http://globex.localhost/x", Some("acme.localhost")),
            ("http://acme.localhost:3000/x", Some("acme.localhost")),
            ("http://acme.localhost/x", Some("acme.localhost:80")),
            ("http://user@acme.localhost/x", Some("acme.localhost")),
            ("http://user@acme.localhost/x", None),
        ] {
            let request = request(target, host);
            assert_eq!(
                request_authority(&request),
                Err(AmbiguousHost),
                "{target} {host:?}"
            );
            assert_eq!(r.resolve(&request), None, "{target} {host:?}");
        }
        let mut twice = request("/", Some("acme.localhost"));
        twice
            .headers
            .append(HOST, "acme.localhost".parse().unwrap());
        assert_eq!(request_authority(&twice), Err(AmbiguousHost));
        let binary = with_host(b"acme.localhost\xff");
        assert_eq!(request_authority(&binary), Err(AmbiguousHost));
        assert_eq!(request_authority(&request("/", None)), Ok(None));
    }

    #[test]
    fn invalid_parent_domains_are_refused() {
        assert!(HostTenant::under("").is_err());
        assert!(HostTenant::under(".localhost").is_err());
        assert!(HostTenant::under("local host").is_err());
    }
}
