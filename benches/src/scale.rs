//! Scale mode: `flexiapi ingest` appending to Kafka (Tansu) and `flexiapi sink` writing ClickHouse.
//! Measures the ingest rate and its ratio to the ceiling, the sink's rows/s on a backlog, the lag from an
//! acknowledgement to the row being queryable, and checks every acknowledged event is there exactly once.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use flexiapi_core::testing::{Engine, TestDb};
use hdrhistogram::Histogram;

use crate::client::{request, Connection};
use crate::load::{self, Report};
use crate::process::{self, Server};
use crate::{mix, print_errors, Common, DOMAIN, HOST, SERVER_CORE};

/// ClickHouse over its HTTP interface, through the lean client.
struct ClickHouse {
    addr: SocketAddr,
    host: String,
    database: String,
}

/// The payload of a chunked body.
fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = body.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&body[..line_end])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next().unwrap_or("").trim(), 16).ok())
            .unwrap_or(0);
        if size == 0 || body.len() < line_end + 2 + size {
            break;
        }
        out.extend_from_slice(&body[line_end + 2..line_end + 2 + size]);
        body = &body[(line_end + 4 + size).min(body.len())..];
    }
    out
}

impl ClickHouse {
    async fn open(url: &str, database: &str) -> anyhow::Result<ClickHouse> {
        let authority = url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let addr: SocketAddr = authority
            .parse()
            .context("FLEXIAPI_TEST_CLICKHOUSE_URL must be http://IP:port")?;
        Ok(ClickHouse {
            addr,
            host: authority,
            database: database.to_owned(),
        })
    }

    /// Runs `sql`, returns the body (TabSeparated).
    async fn query(&mut self, sql: &str) -> anyhow::Result<String> {
        let mut bytes = Vec::new();
        request(
            "POST",
            &self.host,
            &format!("/?database={}", self.database),
            "",
            sql,
            &mut bytes,
        );
        // A connection per query: ClickHouse closes idle keep-alive connections after 3 s, and these
        // queries are a few per second at most.
        let mut connection = Connection::open(self.addr).await?;
        let answer = connection.exchange(&bytes).await?;
        let chunked = answer
            .headers("transfer-encoding")
            .iter()
            .any(|v| v.eq_ignore_ascii_case("chunked"));
        let body = if chunked {
            dechunk(answer.body)
        } else {
            answer.body.to_vec()
        };
        let body = String::from_utf8_lossy(&body).into_owned();
        if answer.status != 200 {
            bail!("ClickHouse answered {} to {sql}: {body}", answer.status);
        }
        Ok(body)
    }

    async fn number(&mut self, sql: &str) -> anyhow::Result<u64> {
        Ok(self.query(sql).await?.trim().parse()?)
    }
}

/// Rows of every event table (no FINAL: progress of the sink, duplicates included).
const ALL_ROWS: &str = "SELECT (SELECT count() FROM calls) + (SELECT count() FROM call_device_events) \
     + (SELECT count() FROM call_ends) + (SELECT count() FROM messages) + (SELECT count() FROM message_device_responses)";

/// What ClickHouse shows, deduplicated, for each acknowledged counter of the mix.
const STORED: [(&str, &str); 7] = [
    ("calls", "SELECT count() FROM calls FINAL"),
    (
        "call devices rang",
        "SELECT count() FROM call_device_events FINAL WHERE rang_at IS NOT NULL",
    ),
    (
        "call devices terminated",
        "SELECT count() FROM call_device_events FINAL WHERE terminated_at IS NOT NULL",
    ),
    ("calls ended", "SELECT count() FROM call_ends FINAL"),
    ("messages", "SELECT count() FROM messages FINAL"),
    (
        "message devices 503",
        "SELECT count() FROM message_device_responses FINAL WHERE last_status = 503",
    ),
    (
        "message devices 200",
        "SELECT count() FROM message_device_responses FINAL WHERE last_status = 200",
    ),
];

fn env(name: &str) -> anyhow::Result<String> {
    std::env::var(name)
        .with_context(|| format!("{name} is not set (benches/run.sh starts the services)"))
}

fn start(binary: &Path, command: &str, settings: &[(&str, String)]) -> anyhow::Result<Server> {
    let addr = process::free_addr()?;
    let mut env = settings.to_vec();
    env.push(("FLEXIAPI_LISTEN", addr.to_string()));
    env.push(("RUST_LOG", "warn".to_owned()));
    process::start(SERVER_CORE, binary, &[command], &env, addr)
}

