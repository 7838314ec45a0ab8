//! Negative test vectors, Wycheproof style: one JSON file per token family
//! in `tests/vectors/` (signed codec, handoff token, session cookie, API key,
//! JWT), each case an input, the expected result (`valid` / `invalid`) and
//! the error class.
//!
//! The files are generated here, deterministically, from fixed keys
//! (`[0x11; 32]` primary, `[0x22; 32]` fallback, `[0x33; 32]` unknown), a
//! fixed clock ([`T0`]) and fixed randomness; the expected outcome of every
//! case is written by hand below, never copied from the library's answer.
//! `KEYSTILE_REGENERATE_VECTORS=1 cargo test --workspace --all-features
//! --test vectors` rewrites them; without it the test fails if the committed
//! files differ from what the generator produces.
//!
//! [`committed_vectors_hold`] loads the files alone and checks every case
//! against the library, so another implementation can run the same files
//! against itself: the `parameters` object of each file carries the keys
//! (hex), key ids, purpose labels, audience and the time to verify at.
//!
//! `tests/vectors/jose_interop.json` is not one of these files: its RS256,
//! ES256 and EdDSA tokens are minted by jose (`scripts/interop-vectors`)
//! and checked by `tests/jose_interop.rs`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use keystile::api_key::{KeyFormatError, KeyPrefix};
use keystile::audience::VerifyError;
use keystile::bearer::{JwtVerifier, TokenError};
use keystile::clock::ManualClock;
use keystile::codec::{CodecError, Malformed, Purpose, SignedCodec};
use keystile::encoding;
use keystile::handoff::{Handoff, HandoffCodec};
use keystile::keys::{Keyring, SigningKey};
use keystile::mac::MacKey;
use keystile::random::RandomError;
use keystile::session::{SessionClaims, SessionCodec};
use serde_json::{Value, json};

/// The time every vector is verified at (Unix seconds).
const T0: u64 = 1_700_000_000;
const AUDIENCE: &str = "acme";
const CODEC_PURPOSE: Purpose = Purpose::new("keystile/vectors");
const ISSUER: &str = "https://idp.example.test";
const JWT_AUDIENCE: &str = "reports-api";
const HS256_LABEL: &[u8] = b"keystile.v1\0keystile/jwt-hs256\0";

fn key(byte: u8) -> SigningKey {
    SigningKey::from_bytes(&[byte; 32]).expect("32-byte key")
}

fn keyring() -> Keyring {
    Keyring::new(key(0x11))
        .with_fallback(key(0x22))
        .expect("distinct ids")
}

fn clock() -> ManualClock {
    ManualClock::at_unix(T0)
}

fn keys_parameter() -> Value {
    json!([
        {"kid": key(0x11).id().as_str(), "secretHex": hex(&[0x11; 32]), "role": "primary"},
        {"kid": key(0x22).id().as_str(), "secretHex": hex(&[0x22; 32]), "role": "fallback"},
        {"kid": key(0x33).id().as_str(), "secretHex": hex(&[0x33; 32]), "role": "not in the keyring"},
    ])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One case: a comment, the input, and the expected error class (`None`:
/// valid).
struct Case {
    comment: &'static str,
    input: String,
    error: Option<&'static str>,
}

fn case(comment: &'static str, input: impl Into<String>, error: Option<&'static str>) -> Case {
    Case {
        comment,
        input: input.into(),
        error,
    }
}

/// A signed-codec token over an arbitrary envelope text, signed by `signer`
/// for `purpose`: how the vectors reach the checks behind the signature.
fn sign_raw(signer: &SigningKey, purpose: &str, kid: &str, payload_b64: &str) -> String {
    let mut prefix = b"keystile.v1\0".to_vec();
    prefix.extend_from_slice(purpose.as_bytes());
    prefix.push(0);
    let mac = MacKey::new(&secret_of(signer)).with_prefix(&prefix);
    let signed = format!("{kid}.{payload_b64}");
    let tag = mac.compute(signed.as_bytes());
    format!("{signed}.{}", encoding::encode(tag))
}

fn sign_json(signer: &SigningKey, purpose: &str, envelope: &Value) -> String {
    let payload = encoding::encode(envelope.to_string());
    sign_raw(signer, purpose, signer.id().as_str(), &payload)
}

/// The fixed keys' bytes (keys do not expose theirs).
fn secret_of(signer: &SigningKey) -> [u8; 32] {
    for byte in [0x11, 0x22, 0x33] {
        if key(byte).id() == signer.id() {
            return [byte; 32];
        }
    }
    unreachable!("only the fixed keys sign vectors")
}

/// Flips one bit in the middle of the tag's bytes (not its last character,
/// which may only carry padding bits).
fn flip_mid_tag(token: &str) -> String {
    let (head, tag) = token.rsplit_once('.').expect("three parts");
    let mut raw = encoding::decode(tag).expect("canonical tag");
    let mid = raw.len() / 2;
    raw[mid] ^= 0x01;
    format!("{head}.{}", encoding::encode(raw))
}

/// Changes the last character of the tag so it decodes to the same bytes
/// with non-zero trailing bits: non-canonical base64url.
fn non_canonical_tag(token: &str) -> String {
    let (head, tag) = token.rsplit_once('.').expect("three parts");
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let last = tag.as_bytes()[tag.len() - 1];
    let value = alphabet.iter().position(|c| *c == last).expect("base64url");
    let twin = char::from(alphabet[value | 0x01]);
    format!("{head}.{}{twin}", &tag[..tag.len() - 1])
}

fn mid_char_changed(token: &str, at: usize) -> String {
    let mut bytes = token.as_bytes().to_vec();
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).expect("ascii")
}

fn envelope(iat: u64, exp: u64, dat: Value) -> Value {
    json!({"iat": iat, "exp": exp, "dat": dat})
}

// ---------------------------------------------------------------- codec

fn codec_error(error: CodecError) -> &'static str {
    match error {
        CodecError::Malformed(Malformed::TooLong) => "malformed.too_long",
        CodecError::Malformed(Malformed::Structure) => "malformed.structure",
        CodecError::Malformed(Malformed::Base64) => "malformed.base64",
        CodecError::Malformed(Malformed::Payload) => "malformed.payload",
        CodecError::UnknownKey => "unknown_key",
        CodecError::BadSignature => "bad_signature",
        CodecError::Expired => "expired",
        CodecError::NotYetValid => "not_yet_valid",
        _ => "other",
    }
}

