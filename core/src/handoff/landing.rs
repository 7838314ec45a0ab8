//! Same-origin paths: where a handoff may land, and where it is served.

use std::fmt;

/// Longest path accepted, in bytes.
pub const MAX_PATH_LEN: usize = 2048;

/// A path on the current origin, safe to put in a `Location` header.
///
/// Only relative references that begin with exactly one `/` are accepted.
/// Refused: anything not starting with `/`, `//host` (scheme-relative: a
/// browser leaves the origin), any backslash (browsers read `/\host` as
/// `//host`), and any byte outside visible ASCII (control characters could
/// split headers; spaces and non-ASCII are never needed once
/// percent-encoded).
///
/// ```
/// use keystile_core::handoff::LandingPath;
///
/// assert!(LandingPath::parse("/admin/?tab=users").is_ok());
/// for bad in ["//evil.test", "https://evil.test", "/\\evil.test", "admin", "/a\r\nb", ""] {
///     assert!(LandingPath::parse(bad).is_err(), "{bad:?}");
/// }
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct LandingPath(pub(super) Box<str>);

/// A path that is not a same-origin path. Its `Display` never repeats the
/// refused text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "not a same-origin path: it must start with a single `/` and be visible ASCII without backslashes"
)]
pub struct NotSameOrigin;

impl LandingPath {
    /// `path` if it is a same-origin path.
    pub fn parse(path: &str) -> Result<Self, NotSameOrigin> {
        let bytes = path.as_bytes();
        let valid = bytes.len() <= MAX_PATH_LEN
            && bytes.first() == Some(&b'/')
            && bytes.get(1) != Some(&b'/')
            && bytes.iter().all(|b| b.is_ascii_graphic() && *b != b'\\');
        if valid {
            Ok(Self(path.into()))
        } else {
            Err(NotSameOrigin)
        }
    }

    /// The root path, `/`.
    pub fn root() -> Self {
        Self("/".into())
    }

    /// The path.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the path carries a query (`?`) or fragment (`#`).
    pub fn has_query_or_fragment(&self) -> bool {
        self.0.contains(['?', '#'])
    }
}

impl std::str::FromStr for LandingPath {
    type Err = NotSameOrigin;

    fn from_str(path: &str) -> Result<Self, Self::Err> {
        Self::parse(path)
    }
}

impl fmt::Display for LandingPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for LandingPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LandingPath({:?})", &*self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_redirect_shapes_are_refused() {
        for bad in [
            "",
            "admin",
            "//evil.test",
            "///evil.test",
            "/\\evil.test",
            "\\\\evil.test",
            "https://evil.test/",
            "javascript:alert(1)",
            "/a b",
            "/a\tb",
            "/a\0",
            "/a\r\nSet-Cookie: x=1",
            "/é",
        ] {
            assert_eq!(LandingPath::parse(bad), Err(NotSameOrigin), "{bad:?}");
        }
        assert_eq!(
            LandingPath::parse(&format!("/{}", "a".repeat(MAX_PATH_LEN))),
            Err(NotSameOrigin)
        );
    }

    #[test]
    fn ordinary_paths_are_kept_verbatim() {
        for good in ["/", "/admin/", "/a/b?c=d&e=%2F#top", "/%2F%2Fevil"] {
            assert_eq!(LandingPath::parse(good).unwrap().as_str(), good);
        }
    }
}
