//! JWT verification through the public API: known vectors, tampering,
//! time, issuer/audience, algorithm confusion, key ids and rotation.
#![cfg(feature = "jwt")]

use std::time::Duration;

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use keystile::bearer::jwt::sign_hs256;
use keystile::bearer::{JwtAlgorithm, JwtConfigError, JwtVerifier, JwtVerifierBuilder, TokenError};
use keystile::clock::ManualClock;
use keystile::encoding;
use keystile::keys::{Keyring, SigningKey};
use keystile::mac::MacKey;
use serde_json::{Map, Value, json};

const T0: u64 = 1_700_000_000;

const RSA_PRIVATE: &[u8] = include_bytes!("fixtures/rsa_private.pem");
const RSA_PUBLIC: &[u8] = include_bytes!("fixtures/rsa_public.pem");
const EC_PRIVATE: &[u8] = include_bytes!("fixtures/ec_private.pem");
const EC_PUBLIC: &[u8] = include_bytes!("fixtures/ec_public.pem");
const ED_PRIVATE: &[u8] = include_bytes!("fixtures/ed25519_private.pem");
const ED_PUBLIC: &[u8] = include_bytes!("fixtures/ed25519_public.pem");

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

fn keyring(byte: u8) -> Keyring {
    Keyring::new(SigningKey::from_bytes(&[byte; 32]).unwrap())
}

fn hs(keyring: &Keyring, claims: Value) -> String {
    sign_hs256(keyring, &object(claims)).unwrap()
}

fn base(clock: &ManualClock) -> JwtVerifierBuilder {
    JwtVerifier::builder().clock(clock.shared())
}

fn sign(alg: Algorithm, kid: Option<&str>, key: &EncodingKey, claims: Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, &claims, key).unwrap()
}

fn claims() -> Value {
    json!({"sub": "alice", "exp": T0 + 300, "iat": T0, "scope": "reports:read", "sv": 7, "tenant": "acme"})
}

/// Replaces one dot-separated part of `token`.
fn with_part(token: &str, index: usize, part: &str) -> String {
    let mut parts: Vec<&str> = token.split('.').collect();
    parts[index] = part;
    parts.join(".")
}

fn part_json(token: &str, index: usize) -> Value {
    let text = token.split('.').nth(index).unwrap();
    serde_json::from_slice(&encoding::decode(text).unwrap()).unwrap()
}

fn reencode(value: &Value) -> String {
    encoding::encode(serde_json::to_vec(value).unwrap())
}

// RFC 7515 Appendix A.1 (also RFC 7519 §3.1): the HS256 JWS example, its
// JWK and token exactly as printed there.
const A1_JWK: &str = r#"{"kty":"oct",
 "k":"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"
}"#;
const A1_TOKEN: &str = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

// RFC 7515 Appendix A.2: RS256, the public half of its JWK (a `kid` added:
// keystile requires one in configuration; the token itself names none).
const A2_JWK: &str = r#"{"kty":"RSA","kid":"a2","n":"ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ","e":"AQAB"}"#;
const A2_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw";

// RFC 7515 Appendix A.3: ES256 (P-256), likewise.
const A3_JWK: &str = r#"{"kty":"EC","kid":"a3","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"#;
const A3_TOKEN: &str = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";

// RFC 7515 Appendix A.4: ES512 (P-521), which keystile does not verify.
const A4_JWK: &str = r#"{"kty":"EC","kid":"a4","crv":"P-521","x":"AekpBQ8ST8a8VcfVOTNl353vSrDCLLJXmPk06wTjxrrjcBpXp5EOnYG_NjFZ6OvLFV1jSfS9tsz4qUxcWceqwQGk","y":"ADSmRA43Z1DSNx_RvcLI87cdL07l6jQyyBXMoxVg_l2Th-x3S1WDhjDly79ajL4Kkd0AZMaZmh9ubmf63e3kyMj2"}"#;
const A4_TOKEN: &str = "eyJhbGciOiJFUzUxMiJ9.UGF5bG9hZA.AdwMgeerwtHoh-l192l60hp9wAHZFVJbLfD_UxMi70cwnZOYaRI1bKPWROc-mZZqwqT2SI-KGDKB34XO0aw_7XdtAG8GaSwFKdCAPZgoXD2YBJZCPEX3xKpRwcdOO8KpEHwJjyqOgzDO7iKvU8vcnwNrmxYbSW9ERBXukOXolLzeO_Jn";