fn codec_cases() -> Vec<Case> {
    let p = CODEC_PURPOSE.label();
    let dat = json!({"sub": "user-7", "n": 42});
    let valid = sign_json(&key(0x11), p, &envelope(T0 - 10, T0 + 60, dat.clone()));
    let (kid, rest) = valid.split_once('.').expect("kid");
    let payload = rest.rsplit_once('.').expect("tag").0;
    let mut oversized_dat = json!({"sub": "x".repeat(4000)});
    oversized_dat["n"] = json!(1);
    vec![
        case("signed by the primary key", valid.clone(), None),
        case(
            "signed by a fallback key",
            sign_json(&key(0x22), p, &envelope(T0 - 10, T0 + 60, dat.clone())),
            None,
        ),
        case(
            "nbf in the past",
            sign_json(
                &key(0x11),
                p,
                &json!({"iat": T0 - 10, "exp": T0 + 60, "nbf": T0 - 5, "dat": dat}),
            ),
            None,
        ),
        case(
            "one bit flipped in the middle of the tag",
            flip_mid_tag(&valid),
            Some("bad_signature"),
        ),
        case(
            "one character changed in the middle of the payload",
            mid_char_changed(&valid, kid.len() + 1 + payload.len() / 2),
            Some("bad_signature"),
        ),
        case(
            "truncated by one character",
            &valid[..valid.len() - 1],
            Some("malformed.structure"),
        ),
        case(
            "truncated to the key id and payload",
            format!("{kid}.{payload}"),
            Some("malformed.structure"),
        ),
        case(
            "signed by a key not in the keyring",
            sign_json(&key(0x33), p, &envelope(T0, T0 + 60, dat.clone())),
            Some("unknown_key"),
        ),
        case(
            "primary key id, signed by another secret",
            sign_raw(&key(0x33), p, kid, payload),
            Some("bad_signature"),
        ),
        case(
            "minted for another purpose under the same key",
            sign_json(
                &key(0x11),
                "keystile/session",
                &envelope(T0, T0 + 60, dat.clone()),
            ),
            Some("bad_signature"),
        ),
        case(
            "expired a minute ago",
            sign_json(&key(0x11), p, &envelope(T0 - 120, T0 - 60, dat.clone())),
            Some("expired"),
        ),
        case(
            "expires exactly now",
            sign_json(&key(0x11), p, &envelope(T0 - 60, T0, dat.clone())),
            Some("expired"),
        ),
        case(
            "nbf in the future",
            sign_json(
                &key(0x11),
                p,
                &json!({"iat": T0, "exp": T0 + 60, "nbf": T0 + 30, "dat": dat}),
            ),
            Some("not_yet_valid"),
        ),
        case(
            "issued in the future",
            sign_json(&key(0x11), p, &envelope(T0 + 30, T0 + 90, dat.clone())),
            Some("not_yet_valid"),
        ),
        case(
            "non-canonical base64url tag (trailing bits set)",
            non_canonical_tag(&valid),
            Some("malformed.base64"),
        ),
        case(
            "padded tag",
            format!("{valid}="),
            Some("malformed.structure"),
        ),
        case(
            "standard-alphabet character in the tag",
            format!(
                "{}+{}",
                &valid[..valid.len() - 43],
                &valid[valid.len() - 42..]
            ),
            Some("malformed.base64"),
        ),
        case(
            "non-canonical base64url payload, properly signed",
            {
                let text = envelope(T0, T0 + 60, dat.clone()).to_string();
                let mut b64 = encoding::encode(&text);
                // Set the unused low bits of the last character.
                let fixed = non_canonical_tag(&format!("x.{b64}"));
                b64 = fixed.rsplit_once('.').expect("dot").1.to_owned();
                sign_raw(&key(0x11), p, kid, &b64)
            },
            Some("malformed.base64"),
        ),
        case(
            "padded payload, properly signed",
            sign_raw(
                &key(0x11),
                p,
                kid,
                &format!("{}=", encoding::encode("{\"iat\":1,\"exp\":2,\"dat\":0}")),
            ),
            Some("malformed.base64"),
        ),
        case(
            "unknown envelope field, properly signed",
            sign_json(
                &key(0x11),
                p,
                &json!({"iat": T0, "exp": T0 + 60, "dat": dat, "admin": true}),
            ),
            Some("malformed.payload"),
        ),
        case(
            "envelope without exp, properly signed",
            sign_json(&key(0x11), p, &json!({"iat": T0, "dat": dat})),
            Some("malformed.payload"),
        ),
        case(
            "exp as a string, properly signed",
            sign_json(
                &key(0x11),
                p,
                &json!({"iat": T0, "exp": "9999999999", "dat": dat}),
            ),
            Some("malformed.payload"),
        ),
        case(
            "payload is not JSON, properly signed",
            sign_raw(&key(0x11), p, kid, &encoding::encode("not json")),
            Some("malformed.payload"),
        ),
        case("empty", "", Some("malformed.structure")),
        case(
            "an extra dot-separated part",
            format!("{valid}.x"),
            Some("malformed.structure"),
        ),
        case(
            "trailing space",
            format!("{valid} "),
            Some("malformed.structure"),
        ),
        case(
            "key id with a character outside [A-Za-z0-9_-]",
            valid.replacen(kid, &format!("{}!", &kid[1..]), 1),
            Some("malformed.structure"),
        ),
        case(
            "longer than 4096 bytes, properly signed",
            sign_json(&key(0x11), p, &envelope(T0, T0 + 60, oversized_dat)),
            Some("malformed.too_long"),
        ),
    ]
}

