//! One authentication model: an [`Authenticator`] reads a credential from
//! the request head and decides; one layer, [`AuthLayer`], runs any of them.
//!
//! An authenticator answers with an [`Outcome`]:
//!
//! - [`Admitted`](Outcome::Admitted) — the request proved an identity; the
//!   layer inserts its [`Principal`] for handlers and extractors.
//! - [`Absent`](Outcome::Absent) — nothing of this authenticator's kind is
//!   on the request.
//! - [`Foreign`](Outcome::Foreign) — something sits where this kind is
//!   read that is not of its grammar (a JWT in `Authorization`, to the API
//!   key authenticator): another authenticator of a chain may claim it; if
//!   none does, the request is refused with this rejection.
//! - [`Refused`](Outcome::Refused) — a credential was presented and fails
//!   (forged, expired, revoked, wrong tenant), or a backend cannot answer
//!   (503: fail closed).
//!
//! The layer owns what every kind shares: with nothing presented it answers
//! 401 `missing_credentials` (a `Bearer` challenge when the authenticator
//! reads headers) or, [`optional`](AuthLayer::optional), passes the request
//! on without a principal; a refusal is rendered as problem+json; the
//! [`Realm`] it is given is what every challenge on the request names.
//!
//! A chain is data: a tuple of authenticators is one. It asks them in
//! order; the first admission wins, the first refusal stops (a valid cookie
//! does not rescue a forged token), absence passes on.
//!
//! A kind keystile does not ship takes about twenty lines. Here, a client
//! certificate's subject that a TLS terminator in front put in a header:
//!
//! ```
//! use axum::{Extension, Router, routing::get};
//! use http::request::Parts;
//! use keystile_core::identity::{AuthMethod, Principal};
//! use keystile_core::rejection::{Reason, Rejection};
//! use keystile_middleware::auth::{AuthLayer, Authenticator, Outcome};
//! use keystile_core::layers_seen::LayersSeen;
//!
//! struct ClientCertificate;
//!
//! impl Authenticator for ClientCertificate {
//!     fn mark(&self, seen: &mut LayersSeen) {
//!         seen.insert(AuthMethod::Custom("mtls"));
//!     }
//!
//!     async fn authenticate(&self, request: &Parts) -> Outcome {
//!         let Some(subject) = request.headers.get("x-client-subject") else {
//!             return Outcome::Absent;
//!         };
//!         match subject.to_str() {
//!             Ok(subject) if subject.starts_with("CN=") => {
//!                 Outcome::Admitted(Principal::from_custom("mtls", &subject[3..], ()))
//!             }
//!             _ => Outcome::Refused(Rejection::new(Reason::InvalidCredentials, "mtls")),
//!         }
//!     }
//! }
//!
//! async fn whoami(Extension(who): Extension<Principal>) -> String {
//!     format!("{} via {}", who.subject, who.method())
//! }
//!
//! let app: Router = Router::new()
//!     .route("/whoami", get(whoami))
//!     .route_layer(AuthLayer::new(ClientCertificate));
//! ```

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::response::{IntoResponse, Response};
use http::Extensions;
use http::Request;
use http::request::Parts;
use keystile_core::identity::Principal;
use keystile_core::rejection::{Reason, Rejection};
use tower_layer::Layer;
use tower_service::Service;

use keystile_core::layers_seen::LayersSeen;

/// The realm challenges name unless a layer sets one.
pub const DEFAULT_REALM: &str = "api";

const SOURCE: &str = "AuthLayer";

/// What an [`Authenticator`] concluded about one request; see the
/// [module docs](self).
#[derive(Debug)]
pub enum Outcome {
    /// The request proved this identity.
    Admitted(Principal),
    /// Nothing of this authenticator's kind was presented.
    Absent,
    /// Something not of this authenticator's grammar sits where it reads:
    /// refused with this rejection unless a later authenticator of a chain
    /// claims the request.
    Foreign(Rejection),
    /// The presented credential fails, or a backend cannot answer.
    Refused(Rejection),
}