/// Ten seconds before the examples' `exp` (1300819380).
const A_NOW: u64 = 1_300_819_370;

/// What the appendix examples are refused for once their signature has
/// verified: their claims name no subject, and keystile requires one.
const NO_SUBJECT: &str = "sub is missing or not a non-empty string";

/// The A.1 key: the JWK's `k`, decoded.
fn a1_key() -> Vec<u8> {
    let jwk: Value = serde_json::from_str(A1_JWK).unwrap();
    encoding::decode(jwk["k"].as_str().unwrap()).unwrap()
}

/// `token` with one byte in the middle of its signature flipped.
fn flip_signature_middle(token: &str) -> String {
    let mut signature = encoding::decode(token.rsplit('.').next().unwrap()).unwrap();
    let middle = signature.len() / 2;
    signature[middle] ^= 0x01;
    with_part(token, 2, &encoding::encode(&signature))
}

#[test]
fn rfc7515_a1_signature_is_hmac_sha256_over_the_signing_input() {
    let (signing_input, signature) = A1_TOKEN.rsplit_once('.').unwrap();
    let tag = MacKey::new(&a1_key()).compute(signing_input.as_bytes());
    assert_eq!(encoding::encode(tag), signature);
}

#[test]
fn rfc7515_a1_to_a3_signatures_verify_and_their_subjectless_claims_are_refused() {
    let clock = ManualClock::at_unix(A_NOW);
    let a1 = base(&clock).hs256_secret("a1", &a1_key()).unwrap();
    let a2 = base(&clock).jwk(A2_JWK).unwrap();
    let a3 = base(&clock).jwk(A3_JWK).unwrap();
    for (name, builder, token) in [
        ("A.1", a1, A1_TOKEN),
        ("A.2", a2, A2_TOKEN),
        ("A.3", a3, A3_TOKEN),
    ] {
        let verifier = builder.issuer("joe").build().unwrap();
        // The claims are read only once the signature has verified.
        assert_eq!(
            format!("{:?}", verifier.verify_token(token)),
            format!("{:?}", Err::<(), _>(TokenError::Malformed(NO_SUBJECT))),
            "{name}"
        );
        assert!(
            matches!(
                verifier.verify_token(&flip_signature_middle(token)),
                Err(TokenError::BadSignature)
            ),
            "{name}"
        );
        let forged = with_part(
            token,
            1,
            &reencode(&json!({"iss": "joe", "exp": 1_300_819_380u64, "sub": "joe"})),
        );
        assert!(
            matches!(
                verifier.verify_token(&forged),
                Err(TokenError::BadSignature)
            ),
            "{name}"
        );
    }
}

#[test]
fn rfc7515_a2_and_a3_under_a_verifier_of_another_algorithm_are_refused() {
    let clock = ManualClock::at_unix(A_NOW);
    let hs256 = base(&clock)
        .hs256_secret("a1", &a1_key())
        .unwrap()
        .build()
        .unwrap();
    let es256 = base(&clock).jwk(A3_JWK).unwrap().build().unwrap();
    for (verifier, token) in [
        (&hs256, A2_TOKEN),
        (&hs256, A3_TOKEN),
        (&es256, A2_TOKEN),
        (&es256, A1_TOKEN),
    ] {
        assert!(
            matches!(
                verifier.verify_token(token),
                Err(TokenError::WrongAlgorithm)
            ),
            "{token}"
        );
    }
}

