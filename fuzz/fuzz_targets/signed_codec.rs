//! Fuzz target: see `hostile::check_signed_codec` for the invariants it asserts.
#![no_main]

#[path = "../../tests/hostile/mod.rs"]
mod hostile;

libfuzzer_sys::fuzz_target!(|data: &[u8]| hostile::check_signed_codec(data));