/// Reads a credential from the request head and decides; see the
/// [module docs](self).
///
/// The head is borrowed as [`Parts`]: headers, URI and extensions (where a
/// TLS acceptor or `ConnectInfo` leaves what it knows). The body is never
/// read. In-memory authenticators answer with a ready future.
pub trait Authenticator: Send + Sync + 'static {
    /// Adds the methods of the principals this admits to `seen`. The layer
    /// marks them on every request it passes on, so an extractor can tell a
    /// route without this kind of layer from a request that carried none.
    fn mark(&self, seen: &mut LayersSeen);

    /// Whether a request that presents nothing is answered with a
    /// `WWW-Authenticate: Bearer` challenge (credentials sent in headers)
    /// rather than a bare 401 (cookies, client certificates).
    fn challenges(&self) -> bool {
        false
    }

    /// Decides on `request`.
    fn authenticate(&self, request: &Parts) -> impl Future<Output = Outcome> + Send;
}

/// The realm named by every `WWW-Authenticate` challenge on a request, set
/// once per stack with [`AuthLayer::realm`] and kept in the request's
/// extensions, where authenticators, `SessionVersionLayer`,
/// `RequireScopeLayer` and the extractors read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Realm(pub Cow<'static, str>);

impl Realm {
    /// The realm of the request whose extensions are `extensions`:
    /// the one the nearest layer set, else [`DEFAULT_REALM`].
    pub fn of(extensions: &Extensions) -> Cow<'static, str> {
        extensions
            .get::<Realm>()
            .map_or(Cow::Borrowed(DEFAULT_REALM), |realm| realm.0.clone())
    }
}

/// Runs an [`Authenticator`] (or a chain of them) in front of a service;
/// see the [module docs](self). Cloning is cheap.
pub struct AuthLayer<A> {
    config: Arc<Config<A>>,
}

struct Config<A> {
    authenticator: Arc<A>,
    seen: LayersSeen,
    realm: Option<Cow<'static, str>>,
    optional: bool,
}

impl<A> Clone for Config<A> {
    fn clone(&self) -> Self {
        Self {
            authenticator: Arc::clone(&self.authenticator),
            seen: self.seen.clone(),
            realm: self.realm.clone(),
            optional: self.optional,
        }
    }
}

impl<A> Clone for AuthLayer<A> {
    fn clone(&self) -> Self {
        Self {
            config: Arc::clone(&self.config),
        }
    }
}

impl<A: Authenticator> AuthLayer<A> {
    /// A layer running `authenticator`, requiring credentials, in the realm
    /// set further out (else [`DEFAULT_REALM`]).
    pub fn new(authenticator: A) -> Self {
        let mut seen = LayersSeen::default();
        authenticator.mark(&mut seen);
        Self {
            config: Arc::new(Config {
                authenticator: Arc::new(authenticator),
                seen,
                realm: None,
                optional: false,
            }),
        }
    }

    /// The authenticator this layer runs.
    pub fn authenticator(&self) -> &A {
        &self.config.authenticator
    }

    fn map(mut self, change: impl FnOnce(&mut Config<A>)) -> Self {
        change(Arc::make_mut(&mut self.config));
        self
    }

    /// Names `realm` in every challenge on the requests this layer sees,
    /// its own and those of the layers and extractors inside it.
    #[must_use]
    pub fn realm(self, realm: impl Into<Cow<'static, str>>) -> Self {
        self.map(|c| c.realm = Some(realm.into()))
    }

    /// Lets requests that present no credential through without a
    /// principal (handlers take `Option<…>`). A presented credential that
    /// fails is still refused.
    #[must_use]
    pub fn optional(self) -> Self {
        self.map(|c| c.optional = true)
    }

    /// Runs the authenticator on `request` the way the layer does, and
    /// applies the outcome to its extensions: `Ok` when the request may go
    /// on (with its principal inserted, or anonymously when optional),
    /// `Err` with the rejection to send. For composing into other
    /// middleware; most users add the layer.
    pub async fn authenticate(&self, request: &mut Parts) -> Result<(), Rejection> {
        self.config.authenticate(request).await
    }
}

