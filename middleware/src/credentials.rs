//! Reading credentials from request headers: the one Authorization parser.
//!
//! - `Authorization: Bearer <token>`: the scheme word is case-insensitive
//!   (RFC 6750 §2.1); the token follows one or more spaces or tabs.
//! - `X-API-Key: <key>` is read only when `Authorization` does not name the
//!   Bearer scheme: a bad or empty Bearer credential is never overruled by
//!   a second header.
//! - Empty values count as absent; an `Authorization` header with another
//!   scheme (e.g. `Basic`) is not a Bearer credential.
//! - A value that is not visible ASCII, has whitespace inside the token, or a
//!   header that appears twice, is malformed: never guessed at.
//!
//! ```
//! use http::HeaderMap;
//! use keystile_middleware::credentials::{api_key, bearer_token};
//!
//! let mut headers = HeaderMap::new();
//! headers.insert("authorization", "bEaReR abc.def".parse().unwrap());
//! headers.insert("x-api-key", "other".parse().unwrap());
//! assert_eq!(bearer_token(&headers), Ok(Some("abc.def")));
//! assert_eq!(api_key(&headers), Ok(Some("abc.def"))); // Authorization wins
//! ```

use std::fmt;

use http::header::{AUTHORIZATION, HeaderName};
use http::{HeaderMap, HeaderValue};

/// The `X-API-Key` header.
pub const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// A credential header that cannot be read unambiguously.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MalformedHeader;

impl fmt::Display for MalformedHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("malformed credential header")
    }
}

impl std::error::Error for MalformedHeader {}

/// The Bearer token in `Authorization`, if there is one.
pub fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, MalformedHeader> {
    Ok(bearer_credential(headers)?.flatten())
}

/// Where [`api_key_in`] looks for an API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyHeader {
    /// `Authorization: Bearer <key>`, shared with bearer tokens.
    Authorization,
    /// `X-API-Key: <key>`, which carries nothing but API keys.
    XApiKey,
}

/// The API key presented in `Authorization: Bearer` or, when that header
/// does not name the Bearer scheme, in `X-API-Key`; `Ok(None)` when there
/// is none or it is empty.
pub fn api_key(headers: &HeaderMap) -> Result<Option<&str>, MalformedHeader> {
    api_key_in(headers).1
}

/// [`api_key`], and the header it was read from (for a malformed value,
/// the header that was malformed).
pub fn api_key_in(headers: &HeaderMap) -> (KeyHeader, Result<Option<&str>, MalformedHeader>) {
    match bearer_credential(headers) {
        Ok(Some(token)) => return (KeyHeader::Authorization, Ok(token)),
        Err(malformed) => return (KeyHeader::Authorization, Err(malformed)),
        Ok(None) => {}
    }
    (KeyHeader::XApiKey, x_api_key(headers))
}

fn x_api_key(headers: &HeaderMap) -> Result<Option<&str>, MalformedHeader> {
    let Some(value) = single(headers, &X_API_KEY)? else {
        return Ok(None);
    };
    token(visible_ascii(value)?)
}

/// `Authorization` read as `Bearer <token>`: `None` when the header is
/// absent or names another scheme, `Some(None)` when it names the Bearer
/// scheme with no token.
///
/// The scheme and the token are separated by SP or HTAB (RFC 9110 §11.4:
/// `credentials = auth-scheme [ 1*SP token68 ]`, and the OWS hyper leaves
/// inside a field value may be either).
fn bearer_credential(headers: &HeaderMap) -> Result<Option<Option<&str>>, MalformedHeader> {
    let Some(value) = single(headers, &AUTHORIZATION)? else {
        return Ok(None);
    };
    let value = visible_ascii(value)?;
    let (scheme, rest) = value.split_at(value.find(is_blank).unwrap_or(value.len()));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Ok(None);
    }
    token(rest).map(Some)
}

/// The one token in `value` once SP and HTAB around it are trimmed: `None`
/// when nothing is left, malformed when a blank remains inside.
fn token(value: &str) -> Result<Option<&str>, MalformedHeader> {
    let token = value.trim_ascii();
    if token.is_empty() {
        return Ok(None);
    }
    // A branch-free fold over bytes, which the compiler turns into vector
    // compares (an early-exit search costs several times as much here);
    // this runs on every request.
    let blanks = token.bytes().fold(0u8, |blanks, b| {
        blanks | u8::from(b == b' ') | u8::from(b == b'\t')
    });
    if blanks != 0 {
        return Err(MalformedHeader);
    }
    Ok(Some(token))
}

