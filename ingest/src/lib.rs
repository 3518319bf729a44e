//! Statistics ingest: FlexiAPI-compatible endpoints fed by Flexisip servers.
//!
//! How the pieces fit:
//! - [`routes`] answers the HTTP requests: body limit → JSON check (400 before authentication) →
//!   admin authentication → validation ([`input`], 422) → [`EventLog::append`] → reply from the [`Outcome`].
//! - [`event`] is the event model every log speaks.
//! - [`log`] is the seam: [`EventLog`] (append, shutdown) and [`StatsReader`] (the listings). The handlers only
//!   see these traits.
//! - [`store`] is the embedded mode (default): a group-commit writer into the account database (SQLite or
//!   PostgreSQL); a reply is sent only once its event is committed.
//! - Scale mode plugs a Kafka [`EventLog`] and a ClickHouse [`StatsReader`] into the same [`Ingest`].
//! - [`metrics`] names every Prometheus metric of the crate.

pub mod error;
pub mod event;
pub mod log;
pub mod metrics;

pub use error::IngestError;
pub use log::{EventLog, Outcome, Page, StatsReader};
