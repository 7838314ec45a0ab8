//! dudect-style timing checks (Welch's t-test over two input classes, as in
//! Reparaz, Balasch and Verbauwhede, "Dude, is my code constant time?") on
//! the comparisons that touch secrets:
//!
//! - `api_key_digest_ct_eq`: [`KeyDigest::ct_eq`], the stored-digest compare
//!   behind every API key lookup;
//! - `mac_verify`: [`MacKey::verify`], the tag check behind every handoff
//!   token, session cookie and signed-codec artifact;
//! - `leaky_compare_control`: an early-exit byte loop, expected to FAIL; it
//!   shows the harness can see a leak of this size on this machine.
//!
//! Class `Left` presents the matching value, class `Right` a random one that
//! differs from the first byte on. A constant-time compare shows |t| well
//! under 5 however long it runs; a leaky one grows past it quickly.
//!
//! ```text
//! cd timing && cargo run --release -- [--continuous api_key_digest_ct_eq]
//! ```

use std::hint::black_box;

use dudect_bencher::rand::{Rng, RngCore};
use dudect_bencher::{BenchRng, Class, CtRunner, ctbench_main};
use keystile_core::api_key::KeyDigest;
use keystile_core::mac::MacKey;

const SAMPLES: usize = 100_000;

fn random32(rng: &mut BenchRng) -> [u8; 32] {
    let mut out = [0u8; 32];
    rng.fill_bytes(&mut out);
    out
}

/// Inputs in random class order, so drift in the machine hits both classes.
fn inputs(rng: &mut BenchRng, matching: [u8; 32]) -> Vec<(Class, [u8; 32])> {
    (0..SAMPLES)
        .map(|_| {
            if rng.r#gen::<bool>() {
                (Class::Left, matching)
            } else {
                let mut other = random32(rng);
                // Differ from the first byte on: the worst case for an
                // early-exit compare.
                other[0] = matching[0] ^ 0x80;
                (Class::Right, other)
            }
        })
        .collect()
}

fn api_key_digest_ct_eq(runner: &mut CtRunner, rng: &mut BenchRng) {
    let stored = KeyDigest(random32(rng));
    for (class, candidate) in inputs(rng, stored.0) {
        let candidate = KeyDigest(candidate);
        runner.run_one(class, || black_box(stored.ct_eq(black_box(&candidate))));
    }
}

fn mac_verify(runner: &mut CtRunner, rng: &mut BenchRng) {
    let key = MacKey::new(&random32(rng)).with_prefix(b"keystile.v1\0keystile/timing\0");
    let data = b"4oBxpP8G.eyJpYXQiOjE3MDAwMDAwMDAsImV4cCI6MTcwMDAwMDA2MCwiZGF0Ijp7InN1YiI6InVzZXItNyJ9fQ";
    let tag = key.compute(data);
    for (class, candidate) in inputs(rng, tag) {
        runner.run_one(class, || black_box(key.verify(black_box(data), black_box(&candidate))));
    }
}

/// What NOT to do: returns at the first differing byte.
fn leaky_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    for i in 0..32 {
        if black_box(a[i]) != black_box(b[i]) {
            return false;
        }
    }
    true
}

fn leaky_compare_control(runner: &mut CtRunner, rng: &mut BenchRng) {
    let stored = random32(rng);
    for (class, candidate) in inputs(rng, stored) {
        runner.run_one(class, || black_box(leaky_eq(&stored, black_box(&candidate))));
    }
}

ctbench_main!(api_key_digest_ct_eq, mac_verify, leaky_compare_control);