fn codec_outcome(input: &str) -> Result<Value, &'static str> {
    SignedCodec::new(keyring(), CODEC_PURPOSE)
        .clock(clock().shared())
        .open::<Value>(input)
        .map(|v| v.claims)
        .map_err(codec_error)
}

// ---------------------------------------------------------------- handoff and session

fn verify_error(error: VerifyError) -> &'static str {
    match error {
        VerifyError::Malformed => "malformed",
        VerifyError::BadSignature => "bad_signature",
        VerifyError::Expired => "expired",
        VerifyError::NotYetValid => "not_yet_valid",
        VerifyError::WrongAudience => "wrong_audience",
        _ => "other",
    }
}

fn handoff_codec() -> HandoffCodec {
    let fixed = |dest: &mut [u8]| -> Result<(), RandomError> {
        dest.fill(0x5a);
        Ok(())
    };
    HandoffCodec::new(keyring())
        .clock(clock().shared())
        .random(std::sync::Arc::new(fixed))
}

fn handoff_cases() -> Vec<Case> {
    const P: &str = "keystile/handoff";
    let codec = handoff_codec();
    let valid = codec
        .mint(&Handoff::new("admin@acme", AUDIENCE).acting_as("operator:7"))
        .expect("mint");
    let jti = encoding::encode([0x5a; 16]);
    let claims = |extra: Value| {
        let mut c = json!({"sub": "admin@acme", "aud": AUDIENCE, "jti": jti});
        if let (Value::Object(c), Value::Object(extra)) = (&mut c, extra) {
            c.extend(extra);
        }
        c
    };
    let signed = |dat: Value| sign_json(&key(0x11), P, &envelope(T0 - 5, T0 + 55, dat));
    let session_value = SessionCodec::new(keyring())
        .clock(clock().shared())
        .issue(&session_claims(AUDIENCE), Duration::from_secs(60))
        .expect("issue");
    vec![
        case("minted for acme, with an actor", valid.clone(), None),
        case(
            "no actor, with a session version",
            signed(claims(json!({"sv": 3}))),
            None,
        ),
        case(
            "signed by a fallback key",
            sign_json(&key(0x22), P, &envelope(T0, T0 + 60, claims(json!({})))),
            None,
        ),
        case(
            "minted for another tenant",
            signed(claims(json!({"aud": "globex"}))),
            Some("wrong_audience"),
        ),
        case(
            "audience differs only in case",
            signed(claims(json!({"aud": "ACME"}))),
            Some("wrong_audience"),
        ),
        case(
            "one bit flipped in the middle of the tag",
            flip_mid_tag(&valid),
            Some("bad_signature"),
        ),
        case(
            "truncated by one character",
            &valid[..valid.len() - 1],
            Some("malformed"),
        ),
        case(
            "signed by a key not in the keyring",
            sign_json(&key(0x33), P, &envelope(T0, T0 + 60, claims(json!({})))),
            Some("bad_signature"),
        ),
        case(
            "a session cookie presented as a handoff token",
            session_value,
            Some("bad_signature"),
        ),
        case(
            "expired",
            sign_json(
                &key(0x11),
                P,
                &envelope(T0 - 120, T0 - 60, claims(json!({}))),
            ),
            Some("expired"),
        ),
        case(
            "issued in the future",
            sign_json(
                &key(0x11),
                P,
                &envelope(T0 + 60, T0 + 120, claims(json!({}))),
            ),
            Some("not_yet_valid"),
        ),
        case(
            "non-canonical base64url tag",
            non_canonical_tag(&valid),
            Some("malformed"),
        ),
        case(
            "unknown claim, properly signed",
            signed(claims(json!({"admin": true}))),
            Some("malformed"),
        ),
        case(
            "jti shorter than 16 bytes, properly signed",
            signed(claims(json!({"jti": "AAAA"}))),
            Some("malformed"),
        ),
        case(
            "jti not base64url, properly signed",
            signed(claims(json!({"jti": "not base64url at all!!"}))),
            Some("malformed"),
        ),
        case(
            "empty subject, properly signed",
            signed(claims(json!({"sub": ""}))),
            Some("malformed"),
        ),
        case(
            "control character in the subject, properly signed",
            signed(claims(json!({"sub": "a\nb"}))),
            Some("malformed"),
        ),
        case(
            "subject longer than 256 bytes, properly signed",
            signed(claims(json!({"sub": "s".repeat(257)}))),
            Some("malformed"),
        ),
        case(
            "missing jti, properly signed",
            signed(json!({"sub": "a", "aud": AUDIENCE})),
            Some("malformed"),
        ),
        case(
            "longer than 4096 bytes",
            "A".repeat(4097),
            Some("malformed"),
        ),
    ]
}

