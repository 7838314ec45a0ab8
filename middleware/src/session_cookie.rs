//! The session cookie's name and attributes, shared by `HandoffLayer`
//! (which sets it) and `SessionLayer` (which reads it).
//!
//! The cookie is always host-only: it never has a `Domain` attribute, so
//! the browser sends it back only to the exact host that set it — a session
//! for `acme.localhost` never reaches `globex.localhost`. It has `Path=/`,
//! `HttpOnly`, `SameSite=Lax` (Lax, not Strict: the handoff lands through a
//! redirect chain that began on another site, and a Strict cookie would not
//! be sent on that first navigation), and `Max-Age` equal to the session
//! lifetime. Over https it is also `Secure` and named with the `__Host-`
//! prefix, which browsers only accept from a secure, host-only, `Path=/`
//! cookie, so no sibling subdomain can plant one.
//!
//! ```
//! use std::time::Duration;
//! use keystile_middleware::session_cookie::SessionCookie;
//!
//! let cookie = SessionCookie::https().ttl(Duration::from_secs(1800)).unwrap();
//! let set = cookie.build("signed-value".to_owned()).to_string();
//! assert_eq!(
//!     set,
//!     "__Host-keystile_session=signed-value; HttpOnly; SameSite=Lax; Secure; Path=/; Max-Age=1800"
//! );
//! assert_eq!(SessionCookie::http().name(), "keystile_session");
//! ```

use std::time::Duration;

use cookie::{Cookie, SameSite};
use http::HeaderMap;
use http::header::COOKIE;
use keystile_core::session::{DEFAULT_SESSION_TTL, InvalidSessionTtl, checked_session_ttl};

/// The cookie name over plain http.
pub const SESSION_COOKIE: &str = "keystile_session";

/// The cookie name over https.
pub const SECURE_SESSION_COOKIE: &str = "__Host-keystile_session";

/// The session cookie settings. Give `HandoffLayer` and `SessionLayer` the
/// same value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionCookie {
    secure: bool,
    pub(crate) ttl: Duration,
}

/// A request carried the session cookie more than once, or a session
/// cookie whose value is not text. Refused rather than guessing which one
/// counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AmbiguousCookie;

impl SessionCookie {
    /// For a deployment served over plain http (local development):
    /// `keystile_session`, not `Secure`.
    pub fn http() -> Self {
        Self {
            secure: false,
            ttl: DEFAULT_SESSION_TTL,
        }
    }

    /// For a deployment served over https: `__Host-keystile_session`,
    /// `Secure`.
    pub fn https() -> Self {
        Self {
            secure: true,
            ttl: DEFAULT_SESSION_TTL,
        }
    }

    /// Sessions last `ttl` (whole seconds, 1 s to 400 days; default 1 h).
    pub fn ttl(mut self, ttl: Duration) -> Result<Self, InvalidSessionTtl> {
        self.ttl = checked_session_ttl(ttl)?;
        Ok(self)
    }

    /// The cookie's name.
    pub fn name(&self) -> &'static str {
        if self.secure {
            SECURE_SESSION_COOKIE
        } else {
            SESSION_COOKIE
        }
    }

    /// Whether the cookie is `Secure` (https).
    pub fn is_secure(&self) -> bool {
        self.secure
    }

    /// The `Set-Cookie` cookie carrying `value`.
    pub fn build(&self, value: String) -> Cookie<'static> {
        let max_age = i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX);
        Cookie::build((self.name(), value))
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(self.secure)
            .path("/")
            .max_age(cookie::time::Duration::seconds(max_age))
            .build()
    }

    /// The session cookie's value in the request's `Cookie` headers.
    ///
    /// Names are compared byte for byte after dropping only the blanks
    /// RFC 6265 allows around a pair (SP and HTAB): a cookie whose name
    /// merely looks like the session cookie's (say, behind a no-break
    /// space) is someone else's cookie, never this one. Every pair with the
    /// session cookie's name counts, whatever its value: a second one, even
    /// one that is not text, makes the request ambiguous.
    pub fn find<'h>(&self, headers: &'h HeaderMap) -> Result<Option<&'h str>, AmbiguousCookie> {
        find_cookie(headers, self.name())
    }
}

