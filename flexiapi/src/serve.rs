//! `flexiapi serve`, `flexiapi ingest` and `flexiapi sink`: composing the parts behind one listener.
//!
//! Every route but `/metrics` sits under the request-Space middleware (Space from Host / `:authority`);
//! `/metrics` stays reachable by IP for Prometheus.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use axum::routing::get;
use axum::Router;
use flexiapi_auth::Authenticator;
use flexiapi_core::http::context::resolve_space;
use flexiapi_core::http::{fallback, SpaceDirectory};
use flexiapi_core::transport;
use flexiapi_core::Config;
use flexiapi_ingest::Ingest;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::{admin, telemetry};

/// `flexiapi serve`: account API + statistics ingest on one listener.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let metrics = telemetry::install_metrics()?;
    let db = admin::open(&config).await?;
    let auth = Arc::new(Authenticator::new(db.clone(), &config).context("authentication setup")?);
    let spaces = Arc::new(SpaceDirectory::new(
        db.clone(),
        config.ingest.auth_cache_ttl,
        config.root_host.clone(),
    ));
    let ingest = Ingest::start(db.clone(), &config, auth.clone())
        .await
        .context("statistics ingest setup")?;
    let api = flexiapi_api::Api::start(db.clone(), config.clone(), auth.clone(), spaces.clone())
        .await
        .context("account API setup")?;
    let app = Router::new().merge(api.router()).merge(ingest.router());
    run_http(&config, app, spaces, metrics).await?;
    ingest.shutdown().await;
    db.close().await;
    Ok(())
}

/// `flexiapi ingest`: only the statistics endpoints, appending to Kafka.
pub async fn ingest_only(config: Config) -> anyhow::Result<()> {
    if !config.scale_mode() {
        anyhow::bail!("flexiapi ingest needs FLEXIAPI_KAFKA_BROKERS (use `flexiapi serve` for the embedded store)");
    }
    anyhow::bail!("scale mode (Kafka) is not part of this build yet: use `flexiapi serve`")
}

/// `flexiapi sink`: Kafka → ClickHouse until SIGTERM / Ctrl-C.
pub async fn sink(_config: Config) -> anyhow::Result<()> {
    anyhow::bail!("scale mode (ClickHouse sink) is not part of this build yet")
}

async fn run_http(
    config: &Config,
    app: Router,
    spaces: Arc<SpaceDirectory>,
    metrics: PrometheusHandle,
) -> anyhow::Result<()> {
    let app = fallback::with_upstream_errors(app)
        .layer(axum::middleware::from_fn_with_state(spaces, resolve_space));
    let app = Router::new()
        .route(
            "/metrics",
            get(move || std::future::ready(metrics.render())),
        )
        .merge(app);
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some(transport::load_tls(cert, key).context("TLS setup")?),
        _ => None,
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {} (FLEXIAPI_LISTEN)", config.listen))?;
    tracing::info!(
        address = %listener.local_addr()?,
        tls = tls.is_some(),
        "serving"
    );
    transport::serve(listener, tls, app, shutdown_signal())
        .await
        .context("server")?;
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    async {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            tokio::select! {
                _ = ctrl_c => {},
                _ = term.recv() => {},
            }
        }
        #[cfg(not(unix))]
        {
            let _ = ctrl_c.await;
        }
        tracing::info!("shutting down: draining in-flight requests");
    }
}
