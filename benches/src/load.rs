//! The load runner: N keep-alive connections, each running its own script of requests, either as fast as
//! answers come back (closed loop, for the maximum rate) or at a fixed rate (open loop, latency measured from
//! the moment each request was due, so a stalled server cannot hide its queueing).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::client::{Answer, Connection};

/// What a connection sends, and how it judges the answers.
pub trait Script: Send + 'static {
    /// Writes the next request into `out`.
    fn next(&mut self, out: &mut Vec<u8>);
    /// Judges the answer to the request last written.
    fn answered(&mut self, answer: &Answer<'_>) -> Verdict;
    /// Named counters of what was acknowledged (summed over connections).
    fn tally(&self) -> BTreeMap<&'static str, u64> {
        BTreeMap::new()
    }
}

/// What an answer was.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Verdict {
    /// The expected answer: counted and timed.
    Served,
    /// A step of the protocol (an authentication challenge): neither served nor an error.
    Handshake,
    /// Anything else.
    Wrong,
}

/// How to drive the load.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Concurrent connections.
    pub connections: usize,
    /// Measured time.
    pub duration: Duration,
    /// Requests per second over all connections; `None` = as fast as possible.
    pub rate: Option<f64>,
}

/// What a run measured.
pub struct Report {
    /// Answers judged right.
    pub ok: u64,
    /// Unexpected answers and transport errors.
    pub errors: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Latency in microseconds of every answered request.
    pub latency: Histogram<u64>,
    /// Scripts' counters, summed.
    pub tally: BTreeMap<&'static str, u64>,
    /// The first few errors, for the operator.
    pub first_errors: Vec<String>,
}

impl Report {
    /// Answered-right requests per second.
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    /// Latency quantile in milliseconds.
    pub fn ms(&self, quantile: f64) -> f64 {
        self.latency.value_at_quantile(quantile) as f64 / 1000.0
    }

    /// Adds the figures of another run (rates then cover both runs' time).
    pub fn merge(&mut self, other: Report) {
        self.ok += other.ok;
        self.errors += other.errors;
        self.elapsed += other.elapsed;
        let _ = self.latency.add(&other.latency);
        for (name, count) in other.tally {
            *self.tally.entry(name).or_default() += count;
        }
        let room = 5usize.saturating_sub(self.first_errors.len());
        self.first_errors
            .extend(other.first_errors.into_iter().take(room));
    }

    /// One line: rate, latency quantiles, errors.
    pub fn line(&self) -> String {
        format!(
            "{:>9.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms  p99.9 {:>6.2} ms  max {:>7.2} ms  ({} ok, {} errors)",
            self.rate(),
            self.ms(0.5),
            self.ms(0.99),
            self.ms(0.999),
            self.latency.max() as f64 / 1000.0,
            self.ok,
            self.errors
        )
    }
}

struct Outcome {
    ok: u64,
    errors: u64,
    latency: Histogram<u64>,
    tally: BTreeMap<&'static str, u64>,
    first_error: Option<String>,
}

fn histogram() -> Histogram<u64> {
    // 1 µs .. 60 s, 3 significant digits.
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds")
}

async fn drive(
    addr: SocketAddr,
    mut script: Box<dyn Script>,
    deadline: Instant,
    interval: Option<Duration>,
    phase: Duration,
) -> Outcome {
    let mut outcome = Outcome {
        ok: 0,
        errors: 0,
        latency: histogram(),
        tally: BTreeMap::new(),
        first_error: None,
    };
    let mut connection = match Connection::open(addr).await {
        Ok(connection) => connection,
        Err(error) => {
            outcome.errors += 1;
            outcome.first_error = Some(format!("connect: {error}"));
            return outcome;
        }
    };
    let mut request = Vec::with_capacity(2048);
    let mut due = Instant::now() + phase;
    loop {
        let started = match interval {
            Some(interval) => {
                due += interval;
                tokio::time::sleep_until(due.into()).await;
                due
            }
            None => Instant::now(),
        };
        if started >= deadline {
            break;
        }
        script.next(&mut request);
        match connection.exchange(&request).await {
            Ok(answer) => {
                let micros = started.elapsed().as_micros().max(1) as u64;
                let verdict = script.answered(&answer);
                if verdict == Verdict::Served {
                    let _ = outcome.latency.record(micros.min(60_000_000));
                    outcome.ok += 1;
                } else if verdict == Verdict::Wrong {
                    outcome.errors += 1;
                    if outcome.first_error.is_none() {
                        outcome.first_error = Some(format!(
                            "{} answered {}: {}",
                            String::from_utf8_lossy(
                                request.split(|b| *b == b'\r').next().unwrap_or(b"")
                            ),
                            answer.status,
                            String::from_utf8_lossy(&answer.body[..answer.body.len().min(200)])
                        ));
                    }
                }
            }
            Err(error) => {
                outcome.errors += 1;
                outcome
                    .first_error
                    .get_or_insert_with(|| format!("transport: {error}"));
                break;
            }
        }
    }
    outcome.tally = script.tally();
    outcome
}

/// Runs `plan` against `addr`; `script(i)` makes connection i's script.
pub async fn run(
    addr: SocketAddr,
    plan: Plan,
    script: impl Fn(usize) -> Box<dyn Script>,
) -> Report {
    let started = Instant::now();
    let deadline = started + plan.duration;
    let interval = plan
        .rate
        .map(|rate| Duration::from_secs_f64(plan.connections as f64 / rate));
    // Open loop: connection i starts i/n of an interval late, so that requests arrive evenly spread at the
    // aggregate rate. Started in phase, every connection would fire at the same instants: bursts of n requests
    // per interval, whose queueing the latency would then measure.
    let connections = plan.connections.max(1) as u32;
    let tasks: Vec<_> = (0..plan.connections)
        .map(|i| {
            let phase =
                interval.map_or(Duration::ZERO, |interval| interval * i as u32 / connections);
            tokio::spawn(drive(addr, script(i), deadline, interval, phase))
        })
        .collect();
    let mut report = Report {
        ok: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        latency: histogram(),
        tally: BTreeMap::new(),
        first_errors: Vec::new(),
    };
    for task in tasks {
        let outcome = task.await.expect("load task");
        report.ok += outcome.ok;
        report.errors += outcome.errors;
        let _ = report.latency.add(&outcome.latency);
        for (name, count) in outcome.tally {
            *report.tally.entry(name).or_default() += count;
        }
        if let Some(error) = outcome.first_error {
            if report.first_errors.len() < 5 {
                report.first_errors.push(error);
            }
        }
    }
    report.elapsed = started.elapsed();
    report
}