fn handoff_outcome(input: &str) -> Result<Value, &'static str> {
    handoff_codec()
        .verify(input, AUDIENCE)
        .map(|v| serde_json::to_value(&v.claims).expect("claims serialize"))
        .map_err(verify_error)
}

fn session_claims(tenant: &str) -> SessionClaims {
    SessionClaims {
        subject: "admin@acme".into(),
        actor: Some("operator:7".into()),
        tenant: tenant.into(),
        session_version: Some(3),
        expires_at: 0,
    }
}

fn session_codec() -> SessionCodec {
    SessionCodec::new(keyring()).clock(clock().shared())
}

fn session_cases() -> Vec<Case> {
    const P: &str = "keystile/session";
    let valid = session_codec()
        .issue(&session_claims(AUDIENCE), Duration::from_secs(3600))
        .expect("issue");
    let claims = json!({"sub": "admin@acme", "aud": AUDIENCE});
    let signed = |dat: Value| sign_json(&key(0x11), P, &envelope(T0 - 5, T0 + 3600, dat));
    let handoff = handoff_codec()
        .mint(&Handoff::new("admin@acme", AUDIENCE))
        .expect("mint");
    vec![
        case("issued for acme", valid.clone(), None),
        case("minimal claims", signed(claims.clone()), None),
        case(
            "signed by a fallback key",
            sign_json(&key(0x22), P, &envelope(T0, T0 + 60, claims.clone())),
            None,
        ),
        case(
            "bound to another tenant",
            signed(json!({"sub": "admin@acme", "aud": "globex"})),
            Some("wrong_audience"),
        ),
        case(
            "one bit flipped in the middle of the tag",
            flip_mid_tag(&valid),
            Some("bad_signature"),
        ),
        case(
            "truncated by one character",
            &valid[..valid.len() - 1],
            Some("malformed"),
        ),
        case(
            "signed by a key not in the keyring",
            sign_json(&key(0x33), P, &envelope(T0, T0 + 60, claims.clone())),
            Some("bad_signature"),
        ),
        case(
            "a handoff token presented as a session cookie",
            handoff,
            Some("bad_signature"),
        ),
        case(
            "expired",
            sign_json(
                &key(0x11),
                P,
                &envelope(T0 - 7200, T0 - 3600, claims.clone()),
            ),
            Some("expired"),
        ),
        case(
            "issued in the future",
            sign_json(&key(0x11), P, &envelope(T0 + 60, T0 + 120, claims.clone())),
            Some("not_yet_valid"),
        ),
        case(
            "non-canonical base64url tag",
            non_canonical_tag(&valid),
            Some("malformed"),
        ),
        case(
            "an expires_at claim (kept in the envelope only), properly signed",
            signed(json!({"sub": "admin@acme", "aud": AUDIENCE, "expires_at": T0 + 999_999})),
            Some("malformed"),
        ),
        case(
            "unknown claim, properly signed",
            signed(json!({"sub": "a", "aud": AUDIENCE, "role": "admin"})),
            Some("malformed"),
        ),
        case(
            "empty subject, properly signed",
            signed(json!({"sub": "", "aud": AUDIENCE})),
            Some("malformed"),
        ),
        case(
            "sv as a string, properly signed",
            signed(json!({"sub": "a", "aud": AUDIENCE, "sv": "3"})),
            Some("malformed"),
        ),
        case(
            "longer than 4096 bytes",
            "A".repeat(4097),
            Some("malformed"),
        ),
        case("empty", "", Some("malformed")),
    ]
}

