//! The sink's Prometheus metrics (the binary installs the recorder and serves `/metrics`).

use std::time::Duration;

/// Gauge: messages not yet consumed, labels `topic` and `partition` (librdkafka's consumer_lag).
pub const CONSUMER_LAG: &str = "flexiapi_sink_consumer_lag";
/// Histogram: rows per batch written to ClickHouse.
pub const BATCH_ROWS: &str = "flexiapi_sink_batch_rows";
/// Histogram: seconds to write one batch (every table), retries excluded.
pub const INSERT_SECONDS: &str = "flexiapi_sink_insert_seconds";
/// Counter: failed insert attempts, each followed by a retry of the kept batch.
pub const RETRIES: &str = "flexiapi_sink_insert_retries_total";
/// Counter: rows written, label `table`.
pub const ROWS: &str = "flexiapi_sink_rows_total";
/// Counter: messages that were not statistics events (skipped).
pub const INVALID: &str = "flexiapi_sink_invalid_events_total";
/// Counter: offset commits that failed (the batch may be replayed; rows collapse).
pub const COMMIT_FAILURES: &str = "flexiapi_sink_commit_failures_total";
/// Counter: errors while consuming (broker restarts…).
pub const CONSUME_ERRORS: &str = "flexiapi_sink_consume_errors_total";

pub(crate) fn lag(topic: &str, partition: i32, lag: i64) {
    metrics::gauge!(CONSUMER_LAG, "topic" => topic.to_owned(), "partition" => partition.to_string())
        .set(lag as f64);
}

pub(crate) fn batch_written(rows: usize, took: Duration) {
    metrics::histogram!(BATCH_ROWS).record(rows as f64);
    metrics::histogram!(INSERT_SECONDS).record(took.as_secs_f64());
}

pub(crate) fn rows(table: &str, count: usize) {
    metrics::counter!(ROWS, "table" => table.to_owned()).increment(count as u64);
}

pub(crate) fn retry() {
    metrics::counter!(RETRIES).increment(1);
}

pub(crate) fn invalid_event() {
    metrics::counter!(INVALID).increment(1);
}

pub(crate) fn commit_failed() {
    metrics::counter!(COMMIT_FAILURES).increment(1);
}

pub(crate) fn consume_error() {
    metrics::counter!(CONSUME_ERRORS).increment(1);
}