impl<A: Authenticator> Config<A> {
    async fn authenticate(&self, request: &mut Parts) -> Result<(), Rejection> {
        if let Some(realm) = &self.realm {
            request.extensions.insert(Realm(realm.clone()));
        }
        match self.authenticator.authenticate(request).await {
            Outcome::Admitted(principal) => {
                if self.seen.methods() != [principal.method()] {
                    self.seen.mark_all(&mut request.extensions);
                }
                // Named on the current span (subject and method, never the
                // credential), where the access log finds it.
                crate::access_log::record_principal(&principal);
                request.extensions.insert(principal);
                Ok(())
            }
            Outcome::Absent if self.optional => {
                self.seen.mark_all(&mut request.extensions);
                Ok(())
            }
            Outcome::Absent => {
                let missing = Rejection::new(Reason::MissingCredentials, SOURCE);
                Err(if self.authenticator.challenges() {
                    missing.with_challenge(Realm::of(&request.extensions))
                } else {
                    missing
                })
            }
            Outcome::Foreign(rejection) | Outcome::Refused(rejection) => Err(rejection),
        }
    }
}

impl<A> fmt::Debug for AuthLayer<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthLayer")
            .field("methods", &self.config.seen.methods())
            .field("realm", &self.config.realm)
            .field("optional", &self.config.optional)
            .finish_non_exhaustive()
    }
}

impl<S, A> Layer<S> for AuthLayer<A> {
    type Service = AuthService<S, A>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}

/// The service [`AuthLayer`] wraps around a route.
pub struct AuthService<S, A> {
    inner: S,
    config: Arc<Config<A>>,
}

impl<S: Clone, A> Clone for AuthService<S, A> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            config: Arc::clone(&self.config),
        }
    }
}

impl<S, A> fmt::Debug for AuthService<S, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthService")
            .field("methods", &self.config.seen.methods())
            .field("optional", &self.config.optional)
            .finish_non_exhaustive()
    }
}

/// The response future of [`AuthService`]: the decision, then the inner
/// service, in one boxed future.
pub type ResponseFuture<E> = Pin<Box<dyn Future<Output = Result<Response, E>> + Send>>;

impl<S, A, B> Service<Request<B>> for AuthService<S, A>
where
    S: Service<Request<B>, Response = Response> + Clone + Send + 'static,
    S::Future: Send,
    A: Authenticator,
    B: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // The clone takes over readiness from the instance that was polled
        // ready (tower's contract); the clone left behind is polled next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let config = Arc::clone(&self.config);
        Box::pin(async move {
            let (mut parts, body) = request.into_parts();
            match config.authenticate(&mut parts).await {
                Ok(()) => inner.call(Request::from_parts(parts, body)).await,
                Err(rejection) => Ok(IntoResponse::into_response(rejection)),
            }
        })
    }
}

macro_rules! chain {
    ($($name:ident $index:tt),+) => {
        /// A chain: asks each authenticator in order; the first admission
        /// wins, the first refusal stops, absence passes on.
        impl<$($name: Authenticator),+> Authenticator for ($($name,)+) {
            fn mark(&self, seen: &mut LayersSeen) {
                $(self.$index.mark(seen);)+
            }

            fn challenges(&self) -> bool {
                $(self.$index.challenges())||+
            }

            async fn authenticate(&self, request: &Parts) -> Outcome {
                let mut foreign = None;
                $(
                    match self.$index.authenticate(request).await {
                        Outcome::Absent => {}
                        Outcome::Foreign(rejection) => {
                            foreign.get_or_insert(rejection);
                        }
                        decided => return decided,
                    }
                )+
                foreign.map_or(Outcome::Absent, Outcome::Foreign)
            }
        }
    };
}

