//! In-process router benchmark: the same trivial handler behind each auth
//! layer, driven with `oneshot` on a prepared request.
//!
//! Run with `cargo bench -p keystile-benches --bench router`. After
//! criterion's own report it prints one table: median ns/request per
//! scenario and the overhead over the baseline measured in the same run.
//! See docs/benchmarks.md.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::Criterion;
use tower::ServiceExt;

mod scenarios;

use scenarios::{ALL, Fixtures, Scenario};

const GROUP: &str = "router";

fn bench_router(c: &mut Criterion, fixtures: &Fixtures) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut group = c.benchmark_group(GROUP);
    for scenario in ALL {
        let prepared = fixtures.prepare(scenario, "/bench");
        let status = || {
            runtime.block_on(async {
                let response = prepared.router.clone().oneshot(prepared.request()).await;
                response.map(|r| r.status()).expect("infallible")
            })
        };
        // One request outside the timing: warms the session-version cache and
        // checks the stack admits the prepared request.
        let before = status();
        assert!(before.is_success(), "{}: {before}", scenario.name());
        group.bench_function(scenario.name(), |b| {
            b.iter_custom(|iters| {
                runtime.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let response = prepared
                            .router
                            .clone()
                            .oneshot(black_box(prepared.request()))
                            .await;
                        black_box(response.ok());
                    }
                    start.elapsed()
                })
            });
        });
        // And one after: a stack that began refusing (a spent rate limit)
        // would have timed its refusals.
        let after = status();
        assert!(
            after.is_success(),
            "{} after timing: {after}",
            scenario.name()
        );
    }
    group.finish();
}

/// Where criterion keeps its estimates (the rules of its `--output`
/// default: `CRITERION_HOME`, else `<target dir>/criterion`).
fn criterion_home() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    // Benches run in the package's directory; the workspace's target
    // directory is one level up.
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("criterion")
}

/// Median and its 95 % interval, in ns, of one benchmark of this run.
fn median(scenario: Scenario) -> Option<(f64, f64, f64)> {
    let path = criterion_home()
        .join(GROUP)
        .join(scenario.name())
        .join("new")
        .join("estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    let median = &json["median"];
    Some((
        median["point_estimate"].as_f64()?,
        median["confidence_interval"]["lower_bound"].as_f64()?,
        median["confidence_interval"]["upper_bound"].as_f64()?,
    ))
}

fn print_summary() {
    let Some((base, _, _)) = median(Scenario::Baseline) else {
        println!("(no estimates found under {})", criterion_home().display());
        return;
    };
    println!();
    println!("| scenario | ns/request (median) | 95% CI | overhead over baseline |");
    println!("|---|---:|---:|---:|");
    for scenario in ALL {
        if let Some((point, low, high)) = median(scenario) {
            println!(
                "| {} | {point:.0} | {low:.0}–{high:.0} | {:+.0} ns ({:.2}×) |",
                scenario.name(),
                point - base,
                point / base
            );
        }
    }
}

fn main() {
    let fixtures = Fixtures::new();
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    bench_router(&mut criterion, &fixtures);
    criterion.final_summary();
    // `cargo bench -- --list` and the test harness's probe run nothing.
    if std::env::args().any(|a| a == "--bench") {
        print_summary();
    }
}
