//! Token lifecycle (feature `jwt`): issue an access/refresh pair, verify,
//! refresh once, revoke.
//!
//! A [`TokenLifecycle`] is the issuing side of bearer tokens (an identity
//! provider, or a service that mints its own). What it guarantees:
//!
//! - Both tokens are HS256 JWTs under the keyring's primary key (header
//!   `kid`), carrying `sub`, `iat`, `exp`, a fresh 128-bit `jti`, `typ`
//!   (`access` / `refresh`), the optional `sv`, `scope`, `iss`, `aud`, and
//!   your custom claims. Custom claims may not use a reserved name
//!   ([`RESERVED_CLAIMS`]): that is an error, never a silent overwrite.
//! - An access token is never accepted as a refresh token, nor the reverse.
//! - [`refresh`](TokenLifecycle::refresh) verifies the refresh token, checks
//!   the revocation list, then burns its `jti` in the [`ReplayStore`] —
//!   atomically, so of two concurrent refreshes (in any number of processes
//!   sharing the store) exactly one gets a new pair; a refresh token works
//!   once. The new pair keeps the subject, scopes, `sv` and custom claims,
//!   unless [`refresh_with`](TokenLifecycle::refresh_with) changes them.
//! - [`revoke`](TokenLifecycle::revoke) puts a token's `jti` on the
//!   [`RevocationList`] until the token's own expiry; access verification
//!   and refresh consult it. A store that cannot answer fails closed.
//!
//! Break-glass: the identity provider decides the `sv` it puts in a new
//! pair. When refreshing for a user whose session version moved on, refuse
//! (or use [`redeem_refresh`](TokenLifecycle::redeem_refresh) and decide),
//! so a stale refresh token cannot mint fresh access tokens.
//!
//! ```
//! use std::sync::Arc;
//! use keystile_core::bearer::{Grant, LifecycleError, MemoryRevocationList, TokenLifecycle};
//! use keystile_core::keys::Keyring;
//! use keystile_core::replay::MemoryReplayStore;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let tokens = TokenLifecycle::builder(Keyring::generate().unwrap())
//!     .replay_store(Arc::new(MemoryReplayStore::new()))
//!     .revocation_list(Arc::new(MemoryRevocationList::new()))
//!     .issuer("https://idp.example.test")
//!     .build()
//!     .unwrap();
//!
//! let grant = Grant::new("alice").session_version(3).claim("tenant", "acme");
//! let pair = tokens.issue(&grant).unwrap();
//! let claims = tokens.verify_access(pair.access_token()).await.unwrap();
//! assert_eq!((claims.subject.as_str(), claims.session_version), ("alice", Some(3)));
//!
//! let next = tokens.refresh(pair.refresh_token()).await.unwrap();
//! assert!(matches!(tokens.refresh(pair.refresh_token()).await, Err(LifecycleError::AlreadyUsed)));
//!
//! tokens.revoke(next.access_token()).await.unwrap();
//! assert!(tokens.verify_access(next.access_token()).await.is_err());
//! # });
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::ser::{Serialize, SerializeStruct, Serializer};
use serde_json::{Map, Value};
use zeroize::Zeroize;

use crate::bearer::jwt::{self, JwtConfigError, JwtVerifier, REFRESH_TYP, TypeRule};
use crate::bearer::{Claims, RevocationList, TokenError, TokenVerifier};
use crate::clock::{SharedClock, SystemClock};
use crate::encoding;
use crate::keys::{KeyId, Keyring};
use crate::random::{OsRandom, RandomError, SharedRandom};
use crate::replay::{Redemption, ReplayStore};
use crate::scopes::Scopes;
use crate::store::StoreError;

/// Default access-token lifetime.
pub const DEFAULT_ACCESS_TTL: Duration = Duration::from_secs(15 * 60);
/// Default refresh-token lifetime.
pub const DEFAULT_REFRESH_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// Claim names a [`Grant`] may not set: the lifecycle owns them.
pub const RESERVED_CLAIMS: &[&str] = &[
    "sub", "exp", "iat", "nbf", "jti", "typ", "iss", "aud", "sv", "scope", "scp",
];
/// The `typ` claim of access tokens.
const ACCESS_TYP: &str = "access";
/// Bytes of randomness in a `jti`.
const JTI_BYTES: usize = 16;