chain!(A 0, B 1);
chain!(A 0, B 1, C 2);
chain!(A 0, B 1, C 2, D 3);

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use http::StatusCode;
    use keystile_core::identity::AuthMethod;
    use tower::ServiceExt;

    use super::*;

    /// Admits `X-Name: <name>`, refuses `X-Name` with an empty value.
    struct Named(&'static str);

    impl Authenticator for Named {
        fn mark(&self, seen: &mut LayersSeen) {
            seen.insert(AuthMethod::Custom(self.0));
        }

        async fn authenticate(&self, request: &Parts) -> Outcome {
            match request.headers.get(self.0) {
                None => Outcome::Absent,
                Some(value) if value.is_empty() => {
                    Outcome::Refused(Rejection::new(Reason::InvalidCredentials, self.0))
                }
                Some(value) => Outcome::Admitted(Principal::from_custom(
                    self.0,
                    value.to_str().unwrap_or("?"),
                    value.clone(),
                )),
            }
        }
    }

    async fn whoami(request: Request<Body>) -> String {
        let seen = request
            .extensions()
            .get::<LayersSeen>()
            .map_or(0, |seen| seen.methods().len());
        match request.extensions().get::<Principal>() {
            Some(who) => format!("{} via {} (+{seen} marked)", who.subject, who.method()),
            None => format!("nobody (+{seen} marked)"),
        }
    }

    async fn send<A: Authenticator>(layer: AuthLayer<A>, headers: &[(&str, &str)]) -> Response {
        let mut request = Request::get("/");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        Router::new()
            .route("/", get(whoami))
            .route_layer(layer)
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    async fn text(response: Response) -> String {
        use http_body_util::BodyExt;
        let body = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(body.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn a_custom_authenticator_admits_refuses_and_is_absent() {
        let layer = AuthLayer::new(Named("x-robot"));
        let r = send(layer.clone(), &[("x-robot", "r2")]).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(text(r).await, "r2 via x-robot (+0 marked)");

        let r = send(layer.clone(), &[("x-robot", "")]).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert!(text(r).await.contains("invalid_credentials"));

        let r = send(layer.clone(), &[]).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert!(
            !r.headers().contains_key("www-authenticate"),
            "no challenge"
        );
        assert!(text(r).await.contains("missing_credentials"));

        let r = send(layer.optional(), &[]).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(text(r).await, "nobody (+1 marked)");
    }

    #[tokio::test]
    async fn a_chain_takes_the_first_admission_and_stops_at_the_first_refusal() {
        let chain = || AuthLayer::new((Named("x-a"), Named("x-b")));
        let r = send(chain(), &[("x-b", "bob")]).await;
        assert_eq!(text(r).await, "bob via x-b (+2 marked)");
        let r = send(chain(), &[("x-a", "ann"), ("x-b", "bob")]).await;
        assert_eq!(text(r).await, "ann via x-a (+2 marked)");
        let r = send(chain(), &[("x-a", ""), ("x-b", "bob")]).await;
        assert_eq!(
            r.status(),
            StatusCode::UNAUTHORIZED,
            "a refusal is not rescued"
        );
        let r = send(chain().optional(), &[]).await;
        assert_eq!(text(r).await, "nobody (+2 marked)");
    }

    #[tokio::test]
    async fn the_realm_set_once_reaches_the_authenticators() {
        struct Challenging;
        impl Authenticator for Challenging {
            fn mark(&self, seen: &mut LayersSeen) {
                seen.insert(AuthMethod::Custom("challenging"));
            }
            fn challenges(&self) -> bool {
                true
            }
            async fn authenticate(&self, request: &Parts) -> Outcome {
                match request.headers.get("x-bad") {
                    None => Outcome::Absent,
                    Some(_) => Outcome::Refused(
                        Rejection::new(Reason::InvalidCredentials, "challenging")
                            .with_challenge(Realm::of(&request.extensions)),
                    ),
                }
            }
        }
        let layer = AuthLayer::new(Challenging).realm("reports");
        let r = send(layer.clone(), &[]).await;
        assert_eq!(r.headers()["www-authenticate"], r#"Bearer realm="reports""#);
        let r = send(layer, &[("x-bad", "1")]).await;
        let challenge = r.headers()["www-authenticate"].to_str().unwrap();
        assert!(challenge.starts_with(r#"Bearer realm="reports", error="invalid_token""#));
        let r = send(AuthLayer::new(Challenging), &[]).await;
        assert_eq!(r.headers()["www-authenticate"], r#"Bearer realm="api""#);
    }
}
