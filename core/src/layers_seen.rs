//! Which kinds of authentication ran on a request.
//!
//! Every auth layer (keystile's `AuthLayer`) marks the request with the
//! [`AuthMethod`]s its authenticator admits by, whether or not it found
//! credentials. Extractors use the mark to tell "this route has no such
//! layer" (a programming error: 500 naming the layer) from "the layer ran
//! and found nobody" (401, or `None` for an optional extractor). Custom
//! kinds ([`AuthMethod::Custom`]) are marked the same way.
//!
//! A [`Principal`] in the extensions counts as the mark of its method, so a
//! layer that admits a request needs no second extension.
//!
//! ```
//! use http::Extensions;
//! use keystile_core::identity::AuthMethod;
//! use keystile_core::layers_seen::LayersSeen;
//!
//! let mut extensions = Extensions::new();
//! LayersSeen::mark(&mut extensions, AuthMethod::ApiKey);
//! assert!(LayersSeen::ran(&extensions, AuthMethod::ApiKey));
//! assert!(!LayersSeen::ran(&extensions, AuthMethod::Session));
//! assert!(LayersSeen::any(&extensions));
//! ```

use crate::identity::{AuthMethod, Principal};
use http::Extensions;

/// The authentication methods whose layers ran, kept in request extensions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LayersSeen(Vec<AuthMethod>);

impl LayersSeen {
    /// Adds `method` to this set.
    pub fn insert(&mut self, method: AuthMethod) {
        if !self.0.contains(&method) {
            self.0.push(method);
        }
    }

    /// The methods in this set.
    pub fn methods(&self) -> &[AuthMethod] {
        &self.0
    }

    /// Records on `extensions` that a layer admitting by `method` ran.
    pub fn mark(extensions: &mut Extensions, method: AuthMethod) {
        extensions
            .get_or_insert_default::<LayersSeen>()
            .insert(method);
    }

    /// Records on `extensions` every method of `self`.
    pub fn mark_all(&self, extensions: &mut Extensions) {
        let seen = extensions.get_or_insert_default::<LayersSeen>();
        for method in &self.0 {
            seen.insert(*method);
        }
    }

    /// Whether a layer admitting by `method` ran on this request: it marked
    /// the request, or the request carries a [`Principal`] of `method`.
    pub fn ran(extensions: &Extensions, method: AuthMethod) -> bool {
        extensions
            .get::<Principal>()
            .is_some_and(|who| who.method() == method)
            || extensions
                .get::<LayersSeen>()
                .is_some_and(|seen| seen.0.contains(&method))
    }

    /// Whether any auth layer ran on this request.
    pub fn any(extensions: &Extensions) -> bool {
        extensions.get::<Principal>().is_some()
            || extensions
                .get::<LayersSeen>()
                .is_some_and(|seen| !seen.0.is_empty())
    }

    /// The layer a user adds for `method`, as error messages name it.
    pub fn layer_name(method: AuthMethod) -> &'static str {
        match method {
            AuthMethod::ApiKey => "ApiKeyLayer",
            AuthMethod::Bearer => "BearerLayer",
            AuthMethod::Session => "SessionLayer",
            _ => "AuthLayer",
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::session::SessionClaims;

    use super::*;

    #[test]
    fn a_principal_counts_as_the_mark_of_its_method() {
        let mut extensions = Extensions::new();
        assert!(!LayersSeen::any(&extensions));
        extensions.insert(Principal::from_session(Arc::new(SessionClaims {
            subject: "alice".into(),
            actor: None,
            tenant: "acme".into(),
            session_version: None,
            expires_at: 0,
        })));
        assert!(LayersSeen::ran(&extensions, AuthMethod::Session));
        assert!(!LayersSeen::ran(&extensions, AuthMethod::ApiKey));
        assert!(LayersSeen::any(&extensions));

        LayersSeen::mark(&mut extensions, AuthMethod::ApiKey);
        assert!(LayersSeen::ran(&extensions, AuthMethod::ApiKey));
        assert!(LayersSeen::ran(&extensions, AuthMethod::Session));
    }

    #[test]
    fn custom_methods_are_marked_like_built_in_ones() {
        let mut extensions = Extensions::new();
        LayersSeen::mark(&mut extensions, AuthMethod::Custom("mtls"));
        assert!(LayersSeen::ran(&extensions, AuthMethod::Custom("mtls")));
        assert!(!LayersSeen::ran(&extensions, AuthMethod::Custom("hmac")));
        extensions.insert(Principal::from_custom("hmac", "robot", ()));
        assert!(LayersSeen::ran(&extensions, AuthMethod::Custom("hmac")));
    }
}
