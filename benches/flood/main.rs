//! Throws 1,000,000 distinct bogus API keys, handoff tokens and subjects
//! (and 100,000 revocations and one-time tokens) at a service with keystile's
//! in-memory stores at their default bounds, and reports every store's size
//! against its bound and the process's resident memory before and after.
//!
//! ```text
//! cargo run -p keystile-benches --bin flood            # 1,000,000 of each
//! cargo run -p keystile-benches --bin flood -- 50000   # a quicker run
//! ```
//!
//! The flood runs in-process (no sockets), one request at a time, and stops
//! by itself. The numbers measured on the project's machine are in
//! `docs/reliability.md`.

mod measure;
mod server;

use std::process::ExitCode;
use std::time::Instant;

use measure::memory_kib;
use server::Target;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let count = match std::env::args().nth(1).map(|arg| arg.parse::<usize>()) {
        None => 1_000_000,
        Some(Ok(count)) => count,
        Some(Err(_)) => {
            eprintln!("usage: flood [COUNT]  (COUNT: requests of each kind, default 1000000)");
            return ExitCode::FAILURE;
        }
    };
    let target = Target::new(None);
    let before = memory_kib();
    let started = Instant::now();
    let statuses = target
        .flood(count, |kind| {
            eprintln!("  {kind} done after {:.1?}", started.elapsed());
        })
        .await;
    let after = memory_kib();

    println!("flood of {count} per kind in {:.1?}", started.elapsed());
    for (kind, by_status) in &statuses {
        println!("  {kind}: {by_status:?}");
    }
    let sizes = target.sizes().await;
    println!("stores (entries / bound):");
    for (name, (len, cap)) in &sizes.stores {
        println!("  {name}: {len} / {cap}");
    }
    match (before, after) {
        (Some((rss_before, _)), Some((rss_after, peak))) => println!(
            "VmRSS before {} MiB, after {} MiB, peak (VmHWM) {} MiB",
            rss_before / 1024,
            rss_after / 1024,
            peak / 1024
        ),
        _ => println!("no /proc/self/status here: memory not measured"),
    }
    let over = sizes.over_bound();
    if over.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!("over their bound: {over:?}");
        ExitCode::FAILURE
    }
}
