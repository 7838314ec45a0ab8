//! What is stored about an API key, and minting a key together with its
//! record.
//!
//! ```
//! use keystile_core::api_key::{KeyPrefix, NewApiKey, parse};
//! use keystile_core::random::OsRandom;
//! use keystile_core::scopes::Scopes;
//!
//! let (key, record) = NewApiKey::new(KeyPrefix::new("sk_live").unwrap(), "acme")
//!     .with_name("ci")
//!     .with_scopes(Scopes::parse("reports:read"))
//!     .mint(&OsRandom, 1_700_000_000)
//!     .unwrap();
//! // Show `key` once; store `record`, which holds only the digest.
//! assert_eq!(record.digest, parse(key.as_str()).unwrap().digest());
//! assert_eq!(record.prefix, "sk_live");
//! assert!(record.is_usable_at(1_700_000_000));
//! ```

use std::sync::Arc;

use super::digest::KeyDigest;
use super::format::{KeyPrefix, MintedKey, base62_text, mint};
use crate::random::{RandomError, RandomSource, bytes};
use crate::scopes::Scopes;

/// Characters of a generated record id (16 random bytes in base62).
pub const ID_LEN: usize = 22;

/// What is stored about an API key. The plaintext key never is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKeyRecord {
    /// Stable public identifier of the key (not secret; used to revoke it).
    pub id: String,
    /// Human-readable name (e.g. `"ci"`).
    pub name: String,
    /// The key's readable prefix (e.g. `"sk_live"`).
    pub prefix: String,
    /// SHA-256 of the whole key string.
    pub digest: KeyDigest,
    /// The subject that owns the key. Shared, so the `Principal` built for
    /// every admitted request takes a reference rather than a copy.
    pub owner: Arc<str>,
    /// What the key may do.
    pub scopes: Scopes,
    /// Creation time, Unix seconds.
    pub created_at: u64,
    /// Expiry, Unix seconds; the key is refused from this second on.
    pub expires_at: Option<u64>,
    /// Revocation time, Unix seconds; the key is refused from then on.
    pub revoked_at: Option<u64>,
    /// Last successful use, Unix seconds (updated in batches, so it lags).
    pub last_used_at: Option<u64>,
}

impl ApiKeyRecord {
    /// Whether the key may be used at `now` (Unix seconds): neither expired
    /// nor revoked.
    pub fn is_usable_at(&self, now: u64) -> bool {
        self.expires_at.is_none_or(|t| now < t) && self.revoked_at.is_none_or(|t| now < t)
    }
}

/// The description of a key to mint.
#[derive(Clone, Debug)]
pub struct NewApiKey {
    prefix: KeyPrefix,
    owner: String,
    name: String,
    scopes: Scopes,
    expires_at: Option<u64>,
}

impl NewApiKey {
    /// A key with `prefix`, owned by `owner`, with no name, no scopes and no
    /// expiry.
    pub fn new(prefix: KeyPrefix, owner: impl Into<String>) -> Self {
        Self {
            prefix,
            owner: owner.into(),
            name: String::new(),
            scopes: Scopes::none(),
            expires_at: None,
        }
    }

    /// Sets the human-readable name.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets the scopes.
    pub fn with_scopes(mut self, scopes: Scopes) -> Self {
        self.scopes = scopes;
        self
    }

    /// Sets the expiry (Unix seconds).
    pub fn expires_at(mut self, at: u64) -> Self {
        self.expires_at = Some(at);
        self
    }

    /// Mints the key and its record, created at `now` (Unix seconds). The
    /// record id and the key come from `random`.
    pub fn mint(
        self,
        random: &dyn RandomSource,
        now: u64,
    ) -> Result<(MintedKey, ApiKeyRecord), RandomError> {
        let key = mint(&self.prefix, random)?;
        let id = base62_text(&bytes::<16>(random)?, ID_LEN);
        let record = ApiKeyRecord {
            id,
            name: self.name,
            prefix: self.prefix.as_str().to_owned(),
            digest: key.digest(),
            owner: self.owner.into(),
            scopes: self.scopes,
            created_at: now,
            expires_at: self.expires_at,
            revoked_at: None,
            last_used_at: None,
        };
        Ok((key, record))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::OsRandom;

    fn record() -> ApiKeyRecord {
        NewApiKey::new(KeyPrefix::new("sk").unwrap(), "acme")
            .mint(&OsRandom, 100)
            .unwrap()
            .1
    }

    #[test]
    fn expired_and_revoked_records_are_unusable_from_that_second() {
        let mut r = record();
        assert!(r.is_usable_at(u64::MAX));
        r.expires_at = Some(200);
        assert!(r.is_usable_at(199));
        assert!(!r.is_usable_at(200));
        r.expires_at = None;
        r.revoked_at = Some(150);
        assert!(r.is_usable_at(149));
        assert!(!r.is_usable_at(150));
    }

    #[test]
    fn minted_records_get_distinct_base62_ids() {
        let (a, b) = (record(), record());
        assert_ne!(a.id, b.id);
        assert_eq!(a.id.len(), ID_LEN);
        assert!(a.id.bytes().all(|c| c.is_ascii_alphanumeric()));
    }
}
