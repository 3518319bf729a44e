//! Server processes under test: started pinned to one core with `taskset`, waited for, measured (peak RSS
//! from /proc), stopped with SIGTERM.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// A running server.
pub struct Server {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

/// A free loopback address.
pub fn free_addr() -> anyhow::Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// `program args…` (a service the benchmark needs, not the server measured), on the cores this benchmark may
/// use: it inherits the load generator's affinity (core 1 under run.sh), never taking the server's core.
pub fn start_unpinned(program: &Path, args: &[&str], addr: SocketAddr) -> anyhow::Result<Server> {
    start_unpinned_env(program, args, &[], addr)
}

/// [`start_unpinned`] with environment variables.
pub fn start_unpinned_env(
    program: &Path,
    args: &[&str],
    env: &[(&str, String)],
    addr: SocketAddr,
) -> anyhow::Result<Server> {
    let child = Command::new(program)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", program.display()))?;
    wait_listening(Server { child, addr }, program)
}

/// `program args…` pinned to `core`, with `env`, listening on `addr`.
pub fn start(
    core: usize,
    program: &Path,
    args: &[&str],
    env: &[(&str, String)],
    addr: SocketAddr,
) -> anyhow::Result<Server> {
    let mut command = Command::new("taskset");
    command
        .arg("-c")
        .arg(core.to_string())
        .arg(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    for (name, value) in env {
        command.env(name, value);
    }
    let child = command
        .spawn()
        .with_context(|| format!("starting {} (is `taskset` installed?)", program.display()))?;
    wait_listening(Server { child, addr }, program)
}

fn wait_listening(mut server: Server, program: &Path) -> anyhow::Result<Server> {
    let addr = server.addr;
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(addr).is_err() {
        if let Some(status) = server.child.try_wait()? {
            bail!(
                "{} exited with {status} before listening",
                program.display()
            );
        }
        if Instant::now() > deadline {
            bail!("{} did not listen on {addr} within 60 s", program.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(server)
}

impl Server {
    /// Peak resident memory so far (VmHWM), in MiB.
    pub fn peak_rss_mib(&self) -> anyhow::Result<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let line = status
            .lines()
            .find(|line| line.starts_with("VmHWM:"))
            .context("no VmHWM in /proc status")?;
        let kib: f64 = line
            .split_whitespace()
            .nth(1)
            .context("VmHWM value")?
            .parse()?;
        Ok(kib / 1024.0)
    }

    /// CPU time (user + system) each thread name of the process has used so far, threads of the same name
    /// summed (from `/proc/<pid>/task/*/stat`).
    pub fn thread_cpu(&self) -> anyhow::Result<ThreadCpu> {
        let mut seconds = BTreeMap::new();
        let ticks = clock_ticks();
        for task in std::fs::read_dir(format!("/proc/{}/task", self.child.id()))? {
            // A thread may end between the listing and the read.
            let Ok(stat) = std::fs::read_to_string(task?.path().join("stat")) else {
                continue;
            };
            // `pid (comm) state …`: the name may hold spaces, the fields after it do not.
            let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
                continue;
            };
            let name = stat[open + 1..close].to_owned();
            let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
            // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
            let used: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
            *seconds.entry(name).or_insert(0.0) += used / ticks;
        }
        Ok(ThreadCpu(seconds))
    }

    /// SIGTERM, then wait (a graceful stop drains in-flight work).
    pub fn stop(mut self) -> anyhow::Result<()> {
        Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                self.child.kill()?;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `flexiapi` binary next to this one (same profile), or `path` when given.
pub fn flexiapi_binary(path: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let path = match path {
        Some(path) => path,
        None => std::env::current_exe()?.with_file_name("flexiapi"),
    };
    if !path.exists() {
        bail!(
            "{} not found: build it with `cargo build --release -p flexiapi`",
            path.display()
        );
    }
    Ok(path)
}

/// Runs a `flexiapi` administration command on `database_url`; returns its stdout.
pub fn flexiapi_cli(binary: &Path, database_url: &str, args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new(binary)
        .args(args)
        .env("FLEXIAPI_DATABASE_URL", database_url)
        .env("RUST_LOG", "warn")
        .output()?;
    if !output.status.success() {
        bail!(
            "flexiapi {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8(output.stdout)?)
}

/// CPU seconds used per thread name.
#[derive(Clone, Debug, Default)]
pub struct ThreadCpu(pub BTreeMap<String, f64>);

impl ThreadCpu {
    /// Microseconds of CPU per event between `earlier` and this snapshot, per thread name, busiest first
    /// (names under 0.1 µs left out), and their total.
    pub fn per_event_since(&self, earlier: &ThreadCpu, events: u64) -> (Vec<(String, f64)>, f64) {
        let mut each: Vec<(String, f64)> = self
            .0
            .iter()
            .map(|(name, now)| {
                let before = earlier.0.get(name).copied().unwrap_or(0.0);
                (name.clone(), (now - before) * 1e6 / events.max(1) as f64)
            })
            .collect();
        let total = each.iter().map(|(_, us)| us).sum();
        each.retain(|(_, us)| *us >= 0.1);
        each.sort_by(|a, b| b.1.total_cmp(&a.1));
        (each, total)
    }
}

/// Clock ticks per second of `/proc` CPU times (`getconf CLK_TCK`; 100 on Linux when it cannot be asked).
fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100.0)
}
