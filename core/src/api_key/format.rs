//! The API key format: minting, parsing and the checksum.
//!
//! A key reads `{prefix}_{random}{checksum}`:
//!
//! ```text
//! key      = prefix "_" random checksum
//! prefix   = [a-z0-9] [a-z0-9_]{0,15}        ; 1-16 chars, no trailing "_"
//! random   = 43 * base62                     ; 32 bytes from the OS CSPRNG
//! checksum = 6 * base62                      ; CRC-32 of `prefix "_" random`
//! base62   = [0-9A-Za-z]
//! ```
//!
//! - `random` is the 32 random bytes as one big-endian number written in
//!   base62, left-padded with `0` to 43 characters (62^43 > 2^256).
//! - `checksum` is the CRC-32 (IEEE, as in zip and PNG) of the ASCII text
//!   `prefix "_" random`, written the same way in 6 characters.
//! - The body after the last `_` is therefore always exactly 49 characters
//!   of `[0-9A-Za-z]`, and a prefix never ends with `_`, so the split is
//!   unambiguous.
//!
//! [`parse`] checks the grammar and the checksum before anything else, so a
//! mistyped or invented key is refused without a store lookup. A secret
//! scanner recognises keys with [`SCANNER_REGEX`] (any prefix) or the
//! same pattern with the prefix spelled out, e.g.
//! `\bsk_live_[0-9A-Za-z]{49}\b`, and may confirm a hit by recomputing the
//! checksum.
//!
//! ```
//! use keystile_core::api_key::{KeyPrefix, mint, parse};
//! use keystile_core::random::OsRandom;
//!
//! let prefix = KeyPrefix::new("sk_live").unwrap();
//! let key = mint(&prefix, &OsRandom).unwrap();
//! assert!(key.as_str().starts_with("sk_live_"));
//! assert_eq!(key.as_str().len(), "sk_live_".len() + 49);
//!
//! let parsed = parse(key.as_str()).unwrap();
//! assert_eq!(parsed.prefix(), "sk_live");
//! assert_eq!(parsed.digest(), key.digest());
//!
//! // Debug shows the prefix and the last four characters only.
//! let shown = format!("{key:?}");
//! assert!(shown.starts_with("MintedKey(sk_live_…"));
//! assert!(!shown.contains(&key.as_str()[8..40]));
//!
//! // A typo fails the checksum: no store is asked.
//! let mut typo = key.as_str().to_owned();
//! typo.replace_range(20..21, if &typo[20..21] == "a" { "b" } else { "a" });
//! assert!(parse(&typo).is_err());
//! ```

use std::fmt;

use zeroize::Zeroizing;

use super::digest::KeyDigest;
use crate::random::{RandomError, RandomSource};

/// The longest prefix accepted, in characters.
pub const MAX_PREFIX_LEN: usize = 16;
/// Characters of the random part.
pub const RANDOM_LEN: usize = 43;
/// Characters of the checksum.
pub const CHECKSUM_LEN: usize = 6;
/// Characters after the separating `_`.
pub const BODY_LEN: usize = RANDOM_LEN + CHECKSUM_LEN;
/// The longest well-formed key, in characters.
pub const MAX_KEY_LEN: usize = MAX_PREFIX_LEN + 1 + BODY_LEN;
/// A regular expression matching any keystile API key, for secret scanners.
pub const SCANNER_REGEX: &str = r"\b[a-z0-9](?:[a-z0-9_]{0,14}[a-z0-9])?_[0-9A-Za-z]{49}\b";

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Why a text is not a well-formed API key, or a prefix is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFormatError {
    /// The prefix is empty, longer than 16 characters, uses characters other
    /// than `a-z 0-9 _`, or starts or ends with `_`.
    #[error("key prefix must be 1-16 characters of a-z 0-9 _, not starting or ending with _")]
    InvalidPrefix,
    /// The text is longer than any key can be.
    #[error("not an API key: too long")]
    TooLong,
    /// The text has no `_` separating prefix and body.
    #[error("not an API key: no prefix separator")]
    MissingSeparator,
    /// The body is not exactly 49 base62 characters.
    #[error("not an API key: the body must be 49 characters of 0-9 A-Z a-z")]
    InvalidBody,
    /// The checksum does not match: a typo or an invented key.
    #[error("not an API key: checksum mismatch")]
    ChecksumMismatch,
}

