//! The SHA-256 digest of an API key: the only form in which a key is stored.
//!
//! Why SHA-256 and not a password hash such as argon2: keys are 256 bits
//! from a CSPRNG, so there is nothing to brute-force, and a fast fixed-width
//! digest can be the store's index key. The digest is kept as 32 raw bytes
//! (hex only for display) and compared in constant time.
//!
//! ```
//! use keystile_core::api_key::KeyDigest;
//!
//! let digest = KeyDigest::of("abc");
//! assert_eq!(
//!     digest.to_hex(),
//!     "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
//! );
//! assert!(digest.ct_eq(&KeyDigest::from_hex(&digest.to_hex()).unwrap()));
//! ```

use std::fmt;

use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// The SHA-256 digest of an API key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyDigest(pub [u8; 32]);

impl KeyDigest {
    /// The digest of the whole key text.
    pub fn of(key: &str) -> Self {
        Self(Sha256::digest(key.as_bytes()).into())
    }

    /// Reads 64 hex characters (either case).
    pub fn from_hex(text: &str) -> Option<Self> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(text, &mut out).ok()?;
        Some(Self(out))
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The digest as 64 lowercase hex characters (for display and logs).
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The first 8 hex characters: enough to tell keys apart in a list,
    /// too little to serve as the digest.
    pub fn short_hex(&self) -> String {
        hex::encode(&self.0[..4])
    }

    /// Constant-time comparison of two digests.
    pub fn ct_eq(&self, other: &KeyDigest) -> bool {
        // Four word-wide XORs folded together, then one `subtle` compare:
        // no branch on the bytes, and a fraction of subtle's per-byte
        // comparison (one optimisation barrier per byte) on the hot path.
        let difference = self
            .0
            .chunks_exact(8)
            .zip(other.0.chunks_exact(8))
            .fold(0u64, |acc, (a, b)| acc | (word(a) ^ word(b)));
        difference.ct_eq(&0).into()
    }
}

/// Eight bytes as a word (callers pass `chunks_exact(8)` chunks).
fn word(bytes: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(bytes);
    u64::from_ne_bytes(word)
}

impl fmt::Debug for KeyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A short prefix identifies a record in logs without printing the
        // whole digest.
        write!(f, "KeyDigest({}…)", self.short_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_known_answers() {
        // FIPS 180-2 appendix B.1 and the empty string.
        assert_eq!(
            KeyDigest::of("abc").to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            KeyDigest::of("").to_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn constant_time_equality_and_hex_round_trip() {
        let a = KeyDigest::of("a");
        let b = KeyDigest::of("b");
        assert!(a.ct_eq(&a));
        assert!(!a.ct_eq(&b));
        // A difference in any one byte, in any bit, is seen.
        for i in 0..32 {
            for bit in 0..8 {
                let mut c = a;
                c.0[i] ^= 1 << bit;
                assert!(!a.ct_eq(&c), "byte {i} bit {bit}");
            }
        }
        assert_eq!(KeyDigest::from_hex(&a.to_hex()), Some(a));
        assert_eq!(KeyDigest::from_hex(&a.to_hex().to_uppercase()), Some(a));
        assert_eq!(KeyDigest::from_hex("abcd"), None);
        assert_eq!(KeyDigest::from_hex(&"zz".repeat(32)), None);
    }

    #[test]
    fn debug_prints_only_a_short_prefix() {
        let d = KeyDigest::of("abc");
        assert_eq!(format!("{d:?}"), "KeyDigest(ba7816bf…)");
    }
}
