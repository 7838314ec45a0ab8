//! Turning a [`Rejection`] into an axum response.
//!
//! The status, challenge, problem+json body and `tracing` event all come from
//! [`Rejection::into_response`]; this only swaps the body type.
//!
//! ```
//! use keystile_core::{Reason, Rejection};
//! use keystile_middleware::response::rejection_response;
//!
//! let response = rejection_response(Rejection::new(Reason::MissingCredentials, "docs"));
//! assert_eq!(response.status(), 401);
//! ```

use axum::body::Body;
use axum::response::Response;
use keystile_core::Rejection;

/// The axum response for `rejection`.
pub fn rejection_response(rejection: Rejection) -> Response {
    rejection.into_response().map(Body::from)
}
