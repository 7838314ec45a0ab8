//! [`JwtIssuers`]: tokens from several issuers, each verified only with
//! that issuer's own keys (feature `jwt`).
//!
//! A [`JwtVerifier`] trusts one issuer. A service that accepts tokens from
//! several (two identity providers, one per tenant, an internal issuer
//! beside an external one) builds one verifier per issuer and combines them
//! here. The token's `iss` picks the verifier before any key is looked at,
//! so a key of one issuer never verifies a token that names another: a
//! compromised or careless issuer can mint tokens only in its own name.
//!
//! | token | answer |
//! |-------|--------|
//! | `iss` names a configured issuer | that issuer's verifier decides |
//! | `iss` names no configured issuer, is missing or not a string | [`TokenError::WrongIssuer`] (401) |
//! | `iss` repeated in the payload, payload not base64url JSON | [`TokenError::Malformed`] (401) |
//!
//! An [`OidcVerifier`](crate::bearer::OidcVerifier) (feature `oidc`)
//! joins with [`JwtIssuers::oidc`]: a token naming an issuer nobody here
//! trusts is refused without any network call.
//!
//! ```
//! use keystile_core::bearer::jwt::sign_hs256;
//! use keystile_core::bearer::{JwtIssuers, JwtVerifier, TokenError, TokenVerifier};
//! use keystile_core::keys::Keyring;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (ring_a, ring_b) = (Keyring::generate()?, Keyring::generate()?);
//! let verifier = |ring: &Keyring, issuer: &str| {
//!     JwtVerifier::builder().keyring(ring).issuer(issuer).audience("api").build()
//! };
//! let issuers = JwtIssuers::new()
//!     .issuer(verifier(&ring_a, "https://a.example.test")?)?
//!     .issuer(verifier(&ring_b, "https://b.example.test")?)?;
//!
//! let token = |ring: &Keyring, iss: &str| {
//!     let serde_json::Value::Object(claims) = serde_json::json!({
//!         "sub": "alice", "iss": iss, "aud": "api", "exp": 4_000_000_000u64
//!     }) else { unreachable!() };
//!     sign_hs256(ring, &claims)
//! };
//! assert!(issuers.verify(&token(&ring_a, "https://a.example.test")?).await.is_ok());
//! // Issuer A's key cannot sign in issuer B's name.
//! assert!(matches!(
//!     issuers.verify(&token(&ring_a, "https://b.example.test")?).await,
//!     Err(TokenError::BadSignature | TokenError::UnknownKey)
//! ));
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::bearer::jwt;
use crate::bearer::{Claims, JwtConfigError, JwtVerifier, TokenError, TokenVerifier};

/// Verifies tokens of several issuers, each with its own verifier; see the
/// [module docs](self). Cloning is cheap.
#[derive(Clone, Default)]
pub struct JwtIssuers {
    by_issuer: HashMap<String, Arc<dyn TokenVerifier>>,
    max_len: usize,
}

/// The one claim read before the signature is checked: which issuer's
/// verifier to ask. A repeated `iss` fails to parse.
#[derive(Deserialize)]
struct NamedIssuer {
    iss: Option<IssuerClaim>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum IssuerClaim {
    Text(String),
    Other(IgnoredAny),
}

impl JwtIssuers {
    /// No issuer yet: every token is refused until one is added.
    pub fn new() -> Self {
        Self::default()
    }

    /// Trusts the issuer `verifier` is configured with, for the tokens
    /// naming it. Fails when the verifier has no issuer, or when another
    /// verifier here already trusts the same one.
    pub fn issuer(self, verifier: JwtVerifier) -> Result<Self, JwtConfigError> {
        let issuer = verifier
            .issuer()
            .ok_or(JwtConfigError::NoIssuer)?
            .to_owned();
        let max_len = verifier.max_len();
        self.trust(issuer, max_len, Arc::new(verifier))
    }

