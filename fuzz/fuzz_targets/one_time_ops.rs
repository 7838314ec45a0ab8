//! Fuzz target: see `hostile::check_one_time_ops` for the invariants it asserts.
#![no_main]

#[path = "../../tests/hostile/mod.rs"]
mod hostile;

libfuzzer_sys::fuzz_target!(|data: &[u8]| hostile::check_one_time_ops(data));
