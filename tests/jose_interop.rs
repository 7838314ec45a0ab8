//! Interop vectors: JWTs minted by jose, a JOSE implementation keystile
//! shares no code with, and copies of them tampered with one change each.
//!
//! `tests/vectors/jose_interop.json` is written by
//! `tests/interop/mint.mjs` (run `scripts/interop-vectors`), never by
//! keystile: its `parameters` carry the issuer, audience, verify time and
//! the public keys as a JWK Set, and each case states its outcome, decided
//! by hand in the script. One [`JwtVerifier`] built from those parameters
//! must accept the valid tokens with their claims and refuse each tampered
//! one for the stated reason.
#![cfg(feature = "jwt")]

use std::collections::BTreeMap;
use std::path::Path;

use keystile::bearer::{Claims, JwtVerifier, TokenError};
use keystile::clock::ManualClock;
use serde_json::Value;

const ALGORITHMS: [&str; 3] = ["RS256", "ES256", "EdDSA"];

fn vectors() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/jose_interop.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("the vector file is JSON")
}

fn text<'a>(value: &'a Value, member: &str) -> &'a str {
    value[member]
        .as_str()
        .unwrap_or_else(|| panic!("{member} is not a string in {value}"))
}

fn verifier(parameters: &Value) -> JwtVerifier {
    let now = parameters["now"].as_u64().expect("now in Unix seconds");
    JwtVerifier::builder()
        .jwk_set(&parameters["jwks"].to_string())
        .expect("jose's JWK Set is accepted")
        .issuer(text(parameters, "issuer"))
        .audience(text(parameters, "audience"))
        .clock(ManualClock::at_unix(now).shared())
        .build()
        .expect("verifier")
}

/// The class names the vector file uses for keystile's refusals.
fn class(error: &TokenError) -> &'static str {
    match error {
        TokenError::Malformed(_) => "malformed",
        TokenError::UnknownKey => "unknown_key",
        TokenError::WrongAlgorithm => "wrong_algorithm",
        TokenError::BadSignature => "bad_signature",
        TokenError::Expired => "expired",
        TokenError::NotYetValid => "not_yet_valid",
        TokenError::WrongIssuer => "wrong_issuer",
        TokenError::WrongAudience => "wrong_audience",
        _ => "other",
    }
}

/// What differs between the accepted claims and the case's: empty when
/// they agree.
fn claim_mismatches(claims: &Claims, want: &Value, parameters: &Value) -> Vec<String> {
    let mut wrong = Vec::new();
    if claims.subject != text(want, "sub") {
        wrong.push(format!("sub {:?}", claims.subject));
    }
    let scopes: Vec<&str> = text(want, "scope").split(' ').collect();
    if !claims.scopes.allows_all(scopes.iter().copied()) || claims.scopes.len() != scopes.len() {
        wrong.push(format!(
            "scopes {:?}",
            claims.scopes.iter().collect::<Vec<_>>()
        ));
    }
    if claims.extra.get("client_id") != Some(&want["client_id"]) {
        wrong.push(format!("client_id {:?}", claims.extra.get("client_id")));
    }
    if claims.issuer.as_deref() != Some(text(parameters, "issuer")) {
        wrong.push(format!("iss {:?}", claims.issuer));
    }
    if claims.audience != [text(parameters, "audience")] {
        wrong.push(format!("aud {:?}", claims.audience));
    }
    wrong
}

#[test]
fn jose_minted_tokens_verify_and_their_tampered_copies_do_not() {
    let file = vectors();
    let parameters = &file["parameters"];
    assert!(
        text(parameters, "generator").starts_with("jose "),
        "the vectors come from jose"
    );
    let verifier = verifier(parameters);
    let cases = file["cases"].as_array().expect("cases array");
    // (valid, invalid) per algorithm.
    let mut counts: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let mut wrong = Vec::new();
    for case in cases {
        let id = text(case, "id");
        let algorithm = text(case, "algorithm");
        let count = counts.entry(algorithm).or_default();
        let answer = verifier.verify_token(text(case, "token"));
        match (text(case, "expected"), answer) {
            ("valid", Ok(claims)) => {
                count.0 += 1;
                let mismatches = claim_mismatches(&claims, &case["claims"], parameters);
                if !mismatches.is_empty() {
                    wrong.push(format!("{id}: accepted with {}", mismatches.join(", ")));
                }
            }
            ("valid", Err(e)) => {
                count.0 += 1;
                wrong.push(format!(
                    "{id}: expected valid, refused as {} ({e})",
                    class(&e)
                ));
            }
            ("invalid", answer) => {
                count.1 += 1;
                let want = text(case, "error");
                match answer {
                    Ok(_) => wrong.push(format!("{id}: expected {want}, accepted")),
                    Err(e) if class(&e) != want => {
                        wrong.push(format!("{id}: expected {want}, got {} ({e})", class(&e)));
                    }
                    Err(_) => {}
                }
            }
            (other, _) => wrong.push(format!("{id}: expected {other:?}")),
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} cases disagree:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
    for algorithm in ALGORITHMS {
        let (valid, invalid) = counts.get(algorithm).copied().unwrap_or_default();
        assert!(
            valid >= 1 && invalid >= 1,
            "{algorithm}: {valid} valid and {invalid} tampered cases; the file needs at least one of each"
        );
    }
}
