//! Signed URLs: a link that carries its own proof, valid until it expires,
//! for one purpose, optionally once (magic links, download links, e-mail
//! confirmations).
//!
//! [`UrlSigner::sign`] appends `sig=<token>`: a [`SignedCodec`] token (its
//! own [`Purpose`]) over the SHA-256 of the URL's canonical form and a
//! random nonce. The canonical form is the lowercased scheme and host, the
//! port unless it is the scheme's default, the path with percent-encoding
//! normalised (escapes of unreserved characters decoded, the rest in
//! uppercase hex), and the query parameters decoded (refused unless UTF-8),
//! sorted by name (repeated names keep their order) and encoded one way.
//! So reordering differently named parameters or re-encoding them keeps the
//! signature valid; any added, removed or changed parameter, path, host or
//! scheme breaks it. The fragment is never sent to a server
//! and is not signed.
//!
//! ```
//! use std::time::Duration;
//! use keystile_core::clock::ManualClock;
//! use keystile_core::codec::Purpose;
//! use keystile_core::keys::Keyring;
//! use keystile_core::signed_url::{SignedUrlError, UrlSigner};
//!
//! let clock = ManualClock::at_unix(1_700_000_000);
//! let signer = UrlSigner::new(Keyring::generate().unwrap(), Purpose::new("download"))
//!     .clock(clock.shared());
//! let url = signer
//!     .sign("https://files.example.test/report.pdf?user=42&size=a4", Duration::from_secs(600))
//!     .unwrap();
//! assert!(signer.verify(&url).is_ok());
//!
//! // The same parameters in another order still verify; another value does not.
//! let reordered = url.replace("user=42&size=a4", "size=a4&user=42");
//! assert!(signer.verify(&reordered).is_ok());
//! let changed = url.replace("user=42", "user=43");
//! assert_eq!(signer.verify(&changed).unwrap_err(), SignedUrlError::BadSignature);
//!
//! clock.advance(Duration::from_secs(601));
//! assert_eq!(signer.verify(&url).unwrap_err(), SignedUrlError::Expired);
//! ```

use std::fmt;
use std::time::Duration;

use http::Uri;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::clock::SharedClock;
use crate::codec::{CodecError, Purpose, SignedCodec};
use crate::encoding;
use crate::keys::Keyring;
use crate::random::{OsRandom, RandomSource};
use crate::replay::{Redemption, ReplayStore};

/// The query parameter that carries the signature.
pub const SIGNATURE_PARAM: &str = "sig";

/// Why a URL could not be signed or was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignedUrlError {
    /// Not an absolute `http(s)` URL.
    #[error("not an absolute http(s) URL")]
    InvalidUrl,
    /// The URL to sign already has a `sig` parameter.
    #[error("the URL already carries a sig parameter")]
    AlreadySigned,
    /// No `sig` parameter, or more than one.
    #[error("the URL carries no signature")]
    Missing,
    /// The signature is not for this URL, this purpose or these keys.
    #[error("the signature does not match the URL")]
    BadSignature,
    /// The link has expired.
    #[error("the link has expired")]
    Expired,
    /// A single-use link was used before.
    #[error("the link was already used")]
    AlreadyUsed,
    /// The replay store could not answer (fail closed).
    #[error("the replay store is unavailable")]
    Unavailable,
    /// Signing failed (no randomness, a URL too long to seal).
    #[error("the URL could not be signed")]
    Sign,
}

/// What a verified URL proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedUrl {
    /// The link's random nonce: what single use burns.
    pub nonce: String,
    /// When the link expires (Unix seconds).
    pub expires_at: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct UrlClaims {
    /// base64url SHA-256 of the canonical URL.
    h: String,
    /// base64url random nonce.
    n: String,
}

/// Signs and verifies URLs for one purpose; see the [module docs](self).
#[derive(Clone)]
pub struct UrlSigner {
    codec: SignedCodec,
}

impl UrlSigner {
    /// Signs with `keyring` (fallback keys verify) for `purpose`.
    pub fn new(keyring: Keyring, purpose: Purpose) -> Self {
        Self {
            codec: SignedCodec::new(keyring, purpose),
        }
    }

