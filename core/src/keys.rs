//! Signing keys and the keyring that rotates them.
//!
//! A [`SigningKey`] is at least [`MIN_KEY_LEN`] bytes of secret; shorter keys
//! are refused when the key is built, never at first use. Its `Debug` never
//! prints the bytes, and the bytes are wiped when the key is dropped.
//!
//! A [`Keyring`] holds one primary key, which signs, and any number of
//! fallback keys, which only verify. Rotating means: make the new key primary
//! and keep the old one as a fallback until every token it signed has
//! expired, so nobody is logged out early. Each key has a short [`KeyId`]
//! carried in every token, so verification picks the key directly.
//!
//! Keys load from `KEYSTILE_SECRET` and `KEYSTILE_SECRET_FALLBACKS`
//! (comma-separated), each base64url (unpadded) or hex; see
//! [`Keyring::from_env`].
//!
//! ```
//! use keystile_core::keys::{Keyring, SigningKey};
//!
//! let old = SigningKey::generate().unwrap();
//! let new = SigningKey::generate().unwrap();
//! let keyring = Keyring::new(new).with_fallback(old).unwrap();
//! assert_eq!(keyring.len(), 2);
//! assert!(SigningKey::from_bytes(&[0u8; 16]).is_err()); // too short
//! ```

use std::fmt;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::encoding;
use crate::random::{OsRandom, RandomError, RandomSource};

/// The shortest secret accepted, in bytes.
pub const MIN_KEY_LEN: usize = 32;
/// The longest secret accepted, in bytes.
pub const MAX_KEY_LEN: usize = 1024;
/// Length of a generated secret, in bytes.
pub const GENERATED_KEY_LEN: usize = 32;
/// The environment variable holding the primary secret.
pub const SECRET_VAR: &str = "KEYSTILE_SECRET";
/// The environment variable holding comma-separated fallback secrets.
pub const FALLBACKS_VAR: &str = "KEYSTILE_SECRET_FALLBACKS";

/// Why a key, key id or keyring was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The secret decodes to fewer than [`MIN_KEY_LEN`] bytes.
    #[error("secret is {len} bytes; at least {MIN_KEY_LEN} are required")]
    TooShort {
        /// Decoded length of the refused secret.
        len: usize,
    },
    /// The secret decodes to more than [`MAX_KEY_LEN`] bytes.
    #[error("secret is {len} bytes; at most {MAX_KEY_LEN} are accepted")]
    TooLong {
        /// Decoded length of the refused secret.
        len: usize,
    },
    /// The secret text is neither hex nor unpadded base64url.
    #[error("secret is neither hex nor unpadded base64url")]
    Encoding,
    /// A key id is empty, longer than 16 characters, or not `[A-Za-z0-9_-]`.
    #[error("key id must be 1-16 characters of A-Z a-z 0-9 _ -")]
    InvalidKeyId,
    /// Two keys in one keyring share a key id.
    #[error("two keys share the key id {0:?}")]
    DuplicateKeyId(String),
    /// A required environment variable is not set.
    #[error("{var} is not set; generate a secret with `keystile secret generate`")]
    MissingVar {
        /// The variable's name.
        var: &'static str,
    },
    /// An environment variable holds an unusable secret.
    #[error("{var}: {source}")]
    InvalidVar {
        /// The variable's name.
        var: &'static str,
        /// What is wrong with its value.
        source: Box<KeyError>,
    },
    /// Generating a key failed.
    #[error(transparent)]
    Random(#[from] RandomError),
}

/// A short public identifier of a key, carried in tokens.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(Arc<str>);

impl KeyId {
    /// Longest key id accepted.
    pub const MAX_LEN: usize = 16;

    /// A key id from text: 1-16 characters of `[A-Za-z0-9_-]`.
    pub fn new(id: &str) -> Result<Self, KeyError> {
        if Self::is_valid(id.as_bytes()) {
            Ok(Self(id.into()))
        } else {
            Err(KeyError::InvalidKeyId)
        }
    }

    /// Whether `id` has the key-id grammar.
    pub fn is_valid(id: &[u8]) -> bool {
        !id.is_empty()
            && id.len() <= Self::MAX_LEN
            && id
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-')
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id derived from a secret: 8 base64url characters of a SHA-256
    /// over it, so processes sharing a secret agree on its id.
    fn derive(secret: &[u8]) -> Self {
        let digest = Sha256::new()
            .chain_update(b"keystile key id\0")
            .chain_update(secret)
            .finalize();
        Self(encoding::encode(&digest[..6]).into())
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", self.0)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A secret signing key: at least 32 bytes, redacted in `Debug`, wiped on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SigningKey {
    bytes: Box<[u8]>,
    #[zeroize(skip)]
    id: KeyId,
}

impl SigningKey {
    /// A key from raw secret bytes, with an id derived from them.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        if bytes.len() < MIN_KEY_LEN {
            return Err(KeyError::TooShort { len: bytes.len() });
        }
        if bytes.len() > MAX_KEY_LEN {
            return Err(KeyError::TooLong { len: bytes.len() });
        }
        Ok(Self {
            id: KeyId::derive(bytes),
            bytes: bytes.into(),
        })
    }