/// What a new token pair is for: subject, scopes, session version and
/// custom claims.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Grant {
    /// Who the tokens are for (`sub`).
    pub subject: String,
    /// What they may do (`scope`).
    pub scopes: Scopes,
    /// The user's current session version (`sv`), if the issuer keeps one.
    pub session_version: Option<u64>,
    /// Custom claims; names in [`RESERVED_CLAIMS`] are refused at issue.
    pub claims: Map<String, Value>,
}

impl Grant {
    /// A grant for `subject` with no scopes, no `sv` and no custom claims.
    pub fn new(subject: impl Into<String>) -> Self {
        Self {
            subject: subject.into(),
            ..Self::default()
        }
    }

    /// Sets the scopes.
    #[must_use]
    pub fn scopes(mut self, scopes: Scopes) -> Self {
        self.scopes = scopes;
        self
    }

    /// Sets the session version.
    #[must_use]
    pub fn session_version(mut self, version: u64) -> Self {
        self.session_version = Some(version);
        self
    }

    /// Adds a custom claim.
    #[must_use]
    pub fn claim(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.claims.insert(name.into(), value.into());
        self
    }

    /// Replaces every custom claim.
    #[must_use]
    pub fn claims(mut self, claims: Map<String, Value>) -> Self {
        self.claims = claims;
        self
    }

    /// The grant a verified token was issued under.
    fn from_claims(claims: Claims) -> Self {
        Self {
            subject: claims.subject,
            scopes: claims.scopes,
            session_version: claims.session_version,
            claims: claims.extra,
        }
    }
}

/// An access token and its refresh token.
///
/// Serializes as an OAuth 2.0 token response (RFC 6749 §5.1:
/// `access_token`, `token_type`, `expires_in`, `refresh_token`). `Debug`
/// never prints the tokens; they are wiped from memory on drop.
pub struct TokenPair {
    access_token: String,
    refresh_token: String,
    expires_in: u64,
    refresh_expires_at: u64,
}

impl TokenPair {
    /// The access token.
    pub fn access_token(&self) -> &str {
        &self.access_token
    }

    /// The refresh token.
    pub fn refresh_token(&self) -> &str {
        &self.refresh_token
    }

    /// Seconds the access token stays valid.
    pub fn expires_in(&self) -> u64 {
        self.expires_in
    }

    /// When the refresh token expires, Unix seconds.
    pub fn refresh_expires_at(&self) -> u64 {
        self.refresh_expires_at
    }
}

impl Drop for TokenPair {
    fn drop(&mut self) {
        self.access_token.zeroize();
        self.refresh_token.zeroize();
    }
}

impl fmt::Debug for TokenPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenPair")
            .field("access_token", &"<redacted>")
            .field("refresh_token", &"<redacted>")
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

impl Serialize for TokenPair {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("TokenPair", 4)?;
        s.serialize_field("access_token", &self.access_token)?;
        s.serialize_field("token_type", "Bearer")?;
        s.serialize_field("expires_in", &self.expires_in)?;
        s.serialize_field("refresh_token", &self.refresh_token)?;
        s.end()
    }
}

/// Why a lifecycle operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LifecycleError {
    /// A custom claim uses a name the lifecycle owns.
    #[error("claim name {0:?} is reserved")]
    ReservedClaim(String),
    /// The presented token did not verify (or is of the wrong kind).
    #[error(transparent)]
    InvalidToken(TokenError),
    /// The refresh token was already used.
    #[error("refresh token already used")]
    AlreadyUsed,
    /// The replay store or revocation list could not answer: nothing was
    /// issued or revoked.
    #[error(transparent)]
    Unavailable(StoreError),
    /// No randomness for a token id.
    #[error(transparent)]
    Random(#[from] RandomError),
    /// The token could not be signed.
    #[error("the token could not be signed")]
    Signing,
}

