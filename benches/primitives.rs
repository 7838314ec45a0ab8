//! Micro benchmarks of the primitives behind each layer, and a two-thread
//! run of the memory stores' read paths.
//!
//! Run with `cargo bench -p keystile-benches --bench primitives`.
//! The two-thread section prints lookups per second on one and on two
//! threads and their ratio: a global lock on a read path shows as a ratio
//! near (or below) 1. See docs/benchmarks.md.

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::Criterion;
use keystile::api_key::{ApiKeyStore, parse};
use keystile::handoff::{Handoff, HandoffCodec};
use keystile::one_time::{MemoryOneTimeStore, OneTimeConfig, OneTimeStore};
use keystile::replay::{MemoryReplayStore, ReplayStore};
use keystile::session::SessionCodec;
use keystile::session_version::{
    FetchError, FetchRequest, MemorySessionVersionCache, SessionVersionCache,
    SessionVersionValidator,
};

mod scenarios;

use futures_util::FutureExt as _;
use scenarios::{Fixtures, Scenario};
use tower::ServiceExt as _;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn bench_primitives(c: &mut Criterion, fixtures: &Fixtures) {
    let rt = runtime();
    let mut group = c.benchmark_group("primitives");

    let store = fixtures.store().clone();
    let key = fixtures.api_key().to_owned();
    group.bench_function("api_key_parse_hash_lookup", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let digest = parse(black_box(&key)).map(|p| p.digest());
                    if let Ok(digest) = digest {
                        black_box(store.lookup(&digest).await.ok());
                    }
                }
                start.elapsed()
            })
        });
    });

    let handoffs = HandoffCodec::new(fixtures.keyring().clone());
    let handoff = handoffs
        .mint(&Handoff::new("alice", "acme"))
        .expect("handoff token");
    group.bench_function("handoff_verify", |b| {
        b.iter(|| black_box(handoffs.verify(black_box(&handoff), "acme").is_ok()));
    });

    let sessions = SessionCodec::new(fixtures.keyring().clone());
    let cookie = fixtures.session_cookie().to_owned();
    group.bench_function("session_cookie_verify", |b| {
        b.iter(|| black_box(sessions.verify(black_box(&cookie), "acme").is_ok()));
    });

    let jwt = keystile::bearer::JwtVerifier::builder()
        .keyring(fixtures.keyring())
        .build()
        .expect("HS256 verifier");
    let token = fixtures.jwt().to_owned();
    group.bench_function("jwt_hs256_verify", |b| {
        b.iter(|| black_box(jwt.verify_token(black_box(&token)).is_ok()));
    });

    // The floor jsonwebtoken sets for any HS256 layer built on it: header,
    // signature and `exp` checked, the claims deserialised into nothing.
    let secret = [9u8; 32];
    let floor_token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &serde_json::json!({"sub": "alice", "sv": 1, "exp": u64::from(u32::MAX)}),
        &jsonwebtoken::EncodingKey::from_secret(&secret).expect("a non-empty secret"),
    )
    .expect("HS256 token");
    let floor_key = jsonwebtoken::DecodingKey::from_secret(&secret).expect("a non-empty secret");
    let floor_validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    group.bench_function("jsonwebtoken_decode_alone", |b| {
        b.iter(|| {
            let decoded = jsonwebtoken::decode::<serde::de::IgnoredAny>(
                black_box(&floor_token),
                &floor_key,
                &floor_validation,
            );
            black_box(decoded.is_ok())
        });
    });

    // SHA-256 of an API key's length: the hash every key lookup pays.
    let key_bytes = [b'k'; 52];
    group.bench_function("sha256_52_bytes", |b| {
        b.iter(|| black_box(<sha2::Sha256 as sha2::Digest>::digest(black_box(key_bytes))));
    });

    // The same hash over the benchmark's API key itself: 58 bytes, more
    // than one block holds (55), so two compressions.
    let api_key_bytes = fixtures.api_key().as_bytes().to_vec();
    group.bench_function("sha256_api_key", |b| {
        b.iter(|| {
            black_box(<sha2::Sha256 as sha2::Digest>::digest(black_box(
                &api_key_bytes,
            )))
        });
    });

    // The pieces of a session cookie verify, each alone: the MAC over the
    // signed part with its purpose prefix (what `SignedCodec` hashes), the
    // payload's base64, and the clock read for the expiry.
    let (signed, payload) = {
        let cookie = fixtures.session_cookie();
        let signed = &cookie[..cookie.rfind('.').unwrap_or(0)];
        let payload = signed.split('.').nth(1).unwrap_or_default();
        (signed.as_bytes().to_vec(), payload.to_owned())
    };
    let cookie_mac =
        keystile::mac::MacKey::new(&[9; 32]).with_prefix(b"keystile.v1\0keystile/session\0");
    let cookie_tag = cookie_mac.compute(&signed);
    group.bench_function("session_cookie_mac", |b| {
        b.iter(|| black_box(cookie_mac.verify(black_box(&signed), &cookie_tag)));
    });
    group.bench_function("session_cookie_payload_base64", |b| {
        b.iter(|| black_box(keystile::encoding::decode(black_box(&payload)).is_ok()));
    });
    let clock = keystile::clock::SystemClock::shared();
    group.bench_function("clock_read", |b| {
        b.iter(|| black_box(clock.unix_seconds()));
    });

    group.bench_function("os_random_16_bytes", |b| {
        let mut nonce = [0u8; 16];
        b.iter(|| {
            keystile::random::RandomSource::fill(&keystile::random::OsRandom, &mut nonce).ok();
            black_box(&nonce);
        });
    });

    let current = |_: FetchRequest<'_>| async { Ok::<u64, FetchError>(1) };
    let validator = SessionVersionValidator::new(MemorySessionVersionCache::new(), current);
    let alice = FetchRequest {
        subject: "alice",
        bearer: None,
    };
    let _ = rt.block_on(validator.check(alice, Some(1)));
    group.bench_function("session_version_cache_hit", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(validator.check(black_box(alice), Some(1)).await.is_ok());
                }
                start.elapsed()
            })
        });
    });

    group.bench_function("replay_mark", |b| {
        b.iter_custom(|iters| {
            // A fresh store per batch keeps it below its capacity bound, so
            // every mark is a first redemption.
            let replay = MemoryReplayStore::new().capacity(iters as usize + 1);
            let ids: Vec<String> = (0..iters).map(|i| format!("jti-{i:016}")).collect();
            let expires = u64::MAX / 2;
            rt.block_on(async {
                let start = Instant::now();
                for id in &ids {
                    black_box(replay.redeem(id, expires).await.ok());
                }
                start.elapsed()
            })
        });
    });

    let one_time = MemoryOneTimeStore::new(OneTimeConfig::default());
    group.bench_function("one_time_issue_consume", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    if let Ok(token) = one_time.issue(b"bench").await {
                        black_box(one_time.consume(token.expose_secret(), b"bench").await.ok());
                    }
                }
                start.elapsed()
            })
        });
    });
    group.finish();
}

