//! The [`Session`] extractor: the session cookie `SessionLayer` verified.
//!
//! `Session` derefs to the verified
//! [`keystile_core::session::SessionClaims`]: subject,
//! actor (set when an operator is impersonating), tenant, session version
//! and expiry.
//!
//! - With `SessionLayer` on the route: `Session` is the session, or 401 when
//!   the layer is optional and no cookie came; `Option<Session>` is `None`
//!   then.
//! - When another credential authenticated the request (an auth chain),
//!   `Session` is 401 and `Option<Session>` is `None`.
//! - Without `SessionLayer`: 500 whose detail names `SessionLayer` — a
//!   programming error, never a silent 401.
//!
//! ```
//! use axum::{Router, routing::get};
//! use keystile_core::keys::Keyring;
//! use keystile_extractors::Session;
//! use keystile_middleware::{HostTenant, SessionCookies, SessionLayer};
//!
//! async fn admin(session: Session) -> String {
//!     match &session.actor {
//!         Some(actor) => format!("{} (impersonated by {actor})", session.subject),
//!         None => session.subject.to_string(),
//!     }
//! }
//!
//! async fn home(session: Option<Session>) -> &'static str {
//!     if session.is_some() { "welcome back" } else { "welcome" }
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let keyring = Keyring::generate()?;
//! let sessions = SessionLayer::new(SessionCookies::new(keyring, HostTenant::under("localhost")?));
//! let app: Router = Router::new()
//!     .route("/admin/", get(admin))
//!     .route_layer(sessions.clone())
//!     .route("/", get(home))
//!     .route_layer(sessions.optional());
//! # Ok(()) }
//! ```

use std::ops::Deref;
use std::sync::Arc;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use http::request::Parts;
use keystile_core::identity::AuthMethod;
use keystile_core::identity::Principal;
use keystile_core::layers_seen::LayersSeen;
use keystile_core::session::SessionClaims;

use keystile_core::rejection::Rejection;

/// The verified session of the request.
#[derive(Debug, Clone)]
pub struct Session(pub Arc<SessionClaims>);

impl Deref for Session {
    type Target = SessionClaims;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        <Self as OptionalFromRequestParts<S>>::from_request_parts(parts, state)
            .await?
            .ok_or_else(|| Rejection::unauthenticated("Session"))
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Session {
    type Rejection = Rejection;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        if !LayersSeen::ran(&parts.extensions, AuthMethod::Session) {
            return Err(Rejection::missing_layer(
                "Session",
                LayersSeen::layer_name(AuthMethod::Session),
            ));
        }
        Ok(parts
            .extensions
            .get::<Principal>()
            .and_then(Principal::session)
            .map(|claims| Self(Arc::clone(claims))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    async fn required(session: Session) -> String {
        session.subject.to_string()
    }

    async fn optional(session: Option<Session>) -> String {
        session.map_or_else(|| "nobody".to_owned(), |s| s.subject.to_string())
    }

    fn app() -> Router {
        Router::new()
            .route("/required", get(required))
            .route("/optional", get(optional))
    }

    fn claims() -> Arc<SessionClaims> {
        Arc::new(SessionClaims {
            subject: "admin@acme".into(),
            actor: None,
            tenant: "acme".into(),
            session_version: None,
            expires_at: 0,
        })
    }

    async fn send(request: Request<Body>) -> (StatusCode, String) {
        let response = app().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    fn request(path: &str, layer_ran: bool, principal: Option<Principal>) -> Request<Body> {
        let mut request = Request::get(path).body(Body::empty()).unwrap();
        if layer_ran {
            LayersSeen::mark(request.extensions_mut(), AuthMethod::Session);
        }
        if let Some(p) = principal {
            request.extensions_mut().insert(p);
        }
        request
    }

    #[tokio::test]
    async fn without_session_layer_is_500_naming_it() {
        for path in ["/required", "/optional"] {
            let (status, body) = send(request(path, false, None)).await;
            assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
            assert!(body.contains("SessionLayer"), "{body}");
            assert!(body.contains("missing_layer"), "{body}");
        }
    }

    #[tokio::test]
    async fn with_a_session_both_forms_yield_it() {
        let p = Principal::from_session(claims());
        assert_eq!(
            send(request("/required", true, Some(p.clone()))).await.1,
            "admin@acme"
        );
        assert_eq!(
            send(request("/optional", true, Some(p))).await.1,
            "admin@acme"
        );
    }

    #[tokio::test]
    async fn layer_ran_without_a_session() {
        let (status, body) = send(request("/required", true, None)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(body.contains("missing_credentials"), "{body}");
        assert_eq!(
            send(request("/optional", true, None)).await,
            (StatusCode::OK, "nobody".into())
        );
    }
}
