//! The MAC primitive under every signed artifact: HMAC-SHA256, pre-keyed.
//!
//! A [`MacKey`] absorbs the key (and, for a codec, a domain prefix such as the
//! purpose label) once; each MAC then clones that state, which saves the two
//! key-block compressions per call. Verification compares the raw 32-byte tags
//! in constant time.
//!
//! ```
//! use keystile_core::mac::MacKey;
//!
//! // RFC 4231, test case 2.
//! let key = MacKey::new(b"Jefe");
//! let tag = key.compute(b"what do ya want for nothing?");
//! assert_eq!(
//!     hex::encode(tag),
//!     "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
//! );
//! assert!(key.verify(b"what do ya want for nothing?", &tag));
//! ```

use hmac::{Hmac, Mac as _};
use sha2::Sha256;

/// Length in bytes of an HMAC-SHA256 tag.
pub const TAG_LEN: usize = 32;

/// A pre-keyed HMAC-SHA256 state.
#[derive(Clone)]
pub struct MacKey {
    state: Hmac<Sha256>,
}

impl MacKey {
    /// Keys HMAC-SHA256 with `key` (any length, as HMAC allows; signing keys
    /// enforce their own minimum).
    pub fn new(key: &[u8]) -> Self {
        let state = <Hmac<Sha256> as hmac::digest::KeyInit>::new_from_slice(key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        Self { state }
    }

    /// A copy of this key that has already absorbed `prefix`; every MAC it
    /// makes covers `prefix || data`.
    pub fn with_prefix(&self, prefix: &[u8]) -> Self {
        let mut state = self.state.clone();
        state.update(prefix);
        Self { state }
    }

    /// The tag of `data`.
    pub fn compute(&self, data: &[u8]) -> [u8; TAG_LEN] {
        let mut state = self.state.clone();
        state.update(data);
        state.finalize().into_bytes().into()
    }

    /// Whether `tag` is the tag of `data`, compared in constant time.
    pub fn verify(&self, data: &[u8], tag: &[u8]) -> bool {
        let mut state = self.state.clone();
        state.update(data);
        state.verify_slice(tag).is_ok()
    }
}

impl std::fmt::Debug for MacKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MacKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4231_case_2() {
        let key = MacKey::new(b"Jefe");
        assert_eq!(
            hex::encode(key.compute(b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn rfc4231_case_2_through_a_prefix() {
        let key = MacKey::new(b"Jefe").with_prefix(b"what do ya ");
        let tag = key.compute(b"want for nothing?");
        assert_eq!(
            hex::encode(tag),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert!(key.verify(b"want for nothing?", &tag));
        let mut bad = tag;
        bad[16] ^= 1;
        assert!(!key.verify(b"want for nothing?", &bad));
        assert!(!key.verify(b"want for nothing?", &tag[..31]));
    }

    #[test]
    fn debug_is_redacted() {
        assert_eq!(
            format!("{:?}", MacKey::new(b"secret")),
            "MacKey(<redacted>)"
        );
    }
}