#[test]
fn rfc7515_a4_es512_is_refused_as_unsupported() {
    assert!(matches!(
        JwtVerifier::builder().jwk(A4_JWK),
        Err(JwtConfigError::UnsupportedJwk(_))
    ));
    let clock = ManualClock::at_unix(A_NOW);
    let verifiers = [
        base(&clock)
            .hs256_secret("a1", &a1_key())
            .unwrap()
            .build()
            .unwrap(),
        base(&clock).jwk(A2_JWK).unwrap().build().unwrap(),
        base(&clock).jwk(A3_JWK).unwrap().build().unwrap(),
    ];
    for verifier in &verifiers {
        assert!(matches!(
            verifier.verify_token(A4_TOKEN),
            Err(TokenError::Malformed("unsupported alg"))
        ));
    }
}

#[test]
fn rfc7515_a1_header_and_key_verify_a_token_with_a_subject_without_a_kid() {
    let key = a1_key();
    let clock = ManualClock::at_unix(A_NOW);
    let one = base(&clock)
        .hs256_secret("a1", &key)
        .unwrap()
        .issuer("joe")
        .build()
        .unwrap();
    // The same header and key, with a subject: verified without a kid.
    let payload = json!({"iss": "joe", "exp": 1_300_819_380u64, "sub": "joe"});
    let token = sign(
        Algorithm::HS256,
        None,
        &EncodingKey::from_secret(&key).unwrap(),
        payload,
    );
    assert_eq!(one.verify_token(&token).unwrap().subject, "joe");
    // With a second HS256 key there is no "only key": refused.
    let two = base(&clock)
        .hs256_secret("a1", &key)
        .unwrap()
        .hs256_secret("other", &[7; 32])
        .unwrap()
        .issuer("joe")
        .build()
        .unwrap();
    assert!(matches!(
        two.verify_token(&token),
        Err(TokenError::UnknownKey)
    ));
    // ... while another algorithm's key beside it changes nothing.
    let mixed = base(&clock)
        .hs256_secret("a1", &key)
        .unwrap()
        .public_key_pem("rsa-1", JwtAlgorithm::RS256, RSA_PUBLIC)
        .unwrap()
        .issuer("joe")
        .build()
        .unwrap();
    assert_eq!(mixed.verify_token(&token).unwrap().subject, "joe");
}

#[test]
fn rfc7515_a1_claims_under_a_kid_verify_at_their_own_time_and_expire() {
    let key = a1_key();
    let payload = json!({"iss": "joe", "exp": 1_300_819_380u64, "http://example.com/is_root": true, "sub": "joe"});
    let token = sign(
        Algorithm::HS256,
        Some("a1"),
        &EncodingKey::from_secret(&key).unwrap(),
        payload,
    );
    let clock = ManualClock::at_unix(1_300_819_370);
    let verifier = base(&clock)
        .hs256_secret("a1", &key)
        .unwrap()
        .issuer("joe")
        .build()
        .unwrap();
    let claims = verifier.verify_token(&token).unwrap();
    assert_eq!(claims.issuer.as_deref(), Some("joe"));
    assert_eq!(claims.extra["http://example.com/is_root"], true);
    clock.advance(Duration::from_secs(10 + 30));
    assert!(matches!(
        verifier.verify_token(&token),
        Err(TokenError::Expired)
    ));
}

#[test]
fn keyring_hs256_token_yields_all_claims() {
    let ring = keyring(1);
    let clock = ManualClock::at_unix(T0);
    let verifier = base(&clock).keyring(&ring).build().unwrap();
    let c = verifier.verify_token(&hs(&ring, claims())).unwrap();
    assert_eq!(c.subject, "alice");
    assert_eq!(c.session_version, Some(7));
    assert_eq!((c.issued_at, c.expires_at), (Some(T0), Some(T0 + 300)));
    assert!(c.scopes.allows("reports:read"));
    assert_eq!(c.extra["tenant"], "acme");
}

