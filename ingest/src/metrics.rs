//! Names of the ingest's Prometheus metrics (the binary installs the recorder and serves `/metrics`).

/// Counter: statistics requests answered, labels `route` (route template) and `status`.
pub const REQUESTS: &str = "flexiapi_ingest_requests_total";
/// Counter: events made durable (in the embedded store or confirmed by Kafka), label `kind`; refused
/// duplicates are not counted.
pub const EVENTS_APPENDED: &str = "flexiapi_ingest_events_appended_total";
/// Histogram: events per group-commit transaction.
pub const BATCH_SIZE: &str = "flexiapi_ingest_batch_size";
/// Histogram: seconds from the start of a group-commit transaction until it is durable (its replies go).
pub const STORE_SECONDS: &str = "flexiapi_ingest_store_seconds";
/// Histogram: seconds one fsync of the SQLite WAL took (each covers every commit made before it).
pub const WAL_SYNC_SECONDS: &str = "flexiapi_ingest_wal_sync_seconds";
/// Histogram: seconds one SQLite WAL checkpoint took, label `by`: `background` (the idle-priority thread, never
/// in a request's way) or `writer` (the writer itself, between two batches: requests wait for it).
pub const CHECKPOINT_SECONDS: &str = "flexiapi_ingest_checkpoint_seconds";
/// Gauge: events waiting for the writer.
pub const QUEUE_DEPTH: &str = "flexiapi_ingest_queue_depth";
/// Counter: requests refused with 503 because the writer stayed full for the whole enqueue timeout.
pub const REJECTED: &str = "flexiapi_ingest_rejected_total";
/// Counter: requests that had to wait for room in the writer queue.
pub const ENQUEUE_WAITS: &str = "flexiapi_ingest_enqueue_waits_total";
/// Counter: Kafka producers replaced after librdkafka declared one failed for good (scale mode).
pub const PRODUCER_RESTARTS: &str = "flexiapi_ingest_producer_restarts_total";
/// Counter: updates that arrived before their parent and were kept (label `kind`).
pub const PENDING_KEPT: &str = "flexiapi_ingest_pending_kept_total";
/// Counter: kept updates applied once their parent arrived.
pub const PENDING_APPLIED: &str = "flexiapi_ingest_pending_applied_total";

/// Records one answered request.
pub fn request(route: &'static str, status: u16) {
    // The statuses the endpoints give are labelled without allocating; others are formatted.
    let status: metrics::SharedString = match status {
        200 => "200".into(),
        201 => "201".into(),
        400 => "400".into(),
        401 => "401".into(),
        403 => "403".into(),
        404 => "404".into(),
        422 => "422".into(),
        other => other.to_string().into(),
    };
    metrics::counter!(REQUESTS, "route" => route, "status" => status).increment(1);
}