/// Posts one call every 100 ms on its own connection while the load runs, and times each from its 200
/// to the moment ClickHouse returns its row. One poller asks for every outstanding probe in one query every
/// 20 ms: a poll per probe every few ms was hundreds of queries a second, which kept ClickHouse busy and
/// slowed the very pipeline being measured.
async fn probe_lag(
    ingest: SocketAddr,
    key: String,
    clickhouse: &str,
    database: &str,
    until: Instant,
) -> anyhow::Result<Histogram<u64>> {
    let (probes, mut posted) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
    let poster = tokio::spawn(async move {
        let mut connection = Connection::open(ingest).await?;
        let mut bytes = Vec::new();
        let mut n = 0u64;
        while Instant::now() < until {
            n += 1;
            let id = format!("f{n:063x}");
            let body = format!(
                r#"{{"conference_id":null,"devices":{{}},"ended_at":null,"from":"probe@{DOMAIN}","id":"{id}","initiated_at":"2026-08-20T10:00:00Z","sip_call_id":"p{n}","to":"mike@{DOMAIN}"}}"#
            );
            request(
                "POST",
                HOST,
                "/api/stats/calls",
                &format!("x-api-key: {key}\r\n"),
                &body,
                &mut bytes,
            );
            let status = connection.exchange(&bytes).await?.status;
            let acked = Instant::now();
            if status != 200 {
                bail!("probe call answered {status}");
            }
            let _ = probes.send((id, acked));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok::<_, anyhow::Error>(())
    });
    let mut db = ClickHouse::open(clickhouse, database).await?;
    let mut lag = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
    let mut outstanding: HashMap<String, Instant> = HashMap::new();
    let mut posting = true;
    while posting || !outstanding.is_empty() {
        loop {
            match posted.try_recv() {
                Ok((id, acked)) => {
                    outstanding.insert(id, acked);
                }
                Err(tokio::sync::mpsc::error::TryRecvError::Empty) => break,
                Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => {
                    posting = false;
                    break;
                }
            }
        }
        if !outstanding.is_empty() {
            let ids: Vec<String> = outstanding.keys().map(|id| format!("'{id}'")).collect();
            let found = db
                .query(&format!(
                    "SELECT id FROM calls WHERE id IN ({})",
                    ids.join(",")
                ))
                .await?;
            let now = Instant::now();
            for id in found.lines() {
                if let Some(acked) = outstanding.remove(id.trim()) {
                    lag.record((now - acked).as_micros() as u64)?;
                }
            }
            if let Some(oldest) = outstanding.values().min() {
                if oldest.elapsed() > Duration::from_secs(60) {
                    bail!("{} probe calls not queryable after 60 s", outstanding.len());
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    poster.await??;
    Ok(lag)
}

/// The scale-mode benchmark; `ceiling` is the embedded benchmark's ceiling run.
pub async fn run(common: &Common, ceiling: &Report, tansu: Option<&Path>) -> anyhow::Result<()> {
    let binary = process::flexiapi_binary(common.flexiapi.clone())?;
    // The test broker keeps its log in S3 (a local moto server, in Python): durable but slow. With
    // `--tansu`, a broker with memory storage of our own measures flexiapi rather than moto.
    let (_broker, brokers) = match tansu {
        Some(tansu) => {
            let addr = process::free_addr()?;
            let url = format!("tcp://{addr}");
            let broker = process::start_unpinned(
                tansu,
                &[
                    "broker",
                    "--listener-url",
                    &url,
                    "--advertised-listener-url",
                    &url,
                    "--storage-engine",
                    "memory://tansu/",
                ],
                addr,
            )?;
            println!("broker: Tansu with memory storage on {addr}");
            (Some(broker), addr.to_string())
        }
        None => {
            println!("broker: the test Tansu (S3 storage on moto)");
            (None, env("FLEXIAPI_TEST_KAFKA_BROKERS")?)
        }
    };
    let clickhouse = env("FLEXIAPI_TEST_CLICKHOUSE_URL")?;
    let tag = format!(
        "{}_{}",
        std::process::id(),
        Instant::now().elapsed().as_nanos()
    );
    let database = format!("bench_{tag}");
    let db = TestDb::new(Engine::Sqlite).await;
    let key = crate::prepare_on(&binary, &db).await?;
    let settings = vec![
        ("FLEXIAPI_DATABASE_URL", db.url.clone()),
        ("FLEXIAPI_KAFKA_BROKERS", brokers),
        ("FLEXIAPI_KAFKA_TOPIC", format!("bench-{tag}")),
        ("FLEXIAPI_KAFKA_GROUP", format!("bench-{tag}")),
        ("FLEXIAPI_CLICKHOUSE_URL", clickhouse.clone()),
        ("FLEXIAPI_CLICKHOUSE_DATABASE", database.clone()),
    ];
    let mut migrate = std::process::Command::new(&binary);
    migrate.arg("migrate");
    for (name, value) in &settings {
        migrate.env(name, value);
    }
    if !migrate.status()?.success() {
        bail!("flexiapi migrate (ClickHouse schema) failed");
    }

    println!("== scale mode: flexiapi ingest → Kafka (Tansu) → flexiapi sink → ClickHouse");
    let ingest = start(&binary, "ingest", &settings)?;
    let mut acked = mix::Acked::default();
    let mix = |tag: u32, key: &str| mix::scripts(100 + tag, HOST, key, DOMAIN, true);
    let warm = load::run(ingest.addr, crate::plan(common, 2, None), mix(1, &key)).await;
    acked.add(&warm);
    let max = load::run(
        ingest.addr,
        crate::plan(common, common.seconds, None),
        mix(2, &key),
    )
    .await;
    acked.add(&max);
    println!("flexiapi ingest, max rate:  {}", max.line());
    print_errors(&max);
    println!("  ratio to ceiling: {:.2}", max.rate() / ceiling.rate());

    // Sink throughput on the backlog the runs left in Kafka (timed from its first row: the first
    // consumer-group join on Tansu alone takes ~20 s).
    let backlog = warm.ok + max.ok;
    let mut ch = ClickHouse::open(&clickhouse, &database).await?;
    // The sink runs on the load generator's core (inherited), like the broker: beside the ingest it would
    // only measure their contention.
    let sink = {
        let addr = process::free_addr()?;
        let mut env = settings.clone();
        env.push(("FLEXIAPI_LISTEN", addr.to_string()));
        env.push(("RUST_LOG", "warn".to_owned()));
        process::start_unpinned_env(&binary, &["sink"], &env, addr)?
    };
    let deadline = Instant::now() + Duration::from_secs(300);
    let (mut first, mut first_rows) = (None, 0);
    loop {
        let rows = ch.number(ALL_ROWS).await?;
        if rows > 0 && first.is_none() {
            first = Some(Instant::now());
            first_rows = rows;
        }
        if rows >= backlog {
            break;
        }
        if Instant::now() > deadline {
            bail!("the sink wrote {rows} of {backlog} rows in 300 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = first.map_or(Duration::ZERO, |t| t.elapsed());
    println!(
        "flexiapi sink: {backlog} rows; after its first batch ({first_rows} rows), {} rows in {:.2} s = {:.0} rows/s",
        backlog - first_rows,
        took.as_secs_f64(),
        (backlog - first_rows) as f64 / took.as_secs_f64().max(1e-3)
    );

    // Lag at half the maximum rate, the sink running.
    let until = Instant::now() + Duration::from_secs(common.seconds);
    let (half, lag) = tokio::join!(
        load::run(
            ingest.addr,
            crate::plan(common, common.seconds, Some(max.rate() / 2.0)),
            mix(3, &key)
        ),
        probe_lag(ingest.addr, key.clone(), &clickhouse, &database, until)
    );
    acked.add(&half);
    let lag = lag?;
    println!("flexiapi ingest, half rate: {}", half.line());
    print_errors(&half);
    println!(
        "  acknowledged → queryable in ClickHouse: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms ({} probes)",
        lag.value_at_quantile(0.5) as f64 / 1000.0,
        lag.value_at_quantile(0.99) as f64 / 1000.0,
        lag.max() as f64 / 1000.0,
        lag.len()
    );
    println!(
        "  peak RSS: ingest {:.1} MiB, sink {:.1} MiB",
        ingest.peak_rss_mib()?,
        sink.peak_rss_mib()?
    );

    // Everything acknowledged, exactly once (the probes are calls too).
    acked.bump("calls", lag.len());
    let total = acked.total();
    let deadline = Instant::now() + Duration::from_secs(120);
    while ch.number(ALL_ROWS).await? < total && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    ingest.stop()?;
    sink.stop()?;
    let mut stored = Vec::new();
    for (counter, sql) in STORED {
        stored.push((counter, ch.number(sql).await?));
    }
    let check = acked.check(&stored, "in ClickHouse");
    println!(
        "  events acknowledged {}, in ClickHouse {} (deduplicated): lost {}, doubled {}",
        check.acknowledged, check.stored, check.lost, check.doubled
    );
    ch.query(&format!("DROP DATABASE {database}")).await?;
    Ok(())
}
