//! [`CorsPolicy`]: tower-http's `CorsLayer`, built from an explicit origin
//! allow-list and checked when it is built.
//!
//! The CORS protocol itself is tower-http's; keystile adds the checks a
//! security review would ask for, at build time instead of at the first
//! cross-origin request:
//!
//! - origins are listed one by one, each a serialized origin
//!   (`https://app.example.test`, `http://localhost:3000`: scheme, host, an
//!   optional port; no path, no trailing slash, no wildcard) and lowercased
//!   as browsers send them;
//! - credentials (cookies, `Authorization`) are allowed only with explicit
//!   methods and headers — never beside a wildcard;
//! - responses carry `Vary: Origin` (tower-http adds it, with the
//!   preflight request headers), so a cache never hands one origin's answer
//!   to another.
//!
//! **Composition with the auth layers.** A preflight (`OPTIONS` with
//! `Access-Control-Request-Method`) carries no credentials by design, so
//! the CORS layer must sit OUTSIDE the auth layers and answer it before
//! they run: `.layer(auth).layer(cors)` (axum: last added runs first).
//! The actual request then goes through the auth layers as any other.
//!
//! ```
//! use axum::{Router, routing::get};
//! use http::Method;
//! use keystile_middleware::cors::{CorsError, CorsPolicy};
//!
//! let cors = CorsPolicy::new()
//!     .allow_origins(["https://app.example.test", "http://localhost:3000"])
//!     .allow_methods([Method::GET, Method::POST])
//!     .allow_headers([http::header::AUTHORIZATION, http::header::CONTENT_TYPE])
//!     .allow_credentials()
//!     .build()?;
//! let app: Router = Router::new().route("/api", get(|| async { "hi" })).layer(cors);
//!
//! assert!(matches!(
//!     CorsPolicy::new().allow_origins(["*"]).build(),
//!     Err(CorsError::InvalidOrigin(_))
//! ));
//! # Ok::<(), CorsError>(())
//! ```

use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// A CORS configuration that cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CorsError {
    /// No origin was allowed.
    #[error("a CORS policy needs at least one allowed origin")]
    NoOrigins,
    /// An origin is not `scheme://host[:port]` (a wildcard, a path, a
    /// trailing slash, whitespace).
    #[error("{0:?} is not a serialized origin such as `https://app.example.test`")]
    InvalidOrigin(String),
    /// Credentials were allowed without explicit methods or headers.
    #[error("allow_credentials needs explicit methods and headers (never a wildcard)")]
    CredentialsWithoutExplicitLists,
}

/// Builds a checked [`CorsLayer`]; see the [module docs](self).
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct CorsPolicy {
    origins: Vec<String>,
    methods: Vec<Method>,
    headers: Vec<HeaderName>,
    expose: Vec<HeaderName>,
    credentials: bool,
    max_age: Option<Duration>,
}

impl CorsPolicy {
    /// No origin allowed yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Allows requests from these origins.
    pub fn allow_origins<I, S>(mut self, origins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.origins.extend(origins.into_iter().map(Into::into));
        self
    }

    /// Allows these methods (default: `GET`, `HEAD`, `POST`).
    pub fn allow_methods(mut self, methods: impl IntoIterator<Item = Method>) -> Self {
        self.methods.extend(methods);
        self
    }

    /// Allows these request headers.
    pub fn allow_headers(mut self, headers: impl IntoIterator<Item = HeaderName>) -> Self {
        self.headers.extend(headers);
        self
    }

    /// Lets scripts read these response headers.
    pub fn expose_headers(mut self, headers: impl IntoIterator<Item = HeaderName>) -> Self {
        self.expose.extend(headers);
        self
    }

    /// Sends cookies and `Authorization` cross-origin
    /// (`Access-Control-Allow-Credentials: true`).
    pub fn allow_credentials(mut self) -> Self {
        self.credentials = true;
        self
    }

    /// Lets browsers cache a preflight answer this long.
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = Some(max_age);
        self
    }

    /// The layer, or the first mistake in the policy.
    pub fn build(self) -> Result<CorsLayer, CorsError> {
        if self.origins.is_empty() {
            return Err(CorsError::NoOrigins);
        }
        let origins = self
            .origins
            .iter()
            .map(|origin| checked_origin(origin))
            .collect::<Result<Vec<_>, _>>()?;
        if self.credentials && self.headers.is_empty() && self.methods.is_empty() {
            return Err(CorsError::CredentialsWithoutExplicitLists);
        }
        let methods = if self.methods.is_empty() {
            vec![Method::GET, Method::HEAD, Method::POST]
        } else {
            self.methods
        };
        let mut layer = CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods(methods)
            .allow_headers(self.headers)
            .expose_headers(self.expose)
            .allow_credentials(self.credentials);
        if let Some(max_age) = self.max_age {
            layer = layer.max_age(max_age);
        }
        Ok(layer)
    }
}

/// `origin`, checked as a serialized origin and lowercased.
fn checked_origin(origin: &str) -> Result<HeaderValue, CorsError> {
    let invalid = || CorsError::InvalidOrigin(origin.to_owned());
    let lower = origin.to_ascii_lowercase();
    let (scheme, authority) = lower.split_once("://").ok_or_else(invalid)?;
    let scheme_ok = !scheme.is_empty()
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
    let authority_ok = !authority.is_empty()
        && authority
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
    if !scheme_ok || !authority_ok || authority.starts_with(':') || authority.ends_with(':') {
        return Err(invalid());
    }
    HeaderValue::from_str(&lower).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_must_be_serialized_origins() {
        for good in [
            "https://app.example.test",
            "http://localhost:3000",
            "http://[::1]:8080",
        ] {
            assert!(checked_origin(good).is_ok(), "{good}");
        }
        assert_eq!(
            checked_origin("HTTPS://App.Example.Test").unwrap(),
            "https://app.example.test"
        );
        for bad in [
            "*",
            "https://*.example.test",
            "https://app.example.test/",
            "https://app.example.test/path",
            "app.example.test",
            "https://",
            "https://app.example.test:",
            "https://app example.test",
            "null",
        ] {
            assert_eq!(
                checked_origin(bad),
                Err(CorsError::InvalidOrigin(bad.into())),
                "{bad}"
            );
        }
    }

    #[test]
    fn credentials_need_explicit_lists_and_origins_are_required() {
        assert_eq!(CorsPolicy::new().build().unwrap_err(), CorsError::NoOrigins);
        let bare = CorsPolicy::new()
            .allow_origins(["https://app.example.test"])
            .allow_credentials()
            .build();
        assert_eq!(
            bare.unwrap_err(),
            CorsError::CredentialsWithoutExplicitLists
        );
        assert!(
            CorsPolicy::new()
                .allow_origins(["https://app.example.test"])
                .allow_methods([Method::GET])
                .allow_credentials()
                .build()
                .is_ok()
        );
    }
}