    /// Trusts the OpenID Connect issuer of `verifier`, for the tokens
    /// naming it. Fails when another verifier here already trusts it.
    #[cfg(feature = "oidc")]
    #[cfg_attr(docsrs, doc(cfg(feature = "oidc")))]
    pub fn oidc(self, verifier: crate::bearer::OidcVerifier) -> Result<Self, JwtConfigError> {
        let issuer = verifier.issuer().to_owned();
        self.trust(issuer, jwt::DEFAULT_MAX_JWT_LEN, Arc::new(verifier))
    }

    fn trust(
        mut self,
        issuer: String,
        max_len: usize,
        verifier: Arc<dyn TokenVerifier>,
    ) -> Result<Self, JwtConfigError> {
        if self.by_issuer.contains_key(&issuer) {
            return Err(JwtConfigError::DuplicateIssuer(issuer));
        }
        self.max_len = self.max_len.max(max_len);
        self.by_issuer.insert(issuer, verifier);
        Ok(self)
    }

    /// The trusted issuers, in no particular order.
    pub fn issuers(&self) -> impl Iterator<Item = &str> {
        self.by_issuer.keys().map(String::as_str)
    }

    /// The verifier of the issuer `token`'s `iss` names, read before any
    /// signature is checked.
    fn verifier_for(&self, token: &str) -> Result<&dyn TokenVerifier, TokenError> {
        if token.len() > self.max_len {
            return Err(TokenError::Malformed("token too long"));
        }
        let mut parts = token.split('.');
        let (Some(_header), Some(payload)) = (parts.next(), parts.next()) else {
            return Err(TokenError::Malformed(
                "not a compact JWS with a JSON payload",
            ));
        };
        let named: NamedIssuer = jwt::json_object(payload).ok_or(TokenError::Malformed(
            "not a compact JWS with a JSON payload",
        ))?;
        let Some(IssuerClaim::Text(issuer)) = named.iss else {
            return Err(TokenError::WrongIssuer);
        };
        self.by_issuer
            .get(&issuer)
            .map(|verifier| &**verifier)
            .ok_or(TokenError::WrongIssuer)
    }
}

#[async_trait]
impl TokenVerifier for JwtIssuers {
    /// Verifies `token` with the verifier of the issuer its `iss` names.
    async fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        self.verifier_for(token)?.verify(token).await
    }
}