fn session_outcome(input: &str) -> Result<Value, &'static str> {
    session_codec()
        .verify(input, AUDIENCE)
        .map(|c| json!({"sub": c.subject, "act": c.actor, "aud": c.tenant, "sv": c.session_version, "exp": c.expires_at}))
        .map_err(verify_error)
}

// ---------------------------------------------------------------- API keys

fn api_key_error(error: KeyFormatError) -> &'static str {
    match error {
        KeyFormatError::InvalidPrefix => "invalid_prefix",
        KeyFormatError::TooLong => "too_long",
        KeyFormatError::MissingSeparator => "missing_separator",
        KeyFormatError::InvalidBody => "invalid_body",
        KeyFormatError::ChecksumMismatch => "checksum_mismatch",
        _ => "other",
    }
}

fn minted(prefix: &str, byte: u8) -> String {
    let prefix = KeyPrefix::new(prefix).expect("prefix");
    keystile::api_key::mint(
        &prefix,
        &move |dest: &mut [u8]| -> Result<(), RandomError> {
            dest.fill(byte);
            Ok(())
        },
    )
    .expect("mint")
    .as_str()
    .to_owned()
}

fn api_key_cases() -> Vec<Case> {
    let valid = minted("sk_live", 0x3c);
    let body_at = "sk_live_".len();
    let swapped = {
        let mut b = valid.clone().into_bytes();
        let i = body_at + 20;
        let j = (i + 1..b.len())
            .find(|j| b[*j] != b[i])
            .expect("differing neighbour");
        b.swap(i, j);
        String::from_utf8(b).expect("ascii")
    };
    vec![
        case("minted with prefix sk_live", valid.clone(), None),
        case(
            "minted with a one-character prefix",
            minted("a", 0x00),
            None,
        ),
        case(
            "minted with a 16-character prefix",
            minted("rk_live_team_0ab", 0xff),
            None,
        ),
        case(
            "one character changed in the middle of the random part",
            mid_char_changed(&valid, body_at + 21),
            Some("checksum_mismatch"),
        ),
        case(
            "two characters transposed",
            swapped,
            Some("checksum_mismatch"),
        ),
        case(
            "one character changed in the checksum",
            mid_char_changed(&valid, valid.len() - 3),
            Some("checksum_mismatch"),
        ),
        case(
            "checksum digits above 2^32",
            format!("{}zzzzzz", &valid[..valid.len() - 6]),
            Some("checksum_mismatch"),
        ),
        case(
            "truncated by one character",
            &valid[..valid.len() - 1],
            Some("invalid_body"),
        ),
        case(
            "one character appended",
            format!("{valid}A"),
            Some("invalid_body"),
        ),
        case(
            "uppercase prefix",
            valid.replacen("sk_live", "SK_LIVE", 1),
            Some("invalid_prefix"),
        ),
        case(
            "prefix ending with _",
            valid.replacen("sk_live_", "sk_live__", 1),
            Some("invalid_prefix"),
        ),
        case(
            "prefix of 17 characters: longer than any key",
            valid.replacen("sk_live", "sk_live_abcdefghi", 1),
            Some("too_long"),
        ),
        case(
            "a '-' in the prefix",
            valid.replacen("sk_live", "sk-live", 1),
            Some("invalid_prefix"),
        ),
        case(
            "no separator",
            valid.replace('_', ""),
            Some("missing_separator"),
        ),
        case(
            "a '-' in the body",
            format!("{}-{}", &valid[..body_at + 10], &valid[body_at + 11..]),
            Some("invalid_body"),
        ),
        case("leading space", format!(" {valid}"), Some("invalid_prefix")),
        case(
            "non-ASCII character in the body",
            format!("{}é{}", &valid[..body_at + 10], &valid[body_at + 12..]),
            Some("invalid_body"),
        ),
        case("empty", "", Some("missing_separator")),
        case(
            "longer than any key",
            format!("sk_live_{}", "A".repeat(1000)),
            Some("too_long"),
        ),
        case(
            "a JWT-shaped string",
            "eyJhbGciOiJIUzI1NiJ9.e30.abc",
            Some("missing_separator"),
        ),
    ]
}

