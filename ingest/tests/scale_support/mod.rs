//! Shared by the scale-mode tests: configuration on the real services started by scripts/services.sh
//! (Tansu Kafka broker, ClickHouse), a fresh topic / group / database per test, a workload of events and
//! the exactly-once checks.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use flexiapi_core::config::Source;
use flexiapi_core::Config;
use flexiapi_ingest::event::{
    DeviceResponse, Envelope, Event, Identity, InviteTerminated, TerminatedState,
};

/// A service address the test script exports; tests fail loudly without it (run them with scripts/test.sh).
pub fn service(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run the tests with scripts/test.sh"))
}

/// A unique suffix for topics, groups and databases.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

/// A scale-mode configuration on a fresh topic, group and ClickHouse database.
pub fn config(extra: &[(&str, &str)]) -> Config {
    let name = unique("scale");
    let mut pairs: Vec<(String, String)> = vec![
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
        ("FLEXIAPI_CLICKHOUSE_DATABASE".into(), name),
        ("FLEXIAPI_SINK_BATCH_MAX".into(), "500".into()),
        ("FLEXIAPI_SINK_BATCH_MS".into(), "200".into()),
    ];
    for (k, v) in extra {
        pairs.retain(|(key, _)| key != k);
        pairs.push(((*k).into(), (*v).into()));
    }
    Config::from_source(&Source::from_pairs(pairs)).expect("valid test configuration")
}

/// The configuration as environment pairs, for a child process.
pub fn env_of(config: &Config) -> Vec<(String, String)> {
    vec![
        (
            "FLEXIAPI_KAFKA_BROKERS".into(),
            config.kafka_brokers.clone().unwrap(),
        ),
        ("FLEXIAPI_KAFKA_TOPIC".into(), config.kafka_topic.clone()),
        ("FLEXIAPI_KAFKA_GROUP".into(), config.kafka_group.clone()),
        (
            "FLEXIAPI_KAFKA_PARTITIONS".into(),
            config.scale.kafka_partitions.to_string(),
        ),
        (
            "FLEXIAPI_CLICKHOUSE_URL".into(),
            config.clickhouse_url.clone().unwrap(),
        ),
        (
            "FLEXIAPI_CLICKHOUSE_DATABASE".into(),
            config.clickhouse_database.clone(),
        ),
        (
            "FLEXIAPI_SINK_BATCH_MAX".into(),
            config.scale.sink_batch_max.to_string(),
        ),
        (
            "FLEXIAPI_SINK_BATCH_MS".into(),
            config.scale.sink_batch_time.as_millis().to_string(),
        ),
    ]
}

pub fn who(text: &str) -> Identity {
    Identity::parse(text).unwrap()
}

pub const T0: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

/// The events of call `n`: created (two forked devices), d1 rang, d2 accepted_elsewhere / d1 accepted (or
/// declined / canceled / error by n % 4), ended.
pub fn call_events(n: usize) -> Vec<Event> {
    let id = format!("call{n:06}");
    let start = T0 + n as i64 * 7;
    let state = match n % 4 {
        0 => TerminatedState::Accepted,
        1 => TerminatedState::Declined,
        2 => TerminatedState::Canceled,
        _ => TerminatedState::Error,
    };
    let devices: BTreeMap<String, Option<serde_json::Value>> = [
        ("\"<urn:uuid:d1>\"".to_owned(), None),
        ("\"<urn:uuid:d2>\"".to_owned(), None),
    ]
    .into_iter()
    .collect();
    vec![
        Event::CallCreated {
            id: id.clone(),
            from: who(&format!("caller{}@a.example", n % 5)),
            to: who(&format!("callee{}@b.example", n % 3)),
            initiated_at: start,
            ended_at: None,
            conference_id: None,
            sip_call_id: Some(format!("sip-{n}@host")),
            devices,
        },
        Event::CallDeviceUpdated {
            call_id: id.clone(),
            device_id: "\"<urn:uuid:d1>\"".into(),
            rang_at: Some(start + 1),
            invite_terminated: None,
        },
        Event::CallDeviceUpdated {
            call_id: id.clone(),
            device_id: "\"<urn:uuid:d1>\"".into(),
            rang_at: None,
            invite_terminated: Some(InviteTerminated {
                at: start + 3,
                state,
            }),
        },
        Event::CallEnded {
            call_id: id,
            ended_at: start + 60,
        },
    ]
}