/// Lookups per second with `threads` threads each doing `per_thread`
/// lookups through `lookup(thread index)`, started together.
fn throughput(threads: usize, per_thread: u64, lookup: &Arc<dyn Fn(usize) + Send + Sync>) -> f64 {
    let barrier = Arc::new(Barrier::new(threads + 1));
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let barrier = barrier.clone();
            let lookup = lookup.clone();
            std::thread::spawn(move || {
                barrier.wait();
                for _ in 0..per_thread {
                    lookup(t);
                }
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    for worker in workers {
        let _ = worker.join();
    }
    (threads as u64 * per_thread) as f64 / start.elapsed().as_secs_f64()
}

/// How many calls one thread makes in about `target`: runs long enough
/// that thread start-up and timer resolution vanish from the ratio.
fn calls_for(target: Duration, lookup: &Arc<dyn Fn(usize) + Send + Sync>) -> u64 {
    let mut calls = 10_000u64;
    loop {
        let start = Instant::now();
        for _ in 0..calls {
            lookup(0);
        }
        let elapsed = start.elapsed();
        if elapsed >= target / 4 {
            let scale = target.as_secs_f64() / elapsed.as_secs_f64();
            return ((calls as f64 * scale) as u64).max(1);
        }
        calls *= 4;
    }
}

/// Alternating one- and two-thread runs of about 200 ms each, so load that
/// drifts during the run hits both sides alike; reports the medians and the
/// median of the per-round ratios.
fn scaling(name: &str, lookup: Arc<dyn Fn(usize) + Send + Sync>) {
    let rounds = 9;
    let per_thread = calls_for(Duration::from_millis(200), &lookup);
    let mut one = Vec::with_capacity(rounds);
    let mut two = Vec::with_capacity(rounds);
    let mut ratios = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let single = throughput(1, per_thread, &lookup);
        let double = throughput(2, per_thread, &lookup);
        one.push(single);
        two.push(double);
        ratios.push(double / single);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (one, two) = (median(&mut one), median(&mut two));
    let low = ratios.iter().copied().fold(f64::INFINITY, f64::min);
    let high = ratios.iter().copied().fold(0.0, f64::max);
    println!(
        "| {name} | {:.2} M/s | {:.2} M/s | {:.2}× ({low:.2}–{high:.2}) |",
        one / 1e6,
        two / 1e6,
        median(&mut ratios)
    );
}

fn two_threads(fixtures: &Fixtures) {
    println!();
    println!(
        "| memory store read path | 1 thread | 2 threads | 2 threads / 1 thread (median of rounds, min–max) |"
    );
    println!("|---|---:|---:|---:|");

    // Control: work that shares nothing. Below 2× here, the machine had no
    // second core free, and the rows below are bounded by that, not by the
    // stores.
    let control: Arc<dyn Fn(usize) + Send + Sync> = Arc::new(|t| {
        let mut x = black_box(t as u64);
        for i in 0..40 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(i);
        }
        black_box(x);
    });
    scaling("control: no shared state", control);

    let digests: Vec<_> = [fixtures.api_key(), fixtures.other_api_key()]
        .iter()
        .filter_map(|key| parse(key).map(|p| p.digest()).ok())
        .collect();
    for (label, distinct) in [
        ("MemoryApiKeyStore::lookup (one key per thread)", true),
        ("MemoryApiKeyStore::lookup (same key on both)", false),
    ] {
        let store = fixtures.store().clone();
        let digests = digests.clone();
        let lookup: Arc<dyn Fn(usize) + Send + Sync> = Arc::new(move |t| {
            let digest = &digests[if distinct { t % digests.len() } else { 0 }];
            // The memory store never waits: its future is ready at once.
            black_box(futures_util::FutureExt::now_or_never(store.lookup(digest)));
        });
        scaling(label, lookup);
    }

    // Whole routes, as a server runs them, on one and on two threads. The
    // bare route is the control: axum clones shared reference-counted
    // services for every request, whatever the layers.
    let bare = fixtures.prepare(Scenario::Baseline, "/bench");
    let bare_router = bare.router.clone();
    let bare_headers = bare.headers.clone();
    let bare_route: Arc<dyn Fn(usize) + Send + Sync> = Arc::new(move |_| {
        let mut request = http::Request::get("/bench")
            .body(axum::body::Body::empty())
            .unwrap_or_default();
        *request.headers_mut() = bare_headers.clone();
        black_box(bare_router.clone().oneshot(request).now_or_never());
    });
    scaling("bare route (control for the routes)", bare_route);

    // The ApiKeyLayer route: what the store's shared reference counts cost
    // a real request.
    let prepared = fixtures.prepare(Scenario::ApiKey, "/bench");
    let router = prepared.router.clone();
    let mut requests = Vec::new();
    for key in [fixtures.api_key(), fixtures.other_api_key()] {
        let mut headers = prepared.headers.clone();
        let value = http::HeaderValue::from_str(&format!("Bearer {key}")).expect("ASCII key");
        headers.insert(http::header::AUTHORIZATION, value);
        requests.push(headers);
    }
    let requests = Arc::new(requests);
    for (label, distinct) in [
        ("ApiKeyLayer route (one key per thread)", true),
        ("ApiKeyLayer route (same key on both)", false),
    ] {
        let router = router.clone();
        let requests = requests.clone();
        let request = move |t: usize| {
            let mut request = http::Request::get("/bench")
                .body(axum::body::Body::empty())
                .unwrap_or_default();
            *request.headers_mut() =
                requests[if distinct { t % requests.len() } else { 0 }].clone();
            request
        };
        // The memory store and the handler never wait: each request
        // completes on its first poll, with no runtime needed.
        let admitted = router.clone().oneshot(request(1)).now_or_never();
        assert!(
            matches!(&admitted, Some(Ok(response)) if response.status() == 200),
            "the ApiKeyLayer route must admit at once"
        );
        let route: Arc<dyn Fn(usize) + Send + Sync> = Arc::new(move |t| {
            black_box(router.clone().oneshot(request(t)).now_or_never());
        });
        scaling(label, route);
    }

    let cache = Arc::new(MemorySessionVersionCache::new());
    let subjects = ["alice", "bob"];
    let rt = runtime();
    for subject in subjects {
        let generation = cache.generation();
        let _ = rt.block_on(cache.set(subject, 1, generation));
    }
    let lookup_version: Arc<dyn Fn(usize) + Send + Sync> = Arc::new(move |t| {
        // The memory cache never waits: its future is ready at once.
        black_box(futures_util::FutureExt::now_or_never(
            cache.get(subjects[t % 2]),
        ));
    });
    scaling(
        "MemorySessionVersionCache::get (one subject per thread)",
        lookup_version,
    );
}

fn main() {
    let fixtures = Fixtures::new();
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    bench_primitives(&mut criterion, &fixtures);
    criterion.final_summary();
    if std::env::args().any(|a| a == "--bench") {
        two_threads(&fixtures);
    }
}
