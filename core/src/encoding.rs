//! The one base64 configuration keystile uses: URL-safe, no padding,
//! canonical only.
//!
//! Padding, the standard alphabet, whitespace and non-canonical trailing bits
//! are all refused, so each value has exactly one textual form.
//!
//! ```
//! use keystile_core::encoding::{decode, encode};
//!
//! let text = encode(b"keystile");
//! assert_eq!(text, "a2V5c3RpbGU");
//! assert_eq!(decode(&text).unwrap(), b"keystile");
//! assert!(decode("a2V5c3RpbGU=").is_err()); // padded
//! ```

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

pub use base64::DecodeError;

/// Encodes bytes as canonical unpadded base64url.
pub fn encode(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Appends the canonical unpadded base64url of `bytes` to `out`.
pub fn encode_into(bytes: impl AsRef<[u8]>, out: &mut String) {
    URL_SAFE_NO_PAD.encode_string(bytes, out);
}

/// Decodes canonical unpadded base64url; anything else is an error.
pub fn decode(text: impl AsRef<[u8]>) -> Result<Vec<u8>, DecodeError> {
    // The engine's default config rejects padding and non-zero trailing bits.
    URL_SAFE_NO_PAD.decode(text)
}

/// Decodes into a fixed-size array; the length must match exactly.
pub fn decode_array<const N: usize>(text: impl AsRef<[u8]>) -> Option<[u8; N]> {
    let text = text.as_ref();
    if base64::decoded_len_estimate(text.len()) < N || text.len() != (N * 4).div_ceil(3) {
        return None;
    }
    let mut out = [0u8; N];
    match URL_SAFE_NO_PAD.decode_slice(text, &mut out) {
        Ok(n) if n == N => Some(out),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_non_canonical_forms() {
        assert!(decode("YQ").is_ok());
        assert!(decode("YR").is_err(), "non-zero trailing bits");
        assert!(decode("YQ==").is_err(), "padding");
        assert!(decode("Y+8").is_err(), "standard alphabet");
        assert!(decode("Y Q").is_err(), "whitespace");
    }

    #[test]
    fn decode_array_requires_exact_length() {
        let text = encode([7u8; 32]);
        assert_eq!(decode_array::<32>(&text), Some([7u8; 32]));
        assert_eq!(decode_array::<31>(&text), None);
        assert_eq!(decode_array::<32>(&text[1..]), None);
    }
}