impl fmt::Debug for JwtIssuers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut issuers: Vec<&str> = self.issuers().collect();
        issuers.sort_unstable();
        f.debug_struct("JwtIssuers")
            .field("issuers", &issuers)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bearer::jwt::sign_hs256;
    use crate::clock::ManualClock;
    use crate::encoding;
    use crate::keys::{Keyring, SigningKey};
    use serde_json::{Value, json};

    const T0: u64 = 1_700_000_000;
    const A: &str = "https://a.example.test";
    const B: &str = "https://b.example.test";

    fn ring(byte: u8) -> Keyring {
        Keyring::new(SigningKey::from_bytes(&[byte; 32]).unwrap())
    }

    fn verifier(ring: &Keyring, issuer: &str, clock: &ManualClock) -> JwtVerifier {
        JwtVerifier::builder()
            .keyring(ring)
            .issuer(issuer)
            .audience("api")
            .clock(clock.shared())
            .build()
            .unwrap()
    }

    fn sign(ring: &Keyring, claims: Value) -> String {
        let Value::Object(map) = claims else {
            unreachable!("an object literal")
        };
        sign_hs256(ring, &map).unwrap()
    }

    fn setup() -> (JwtIssuers, Keyring, Keyring) {
        let clock = ManualClock::at_unix(T0);
        let (a, b) = (ring(1), ring(2));
        let issuers = JwtIssuers::new()
            .issuer(verifier(&a, A, &clock))
            .unwrap()
            .issuer(verifier(&b, B, &clock))
            .unwrap();
        (issuers, a, b)
    }

    #[tokio::test]
    async fn each_issuer_verifies_its_own_tokens() {
        let (issuers, a, b) = setup();
        for (ring, iss) in [(&a, A), (&b, B)] {
            let token = sign(
                ring,
                json!({"sub": "u", "iss": iss, "aud": "api", "exp": T0 + 60}),
            );
            assert_eq!(
                issuers.verify(&token).await.unwrap().issuer.as_deref(),
                Some(iss)
            );
        }
    }

    #[tokio::test]
    async fn a_key_never_signs_for_another_issuer() {
        let (issuers, a, b) = setup();
        for (ring, iss) in [(&a, B), (&b, A)] {
            let token = sign(
                ring,
                json!({"sub": "u", "iss": iss, "aud": "api", "exp": T0 + 60}),
            );
            assert!(
                matches!(
                    issuers.verify(&token).await,
                    Err(TokenError::UnknownKey | TokenError::BadSignature)
                ),
                "{iss}"
            );
        }
    }

    #[tokio::test]
    async fn unknown_missing_or_odd_issuers_are_refused_before_any_key() {
        let (issuers, a, _) = setup();
        for claims in [
            json!({"sub": "u", "iss": "https://c.example.test", "aud": "api", "exp": T0 + 60}),
            json!({"sub": "u", "aud": "api", "exp": T0 + 60}),
            json!({"sub": "u", "iss": 7, "aud": "api", "exp": T0 + 60}),
            json!({"sub": "u", "iss": [A], "aud": "api", "exp": T0 + 60}),
            json!({"sub": "u", "iss": null, "aud": "api", "exp": T0 + 60}),
        ] {
            assert!(
                matches!(
                    issuers.verify(&sign(&a, claims.clone())).await,
                    Err(TokenError::WrongIssuer)
                ),
                "{claims}"
            );
        }
    }

    #[tokio::test]
    async fn a_repeated_iss_or_an_unreadable_payload_is_malformed() {
        let (issuers, _, _) = setup();
        let header = encoding::encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let repeated = encoding::encode(format!(r#"{{"iss":"{A}","iss":"{B}"}}"#));
        for token in [
            format!("{header}.{repeated}.c2ln"),
            format!("{header}.!!!.c2ln"),
            header.clone(),
            String::new(),
            format!("{header}.{}.c2ln", encoding::encode("[1]")),
        ] {
            assert!(
                matches!(issuers.verify(&token).await, Err(TokenError::Malformed(_))),
                "{token}"
            );
        }
        assert!(matches!(
            issuers.verify(&"a".repeat(9000)).await,
            Err(TokenError::Malformed("token too long"))
        ));
    }

    #[tokio::test]
    async fn every_verifier_needs_one_issuer_of_its_own() {
        let clock = ManualClock::at_unix(T0);
        let no_issuer = JwtVerifier::builder().keyring(&ring(1)).build().unwrap();
        assert_eq!(
            JwtIssuers::new().issuer(no_issuer).unwrap_err(),
            JwtConfigError::NoIssuer
        );
        let twice = JwtIssuers::new()
            .issuer(verifier(&ring(1), A, &clock))
            .unwrap()
            .issuer(verifier(&ring(2), A, &clock));
        assert_eq!(
            twice.unwrap_err(),
            JwtConfigError::DuplicateIssuer(A.into())
        );
        let empty = JwtIssuers::new();
        assert!(empty.verify("a.b.c").await.is_err());
    }

    #[test]
    fn one_verifier_refuses_two_issuers() {
        let built = JwtVerifier::builder()
            .keyring(&ring(1))
            .issuer(A)
            .issuer(B)
            .build();
        assert_eq!(built.unwrap_err(), JwtConfigError::SeveralIssuers);
        let same_twice = JwtVerifier::builder()
            .keyring(&ring(1))
            .issuer(A)
            .issuer(A)
            .build()
            .unwrap();
        assert_eq!(same_twice.issuer(), Some(A));
    }
}