#[test]
fn rs256_es256_and_eddsa_verify_from_pem_public_keys() {
    let clock = ManualClock::at_unix(T0);
    let verifier = base(&clock)
        .public_key_pem("rsa-1", JwtAlgorithm::RS256, RSA_PUBLIC)
        .unwrap()
        .public_key_pem("ec-1", JwtAlgorithm::ES256, EC_PUBLIC)
        .unwrap()
        .public_key_pem("ed-1", JwtAlgorithm::EdDSA, ED_PUBLIC)
        .unwrap()
        .build()
        .unwrap();
    let cases = [
        (
            Algorithm::RS256,
            "rsa-1",
            EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap(),
        ),
        (
            Algorithm::ES256,
            "ec-1",
            EncodingKey::from_ec_pem(EC_PRIVATE).unwrap(),
        ),
        (
            Algorithm::EdDSA,
            "ed-1",
            EncodingKey::from_ed_pem(ED_PRIVATE).unwrap(),
        ),
    ];
    for (alg, kid, key) in &cases {
        let token = sign(*alg, Some(kid), key, claims());
        assert_eq!(
            verifier.verify_token(&token).unwrap().subject,
            "alice",
            "{alg:?}"
        );
        // The same token under another key's kid fails.
        let other = if *kid == "rsa-1" { "ec-1" } else { "rsa-1" };
        let header = part_json(&token, 0);
        let mut header = header.as_object().unwrap().clone();
        header.insert("kid".into(), other.into());
        let swapped = with_part(&token, 0, &reencode(&Value::Object(header)));
        assert!(
            verifier.verify_token(&swapped).is_err(),
            "{alg:?} under {other}"
        );
    }
}

#[test]
fn public_keys_load_from_jwk_and_jwk_sets() {
    let clock = ManualClock::at_unix(T0);
    let rsa = EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap();
    let ec = EncodingKey::from_ec_pem(EC_PRIVATE).unwrap();
    let mut rsa_jwk = Jwk::from_encoding_key(&rsa, Algorithm::RS256).unwrap();
    rsa_jwk.common.key_id = Some("rsa-jwk".into());
    let mut ec_jwk = Jwk::from_encoding_key(&ec, Algorithm::ES256).unwrap();
    ec_jwk.common.key_id = Some("ec-jwk".into());
    let set = json!({"keys": [rsa_jwk, ec_jwk]}).to_string();
    let verifier = base(&clock).jwk_set(&set).unwrap().build().unwrap();
    assert!(
        verifier
            .verify_token(&sign(Algorithm::RS256, Some("rsa-jwk"), &rsa, claims()))
            .is_ok()
    );
    assert!(
        verifier
            .verify_token(&sign(Algorithm::ES256, Some("ec-jwk"), &ec, claims()))
            .is_ok()
    );

    let mut no_kid = Jwk::from_encoding_key(&rsa, Algorithm::RS256).unwrap();
    no_kid.common.key_id = None;
    assert!(
        base(&clock)
            .jwk(&serde_json::to_string(&no_kid).unwrap())
            .is_err()
    );
}

#[test]
fn flipping_a_byte_in_the_middle_of_the_signature_is_refused() {
    let ring = keyring(1);
    let clock = ManualClock::at_unix(T0);
    let rsa = EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap();
    let verifier = base(&clock)
        .keyring(&ring)
        .public_key_pem("rsa-1", JwtAlgorithm::RS256, RSA_PUBLIC)
        .unwrap()
        .build()
        .unwrap();
    for token in [
        hs(&ring, claims()),
        sign(Algorithm::RS256, Some("rsa-1"), &rsa, claims()),
    ] {
        let mut signature = encoding::decode(token.rsplit('.').next().unwrap()).unwrap();
        let middle = signature.len() / 2;
        signature[middle] ^= 0x01;
        let tampered = with_part(&token, 2, &encoding::encode(&signature));
        assert!(matches!(
            verifier.verify_token(&tampered),
            Err(TokenError::BadSignature)
        ));
    }
}