impl From<TokenError> for LifecycleError {
    fn from(error: TokenError) -> Self {
        match error {
            TokenError::Unavailable(e) => Self::Unavailable(e),
            other => Self::InvalidToken(other),
        }
    }
}

impl From<StoreError> for LifecycleError {
    fn from(error: StoreError) -> Self {
        Self::Unavailable(error)
    }
}

struct Inner {
    signer: jwt::Hs256Signer,
    kid: KeyId,
    verifier: JwtVerifier,
    replay: Arc<dyn ReplayStore>,
    revocations: Arc<dyn RevocationList>,
    clock: SharedClock,
    random: SharedRandom,
    access_ttl: u64,
    refresh_ttl: u64,
    issuer: Option<String>,
    audience: Option<String>,
}

/// Issues, verifies, refreshes and revokes bearer tokens; see the
/// [module docs](self). Cloning is cheap.
#[derive(Clone)]
pub struct TokenLifecycle {
    inner: Arc<Inner>,
}

/// Configures a [`TokenLifecycle`].
#[must_use]
pub struct TokenLifecycleBuilder {
    keyring: Keyring,
    replay: Option<Arc<dyn ReplayStore>>,
    revocations: Option<Arc<dyn RevocationList>>,
    clock: SharedClock,
    random: SharedRandom,
    access_ttl: Duration,
    refresh_ttl: Duration,
    leeway: Duration,
    issuer: Option<String>,
    audience: Option<String>,
}

/// A lifecycle was configured without a store it needs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LifecycleConfigError {
    /// No replay store: refresh tokens could be used more than once.
    #[error("a TokenLifecycle needs a replay store (refresh tokens must work once)")]
    MissingReplayStore,
    /// No revocation list: revoke would have nowhere to record.
    #[error("a TokenLifecycle needs a revocation list")]
    MissingRevocationList,
    /// The verifier could not be built.
    #[error(transparent)]
    Verifier(#[from] JwtConfigError),
}

impl TokenLifecycleBuilder {
    /// Burns refresh-token ids in `store` (share it across the fleet).
    pub fn replay_store(mut self, store: Arc<dyn ReplayStore>) -> Self {
        self.replay = Some(store);
        self
    }

    /// Records revocations in `list` (share it across the fleet).
    pub fn revocation_list(mut self, list: Arc<dyn RevocationList>) -> Self {
        self.revocations = Some(list);
        self
    }

    /// Reads time from `clock`.
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Draws token ids from `random`.
    pub fn random(mut self, random: SharedRandom) -> Self {
        self.random = random;
        self
    }

    /// Access tokens live this long (default 15 min; at least 1 s).
    pub fn access_ttl(mut self, ttl: Duration) -> Self {
        self.access_ttl = ttl;
        self
    }

    /// Refresh tokens live this long (default 30 days; at least 1 s).
    pub fn refresh_ttl(mut self, ttl: Duration) -> Self {
        self.refresh_ttl = ttl;
        self
    }

    /// Clock-skew allowance when verifying (default 30 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Puts `iss` in every token and requires it when verifying.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// Puts `aud` in every token and requires it when verifying.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// The lifecycle.
    pub fn build(self) -> Result<TokenLifecycle, LifecycleConfigError> {
        let replay = self
            .replay
            .ok_or(LifecycleConfigError::MissingReplayStore)?;
        let revocations = self
            .revocations
            .ok_or(LifecycleConfigError::MissingRevocationList)?;
        let mut verifier = JwtVerifier::builder()
            .keyring(&self.keyring)
            .clock(self.clock.clone())
            .leeway(self.leeway);
        if let Some(issuer) = &self.issuer {
            verifier = verifier.issuer(issuer.clone());
        }
        if let Some(audience) = &self.audience {
            verifier = verifier.audience(audience.clone());
        }
        let primary = self.keyring.primary();
        Ok(TokenLifecycle {
            inner: Arc::new(Inner {
                signer: jwt::Hs256Signer::new(primary),
                kid: primary.id().clone(),
                verifier: verifier.build()?,
                replay,
                revocations,
                clock: self.clock,
                random: self.random,
                access_ttl: self.access_ttl.as_secs().max(1),
                refresh_ttl: self.refresh_ttl.as_secs().max(1),
                issuer: self.issuer,
                audience: self.audience,
            }),
        })
    }
}

