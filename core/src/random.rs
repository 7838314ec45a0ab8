//! Randomness, read through one injectable source.
//!
//! Secrets, token ids and API keys come from the operating system's CSPRNG
//! ([`OsRandom`]). Stores that mint values take a [`SharedRandom`] so tests can
//! inject a deterministic or failing source and prove collision and failure
//! handling.
//!
//! ```
//! use keystile_core::random::{OsRandom, RandomSource};
//!
//! let mut id = [0u8; 16];
//! OsRandom.fill(&mut id).expect("the OS CSPRNG is available");
//! ```

use std::sync::Arc;

/// The random source could not produce bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the random source failed: {0}")]
pub struct RandomError(pub String);

/// A source of cryptographically secure random bytes.
pub trait RandomSource: Send + Sync + 'static {
    /// Fills `dest` entirely, or fails without partial success.
    fn fill(&self, dest: &mut [u8]) -> Result<(), RandomError>;
}

/// A random source shared between stores.
pub type SharedRandom = Arc<dyn RandomSource>;

/// The operating system's CSPRNG.
#[derive(Debug, Clone, Copy, Default)]
pub struct OsRandom;

impl OsRandom {
    /// The OS CSPRNG as a [`SharedRandom`].
    pub fn shared() -> SharedRandom {
        Arc::new(OsRandom)
    }
}

impl RandomSource for OsRandom {
    fn fill(&self, dest: &mut [u8]) -> Result<(), RandomError> {
        getrandom::fill(dest).map_err(|e| RandomError(e.to_string()))
    }
}

impl<F> RandomSource for F
where
    F: Fn(&mut [u8]) -> Result<(), RandomError> + Send + Sync + 'static,
{
    fn fill(&self, dest: &mut [u8]) -> Result<(), RandomError> {
        self(dest)
    }
}

/// `N` bytes from `source`.
pub fn bytes<const N: usize>(source: &dyn RandomSource) -> Result<[u8; N], RandomError> {
    let mut out = [0u8; N];
    source.fill(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_random_fills_distinct_values() {
        let a: [u8; 32] = bytes(&OsRandom).unwrap();
        let b: [u8; 32] = bytes(&OsRandom).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn closures_are_sources() {
        let fixed = |dest: &mut [u8]| {
            dest.fill(9);
            Ok(())
        };
        assert_eq!(bytes::<4>(&fixed).unwrap(), [9; 4]);
        let failing = |_: &mut [u8]| Err(RandomError("no entropy".into()));
        assert!(bytes::<4>(&failing).is_err());
    }
}
