//! The embedded ingest's Prometheus metrics, read from the real `flexiapi serve`: after a known sequence of
//! statistics requests, `/metrics` counts each answer by route and status, the events appended by kind, and
//! has the batch, store-latency, queue-depth and (SQLite) WAL-sync and checkpoint series — on SQLite and on PostgreSQL.

use flexiapi_core::testing::{Engine, TestDb, ENGINES};

mod common;

const HOST: &str = "flexiapi.example.org";
const DOMAIN: &str = "sip.example.org";
const CALL: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

/// The value of the series named exactly `series` (name and labels as rendered), if present.
fn value(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

async fn send(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    key: &str,
    body: String,
) -> u16 {
    client
        .request(method, url)
        .header("Host", HOST)
        .header("accept", "application/json")
        .header("content-type", "application/json")
        .header("x-api-key", key)
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn counts_what_it_answered(engine: Engine) {
    let test_db = TestDb::new(engine).await;
    let url = test_db.url.clone();
    let admin = common::space_with_admin(&url, DOMAIN, HOST, "admin");
    let key = admin["api_key"].as_str().unwrap().to_owned();
    let server = common::serve(&url, HOST, &[], None).await;
    let client = reqwest::Client::new();
    let base = format!("{}/api/stats", server.base);
    let call = format!(
        r#"{{"from":"tony@{DOMAIN}","to":"mike@{DOMAIN}","id":"{CALL}","initiated_at":"2026-08-20T10:00:00Z","devices":{{}}}}"#
    );
    let device = format!("{base}/calls/{CALL}/devices/%22%3Curn:uuid:5d2c8f1e%3E%22");
    let sequence = [
        (
            reqwest::Method::POST,
            format!("{base}/calls"),
            call.clone(),
            200,
        ),
        (reqwest::Method::POST, format!("{base}/calls"), call, 400),
        (
            reqwest::Method::PATCH,
            device.clone(),
            r#"{"rang_at":"2026-08-20T10:00:01Z"}"#.into(),
            201,
        ),
        (
            reqwest::Method::PATCH,
            device,
            r#"{"rang_at":"2026-08-20T10:00:02Z"}"#.into(),
            200,
        ),
        (
            reqwest::Method::PATCH,
            format!("{base}/calls/{}", "0".repeat(64)),
            r#"{"ended_at":"2026-08-20T10:01:00Z"}"#.into(),
            404,
        ),
    ];
    for (method, url, body, expected) in sequence {
        assert_eq!(
            send(&client, method, url.clone(), &key, body).await,
            expected,
            "{engine:?}: {url}"
        );
    }

    let metrics = reqwest::Client::new()
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for (series, expected) in [
        (
            r#"flexiapi_ingest_requests_total{route="calls",status="200"}"#,
            1.0,
        ),
        (
            r#"flexiapi_ingest_requests_total{route="calls",status="400"}"#,
            1.0,
        ),
        (
            r#"flexiapi_ingest_requests_total{route="calls_device",status="201"}"#,
            1.0,
        ),
        (
            r#"flexiapi_ingest_requests_total{route="calls_device",status="200"}"#,
            1.0,
        ),
        (
            r#"flexiapi_ingest_requests_total{route="calls_end",status="404"}"#,
            1.0,
        ),
        // What was stored: not the refused duplicate, but the end of the unknown call (kept for its POST).
        (
            r#"flexiapi_ingest_events_appended_total{kind="call_created"}"#,
            1.0,
        ),
        (
            r#"flexiapi_ingest_events_appended_total{kind="call_device_updated"}"#,
            2.0,
        ),
        (
            r#"flexiapi_ingest_events_appended_total{kind="call_ended"}"#,
            1.0,
        ),
        ("flexiapi_ingest_queue_depth", 0.0),
    ] {
        assert_eq!(
            value(&metrics, series),
            Some(expected),
            "{engine:?}: {series} in\n{metrics}"
        );
    }
    // One request at a time: one batch (and one store latency) per event.
    for series in [
        "flexiapi_ingest_batch_size_count",
        "flexiapi_ingest_store_seconds_count",
    ] {
        assert_eq!(
            value(&metrics, series),
            Some(5.0),
            "{engine:?}: {series} in\n{metrics}"
        );
    }
    let syncs = value(&metrics, "flexiapi_ingest_wal_sync_seconds_count");
    match engine {
        // Each answer waited for a sync of its commit; a sync may cover several commits, never none.
        Engine::Sqlite => assert!(
            syncs.is_some_and(|n| (1.0..=5.0).contains(&n)),
            "WAL syncs: {syncs:?} in\n{metrics}"
        ),
        // PostgreSQL commits are durable when they return: there is no WAL file of ours to sync.
        Engine::Postgres => assert_eq!(syncs, None, "{metrics}"),
    }

    // Each sync wakes the background checkpoint thread (idle priority: give it a moment). Under this load
    // the writer never has to checkpoint in the requests' way.
    let background = r#"flexiapi_ingest_checkpoint_seconds_count{by="background"}"#;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut metrics = metrics;
    while engine == Engine::Sqlite
        && value(&metrics, background).is_none()
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        metrics = reqwest::get(format!("{}/metrics", server.base))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
    }
    let writer = r#"flexiapi_ingest_checkpoint_seconds_count{by="writer"}"#;
    match engine {
        Engine::Sqlite => {
            assert!(
                value(&metrics, background).is_some_and(|n| n >= 1.0),
                "{metrics}"
            );
            assert_eq!(value(&metrics, writer), None, "{metrics}");
        }
        Engine::Postgres => assert_eq!(value(&metrics, background), None, "{metrics}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_every_answer_and_batch() {
    for engine in ENGINES {
        counts_what_it_answered(engine).await;
    }
}