impl TokenLifecycle {
    /// Starts a configuration signing with `keyring`'s primary key (its
    /// fallbacks keep verifying). A replay store and a revocation list are
    /// required.
    pub fn builder(keyring: Keyring) -> TokenLifecycleBuilder {
        TokenLifecycleBuilder {
            keyring,
            replay: None,
            revocations: None,
            clock: SystemClock::shared(),
            random: OsRandom::shared(),
            access_ttl: DEFAULT_ACCESS_TTL,
            refresh_ttl: DEFAULT_REFRESH_TTL,
            leeway: jwt::DEFAULT_LEEWAY,
            issuer: None,
            audience: None,
        }
    }

    /// The verifier for this lifecycle's tokens without the revocation
    /// check (e.g. for a userinfo endpoint that must answer for stale
    /// tokens too).
    pub fn jwt_verifier(&self) -> &JwtVerifier {
        &self.inner.verifier
    }

    /// Issues a new access/refresh pair for `grant`.
    pub fn issue(&self, grant: &Grant) -> Result<TokenPair, LifecycleError> {
        if let Some(name) = grant
            .claims
            .keys()
            .find(|name| RESERVED_CLAIMS.contains(&name.as_str()))
        {
            return Err(LifecycleError::ReservedClaim(name.clone()));
        }
        let now = self.inner.clock.unix_seconds();
        let access_exp = now.saturating_add(self.inner.access_ttl);
        let refresh_exp = now.saturating_add(self.inner.refresh_ttl);
        Ok(TokenPair {
            access_token: self.sign(grant, ACCESS_TYP, now, access_exp)?,
            refresh_token: self.sign(grant, REFRESH_TYP, now, refresh_exp)?,
            expires_in: self.inner.access_ttl,
            refresh_expires_at: refresh_exp,
        })
    }

    fn sign(&self, grant: &Grant, typ: &str, now: u64, exp: u64) -> Result<String, LifecycleError> {
        let inner = &*self.inner;
        let mut jti = [0u8; JTI_BYTES];
        inner.random.fill(&mut jti)?;
        let mut claims = grant.claims.clone();
        claims.insert("sub".into(), grant.subject.clone().into());
        claims.insert("iat".into(), now.into());
        claims.insert("exp".into(), exp.into());
        claims.insert("jti".into(), encoding::encode(jti).into());
        claims.insert("typ".into(), typ.into());
        if let Some(sv) = grant.session_version {
            claims.insert("sv".into(), sv.into());
        }
        if !grant.scopes.is_empty() {
            claims.insert("scope".into(), grant.scopes.to_string().into());
        }
        if let Some(issuer) = &inner.issuer {
            claims.insert("iss".into(), issuer.clone().into());
        }
        if let Some(audience) = &inner.audience {
            claims.insert("aud".into(), audience.clone().into());
        }
        inner
            .signer
            .sign(&claims)
            .map_err(|_| LifecycleError::Signing)
    }

    /// Verifies an access token: signature, time, issuer/audience, type,
    /// and the revocation list.
    pub async fn verify_access(&self, token: &str) -> Result<Claims, TokenError> {
        let claims = self
            .inner
            .verifier
            .verify_as(token, TypeRule::Exactly(ACCESS_TYP))?;
        self.check_not_revoked(&claims).await?;
        Ok(claims)
    }

