//! The rejection every keystile extractor returns.

use axum::response::{IntoResponse, Response};
use keystile_core::identity::AuthMethod;
use keystile_core::{Reason, Rejection};
use keystile_middleware::layers_seen::LayersSeen;
use keystile_middleware::response::rejection_response;

/// Why an extractor refused: a [`Rejection`] that renders through the shared
/// problem+json conventions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthRejection(pub Rejection);

impl AuthRejection {
    /// The 500 for an extractor used on a route without its layer; the
    /// detail names the layer to add.
    pub fn missing_layer(extractor: &'static str, layers: &'static str) -> Self {
        let detail = format!(
            "the {extractor} extractor needs {layers} on this route; add it with \
             `.route_layer(...)` or `.layer(...)`"
        );
        Self(Rejection::new(Reason::MissingLayer, extractor).with_detail(detail))
    }

    /// The 500 for an extractor that needs exactly one layer.
    pub fn missing(extractor: &'static str, method: AuthMethod) -> Self {
        Self::missing_layer(extractor, LayersSeen::layer_name(method))
    }

    /// The 401 for a required extractor when its layer ran in optional mode
    /// and found no credentials.
    pub fn unauthenticated(extractor: &'static str) -> Self {
        Self(Rejection::new(Reason::MissingCredentials, extractor))
    }
}

impl From<Rejection> for AuthRejection {
    fn from(rejection: Rejection) -> Self {
        Self(rejection)
    }
}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        rejection_response(self.0)
    }
}

impl std::fmt::Display for AuthRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for AuthRejection {}
