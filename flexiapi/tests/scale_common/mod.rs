//! Shared by the scale-mode tests of the binary: the real services of scripts/services.sh (Tansu, ClickHouse,
//! PostgreSQL), `flexiapi ingest` / `flexiapi sink` as child processes, HTTP helpers and the exactly-once
//! counts.
#![allow(dead_code)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Host of the test Space (the ingest picks the Space from it).
pub const HOST: &str = "flexiapi.example.org";
/// SIP domain of the test Space.
pub const DOMAIN: &str = "sip.example.org";

/// A service address the test script exports; the tests fail loudly without it.
pub fn service(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run the tests with scripts/test.sh (or source /tmp/flexiapi-test/env.sh)"))
}

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A unique name for topics, groups and databases.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}_{}_{nanos}", std::process::id())
}

/// One scale-mode deployment: a fresh topic, group, ClickHouse database and account database (SQLite file).
pub struct Scale {
    /// Environment every `flexiapi` process of the deployment gets.
    pub env: Vec<(String, String)>,
    /// ClickHouse database name.
    pub database: String,
    /// Admin API key (from `flexiapi accounts create-admin`).
    pub key: String,
    /// Admin account id.
    pub admin_id: i64,
    _dir: tempfile::TempDir,
}

impl Scale {
    /// Creates the deployment: account database with a Space and an admin, ClickHouse schema via `migrate`.
    pub fn new(extra: &[(&str, &str)]) -> Scale {
        let dir = tempfile::tempdir().unwrap();
        let name = unique("scale");
        let mut env: Vec<(String, String)> = vec![
            (
                "FLEXIAPI_DATABASE_URL".into(),
                format!("sqlite://{}/flexiapi.db", dir.path().display()),
            ),
            (
                "FLEXIAPI_KAFKA_BROKERS".into(),
                service("FLEXIAPI_TEST_KAFKA_BROKERS"),
            ),
            ("FLEXIAPI_KAFKA_TOPIC".into(), name.clone()),
            ("FLEXIAPI_KAFKA_GROUP".into(), format!("{name}_sink")),
            ("FLEXIAPI_KAFKA_PARTITIONS".into(), "3".into()),
            (
                "FLEXIAPI_CLICKHOUSE_URL".into(),
                service("FLEXIAPI_TEST_CLICKHOUSE_URL"),
            ),
            ("FLEXIAPI_CLICKHOUSE_DATABASE".into(), name.clone()),
            ("FLEXIAPI_SINK_BATCH_MAX".into(), "200".into()),
            ("FLEXIAPI_SINK_BATCH_MS".into(), "300".into()),
            ("FLEXIAPI_AUTH_CACHE_TTL_MS".into(), "60000".into()),
            ("RUST_LOG".into(), "warn".into()),
        ];
        for (k, v) in extra {
            env.retain(|(key, _)| key != k);
            env.push(((*k).into(), (*v).into()));
        }
        let mut scale = Scale {
            env,
            database: name,
            key: String::new(),
            admin_id: 0,
            _dir: dir,
        };
        let out = scale.cli(&["migrate"]);
        assert!(
            out.status.success(),
            "migrate: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = scale.cli(&["spaces", "create-update", DOMAIN, HOST, "Example"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = scale.cli(&[
            "accounts",
            "create-admin",
            "--username",
            "tony",
            "--password",
            "pw",
            "--domain",
            DOMAIN,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let admin: Value = serde_json::from_slice(&out.stdout).unwrap();
        scale.key = admin["api_key"].as_str().unwrap().to_owned();
        scale.admin_id = admin["id"].as_i64().unwrap();
        scale
    }

    /// Runs a one-shot `flexiapi` command with the deployment's environment.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_flexiapi"))
            .args(args)
            .envs(self.env.iter().cloned())
            .output()
            .unwrap()
    }

    /// Starts `flexiapi <command>` (ingest or sink) on a fresh port; `wait_ready` waits for `/metrics`.
    pub fn spawn(&self, command: &str) -> Proc {
        self.spawn_at(command, free_port())
    }

