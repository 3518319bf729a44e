//! What the end-to-end tests of the `flexiapi` binary share: a child server killed with the test, a free
//! loopback port, the administration commands.

use std::net::TcpListener;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// A `flexiapi` child process, killed (SIGKILL) when dropped.
pub struct Server {
    /// The process.
    pub child: Child,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// Whatever must live as long as the server (a temporary directory of keys, say).
    pub _keep: Option<tempfile::TempDir>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port nobody listens on.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `flexiapi <args>` on `database_url`, asserts it succeeded, returns its stdout as JSON (null if none).
pub fn cli(database_url: &str, args: &[&str]) -> serde_json::Value {
    let output = Command::new(env!("CARGO_BIN_EXE_flexiapi"))
        .args(args)
        .env("FLEXIAPI_DATABASE_URL", database_url)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or(serde_json::Value::Null)
}

/// Starts `flexiapi serve` on `database_url` and a free port, with the extra `env`, and waits until
/// `GET /api/ping` on `host` answers 200. `keep` lives as long as the server.
pub async fn serve(
    database_url: &str,
    host: &str,
    env: &[(&str, &str)],
    keep: Option<tempfile::TempDir>,
) -> Server {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_flexiapi"))
        .arg("serve")
        .env("FLEXIAPI_DATABASE_URL", database_url)
        .env("FLEXIAPI_LISTEN", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .spawn()
        .unwrap();
    let server = Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
        _keep: keep,
    };
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = client
            .get(format!("{}/api/ping", server.base))
            .header("Host", host)
            .send()
            .await;
        if answer.is_ok_and(|r| r.status() == 200) {
            return server;
        }
        assert!(Instant::now() < deadline, "server did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Creates the space `domain` served on `host` and an admin `username` (password `secret`) in it with
/// `flexiapi spaces create-update` and `flexiapi accounts create-admin`; returns what the latter printed.
pub fn space_with_admin(
    database_url: &str,
    domain: &str,
    host: &str,
    username: &str,
) -> serde_json::Value {
    cli(
        database_url,
        &["spaces", "create-update", domain, host, "Example"],
    );
    cli(
        database_url,
        &[
            "accounts",
            "create-admin",
            "--username",
            username,
            "--password",
            "secret",
            "--domain",
            domain,
        ],
    )
}
