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

pub mod date;
pub mod input;
pub mod routes;
pub mod store;

pub mod clickhouse;
pub mod kafka;
pub mod sink;

use std::sync::Arc;

use flexiapi_auth::Authenticator;
use flexiapi_core::{Config, Db};

/// The statistics ingest of one process: its event log, its reader and its routes.
pub struct Ingest {
    state: routes::IngestState,
}

impl Ingest {
    /// Starts the ingest on the embedded store (the account database).
    pub async fn start(
        db: Db,
        config: &Config,
        auth: Arc<Authenticator>,
    ) -> Result<Ingest, IngestError> {
        if config.scale_mode() {
            return Self::start_scale(db, config, auth).await;
        }
        let store = Arc::new(store::Embedded::start(db.clone(), config)?);
        Ok(Self::with(store.clone(), store, db, config, auth))
    }

    /// Scale mode: events go to Kafka, reads come from ClickHouse.
    async fn start_scale(
        db: Db,
        config: &Config,
        auth: Arc<Authenticator>,
    ) -> Result<Ingest, IngestError> {
        if config.clickhouse_url.is_none() {
            return Err(IngestError::Setup(
                "scale mode (FLEXIAPI_KAFKA_BROKERS) reads the statistics from ClickHouse: set FLEXIAPI_CLICKHOUSE_URL".into(),
            ));
        }
        let log = kafka::KafkaLog::start(config).await?;
        let reader = Arc::new(clickhouse::ClickHouseReader::new(clickhouse::client(
            config,
        )?));
        Ok(Self::with(log, reader, db, config, auth))
    }

    /// Builds the ingest over any log and reader (scale mode plugs its own here).
    pub fn with(
        log: Arc<dyn EventLog>,
        reader: Arc<dyn StatsReader>,
        db: Db,
        config: &Config,
        auth: Arc<Authenticator>,
    ) -> Ingest {
        Ingest {
            state: routes::IngestState {
                log,
                reader,
                auth,
                db,
                max_body_bytes: config.ingest.max_body_bytes,
            },
        }
    }

    /// Every statistics route with its full path; merge it under the request-Space middleware.
    pub fn router(&self) -> axum::Router {
        routes::router(self.state.clone())
    }

    /// Stops taking events and waits until every accepted one is durable.
    pub async fn shutdown(self) {
        self.state.log.shutdown().await;
    }
}