/// A validated key prefix such as `sk_live`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct KeyPrefix(Box<str>);

impl KeyPrefix {
    /// Validates `prefix`: 1-16 characters of `a-z 0-9 _`, not starting or
    /// ending with `_`.
    pub fn new(prefix: &str) -> Result<Self, KeyFormatError> {
        if is_valid_prefix(prefix) {
            Ok(Self(prefix.into()))
        } else {
            Err(KeyFormatError::InvalidPrefix)
        }
    }

    /// The prefix text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for KeyPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyPrefix({})", self.0)
    }
}

impl fmt::Display for KeyPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for KeyPrefix {
    type Err = KeyFormatError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

fn is_valid_prefix(prefix: &str) -> bool {
    let bytes = prefix.as_bytes();
    (1..=MAX_PREFIX_LEN).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
        && bytes.first() != Some(&b'_')
        && bytes.last() != Some(&b'_')
}

/// A freshly minted key: the only time the plaintext exists.
///
/// Show it to its owner once and drop it; the text is wiped from memory on
/// drop. Store only [`MintedKey::digest`]. `Debug` prints the prefix and the
/// last four characters, enough to recognise a key in a list.
pub struct MintedKey {
    text: Zeroizing<String>,
    prefix_len: usize,
}

impl MintedKey {
    /// The plaintext key.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The prefix (without the separating `_`).
    pub fn prefix(&self) -> &str {
        &self.text[..self.prefix_len]
    }

    /// The SHA-256 digest to store.
    pub fn digest(&self) -> KeyDigest {
        KeyDigest::of(&self.text)
    }

    /// The last four characters, for display next to the prefix.
    pub fn last4(&self) -> &str {
        &self.text[self.text.len() - 4..]
    }
}

impl fmt::Debug for MintedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MintedKey({}_…{})", self.prefix(), self.last4())
    }
}

/// Mints a key with `prefix` from 32 bytes of `random` (use
/// [`OsRandom`](crate::random::OsRandom) outside tests).
pub fn mint(prefix: &KeyPrefix, random: &dyn RandomSource) -> Result<MintedKey, RandomError> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    random.fill(bytes.as_mut())?;
    let mut text = Zeroizing::new(String::with_capacity(prefix.0.len() + 1 + BODY_LEN));
    text.push_str(&prefix.0);
    text.push('_');
    let mut digits = Zeroizing::new([0u8; RANDOM_LEN]);
    base62_digits(bytes.as_mut(), digits.as_mut());
    text.extend(digits.iter().map(|d| char::from(ALPHABET[usize::from(*d)])));
    let mut checksum = checksum(text.as_bytes()).to_be_bytes();
    let mut check_digits = [0u8; CHECKSUM_LEN];
    base62_digits(&mut checksum, &mut check_digits);
    text.extend(
        check_digits
            .iter()
            .map(|d| char::from(ALPHABET[usize::from(*d)])),
    );
    Ok(MintedKey {
        prefix_len: prefix.0.len(),
        text,
    })
}

/// A presented key that passed the grammar and checksum checks.
///
/// It borrows the request's text, so parsing allocates nothing.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ParsedKey<'a> {
    text: &'a str,
    prefix_len: usize,
}

impl<'a> ParsedKey<'a> {
    /// The prefix (without the separating `_`).
    pub fn prefix(&self) -> &'a str {
        &self.text[..self.prefix_len]
    }

    /// The SHA-256 digest of the whole key, to look up in a store.
    pub fn digest(&self) -> KeyDigest {
        KeyDigest::of(self.text)
    }
}

impl fmt::Debug for ParsedKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ParsedKey({}_…{})",
            self.prefix(),
            &self.text[self.text.len() - 4..]
        )
    }
}