/// The value of the cookie named `name` in the request's `Cookie` headers,
/// read as [`SessionCookie::find`] reads the session cookie: names compared
/// byte for byte, a second cookie of that name (or one that is not text)
/// refused as ambiguous.
pub fn find_cookie<'h>(
    headers: &'h HeaderMap,
    name: &str,
) -> Result<Option<&'h str>, AmbiguousCookie> {
    let name = name.as_bytes();
    let mut found: Option<&'h [u8]> = None;
    for header in headers.get_all(COOKIE) {
        // Split on bytes: another application's cookie with a non-ASCII
        // value must not make every request unreadable (a lock-out any
        // sibling subdomain could plant).
        let mut rest = header.as_bytes();
        while !rest.is_empty() {
            let end = memchr::memchr(b';', rest).unwrap_or(rest.len());
            let pair = &rest[..end];
            rest = rest.get(end + 1..).unwrap_or_default();
            // `name=value`; pairs without `=` are someone else's. Only SP
            // and HTAB are trimmed (RFC 6265 §5.2): `trim_ascii`'s other
            // characters (CR, LF, FF) cannot be in a header value.
            let Some(eq) = memchr::memchr(b'=', pair) else {
                continue;
            };
            if pair[..eq].trim_ascii() != name {
                continue;
            }
            if found.is_some() {
                return Err(AmbiguousCookie);
            }
            found = Some(pair[eq + 1..].trim_ascii());
        }
    }
    match found {
        None => Ok(None),
        Some([]) => Ok(None),
        Some(value) => std::str::from_utf8(value)
            .map(Some)
            .map_err(|_| AmbiguousCookie),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(COOKIE, v.parse().unwrap());
        }
        map
    }

    #[test]
    fn http_cookie_is_host_only_lax_http_only() {
        let c = SessionCookie::http().build("v".into());
        assert_eq!(c.name(), "keystile_session");
        assert_eq!(c.domain(), None);
        assert_eq!(c.path(), Some("/"));
        assert_eq!(c.http_only(), Some(true));
        assert_eq!(c.same_site(), Some(SameSite::Lax));
        assert_eq!(c.secure(), Some(false));
        assert_eq!(c.max_age(), Some(cookie::time::Duration::seconds(3600)));
    }

    #[test]
    fn finds_the_cookie_among_others_and_refuses_duplicates() {
        let c = SessionCookie::http();
        let h = headers(&["a=1; keystile_session=abc.def; b=2"]);
        assert_eq!(c.find(&h), Ok(Some("abc.def")));
        assert_eq!(c.find(&headers(&["a=1"])), Ok(None));
        // Blanks around name and value are trimmed, as the cookie crate does.
        assert_eq!(
            c.find(&headers(&["a=1;  keystile_session = abc.def ;b"])),
            Ok(Some("abc.def"))
        );
        // A pair without `=` is no cookie; a session value that is not
        // text cannot be read, and is refused rather than skipped.
        assert_eq!(c.find(&headers(&["keystile_session"])), Ok(None));
        let mut bad = HeaderMap::new();
        bad.append(
            COOKIE,
            http::HeaderValue::from_bytes(b"keystile_session=\xff\xfe; x=1").unwrap(),
        );
        assert_eq!(c.find(&bad), Err(AmbiguousCookie));
        assert_eq!(c.find(&headers(&["keystile_session="])), Ok(None));
        assert_eq!(
            c.find(&headers(&["keystile_session=a", "keystile_session=b"])),
            Err(AmbiguousCookie)
        );
        assert_eq!(
            c.find(&headers(&["keystile_session=a; keystile_session=b"])),
            Err(AmbiguousCookie)
        );
        // Another cookie with bytes that are not visible ASCII is skipped.
        let mut odd = HeaderMap::new();
        odd.append(
            COOKIE,
            http::HeaderValue::from_bytes(b"theme=caf\xc3\xa9; keystile_session=abc.def").unwrap(),
        );
        odd.append(COOKIE, http::HeaderValue::from_bytes(b"x=\xff").unwrap());
        assert_eq!(c.find(&odd), Ok(Some("abc.def")));
        // Over https only the __Host- name counts.
        assert_eq!(SessionCookie::https().find(&h), Ok(None));
    }

    fn raw(value: &[u8]) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.append(COOKIE, http::HeaderValue::from_bytes(value).unwrap());
        map
    }

    #[test]
    fn names_match_byte_for_byte_after_sp_and_htab_only() {
        let c = SessionCookie::http();
        assert_eq!(
            c.find(&raw(b"\tkeystile_session\t=\tabc\t")),
            Ok(Some("abc"))
        );
        // Unicode whitespace (no-break space, ideographic space, line
        // separator) is part of the name, and so is case.
        for name in [
            &b"\xc2\xa0keystile_session"[..],
            b"keystile_session\xc2\xa0",
            b"\xe3\x80\x80keystile_session",
            b"\xe2\x80\xa8keystile_session",
            b"KEYSTILE_SESSION",
        ] {
            let mut value = name.to_vec();
            value.extend_from_slice(b"=abc");
            assert_eq!(c.find(&raw(&value)), Ok(None), "{name:?}");
            // ... and so not a duplicate of the real one.
            value.extend_from_slice(b"; keystile_session=real");
            assert_eq!(c.find(&raw(&value)), Ok(Some("real")), "{name:?}");
        }
    }

    #[test]
    fn a_duplicate_that_is_not_text_is_still_a_duplicate() {
        let c = SessionCookie::http();
        for value in [
            &b"keystile_session=\xff\xfe; keystile_session=abc"[..],
            b"keystile_session=abc; keystile_session=\xff\xfe",
            b"keystile_session=; keystile_session=abc",
        ] {
            assert_eq!(c.find(&raw(value)), Err(AmbiguousCookie), "{value:?}");
        }
    }

    #[test]
    fn ttl_is_bounded() {
        assert!(SessionCookie::http().ttl(Duration::ZERO).is_err());
        assert!(
            SessionCookie::http()
                .ttl(Duration::from_secs(401 * 86_400))
                .is_err()
        );
    }
}
