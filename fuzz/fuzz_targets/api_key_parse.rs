//! Fuzz target: see `hostile::check_api_key` for the invariants it asserts.
#![no_main]

#[path = "../../tests/hostile/mod.rs"]
mod hostile;

libfuzzer_sys::fuzz_target!(|data: &[u8]| hostile::check_api_key(data));
