//! Bounded memory under a flood: 10,000 distinct bogus API keys, handoff
//! tokens and subjects (and 1,000 revocations and one-time tokens) thrown
//! in-process at a service whose in-memory stores are bounded to 1,000
//! entries each, with the clock frozen so nothing expires. Every store stays
//! at or under its bound, what cannot be stored is refused (503, fail
//! closed) rather than forgotten, and resident memory grows by less than a
//! generous documented bound (`docs/reliability.md` has the 1,000,000 run).

#[path = "../flood/measure.rs"]
mod measure;
#[path = "../flood/server.rs"]
mod server;

use measure::memory_kib;
use server::Target;

/// Requests of each kind.
const COUNT: usize = 10_000;
/// The bound every store of the target is given.
const BOUND: usize = 1_000;
/// Resident memory the flood may add. The stores' share is about 1 MiB at
/// this bound; the rest is allocator slack, so this is far from tight.
const RSS_GROWTH_BOUND_KIB: u64 = 64 * 1024;

fn count(statuses: &server::Statuses, kind: &str, status: u16) -> usize {
    statuses
        .get(kind)
        .and_then(|by_status| by_status.get(&status))
        .copied()
        .unwrap_or(0)
}

#[tokio::test(flavor = "current_thread")]
async fn a_flood_of_distinct_credentials_keeps_every_store_within_its_bound() {
    let target = Target::new(Some(BOUND));
    let before = memory_kib();
    let statuses = target.flood(COUNT, |_| {}).await;
    let after = memory_kib();

    let sizes = target.sizes().await;
    assert!(sizes.over_bound().is_empty(), "{sizes:?}");
    assert!(target.replay.len() <= BOUND);
    assert!(target.versions.len() <= BOUND.next_multiple_of(16));
    assert_eq!(target.validator.fetches_in_flight(), 0);

    // No bogus API key gets in, whatever its shape.
    assert_eq!(count(&statuses, "api keys", 401), COUNT, "{statuses:?}");
    // Forged handoffs are refused outright; genuine ones are admitted until
    // the replay store is full, then refused with 503 — never admitted with
    // their id forgotten.
    assert_eq!(count(&statuses, "handoff tokens", 400), COUNT / 2);
    assert_eq!(count(&statuses, "handoff tokens", 303), BOUND);
    assert_eq!(count(&statuses, "handoff tokens", 503), COUNT / 2 - BOUND);
    // Distinct subjects only cost refetches once the cache is full.
    assert_eq!(count(&statuses, "subjects", 200), COUNT);
    // Revocations and one-time tokens beyond the bound are refused, not
    // stored and not silently dropped.
    assert_eq!(
        count(&statuses, "revocations", 204) + count(&statuses, "revocations", 503),
        COUNT / 10
    );
    assert!(count(&statuses, "revocations", 204) <= BOUND);
    assert_eq!(
        count(&statuses, "one-time issue", 201),
        BOUND.min(COUNT / 10)
    );
    assert_eq!(count(&statuses, "one-time consume", 410), COUNT / 10);

    let (Some((rss_before, _)), Some((rss_after, _))) = (before, after) else {
        panic!("/proc/self/status is needed to measure resident memory");
    };
    let growth = rss_after.saturating_sub(rss_before);
    assert!(
        growth < RSS_GROWTH_BOUND_KIB,
        "resident memory grew by {growth} KiB (bound {RSS_GROWTH_BOUND_KIB} KiB)"
    );
}
