//! The statistics mix Flexisip sends (shared/spec/stats.md §B5–B6), one lifecycle after another on each
//! connection so every entity's events go out in order, as the Flexisip ≥ 2.5 client sends them:
//! a call (POST with two forked devices, two ringing PATCHes, an `accepted_elsewhere` and an `accepted`
//! termination, the end PATCH) then a direct message (POST with a `to` map, a 200, a 503 then a 200 device
//! response): ten requests per cycle, unique ids, real-looking device ids.

use std::collections::BTreeMap;

use crate::client::{request, Answer};
use crate::load::{Script, Verdict};

/// The steps of one cycle, in order.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Step {
    CallPost,
    Rang(u8),
    Terminated(u8, &'static str),
    CallEnd,
    MessagePost,
    Delivered(u8, u16),
}

const CYCLE: [Step; 10] = [
    Step::CallPost,
    Step::Rang(1),
    Step::Rang(2),
    Step::Terminated(2, "accepted_elsewhere"),
    Step::Terminated(1, "accepted"),
    Step::CallEnd,
    Step::MessagePost,
    Step::Delivered(1, 200),
    Step::Delivered(2, 503),
    Step::Delivered(2, 200),
];

/// One connection's endless sequence of call and message lifecycles.
pub struct Mix {
    host: String,
    key: String,
    domain: String,
    /// Distinguishes runs and connections in every id.
    prefix: String,
    /// Stock hyper refuses `<`, `>` and `"` in paths: the ceiling gets them percent-encoded.
    raw_paths: bool,
    cycle: u64,
    step: usize,
    tally: BTreeMap<&'static str, u64>,
}

impl Mix {
    /// Connection `connection` of run `run`.
    pub fn new(
        run: u32,
        connection: usize,
        host: &str,
        key: &str,
        domain: &str,
        raw_paths: bool,
    ) -> Mix {
        Mix {
            host: host.to_owned(),
            key: key.to_owned(),
            domain: domain.to_owned(),
            prefix: format!("{run:04x}{connection:06x}"),
            raw_paths,
            cycle: 0,
            step: 0,
            tally: BTreeMap::new(),
        }
    }

    /// A 64-hex id like Flexisip's SHA-256 ids: kind digit, run+connection, cycle.
    fn id(&self, kind: u8) -> String {
        format!("{kind:x}{}{:053x}", self.prefix, self.cycle)
    }

    fn device(&self, n: u8) -> String {
        format!(
            "\"<urn:uuid:{}-{n:04x}-4000-8000-{:012x}>\"",
            &self.prefix[2..],
            self.cycle
        )
    }

    fn device_in_path(&self, n: u8) -> String {
        let device = self.device(n);
        if self.raw_paths {
            device
        } else {
            device
                .replace('"', "%22")
                .replace('<', "%3C")
                .replace('>', "%3E")
        }
    }

    fn at(&self, second: u64) -> String {
        let t = self.cycle * 7 + second;
        format!(
            "2026-08-20T{:02}:{:02}:{:02}Z",
            (t / 3600) % 24,
            (t / 60) % 60,
            t % 60
        )
    }
}

