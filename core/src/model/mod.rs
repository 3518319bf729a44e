//! The rows every part of flexiapi-rs looks up: spaces (tenants, one per SIP domain) and accounts.

pub mod account;
pub mod space;

pub use account::{Account, Algorithm};
pub use space::Space;
