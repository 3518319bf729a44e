//! Every panel of the provisioned Grafana dashboards (compose/grafana/dashboards) runs on ClickHouse and
//! returns rows: ClickHouse is seeded through the Kafka log and the real sink with a realistic mix (calls
//! ending in each state, messages delivered and failed, two domains, conferences with participants), and
//! each panel's SQL runs with the Grafana macros replaced by concrete SQL valid on 18.16.

mod scale_support;

use std::time::Duration;

use flexiapi_ingest::clickhouse;
use flexiapi_ingest::kafka::KafkaLog;
use flexiapi_ingest::EventLog;
use scale_support::*;

/// The time range the panels are asked about: the seeded events (2026-01-01) up to the sink's insert times.
fn range() -> (i64, i64) {
    (T0 - 86_400, chrono::Utc::now().timestamp() + 86_400)
}

/// Replaces the ClickHouse datasource's macros by plain SQL (`$__timeFilter(expr)` may nest parentheses).
fn expand_macros(sql: &str, from: i64, to: i64) -> String {
    let mut out = String::new();
    let mut rest = sql;
    while let Some(start) = rest.find("$__timeFilter(") {
        out.push_str(&rest[..start]);
        let after = &rest[start + "$__timeFilter(".len()..];
        let mut depth = 1;
        let end = after
            .char_indices()
            .find(|(_, c)| {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                depth == 0
            })
            .map(|(i, _)| i)
            .expect("unbalanced $__timeFilter(");
        let column = &after[..end];
        out.push_str(&format!(
            "({column} >= toDateTime({from}) AND {column} <= toDateTime({to}))"
        ));
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out.replace("$__fromTime", &format!("toDateTime({from})"))
        .replace("$__toTime", &format!("toDateTime({to})"))
        .replace("$__interval_s", "60")
}

/// (dashboard file, panel title, SQL) of every panel target.
fn panel_queries() -> Vec<(String, String, String)> {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../compose/grafana/dashboards");
    let mut found = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    for path in files {
        let dashboard: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        for panel in dashboard["panels"].as_array().expect("panels") {
            let title = panel["title"].as_str().unwrap_or("?").to_owned();
            let targets = panel["targets"].as_array().expect("targets");
            assert!(!targets.is_empty(), "{file}: panel {title} has no query");
            for target in targets {
                let sql = target["rawSql"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{file}: panel {title} has no rawSql"));
                assert_eq!(target["datasource"]["uid"], "clickhouse", "{file}: {title}");
                found.push((file.clone(), title.clone(), sql.to_owned()));
            }
        }
    }
    found
}

#[test]
fn macros_expand_to_plain_sql() {
    let sql = "SELECT 1 FROM t WHERE $__timeFilter(toDateTime(x)) AND y < $__toTime";
    assert_eq!(
        expand_macros(sql, 10, 20),
        "SELECT 1 FROM t WHERE (toDateTime(x) >= toDateTime(10) AND toDateTime(x) <= toDateTime(20)) \
         AND y < toDateTime(20)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_panel_returns_rows_on_seeded_data() {
    let queries = panel_queries();
    let titles: Vec<&str> = queries.iter().map(|(_, title, _)| title.as_str()).collect();
    for wanted in [
        "Calls per minute by final state",
        "ratios",
        "Ring time",
        "Messages by delivery status",
        "domain",
        "Conferences and participants",
        "Ingest lag",
    ] {
        assert!(
            titles.iter().any(|t| t.contains(wanted)),
            "no panel about {wanted:?}: {titles:?}"
        );
    }

    let config = config(&[]);
    clickhouse::migrate(&config).await.unwrap();
    let log = KafkaLog::start(&config).await.unwrap();
    let mut events = Vec::new();
    // Calls from a.example to b.example ending accepted, declined, canceled, error (n % 4), over minutes.
    for n in 0..12 {
        events.extend(call_events(n));
    }
    // Messages: every other one has a device answering 503.
    for n in 0..8 {
        events.extend(message_events(n));
    }
    for n in 0..2 {
        events.extend(conference_events(n));
    }
    for event in &events {
        log.append(event.clone()).await.unwrap();
    }
    log.shutdown().await;

    let client = clickhouse::client(&config).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let sink_config = config.clone();
    let sink = tokio::spawn(async move {
        flexiapi_ingest::sink::run(&sink_config, async {
            let _ = stopped.await;
        })
        .await
    });
    let expected = Counts::of(&events);
    let seen = wait_for_counts(&client, &expected, Duration::from_secs(180)).await;
    let _ = stop.send(());
    sink.await.unwrap().unwrap();
    assert_eq!(seen, expected);

    let (from, to) = range();
    let mut empty = Vec::new();
    for (file, title, sql) in &queries {
        let sql = expand_macros(sql, from, to);
        assert!(
            !sql.contains("$__"),
            "{file}: {title}: a macro the test does not know"
        );
        let rows: u64 = client
            .query(&format!("SELECT count() FROM ({sql})"))
            .fetch_one()
            .await
            .unwrap_or_else(|e| panic!("{file}: panel {title:?} fails on ClickHouse: {e}\n{sql}"));
        if rows == 0 {
            empty.push(title.clone());
        }
    }
    assert!(empty.is_empty(), "panels without rows: {empty:?}");

    // The state panel sees every final state of the seeded calls.
    let state_panel = &queries
        .iter()
        .find(|(_, title, _)| title.contains("by final state"))
        .unwrap()
        .2;
    let states: Vec<String> = client
        .query(&format!(
            "SELECT DISTINCT final_state FROM ({}) ORDER BY final_state",
            expand_macros(state_panel, from, to)
        ))
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(states, ["answered", "canceled", "declined", "error"]);
}