    async fn check_not_revoked(&self, claims: &Claims) -> Result<(), TokenError> {
        let jti = claims
            .token_id
            .as_deref()
            .ok_or(TokenError::Malformed("jti is missing"))?;
        if self.inner.revocations.is_revoked(jti).await? {
            return Err(TokenError::Revoked);
        }
        Ok(())
    }

    /// Verifies a refresh token and burns its `jti`, returning its claims:
    /// for issuers that decide asynchronously what the next pair carries.
    /// Follow with [`issue`](Self::issue).
    pub async fn redeem_refresh(&self, refresh_token: &str) -> Result<Claims, LifecycleError> {
        let claims = self.verify_refresh(refresh_token).await?;
        self.burn(&claims).await?;
        Ok(claims)
    }

    async fn verify_refresh(&self, refresh_token: &str) -> Result<Claims, LifecycleError> {
        let claims = self
            .inner
            .verifier
            .verify_as(refresh_token, TypeRule::Exactly(REFRESH_TYP))?;
        self.check_not_revoked(&claims).await?;
        Ok(claims)
    }

    async fn burn(&self, claims: &Claims) -> Result<(), LifecycleError> {
        let (Some(jti), Some(exp)) = (claims.token_id.as_deref(), claims.expires_at) else {
            return Err(TokenError::Malformed("jti or exp is missing").into());
        };
        // Remember the id while the verifier would still accept the token.
        let until = exp.saturating_add(self.inner.verifier.leeway_secs());
        match self.inner.replay.redeem(jti, until).await? {
            Redemption::First => Ok(()),
            Redemption::AlreadyUsed => Err(LifecycleError::AlreadyUsed),
        }
    }

    /// Redeems `refresh_token` once and issues a new pair with the same
    /// subject, scopes, `sv` and custom claims.
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenPair, LifecycleError> {
        self.refresh_with(refresh_token, |grant| grant).await
    }

    /// Redeems `refresh_token` once and issues a new pair for the grant
    /// `update` returns, given the old one (e.g. with the current `sv`, or
    /// replaced custom claims).
    pub async fn refresh_with(
        &self,
        refresh_token: &str,
        update: impl FnOnce(Grant) -> Grant + Send,
    ) -> Result<TokenPair, LifecycleError> {
        let claims = self.verify_refresh(refresh_token).await?;
        // Sign the new pair before burning the old token: a grant refused
        // (reserved claim) or a signing failure must not cost the caller
        // their refresh token. Only the pair of the call that burns first is
        // returned, so a replay still yields nothing.
        let pair = self.issue(&update(Grant::from_claims(claims.clone())))?;
        self.burn(&claims).await?;
        Ok(pair)
    }

    /// Revokes `token` (access or refresh) until it expires. An already
    /// expired token needs no revocation and succeeds; a token that does not
    /// verify is an error.
    pub async fn revoke(&self, token: &str) -> Result<(), LifecycleError> {
        let claims = match self.inner.verifier.verify_as(token, TypeRule::Any) {
            Ok(claims) => claims,
            Err(TokenError::Expired) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let (Some(jti), Some(exp)) = (claims.token_id.as_deref(), claims.expires_at) else {
            return Err(TokenError::Malformed("jti or exp is missing").into());
        };
        // Keep the entry through the leeway, while the verifier would still
        // accept the token.
        let until = exp.saturating_add(self.inner.verifier.leeway_secs());
        self.inner.revocations.revoke(jti, until).await?;
        Ok(())
    }
}

#[async_trait]
impl TokenVerifier for TokenLifecycle {
    async fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        self.verify_access(token).await
    }
}

