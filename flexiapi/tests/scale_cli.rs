//! Scale mode through the real binary: `flexiapi migrate` creates the ClickHouse tables, `flexiapi ingest`
//! takes a call and its updates over HTTP (Kafka on Tansu), `flexiapi sink` writes ClickHouse, and the
//! account listing reads the call back from ClickHouse.

mod scale_common;

use std::time::Duration;

use scale_common::*;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_and_sink_binaries_serve_a_call_back_from_clickhouse() {
    let scale = Scale::new(&[]);
    let ch = scale.clickhouse();
    let tables = ch
        .query("SELECT name FROM system.tables WHERE database = currentDatabase() ORDER BY name")
        .await
        .unwrap();
    let tables: Vec<&str> = tables.lines().collect();
    for table in [
        "calls",
        "call_device_events",
        "call_ends",
        "call_states",
        "messages",
        "participant_events",
        "schema_migrations",
    ] {
        assert!(tables.contains(&table), "{table} missing from {tables:?}");
    }
    // migrate again: nothing applied twice.
    assert!(scale.cli(&["migrate"]).status.success());
    let applied = ch.number("SELECT count() FROM schema_migrations").await;
    assert_eq!(applied, 1);

    let mut ingest = scale.spawn("ingest");
    let mut sink = scale.spawn("sink");
    ingest.wait_ready(Duration::from_secs(90)).await;
    sink.wait_ready(Duration::from_secs(30)).await;

    let client = reqwest::Client::new();
    let base = ingest.base.clone();
    let key = scale.key.clone();
    let id = event_id("cli-call", 1);
    let t0 = 1_767_225_600;
    let (status, body) = send(
        &client,
        &base,
        &key,
        "POST",
        "/api/stats/calls",
        call_body(&id, "mike@sip.example.org", t0),
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "1"));
    // Same id again: upstream's duplicate answer, from the ingest's index.
    let (status, _) = send(
        &client,
        &base,
        &key,
        "POST",
        "/api/statistics/calls",
        call_body(&id, "mike@sip.example.org", t0),
    )
    .await;
    assert_eq!(status, 400);
    let d1 = format!("/api/stats/calls/{id}/devices/{}", device(1).1);
    let (status, body) = send(
        &client,
        &base,
        &key,
        "PATCH",
        &d1,
        json!({"rang_at": at(t0 + 2)}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = send(
        &client,
        &base,
        &key,
        "PATCH",
        &d1,
        json!({"invite_terminated": {"at": at(t0 + 5), "state": "accepted"}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = send(
        &client,
        &base,
        &key,
        "PATCH",
        &format!("/api/stats/calls/{id}"),
        json!({"ended_at": at(t0 + 65)}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let ended: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        ended["devices"].as_array().map(Vec::len),
        Some(2),
        "{ended}"
    );
    // Bad input: 422, nothing appended; unknown call end: 404.
    let (status, _) = send(
        &client,
        &base,
        &key,
        "POST",
        "/api/stats/calls",
        json!({"id": ""}),
    )
    .await;
    assert_eq!(status, 422);
    let (status, _) = send(
        &client,
        &base,
        &key,
        "PATCH",
        &format!("/api/stats/calls/{}", event_id("none", 0)),
        json!({"ended_at": at(t0)}),
    )
    .await;
    assert_eq!(status, 404);
    // The account API is not served by `flexiapi ingest`.
    let response = client
        .get(format!("{base}/api/accounts/me"))
        .header("Host", HOST)
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);

    // The sink writes the 4 accepted events; the listing (ClickHouse) shows the call with both devices.
    let events = || async {
        final_count(&ch, "calls").await * 100
            + final_count(&ch, "call_device_events").await * 10
            + final_count(&ch, "call_ends").await
    };
    assert_eq!(
        wait_until(Duration::from_secs(120), 100 + 20 + 2, events).await,
        122
    );
    let listing = client
        .get(format!(
            "{base}/api/accounts/{}/statistics/calls",
            scale.admin_id
        ))
        .header("Host", HOST)
        .header("x-api-key", &key)
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(listing.status(), 200);
    let page: Value = listing.json().await.unwrap();
    assert_eq!(page["total"], 1, "{page}");
    let call = &page["data"][0];
    assert_eq!(call["id"], id.as_str());
    assert_eq!(call["sip_call_id"], format!("sip-{id}"));
    assert_eq!(call["ended_at"], "2026-01-01T00:01:05.000000Z");
    let device1 = call["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["device_id"] == device(1).0)
        .unwrap()
        .clone();
    assert_eq!(device1["rang_at"], "2026-01-01T00:00:02.000000Z");
    assert_eq!(device1["invite_terminated_state"], "accepted");

    // Metrics of both processes.
    let sink_metrics = sink.metrics().await;
    for name in [
        "flexiapi_sink_batch_rows",
        "flexiapi_sink_insert_seconds",
        "flexiapi_sink_rows_total",
    ] {
        assert!(
            sink_metrics.contains(name),
            "{name} missing:\n{sink_metrics}"
        );
    }
    // SIGTERM: both stop cleanly.
    assert!(
        sink.terminate(Duration::from_secs(30)),
        "sink did not stop cleanly on SIGTERM"
    );
    assert!(
        ingest.terminate(Duration::from_secs(30)),
        "ingest did not stop cleanly on SIGTERM"
    );
}

#[tokio::test]
async fn scale_commands_refuse_clearly_without_their_settings() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/x.db", dir.path().display());
    for (command, needs) in [
        ("ingest", "FLEXIAPI_KAFKA_BROKERS"),
        ("sink", "FLEXIAPI_KAFKA_BROKERS"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_flexiapi"))
            .arg(command)
            .env("FLEXIAPI_DATABASE_URL", &db)
            .env_remove("FLEXIAPI_KAFKA_BROKERS")
            .env_remove("FLEXIAPI_CLICKHOUSE_URL")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{command}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(needs),
            "{command}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
