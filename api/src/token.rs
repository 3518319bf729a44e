//! Random tokens in upstream's formats (api-accounts.md §1.8).

use rand::distributions::{Alphanumeric, DistString};
use rand::Rng;

/// Length of account creation / request / recovery and provisioning tokens.
pub const SHORT: usize = 13;
/// Length of auth tokens.
pub const AUTH_TOKEN: usize = 32;
/// Length of reset-password email tokens.
pub const RESET_PASSWORD: usize = 16;

/// `len` random `[A-Za-z0-9]` characters.
pub fn alphanumeric(len: usize) -> String {
    Alphanumeric.sample_string(&mut rand::thread_rng(), len)
}

/// A 4-digit code 1000–9999 (email / phone change).
pub fn code() -> String {
    rand::thread_rng().gen_range(1000..=9999).to_string()
}
