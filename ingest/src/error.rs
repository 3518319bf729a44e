//! The one error type of the ingest crate, mapped once to upstream's HTTP answers.

use axum::response::{IntoResponse, Response};
use flexiapi_core::http::HttpError;
use http::StatusCode;

/// Why an event could not be appended or a listing read.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The database failed (not a bad request: those are [`crate::Outcome`]s).
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The SQLite statistics writer connection failed (the embedded store's write side on SQLite).
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The writer stayed full for the whole enqueue timeout (last resort, counted in metrics).
    #[error("the event log is saturated")]
    Saturated,
    /// A committed batch could not be made durable (the WAL fsync failed); its requests are not acknowledged.
    #[error("durability: {0}")]
    Durability(String),
    /// The log is shutting down or its writer stopped.
    #[error("the event log is closed")]
    Closed,
    /// The log backend (Kafka, ClickHouse…) failed.
    #[error("event log backend: {0}")]
    Backend(String),
    /// The broker did not take the event (away, or not confirming within the delivery timeout): nothing was
    /// acknowledged, and the client may try again later.
    #[error("event log unavailable: {0}")]
    Unavailable(String),
    /// The ingest could not be set up.
    #[error("ingest setup: {0}")]
    Setup(String),
}

impl IngestError {
    /// The HTTP answer: 503 when the log cannot take the event now, 500 otherwise (cause logged, not sent).
    pub fn into_http(self) -> HttpError {
        match self {
            IngestError::Saturated | IngestError::Closed | IngestError::Unavailable(_) => {
                HttpError::message(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable")
            }
            other => HttpError::internal(other),
        }
    }
}

impl IntoResponse for IngestError {
    fn into_response(self) -> Response {
        self.into_http().into_response()
    }
}
