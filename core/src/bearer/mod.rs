//! Bearer tokens: verified claims and the verifier trait.

mod claims;

pub use claims::{BearerToken, Claims};
