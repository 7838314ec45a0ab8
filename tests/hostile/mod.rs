//! Hostile-input checks shared by the fuzz targets (`fuzz/`) and the property
//! tests (`tests/hostile_input.rs`).
//!
//! Each `check_*` function takes arbitrary bytes, turns them into an input
//! for one decoder and asserts the decoder's invariants, panicking (which a
//! fuzzer reports as a crash) when one breaks:
//!
//! - random input never verifies;
//! - a valid token changed in any way never verifies;
//! - nothing panics, and inputs are refused before any large allocation.
//!
//! The first byte of the input picks the mode: even = the rest is the
//! candidate itself, odd = the rest is a mutation script applied to a valid
//! token minted by a fixed fixture (see [`mutate`]). Both drivers share this
//! one definition, so CI checks exactly what the fuzzer explores.
#![allow(dead_code)]

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};
use keystile::api_key::{KeyDigest, KeyPrefix};
use keystile::auth::credentials;
use keystile::bearer::{JwtVerifier, jwt::sign_hs256};
use keystile::clock::ManualClock;
use keystile::codec::{Purpose, SignedCodec};
use keystile::handoff::{Handoff, HandoffCodec};
use keystile::keys::{Keyring, SigningKey};
use keystile::one_time::{MemoryOneTimeStore, OneTimeConfig, OneTimeError, OneTimeStore};
use keystile::random::RandomError;
use keystile::session::{SessionClaims, SessionCodec, SessionCookie};

/// The fixed time every fixture token is minted at and verified at.
pub const T0: u64 = 1_700_000_000;
/// The tenant tokens are minted for.
pub const AUDIENCE: &str = "acme";
/// The purpose of the generic signed-codec fixture.
pub const PURPOSE: Purpose = Purpose::new("keystile/hostile-input");

/// Verifiers and one valid token per family, all under fixed keys and a
/// clock that never moves.
pub struct Fixture {
    /// The generic signed codec.
    pub codec: SignedCodec,
    /// A valid `codec` token.
    pub codec_token: String,
    /// Handoff verification.
    pub handoff: HandoffCodec,
    /// A valid handoff token for [`AUDIENCE`].
    pub handoff_token: String,
    /// Session cookie verification.
    pub session: SessionCodec,
    /// A valid session cookie value for [`AUDIENCE`].
    pub session_token: String,
    /// JWT verification (HS256 from the keyring, issuer and audience set).
    pub jwt: JwtVerifier,
    /// A valid JWT.
    pub jwt_token: String,
    /// A valid API key.
    pub api_key: String,
}

/// The fixed keyring: primary `[0x11; 32]`, fallback `[0x22; 32]`.
pub fn keyring() -> Keyring {
    let key = |byte| SigningKey::from_bytes(&[byte; 32]).expect("fixed 32-byte key");
    Keyring::new(key(0x11))
        .with_fallback(key(0x22))
        .expect("distinct key ids")
}

/// The fixture, built once per process.
pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(build_fixture)
}

fn build_fixture() -> Fixture {
    let clock = ManualClock::at_unix(T0);
    let ring = keyring();
    let codec = SignedCodec::new(ring.clone(), PURPOSE).clock(clock.shared());
    let codec_token = codec
        .seal(
            &serde_json::json!({"sub": "user-7", "n": 42}),
            Duration::from_secs(60),
        )
        .expect("seal");
    let fixed_jti = |dest: &mut [u8]| -> Result<(), RandomError> {
        dest.fill(0x5a);
        Ok(())
    };
    let handoff = HandoffCodec::new(ring.clone())
        .clock(clock.shared())
        .random(Arc::new(fixed_jti));
    let handoff_token = handoff
        .mint(&Handoff::new("admin@acme", AUDIENCE).acting_as("operator:7"))
        .expect("mint");
    let session = SessionCodec::new(ring.clone()).clock(clock.shared());
    let session_token = session
        .issue(
            &SessionClaims {
                subject: "admin@acme".into(),
                actor: None,
                tenant: AUDIENCE.into(),
                session_version: Some(3),
                expires_at: 0,
            },
            Duration::from_secs(3600),
        )
        .expect("issue");
    let jwt = JwtVerifier::builder()
        .keyring(&ring)
        .issuer("https://idp.example.test")
        .audience("reports-api")
        .clock(clock.shared())
        .build()
        .expect("verifier");
    let serde_json::Value::Object(claims) = serde_json::json!({
        "sub": "alice", "iss": "https://idp.example.test", "aud": "reports-api",
        "exp": T0 + 300, "scope": "reports:read", "sv": 2
    }) else {
        unreachable!("a JSON object literal")
    };
    let jwt_token = sign_hs256(&ring, &claims).expect("sign");
    let prefix = KeyPrefix::new("sk_test").expect("prefix");
    let api_key = keystile::api_key::mint(&prefix, &|dest: &mut [u8]| -> Result<(), RandomError> {
        dest.fill(0x3c);
        Ok(())
    })
    .expect("mint")
    .as_str()
    .to_owned();
    let fixture = Fixture {
        codec,
        codec_token,
        handoff,
        handoff_token,
        session,
        session_token,
        jwt,
        jwt_token,
        api_key,
    };
    // A fixture that does not verify its own tokens would make every
    // "never verifies" check vacuous.
    assert!(
        fixture
            .codec
            .open::<serde_json::Value>(&fixture.codec_token)
            .is_ok()
    );
    assert!(
        fixture
            .handoff
            .verify(&fixture.handoff_token, AUDIENCE)
            .is_ok()
    );
    assert!(
        fixture
            .session
            .verify(&fixture.session_token, AUDIENCE)
            .is_ok()
    );
    assert!(fixture.jwt.verify_token(&fixture.jwt_token).is_ok());
    assert!(keystile::api_key::parse(&fixture.api_key).is_ok());
    fixture
}

