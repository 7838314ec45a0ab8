//! A `MemoryLimiter` at its default capacity stays within its bound under
//! 1,000,000 distinct client keys, and every fresh key is admitted (a
//! forgotten key starts again with a full budget; it is never refused for
//! lack of room), while a client it has already refused stays refused.
//!
//! The bound is quick_cache's, not the nominal capacity: the map is split
//! into `s` shards (4 × the available cores, rounded up to a power of two,
//! halved while a shard would hold fewer than 32) of `ceil(capacity / s)`
//! entries each, so it holds at most `s × ceil(capacity / s)`: 100,000 on 1,
//! 2, 4 or 8 cores, 100,032 on 16 (64 shards), 100,096 on 32 (128 shards).

#[path = "../flood/measure.rs"]
mod measure;
#[path = "../flood/rate_limit.rs"]
mod rate_limit;

use keystile::clock::ManualClock;
use keystile::rate_limit::{DEFAULT_LIMITER_CAPACITY, Limiter};
use measure::{memory_kib, sharded};
use rate_limit::{KEYS, flood, limiter};

/// Keys between two checks of the bound.
const STEP: u64 = KEYS / 20;

/// Resident memory the last 800,000 keys may add once the map is full
/// (after 200,000). Measured: nothing; the whole flood adds about 16 MiB
/// (`docs/benchmarks.md`, "Rate limits"), so this only catches a map that
/// keeps growing.
const RSS_GROWTH_WHEN_FULL_KIB: u64 = 8 * 1024;

#[test]
fn the_bound_is_the_capacity_rounded_up_to_whole_shards() {
    let bound = sharded(DEFAULT_LIMITER_CAPACITY);
    assert!(bound >= DEFAULT_LIMITER_CAPACITY);
    // At most one entry more per shard, and quick_cache never makes more
    // than 4 × 2 × cores shards.
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    assert!(bound < DEFAULT_LIMITER_CAPACITY + 8 * cores, "{bound}");
}

#[tokio::test(flavor = "current_thread")]
async fn a_million_distinct_client_keys_stay_within_the_bound() {
    let bound = sharded(DEFAULT_LIMITER_CAPACITY);
    // Frozen, so the refused client's budget cannot refill meanwhile.
    let clock = ManualClock::at_unix(1_700_000_000);
    let limiter = limiter().clock(clock.shared());
    let refused = "ip:192.0.2.10";
    for _ in 0..limiter.limit().requests() {
        assert!(limiter.check(refused).await.unwrap().allowed);
    }
    assert!(!limiter.check(refused).await.unwrap().allowed);

    let mut admitted = 0;
    let mut full = None;
    for step in 0..KEYS / STEP {
        admitted += flood(&limiter, step * STEP..(step + 1) * STEP).await;
        assert!(
            limiter.len() <= bound,
            "{} keys held after {} (bound {bound})",
            limiter.len(),
            (step + 1) * STEP
        );
        if (step + 1) * STEP == 2 * DEFAULT_LIMITER_CAPACITY as u64 {
            full = memory_kib();
        }
    }
    let after = memory_kib();
    assert_eq!(admitted, KEYS, "every fresh key is admitted");
    // The map is full, not emptied by the churn.
    assert!(
        limiter.len() >= DEFAULT_LIMITER_CAPACITY * 9 / 10,
        "{}",
        limiter.len()
    );
    let (Some((full, _)), Some((after, _))) = (full, after) else {
        panic!("/proc/self/status is needed to measure resident memory");
    };
    let growth = after.saturating_sub(full);
    assert!(
        growth < RSS_GROWTH_WHEN_FULL_KIB,
        "resident memory grew by {growth} KiB after the map was full"
    );
    // Seen more than once, its state outlives a million keys seen once: a
    // flood of new addresses does not hand a refused client a fresh budget.
    assert!(!limiter.check(refused).await.unwrap().allowed);
}