fn api_key_outcome(input: &str) -> Result<Value, &'static str> {
    keystile::api_key::parse(input)
        .map(|k| json!({"prefix": k.prefix(), "sha256": k.digest().to_hex()}))
        .map_err(api_key_error)
}

// ---------------------------------------------------------------- JWT

fn jwt_error(error: TokenError) -> &'static str {
    match error {
        TokenError::Malformed(_) => "malformed",
        TokenError::UnknownKey => "unknown_key",
        TokenError::WrongAlgorithm => "wrong_algorithm",
        TokenError::BadSignature => "bad_signature",
        TokenError::Expired => "expired",
        TokenError::NotYetValid => "not_yet_valid",
        TokenError::WrongIssuer => "wrong_issuer",
        TokenError::WrongAudience => "wrong_audience",
        TokenError::Invalid(_) => "invalid",
        _ => "other",
    }
}

fn hs256_secret(byte: u8) -> [u8; 32] {
    MacKey::new(&[byte; 32]).compute(HS256_LABEL)
}

fn jws(header: &Value, payload: &Value, secret: &[u8]) -> String {
    let input = format!(
        "{}.{}",
        encoding::encode(header.to_string()),
        encoding::encode(payload.to_string())
    );
    let sig = MacKey::new(secret).compute(input.as_bytes());
    format!("{input}.{}", encoding::encode(sig))
}

fn jwt_cases() -> Vec<Case> {
    let kid = key(0x11).id().as_str().to_owned();
    let header = json!({"alg": "HS256", "typ": "JWT", "kid": kid});
    let claims = json!({"sub": "alice", "iss": ISSUER, "aud": JWT_AUDIENCE, "exp": T0 + 300, "scope": "reports:read"});
    let with = |extra: Value| {
        let mut c = claims.clone();
        if let (Value::Object(c), Value::Object(extra)) = (&mut c, extra) {
            for (k, v) in extra {
                if v.is_null() {
                    c.remove(&k);
                } else {
                    c.insert(k, v);
                }
            }
        }
        c
    };
    let secret = hs256_secret(0x11);
    let valid = jws(&header, &claims, &secret);
    let (signing_input, sig) = valid.rsplit_once('.').expect("three parts");
    let (h64, _) = signing_input.split_once('.').expect("two parts");
    let other_payload = encoding::encode(with(json!({"sub": "mallory"})).to_string());
    vec![
        case("HS256 under the primary key", valid.clone(), None),
        case(
            "HS256 under a fallback key",
            jws(
                &json!({"alg": "HS256", "kid": key(0x22).id().as_str()}),
                &claims,
                &hs256_secret(0x22),
            ),
            None,
        ),
        case(
            "expired 20 s ago: inside the 30 s leeway",
            jws(&header, &with(json!({"exp": T0 - 20})), &secret),
            None,
        ),
        case(
            "audience as an array containing the configured one",
            jws(
                &header,
                &with(json!({"aud": ["other", JWT_AUDIENCE]})),
                &secret,
            ),
            None,
        ),
        case(
            "one bit flipped in the middle of the signature",
            flip_mid_tag(&valid),
            Some("bad_signature"),
        ),
        case(
            "payload swapped, signature kept",
            format!("{h64}.{other_payload}.{sig}"),
            Some("bad_signature"),
        ),
        case(
            "alg none without a signature",
            format!(
                "{}.{}.",
                encoding::encode(json!({"alg": "none", "kid": kid}).to_string()),
                encoding::encode(claims.to_string())
            ),
            Some("malformed"),
        ),
        case(
            "alg HS384 (not implemented) on an HS256 key",
            jws(&json!({"alg": "HS384", "kid": kid}), &claims, &secret),
            Some("malformed"),
        ),
        case(
            "RS256 header on an HMAC key",
            jws(&json!({"alg": "RS256", "kid": kid}), &claims, &secret),
            Some("wrong_algorithm"),
        ),
        case(
            "no kid",
            jws(&json!({"alg": "HS256"}), &claims, &secret),
            Some("unknown_key"),
        ),
        case(
            "kid of a key not configured",
            jws(
                &json!({"alg": "HS256", "kid": key(0x33).id().as_str()}),
                &claims,
                &hs256_secret(0x33),
            ),
            Some("unknown_key"),
        ),
        case(
            "signed with the raw keyring secret instead of the derived one",
            jws(&header, &claims, &[0x11; 32]),
            Some("bad_signature"),
        ),
        case(
            "expired 31 s ago: past the leeway",
            jws(&header, &with(json!({"exp": T0 - 31})), &secret),
            Some("expired"),
        ),
        case(
            "nbf 60 s in the future",
            jws(&header, &with(json!({"nbf": T0 + 60})), &secret),
            Some("not_yet_valid"),
        ),
        case(
            "no exp",
            jws(&header, &with(json!({"exp": null})), &secret),
            Some("malformed"),
        ),
        case(
            "exp as a string",
            jws(&header, &with(json!({"exp": "9999999999"})), &secret),
            Some("malformed"),
        ),
        case(
            "another issuer",
            jws(
                &header,
                &with(json!({"iss": "https://evil.example"})),
                &secret,
            ),
            Some("wrong_issuer"),
        ),
        case(
            "no issuer",
            jws(&header, &with(json!({"iss": null})), &secret),
            Some("wrong_issuer"),
        ),
        case(
            "another audience",
            jws(&header, &with(json!({"aud": "billing-api"})), &secret),
            Some("wrong_audience"),
        ),
        case(
            "no audience",
            jws(&header, &with(json!({"aud": null})), &secret),
            Some("wrong_audience"),
        ),
        case(
            "a refresh token presented as an access token",
            jws(&header, &with(json!({"typ": "refresh"})), &secret),
            Some("invalid"),
        ),
        case(
            "crit header",
            jws(
                &json!({"alg": "HS256", "kid": kid, "crit": ["exp"]}),
                &claims,
                &secret,
            ),
            Some("malformed"),
        ),
        case(
            "truncated to two parts",
            signing_input.to_owned(),
            Some("malformed"),
        ),
        case(
            "non-canonical base64url signature",
            non_canonical_tag(&valid),
            Some("malformed"),
        ),
        case("padded signature", format!("{valid}="), Some("malformed")),
        case(
            "longer than 8 KiB",
            jws(&header, &with(json!({"pad": "p".repeat(9000)})), &secret),
            Some("malformed"),
        ),
        case("not a JWT", "not.a.jwt", Some("malformed")),
        case("empty", "", Some("malformed")),
    ]
}