/// Applies a mutation script to `valid`. The script is read three bytes at
/// a time, `(op, position, value)`, for at most 16 operations: flip bits
/// (`xor` with a non-zero value), insert, delete, or truncate at a position
/// taken modulo the current length. Positions are spread over the whole
/// token, so changes land in the middle of signatures, not only at the end.
pub fn mutate(valid: &[u8], script: &[u8]) -> Vec<u8> {
    let mut out = valid.to_vec();
    for step in script.chunks_exact(3).take(16) {
        let (op, pos, value) = (step[0], usize::from(step[1]), step[2]);
        // Scale the one-byte position onto the token's length.
        let at = |len: usize| if len == 0 { 0 } else { pos * len / 256 };
        match op % 4 {
            0 if !out.is_empty() => {
                let i = at(out.len());
                out[i] ^= value.max(1);
            }
            1 => {
                let i = at(out.len() + 1);
                out.insert(i.min(out.len()), value);
            }
            2 if !out.is_empty() => {
                let i = at(out.len());
                out.remove(i);
            }
            3 => out.truncate(at(out.len())),
            _ => {}
        }
    }
    out
}

/// The candidate an input describes: the raw bytes, or `valid` mutated.
/// `None` when a mutation script changed nothing (the candidate would be
/// the valid token itself).
fn candidate(data: &[u8], valid: &str) -> Option<Vec<u8>> {
    let (mode, rest) = data.split_first()?;
    if mode % 2 == 0 {
        return (rest != valid.as_bytes()).then(|| rest.to_vec());
    }
    let mutated = mutate(valid.as_bytes(), rest);
    (mutated != valid.as_bytes()).then_some(mutated)
}

/// The generic signed codec never opens anything but its own token.
pub fn check_signed_codec(data: &[u8]) {
    let f = fixture();
    let Some(input) = candidate(data, &f.codec_token) else {
        return;
    };
    let opened = f.codec.open::<serde_json::Value>(&input);
    assert!(opened.is_err(), "a forged signed-codec token verified");
}

/// Handoff verification refuses every input but the minted token.
pub fn check_handoff(data: &[u8]) {
    let f = fixture();
    let Some(input) = candidate(data, &f.handoff_token) else {
        return;
    };
    assert!(
        f.handoff.verify(&input, AUDIENCE).is_err(),
        "a forged handoff token verified"
    );
    // A handoff token is never a session cookie, mutated or not.
    assert!(f.session.verify(&input, AUDIENCE).is_err());
}

/// Session cookie verification refuses every input but the issued value.
pub fn check_session_cookie(data: &[u8]) {
    let f = fixture();
    let Some(input) = candidate(data, &f.session_token) else {
        return;
    };
    assert!(
        f.session.verify(&input, AUDIENCE).is_err(),
        "a forged session cookie verified"
    );
    assert!(f.handoff.verify(&input, AUDIENCE).is_err());
}

/// JWT verification refuses every input but the signed token.
pub fn check_jwt(data: &[u8]) {
    let f = fixture();
    let Some(input) = candidate(data, &f.jwt_token) else {
        return;
    };
    // The layer only ever hands the verifier text (a visible-ASCII header).
    let Ok(text) = std::str::from_utf8(&input) else {
        return;
    };
    assert!(f.jwt.verify_token(text).is_err(), "a forged JWT verified");
}