impl Script for Mix {
    fn next(&mut self, out: &mut Vec<u8>) {
        let key = format!("x-api-key: {}\r\n", self.key);
        let (tony, mike) = (
            format!("tony@{}", self.domain),
            format!("mike@{}", self.domain),
        );
        let (method, path, body) = match CYCLE[self.step] {
            Step::CallPost => (
                "POST",
                "/api/stats/calls".to_owned(),
                format!(
                    r#"{{"conference_id":null,"devices":{{{}:null,{}:null}},"ended_at":null,"from":"{tony}","id":"{}","initiated_at":"{}","sip_call_id":"{}@10.0.0.1","to":"{mike}"}}"#,
                    serde_json::Value::from(self.device(1)),
                    serde_json::Value::from(self.device(2)),
                    self.id(0xc),
                    self.at(0),
                    self.id(0xc)[..20].to_owned()
                ),
            ),
            Step::Rang(n) => (
                "PATCH",
                format!(
                    "/api/stats/calls/{}/devices/{}",
                    self.id(0xc),
                    self.device_in_path(n)
                ),
                format!(r#"{{"rang_at":"{}"}}"#, self.at(1)),
            ),
            Step::Terminated(n, state) => (
                "PATCH",
                format!(
                    "/api/stats/calls/{}/devices/{}",
                    self.id(0xc),
                    self.device_in_path(n)
                ),
                format!(
                    r#"{{"invite_terminated":{{"at":"{}","state":"{state}"}}}}"#,
                    self.at(2)
                ),
            ),
            Step::CallEnd => (
                "PATCH",
                format!("/api/stats/calls/{}", self.id(0xc)),
                format!(r#"{{"ended_at":"{}"}}"#, self.at(5)),
            ),
            Step::MessagePost => (
                "POST",
                "/api/stats/messages".to_owned(),
                format!(
                    r#"{{"conference_id":null,"encrypted":false,"from":"{tony}","id":"{}","sent_at":"{}","to":{{"{mike}":{{{}:null,{}:null}}}}}}"#,
                    self.id(0xa),
                    self.at(6),
                    serde_json::Value::from(self.device(1)),
                    serde_json::Value::from(self.device(2)),
                ),
            ),
            Step::Delivered(n, status) => (
                "PATCH",
                format!(
                    "/api/stats/messages/{}/to/{mike}/devices/{}",
                    self.id(0xa),
                    self.device_in_path(n)
                ),
                format!(
                    r#"{{"last_status":{status},"received_at":"{}"}}"#,
                    self.at(7)
                ),
            ),
        };
        request(method, &self.host, &path, &key, &body, out);
    }

    fn answered(&mut self, answer: &Answer<'_>) -> Verdict {
        let step = CYCLE[self.step];
        self.step += 1;
        if self.step == CYCLE.len() {
            self.step = 0;
            self.cycle += 1;
        }
        if !(200..300).contains(&answer.status) {
            return Verdict::Wrong;
        }
        let name = match step {
            Step::CallPost => "calls",
            Step::Rang(_) => "call devices rang",
            Step::Terminated(..) => "call devices terminated",
            Step::CallEnd => "calls ended",
            Step::MessagePost => "messages",
            Step::Delivered(_, 503) => "message devices 503",
            Step::Delivered(..) => "message devices 200",
        };
        *self.tally.entry(name).or_default() += 1;
        Verdict::Served
    }

    fn tally(&self) -> BTreeMap<&'static str, u64> {
        self.tally.clone()
    }
}

/// The scripts of one run, connection `i` getting its own ids.
pub fn scripts(
    run: u32,
    host: &str,
    key: &str,
    domain: &str,
    raw_paths: bool,
) -> impl Fn(usize) -> Box<dyn Script> {
    let (host, key, domain) = (host.to_owned(), key.to_owned(), domain.to_owned());
    move |i| Box::new(Mix::new(run, i, &host, &key, &domain, raw_paths))
}

/// What the mix got acknowledged, summed over runs, to hold against what was stored.
#[derive(Default)]
pub struct Acked(BTreeMap<&'static str, u64>);

/// Acknowledged against stored, over every counter.
pub struct Check {
    /// Events acknowledged.
    pub acknowledged: u64,
    /// Events found.
    pub stored: u64,
    /// Acknowledged but not found.
    pub lost: u64,
    /// Found more often than acknowledged.
    pub doubled: u64,
}

impl Acked {
    /// Adds a run's counters.
    pub fn add(&mut self, report: &crate::load::Report) {
        for (name, n) in &report.tally {
            *self.0.entry(name).or_default() += n;
        }
    }

    /// Adds `n` events to `counter` (acknowledged outside the runs).
    pub fn bump(&mut self, counter: &'static str, n: u64) {
        *self.0.entry(counter).or_default() += n;
    }

    /// Every acknowledged event.
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// Holds `stored` (counter, count) against the acknowledged counts, printing each difference.
    pub fn check(&self, stored: &[(&str, u64)], place: &str) -> Check {
        let mut check = Check {
            acknowledged: 0,
            stored: 0,
            lost: 0,
            doubled: 0,
        };
        for &(counter, s) in stored {
            let a = self.0.get(counter).copied().unwrap_or(0);
            check.acknowledged += a;
            check.stored += s;
            check.lost += a.saturating_sub(s);
            check.doubled += s.saturating_sub(a);
            if a != s {
                println!("  ! {counter}: acknowledged {a}, {place} {s}");
            }
        }
        check
    }
}
