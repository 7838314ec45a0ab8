//! Fuzz target: see `hostile::check_cookie_headers` for the invariants it asserts.
#![no_main]

#[path = "../../tests/hostile/mod.rs"]
mod hostile;

libfuzzer_sys::fuzz_target!(|data: &[u8]| hostile::check_cookie_headers(data));