    /// A key from its text form: unpadded base64url, or hex (an even number
    /// of hex digits). Leading and trailing whitespace is ignored.
    pub fn from_encoded(text: &str) -> Result<Self, KeyError> {
        let bytes = Zeroizing::new(decode_secret(text.trim())?);
        Self::from_bytes(&bytes)
    }

    /// A fresh 32-byte key from the OS CSPRNG.
    pub fn generate() -> Result<Self, KeyError> {
        Self::generate_from(&OsRandom)
    }

    /// A fresh 32-byte key from `source`.
    pub fn generate_from(source: &dyn RandomSource) -> Result<Self, KeyError> {
        let mut bytes = Zeroizing::new([0u8; GENERATED_KEY_LEN]);
        source.fill(bytes.as_mut())?;
        Self::from_bytes(bytes.as_ref())
    }

    /// Replaces the derived key id with an explicit one.
    pub fn with_id(mut self, id: KeyId) -> Self {
        self.id = id;
        self
    }

    /// This key's id.
    pub fn id(&self) -> &KeyId {
        &self.id
    }

    /// The secret in the text form `KEYSTILE_SECRET` accepts (base64url).
    pub fn to_encoded(&self) -> Zeroizing<String> {
        Zeroizing::new(encoding::encode(&self.bytes))
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("id", &self.id)
            .field("bytes", &"<redacted>")
            .finish()
    }
}

/// A fresh secret in the text form `KEYSTILE_SECRET` accepts.
pub fn generate_secret() -> Result<Zeroizing<String>, KeyError> {
    Ok(SigningKey::generate()?.to_encoded())
}

fn decode_secret(text: &str) -> Result<Vec<u8>, KeyError> {
    let is_hex = !text.is_empty()
        && text.len().is_multiple_of(2)
        && text.bytes().all(|b| b.is_ascii_hexdigit());
    if is_hex {
        hex::decode(text).map_err(|_| KeyError::Encoding)
    } else {
        encoding::decode(text).map_err(|_| KeyError::Encoding)
    }
}

/// One primary key that signs and fallback keys that only verify.
///
/// Cloning is cheap (the keys are shared).
#[derive(Clone)]
pub struct Keyring {
    keys: Arc<[SigningKey]>,
}

impl Keyring {
    /// A keyring with `primary` as its only key.
    pub fn new(primary: SigningKey) -> Self {
        Self {
            keys: Arc::from(vec![primary]),
        }
    }

    /// Adds a verify-only fallback key; its id must differ from the others.
    pub fn with_fallback(self, key: SigningKey) -> Result<Self, KeyError> {
        if self.keys.iter().any(|k| k.id == key.id) {
            return Err(KeyError::DuplicateKeyId(key.id.to_string()));
        }
        let mut keys = self.keys.to_vec();
        keys.push(key);
        Ok(Self { keys: keys.into() })
    }

