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

/// An immutable set of scopes; cloning is a reference-count increment, and
/// cloning no scopes touches no memory at all.
//
// No scopes is `None`, never an empty `Arc`: std hands out every empty
// `Arc<[T]>` from one static whose reference count all threads would then
// increment and decrement on every request.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Scopes(Option<Arc<[Box<str>]>>);

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
        self.items()
            .iter()
            .any(|s| &**s == needed || &**s == WILDCARD)
    }

    /// Whether these scopes grant every one of `needed`.
    pub fn allows_all<'a>(&self, needed: impl IntoIterator<Item = &'a str>) -> bool {
        needed.into_iter().all(|n| self.allows(n))
    }

    /// The scopes, in the order given.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.items().iter().map(|s| &**s)
    }

    /// Number of scopes.
    pub fn len(&self) -> usize {
        self.items().len()
    }

    /// Whether there are no scopes.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    fn items(&self) -> &[Box<str>] {
        self.0.as_deref().unwrap_or_default()
    }
}

impl<S: AsRef<str>> FromIterator<S> for Scopes {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Self {
        let mut out: Vec<Box<str>> = Vec::new();
        for s in iter {
            // SP and HTAB only: a scope behind a no-break space is another
            // scope, never this one with the space trimmed away.
            let s = s.as_ref().trim_matches([' ', '\t']);
            if !s.is_empty() && !out.iter().any(|o| &**o == s) {
                out.push(s.into());
            }
        }
        Self((!out.is_empty()).then(|| out.into()))
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
    fn only_sp_and_htab_are_blanks_around_a_scope() {
        let s: Scopes = [" a:read\t", "\u{a0}admin", "admin\u{3000}"]
            .into_iter()
            .collect();
        assert!(s.allows("a:read"));
        assert!(
            !s.allows("admin"),
            "a no-break or ideographic space is part of the scope"
        );
        let oauth = Scopes::parse_oauth("reports:read \u{a0}admin");
        assert!(!oauth.allows("admin"));
        assert!(oauth.allows("\u{a0}admin"));
    }

    #[test]
    fn no_scopes_is_one_value_however_it_is_made() {
        let empty: Scopes = serde_json::from_str("[]").unwrap();
        let made = [
            Scopes::parse(""),
            Scopes::parse(" , \t"),
            Scopes::parse_oauth("  "),
            [""].into_iter().collect(),
            empty,
        ];
        for scopes in made {
            assert_eq!(scopes, Scopes::none());
            assert!(scopes.is_empty());
            assert_eq!(scopes.len(), 0);
            assert_eq!(scopes.iter().count(), 0);
        }
        let some = Scopes::parse("a b");
        assert!(!some.is_empty());
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