#[test]
fn tampered_header_or_payload_is_refused() {
    let ring = keyring(1);
    let clock = ManualClock::at_unix(T0);
    let verifier = base(&clock).keyring(&ring).build().unwrap();
    let token = hs(&ring, claims());

    let mut payload = part_json(&token, 1);
    payload["sub"] = "mallory".into();
    let forged = with_part(&token, 1, &reencode(&payload));
    assert!(matches!(
        verifier.verify_token(&forged),
        Err(TokenError::BadSignature)
    ));

    let mut header = part_json(&token, 0);
    header["typ"] = "at+jwt".into();
    let forged = with_part(&token, 0, &reencode(&header));
    assert!(matches!(
        verifier.verify_token(&forged),
        Err(TokenError::BadSignature)
    ));
}

#[test]
fn expiry_and_not_before_follow_the_injected_clock_with_leeway() {
    let ring = keyring(1);
    let clock = ManualClock::at_unix(T0);
    let verifier = base(&clock)
        .keyring(&ring)
        .leeway(Duration::from_secs(10))
        .build()
        .unwrap();
    let future = hs(&ring, json!({"sub": "a", "exp": T0 + 600, "nbf": T0 + 100}));
    assert!(matches!(
        verifier.verify_token(&future),
        Err(TokenError::NotYetValid)
    ));
    clock.advance(Duration::from_secs(90)); // nbf within leeway
    assert!(verifier.verify_token(&future).is_ok());

    // Issued in the future: not valid yet either, with or without `nbf`.
    let issued_later = hs(&ring, json!({"sub": "a", "exp": T0 + 600, "iat": T0 + 200}));
    assert!(matches!(
        verifier.verify_token(&issued_later),
        Err(TokenError::NotYetValid)
    ));
    clock.advance(Duration::from_secs(100)); // iat within leeway
    assert!(verifier.verify_token(&issued_later).is_ok());
    clock.set_unix_millis(T0 * 1000);

    let expiring = hs(&ring, json!({"sub": "a", "exp": T0 + 120}));
    clock.set_unix_millis((T0 + 129) * 1000); // inside leeway
    assert!(verifier.verify_token(&expiring).is_ok());
    clock.advance(Duration::from_secs(1));
    assert!(matches!(
        verifier.verify_token(&expiring),
        Err(TokenError::Expired)
    ));
}

#[test]
fn exp_is_required_and_must_be_an_integer() {
    let ring = keyring(1);
    let clock = ManualClock::at_unix(T0);
    let verifier = base(&clock).keyring(&ring).build().unwrap();
    for payload in [
        json!({"sub": "a"}),
        json!({"sub": "a", "exp": "tomorrow"}),
        json!({"sub": "a", "exp": T0 + 60, "nbf": "now"}),
        json!({"exp": T0 + 60}),
    ] {
        let token = hs(&ring, payload.clone());
        assert!(
            matches!(verifier.verify_token(&token), Err(TokenError::Malformed(_))),
            "{payload}"
        );
    }
}

