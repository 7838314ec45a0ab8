//! Shared helpers for integration tests over real backends.
//!
//! `scripts/test` sets `KEYSTILE_TEST_REDIS_URL` and
//! `KEYSTILE_TEST_DATABASE_URL` (starting throwaway servers when none are
//! reachable). Without them the defaults on 127.0.0.1 are used. A test that
//! needs a backend FAILS when it cannot reach it: it never skips.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};

/// The Redis URL tests use.
pub fn redis_url() -> String {
    std::env::var("KEYSTILE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// The PostgreSQL URL tests use.
pub fn database_url() -> String {
    std::env::var("KEYSTILE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A name no other test run shares: for Redis key prefixes, PostgreSQL
/// schemas and channels. Lowercase letters, digits and `_` only.
pub fn unique(tag: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut random = [0u8; 6];
    keystile::random::RandomSource::fill(&keystile::random::OsRandom, &mut random)
        .expect("OS randomness");
    format!(
        "ks_{tag}_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        hex_lower(&random)
    )
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub mod browser;
pub mod logs;
pub mod outage;
pub mod proxy;
pub mod raw_http;
pub mod redis_server;