fn single<'a>(
    headers: &'a HeaderMap,
    name: &HeaderName,
) -> Result<Option<&'a HeaderValue>, MalformedHeader> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (None, _) => Ok(None),
        (Some(v), None) => Ok(Some(v)),
        (Some(_), Some(_)) => Err(MalformedHeader),
    }
}

/// The value when every byte is visible ASCII, SP or HTAB (http's own
/// reading, `HeaderValue::to_str`); so `trim_ascii` strips exactly SP and
/// HTAB (never Unicode spaces, as `str::trim` would).
fn visible_ascii(value: &HeaderValue) -> Result<&str, MalformedHeader> {
    value.to_str().map_err(|_| MalformedHeader)
}

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_space_and_general_shapes_read_the_same_token() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLWJ5dGVz";
        for value in [
            format!("Bearer {jwt}"),
            format!("bearer  {jwt} "),
            format!("BEARER {jwt}  "),
        ] {
            let h = headers(&[("authorization", value.as_bytes())]);
            assert_eq!(bearer_token(&h), Ok(Some(jwt)), "{value}");
        }
        let tab = headers(&[("authorization", b"Bearer ab\tcd")]);
        assert_eq!(bearer_token(&tab), Err(MalformedHeader));
        for value in [
            format!("Bearer\t{jwt}"),
            format!("bearer \t {jwt}\t"),
            format!("BEARER\t\t{jwt}"),
        ] {
            let h = headers(&[("authorization", value.as_bytes())]);
            assert_eq!(bearer_token(&h), Ok(Some(jwt)), "{value:?}");
        }
        let key = headers(&[("x-api-key", b"sk_live_abc")]);
        assert_eq!(api_key(&key), Ok(Some("sk_live_abc")));
    }

    fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_bytes(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn scheme_is_case_insensitive() {
        for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
            let h = headers(&[("authorization", format!("{scheme} tok").as_bytes())]);
            assert_eq!(bearer_token(&h), Ok(Some("tok")), "{scheme}");
        }
    }

    #[test]
    fn empty_and_other_schemes_are_absent() {
        assert_eq!(bearer_token(&HeaderMap::new()), Ok(None));
        assert_eq!(
            bearer_token(&headers(&[("authorization", b"Bearer")])),
            Ok(None)
        );
        assert_eq!(
            bearer_token(&headers(&[("authorization", b"Bearer   ")])),
            Ok(None)
        );
        assert_eq!(bearer_token(&headers(&[("authorization", b"")])), Ok(None));
        assert_eq!(
            bearer_token(&headers(&[("authorization", b"Basic YTpi")])),
            Ok(None)
        );
        assert_eq!(
            bearer_token(&headers(&[("authorization", b"Bearerx tok")])),
            Ok(None)
        );
        assert_eq!(api_key(&headers(&[("x-api-key", b"")])), Ok(None));
    }

    #[test]
    fn bearer_beats_x_api_key_and_falls_back() {
        let both = headers(&[("authorization", b"Bearer one"), ("x-api-key", b"two")]);
        assert_eq!(api_key(&both), Ok(Some("one")));
        let only_x = headers(&[("x-api-key", b"two")]);
        assert_eq!(api_key(&only_x), Ok(Some("two")));
        let basic = headers(&[("authorization", b"Basic YTpi"), ("x-api-key", b"two")]);
        assert_eq!(api_key(&basic), Ok(Some("two")));
        // A Bearer credential decides even when its token is empty or
        // separated by a tab.
        let tab = headers(&[("authorization", b"Bearer\tone"), ("x-api-key", b"two")]);
        assert_eq!(api_key(&tab), Ok(Some("one")));
        for empty in [&b"Bearer"[..], b"Bearer ", b"bearer\t"] {
            let h = headers(&[("authorization", empty), ("x-api-key", b"two")]);
            assert_eq!(api_key(&h), Ok(None), "{empty:?}");
        }
        let bad = headers(&[("authorization", b"Bearer a b"), ("x-api-key", b"two")]);
        assert_eq!(api_key(&bad), Err(MalformedHeader));
    }

    #[test]
    fn ambiguous_or_non_ascii_values_are_malformed() {
        let twice = headers(&[
            ("authorization", b"Bearer a"),
            ("authorization", b"Bearer b"),
        ]);
        assert_eq!(bearer_token(&twice), Err(MalformedHeader));
        let inner_space = headers(&[("authorization", b"Bearer a b")]);
        assert_eq!(bearer_token(&inner_space), Err(MalformedHeader));
        let high = headers(&[("authorization", b"Bearer \xe2\x82\xac")]);
        assert_eq!(bearer_token(&high), Err(MalformedHeader));
        let x_twice = headers(&[("x-api-key", b"a"), ("x-api-key", b"b")]);
        assert_eq!(api_key(&x_twice), Err(MalformedHeader));
    }
}
