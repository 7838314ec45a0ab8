//! Which auth layers ran on a request.
//!
//! Every auth layer marks the request as it passes, whether or not it found
//! credentials. Extractors use the mark to tell "this route has no such
//! layer" (a programming error: 500 naming the layer) from "the layer ran and
//! found nobody" (401, or `None` for an optional extractor).
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

/// An auth layer that inserts a [`Principal`](keystile_core::Principal).
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

    /// Whether `layer` ran on this request.
    pub fn ran(extensions: &Extensions, layer: AuthLayer) -> bool {
        extensions
            .get::<LayersSeen>()
            .is_some_and(|seen| seen.0 & layer.bit() != 0)
    }

    /// Whether any auth layer ran on this request.
    pub fn any(extensions: &Extensions) -> bool {
        extensions
            .get::<LayersSeen>()
            .is_some_and(|seen| seen.0 != 0)
    }
}