/// The API key parser: anything it accepts is well formed, and no text but
/// the minted key has the minted key's digest (what a store looks up).
pub fn check_api_key(data: &[u8]) {
    let f = fixture();
    let Some(input) = candidate(data, &f.api_key) else {
        return;
    };
    let Ok(text) = std::str::from_utf8(&input) else {
        return;
    };
    if let Ok(parsed) = keystile::api_key::parse(text) {
        // The checksum is a typo filter, not a secret: a fuzzer may solve
        // it. What must hold is the shape and that the digest is the key's.
        assert!(text.len() <= keystile::api_key::format::MAX_KEY_LEN);
        assert!(KeyPrefix::new(parsed.prefix()).is_ok());
        assert!(text.is_ascii());
        assert!(parsed.digest().ct_eq(&KeyDigest::of(text)));
        assert!(
            !parsed.digest().ct_eq(&KeyDigest::of(&f.api_key)),
            "another text has the stored key's digest"
        );
    }
}

const HEADER_NAMES: [&str; 4] = ["authorization", "x-api-key", "cookie", "x-other"];

/// Builds a header map from `data`: records separated by `0x00`, each a
/// name selector byte then the value bytes (values `http` refuses are
/// skipped, as hyper would refuse them on the wire).
pub fn headers_from(data: &[u8]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for record in data.split(|b| *b == 0).take(8) {
        let Some((selector, value)) = record.split_first() else {
            continue;
        };
        let name = HeaderName::from_static(HEADER_NAMES[usize::from(*selector) % 4]);
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.append(name, value);
        }
    }
    headers
}

/// The one Authorization / X-API-Key parser: whatever it returns is a
/// non-empty run of visible ASCII without whitespace taken from exactly one
/// header, and `Authorization: Bearer` always wins.
pub fn check_credential_headers(data: &[u8]) {
    let headers = headers_from(data);
    let bearer = credentials::bearer_token(&headers);
    let key = credentials::api_key(&headers);
    let well_formed =
        |token: &str| !token.is_empty() && token.bytes().all(|b| b.is_ascii_graphic());
    match bearer {
        Ok(Some(token)) => {
            assert!(
                well_formed(token),
                "bearer token with whitespace or controls"
            );
            assert_eq!(headers.get_all("authorization").iter().count(), 1);
            let value = headers
                .get("authorization")
                .map(HeaderValue::as_bytes)
                .unwrap_or_default();
            assert!(value.len() > 7 && names_bearer(value));
            assert!(value.windows(token.len()).any(|w| w == token.as_bytes()));
            assert_eq!(
                key,
                Ok(Some(token)),
                "Authorization must win over X-API-Key"
            );
        }
        Ok(None) => {
            if let Ok(Some(token)) = key {
                assert!(well_formed(token), "API key with whitespace or controls");
                assert_eq!(headers.get_all("x-api-key").iter().count(), 1);
                // A Bearer Authorization, even an empty one, decides alone.
                let authorization = headers.get("authorization").map(HeaderValue::as_bytes);
                assert!(
                    !authorization.is_some_and(names_bearer),
                    "X-API-Key overruled a Bearer Authorization"
                );
            }
        }
        Err(_) => assert!(key.is_err(), "a malformed Authorization must not fall back"),
    }
}

/// Whether an Authorization value names the Bearer scheme: the word, any
/// case, then the end or SP/HTAB (RFC 9110 §11.4).
fn names_bearer(value: &[u8]) -> bool {
    value.len() >= 6
        && value[..6].eq_ignore_ascii_case(b"bearer")
        && matches!(value.get(6), None | Some(b' ' | b'\t'))
}