impl fmt::Debug for TokenLifecycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenLifecycle")
            .field("kid", &self.inner.kid)
            .field("access_ttl", &self.inner.access_ttl)
            .field("refresh_ttl", &self.inner.refresh_ttl)
            .field("issuer", &self.inner.issuer)
            .field("audience", &self.inner.audience)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bearer::MemoryRevocationList;
    use crate::clock::ManualClock;
    use crate::keys::SigningKey;

    const T0: u64 = 1_700_000_000;

    fn lifecycle(clock: &ManualClock) -> TokenLifecycle {
        TokenLifecycle::builder(Keyring::new(SigningKey::from_bytes(&[9; 32]).unwrap()))
            .replay_store(Arc::new(
                crate::replay::MemoryReplayStore::new().clock(clock.shared()),
            ))
            .revocation_list(Arc::new(MemoryRevocationList::new().clock(clock.shared())))
            .clock(clock.shared())
            .build()
            .unwrap()
    }

    #[test]
    fn missing_stores_are_configuration_errors() {
        let ring = Keyring::new(SigningKey::from_bytes(&[9; 32]).unwrap());
        let err = TokenLifecycle::builder(ring).build().unwrap_err();
        assert_eq!(err, LifecycleConfigError::MissingReplayStore);
    }

    #[test]
    fn every_reserved_claim_is_refused() {
        let clock = ManualClock::at_unix(T0);
        let tokens = lifecycle(&clock);
        for name in RESERVED_CLAIMS {
            let err = tokens.issue(&Grant::new("u").claim(*name, 1)).unwrap_err();
            assert!(
                matches!(err, LifecycleError::ReservedClaim(ref n) if n == name),
                "{name}"
            );
        }
    }

    #[tokio::test]
    async fn a_refused_refresh_grant_does_not_burn_the_refresh_token() {
        let clock = ManualClock::at_unix(T0);
        let tokens = lifecycle(&clock);
        let pair = tokens.issue(&Grant::new("u")).unwrap();
        let err = tokens
            .refresh_with(pair.refresh_token(), |grant| grant.claim("sub", "root"))
            .await
            .unwrap_err();
        assert!(matches!(err, LifecycleError::ReservedClaim(_)));
        let next = tokens.refresh(pair.refresh_token()).await.unwrap();
        assert!(tokens.verify_access(next.access_token()).await.is_ok());
        assert!(matches!(
            tokens.refresh(pair.refresh_token()).await,
            Err(LifecycleError::AlreadyUsed)
        ));
    }

    #[tokio::test]
    async fn access_and_refresh_tokens_are_not_interchangeable() {
        let clock = ManualClock::at_unix(T0);
        let tokens = lifecycle(&clock);
        let pair = tokens.issue(&Grant::new("u")).unwrap();
        assert!(matches!(
            tokens.verify_access(pair.refresh_token()).await,
            Err(TokenError::Invalid(_))
        ));
        assert!(matches!(
            tokens.refresh(pair.access_token()).await,
            Err(LifecycleError::InvalidToken(TokenError::Invalid(_)))
        ));
        // A plain JwtVerifier over the same keyring refuses refresh tokens too.
        assert!(
            tokens
                .jwt_verifier()
                .verify_token(pair.refresh_token())
                .is_err()
        );
        assert!(
            tokens
                .jwt_verifier()
                .verify_token(pair.access_token())
                .is_ok()
        );
    }

    #[tokio::test]
    async fn access_tokens_expire_on_the_injected_clock() {
        let clock = ManualClock::at_unix(T0);
        let tokens = lifecycle(&clock);
        let pair = tokens.issue(&Grant::new("u")).unwrap();
        assert_eq!(pair.expires_in(), 900);
        clock.advance(DEFAULT_ACCESS_TTL + jwt::DEFAULT_LEEWAY);
        assert!(matches!(
            tokens.verify_access(pair.access_token()).await,
            Err(TokenError::Expired)
        ));
        tokens.refresh(pair.refresh_token()).await.unwrap();
    }

    #[test]
    fn token_pair_debug_is_redacted_and_serializes_as_oauth() {
        let clock = ManualClock::at_unix(T0);
        let pair = lifecycle(&clock).issue(&Grant::new("u")).unwrap();
        assert!(!format!("{pair:?}").contains(pair.access_token()));
        let json = serde_json::to_value(&pair).unwrap();
        assert_eq!(json["token_type"], "Bearer");
        assert_eq!(json["refresh_token"], pair.refresh_token());
    }
}
