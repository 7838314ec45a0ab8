//! What the floods measure against: the process's resident memory, and the
//! number of entries a `quick_cache`-backed store really holds when bounded.
//!
//! Shared by the flood binaries and their tests.

/// Resident and peak resident memory of this process, in KiB, from
/// `/proc/self/status` (`None` where there is no procfs).
pub fn memory_kib() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// The most entries a store on `quick_cache` holds when bounded to `bound`:
/// quick_cache splits a bound over its shards (their number follows the
/// core count) and rounds each shard up, so a few more than asked.
pub fn sharded(bound: usize) -> usize {
    let empty = quick_cache::sync::Cache::<(), ()>::new(bound);
    usize::try_from(empty.capacity()).unwrap_or(usize::MAX)
}