/// Checks that `text` is a well-formed key with a correct checksum.
pub fn parse(text: &str) -> Result<ParsedKey<'_>, KeyFormatError> {
    if text.len() > MAX_KEY_LEN {
        return Err(KeyFormatError::TooLong);
    }
    // The body has a fixed width, so a well-formed key has its separator
    // exactly BODY_LEN + 1 bytes from the end: no search. When that byte is
    // not `_` or the body is not all base62, the general search below
    // classifies the error as before.
    let split = match text.len().checked_sub(BODY_LEN + 1) {
        Some(split)
            if text.as_bytes()[split] == b'_' && all_base62(&text.as_bytes()[split + 1..]) =>
        {
            split
        }
        _ => {
            let split = text.rfind('_').ok_or(KeyFormatError::MissingSeparator)?;
            let body = &text.as_bytes()[split + 1..];
            if body.len() != BODY_LEN || !body.iter().all(u8::is_ascii_alphanumeric) {
                // Same order as before: a bad prefix is named first.
                if !is_valid_prefix(&text[..split]) {
                    return Err(KeyFormatError::InvalidPrefix);
                }
                return Err(KeyFormatError::InvalidBody);
            }
            split
        }
    };
    if !is_valid_prefix(&text[..split]) {
        return Err(KeyFormatError::InvalidPrefix);
    }
    let (checked, check) = text.split_at(text.len() - CHECKSUM_LEN);
    // Six base62 digits can exceed u32; compare in u64 so an overflowing
    // checksum is a mismatch rather than a wrap-around match.
    let presented = check
        .bytes()
        .fold(0u64, |acc, b| acc * 62 + u64::from(digit_value(b)));
    if presented != u64::from(checksum(checked.as_bytes())) {
        return Err(KeyFormatError::ChecksumMismatch);
    }
    Ok(ParsedKey {
        text,
        prefix_len: split,
    })
}