    /// Reads time from `clock`.
    #[must_use]
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.codec = self.codec.clock(clock);
        self
    }

    /// `url` with a `sig` parameter that makes it valid for `ttl`.
    pub fn sign(&self, url: &str, ttl: Duration) -> Result<String, SignedUrlError> {
        let (canonical, signature) = canonical(url)?;
        if signature.is_some() {
            return Err(SignedUrlError::AlreadySigned);
        }
        let mut nonce = [0u8; 16];
        OsRandom
            .fill(&mut nonce)
            .map_err(|_| SignedUrlError::Sign)?;
        let claims = UrlClaims {
            h: encoding::encode(Sha256::digest(canonical.as_bytes())),
            n: encoding::encode(nonce),
        };
        let token = self
            .codec
            .seal(&claims, ttl)
            .map_err(|_| SignedUrlError::Sign)?;
        let (base, fragment) = match url.split_once('#') {
            Some((base, fragment)) => (base, Some(fragment)),
            None => (url, None),
        };
        let separator = if base.contains('?') { '&' } else { '?' };
        let mut signed = format!("{base}{separator}{SIGNATURE_PARAM}={token}");
        if let Some(fragment) = fragment {
            signed.push('#');
            signed.push_str(fragment);
        }
        Ok(signed)
    }

    /// Verifies `url` (absolute, as the client requested it).
    pub fn verify(&self, url: &str) -> Result<VerifiedUrl, SignedUrlError> {
        let (canonical, signature) = canonical(url)?;
        let token = signature.ok_or(SignedUrlError::Missing)?;
        let opened =
            self.codec
                .open::<UrlClaims>(token.as_bytes())
                .map_err(|error| match error {
                    CodecError::Expired => SignedUrlError::Expired,
                    _ => SignedUrlError::BadSignature,
                })?;
        let digest = encoding::encode(Sha256::digest(canonical.as_bytes()));
        // Both sides are public (the URL is the client's); equality of the
        // signed digest is what matters.
        if opened.claims.h != digest {
            return Err(SignedUrlError::BadSignature);
        }
        Ok(VerifiedUrl {
            nonce: opened.claims.n,
            expires_at: opened.validity.expires_at,
        })
    }

    /// Verifies `url` and burns its nonce in `store`: the first call
    /// succeeds, every later one is [`SignedUrlError::AlreadyUsed`], across
    /// every instance sharing the store.
    pub async fn redeem(
        &self,
        url: &str,
        store: &dyn ReplayStore,
    ) -> Result<VerifiedUrl, SignedUrlError> {
        let verified = self.verify(url)?;
        match store
            .redeem(&verified.nonce, verified.expires_at)
            .await
            .map_err(|_| SignedUrlError::Unavailable)?
        {
            Redemption::First => Ok(verified),
            Redemption::AlreadyUsed => Err(SignedUrlError::AlreadyUsed),
        }
    }
}

impl fmt::Debug for UrlSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UrlSigner")
            .field("purpose", &self.codec.purpose())
            .finish_non_exhaustive()
    }
}

/// The canonical form of `url` without its `sig` parameter, and that
/// parameter's value (`None` when absent). Two `sig` parameters are
/// refused.
pub fn canonical(url: &str) -> Result<(String, Option<String>), SignedUrlError> {
    let without_fragment = url.split('#').next().unwrap_or(url);
    let uri: Uri = without_fragment
        .parse()
        .map_err(|_| SignedUrlError::InvalidUrl)?;
    let scheme = uri
        .scheme_str()
        .ok_or(SignedUrlError::InvalidUrl)?
        .to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => 443,
        "http" => 80,
        _ => return Err(SignedUrlError::InvalidUrl),
    };
    let host = uri
        .host()
        .ok_or(SignedUrlError::InvalidUrl)?
        .to_ascii_lowercase();
    let mut out = format!("{scheme}://{host}");
    if let Some(port) = uri.port_u16().filter(|port| *port != default_port) {
        out.push_str(&format!(":{port}"));
    }
    out.push_str(&normalise_path(uri.path()));
    let mut signature = None;
    let mut params: Vec<(String, String)> = Vec::new();
    for pair in uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty())
    {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let (name, value) = (decode_component(name)?, decode_component(value)?);
        if name == SIGNATURE_PARAM {
            if signature.replace(value).is_some() {
                return Err(SignedUrlError::Missing);
            }
        } else {
            params.push((name, value));
        }
    }
    // By name only, and stably: repeated names keep their order, which a
    // handler reading the first or the last value depends on.
    params.sort_by(|a, b| a.0.cmp(&b.0));
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&params)
        .finish();
    out.push('?');
    out.push_str(&query);
    Ok((out, signature))
}

/// One query name or value, `+` and percent escapes decoded; text that does
/// not decode to UTF-8 is refused, never replaced (two such URLs would
/// otherwise share one canonical form).
fn decode_component(text: &str) -> Result<String, SignedUrlError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let byte = text
                    .get(i + 1..i + 3)
                    .filter(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()))
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                    .ok_or(SignedUrlError::InvalidUrl)?;
                out.push(byte);
                i += 3;
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| SignedUrlError::InvalidUrl)
}

