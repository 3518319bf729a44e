//! Scale mode end to end on the real Tansu broker and ClickHouse: Kafka log statuses, sink into ClickHouse,
//! the ClickHouse reads, a full replay showing no duplicate, the index rebuilt by a new ingest.

mod scale_support;

use std::time::Duration;

use flexiapi_ingest::clickhouse::{self, ClickHouseReader};
use flexiapi_ingest::event::Event;
use flexiapi_ingest::kafka::KafkaLog;
use flexiapi_ingest::{EventLog, Outcome, StatsReader};
use scale_support::*;

/// Runs the sink of `config` until the tables show `expected`; returns what they showed.
async fn sink_until(config: &flexiapi_core::Config, expected: &Counts) -> Counts {
    let client = clickhouse::client(config).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let sink_config = config.clone();
    let sink = tokio::spawn(async move {
        flexiapi_ingest::sink::run(&sink_config, async {
            let _ = stopped.await;
        })
        .await
    });
    let seen = wait_for_counts(&client, expected, Duration::from_secs(180)).await;
    let _ = stop.send(());
    sink.await.unwrap().unwrap();
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_flow_to_clickhouse_exactly_once_and_statuses_follow_the_log() {
    let config = config(&[]);
    clickhouse::migrate(&config).await.unwrap();
    // Applying the schema again is a no-op.
    clickhouse::migrate(&config).await.unwrap();

    let log = KafkaLog::start(&config).await.unwrap();
    // A device update before its call: 400-style outcome, but kept.
    let early = Event::CallDeviceUpdated {
        call_id: "call000000".into(),
        device_id: "\"<urn:uuid:d2>\"".into(),
        rang_at: Some(T0 + 2),
        invite_terminated: None,
    };
    assert_eq!(
        log.append(early.clone()).await.unwrap(),
        Outcome::UnknownParent
    );
    let mut events = vec![early];
    for n in 0..40 {
        for (i, event) in call_events(n).into_iter().enumerate() {
            let outcome = log.append(event.clone()).await.unwrap();
            match i {
                0 => assert_eq!(outcome, Outcome::Created),
                1 => assert!(
                    matches!(outcome, Outcome::Upserted { created: true, .. }),
                    "{outcome:?}"
                ),
                2 => assert!(
                    matches!(outcome, Outcome::Upserted { created: false, .. }),
                    "{outcome:?}"
                ),
                _ => match outcome {
                    Outcome::Ended(call) => {
                        let devices = call["devices"].as_array().unwrap();
                        assert_eq!(devices.len(), 2, "{call}");
                        assert_eq!(call["sip_call_id"], format!("sip-{n}@host"));
                    }
                    other => panic!("{other:?}"),
                },
            }
            events.push(event);
        }
    }
    for n in 0..30 {
        for event in message_events(n) {
            log.append(event.clone()).await.unwrap();
            events.push(event);
        }
    }
    for n in 0..3 {
        for event in conference_events(n) {
            log.append(event.clone()).await.unwrap();
            events.push(event);
        }
    }
    // Two POSTs of one new call at once: the first to reach the index is appended, the other is refused
    // before it reaches the log (were both appended, the refused one, later in the log, would be the call
    // ClickHouse keeps).
    let racing = |racer: &str| {
        let mut event = call_events(40).remove(0);
        if let Event::CallCreated { from, .. } = &mut event {
            *from = who(racer);
        }
        event
    };
    let (one, two) = (racing("racer1@a.example"), racing("racer2@a.example"));
    let (first, second) = tokio::join!(log.append(one.clone()), log.append(two.clone()));
    let (winner, loser) = match (first.unwrap(), second.unwrap()) {
        (Outcome::Created, Outcome::Duplicate) => ("racer1@a.example", "racer2@a.example"),
        (Outcome::Duplicate, Outcome::Created) => ("racer2@a.example", "racer1@a.example"),
        other => panic!("two POSTs of one call answered {other:?}"),
    };
    events.push(if winner == "racer1@a.example" {
        one
    } else {
        two
    });
    // A second POST of a known call is refused and not appended.
    assert_eq!(
        log.append(call_events(1).remove(0)).await.unwrap(),
        Outcome::Duplicate
    );
    assert_eq!(
        log.append(Event::CallEnded {
            call_id: "nobody".into(),
            ended_at: T0
        })
        .await
        .unwrap(),
        Outcome::NotFound
    );
    events.push(Event::CallEnded {
        call_id: "nobody".into(),
        ended_at: T0,
    });
    log.shutdown().await;

    let expected = Counts::of(&events);
    assert_eq!(sink_until(&config, &expected).await, expected);

    // The reads: caller0 made calls 0, 5, 10, … (8 of 40), newest first, devices merged per device.
    let reader = ClickHouseReader::new(clickhouse::client(&config).unwrap());
    let page = reader
        .calls(&who("caller0@a.example"), 0, 30)
        .await
        .unwrap();
    assert_eq!(page.total, 8);
    assert_eq!(page.items[0]["id"], "call000035");
    let first = reader
        .calls(&who("caller0@a.example"), 7, 30)
        .await
        .unwrap();
    let call0 = &first.items[0];
    assert_eq!(call0["id"], "call000000");
    assert_eq!(call0["ended_at"], "2026-01-01T00:01:00.000000Z");
    let devices = call0["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 2, "{call0}");
    let d1 = devices
        .iter()
        .find(|d| d["device_id"] == "\"<urn:uuid:d1>\"")
        .unwrap();
    // Rang then terminated: both fields kept (only present fields change).
    assert_eq!(d1["rang_at"], "2026-01-01T00:00:01.000000Z");
    assert_eq!(d1["invite_terminated_state"], "accepted");
    assert_eq!(d1["invite_terminated_at"], "2026-01-01 00:00:03");
    let d2 = devices
        .iter()
        .find(|d| d["device_id"] == "\"<urn:uuid:d2>\"")
        .unwrap();
    assert_eq!(d2["rang_at"], "2026-01-01T00:00:02.000000Z");

    let messages = reader
        .messages(&who("callee0@b.example"), 0, 100)
        .await
        .unwrap();
    assert_eq!(messages.total, 10);
    let m = &messages.items[0];
    assert_eq!(m["id"], "msg000027");
    assert_eq!(m["to"]["callee0@b.example"]["d1"]["last_status"], 200);
    assert_eq!(m["to"]["callee0@b.example"]["d2"]["last_status"], 200);

    // The racing POSTs: the call stored is the one answered 200.
    assert_eq!(reader.calls(&who(winner), 0, 30).await.unwrap().total, 1);
    assert_eq!(reader.calls(&who(loser), 0, 30).await.unwrap().total, 0);

    let conference = reader.conference("conf0001").await.unwrap().unwrap();
    assert_eq!(
        conference["participant_events"].as_array().unwrap().len(),
        2
    );
    assert_eq!(conference["participant_device_events"][0]["type"], "joined");
    assert_eq!(conference["ended_at"], "2026-01-01T00:10:01.000000Z");
    assert!(reader.conference("none").await.unwrap().is_none());

    // A new consumer group replays the whole topic: twice the rows, still each event once in every read.
    let client = clickhouse::client(&config).unwrap();
    let before = raw_rows(&client).await;
    let mut replay = config.clone();
    replay.kafka_group = format!("{}_replay", config.kafka_group);
    assert_eq!(sink_until(&replay, &expected).await, expected);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while raw_rows(&client).await < 2 * before && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(raw_rows(&client).await >= 2 * before || counts(&client).await == expected);
    assert_eq!(counts(&client).await, expected);
    let again = reader
        .calls(&who("caller0@a.example"), 0, 30)
        .await
        .unwrap();
    assert_eq!(again.total, 8);
    assert_eq!(again.items, page.items);

    // A new ingest rebuilds its index from the topic: same statuses as the first one.
    let log = KafkaLog::start(&config).await.unwrap();
    assert_eq!(
        log.append(call_events(3).remove(0)).await.unwrap(),
        Outcome::Duplicate
    );
    let update = call_events(3).remove(1);
    assert!(matches!(
        log.append(update).await.unwrap(),
        Outcome::Upserted { created: false, .. }
    ));
    log.shutdown().await;
}
