//! API keys: format, digests, records, stores and last-used batching.
//!
//! What you rely on (SPEC §3):
//!
//! - [`format`](mod@format): keys read `{prefix}_{43 base62 random}{6 base62 CRC-32}`;
//!   [`parse`] refuses typos and invented keys by checksum before any store
//!   is asked; [`SCANNER_REGEX`] lets secret scanners find them.
//! - [`digest`]: only [`KeyDigest`] (SHA-256 of the whole key, 32 raw bytes)
//!   is stored and compared, in constant time.
//! - [`record`]: [`ApiKeyRecord`] is what a store keeps; [`NewApiKey`] mints
//!   a key and its record together. Expired and revoked keys are refused
//!   like unknown ones.
//! - [`store`]: the [`ApiKeyStore`] trait; `Ok(None)` for unknown keys,
//!   `Err` only when the backend failed (→ 503).
//! - [`memory`], `postgres` (feature `postgres`): the implementations;
//!   [`cache`]: a bounded cache in front of either, with a stated revocation
//!   bound; [`last_used`]: batched last-used writes.
//!
//! ```
//! use std::sync::Arc;
//! use keystile_core::api_key::{ApiKeyAdmin, ApiKeyStore, KeyPrefix, MemoryApiKeyStore, NewApiKey, parse};
//! use keystile_core::random::OsRandom;
//! use keystile_core::scopes::Scopes;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let store = MemoryApiKeyStore::new();
//! let (key, record) = NewApiKey::new(KeyPrefix::new("sk_live").unwrap(), "acme")
//!     .with_name("ci")
//!     .with_scopes(Scopes::parse("reports:read"))
//!     .mint(&OsRandom, 1_700_000_000)
//!     .unwrap();
//! store.create(record).await.unwrap();
//! println!("your key (shown once): {}", key.as_str());
//!
//! // What the ApiKeyLayer does with a presented key:
//! let presented = parse(key.as_str()).expect("checksum ok");
//! let found = store.lookup(&presented.digest()).await.unwrap().expect("known");
//! assert!(found.is_usable_at(1_700_000_001));
//! assert!(found.scopes.allows("reports:read"));
//! # }
//! ```

pub mod cache;
pub mod digest;
pub mod format;
pub mod last_used;
pub mod memory;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod record;
pub mod store;

pub use cache::CachedApiKeyStore;
pub use digest::KeyDigest;
pub use format::{KeyFormatError, KeyPrefix, MintedKey, ParsedKey, SCANNER_REGEX, mint, parse};
pub use last_used::LastUsedRecorder;
pub use memory::MemoryApiKeyStore;
#[cfg(feature = "postgres")]
pub use postgres::PostgresApiKeyStore;
pub use record::{ApiKeyRecord, NewApiKey};
pub use store::{ApiKeyAdmin, ApiKeyStore, CreateError, LastUse};
