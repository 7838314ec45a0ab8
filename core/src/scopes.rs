//! Scopes: what a credential may do.
//!
//! A scope is granted by an exact match or by the wildcard `*`, which grants
//! every scope. Scopes serialize as a JSON list and parse from the
//! space- or comma-separated form used in OAuth `scope` claims and on the
//! command line.
//!
//! ```
//! use keystile_core::scopes::Scopes;
//!
//! let scopes = Scopes::parse("reports:read, reports:write");
//! assert!(scopes.allows("reports:read"));
//! assert!(!scopes.allows("admin"));
//! assert!(Scopes::parse("*").allows("admin"));
//! ```

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The wildcard scope that grants every scope.
pub const WILDCARD: &str = "*";

/// An immutable set of scopes; cloning is a reference-count increment.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Scopes(Arc<[Box<str>]>);

impl Scopes {
    /// No scopes.
    pub fn none() -> Self {
        Self::default()
    }

    /// Parses space- or comma-separated scopes; empty items are dropped and
    /// duplicates kept once.
    pub fn parse(text: &str) -> Self {
        text.split([' ', ',', '\t', '\n'])
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// Parses an OAuth `scope` value (RFC 6749 §3.3): scope tokens separated
    /// by spaces only. A comma is part of a token there, so
    /// `"reports:read,admin"` is ONE scope, never two.
    pub fn parse_oauth(text: &str) -> Self {
        text.split(' ').filter(|s| !s.is_empty()).collect()
    }

    /// Whether these scopes grant `needed` (exactly, or through `*`).
    pub fn allows(&self, needed: &str) -> bool {
        self.0.iter().any(|s| &**s == needed || &**s == WILDCARD)
    }

    /// Whether these scopes grant every one of `needed`.
    pub fn allows_all<'a>(&self, needed: impl IntoIterator<Item = &'a str>) -> bool {
        needed.into_iter().all(|n| self.allows(n))
    }

    /// The scopes, in the order given.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|s| &**s)
    }

    /// Number of scopes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no scopes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<S: AsRef<str>> FromIterator<S> for Scopes {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Self {
        let mut out: Vec<Box<str>> = Vec::new();
        for s in iter {
            let s = s.as_ref().trim();
            if !s.is_empty() && !out.iter().any(|o| &**o == s) {
                out.push(s.into());
            }
        }
        Self(out.into())
    }
}

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(s)?;
        }
        Ok(())
    }
}

impl Serialize for Scopes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for Scopes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Vec::<String>::deserialize(deserializer)?
            .into_iter()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_match_or_wildcard() {
        let s = Scopes::parse("a:read b:write");
        assert!(s.allows("a:read"));
        assert!(!s.allows("a:write"));
        assert!(!s.allows("a"));
        assert!(!Scopes::none().allows("a:read"));
        assert!(Scopes::parse("*").allows("anything"));
        assert!(s.allows_all(["a:read", "b:write"]));
        assert!(!s.allows_all(["a:read", "c"]));
    }

    #[test]
    fn parse_drops_empties_and_duplicates() {
        let s = Scopes::parse(" a,,b a ");
        assert_eq!(s.iter().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(s.to_string(), "a b");
    }

    #[test]
    fn oauth_scope_values_split_on_spaces_only() {
        let s = Scopes::parse_oauth("reports:read,admin  b");
        assert_eq!(s.iter().collect::<Vec<_>>(), ["reports:read,admin", "b"]);
        assert!(!s.allows("admin"));
        assert!(!s.allows("reports:read"));
    }

    #[test]
    fn serializes_as_a_list() {
        let s = Scopes::parse("a b");
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, r#"["a","b"]"#);
        assert_eq!(serde_json::from_str::<Scopes>(&json).unwrap(), s);
    }
}