/// `path` with escapes of unreserved characters decoded and every other
/// escape in uppercase hex (RFC 3986 §6.2.2).
fn normalise_path(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| path.get(i + 1..i + 3))
            .flatten()
            .filter(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) => {
                out.push(byte as char);
                i += 3;
            }
            Some(byte) => {
                out.push_str(&format!("%{byte:02X}"));
                i += 3;
            }
            None => {
                out.push(bytes[i] as char);
                i += 1;
            }
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use proptest::prelude::*;

    fn signer() -> UrlSigner {
        let keyring = Keyring::new(crate::keys::SigningKey::from_bytes(&[7; 32]).unwrap());
        UrlSigner::new(keyring, Purpose::new("test/links"))
            .clock(ManualClock::at_unix(1_700_000_000).shared())
    }

    #[test]
    fn canonical_forms_agree_on_what_means_the_same() {
        let same = [
            "https://App.Example.test:443/a/%7euser/b%2fc?b=2&a=0&a=1",
            "HTTPS://app.example.test/a/~user/b%2Fc?a=0&a=1&b=2",
            "https://app.example.test/a/%7Euser/b%2fc?a=%30&b=2&a=1#frag",
        ];
        let forms: Vec<String> = same.iter().map(|u| canonical(u).unwrap().0).collect();
        assert!(forms.windows(2).all(|w| w[0] == w[1]), "{forms:?}");
        assert_ne!(
            canonical("https://app.example.test/a/b%2Fc").unwrap().0,
            canonical("https://app.example.test/a/b/c").unwrap().0
        );
        assert_eq!(
            canonical("ftp://x.test/").unwrap_err(),
            SignedUrlError::InvalidUrl
        );
        // Bytes that are not UTF-8 are refused, not replaced.
        assert_eq!(
            canonical("https://x.test/?f=%FF").unwrap_err(),
            SignedUrlError::InvalidUrl
        );
        // Repeated names keep their order.
        assert_ne!(
            canonical("https://x.test/?role=viewer&role=admin")
                .unwrap()
                .0,
            canonical("https://x.test/?role=admin&role=viewer")
                .unwrap()
                .0
        );
        assert_eq!(
            canonical("/relative").unwrap_err(),
            SignedUrlError::InvalidUrl
        );
    }

    proptest! {
        #[test]
        fn reordering_and_reencoding_keep_the_signature_any_change_breaks_it(
            params in prop::collection::vec(("[a-z]{1,4}", "[a-zA-Z0-9 ~_.-]{0,6}"), 0..5),
            seed in any::<u64>(),
        ) {
            // Distinct names: the order of repeated names is signed.
            let mut seen = std::collections::HashSet::new();
            let params: Vec<(String, String)> =
                params.into_iter().filter(|(name, _)| seen.insert(name.clone())).collect();
            let signer = signer();
            let encode = |pairs: &[(String, String)]| {
                form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish()
            };
            let url = format!("https://app.example.test/magic?{}", encode(&params));
            let signed = signer.sign(&url, Duration::from_secs(60)).unwrap();
            let (_, sig) = canonical(&signed).unwrap();
            let sig = sig.unwrap();

            // Reordered, with every character percent-encoded: still valid.
            let mut shuffled = params.clone();
            let len = shuffled.len();
            if len > 1 {
                shuffled.rotate_left((seed as usize) % len);
            }
            let reencoded: Vec<String> = shuffled
                .iter()
                .map(|(n, v)| format!("{}={}", n.bytes().map(|b| format!("%{b:02x}")).collect::<String>(), v.bytes().map(|b| format!("%{b:02X}")).collect::<String>()))
                .collect();
            let variant = format!("https://app.example.test/magic?{}&sig={sig}", reencoded.join("&"));
            prop_assert!(signer.verify(&variant).is_ok(), "{variant}");

            // One parameter added: refused.
            let added = format!("https://app.example.test/magic?{}&zz=1&sig={sig}", encode(&params));
            prop_assert_eq!(signer.verify(&added).unwrap_err(), SignedUrlError::BadSignature);
            // One removed, or one value changed: refused.
            if let Some(((name, value), rest)) = params.split_first() {
                let removed = format!("https://app.example.test/magic?{}&sig={sig}", encode(rest));
                prop_assert_eq!(signer.verify(&removed).unwrap_err(), SignedUrlError::BadSignature);
                let mut changed = rest.to_vec();
                changed.push((name.clone(), format!("{value}x")));
                let changed = format!("https://app.example.test/magic?{}&sig={sig}", encode(&changed));
                prop_assert_eq!(signer.verify(&changed).unwrap_err(), SignedUrlError::BadSignature);
            }
            // Another path or host: refused.
            let moved = signed.replace("/magic?", "/magic2?");
            prop_assert_eq!(signer.verify(&moved).unwrap_err(), SignedUrlError::BadSignature);
            let host = signed.replace("app.example.test", "evil.example.test");
            prop_assert_eq!(signer.verify(&host).unwrap_err(), SignedUrlError::BadSignature);
        }
    }
}
