//! `flexiapi serve`, `flexiapi ingest` and `flexiapi sink`: composing the parts behind one listener.
//!
//! Every route but `/metrics` sits under the request-Space middleware (Space from Host / `:authority`);
//! `/metrics` stays reachable by IP for Prometheus.

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

/// What every HTTP front needs: metrics, the (migrated) account database, the authenticator, the Spaces.
struct Front {
    metrics: PrometheusHandle,
    db: flexiapi_core::Db,
    auth: Arc<Authenticator>,
    spaces: Arc<SpaceDirectory>,
}

impl Front {
    async fn open(config: &Config) -> anyhow::Result<Front> {
        let metrics = telemetry::install_metrics()?;
        let db = admin::open(config).await?;
        let auth =
            Arc::new(Authenticator::new(db.clone(), config).context("authentication setup")?);
        let spaces = Arc::new(SpaceDirectory::new(
            db.clone(),
            config.ingest.auth_cache_ttl,
            config.root_host.clone(),
        ));
        Ok(Front {
            metrics,
            db,
            auth,
            spaces,
        })
    }
}

/// `flexiapi serve`: account API + statistics ingest on one listener.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let Front {
        metrics,
        db,
        auth,
        spaces,
    } = Front::open(&config).await?;
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

/// `flexiapi ingest`: only the statistics endpoints (+ `/metrics`), appending to Kafka, reading ClickHouse.
pub async fn ingest_only(config: Config) -> anyhow::Result<()> {
    if !config.scale_mode() {
        anyhow::bail!(
            "flexiapi ingest needs FLEXIAPI_KAFKA_BROKERS (use `flexiapi serve` for the embedded store)"
        );
    }
    // The account database still authenticates the Flexisip servers (admin API keys) and resolves Spaces.
    let Front {
        metrics,
        db,
        auth,
        spaces,
    } = Front::open(&config).await?;
    let ingest = Ingest::start(db.clone(), &config, auth)
        .await
        .context("statistics ingest setup")?;
    run_http(&config, ingest.router(), spaces, metrics).await?;
    ingest.shutdown().await;
    db.close().await;
    Ok(())
}

/// `flexiapi sink`: Kafka → ClickHouse until SIGTERM / Ctrl-C; `/metrics` on FLEXIAPI_LISTEN.
pub async fn sink(config: Config) -> anyhow::Result<()> {
    if !config.scale_mode() || config.clickhouse_url.is_none() {
        anyhow::bail!("flexiapi sink needs FLEXIAPI_KAFKA_BROKERS and FLEXIAPI_CLICKHOUSE_URL");
    }
    let metrics = telemetry::install_metrics()?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {} (FLEXIAPI_LISTEN)", config.listen))?;
    tracing::info!(address = %listener.local_addr()?, "sink metrics on /metrics");
    let app = Router::new().route(
        "/metrics",
        get(move || std::future::ready(metrics.render())),
    );
    // The metrics listener lives as long as the sink; it has no state worth draining.
    let metrics_server = tokio::spawn(async move { axum::serve(listener, app).await });
    let result = flexiapi_ingest::sink::run(&config, shutdown_signal()).await;
    metrics_server.abort();
    result.context("sink")
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
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
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