    /// Loads the keyring from `KEYSTILE_SECRET` (primary, required) and
    /// `KEYSTILE_SECRET_FALLBACKS` (optional, comma-separated). An error
    /// names the variable and what is wrong with it.
    pub fn from_env() -> Result<Self, KeyError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// Like [`Keyring::from_env`], reading variables through `get`.
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Self, KeyError> {
        let invalid = |var: &'static str| {
            move |e: KeyError| KeyError::InvalidVar {
                var,
                source: Box::new(e),
            }
        };
        let primary =
            Zeroizing::new(get(SECRET_VAR).ok_or(KeyError::MissingVar { var: SECRET_VAR })?);
        let mut ring = Self::new(SigningKey::from_encoded(&primary).map_err(invalid(SECRET_VAR))?);
        if let Some(fallbacks) = get(FALLBACKS_VAR).map(Zeroizing::new) {
            for text in fallbacks
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
            {
                let key = SigningKey::from_encoded(text).map_err(invalid(FALLBACKS_VAR))?;
                ring = ring.with_fallback(key).map_err(invalid(FALLBACKS_VAR))?;
            }
        }
        Ok(ring)
    }

    /// [`Keyring::from_env`], or — when `KEYSTILE_SECRET` is not set — a
    /// keyring generated for this process only, with a `tracing` warning
    /// (for development servers: tokens then do not survive a restart nor
    /// verify in another process). A variable that is set but unusable is
    /// still an error.
    pub fn from_env_or_generate() -> Result<Self, KeyError> {
        match Self::from_env() {
            Err(KeyError::MissingVar { var: SECRET_VAR }) => {
                tracing::warn!(
                    "{SECRET_VAR} is not set: using a secret generated for this process only \
                     (set one with `keystile secret generate` to share tokens across processes)"
                );
                Self::generate()
            }
            other => other,
        }
    }

    /// A keyring with one freshly generated key (for development).
    pub fn generate() -> Result<Self, KeyError> {
        Ok(Self::new(SigningKey::generate()?))
    }

    /// The key that signs.
    pub fn primary(&self) -> &SigningKey {
        &self.keys[0]
    }

    /// The verify-only keys.
    pub fn fallbacks(&self) -> &[SigningKey] {
        &self.keys[1..]
    }

    /// All keys, primary first.
    pub fn keys(&self) -> &[SigningKey] {
        &self.keys
    }

    /// The key with id `id`, if any.
    pub fn get(&self, id: &str) -> Option<&SigningKey> {
        self.keys.iter().find(|k| k.id.as_str() == id)
    }

    /// Number of keys, primary included.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Always false: a keyring has a primary key.
    pub fn is_empty(&self) -> bool {
        false
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("primary", &self.primary().id)
            .field(
                "fallbacks",
                &self.fallbacks().iter().map(|k| &k.id).collect::<Vec<_>>(),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn short_keys_are_refused_at_construction() {
        assert_eq!(
            SigningKey::from_bytes(&[1; 31]).unwrap_err(),
            KeyError::TooShort { len: 31 }
        );
        assert!(SigningKey::from_bytes(&[1; 32]).is_ok());
        assert_eq!(
            SigningKey::from_bytes(&vec![1; MAX_KEY_LEN + 1]).unwrap_err(),
            KeyError::TooLong {
                len: MAX_KEY_LEN + 1
            }
        );
    }

    #[test]
    fn length_is_measured_in_decoded_bytes() {
        // 62 hex characters are 31 bytes.
        let hex31 = "ab".repeat(31);
        assert_eq!(
            SigningKey::from_encoded(&hex31).unwrap_err(),
            KeyError::TooShort { len: 31 }
        );
        assert!(SigningKey::from_encoded(&"ab".repeat(32)).is_ok());
    }

    #[test]
    fn debug_never_prints_key_bytes() {
        let key = SigningKey::from_bytes(&[0x41; 32]).unwrap();
        let debug = format!("{key:?}");
        assert!(debug.contains("<redacted>"));
        assert!(!debug.contains("65") && !debug.contains("AAAA") && !debug.contains("QUFB"));
    }

    #[test]
    fn generated_secret_round_trips_through_its_text_form() {
        let key = SigningKey::generate().unwrap();
        let again = SigningKey::from_encoded(&key.to_encoded()).unwrap();
        assert_eq!(key.bytes(), again.bytes());
        assert_eq!(key.id(), again.id());
        assert_eq!(key.to_encoded().len(), 43);
    }

    #[test]
    fn key_ids_are_validated() {
        assert!(KeyId::new("k1").is_ok());
        assert!(KeyId::new("").is_err());
        assert!(KeyId::new("a.b").is_err());
        assert!(KeyId::new(&"a".repeat(17)).is_err());
    }

    #[test]
    fn duplicate_key_ids_are_refused() {
        let key = SigningKey::from_bytes(&[3; 32]).unwrap();
        let err = Keyring::new(key.clone()).with_fallback(key).unwrap_err();
        assert!(matches!(err, KeyError::DuplicateKeyId(_)));
    }

    #[test]
    fn env_loading_names_the_variable() {
        let err = Keyring::from_vars(vars(&[])).unwrap_err();
        assert_eq!(err, KeyError::MissingVar { var: SECRET_VAR });
        assert!(err.to_string().contains("KEYSTILE_SECRET"));

        let err = Keyring::from_vars(vars(&[(SECRET_VAR, "c2hvcnQ")])).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("KEYSTILE_SECRET: secret is 5 bytes")
        );

        let good = SigningKey::generate().unwrap();
        let err = Keyring::from_vars(vars(&[
            (SECRET_VAR, &good.to_encoded()),
            (FALLBACKS_VAR, "not base64!"),
        ]))
        .unwrap_err();
        assert!(err.to_string().starts_with("KEYSTILE_SECRET_FALLBACKS:"));
    }

    #[test]
    fn env_loading_reads_primary_and_fallbacks() {
        let a = SigningKey::generate().unwrap();
        let b = SigningKey::generate().unwrap();
        let c = SigningKey::from_bytes(&[0xab; 32]).unwrap();
        let fallbacks = format!("{}, {}", b.to_encoded().as_str(), "ab".repeat(32));
        let ring = Keyring::from_vars(vars(&[
            (SECRET_VAR, &a.to_encoded()),
            (FALLBACKS_VAR, &fallbacks),
        ]))
        .unwrap();
        assert_eq!(ring.primary().id(), a.id());
        assert_eq!(ring.fallbacks().len(), 2);
        assert!(ring.get(c.id().as_str()).is_some());
    }
}
