//! Paired rounds: the server under test and the ceiling measured turn about, so that both see the same
//! machine. On a shared VM the speed of a core drifts by tens of percent from one minute to the next; a
//! ceiling measured once, before the server, makes the ratio as noisy as that drift.

use std::net::SocketAddr;
use std::time::Duration;

use crate::load::{self, Plan, Report, Script};

/// The scripts of one round: connection `i` gets `scripts(i)`.
pub type RoundScripts = Box<dyn Fn(usize) -> Box<dyn Script>>;

/// Makes the scripts of one round (`round` keeps the ids of different rounds apart).
pub type Scripts<'a> = &'a dyn Fn(u32) -> RoundScripts;

/// The figures of a paired measurement at full speed.
pub struct Paired {
    /// Every round of the server under test, merged.
    pub server: Report,
    /// Every round of the ceiling, merged.
    pub ceiling: Report,
    /// Server rate / ceiling rate, per round.
    pub ratios: Vec<f64>,
}

impl Paired {
    /// The median of the per-round ratios.
    pub fn ratio(&self) -> f64 {
        let mut sorted = self.ratios.clone();
        sorted.sort_by(f64::total_cmp);
        let middle = sorted.len() / 2;
        if sorted.len() % 2 == 1 {
            sorted[middle]
        } else {
            (sorted[middle - 1] + sorted[middle]) / 2.0
        }
    }

    /// `0.31 (median of 5 paired rounds, 0.27–0.35)`.
    pub fn ratio_line(&self) -> String {
        let low = self.ratios.iter().copied().fold(f64::INFINITY, f64::min);
        let high = self.ratios.iter().copied().fold(0.0, f64::max);
        format!(
            "{:.2} (median of {} paired rounds, {low:.2}–{high:.2})",
            self.ratio(),
            self.ratios.len()
        )
    }
}

/// One side of a pairing: where, on how many connections, with which scripts.
pub struct Side<'a> {
    /// The server's address.
    pub addr: SocketAddr,
    /// Concurrent keep-alive connections.
    pub connections: usize,
    /// The scripts of each round.
    pub scripts: Scripts<'a>,
}

/// `rounds` rounds of `seconds / rounds` each: the ceiling, then the server, both at full speed.
pub async fn measure(seconds: u64, rounds: u32, ceiling: Side<'_>, server: Side<'_>) -> Paired {
    let duration = Duration::from_secs_f64((seconds as f64 / rounds as f64).max(1.0));
    let plan = |connections| Plan {
        connections,
        duration,
        rate: None,
    };
    let mut paired: Option<Paired> = None;
    for round in 0..rounds {
        let on_ceiling = load::run(
            ceiling.addr,
            plan(ceiling.connections),
            (ceiling.scripts)(round),
        )
        .await;
        let on_server = load::run(
            server.addr,
            plan(server.connections),
            (server.scripts)(round),
        )
        .await;
        let ratio = on_server.rate() / on_ceiling.rate();
        match &mut paired {
            None => {
                paired = Some(Paired {
                    server: on_server,
                    ceiling: on_ceiling,
                    ratios: vec![ratio],
                })
            }
            Some(paired) => {
                paired.server.merge(on_server);
                paired.ceiling.merge(on_ceiling);
                paired.ratios.push(ratio);
            }
        }
    }
    paired.expect("at least one round")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_ratios(ratios: &[f64]) -> Paired {
        let empty = || Report {
            ok: 0,
            errors: 0,
            elapsed: Duration::ZERO,
            latency: hdrhistogram::Histogram::new(3).unwrap(),
            tally: Default::default(),
            first_errors: Vec::new(),
        };
        Paired {
            server: empty(),
            ceiling: empty(),
            ratios: ratios.to_vec(),
        }
    }

    #[test]
    fn the_ratio_is_the_median_round() {
        assert_eq!(with_ratios(&[0.4, 0.1, 0.3]).ratio(), 0.3);
        assert_eq!(with_ratios(&[0.4, 0.1, 0.3, 0.2]).ratio(), 0.25);
        assert_eq!(
            with_ratios(&[0.4, 0.1, 0.3]).ratio_line(),
            "0.30 (median of 3 paired rounds, 0.10–0.40)"
        );
    }
}