fn checksum(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

/// Base62 digit values by byte; `NOT_BASE62` for every other byte.
const BASE62_VALUES: [u8; 256] = {
    let mut table = [NOT_BASE62; 256];
    let mut i = 0;
    while i < 62 {
        table[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    table
};

/// The table's mark for a byte that is not a base62 digit (its top bit).
const NOT_BASE62: u8 = 0x80;

/// Whether every byte is a base62 digit: one table load and OR per byte,
/// no branch per byte (this runs on every request's key).
fn all_base62(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .fold(0u8, |marks, &b| marks | BASE62_VALUES[usize::from(b)])
        & NOT_BASE62
        == 0
}

fn digit_value(b: u8) -> u8 {
    // parse() admits only base62 digits here; anything else counts as 0.
    BASE62_VALUES[usize::from(b)] & !NOT_BASE62
}

/// Writes the big-endian number in `number` as base62 digits (values 0-61)
/// into `out`, most significant first, left-padded with zeros. `number` is
/// consumed (divided down to zero). `out` must be long enough.
fn base62_digits(number: &mut [u8], out: &mut [u8]) {
    for slot in out.iter_mut().rev() {
        let mut remainder = 0u32;
        for byte in number.iter_mut() {
            let value = (remainder << 8) | u32::from(*byte);
            // value < 62 * 256, so the quotient fits a byte.
            *byte = (value / 62) as u8;
            remainder = value % 62;
        }
        *slot = remainder as u8;
    }
}

/// Base62 text for an id: `bytes` as one big-endian number in `len`
/// characters.
pub(crate) fn base62_text(bytes: &[u8], len: usize) -> String {
    let mut number = bytes.to_vec();
    let mut digits = vec![0u8; len];
    base62_digits(&mut number, &mut digits);
    digits
        .iter()
        .map(|d| char::from(ALPHABET[usize::from(*d)]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_base62_table_agrees_with_the_alphabet_for_every_byte() {
        for b in 0..=u8::MAX {
            let position = ALPHABET.iter().position(|&a| a == b);
            assert_eq!(all_base62(&[b]), position.is_some(), "byte {b}");
            assert_eq!(all_base62(&[b'0', b, b'z']), position.is_some(), "byte {b}");
            if let Some(value) = position {
                assert_eq!(usize::from(digit_value(b)), value, "byte {b}");
            }
        }
        assert!(all_base62(b""));
    }

    use crate::random::OsRandom;
    use proptest::prelude::*;

    fn fixed(byte: u8) -> impl Fn(&mut [u8]) -> Result<(), RandomError> + Send + Sync {
        move |dest: &mut [u8]| {
            dest.fill(byte);
            Ok(())
        }
    }

    #[test]
    fn prefix_rules() {
        for ok in [
            "sk_live",
            "a",
            "ghp",
            "rk_test_2",
            "0abc",
            "abcdefghijklmnop",
        ] {
            assert!(KeyPrefix::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "sk_",
            "_sk",
            "SK",
            "sk-live",
            "sk live",
            "abcdefghijklmnopq",
            "é",
        ] {
            assert_eq!(
                KeyPrefix::new(bad),
                Err(KeyFormatError::InvalidPrefix),
                "{bad}"
            );
        }
    }

    #[test]
    fn all_zero_and_all_ones_random_encode_to_fixed_width() {
        let prefix = KeyPrefix::new("t").unwrap();
        let zero = mint(&prefix, &fixed(0)).unwrap();
        assert_eq!(&zero.as_str()[2..2 + RANDOM_LEN], "0".repeat(RANDOM_LEN));
        let max = mint(&prefix, &fixed(0xff)).unwrap();
        // 2^256 - 1 in base62 still fits 43 digits.
        assert_eq!(max.as_str().len(), 2 + BODY_LEN);
        assert!(parse(zero.as_str()).is_ok());
        assert!(parse(max.as_str()).is_ok());
    }

    #[test]
    fn base62_of_known_numbers() {
        let mut n = [0u8, 61];
        let mut out = [0u8; 2];
        base62_digits(&mut n, &mut out);
        assert_eq!(out, [0, 61]);
        let mut n = [0u8, 62];
        base62_digits(&mut n, &mut out);
        assert_eq!(out, [1, 0]);
        assert_eq!(base62_text(&[0x01, 0x00], 3), "048"); // 256 = 4*62 + 8
    }

    #[test]
    fn failing_random_source_mints_nothing() {
        let failing = |_: &mut [u8]| Err(RandomError("no entropy".into()));
        let prefix = KeyPrefix::new("sk").unwrap();
        assert!(mint(&prefix, &failing).is_err());
    }

    #[test]
    fn each_kind_of_bad_text_has_its_error() {
        let key = mint(&KeyPrefix::new("sk_live").unwrap(), &OsRandom).unwrap();
        let text = key.as_str();
        assert_eq!(parse(""), Err(KeyFormatError::MissingSeparator));
        assert_eq!(parse("garbage"), Err(KeyFormatError::MissingSeparator));
        assert_eq!(
            parse(&"x".repeat(MAX_KEY_LEN + 1)),
            Err(KeyFormatError::TooLong)
        );
        assert_eq!(
            parse(&text[..text.len() - 1]),
            Err(KeyFormatError::InvalidBody)
        );
        assert_eq!(
            parse(&format!("SK_LIVE{}", &text[7..])),
            Err(KeyFormatError::InvalidPrefix)
        );
        assert_eq!(
            parse(&format!("{}-{}", &text[..20], &text[21..])),
            Err(KeyFormatError::InvalidBody)
        );
        assert_eq!(
            parse(&format!("{}zzzzzz", &text[..text.len() - 6])),
            Err(KeyFormatError::ChecksumMismatch)
        );
        // Another prefix over the same body fails the checksum: the prefix is
        // covered by it.
        assert_eq!(
            parse(&format!("sk_test{}", &text[7..])),
            Err(KeyFormatError::ChecksumMismatch)
        );
    }

    #[test]
    fn debug_shows_prefix_and_last_four_only() {
        let key = mint(&KeyPrefix::new("sk_live").unwrap(), &OsRandom).unwrap();
        let shown = format!("{key:?}");
        assert_eq!(shown, format!("MintedKey(sk_live_…{})", key.last4()));
        let parsed = parse(key.as_str()).unwrap();
        assert_eq!(
            format!("{parsed:?}"),
            format!("ParsedKey(sk_live_…{})", key.last4())
        );
    }

    #[test]
    fn scanner_regex_finds_keys_in_text_and_nothing_else() {
        let scanner = regex::Regex::new(SCANNER_REGEX).unwrap();
        for prefix in ["sk_live", "a", "rk_test_2", "abcdefghijklmnop"] {
            let key = mint(&KeyPrefix::new(prefix).unwrap(), &OsRandom).unwrap();
            let text = format!("export TOKEN=\"{}\"\n", key.as_str());
            let found: Vec<_> = scanner.find_iter(&text).map(|m| m.as_str()).collect();
            assert_eq!(found, [key.as_str()], "{prefix}");
            let specific = regex::Regex::new(&format!(r"\b{prefix}_[0-9A-Za-z]{{49}}\b")).unwrap();
            assert!(specific.is_match(&text));
        }
        let key = mint(&KeyPrefix::new("sk").unwrap(), &OsRandom).unwrap();
        let text = key.as_str();
        assert!(!scanner.is_match(&text[..text.len() - 1]), "48-char body");
        assert!(!scanner.is_match(&format!("{text}x")), "50-char body");
        assert!(!scanner.is_match("hello_world"));
    }

    fn prefixes() -> impl Strategy<Value = String> {
        "[a-z0-9]([a-z0-9_]{0,14}[a-z0-9])?"
    }

    proptest! {
        #[test]
        fn every_minted_key_parses_and_verifies(prefix in prefixes(), random in any::<[u8; 32]>()) {
            let source = move |dest: &mut [u8]| {
                dest.copy_from_slice(&random);
                Ok(())
            };
            let key = mint(&KeyPrefix::new(&prefix).unwrap(), &source).unwrap();
            let parsed = parse(key.as_str()).unwrap();
            prop_assert_eq!(parsed.prefix(), prefix.as_str());
            prop_assert!(parsed.digest().ct_eq(&key.digest()));
            prop_assert_eq!(parsed.digest(), KeyDigest::of(key.as_str()));
        }

        #[test]
        fn any_single_character_change_is_refused_or_changes_the_digest(
            random in any::<[u8; 32]>(),
            position in any::<prop::sample::Index>(),
            replacement in any::<char>(),
        ) {
            let source = move |dest: &mut [u8]| {
                dest.copy_from_slice(&random);
                Ok(())
            };
            let key = mint(&KeyPrefix::new("sk_live").unwrap(), &source).unwrap();
            let mut chars: Vec<char> = key.as_str().chars().collect();
            let i = position.index(chars.len());
            prop_assume!(chars[i] != replacement);
            chars[i] = replacement;
            let changed: String = chars.into_iter().collect();
            // Either the parser refuses it, or it is a different key whose
            // digest no store holds for the original.
            match parse(&changed) {
                Err(_) => {}
                Ok(parsed) => prop_assert_ne!(parsed.digest(), key.digest()),
            }
        }

        #[test]
        fn single_character_changes_in_the_body_are_caught_by_the_checksum(
            random in any::<[u8; 32]>(),
            position in 0..BODY_LEN,
            replacement in prop::sample::select(ALPHABET.to_vec()),
        ) {
            let source = move |dest: &mut [u8]| {
                dest.copy_from_slice(&random);
                Ok(())
            };
            let key = mint(&KeyPrefix::new("sk_live").unwrap(), &source).unwrap();
            let mut bytes = key.as_str().as_bytes().to_vec();
            let i = "sk_live_".len() + position;
            prop_assume!(bytes[i] != replacement);
            bytes[i] = replacement;
            let changed = String::from_utf8(bytes).unwrap();
            prop_assert!(parse(&changed).is_err());
        }

        #[test]
        fn arbitrary_text_never_panics(text in ".{0,80}") {
            let _ = parse(&text);
        }
    }
}