fn jwt_outcome(input: &str) -> Result<Value, &'static str> {
    let verifier = JwtVerifier::builder()
        .keyring(&keyring())
        .issuer(ISSUER)
        .audience(JWT_AUDIENCE)
        .clock(clock().shared())
        .build()
        .expect("verifier");
    verifier
        .verify_token(input)
        .map(|c| json!({"sub": c.subject}))
        .map_err(jwt_error)
}

// ---------------------------------------------------------------- files

struct Family {
    file: &'static str,
    algorithm: &'static str,
    notes: Value,
    parameters: Value,
    cases: fn() -> Vec<Case>,
    outcome: fn(&str) -> Result<Value, &'static str>,
}

fn families() -> Vec<Family> {
    let common_notes = |extra: &str| {
        json!({
            "format": "{kid}.{base64url(envelope JSON)}.{base64url(HMAC-SHA256 tag)}; tag over \"keystile.v1\\0\" + purpose + \"\\0\" + \"{kid}.{payload}\"; envelope {iat, exp, nbf?, dat}, unknown fields refused",
            "base64": "URL-safe alphabet, no padding, canonical (trailing bits zero)",
            "time": "valid while nbf-or-iat <= now < exp",
            "family": extra,
        })
    };
    vec![
        Family {
            file: "signed_codec.json",
            algorithm: "keystile signed codec v1 (HMAC-SHA256)",
            notes: common_notes("dat is any JSON value"),
            parameters: json!({"keys": keys_parameter(), "purpose": CODEC_PURPOSE.label(), "now": T0, "maxLength": 4096}),
            cases: codec_cases,
            outcome: codec_outcome,
        },
        Family {
            file: "handoff_token.json",
            algorithm: "keystile handoff token (signed codec, purpose keystile/handoff)",
            notes: common_notes(
                "dat = {sub, act?, aud, sv?, jti}: texts 1-256 bytes without control characters, jti >= 16 bytes of base64url; aud must equal the tenant",
            ),
            parameters: json!({"keys": keys_parameter(), "purpose": "keystile/handoff", "now": T0, "audience": AUDIENCE, "maxLength": 4096}),
            cases: handoff_cases,
            outcome: handoff_outcome,
        },
        Family {
            file: "session_cookie.json",
            algorithm: "keystile session cookie (signed codec, purpose keystile/session)",
            notes: common_notes("dat = {sub, act?, aud, sv?}; aud must equal the tenant"),
            parameters: json!({"keys": keys_parameter(), "purpose": "keystile/session", "now": T0, "audience": AUDIENCE, "maxLength": 4096}),
            cases: session_cases,
            outcome: session_outcome,
        },
        Family {
            file: "api_key.json",
            algorithm: "keystile API key format (prefix_ + 43 base62 random + 6 base62 CRC-32)",
            notes: json!({
                "format": "prefix [a-z0-9][a-z0-9_]{0,15} not ending in _, then _, then 49 of [0-9A-Za-z]; the last 6 are the CRC-32 (IEEE) of everything before them, as a base-62 number",
                "valid": "valid cases carry the SHA-256 digest a store looks up",
            }),
            parameters: json!({"maxLength": 66}),
            cases: api_key_cases,
            outcome: api_key_outcome,
        },
        Family {
            file: "jwt.json",
            algorithm: "JWT HS256 (keystile JwtVerifier, keyring-derived secret)",
            notes: json!({
                "secret": "the HS256 secret of a keyring key is HMAC-SHA256(key, \"keystile.v1\\0keystile/jwt-hs256\\0\"); hs256SecretHex below",
                "rules": "kid required and pinned to HS256; iss and aud required and checked; exp required; 30 s leeway on exp and nbf; typ refresh refused; crit refused; at most 8192 bytes",
            }),
            parameters: json!({
                "keys": [
                    {"kid": key(0x11).id().as_str(), "hs256SecretHex": hex(&hs256_secret(0x11)), "role": "primary"},
                    {"kid": key(0x22).id().as_str(), "hs256SecretHex": hex(&hs256_secret(0x22)), "role": "fallback"},
                ],
                "issuer": ISSUER, "audience": JWT_AUDIENCE, "now": T0, "leewaySeconds": 30,
            }),
            cases: jwt_cases,
            outcome: jwt_outcome,
        },
    ]
}

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

