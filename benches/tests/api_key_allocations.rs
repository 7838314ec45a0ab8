//! Heap allocations `ApiKeyLayer` adds to an admitted request, counted with
//! a counting global allocator (a count, not a timing: it is the same on
//! every run).
//!
//! The yardstick is the `identity_only` benchmark scenario, a layer that
//! does nothing but insert the same identity (`Principal::from_api_key`).
//! `ApiKeyLayer` — header parse, checksum, SHA-256, lookup in a 10 000-key
//! memory store — runs the one path every authenticator takes: its decision
//! is one boxed future, and the store's `lookup` is another (`async_trait`).
//! It may allocate at most [`OVER_THE_IDENTITY`] times more per request than
//! the yardstick (measured when the bound was set: 14 against 12). Looking
//! up through an `Arc` of a store boxes no third future: the 15 before that
//! fix fail here.
//!
//! One test per binary: the allocator counts every thread, so a second test
//! running alongside would be counted too.

use std::alloc::System;

use axum::Router;
use axum::body::Body;
use http::Request;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tower::ServiceExt;

#[path = "../scenarios/mod.rs"]
mod scenarios;

use scenarios::{Fixtures, Scenario};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const REQUESTS: usize = 64;

/// The allocations `ApiKeyLayer` may add over inserting the identity.
const OVER_THE_IDENTITY: usize = 2;

/// Allocations per admitted request through `router`, after a warm-up.
fn allocations_per_request(
    runtime: &tokio::runtime::Runtime,
    router: &Router,
    request: impl Fn() -> Request<Body>,
) -> usize {
    let mut requests: Vec<_> = (0..=REQUESTS).map(|_| request()).collect();
    let warm_up = requests.pop().unwrap();
    runtime.block_on(async {
        let warm = router.clone().oneshot(warm_up).await.unwrap();
        assert!(warm.status().is_success());
        let region = Region::new(GLOBAL);
        for request in requests {
            let response = router.clone().oneshot(request).await.unwrap();
            assert!(response.status().is_success());
        }
        region.change().allocations / REQUESTS
    })
}

#[test]
fn api_key_layer_allocates_little_more_than_inserting_the_identity() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let fixtures = Fixtures::new();

    let api_key = fixtures.prepare(Scenario::ApiKey, "/bench");
    let with_layer = allocations_per_request(&runtime, &api_key.router, || api_key.request());

    // The same route with a layer that only inserts the `Principal`.
    let identity_only = fixtures.prepare(Scenario::IdentityOnly, "/bench");
    let yardstick = allocations_per_request(&runtime, &identity_only.router, || api_key.request());

    assert!(
        with_layer <= yardstick + OVER_THE_IDENTITY,
        "ApiKeyLayer: {with_layer} allocations per request; inserting the identity alone: {yardstick}"
    );
}
