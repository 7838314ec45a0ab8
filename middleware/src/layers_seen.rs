//! Which auth layers ran on a request.
//!
//! Every auth layer marks the request as it passes, whether or not it found
//! credentials. Extractors use the mark to tell "this route has no such
//! layer" (a programming error: 500 naming the layer) from "the layer ran and
//! found nobody" (401, or `None` for an optional extractor).
//!
//! A [`Principal`] in the extensions counts as the mark of the layer its
//! method names, so a layer that admits a request may skip
//! [`LayersSeen::mark`] and save the allocation of a second extension.
//!
//! ```
//! use http::Extensions;
//! use keystile_middleware::layers_seen::{AuthLayer, LayersSeen};
//!
//! let mut extensions = Extensions::new();
//! LayersSeen::mark(&mut extensions, AuthLayer::ApiKey);
//! assert!(LayersSeen::ran(&extensions, AuthLayer::ApiKey));
//! assert!(!LayersSeen::ran(&extensions, AuthLayer::Session));
//! assert!(LayersSeen::any(&extensions));
//! ```

use http::Extensions;
use keystile_core::identity::{AuthMethod, Principal};

/// An auth layer that inserts a [`Principal`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthLayer {
    /// `ApiKeyLayer`.
    ApiKey,
    /// `BearerLayer`.
    Bearer,
    /// `SessionLayer`.
    Session,
}

impl AuthLayer {
    /// The layer's type name, as users write it.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::ApiKey => "ApiKeyLayer",
            Self::Bearer => "BearerLayer",
            Self::Session => "SessionLayer",
        }
    }

    /// The bit of the layer that admits requests by `method`; 0 for a
    /// method no layer here inserts.
    fn bit_of(method: AuthMethod) -> u8 {
        match method {
            AuthMethod::ApiKey => Self::ApiKey.bit(),
            AuthMethod::Bearer => Self::Bearer.bit(),
            AuthMethod::Session => Self::Session.bit(),
            _ => 0,
        }
    }

    fn bit(self) -> u8 {
        match self {
            Self::ApiKey => 1,
            Self::Bearer => 2,
            Self::Session => 4,
        }
    }
}

/// The set of auth layers that ran, kept in request extensions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LayersSeen(u8);

impl LayersSeen {
    /// Records that `layer` ran on this request.
    pub fn mark(extensions: &mut Extensions, layer: AuthLayer) {
        let seen = extensions.get_or_insert_default::<LayersSeen>();
        seen.0 |= layer.bit();
    }

    /// Whether `layer` ran on this request: it marked the request, or the
    /// request carries a [`Principal`] of its method.
    pub fn ran(extensions: &Extensions, layer: AuthLayer) -> bool {
        Self::bits(extensions) & layer.bit() != 0
    }

    /// Records what `layer` found: the [`Principal`] it verified (which
    /// marks the layer as seen by itself: one extension, not two), or, when
    /// it found no credentials, the mark alone.
    pub fn record(extensions: &mut Extensions, layer: AuthLayer, found: Option<Principal>) {
        match found {
            Some(principal) => Self::admit(extensions, principal),
            None => Self::mark(extensions, layer),
        }
    }

    /// Inserts the [`Principal`] an auth layer verified, and names it (its
    /// subject and method, never the credential) on the current `tracing`
    /// span, where the access log finds it.
    pub fn admit(extensions: &mut Extensions, principal: Principal) {
        crate::access_log::record_principal(&principal);
        extensions.insert(principal);
    }

    /// Whether any auth layer ran on this request.
    pub fn any(extensions: &Extensions) -> bool {
        Self::bits(extensions) != 0
    }

    fn bits(extensions: &Extensions) -> u8 {
        let marked = extensions.get::<LayersSeen>().map_or(0, |seen| seen.0);
        let admitted = extensions
            .get::<Principal>()
            .map_or(0, |who| AuthLayer::bit_of(who.method()));
        marked | admitted
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use keystile_core::session::SessionClaims;

    use super::*;

    #[test]
    fn a_principal_counts_as_the_mark_of_its_layer() {
        let mut extensions = Extensions::new();
        assert!(!LayersSeen::any(&extensions));
        extensions.insert(Principal::from_session(Arc::new(SessionClaims {
            subject: "alice".into(),
            actor: None,
            tenant: "acme".into(),
            session_version: None,
            expires_at: 0,
        })));
        assert!(LayersSeen::ran(&extensions, AuthLayer::Session));
        assert!(!LayersSeen::ran(&extensions, AuthLayer::ApiKey));
        assert!(LayersSeen::any(&extensions));

        LayersSeen::mark(&mut extensions, AuthLayer::ApiKey);
        assert!(LayersSeen::ran(&extensions, AuthLayer::ApiKey));
        assert!(LayersSeen::ran(&extensions, AuthLayer::Session));
    }
}
