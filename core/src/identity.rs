//! The verified identity every auth layer inserts into request extensions.
//!
//! Whatever authenticated a request, handlers see one [`Principal`]: who
//! (subject, optional actor), for which tenant, with which scopes, and the
//! [`Credential`] that proved it. Cloning is cheap: text is shared.
//!
//! ```
//! use std::sync::Arc;
//! use keystile_core::identity::{AuthMethod, Credential, Principal};
//! use keystile_core::session::SessionClaims;
//!
//! let claims = SessionClaims {
//!     subject: "admin@acme".into(),
//!     actor: Some("operator:7".into()),
//!     tenant: "acme".into(),
//!     session_version: None,
//!     expires_at: 0,
//! };
//! let principal = Principal::from_session(Arc::new(claims));
//! assert_eq!(&*principal.subject, "admin@acme");
//! assert_eq!(principal.actor.as_deref(), Some("operator:7"));
//! assert_eq!(principal.method(), AuthMethod::Session);
//! ```

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use crate::api_key::ApiKeyRecord;
use crate::bearer::BearerToken;
use crate::scopes::Scopes;
use crate::session::SessionClaims;

/// How a request was authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthMethod {
    /// An API key.
    ApiKey,
    /// A bearer token (e.g. a JWT).
    Bearer,
    /// A session cookie.
    Session,
    /// A credential kind defined outside keystile (a client certificate,
    /// an HMAC-signed request, …), by the name its authenticator gives it.
    Custom(&'static str),
}

impl AuthMethod {
    /// A stable lowercase name (`api_key`, `bearer`, `session`, or a
    /// custom kind's own name).
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::ApiKey => "api_key",
            Self::Bearer => "bearer",
            Self::Session => "session",
            Self::Custom(name) => name,
        }
    }
}

impl fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The credential that authenticated a request.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Credential {
    /// An API key's stored record.
    ApiKey(Arc<ApiKeyRecord>),
    /// A verified bearer token and its claims.
    Bearer(Arc<BearerToken>),
    /// A verified session cookie's claims.
    Session(Arc<SessionClaims>),
    /// A credential of a kind defined outside keystile; read it back with
    /// [`Principal::custom`].
    Custom {
        /// The kind's name ([`AuthMethod::Custom`]).
        method: &'static str,
        /// Whatever the authenticator keeps of the credential.
        value: Arc<dyn Any + Send + Sync>,
    },
}

/// A verified identity.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Principal {
    /// Who the request acts as.
    pub subject: Arc<str>,
    /// Who is acting as the subject (impersonation or delegation), if anyone.
    pub actor: Option<Arc<str>>,
    /// The tenant the credential is bound to, if any.
    pub tenant: Option<Arc<str>>,
    /// What the credential may do.
    pub scopes: Scopes,
    /// The session version the credential carries, if any.
    pub session_version: Option<u64>,
    /// The credential itself.
    pub credential: Credential,
}

impl Principal {
    /// The identity proved by an API key: its owner, with its scopes.
    pub fn from_api_key(record: Arc<ApiKeyRecord>) -> Self {
        Self {
            subject: Arc::clone(&record.owner),
            actor: None,
            tenant: None,
            scopes: record.scopes.clone(),
            session_version: None,
            credential: Credential::ApiKey(record),
        }
    }

    /// The identity proved by a verified bearer token.
    pub fn from_bearer(token: Arc<BearerToken>) -> Self {
        let claims = &token.claims;
        Self {
            subject: claims.subject.as_str().into(),
            actor: None,
            tenant: None,
            scopes: claims.scopes.clone(),
            session_version: claims.session_version,
            credential: Credential::Bearer(token),
        }
    }

    /// The identity proved by a verified session cookie.
    pub fn from_session(claims: Arc<SessionClaims>) -> Self {
        Self {
            subject: Arc::clone(&claims.subject),
            actor: claims.actor.clone(),
            tenant: Some(Arc::clone(&claims.tenant)),
            scopes: Scopes::none(),
            session_version: claims.session_version,
            credential: Credential::Session(claims),
        }
    }

    /// The identity proved by a credential of a kind defined outside
    /// keystile: `subject`, authenticated by `method` (its
    /// [`AuthMethod::Custom`] name), keeping `value` for handlers
    /// ([`Principal::custom`]). No scopes until
    /// [`with_scopes`](Self::with_scopes).
    pub fn from_custom(
        method: &'static str,
        subject: impl Into<Arc<str>>,
        value: impl Any + Send + Sync,
    ) -> Self {
        Self {
            subject: subject.into(),
            actor: None,
            tenant: None,
            scopes: Scopes::none(),
            session_version: None,
            credential: Credential::Custom {
                method,
                value: Arc::new(value),
            },
        }
    }

    /// Replaces the scopes.
    pub fn with_scopes(mut self, scopes: Scopes) -> Self {
        self.scopes = scopes;
        self
    }

    /// Sets the actor.
    pub fn with_actor(mut self, actor: impl Into<Arc<str>>) -> Self {
        self.actor = Some(actor.into());
        self
    }

    /// Sets the tenant.
    pub fn with_tenant(mut self, tenant: impl Into<Arc<str>>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }

    /// How the request was authenticated.
    pub fn method(&self) -> AuthMethod {
        match self.credential {
            Credential::ApiKey(_) => AuthMethod::ApiKey,
            Credential::Bearer(_) => AuthMethod::Bearer,
            Credential::Session(_) => AuthMethod::Session,
            Credential::Custom { method, .. } => AuthMethod::Custom(method),
        }
    }

    /// The API key record, when an API key authenticated the request.
    pub fn api_key(&self) -> Option<&Arc<ApiKeyRecord>> {
        match &self.credential {
            Credential::ApiKey(record) => Some(record),
            _ => None,
        }
    }

    /// The bearer token, when a bearer token authenticated the request.
    pub fn bearer(&self) -> Option<&Arc<BearerToken>> {
        match &self.credential {
            Credential::Bearer(token) => Some(token),
            _ => None,
        }
    }

    /// The session claims, when a session cookie authenticated the request.
    pub fn session(&self) -> Option<&Arc<SessionClaims>> {
        match &self.credential {
            Credential::Session(claims) => Some(claims),
            _ => None,
        }
    }

    /// The value a custom authenticator kept, when it authenticated the
    /// request and kept a `T`.
    pub fn custom<T: Any>(&self) -> Option<&T> {
        match &self.credential {
            Credential::Custom { value, .. } => value.downcast_ref(),
            _ => None,
        }
    }
}