/// The session cookie lookup over arbitrary `Cookie` headers: it answers a
/// value only when exactly one pair's name is `keystile_session` byte for
/// byte once SP and HTAB around it are dropped (never after any other
/// trimming or case folding), the value is that pair's, and any second
/// such pair — whatever its value — makes the request ambiguous.
pub fn check_cookie_headers(data: &[u8]) {
    let headers = headers_from(data);
    let cookie = SessionCookie::http();
    let blank = |b: &u8| *b == b' ' || *b == b'\t';
    let trim = |bytes: &[u8]| -> Vec<u8> {
        let start = bytes.iter().position(|b| !blank(b)).unwrap_or(bytes.len());
        let end = bytes
            .iter()
            .rposition(|b| !blank(b))
            .map_or(start, |i| i + 1);
        bytes[start..end].to_vec()
    };
    let mut values = Vec::new();
    for header in headers.get_all("cookie") {
        for pair in header.as_bytes().split(|b| *b == b';') {
            if let Some(eq) = pair.iter().position(|b| *b == b'=')
                && trim(&pair[..eq]) == cookie.name().as_bytes()
            {
                values.push(trim(&pair[eq + 1..]));
            }
        }
    }
    let expected = match values.as_slice() {
        [] => Ok(None),
        [value] if value.is_empty() => Ok(None),
        [value] => std::str::from_utf8(value).map(Some).map_err(|_| ()),
        _ => Err(()),
    };
    assert_eq!(cookie.find(&headers).map_err(|_| ()), expected);
}

/// Drives a future that never waits (the in-memory stores never do).
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("an in-memory store operation waited"),
    }
}

/// The one-time store driven by an operation sequence and compared, step by
/// step, with a model of what it promises (bounded pending set, expiry,
/// consume-once, a mismatch consumes nothing, collisions bounded, failures
/// distinct).
pub fn check_one_time_ops(data: &[u8]) {
    const MAX_PENDING: usize = 4;
    const TTL_MS: u64 = 30_000;
    const ATTEMPTS: u32 = 3;
    // Every drawn token is 16 copies of this byte; 0xff makes the random
    // source fail. A small alphabet of seeds makes collisions reachable.
    let seed = Arc::new(AtomicU8::new(0));
    let source = {
        let seed = Arc::clone(&seed);
        move |dest: &mut [u8]| -> Result<(), RandomError> {
            match seed.load(Ordering::Relaxed) {
                0xff => Err(RandomError("injected failure".into())),
                byte => {
                    dest.fill(byte);
                    Ok(())
                }
            }
        }
    };
    let clock = ManualClock::at_unix(T0);
    let store = MemoryOneTimeStore::new(
        OneTimeConfig::default()
            .ttl(Duration::from_millis(TTL_MS))
            .max_pending(MAX_PENDING)
            .max_attempts(ATTEMPTS)
            .clock(clock.shared())
            .random(Arc::new(source)),
    );
    // The model: seed byte → (binding, expiry in ms).
    let mut model: Vec<(u8, u8, u64)> = Vec::new();
    let token_of = |byte: u8| keystile::encoding::encode([byte; 16]);
    let mut now_ms = T0 * 1000;

    for op in data.chunks_exact(3).take(64) {
        let (kind, a, b) = (op[0] % 6, op[1], op[2]);
        match kind {
            0 => {
                let byte = if a == 0xff { 0xff } else { a % 6 };
                seed.store(byte, Ordering::Relaxed);
                let binding = [b % 3];
                let result = ready(store.issue(&binding));
                model.retain(|(_, _, exp)| *exp > now_ms);
                let expected_ok =
                    model.len() < MAX_PENDING && byte != 0xff && !model.iter().any(|e| e.0 == byte);
                match result {
                    Ok(token) => {
                        assert!(expected_ok, "issued beyond a limit or over a pending token");
                        assert_eq!(token.expose_secret(), token_of(byte));
                        model.push((byte, b % 3, now_ms + TTL_MS));
                    }
                    Err(OneTimeError::LimitReached { limit }) => {
                        assert_eq!(limit, MAX_PENDING);
                        assert!(model.len() >= MAX_PENDING);
                    }
                    Err(OneTimeError::Randomness(_)) => {
                        assert_eq!(byte, 0xff);
                        assert!(model.len() < MAX_PENDING);
                    }
                    Err(OneTimeError::CollisionsExhausted { attempts }) => {
                        assert_eq!(attempts, ATTEMPTS);
                        assert!(model.iter().any(|e| e.0 == byte));
                    }
                    Err(other) => panic!("unexpected issue error {other:?}"),
                }
            }
            1 | 2 => {
                let byte = a % 6;
                let binding = [b % 3];
                let result = if kind == 1 {
                    ready(store.consume(&token_of(byte), &binding))
                } else {
                    ready(store.revoke(&token_of(byte)))
                };
                let entry = model.iter().position(|e| e.0 == byte);
                match (result, entry) {
                    (Err(OneTimeError::Expired), Some(i)) => {
                        assert!(model[i].2 <= now_ms);
                        model.remove(i);
                    }
                    (Err(OneTimeError::Mismatch), Some(i)) => {
                        assert_eq!(kind, 1);
                        assert!(model[i].2 > now_ms && model[i].1 != b % 3);
                    }
                    (Ok(()), Some(i)) => {
                        assert!(model[i].2 > now_ms, "an expired token was accepted");
                        assert!(
                            kind == 2 || model[i].1 == b % 3,
                            "consumed under another binding"
                        );
                        model.remove(i);
                    }
                    (Err(OneTimeError::NotPending), None) => {}
                    (result, entry) => panic!("store said {result:?}, model had {entry:?}"),
                }
                model.retain(|(_, _, exp)| *exp > now_ms);
            }
            3 => {
                // Anything that is not a canonical token is refused as such.
                let text = String::from_utf8_lossy(&op[1..]).into_owned();
                // Refused before the store is touched, so nothing is pruned.
                assert!(matches!(
                    ready(store.consume(&text, b"x")),
                    Err(OneTimeError::Malformed)
                ));
            }
            4 => {
                let step = u64::from(a) * 250;
                clock.advance(Duration::from_millis(step));
                now_ms += step;
            }
            _ => {
                let pending = ready(store.pending()).expect("memory store");
                model.retain(|(_, _, exp)| *exp > now_ms);
                assert_eq!(pending, model.len());
                assert!(pending <= MAX_PENDING);
            }
        }
    }
}

