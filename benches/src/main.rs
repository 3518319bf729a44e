//! `flexiapi-bench`: load benchmarks of flexiapi against a minimal hyper "ceiling" server on the same machine.
//!
//! Run through `benches/run.sh`, which builds in release mode and pins this load generator to core 1 while
//! every server under test runs pinned to core 0. Figures are printed, never asserted.

mod ceiling;
mod client;
mod load;
mod me;
mod mix;
mod paired;
mod process;
mod scale;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use flexiapi_core::testing::{Engine, TestDb};
use flexiapi_core::with_db;

use load::{Plan, Report, Script};
use process::Server;

const HOST: &str = "flexiapi.bench.test";
const DOMAIN: &str = "sip.bench.test";
const PASSWORD: &str = "bench-secret";
/// The core servers run on; the load generator is pinned to the other one by run.sh.
const SERVER_CORE: usize = 0;

#[derive(Parser)]
#[command(about = "Load benchmarks of flexiapi against a minimal hyper ceiling")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The ceiling server alone (started by the other commands).
    Ceiling {
        #[arg(long)]
        listen: SocketAddr,
    },
    /// Statistics ingest: the Flexisip call/message mix, embedded store.
    Ingest {
        #[command(flatten)]
        common: Common,
        /// Database engines to run on (PostgreSQL needs FLEXIAPI_TEST_POSTGRES_URL).
        #[arg(long, value_delimiter = ',', default_value = "sqlite")]
        engines: Vec<EngineArg>,
    },
    /// Scale mode: flexiapi ingest → Kafka → flexiapi sink → ClickHouse (needs FLEXIAPI_TEST_KAFKA_BROKERS
    /// and FLEXIAPI_TEST_CLICKHOUSE_URL).
    Scale {
        #[command(flatten)]
        common: Common,
        /// A `tansu` binary: run the broker with memory storage instead of the test broker.
        #[arg(long)]
        tansu: Option<PathBuf>,
    },
    /// Account API: GET /api/accounts/me with an API key and with DIGEST, on PostgreSQL.
    Api {
        #[command(flatten)]
        common: Common,
    },
}

#[derive(clap::Args, Clone)]
struct Common {
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Seconds per measured run.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// The flexiapi binary (default: next to this one).
    #[arg(long)]
    flexiapi: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum EngineArg {
    Sqlite,
    Postgres,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Ceiling { listen } => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(ceiling::serve(listen)),
        // One thread: the load generator keeps to the core it is pinned to.
        command => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(async move {
                match command {
                    Command::Ingest { common, engines } => ingest(common, engines).await,
                    Command::Api { common } => api(common).await,
                    Command::Scale { common, tansu } => {
                        let ceiling = ingest_ceiling(&common).await?;
                        scale::run(&common, &ceiling, tansu.as_deref()).await
                    }
                    Command::Ceiling { .. } => unreachable!(),
                }
            }),
    }
}

fn plan(common: &Common, seconds: u64, rate: Option<f64>) -> Plan {
    Plan {
        connections: common.connections,
        duration: Duration::from_secs(seconds),
        rate,
    }
}

/// Measured rounds of the paired ratio (`paired`).
const ROUNDS: u32 = 10;

/// The ceiling server, started on the server core.
fn start_ceiling() -> anyhow::Result<Server> {
    let addr = process::free_addr()?;
    let me = std::env::current_exe()?;
    let listen = addr.to_string();
    process::start(
        SERVER_CORE,
        &me,
        &["ceiling", "--listen", &listen],
        &[],
        addr,
    )
}