#[test]
fn issuer_and_audience_are_enforced_when_configured() {
    let ring = keyring(1);
    let clock = ManualClock::at_unix(T0);
    let verifier = base(&clock)
        .keyring(&ring)
        .issuer("https://idp.test")
        .audience("reports")
        .build()
        .unwrap();
    let ok =
        json!({"sub": "a", "exp": T0 + 60, "iss": "https://idp.test", "aud": ["other", "reports"]});
    assert!(verifier.verify_token(&hs(&ring, ok)).is_ok());
    let cases = [
        (
            json!({"sub": "a", "exp": T0 + 60, "iss": "https://evil.test", "aud": "reports"}),
            "wrong iss",
        ),
        (
            json!({"sub": "a", "exp": T0 + 60, "aud": "reports"}),
            "no iss",
        ),
    ];
    for (payload, what) in cases {
        assert!(
            matches!(
                verifier.verify_token(&hs(&ring, payload)),
                Err(TokenError::WrongIssuer)
            ),
            "{what}"
        );
    }
    let cases = [
        (
            json!({"sub": "a", "exp": T0 + 60, "iss": "https://idp.test", "aud": "billing"}),
            "wrong aud",
        ),
        // A configured audience is required, not only checked when present.
        (
            json!({"sub": "a", "exp": T0 + 60, "iss": "https://idp.test"}),
            "no aud",
        ),
    ];
    for (payload, what) in cases {
        assert!(
            matches!(
                verifier.verify_token(&hs(&ring, payload)),
                Err(TokenError::WrongAudience)
            ),
            "{what}"
        );
    }
}

#[test]
fn token_with_an_audience_is_refused_when_none_is_configured() {
    let ring = keyring(1);
    let clock = ManualClock::at_unix(T0);
    let verifier = base(&clock).keyring(&ring).build().unwrap();
    let token = hs(
        &ring,
        json!({"sub": "a", "exp": T0 + 60, "aud": "someone-else"}),
    );
    assert!(matches!(
        verifier.verify_token(&token),
        Err(TokenError::WrongAudience)
    ));
}

#[test]
fn alg_none_is_refused() {
    let ring = keyring(1);
    let clock = ManualClock::at_unix(T0);
    let verifier = base(&clock).keyring(&ring).build().unwrap();
    let kid = ring.primary().id().to_string();
    for alg in ["none", "None", "NONE"] {
        let header = reencode(&json!({"alg": alg, "typ": "JWT", "kid": kid}));
        let payload = reencode(&json!({"sub": "admin", "exp": T0 + 60}));
        for token in [
            format!("{header}.{payload}."),
            format!("{header}.{payload}"),
        ] {
            assert!(verifier.verify_token(&token).is_err(), "{alg}: {token}");
        }
    }
}

#[test]
fn hs256_signed_with_the_rsa_public_key_is_refused_for_an_rsa_kid() {
    let clock = ManualClock::at_unix(T0);
    let verifier = base(&clock)
        .public_key_pem("rsa-1", JwtAlgorithm::RS256, RSA_PUBLIC)
        .unwrap()
        .build()
        .unwrap();
    // The classic confusion attack: the public key bytes as an HMAC secret.
    let forged = sign(
        Algorithm::HS256,
        Some("rsa-1"),
        &EncodingKey::from_secret(RSA_PUBLIC).unwrap(),
        claims(),
    );
    assert!(matches!(
        verifier.verify_token(&forged),
        Err(TokenError::WrongAlgorithm)
    ));
}

#[test]
fn rs256_presented_for_an_hmac_kid_is_refused() {
    let ring = keyring(1);
    let clock = ManualClock::at_unix(T0);
    let verifier = base(&clock).keyring(&ring).build().unwrap();
    let kid = ring.primary().id().to_string();
    let rsa = EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap();
    let token = sign(Algorithm::RS256, Some(&kid), &rsa, claims());
    assert!(matches!(
        verifier.verify_token(&token),
        Err(TokenError::WrongAlgorithm)
    ));
}

