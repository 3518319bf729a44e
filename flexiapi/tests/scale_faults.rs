//! Scale mode under faults, with the real binaries and services: kill -9 of the sink mid-batch, a broker
//! restart, the broker away past the delivery timeout, ClickHouse stopped for a while, kill -9 of the ingest
//! under load. After each, every event the
//! ingest acknowledged (200/201) is in ClickHouse exactly once (read with FINAL), and nothing is there twice.
//!
//! The tests stop shared services (the broker, ClickHouse): they run one at a time.

mod scale_common;

use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use scale_common::*;
use serde_json::json;

/// One fault test at a time: they restart services the others use.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One statistics event the load sent, identified by its content (each is distinct).
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
enum Key {
    Call(String),
    /// (call id, device number, true for the termination update).
    Device(String, u32, bool),
    End(String),
}

/// What the load sent and what the ingest acknowledged.
#[derive(Default)]
struct Ledger {
    acked: HashSet<Key>,
    sent: HashSet<Key>,
    /// Answers that must never happen, even during a fault (e.g. a 400 for an update of an acknowledged call).
    wrong: Vec<String>,
}

/// Calls sent by `workers` concurrent clients until stopped: POST, two device updates, end.
struct Load {
    stop: Arc<AtomicBool>,
    ledger: Arc<Mutex<Ledger>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// `pause` between two calls of a worker keeps the topic small: Tansu's fetches slow down as a partition
    /// grows (one S3 object per acknowledged produce), which would starve a consumer joining late.
    fn start(base: &str, key: &str, label: &str, workers: usize, pause: Duration) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ledger = Arc::new(Mutex::new(Ledger::default()));
        let tasks = (0..workers)
            .map(|w| {
                let (stop, ledger) = (stop.clone(), ledger.clone());
                let (base, key, label) = (base.to_owned(), key.to_owned(), format!("{label}-w{w}"));
                tokio::spawn(async move {
                    let client = reqwest::Client::builder()
                        .timeout(Duration::from_secs(40))
                        .build()
                        .unwrap();
                    let mut n = 0;
                    while !stop.load(Ordering::Relaxed) {
                        one_call(&client, &base, &key, &event_id(&label, n), &ledger).await;
                        n += 1;
                        tokio::time::sleep(pause).await;
                    }
                })
            })
            .collect();
        Load {
            stop,
            ledger,
            tasks,
        }
    }

    /// Acknowledged events so far.
    fn acked(&self) -> usize {
        self.ledger.lock().unwrap().acked.len()
    }

    /// Waits until `more` further events are acknowledged (or 60 s).
    async fn wait_more(&self, more: usize) {
        let target = self.acked() + more;
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while self.acked() < target {
            assert!(
                std::time::Instant::now() < deadline,
                "the load stalled at {} events",
                self.acked()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn finish(self) -> Ledger {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.unwrap();
        }
        Arc::try_unwrap(self.ledger)
            .ok()
            .unwrap()
            .into_inner()
            .unwrap()
    }
}

async fn one_call(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    id: &str,
    ledger: &Mutex<Ledger>,
) {
    let t0 = 1_767_225_600;
    let steps = [
        (
            Key::Call(id.to_owned()),
            "POST",
            "/api/stats/calls".to_owned(),
            call_body(id, "mike@sip.example.org", t0),
        ),
        (
            Key::Device(id.to_owned(), 1, false),
            "PATCH",
            format!("/api/stats/calls/{id}/devices/{}", device(1).1),
            json!({"rang_at": at(t0 + 1)}),
        ),
        (
            Key::Device(id.to_owned(), 2, true),
            "PATCH",
            format!("/api/stats/calls/{id}/devices/{}", device(2).1),
            json!({"invite_terminated": {"at": at(t0 + 3), "state": "accepted"}}),
        ),
        (
            Key::End(id.to_owned()),
            "PATCH",
            format!("/api/stats/calls/{id}"),
            json!({"ended_at": at(t0 + 60)}),
        ),
    ];
    for (event, method, path, body) in steps {
        ledger.lock().unwrap().sent.insert(event.clone());
        let (status, text) = send(client, base, key, method, &path, body).await;
        let mut ledger = ledger.lock().unwrap();
        match status {
            200 | 201 => {
                ledger.acked.insert(event);
            }
            // Unreachable ingest, broker or delivery failure: not acknowledged, the call is abandoned.
            0 | 500..=599 => return,
            _ => {
                ledger
                    .wrong
                    .push(format!("{method} {path}: {status} {text}"));
                return;
            }
        }
    }
}

/// Every event in ClickHouse (FINAL), with how many times it shows.
async fn stored(ch: &Ch) -> Option<HashMap<Key, u64>> {
    let mut seen: HashMap<Key, u64> = HashMap::new();
    let devices: HashMap<String, u32> = [(device(1).0, 1), (device(2).0, 2)].into_iter().collect();
    for line in ch
        .query("SELECT id FROM calls FINAL FORMAT TSV")
        .await
        .ok()?
        .lines()
    {
        *seen.entry(Key::Call(line.to_owned())).or_default() += 1;
    }
    for line in ch
        .query("SELECT call_id FROM call_ends FINAL FORMAT TSV")
        .await
        .ok()?
        .lines()
    {
        *seen.entry(Key::End(line.to_owned())).or_default() += 1;
    }
    let sql = "SELECT call_id, device_id, isNotNull(terminated_at) FROM call_device_events FINAL FORMAT JSONCompact";
    let rows: serde_json::Value = serde_json::from_str(&ch.query(sql).await.ok()?).ok()?;
    for row in rows["data"].as_array()? {
        let device = devices.get(row[1].as_str()?).copied().unwrap_or(0);
        let terminated = row[2]
            .as_u64()
            .or_else(|| row[2].as_str().and_then(|s| s.parse().ok()))?
            == 1;
        *seen
            .entry(Key::Device(row[0].as_str()?.to_owned(), device, terminated))
            .or_default() += 1;
    }
    Some(seen)
}

/// Waits until every acknowledged event is in ClickHouse, then checks exactly-once: each acknowledged event
/// once, nothing twice, nothing that was never sent.
async fn assert_exactly_once(ch: &Ch, ledger: &Ledger, within: Duration) {
    assert!(
        ledger.wrong.is_empty(),
        "unexpected answers: {:?}",
        ledger.wrong
    );
    assert!(
        ledger.acked.len() >= 40,
        "too little load to prove anything: {}",
        ledger.acked.len()
    );
    let deadline = std::time::Instant::now() + within;
    let seen = loop {
        if let Some(seen) = stored(ch).await {
            let missing: Vec<&Key> = ledger
                .acked
                .iter()
                .filter(|k| !seen.contains_key(*k))
                .collect();
            if missing.is_empty() {
                break seen;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{} acknowledged events never reached ClickHouse, e.g. {:?}",
                missing.len(),
                &missing[..missing.len().min(10)]
            );
        }
        assert!(
            std::time::Instant::now() < deadline,
            "ClickHouse did not answer"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "events shown more than once: {twice:?}");
    let unsent: Vec<_> = seen
        .keys()
        .filter(|k| !ledger.sent.contains(*k) && **k != Key::Call(WARMUP.into()))
        .collect();
    assert!(unsent.is_empty(), "events nobody sent: {unsent:?}");
    eprintln!(
        "exactly once: {} acknowledged, {} stored ({} sent but unacknowledged made it)",
        ledger.acked.len(),
        seen.len(),
        seen.len() - ledger.acked.len()
    );
}

/// Rows without FINAL: more than with FINAL means a replay happened and collapsed.
async fn raw_and_final(ch: &Ch) -> (u64, u64) {
    let mut raw = 0;
    let mut deduplicated = 0;
    for table in ["calls", "call_device_events", "call_ends"] {
        raw += ch.number(&format!("SELECT count() FROM {table}")).await;
        deduplicated += final_count(ch, table).await;
    }
    (raw, deduplicated)
}

/// Id of the call [`start_pipeline`] sends to see the sink consume.
const WARMUP: &str = "warmup";

/// Posts call `id` (the load's body) to the ingest; gives the status.
async fn post_call(client: &reqwest::Client, ingest: &Proc, key: &str, id: &str) -> u16 {
    let body = call_body(id, "mike@sip.example.org", 1_767_225_600);
    send(client, &ingest.base, key, "POST", "/api/stats/calls", body)
        .await
        .0
}

/// Starts ingest and sink, and waits until the sink has written a first call (the first consumer-group
/// join on Tansu takes ~20 s: a fault injected before it would test nothing).
async fn start_pipeline(scale: &Scale) -> (Proc, Proc) {
    let mut ingest = scale.spawn("ingest");
    let mut sink = scale.spawn("sink");
    ingest.wait_ready(Duration::from_secs(90)).await;
    sink.wait_ready(Duration::from_secs(30)).await;
    let client = reqwest::Client::new();
    assert_eq!(post_call(&client, &ingest, &scale.key, WARMUP).await, 200);
    let ch = scale.clickhouse();
    let calls = || final_count(&ch, "calls");
    assert_eq!(
        wait_until(Duration::from_secs(120), 1, calls).await,
        1,
        "the sink consumed nothing"
    );
    (ingest, sink)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_killed_mid_batch_and_restarted_loses_and_duplicates_nothing() {
    let _serial = SERIAL.lock().await;
    // Long batches: a kill right after an insert lands before its offset commit.
    let scale = Scale::new(&[
        ("FLEXIAPI_SINK_BATCH_MS", "1500"),
        ("FLEXIAPI_SINK_BATCH_MAX", "100000"),
    ]);
    let ch = scale.clickhouse();
    let (ingest, mut sink) = start_pipeline(&scale).await;
    let load = Load::start(
        &ingest.base,
        &scale.key,
        "sinkkill",
        1,
        Duration::from_millis(400),
    );
    for round in 0..2 {
        load.wait_more(30).await;
        // Kill as soon as a batch insert shows up: its offsets are not committed yet (or only just).
        let (before, _) = raw_and_final(&ch).await;
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        while raw_and_final(&ch).await.0 == before {
            if std::time::Instant::now() > deadline {
                panic!(
                    "round {round}: the sink wrote nothing; its metrics:\n{}",
                    sink.metrics().await
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        sink.kill9();
        load.wait_more(20).await;
        // Restart like a supervisor with a restart delay: the killed member's session (10 s) has expired.
        tokio::time::sleep(Duration::from_secs(12)).await;
        sink = scale.spawn("sink");
        sink.wait_ready(Duration::from_secs(30)).await;
    }
    let ledger = load.finish().await;
    assert_exactly_once(&ch, &ledger, Duration::from_secs(180)).await;
    let (raw, deduplicated) = raw_and_final(&ch).await;
    eprintln!("after 2 sink kills: {raw} rows stored, {deduplicated} with FINAL");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "Tansu 0.6 on S3 saves an idempotent producer's sequence before it writes the batch: stopped in \
            between, it answers the resent batch DUPLICATE_SEQUENCE_NUMBER and the record, acknowledged, is \
            never stored (seen: offset 55 reserved, 55.batch never written); run it with --ignored against a \
            broker that keeps what it acknowledges"]
async fn broker_restart_under_load_loses_and_duplicates_nothing() {
    broker_restart_under_load("restart").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "Tansu 0.6 on S3 also loses an acknowledged record across SIGKILL, the same way (seen: a call's \
            device update acknowledged to the ingest, absent from the partition's S3 batches between the call's \
            previous and next events); run it with --ignored against a broker that keeps what it acknowledges"]
async fn broker_killed_under_load_and_restarted_loses_and_duplicates_nothing() {
    broker_restart_under_load("kill").await;
}

/// Restarts the broker (`tansu-restart.sh <how>`) while the ingest acknowledges, then checks every
/// acknowledged event is in ClickHouse exactly once.
async fn broker_restart_under_load(how: &str) {
    let _serial = SERIAL.lock().await;
    let restart = service("FLEXIAPI_TEST_TANSU_RESTART_CMD");
    let scale = Scale::new(&[]);
    let ch = scale.clickhouse();
    let (ingest, _sink) = start_pipeline(&scale).await;
    let load = Load::start(
        &ingest.base,
        &scale.key,
        &format!("broker{how}"),
        4,
        Duration::ZERO,
    );
    load.wait_more(40).await;
    let status = Command::new(&restart)
        .arg(how)
        .status()
        .expect("run FLEXIAPI_TEST_TANSU_RESTART_CMD");
    assert!(status.success(), "{restart} {how} failed");
    // The ingest acknowledges again after the restart.
    load.wait_more(40).await;
    let ledger = load.finish().await;
    assert_exactly_once(&ch, &ledger, Duration::from_secs(240)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_away_past_the_delivery_timeout_answers_503_then_recovers() {
    let _serial = SERIAL.lock().await;
    let restart = service("FLEXIAPI_TEST_TANSU_RESTART_CMD");
    let scale = Scale::new(&[]);
    let ch = scale.clickhouse();
    let (ingest, _sink) = start_pipeline(&scale).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    assert_eq!(
        post_call(&client, &ingest, &scale.key, "away-before").await,
        200
    );

    let _back = BrokerBack(restart.clone());
    assert!(Command::new(&restart)
        .arg("stop")
        .status()
        .unwrap()
        .success());
    // No broker confirms it within the delivery timeout (20 s, plus librdkafka's few seconds; under Flexisip's 30 s): 503, never a 200.
    let asked = std::time::Instant::now();
    let (status, body) = send(
        &client,
        &ingest.base,
        &scale.key,
        "POST",
        "/api/stats/calls",
        call_body("away-during", "mike@sip.example.org", 1_767_225_600),
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (503, r#"{"message":"Service Unavailable"}"#)
    );
    assert!(
        asked.elapsed() < Duration::from_secs(30),
        "{:?}",
        asked.elapsed()
    );
    eprintln!("503 after {:?} with the broker away", asked.elapsed());

    assert!(Command::new(&restart)
        .arg("start")
        .status()
        .unwrap()
        .success());
    // The producer recovers once the broker is back.
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let mut n = 0;
    let after = loop {
        let id = event_id("away-after", n);
        let status = post_call(&client, &ingest, &scale.key, &id).await;
        if status == 200 {
            break id;
        }
        assert_eq!(status, 503, "while the producer reconnects");
        assert!(
            std::time::Instant::now() < deadline,
            "no 200 within 90 s of the broker's return"
        );
        n += 1;
    };
    // The refused POST left no trace in the index: the same call is accepted now.
    assert_eq!(
        post_call(&client, &ingest, &scale.key, "away-during").await,
        200
    );
    assert_eq!(
        post_call(&client, &ingest, &scale.key, "away-during").await,
        400
    );
    // The sink went on through the broker's absence: the calls acknowledged before and after are in ClickHouse.
    let sql = format!(
        "SELECT count() FROM calls FINAL WHERE id IN ('{WARMUP}', 'away-before', '{after}', 'away-during')"
    );
    let stored = || ch.number(&sql);
    assert_eq!(wait_until(Duration::from_secs(120), 4, stored).await, 4);
}

/// Starts the broker again when dropped: a failed assertion must not leave the tests that follow without it.
struct BrokerBack(String);

impl Drop for BrokerBack {
    fn drop(&mut self) {
        let _ = Command::new(&self.0).arg("start").status();
    }
}

/// The ClickHouse server scripts/services.sh started: its directory (from the config path) and pid.
fn clickhouse_process() -> (std::path::PathBuf, u32) {
    let config = std::path::PathBuf::from(service("FLEXIAPI_TEST_CLICKHOUSE_CONFIG"));
    let dir = config.parent().unwrap().to_path_buf();
    let pid = std::fs::read_to_string(dir.join("server.pid"))
        .expect("ClickHouse pid file next to its config");
    (dir, pid.trim().parse().unwrap())
}

/// Starts ClickHouse again exactly as scripts/services.sh does (same user, config, pid file).
fn start_clickhouse(dir: &std::path::Path) {
    let server = ["/usr/bin/clickhouse-server", "/usr/sbin/clickhouse-server"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("clickhouse-server installed");
    let script = format!(
        "cd '{dir}' && exec setsid setpriv --reuid=flexiapi-test --regid=flexiapi-test --init-groups -- \
         sh -c 'echo $$ >\"$1\"; shift; exec \"$@\"' sh '{dir}/server.pid' {server} --config-file='{dir}/config.xml' \
         </dev/null >>'{dir}/stdout.log' 2>&1 &",
        dir = dir.display()
    );
    assert!(Command::new("bash")
        .arg("-c")
        .arg(script)
        .status()
        .unwrap()
        .success());
}

/// Starts ClickHouse again, when dropped while it is down: a failed assertion must not leave the tests that
/// follow without it.
struct ClickHouseBack(std::path::PathBuf);

impl Drop for ClickHouseBack {
    fn drop(&mut self) {
        let (_, pid) = clickhouse_process();
        let alive = Command::new("kill")
            .args(["-0", &pid.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        if !alive {
            start_clickhouse(&self.0);
        }
    }
}

/// The sink's `flexiapi_sink_insert_retries_total`, 0 before its first retry.
fn insert_retries(metrics: &str) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with("flexiapi_sink_insert_retries_total"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clickhouse_down_for_a_while_then_back_loses_and_duplicates_nothing() {
    let _serial = SERIAL.lock().await;
    let scale = Scale::new(&[]);
    let ch = scale.clickhouse();
    let (ingest, mut sink) = start_pipeline(&scale).await;
    let load = Load::start(&ingest.base, &scale.key, "chdown", 4, Duration::ZERO);
    load.wait_more(40).await;
    let (dir, pid) = clickhouse_process();
    let _back = ClickHouseBack(dir.clone());
    assert!(Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap()
        .success());
    // The ingest keeps acknowledging while ClickHouse is away (the log is Kafka).
    load.wait_more(40).await;
    // The sink's next batch (within its batch time) fails and is retried; the load may be quicker than that.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut metrics = sink.metrics().await;
    while insert_retries(&metrics) < 1.0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        metrics = sink.metrics().await;
    }
    assert!(
        insert_retries(&metrics) >= 1.0,
        "the sink retried no insert while ClickHouse was down:\n{metrics}"
    );
    // A sink stopped while its inserts fail still stops (within its grace), leaving what it holds uncommitted;
    // the sink that replaces it writes that again once ClickHouse is back.
    let started = std::time::Instant::now();
    assert!(
        sink.terminate(Duration::from_secs(20)),
        "the sink did not stop cleanly on SIGTERM while ClickHouse was down"
    );
    eprintln!(
        "sink stopped in {:?} with ClickHouse down",
        started.elapsed()
    );
    let mut sink = scale.spawn("sink");
    sink.wait_ready(Duration::from_secs(30)).await;
    load.wait_more(20).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    start_clickhouse(&dir);
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while ch.query("SELECT 1").await.is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "ClickHouse did not come back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    load.wait_more(20).await;
    let ledger = load.finish().await;
    assert_exactly_once(&ch, &ledger, Duration::from_secs(180)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_killed_under_load_and_restarted_loses_and_duplicates_nothing() {
    let _serial = SERIAL.lock().await;
    let scale = Scale::new(&[]);
    let ch = scale.clickhouse();
    let (mut ingest, _sink) = start_pipeline(&scale).await;
    let port: u16 = ingest.base.rsplit(':').next().unwrap().parse().unwrap();
    let load = Load::start(&ingest.base, &scale.key, "ingestkill", 6, Duration::ZERO);
    for _ in 0..2 {
        load.wait_more(40).await;
        ingest.kill9();
        ingest = scale.spawn_at("ingest", port);
        ingest.wait_ready(Duration::from_secs(90)).await;
    }
    load.wait_more(40).await;
    let ledger = load.finish().await;
    // The restarted ingest rebuilt its index: every acknowledged call is a duplicate, including the newest
    // ones before each kill.
    let calls: Vec<String> = ledger
        .acked
        .iter()
        .filter_map(|k| match k {
            Key::Call(id) => Some(id.clone()),
            _ => None,
        })
        .collect();
    assert!(!calls.is_empty(), "no call acknowledged");
    let client = reqwest::Client::new();
    let mut accepted_again = Vec::new();
    for id in &calls {
        let status = post_call(&client, &ingest, &scale.key, id).await;
        if status != 400 {
            accepted_again.push(format!("{id}: {status}"));
        }
    }
    assert!(
        accepted_again.is_empty(),
        "{} of {} calls acknowledged before the kills are not duplicates after the restart: {accepted_again:?}",
        accepted_again.len(),
        calls.len()
    );
    assert_exactly_once(&ch, &ledger, Duration::from_secs(180)).await;
}
