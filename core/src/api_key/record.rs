use std::fmt;

use subtle::ConstantTimeEq as _;

use crate::scopes::Scopes;

/// The SHA-256 digest of an API key: the only form in which a key is stored.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyDigest(pub [u8; 32]);

impl KeyDigest {
    /// The digest as 64 lowercase hex characters (for display and logs).
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Constant-time comparison of two digests.
    pub fn ct_eq(&self, other: &KeyDigest) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for KeyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A prefix identifies a record in logs without printing the whole digest.
        write!(f, "KeyDigest({}…)", &self.to_hex()[..8])
    }
}

/// What is stored about an API key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKeyRecord {
    /// Stable public identifier of the key.
    pub id: String,
    /// Human-readable name (e.g. `"ci"`).
    pub name: String,
    /// The key's readable prefix (e.g. `"sk_live"`).
    pub prefix: String,
    /// SHA-256 of the whole key string.
    pub digest: KeyDigest,
    /// The subject that owns the key.
    pub owner: String,
    /// What the key may do.
    pub scopes: Scopes,
    /// Creation time, Unix seconds.
    pub created_at: u64,
    /// Expiry, Unix seconds; the key is refused from this second on.
    pub expires_at: Option<u64>,
    /// Revocation time, Unix seconds; the key is refused from then on.
    pub revoked_at: Option<u64>,
    /// Last successful use, Unix seconds (updated in batches).
    pub last_used_at: Option<u64>,
}

impl ApiKeyRecord {
    /// Whether the key may be used at `now` (Unix seconds): neither expired
    /// nor revoked.
    pub fn is_usable_at(&self, now: u64) -> bool {
        self.expires_at.is_none_or(|t| now < t) && self.revoked_at.is_none_or(|t| now < t)
    }
}
