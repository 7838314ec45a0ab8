//! Runs N requests of one benchmark scenario in-process, for counting
//! instructions under valgrind's callgrind (`scripts/bench-instructions`).
//!
//! ```text
//! cargo run --release -p keystile-benches --bin bench_instructions -- api_key 1000
//! valgrind --tool=callgrind --toggle-collect='bench_instructions::measured_requests' \
//!     target/release/bench_instructions api_key 1000
//! ```
//!
//! Setup (minting 10 000 keys, building the router, one warm-up request)
//! happens outside `measured_requests`, so `--toggle-collect` leaves it out;
//! the script also subtracts a run with fewer requests to cancel the fixed
//! cost of entering the runtime.

use std::hint::black_box;
use std::process::ExitCode;

use tower::ServiceExt;

#[path = "../scenarios/mod.rs"]
mod scenarios;

use scenarios::{ALL, Fixtures, Prepared, Scenario};

/// The only code callgrind counts (see `--toggle-collect`).
#[inline(never)]
fn measured_requests(runtime: &tokio::runtime::Runtime, prepared: &Prepared, n: u64) -> u64 {
    runtime.block_on(async {
        let mut admitted = 0;
        for _ in 0..n {
            let response = prepared
                .router
                .clone()
                .oneshot(black_box(prepared.request()))
                .await;
            if response.is_ok_and(|r| r.status().is_success()) {
                admitted += 1;
            }
        }
        admitted
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(scenario), Some(n)) = (
        args.first().and_then(|name| Scenario::from_name(name)),
        args.get(1).and_then(|n| n.parse::<u64>().ok()),
    ) else {
        let names: Vec<_> = ALL.iter().map(|s| s.name()).collect();
        eprintln!("usage: bench_instructions <{}> <requests>", names.join("|"));
        return ExitCode::from(2);
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("tokio runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let fixtures = Fixtures::new();
    let prepared = fixtures.prepare(scenario, "/bench");
    // Warm-up outside the count: fills the session-version cache and lazy
    // statics, as a long-running server would have.
    if warm_up(&runtime, &prepared) != 1 {
        eprintln!("{}: the prepared request was refused", scenario.name());
        return ExitCode::FAILURE;
    }
    let admitted = measured_requests(&runtime, &prepared, n);
    if admitted != n {
        eprintln!("{}: {admitted} of {n} requests admitted", scenario.name());
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

#[inline(never)]
fn warm_up(runtime: &tokio::runtime::Runtime, prepared: &Prepared) -> u64 {
    runtime.block_on(async {
        let response = prepared.router.clone().oneshot(prepared.request()).await;
        u64::from(response.is_ok_and(|r| r.status().is_success()))
    })
}
