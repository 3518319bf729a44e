//! Foundation shared by every part of flexiapi-rs.
//!
//! Read in this order: [`config`] (the one typed configuration), [`db`] (one pool over SQLite or PostgreSQL
//! and the migrations of `schema/`), [`model`] (spaces and accounts, which every part looks up),
//! [`http`] (upstream's HTTP conventions: JSON errors, Laravel 422 bodies, en/fr messages, pagination, the
//! request Space), and [`transport`] (HTTPS with ALPN h2, h2c and HTTP/1.1, accepting the raw paths the
//! Flexisip client sends).

pub mod cache;
pub mod config;
pub mod db;
pub mod http;
pub mod model;
#[cfg(feature = "testing")]
pub mod testing;
pub mod time;
pub mod transport;

pub use config::Config;
pub use db::Db;