fn render(family: &Family) -> String {
    let cases = (family.cases)();
    let tests: Vec<Value> = cases
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut test = json!({
                "tcId": i + 1,
                "comment": c.comment,
                "input": c.input,
                "result": if c.error.is_none() { "valid" } else { "invalid" },
                "error": c.error,
            });
            if c.error.is_none()
                && let Ok(expected) = (family.outcome)(&c.input)
            {
                test["expected"] = expected;
            }
            test
        })
        .collect();
    let file = json!({
        "algorithm": family.algorithm,
        "generator": "tests/vectors.rs (KEYSTILE_REGENERATE_VECTORS=1 cargo test --workspace --all-features --test vectors)",
        "notes": family.notes,
        "parameters": family.parameters,
        "numberOfTests": tests.len(),
        "tests": tests,
    });
    let mut text = serde_json::to_string_pretty(&file).expect("JSON");
    text.push('\n');
    text
}

/// The generator's own cases hold against the library, and the committed
/// files are exactly what it produces (rewritten on request).
#[test]
fn committed_vectors_match_the_generator() {
    let regenerate = std::env::var_os("KEYSTILE_REGENERATE_VECTORS").is_some();
    let mut wrong = Vec::new();
    for family in families() {
        for c in (family.cases)() {
            let got = (family.outcome)(&c.input).err();
            if got != c.error {
                wrong.push(format!(
                    "{}: {}: expected {:?}, got {got:?}",
                    family.file, c.comment, c.error
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "cases disagree with the library:\n{}",
        wrong.join("\n")
    );
    for family in families() {
        let path = dir().join(family.file);
        let text = render(&family);
        if regenerate {
            std::fs::create_dir_all(dir()).expect("vectors directory");
            std::fs::write(&path, &text).expect("write vectors");
        }
        let committed =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            committed == text,
            "{} is stale: run KEYSTILE_REGENERATE_VECTORS=1 cargo test --test vectors",
            path.display()
        );
    }
}

/// Every case in every committed file gets its stated result and error
/// class from the library, and valid cases yield the stated claims.
#[test]
fn committed_vectors_hold() {
    let mut checked = 0;
    for family in families() {
        let path = dir().join(family.file);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let file: Value = serde_json::from_str(&text).expect("vector file is JSON");
        let tests = file["tests"].as_array().expect("tests array");
        assert_eq!(file["numberOfTests"].as_u64(), Some(tests.len() as u64));
        let mut invalid = 0;
        for test in tests {
            let id = &test["tcId"];
            let input = test["input"].as_str().expect("input text");
            let outcome = (family.outcome)(input);
            match test["result"].as_str() {
                Some("valid") => {
                    let claims = outcome
                        .unwrap_or_else(|e| panic!("{} #{id}: refused with {e}", family.file));
                    assert_eq!(claims, test["expected"], "{} #{id}", family.file);
                }
                Some("invalid") => {
                    invalid += 1;
                    assert_eq!(
                        outcome.err(),
                        test["error"].as_str(),
                        "{} #{id}: {}",
                        family.file,
                        test["comment"]
                    );
                }
                other => panic!("{} #{id}: result {other:?}", family.file),
            }
            checked += 1;
        }
        assert!(invalid >= 10, "{} has too few negative cases", family.file);
    }
    assert!(checked >= 100);
}
