//! Property tests over the decoders that see attacker-controlled input: the
//! signed codec, handoff tokens, session cookies, JWTs, API keys, the
//! credential headers and the one-time store.
//!
//! They drive the same checks as the fuzz targets in `fuzz/` (shared in
//! `tests/hostile/mod.rs`), so the invariants hold in every CI run, not only
//! when somebody runs `scripts/fuzz`: random input never verifies, a valid
//! token changed anywhere never verifies, and nothing panics.

mod hostile;

use proptest::prelude::*;

/// Random bytes, with mode byte 0 (taken as the candidate itself).
fn raw() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..600).prop_map(|bytes| {
        let mut input = vec![0u8];
        input.extend(bytes);
        input
    })
}

/// A mutation script, with mode byte 1 (applied to a valid token).
fn mutated() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 3..48).prop_map(|script| {
        let mut input = vec![1u8];
        input.extend(script);
        input
    })
}

/// Printable text: random input that gets past UTF-8 and header checks.
fn raw_text() -> impl Strategy<Value = Vec<u8>> {
    "[ -~]{0,400}".prop_map(|text| {
        let mut input = vec![0u8];
        input.extend(text.into_bytes());
        input
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_input_never_opens_the_signed_codec(input in raw()) {
        hostile::check_signed_codec(&input);
    }

    #[test]
    fn mutated_signed_codec_tokens_never_open(input in mutated()) {
        hostile::check_signed_codec(&input);
    }

    #[test]
    fn random_input_never_verifies_as_a_handoff(input in prop_oneof![raw(), raw_text()]) {
        hostile::check_handoff(&input);
    }

    #[test]
    fn mutated_handoff_tokens_never_verify(input in mutated()) {
        hostile::check_handoff(&input);
    }

    #[test]
    fn random_input_never_verifies_as_a_session_cookie(input in prop_oneof![raw(), raw_text()]) {
        hostile::check_session_cookie(&input);
    }

    #[test]
    fn mutated_session_cookies_never_verify(input in mutated()) {
        hostile::check_session_cookie(&input);
    }

    #[test]
    fn random_text_never_verifies_as_a_jwt(input in prop_oneof![raw(), raw_text()]) {
        hostile::check_jwt(&input);
    }

    #[test]
    fn mutated_jwts_never_verify(input in mutated()) {
        hostile::check_jwt(&input);
    }

    #[test]
    fn random_text_never_matches_a_stored_api_key(input in prop_oneof![raw(), raw_text()]) {
        hostile::check_api_key(&input);
    }

    #[test]
    fn mutated_api_keys_never_match_the_stored_digest(input in mutated()) {
        hostile::check_api_key(&input);
    }

    #[test]
    fn credential_headers_yield_only_clean_tokens(input in prop::collection::vec(any::<u8>(), 0..200)) {
        hostile::check_credential_headers(&input);
    }

    #[test]
    fn printable_credential_headers_yield_only_clean_tokens(
        records in prop::collection::vec((0u8..4, "[ -~\t]{0,40}"), 0..4)
    ) {
        let mut input = Vec::new();
        for (selector, value) in records {
            input.push(selector);
            input.extend(value.into_bytes());
            input.push(0);
        }
        hostile::check_credential_headers(&input);
    }

    #[test]
    fn cookie_headers_yield_the_session_cookie_only_by_its_exact_name(
        input in prop::collection::vec(any::<u8>(), 0..200)
    ) {
        hostile::check_cookie_headers(&input);
    }

    #[test]
    fn near_miss_cookie_names_are_never_the_session_cookie(
        before in "[ \t\u{a0}\u{3000}\u{2028}\u{feff}kK_]{0,3}",
        after in "[ \t\u{a0}\u{3000}\u{2028}\u{feff}nN]{0,3}",
        value in "[!-~]{0,12}",
        real in any::<bool>(),
    ) {
        let mut input = vec![2u8];
        input.extend(format!("{before}keystile_session{after}={value}").into_bytes());
        if real {
            input.extend(b"; keystile_session=real");
        }
        hostile::check_cookie_headers(&input);
    }

    #[test]
    fn one_time_store_matches_its_model(ops in prop::collection::vec(any::<u8>(), 0..192)) {
        hostile::check_one_time_ops(&ops);
    }
}

/// The scripts the mutation mode understands really change tokens in the
/// middle, not only at the end.
#[test]
fn mutation_scripts_reach_the_middle_of_a_token() {
    let valid = b"abcdefghijklmnopqrstuvwxyz";
    let flipped = hostile::mutate(valid, &[0, 128, 0x01]);
    assert_eq!(flipped.len(), valid.len());
    assert_ne!(flipped[13], valid[13]);
    assert_eq!(&flipped[..13], &valid[..13]);
    assert_eq!(hostile::mutate(valid, &[3, 128, 0]).len(), 13);
}

/// Every fuzz corpus seed under `fuzz/seeds/` (crashes found by fuzzing
/// included) runs through its check here, so a past finding stays fixed.
#[test]
fn fuzz_seeds_and_past_findings_stay_refused() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    if std::env::var_os("KEYSTILE_REGENERATE_SEEDS").is_some() {
        for (target, name, bytes) in hostile::seeds() {
            let dir = root.join(target);
            std::fs::create_dir_all(&dir).expect("seed directory");
            std::fs::write(dir.join(name), bytes).expect("write seed");
        }
    }
    type Check = (&'static str, fn(&[u8]));
    let checks: [Check; 8] = [
        ("signed_codec", hostile::check_signed_codec),
        ("handoff_verify", hostile::check_handoff),
        ("session_cookie", hostile::check_session_cookie),
        ("jwt_verify", hostile::check_jwt),
        ("api_key_parse", hostile::check_api_key),
        ("credential_headers", hostile::check_credential_headers),
        ("cookie_headers", hostile::check_cookie_headers),
        ("one_time_ops", hostile::check_one_time_ops),
    ];
    for (target, check) in checks {
        let mut ran = 0;
        let dir = root.join(target);
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            let bytes = std::fs::read(&path).expect("seed file");
            check(&bytes);
            ran += 1;
        }
        assert!(ran > 0, "{target} has no seeds");
    }
}