/// The seed corpus: `(target, file name, bytes)`. Each decoder gets its
/// valid token (mode 0) and a mid-signature flip (mode 1); written to
/// `fuzz/seeds/<target>/` by `tests/hostile_input.rs` when
/// `KEYSTILE_REGENERATE_SEEDS=1`.
pub fn seeds() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let f = fixture();
    let with_mode = |mode: u8, bytes: &[u8]| {
        let mut out = vec![mode];
        out.extend_from_slice(bytes);
        out
    };
    // Flip one bit at 3/4 of the token: inside the tag of every signed
    // format here.
    let mid_tag_flip = with_mode(1, &[0, 192, 0x04]);
    let mut seeds = Vec::new();
    for (target, token) in [
        ("signed_codec", &f.codec_token),
        ("handoff_verify", &f.handoff_token),
        ("session_cookie", &f.session_token),
        ("jwt_verify", &f.jwt_token),
        ("api_key_parse", &f.api_key),
    ] {
        seeds.push((target, "valid", with_mode(0, token.as_bytes())));
        seeds.push((target, "mid_tag_flip", mid_tag_flip.clone()));
    }
    let header = |selector: u8, value: &str| {
        let mut out = vec![selector];
        out.extend_from_slice(value.as_bytes());
        out
    };
    seeds.push(("credential_headers", "bearer", header(0, "Bearer abc.def")));
    seeds.push((
        "credential_headers",
        "both",
        [header(0, "bEaReR  tok "), vec![0], header(1, "sk_x")].concat(),
    ));
    seeds.push(("credential_headers", "tab_inside", header(1, "a\tb")));
    seeds.push((
        "credential_headers",
        "bearer_tab_beside_x_api_key",
        [header(0, "Bearer\tnot-a-key"), vec![0], header(1, "sk_x")].concat(),
    ));
    seeds.push((
        "credential_headers",
        "empty_bearer_beside_x_api_key",
        [header(0, "bearer\t"), vec![0], header(1, "sk_x")].concat(),
    ));
    let cookie = |value: &[u8]| [&[2u8][..], value].concat();
    seeds.push((
        "cookie_headers",
        "no_break_space_name",
        cookie(b"\xc2\xa0keystile_session=abc"),
    ));
    seeds.push((
        "cookie_headers",
        "non_text_duplicate",
        cookie(b"keystile_session=\xff\xfe; keystile_session=abc"),
    ));
    seeds.push((
        "cookie_headers",
        "blanks_around_the_name",
        cookie(b" \tkeystile_session\t= abc"),
    ));
    seeds.push((
        "one_time_ops",
        "issue_consume_expire",
        vec![
            0, 1, 0, // issue seed 1, binding 0
            1, 1, 1, // consume under binding 1: mismatch
            0, 2, 0, // issue seed 2
            4, 200, 0, // advance 50 s
            1, 2, 0, // consume: expired
            5, 0, 0, // pending
        ],
    ));
    seeds.push((
        "one_time_ops",
        "limit_and_collision",
        vec![
            0, 1, 0, 0, 1, 0, 0, 2, 0, 0, 3, 0, 0, 4, 0, 0, 5, 0, 0, 255, 0, 5, 0, 0,
        ],
    ));
    seeds
}
