//! [`Scoped<S>`]: a scope requirement in the handler signature.
//!
//! `Scoped<ReportsRead>` yields the request's verified
//! [`Principal`] only if it holds the
//! scope `ReportsRead` names (exactly or through `*`); otherwise it answers
//! 403 `insufficient_scope` with the scope in the challenge. It works with
//! any auth layer; without one it is a 500 naming the missing layer, like
//! every keystile extractor. Declare scopes with [`scope!`](crate::scope!)
//! or implement [`RequiredScope`].
//!
//! ```
//! use std::sync::Arc;
//! use axum::{Router, routing::get};
//! use keystile_core::api_key::MemoryApiKeyStore;
//! use keystile_extractors::{Scoped, scope};
//! use keystile_middleware::{ApiKeyLayer, ApiKeys};
//!
//! scope!(
//!     /// May read reports.
//!     pub ReportsRead = "reports:read"
//! );
//!
//! async fn reports(who: Scoped<ReportsRead>) -> String {
//!     format!("reports for {}", who.subject)
//! }
//!
//! let app: Router = Router::new()
//!     .route("/reports", get(reports))
//!     .route_layer(ApiKeyLayer::new(ApiKeys::new(Arc::new(MemoryApiKeyStore::new()))));
//! ```

use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use http::request::Parts;
use keystile_core::identity::{self, Principal};
use keystile_core::rejection::{Reason, Rejection};

use keystile_middleware::auth::Realm;

/// A scope a handler requires, named at the type level.
pub trait RequiredScope: Send + Sync + 'static {
    /// The scope, e.g. `"reports:read"`.
    const SCOPE: &'static str;
}

/// Declares a unit type implementing [`RequiredScope`]:
/// `scope!(pub ReportsRead = "reports:read");`. The 403 challenge names the
/// request's [`Realm`], set on the auth layer.
#[macro_export]
macro_rules! scope {
    ($(#[$meta:meta])* $vis:vis $name:ident = $scope:literal $(,)?) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy)]
        $vis struct $name;

        impl $crate::scoped::RequiredScope for $name {
            const SCOPE: &'static str = $scope;
        }
    };
}

/// The verified principal, proven to hold the scope `S` names.
pub struct Scoped<S: RequiredScope> {
    principal: identity::Principal,
    scope: PhantomData<fn() -> S>,
}

impl<S: RequiredScope> Scoped<S> {
    /// The principal.
    pub fn into_inner(self) -> identity::Principal {
        self.principal
    }
}

impl<S: RequiredScope> Deref for Scoped<S> {
    type Target = identity::Principal;

    fn deref(&self) -> &Self::Target {
        &self.principal
    }
}

impl<S: RequiredScope> Clone for Scoped<S> {
    fn clone(&self) -> Self {
        Self {
            principal: self.principal.clone(),
            scope: PhantomData,
        }
    }
}

impl<S: RequiredScope> fmt::Debug for Scoped<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scoped")
            .field("scope", &S::SCOPE)
            .field("principal", &self.principal)
            .finish()
    }
}

impl<St: Send + Sync, S: RequiredScope> FromRequestParts<St> for Scoped<S> {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<Self, Self::Rejection> {
        let principal =
            <Principal as FromRequestParts<St>>::from_request_parts(parts, state).await?;
        if principal.scopes.allows(S::SCOPE) {
            Ok(Self {
                principal,
                scope: PhantomData,
            })
        } else {
            Err(Rejection::new(Reason::InsufficientScope, "Scoped")
                .with_challenge(Realm::of(&parts.extensions))
                .with_scope(S::SCOPE))
        }
    }
}

impl<St: Send + Sync, S: RequiredScope> OptionalFromRequestParts<St> for Scoped<S> {
    type Rejection = Rejection;

    /// `None` when nobody authenticated; a principal lacking the scope is
    /// still a 403, never silently `None`.
    async fn from_request_parts(
        parts: &mut Parts,
        state: &St,
    ) -> Result<Option<Self>, Self::Rejection> {
        let found =
            <Principal as OptionalFromRequestParts<St>>::from_request_parts(parts, state).await?;
        match found {
            None => Ok(None),
            Some(_) => <Self as FromRequestParts<St>>::from_request_parts(parts, state)
                .await
                .map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use http::{Request, StatusCode};
    use keystile_core::api_key::{KeyPrefix, NewApiKey};
    use keystile_core::identity::AuthMethod;
    use keystile_core::layers_seen::LayersSeen;
    use keystile_core::random::OsRandom;
    use keystile_core::scopes::Scopes;
    use tower::ServiceExt;

    crate::scope!(
        /// Test scope.
        ReportsRead = "reports:read"
    );

    crate::scope!(
        /// Another test scope.
        ReportsWrite = "reports:write"
    );

    async fn reports(who: Scoped<ReportsRead>) -> String {
        who.subject.to_string()
    }

    async fn write(who: Option<Scoped<ReportsWrite>>) -> String {
        who.map_or_else(|| "nobody".to_owned(), |w| w.subject.to_string())
    }

    async fn send(scopes: Option<&str>) -> axum::response::Response {
        send_to("/", scopes).await
    }

    async fn send_to(path: &str, scopes: Option<&str>) -> axum::response::Response {
        let app = Router::new()
            .route("/", get(reports))
            .route("/write", get(write));
        let mut req = Request::get(path).body(Body::empty()).unwrap();
        LayersSeen::mark(req.extensions_mut(), AuthMethod::ApiKey);
        if path == "/write" {
            req.extensions_mut().insert(Realm("reports".into()));
        }
        if let Some(scopes) = scopes {
            let (_, record) = NewApiKey::new(KeyPrefix::new("sk").unwrap(), "acme")
                .with_scopes(Scopes::parse(scopes))
                .mint(&OsRandom, 0)
                .unwrap();
            req.extensions_mut()
                .insert(identity::Principal::from_api_key(Arc::new(record)));
        }
        app.oneshot(req).await.unwrap()
    }

    #[tokio::test]
    async fn principal_with_the_scope_or_wildcard_passes() {
        assert_eq!(send(Some("reports:read")).await.status(), StatusCode::OK);
        assert_eq!(send(Some("*")).await.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn principal_without_the_scope_is_403_naming_it() {
        let r = send(Some("reports:write")).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let challenge = r.headers()["www-authenticate"].to_str().unwrap();
        assert!(
            challenge.contains(r#"error="insufficient_scope""#),
            "{challenge}"
        );
        assert!(
            challenge.ends_with(r#"scope="reports:read""#),
            "{challenge}"
        );
    }

    #[tokio::test]
    async fn the_stack_realm_is_used_and_optional_form_still_refuses_a_lacking_scope() {
        let r = send_to("/write", Some("reports:read")).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let challenge = r.headers()["www-authenticate"].to_str().unwrap();
        assert!(
            challenge.starts_with(r#"Bearer realm="reports""#),
            "{challenge}"
        );
        assert_eq!(send_to("/write", None).await.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn nobody_is_401() {
        assert_eq!(send(None).await.status(), StatusCode::UNAUTHORIZED);
    }
}
