//! The cost of one insert into a bounded cache that is already full: what a
//! flood of unknown API keys or of new subjects costs each request once
//! the cache has filled up.
//!
//! Run with `cargo bench -p keystile-benches --bench full_caches`.
//! See docs/benchmarks.md ("Full caches").

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion};
use futures_util::FutureExt as _;
use keystile::api_key::{ApiKeyStore, CachedApiKeyStore, KeyDigest, MemoryApiKeyStore};
use keystile::session_version::{MemorySessionVersionCache, SessionVersionCache};

/// Entries each cache holds when the measurement starts.
const FULL: usize = 65_536;

fn set(cache: &MemorySessionVersionCache, subject: &str) {
    let seen = cache.generation();
    cache
        .set(subject, 1, seen)
        .now_or_never()
        .expect("the memory cache answers at once")
        .expect("the memory cache cannot fail");
}

fn lookup(cache: &CachedApiKeyStore<MemoryApiKeyStore>, digest: &KeyDigest) {
    let found = cache
        .lookup(digest)
        .now_or_never()
        .expect("the memory store answers at once")
        .expect("the memory store cannot fail");
    black_box(found);
}

fn main() {
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let mut group = criterion.benchmark_group("full_caches");

    // Every insert is a new subject into a cache of FULL live entries.
    let versions = MemorySessionVersionCache::new().capacity(FULL);
    for i in 0..FULL {
        set(&versions, &format!("seed-{i}"));
    }
    let mut next = 0u64;
    group.bench_function("session_version_cache_new_subject", |b| {
        b.iter_batched(
            || {
                next += 1;
                format!("flood-{next}")
            },
            |subject| set(&versions, &subject),
            BatchSize::SmallInput,
        );
    });

    // Every lookup is an unknown digest: a miss on the (empty) backing store
    // and an insert into a negative cache of FULL entries.
    let keys = CachedApiKeyStore::new(MemoryApiKeyStore::new()).negative_capacity(FULL);
    for i in 0..FULL {
        lookup(&keys, &KeyDigest::of(&format!("seed-{i}")));
    }
    let mut next = 0u64;
    group.bench_function("api_key_cache_unknown_digest", |b| {
        b.iter_batched(
            || {
                next += 1;
                KeyDigest::of(&format!("flood-{next}"))
            },
            |digest| lookup(&keys, &digest),
            BatchSize::SmallInput,
        );
    });
    group.finish();
    criterion.final_summary();
}
