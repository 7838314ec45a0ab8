//! Throws 1,000,000 distinct client addresses at one `MemoryLimiter` at its
//! default capacity and reports the keys it holds against its bound and
//! the process's resident memory before and after.
//!
//! ```text
//! cargo run --release -p keystile-benches --bin rate_limit_flood
//! ```
//!
//! In-process, one check at a time; it stops by itself (about a second in
//! a release build). The numbers measured on the project's machine are in
//! `docs/benchmarks.md` ("Rate limits").

use std::process::ExitCode;
use std::time::Instant;

use keystile::rate_limit::DEFAULT_LIMITER_CAPACITY;

#[path = "../flood/measure.rs"]
mod measure;
#[path = "../flood/rate_limit.rs"]
mod rate_limit;

use measure::{memory_kib, sharded};
use rate_limit::{KEYS, flood, limiter};

/// Keys between two progress lines.
const STEP: u64 = KEYS / 10;

/// Resident memory now, in MiB.
fn rss() -> String {
    mib(memory_kib().map(|(rss, _)| rss))
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or_else(
        || "?".to_owned(),
        |kib| format!("{:.1} MiB", kib as f64 / 1024.0),
    )
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let bound = sharded(DEFAULT_LIMITER_CAPACITY);
    let start = rss();
    let limiter = limiter();
    let built = rss();
    println!(
        "MemoryLimiter: capacity {DEFAULT_LIMITER_CAPACITY}, bound {bound} on {} cores",
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    let started = Instant::now();
    let mut admitted = 0;
    let mut most = 0;
    for step in 0..KEYS / STEP {
        admitted += flood(&limiter, step * STEP..(step + 1) * STEP).await;
        most = most.max(limiter.len());
        println!(
            "  after {:>9} keys: {:>7} held, VmRSS {}",
            (step + 1) * STEP,
            limiter.len(),
            rss()
        );
    }
    let elapsed = started.elapsed();
    let after = memory_kib();
    println!("{KEYS} distinct keys in {elapsed:.1?}, {admitted} admitted");
    println!(
        "keys held: {} (most seen {most}, bound {bound})",
        limiter.len()
    );
    println!(
        "VmRSS: start {start}, limiter built {built}, after the flood {}, peak (VmHWM) {}",
        mib(after.map(|(rss, _)| rss)),
        mib(after.map(|(_, peak)| peak))
    );
    if most > bound || admitted != KEYS {
        eprintln!("over the bound, or a fresh key was refused");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
