//! Accounts: the JSON object, the validation rules, storage, and the public / user / admin endpoints.

pub mod admin;
pub mod cache;
pub mod change;
pub mod json;
pub mod me;
pub mod public;
pub mod rules;
pub mod store;

pub use json::{render, View};