/// The paired rounds of `scripts` on `server` (on `connections`) against the ceiling on `common.connections`.
async fn paired_with_ceiling(
    common: &Common,
    ceiling: (&Server, paired::Scripts<'_>),
    server: (&Server, usize, paired::Scripts<'_>),
) -> paired::Paired {
    paired::measure(
        common.seconds,
        ROUNDS,
        paired::Side {
            addr: ceiling.0.addr,
            connections: common.connections,
            scripts: ceiling.1,
        },
        paired::Side {
            addr: server.0.addr,
            connections: server.1,
            scripts: server.2,
        },
    )
    .await
}

/// Runs `script` against a fresh ceiling server at full speed.
async fn ceiling_rate(
    common: &Common,
    script: impl Fn(usize) -> Box<dyn Script>,
) -> anyhow::Result<Report> {
    let server = start_ceiling()?;
    load::run(server.addr, plan(common, 2, None), &script).await;
    let report = load::run(server.addr, plan(common, common.seconds, None), &script).await;
    server.stop()?;
    Ok(report)
}

/// A fresh database with the bench space and an admin; returns it and the admin's API key.
async fn prepare(binary: &std::path::Path, engine: Engine) -> anyhow::Result<(TestDb, String)> {
    let db = TestDb::new(engine).await;
    let key = prepare_on(binary, &db).await?;
    Ok((db, key))
}

/// Creates the bench space and its admin in `db`; returns the admin's API key.
async fn prepare_on(binary: &std::path::Path, db: &TestDb) -> anyhow::Result<String> {
    process::flexiapi_cli(
        binary,
        &db.url,
        &["spaces", "create-update", DOMAIN, HOST, "Bench"],
    )?;
    let admin = process::flexiapi_cli(
        binary,
        &db.url,
        &[
            "accounts",
            "create-admin",
            "--username",
            "admin",
            "--password",
            PASSWORD,
            "--domain",
            DOMAIN,
        ],
    )?;
    let admin: serde_json::Value =
        serde_json::from_str(admin.trim()).context("create-admin output")?;
    Ok(admin["api_key"].as_str().context("api_key")?.to_owned())
}

/// The ceiling under the statistics mix.
async fn ingest_ceiling(common: &Common) -> anyhow::Result<Report> {
    let ceiling = ceiling_rate(common, mix::scripts(0, HOST, "k", DOMAIN, false)).await?;
    println!(
        "ceiling (hyper + serde_json, core {SERVER_CORE}): {}",
        ceiling.line()
    );
    print_errors(&ceiling);
    Ok(ceiling)
}

fn start_flexiapi(binary: &std::path::Path, db: &TestDb) -> anyhow::Result<Server> {
    let addr = process::free_addr()?;
    process::start(
        SERVER_CORE,
        binary,
        &["serve"],
        &[
            ("FLEXIAPI_DATABASE_URL", db.url.clone()),
            ("FLEXIAPI_LISTEN", addr.to_string()),
            ("RUST_LOG", "warn".to_owned()),
            // Every connection comes from 127.0.0.1 and opens with one DIGEST challenge (a 401, which the
            // failed-authentication limiter counts): 64 of them at once are a benchmark, not an attack.
            (
                "FLEXIAPI_AUTH_FAILURE_LIMIT_PER_MINUTE",
                "100000".to_owned(),
            ),
        ],
        addr,
    )
}

fn print_errors(report: &Report) {
    for error in &report.first_errors {
        println!("    ! {error}");
    }
}

async fn count(db: &TestDb, sql: &str) -> anyhow::Result<u64> {
    let n: i64 = with_db!(&db.db, pool => sqlx::query_scalar(sql).fetch_one(pool).await)?;
    Ok(n as u64)
}

/// What the database holds for each acknowledged counter of the mix.
const STORED: [(&str, &str); 7] = [
    ("calls", "SELECT COUNT(*) FROM statistics_calls"),
    (
        "call devices rang",
        "SELECT COUNT(*) FROM statistics_call_devices WHERE rang_at IS NOT NULL",
    ),
    (
        "call devices terminated",
        "SELECT COUNT(*) FROM statistics_call_devices WHERE invite_terminated_at IS NOT NULL",
    ),
    (
        "calls ended",
        "SELECT COUNT(*) FROM statistics_calls WHERE ended_at IS NOT NULL",
    ),
    ("messages", "SELECT COUNT(*) FROM statistics_messages"),
    (
        "message devices 503",
        "SELECT COUNT(*) FROM statistics_message_devices WHERE device_id LIKE '%-0002-4000-%'",
    ),
    (
        "message devices 200",
        "SELECT COUNT(*) FROM statistics_message_devices WHERE last_status = 200",
    ),
];

async fn ingest(common: Common, engines: Vec<EngineArg>) -> anyhow::Result<()> {
    let binary = process::flexiapi_binary(common.flexiapi.clone())?;
    println!(
        "== statistics ingest: call + message lifecycles, {} keep-alive connections, HTTP/1.1",
        common.connections
    );
    let ceiling = start_ceiling()?;
    let ceiling_scripts = |round: u32| -> paired::RoundScripts {
        Box::new(mix::scripts(round, HOST, "k", DOMAIN, false))
    };
    load::run(ceiling.addr, plan(&common, 2, None), ceiling_scripts(0)).await;

    for (run, engine) in engines.into_iter().enumerate() {
        let (engine, name) = match engine {
            EngineArg::Sqlite => (Engine::Sqlite, "SQLite"),
            EngineArg::Postgres => (Engine::Postgres, "PostgreSQL"),
        };
        let (db, key) = prepare(&binary, engine).await?;
        let server = start_flexiapi(&binary, &db)?;
        // Ids stay unique across runs and rounds: run × 0x100 + round (mix ids carry 4 hex digits of it).
        let base = 0x100 * (run as u32 + 1);
        let mut acked = mix::Acked::default();
        let mix = |tag: u32, key: &str| mix::scripts(base + tag, HOST, key, DOMAIN, true);
        let warm = load::run(server.addr, plan(&common, 2, None), mix(0xff, &key)).await;
        acked.add(&warm);
        let server_scripts = |round: u32| -> paired::RoundScripts { Box::new(mix(round, &key)) };
        let cpu_before = server.thread_cpu()?;
        let paired = paired_with_ceiling(
            &common,
            (&ceiling, &ceiling_scripts),
            (&server, common.connections, &server_scripts),
        )
        .await;
        acked.add(&paired.server);
        println!(
            "ceiling (hyper + serde_json, core {SERVER_CORE}), paired: {}",
            paired.ceiling.line()
        );
        print_errors(&paired.ceiling);
        let max = &paired.server;
        println!("flexiapi serve, {name}, max rate:  {}", max.line());
        print_errors(max);
        println!("  ratio to ceiling: {}", paired.ratio_line());
        let half = load::run(
            server.addr,
            plan(&common, common.seconds, Some(max.rate() / 2.0)),
            mix(0xfe, &key),
        )
        .await;
        acked.add(&half);
        println!("flexiapi serve, {name}, half rate: {}", half.line());
        print_errors(&half);
        println!("  peak RSS: {:.1} MiB", server.peak_rss_mib()?);
        // Where the server's core went, over the paired and half-rate runs (the ceiling's rounds cost the
        // server nothing): CPU of each server thread per event it answered.
        let (threads, total) = server
            .thread_cpu()?
            .per_event_since(&cpu_before, paired.server.ok + half.ok);
        let threads: Vec<String> = threads
            .iter()
            .map(|(name, us)| format!("{name} {us:.1}"))
            .collect();
        println!(
            "  server CPU per event: {total:.1} µs ({} µs)",
            threads.join(", ")
        );
        server.stop()?;
        let mut stored = Vec::new();
        for (counter, sql) in STORED {
            stored.push((counter, count(&db, sql).await?));
        }
        let check = acked.check(&stored, "stored");
        println!(
            "  events acknowledged {}, stored {}, lost {}",
            check.acknowledged, check.stored, check.lost
        );
    }
    ceiling.stop()?;
    Ok(())
}

async fn api(common: Common) -> anyhow::Result<()> {
    let binary = process::flexiapi_binary(common.flexiapi.clone())?;
    println!(
        "== account API: GET /api/accounts/me on PostgreSQL, {} keep-alive connections, HTTP/1.1",
        common.connections
    );
    let ceiling = start_ceiling()?;
    let ceiling_scripts =
        |_: u32| -> paired::RoundScripts { Box::new(|_| Box::new(me::ApiKey::new(HOST, "k"))) };
    let (db, key) = prepare(&binary, Engine::Postgres).await?;
    let server = start_flexiapi(&binary, &db)?;
    // DIGEST keeps the last 20 challenges per account and client IP (auth/src/digest.rs): the DIGEST run
    // uses at most 16 connections, all of one account from one IP, so none evicts another's nonce.
    // create-admin stores a SHA-256 hash only; MD5 differs only by the hash function.
    let digest_connections = common.connections.min(16);
    let api_key = |_: u32| -> paired::RoundScripts {
        let key = key.clone();
        Box::new(move |_| Box::new(me::ApiKey::new(HOST, &key)))
    };
    let digest = |_: u32| -> paired::RoundScripts {
        Box::new(|_| {
            Box::new(me::Digest::new(
                HOST,
                "admin",
                DOMAIN,
                PASSWORD,
                me::Algorithm::Sha256,
            ))
        })
    };
    let runs: [(&str, usize, paired::Scripts); 2] = [
        ("API key", common.connections, &api_key),
        ("DIGEST SHA-256", digest_connections, &digest),
    ];
    for (name, connections, scripts) in runs {
        load::run(ceiling.addr, plan(&common, 2, None), ceiling_scripts(0)).await;
        load::run(
            server.addr,
            Plan {
                connections,
                ..plan(&common, 2, None)
            },
            scripts(0),
        )
        .await;
        // The ceiling always runs on the API key's connections: the same ceiling for both ratios.
        let paired = paired_with_ceiling(
            &common,
            (&ceiling, &ceiling_scripts),
            (&server, connections, scripts),
        )
        .await;
        println!(
            "ceiling (hyper, core {SERVER_CORE}), paired: {}",
            paired.ceiling.line()
        );
        let report = &paired.server;
        println!("{name:>15} ({connections} connections): {}", report.line());
        if let Some(challenges) = report.tally.get("challenges") {
            println!("                 DIGEST challenges answered: {challenges}");
        }
        print_errors(report);
        println!("                 ratio to ceiling: {}", paired.ratio_line());
    }
    println!("  peak RSS: {:.1} MiB", server.peak_rss_mib()?);
    server.stop()?;
    ceiling.stop()?;
    Ok(())
}