#[test]
fn an_unknown_kid_is_refused_and_a_missing_one_goes_to_the_only_key() {
    let ring = keyring(1);
    let clock = ManualClock::at_unix(T0);
    let verifier = base(&clock).keyring(&ring).build().unwrap();
    let stranger = hs(&keyring(2), claims());
    assert!(matches!(
        verifier.verify_token(&stranger),
        Err(TokenError::UnknownKey)
    ));
    // Without a kid the only HS256 key checks it: the raw keyring secret
    // is not the derived JWT secret, so the signature does not verify.
    let secret_without_kid = sign(
        Algorithm::HS256,
        None,
        &EncodingKey::from_secret(&[1; 32]).unwrap(),
        claims(),
    );
    assert!(matches!(
        verifier.verify_token(&secret_without_kid),
        Err(TokenError::BadSignature)
    ));
    // An RS256 token without a kid has no RS256 key to go to.
    let rsa = EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap();
    assert!(matches!(
        verifier.verify_token(&sign(Algorithm::RS256, None, &rsa, claims())),
        Err(TokenError::WrongAlgorithm)
    ));
}

#[test]
fn rotation_keeps_tokens_from_the_fallback_key_verifying() {
    let old = SigningKey::from_bytes(&[1; 32]).unwrap();
    let new = SigningKey::from_bytes(&[2; 32]).unwrap();
    let clock = ManualClock::at_unix(T0);
    let before = Keyring::new(old.clone());
    let after = Keyring::new(new.clone()).with_fallback(old).unwrap();
    let old_token = hs(&before, claims());
    let new_token = hs(&after, claims());
    let verifier = base(&clock).keyring(&after).build().unwrap();
    assert!(verifier.verify_token(&old_token).is_ok());
    assert!(verifier.verify_token(&new_token).is_ok());
    // Once the old key is dropped, its tokens are unknown.
    let dropped = base(&clock).keyring(&Keyring::new(new)).build().unwrap();
    assert!(matches!(
        dropped.verify_token(&old_token),
        Err(TokenError::UnknownKey)
    ));
}

#[test]
fn oversized_garbage_and_critical_headers_never_panic_and_never_admit() {
    let ring = keyring(1);
    let clock = ManualClock::at_unix(T0);
    let verifier = base(&clock).keyring(&ring).build().unwrap();
    let token = hs(&ring, claims());
    let huge = format!("{token}{}", "A".repeat(9000));
    assert!(matches!(
        verifier.verify_token(&huge),
        Err(TokenError::Malformed(_))
    ));
    for junk in [
        "",
        ".",
        "..",
        "a.b.c",
        "a.b.c.d",
        "ey.ey.ey",
        "\u{0}\u{1}",
        "€.€.€",
    ] {
        assert!(verifier.verify_token(junk).is_err(), "{junk:?}");
    }
    let mut header = part_json(&token, 0);
    header["crit"] = json!(["exp"]);
    let critical = sign_with_header(&ring, header, claims());
    assert!(matches!(
        verifier.verify_token(&critical),
        Err(TokenError::Malformed(_))
    ));
}

/// Signs `claims` under a hand-made `header` with the keyring's HS256 key.
fn sign_with_header(ring: &Keyring, header: Value, claims: Value) -> String {
    let header: Header = serde_json::from_value(header).unwrap();
    let secret = derived_secret(ring);
    jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_secret(&secret).unwrap(),
    )
    .unwrap()
}

/// The documented derivation: HMAC-SHA256(key, "keystile.v1\0keystile/jwt-hs256\0").
fn derived_secret(ring: &Keyring) -> Vec<u8> {
    let encoded = ring.primary().to_encoded();
    let raw = encoding::decode(encoded.as_str()).unwrap();
    MacKey::new(&raw)
        .compute(b"keystile.v1\0keystile/jwt-hs256\0")
        .to_vec()
}

#[test]
fn documented_hs256_derivation_matches_the_verifier() {
    let ring = keyring(3);
    let clock = ManualClock::at_unix(T0);
    let verifier = base(&clock).keyring(&ring).build().unwrap();
    let kid = ring.primary().id().to_string();
    let token = sign(
        Algorithm::HS256,
        Some(&kid),
        &EncodingKey::from_secret(&derived_secret(&ring)).unwrap(),
        claims(),
    );
    assert!(verifier.verify_token(&token).is_ok());
}
