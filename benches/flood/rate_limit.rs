//! A flood of distinct client keys against one `MemoryLimiter`: what a
//! client that picks a new source address for every request costs the
//! limiter's key map. One IPv6 /64, which a single host is routinely given,
//! holds 2^64 addresses, and `KeyBy::ClientIp` counts each address on its
//! own, so each of them starts with a full budget and takes a slot.
//!
//! Used by `benches/bin/rate_limit_flood.rs` (1,000,000 keys, reporting
//! resident memory) and `benches/tests/rate_limit_flood.rs` (the bound).

use std::net::Ipv6Addr;
use std::ops::Range;
use std::time::Duration;

use keystile::rate_limit::{Limit, Limiter, MemoryLimiter};

/// Distinct keys in the flood.
pub const KEYS: u64 = 1_000_000;

/// The /64 every flooding address is in (2001:db8:0:1::/64).
const PREFIX: u128 = 0x2001_0db8_0000_0001 << 64;

/// A limiter as a login route would have it (5 requests per minute per
/// address), at the default capacity.
pub fn limiter() -> MemoryLimiter {
    MemoryLimiter::new(Limit::per(5, Duration::from_secs(60)).expect("12 s per request"))
}

/// The key `KeyBy::ClientIp` counts the `n`th address of the /64 by.
pub fn client_key(n: u64) -> String {
    format!("ip:{}", Ipv6Addr::from(PREFIX | u128::from(n)))
}

/// One request from each address of `addresses`; how many were admitted.
pub async fn flood(limiter: &MemoryLimiter, addresses: Range<u64>) -> u64 {
    let mut admitted = 0;
    for n in addresses {
        let decision = limiter.check(&client_key(n)).await;
        admitted += u64::from(decision.is_ok_and(|d| d.allowed));
    }
    admitted
}