/// The events of message `n`: created for two devices of one recipient, both devices answer.
pub fn message_events(n: usize) -> Vec<Event> {
    let id = format!("msg{n:06}");
    let to = format!("callee{}@b.example", n % 3);
    let mut devices = BTreeMap::new();
    devices.insert("d1".to_owned(), None);
    devices.insert("d2".to_owned(), None);
    vec![
        Event::MessageCreated {
            id: id.clone(),
            from: who(&format!("caller{}@a.example", n % 5)),
            sent_at: T0 + n as i64,
            encrypted: false,
            conference_id: None,
            to: [(to.clone(), devices)].into_iter().collect(),
        },
        Event::MessageDeviceResponded {
            message_id: id.clone(),
            to: who(&to),
            device_id: "d1".into(),
            response: DeviceResponse {
                last_status: 200,
                received_at: T0 + n as i64 + 1,
            },
        },
        Event::MessageDeviceResponded {
            message_id: id,
            to: who(&to),
            device_id: "d2".into(),
            response: DeviceResponse {
                last_status: if n.is_multiple_of(2) { 503 } else { 200 },
                received_at: T0 + n as i64 + 2,
            },
        },
    ]
}

/// The events of conference `n`: created, two participants added, a device joined, ended.
pub fn conference_events(n: usize) -> Vec<Event> {
    use flexiapi_ingest::event::{ParticipantDeviceEventType, ParticipantEventType};
    let id = format!("conf{n:04}");
    vec![
        Event::ConferenceCreated {
            id: id.clone(),
            created_at: T0 + n as i64,
            ended_at: None,
            schedule: None,
        },
        Event::ParticipantEvent {
            conference_id: id.clone(),
            participant: who("caller1@a.example"),
            at: T0 + n as i64 + 1,
            event_type: ParticipantEventType::Added,
        },
        Event::ParticipantEvent {
            conference_id: id.clone(),
            participant: who("callee1@b.example"),
            at: T0 + n as i64 + 2,
            event_type: ParticipantEventType::Added,
        },
        Event::ParticipantDeviceEvent {
            conference_id: id.clone(),
            participant: who("callee1@b.example"),
            device_id: "d1".into(),
            at: T0 + n as i64 + 3,
            event_type: ParticipantDeviceEventType::Joined,
        },
        Event::ConferenceEnded {
            conference_id: id,
            ended_at: T0 + n as i64 + 600,
        },
    ]
}

/// Counts of distinct acknowledged events per ClickHouse table, as the tables must show them (FINAL).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub calls: u64,
    pub call_ends: u64,
    pub call_device_events: u64,
    pub messages: u64,
    pub message_device_responses: u64,
    pub conferences: u64,
    pub conference_ends: u64,
    pub participant_events: u64,
}

impl Counts {
    /// What `events` (each appended once) must produce.
    pub fn of(events: &[Event]) -> Counts {
        let mut c = Counts::default();
        for event in events {
            match event {
                Event::CallCreated { .. } => c.calls += 1,
                Event::CallEnded { .. } => c.call_ends += 1,
                Event::CallDeviceUpdated { .. } => c.call_device_events += 1,
                Event::MessageCreated { .. } => c.messages += 1,
                Event::MessageDeviceResponded { .. } => c.message_device_responses += 1,
                Event::ConferenceCreated { .. } => c.conferences += 1,
                Event::ConferenceEnded { .. } => c.conference_ends += 1,
                Event::ParticipantEvent { .. } | Event::ParticipantDeviceEvent { .. } => {
                    c.participant_events += 1
                }
            }
        }
        c
    }
}

/// The FINAL row count of every table.
pub async fn counts(client: &clickhouse::Client) -> Counts {
    let count = |table: &'static str| {
        let client = client.clone();
        async move {
            client
                .query(&format!("SELECT count() FROM {table} FINAL"))
                .fetch_one::<u64>()
                .await
                .unwrap_or(u64::MAX)
        }
    };
    Counts {
        calls: count("calls").await,
        call_ends: count("call_ends").await,
        call_device_events: count("call_device_events").await,
        messages: count("messages").await,
        message_device_responses: count("message_device_responses").await,
        conferences: count("conferences").await,
        conference_ends: count("conference_ends").await,
        participant_events: count("participant_events").await,
    }
}

/// Waits until the tables hold `expected` (generous deadline: the first consumer-group join on Tansu is slow);
/// returns the last counts seen.
pub async fn wait_for_counts(
    client: &clickhouse::Client,
    expected: &Counts,
    deadline: Duration,
) -> Counts {
    let until = tokio::time::Instant::now() + deadline;
    loop {
        let seen = counts(client).await;
        if &seen == expected || tokio::time::Instant::now() > until {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Every row of every table, without FINAL: more than the FINAL count means replayed copies exist.
pub async fn raw_rows(client: &clickhouse::Client) -> u64 {
    let mut total = 0;
    for table in [
        "calls",
        "call_ends",
        "call_device_events",
        "messages",
        "message_device_responses",
        "conferences",
        "conference_ends",
        "participant_events",
    ] {
        total += client
            .query(&format!("SELECT count() FROM {table}"))
            .fetch_one::<u64>()
            .await
            .unwrap();
    }
    total
}

/// Decodes an envelope (for child processes printing what they appended).
pub fn parse_envelope(text: &str) -> Envelope {
    serde_json::from_str(text).unwrap()
}