    /// Starts `flexiapi <command>` listening on `port` (a restart keeps its address).
    pub fn spawn_at(&self, command: &str, port: u16) -> Proc {
        let child = Command::new(env!("CARGO_BIN_EXE_flexiapi"))
            .arg(command)
            .envs(self.env.iter().cloned())
            .env("FLEXIAPI_LISTEN", format!("127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        Proc {
            child,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    /// ClickHouse (over its HTTP interface) on the deployment's database.
    pub fn clickhouse(&self) -> Ch {
        Ch {
            url: service("FLEXIAPI_TEST_CLICKHOUSE_URL"),
            database: self.database.clone(),
        }
    }
}

/// A `flexiapi` child process, killed (SIGKILL) when dropped.
pub struct Proc {
    /// The process.
    pub child: Child,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
}

impl Proc {
    /// Waits until `/metrics` answers (the ingest answers once its index is rebuilt).
    pub async fn wait_ready(&mut self, within: Duration) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + within;
        loop {
            if let Ok(r) = client.get(format!("{}/metrics", self.base)).send().await {
                if r.status() == 200 {
                    return;
                }
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("flexiapi exited early: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "{} did not answer in {within:?}",
                self.base
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for the exit (SIGKILL after `within`); true when it exited by itself.
    pub fn terminate(&mut self, within: Duration) -> bool {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill9();
        false
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.base))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Sends one statistics request to the ingest as the admin; returns (status, body).
pub async fn send(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    method: &str,
    path: &str,
    body: Value,
) -> (u16, String) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let response = client
        .request(method, format!("{base}{path}"))
        .header("Host", HOST)
        .header("x-api-key", key)
        .header("Accept", "application/json")
        .json(&body)
        .send()
        .await;
    match response {
        Ok(r) => {
            let status = r.status().as_u16();
            (status, r.text().await.unwrap_or_default())
        }
        Err(_) => (0, String::new()),
    }
}

/// RFC 3339 text of unix seconds.
pub fn at(seconds: i64) -> String {
    chrono::DateTime::from_timestamp(seconds, 0)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// A device id as Flexisip sends it, and as it sits percent-encoded in a path.
pub fn device(n: u32) -> (String, String) {
    let raw = format!("\"<urn:uuid:5d2c8f1e-7a1b-4c3d-9e8f-{n:012x}>\"");
    let path = raw
        .replace('"', "%22")
        .replace('<', "%3C")
        .replace('>', "%3E");
    (raw, path)
}

/// The POST body of a call from tony to `to` with devices 1 and 2.
pub fn call_body(id: &str, to: &str, initiated_at: i64) -> Value {
    json!({"id": id, "from": format!("tony@{DOMAIN}"), "to": to, "initiated_at": at(initiated_at),
           "ended_at": null, "conference_id": null, "sip_call_id": format!("sip-{id}"),
           "devices": {device(1).0: null, device(2).0: null}})
}

/// A unique event id (`<label>-<n>`, well under the 64-character limit).
pub fn event_id(label: &str, n: usize) -> String {
    format!("{label}-{n:08}")
}

/// ClickHouse through its HTTP interface (the binary's own client is not a dependency of the tests).
#[derive(Clone)]
pub struct Ch {
    /// Server URL.
    pub url: String,
    /// Database the queries run in.
    pub database: String,
}

impl Ch {
    /// Runs `sql`; Err with the server's message when it refuses, or when it is unreachable.
    pub async fn query(&self, sql: &str) -> Result<String, String> {
        let response = reqwest::Client::new()
            .post(format!("{}/?database={}", self.url, self.database))
            .body(sql.to_owned())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let ok = response.status().is_success();
        let text = response.text().await.map_err(|e| e.to_string())?;
        if ok {
            Ok(text)
        } else {
            Err(text)
        }
    }

    /// The one-number answer of `sql` (u64::MAX when ClickHouse does not answer).
    pub async fn number(&self, sql: &str) -> u64 {
        match self.query(sql).await {
            Ok(text) => text.trim().parse().unwrap_or(u64::MAX),
            Err(_) => u64::MAX,
        }
    }
}

/// `SELECT count() FROM <table> FINAL` (u64::MAX when ClickHouse does not answer).
pub async fn final_count(ch: &Ch, table: &str) -> u64 {
    ch.number(&format!("SELECT count() FROM {table} FINAL"))
        .await
}

/// Waits until `probe` returns `expected` or `within` elapses; returns the last value.
pub async fn wait_until<F, Fut>(within: Duration, expected: u64, mut probe: F) -> u64
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = u64>,
{
    let deadline = Instant::now() + within;
    loop {
        let seen = probe().await;
        if seen == expected || Instant::now() > deadline {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
