//! API keys: format, digests, records and stores.
//!
//! See [`ApiKeyRecord`] for what is stored about a key. The plaintext key is
//! never stored; only its SHA-256 digest is.

mod record;

pub use record::{ApiKeyRecord, KeyDigest};
