//! Logs (tracing, `RUST_LOG`) and the Prometheus recorder behind `/metrics`.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Buckets of the histograms that count events or rows per batch.
const COUNT_BUCKETS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0,
];

/// Installs the process-wide Prometheus recorder (the `metrics` facade needs one) and returns the handle
/// that renders `/metrics`.
pub fn install_metrics() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets(&[
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
        ])?
        // Sizes are counts, not seconds: their own buckets, or every batch would land in +Inf.
        .set_buckets_for_metric(
            Matcher::Full(flexiapi_ingest::metrics::BATCH_SIZE.to_owned()),
            COUNT_BUCKETS,
        )?
        .set_buckets_for_metric(
            Matcher::Full(flexiapi_ingest::sink::metrics::BATCH_ROWS.to_owned()),
            COUNT_BUCKETS,
        )?
        .install_recorder()?;
    Ok(handle)
}
