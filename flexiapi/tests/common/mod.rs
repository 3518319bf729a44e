//! What the end-to-end tests of the `flexiapi` binary share: a child server killed with the test, a free
//! loopback port, the administration commands.

use std::net::TcpListener;
use std::process::{Child, Command};

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
