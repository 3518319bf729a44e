//! The real client's transport, end to end: HTTP/2 over TLS (ALPN h2) through the project's transport, the
//! request sequences of shared/spec/stats.md §B5–B6 with raw `"<urn:uuid:…>"` device ids in the paths,
//! compact sorted-key bodies, Flexisip's exact headers, several ids in flight on one connection — and every
//! event found in the database afterwards, on SQLite and PostgreSQL.

mod common;

use common::*;
use flexiapi_core::testing::h2::RawH2;
use flexiapi_core::testing::tls::TestCertificate;
use flexiapi_core::testing::ENGINES;
use flexiapi_core::transport;
use serde_json::json;
use tokio::net::TcpListener;

/// One request as Flexisip sends it.
struct Step {
    method: &'static str,
    path: String,
    body: String,
    /// Status upstream-compatible behaviour gives.
    status: u16,
}

fn step(method: &'static str, path: String, body: impl Into<String>, status: u16) -> Step {
    Step {
        method,
        path,
        body: body.into(),
        status,
    }
}

/// The sequences of §B6, per resource id (the client serialises per id, ids run concurrently).
fn sequences() -> Vec<Vec<Step>> {
    let p = "/api/stats/";
    let (d1, d2) = (device(0xd1), device(0xd2));
    // 1-to-1 call, mike has d1 and d2, d1 answers.
    let call = event_id("b6-call");
    let one_to_one = vec![
        step(
            "POST",
            format!("{p}calls"),
            format!(
                r#"{{"conference_id":null,"devices":{{{d1:?}:null,{d2:?}:null}},"ended_at":null,"from":"tony@sip.example.org","id":"{call}","initiated_at":"2026-08-20T10:00:00Z","sip_call_id":"9mMpQk2uXh@10.0.0.1","to":"mike@sip.example.org"}}"#
            ),
            200,
        ),
        step(
            "PATCH",
            format!("{p}calls/{call}/devices/{d1}"),
            r#"{"rang_at":"2026-08-20T10:00:01Z"}"#,
            201,
        ),
        step(
            "PATCH",
            format!("{p}calls/{call}/devices/{d2}"),
            r#"{"rang_at":"2026-08-20T10:00:01Z"}"#,
            201,
        ),
        step(
            "PATCH",
            format!("{p}calls/{call}/devices/{d2}"),
            r#"{"invite_terminated":{"at":"2026-08-20T10:00:04Z","state":"accepted_elsewhere"}}"#,
            200,
        ),
        step(
            "PATCH",
            format!("{p}calls/{call}/devices/{d1}"),
            r#"{"invite_terminated":{"at":"2026-08-20T10:00:04Z","state":"accepted"}}"#,
            200,
        ),
        step(
            "PATCH",
            format!("{p}calls/{call}"),
            r#"{"ended_at":"2026-08-20T10:05:00Z"}"#,
            200,
        ),
    ];
    // A caller CANCEL: both branches canceled, a device gets two terminations (last one wins).
    let canceled = event_id("b6-canceled");
    let cancel = vec![
        step(
            "POST",
            format!("{p}calls"),
            format!(
                r#"{{"conference_id":null,"devices":{{{d1:?}:null}},"ended_at":null,"from":"mike@sip.example.org","id":"{canceled}","initiated_at":"2026-08-20T11:00:00Z","sip_call_id":"x~y.z","to":"tony@sip.example.org"}}"#
            ),
            200,
        ),
        step(
            "PATCH",
            format!("{p}calls/{canceled}/devices/{d1}"),
            r#"{"invite_terminated":{"at":"2026-08-20T11:00:09Z","state":"accepted_elsewhere"}}"#,
            201,
        ),
        step(
            "PATCH",
            format!("{p}calls/{canceled}/devices/{d1}"),
            r#"{"invite_terminated":{"at":"2026-08-20T11:00:10Z","state":"canceled"}}"#,
            200,
        ),
    ];
    // An INVITE without SDP is not logged, but its 180 and BYE are.
    let unlogged = event_id("b6-unlogged");
    let not_logged = vec![
        step(
            "PATCH",
            format!("{p}calls/{unlogged}/devices/{d2}"),
            r#"{"rang_at":"2026-08-20T12:00:01Z"}"#,
            400,
        ),
        step(
            "PATCH",
            format!("{p}calls/{unlogged}"),
            r#"{"ended_at":"2026-08-20T12:01:00Z"}"#,
            404,
        ),
    ];
    // Direct message: d1 online, d2 offline then delivered after it re-registers.
    let message = event_id("b6-message");
    let direct = vec![
        step(
            "POST",
            format!("{p}messages"),
            format!(
                r#"{{"conference_id":null,"encrypted":false,"from":"tony@sip.example.org","id":"{message}","sent_at":"2026-08-20T10:00:00Z","to":{{"mike@sip.example.org":{{{d1:?}:null,{d2:?}:null}}}}}}"#
            ),
            200,
        ),
        step(
            "PATCH",
            format!("{p}messages/{message}/to/mike@sip.example.org/devices/{d1}"),
            r#"{"last_status":200,"received_at":"2026-08-20T10:00:01Z"}"#,
            201,
        ),
        step(
            "PATCH",
            format!("{p}messages/{message}/to/mike@sip.example.org/devices/{d2}"),
            r#"{"last_status":503,"received_at":"2026-08-20T10:00:01Z"}"#,
            201,
        ),
        step(
            "PATCH",
            format!("{p}messages/{message}/to/mike@sip.example.org/devices/{d2}"),
            r#"{"last_status":200,"received_at":"2026-08-20T10:30:00Z"}"#,
            200,
        ),
    ];
    // Group chat: the message reaches the conference server, then participant receipts reuse its id.
    let group = event_id("b6-group");
    let group_chat = vec![
        step("POST", format!("{p}messages"), format!(
            r#"{{"conference_id":"chatroom-5x1","encrypted":false,"from":"tony@sip.example.org","id":"{group}","sent_at":"2026-08-20T13:00:00Z","to":{{}}}}"#), 200),
        step("PATCH", format!("{p}messages/{group}/to/mike@sip.example.org/devices/{d1}"), r#"{"last_status":200,"received_at":"2026-08-20T13:00:01Z"}"#, 201),
        step("PATCH", format!("{p}messages/{group}/to/+33612345678@sip.example.org/devices/fs-gen-Ab3_dE-9fGhIjKlMnOpQ"), r#"{"last_status":202,"received_at":"2026-08-20T13:00:02Z"}"#, 201),
    ];
    // Conference endpoints (§B5.6).
    let conference = vec![
        step(
            "POST",
            format!("{p}conferences"),
            r#"{"created_at":"2026-08-20T14:00:00Z","ended_at":null,"id":"5x1","schedule":null}"#,
            200,
        ),
        step(
            "POST",
            format!("{p}conferences/5x1/participants/tony@sip.example.org/events"),
            r#"{"at":"2026-08-20T14:00:01Z","type":"added"}"#,
            200,
        ),
        step(
            "POST",
            format!("{p}conferences/5x1/participants/tony@sip.example.org/devices/{d1}/events"),
            r#"{"at":"2026-08-20T14:00:02Z","type":"joined"}"#,
            200,
        ),
        step(
            "POST",
            format!("{p}conferences/5x1/participants/tony@sip.example.org/devices/{d1}/events"),
            r#"{"at":"2026-08-20T14:30:00Z","type":"left"}"#,
            200,
        ),
        step(
            "POST",
            format!("{p}conferences/5x1/participants/tony@sip.example.org/events"),
            r#"{"at":"2026-08-20T14:30:01Z","type":"left"}"#,
            200,
        ),
        step(
            "PATCH",
            format!("{p}conferences/5x1"),
            r#"{"ended_at":"2026-08-20T14:31:00Z"}"#,
            200,
        ),
    ];
    // Flexisip <= 2.4 (no per-id queue, `:authority` with :443): updates overtake the POST.
    let early = event_id("b6-early");
    let unordered = vec![
        step(
            "PATCH",
            format!("{p}calls/{early}/devices/{d2}"),
            r#"{"rang_at":"2026-08-20T15:00:01Z"}"#,
            400,
        ),
        step(
            "PATCH",
            format!("{p}calls/{early}/devices/{d2}"),
            r#"{"invite_terminated":{"at":"2026-08-20T15:00:03Z","state":"declined"}}"#,
            400,
        ),
        step(
            "POST",
            format!("{p}calls"),
            format!(
                r#"{{"conference_id":null,"devices":{{{d2:?}:null}},"ended_at":null,"from":"tony@sip.example.org","id":"{early}","initiated_at":"2026-08-20T15:00:00Z","to":"mike@sip.example.org"}}"#
            ),
            200,
        ),
    ];
    vec![
        one_to_one, cancel, not_logged, direct, group_chat, conference, unordered,
    ]
}

#[tokio::test]
async fn flexisip_sequences_over_http2_tls_are_all_stored() {
    for engine in ENGINES {
        let h = Harness::new(engine).await;
        let certificate = TestCertificate::generate();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let tls = transport::load_tls(&certificate.cert_path, &certificate.key_path).unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(transport::serve(
            listener,
            Some(tls),
            h.router.clone(),
            async {
                let _ = stopped.await;
            },
        ));

        // Flexisip offers exactly `h2` and speaks HTTP/2 on one connection.
        let stream = certificate.connect(addr, &[b"h2"]).await;
        let mut client = RawH2::handshake(stream).await.unwrap();
        let headers = [
            ("accept", "application/json"),
            ("x-api-key", h.admin_key.as_str()),
            ("content-type", "application/json"),
        ];
        let mut queues: Vec<std::collections::VecDeque<Step>> =
            sequences().into_iter().map(Into::into).collect();
        let mut sent = 0;
        // Round by round: the head of every id's queue is in flight at once; the next waits for its answer.
        while queues.iter().any(|q| !q.is_empty()) {
            let mut in_flight = Vec::new();
            for (index, queue) in queues.iter_mut().enumerate() {
                if let Some(step) = queue.pop_front() {
                    let authority = if index == 6 {
                        "sip.example.org:443"
                    } else {
                        "sip.example.org"
                    };
                    let id = client
                        .send(
                            step.method,
                            authority,
                            step.path.as_bytes(),
                            &headers,
                            step.body.as_bytes(),
                        )
                        .await
                        .unwrap();
                    in_flight.push((id, step));
                }
            }
            for (id, step) in in_flight {
                let response = client
                    .response(id)
                    .await
                    .unwrap_or_else(|e| panic!("{} {}: {e}", step.method, step.path));
                assert_eq!(
                    response.status,
                    step.status,
                    "{engine:?} {} {}: {}",
                    step.method,
                    step.path,
                    response.text()
                );
                sent += 1;
            }
        }
        assert_eq!(sent, 27);
        assert!(!client.saw_goaway());

        // Everything is stored.
        let (d1, d2) = (device(0xd1), device(0xd2));
        let call = h
            .admin(
                "GET",
                &format!("/api/accounts/{}/statistics/calls", h.tony_id),
                None,
            )
            .await
            .json();
        assert_eq!(call["total"], 3, "{call}");
        let calls = call["data"].as_array().unwrap();
        let by_id = |label: &str| {
            calls
                .iter()
                .find(|c| c["id"] == event_id(label).as_str())
                .unwrap()
                .clone()
        };
        let one = by_id("b6-call");
        assert_eq!(one["sip_call_id"], "9mMpQk2uXh@10.0.0.1");
        assert_eq!(one["ended_at"], "2026-08-20T10:05:00.000000Z");
        assert_eq!(one["devices"][0]["device_id"], d1.as_str());
        assert_eq!(one["devices"][0]["invite_terminated_state"], "accepted");
        assert_eq!(one["devices"][0]["rang_at"], "2026-08-20T10:00:01.000000Z");
        assert_eq!(one["devices"][1]["device_id"], d2.as_str());
        assert_eq!(
            one["devices"][1]["invite_terminated_state"],
            "accepted_elsewhere"
        );
        let cancel = by_id("b6-canceled");
        assert_eq!(
            cancel["devices"][0]["invite_terminated_state"], "canceled",
            "last termination wins"
        );
        let early = by_id("b6-early");
        assert_eq!(
            early["devices"][0]["rang_at"],
            "2026-08-20T15:00:01.000000Z"
        );
        assert_eq!(early["devices"][0]["invite_terminated_state"], "declined");
        // The unlogged call's updates wait for a POST that may still come.
        assert_eq!(
            h.count("SELECT COUNT(*) FROM statistics_pending_updates")
                .await,
            2
        );

        let messages = h
            .admin(
                "GET",
                &format!("/api/accounts/{}/statistics/messages", h.tony_id),
                None,
            )
            .await
            .json();
        assert_eq!(messages["total"], 2);
        let direct = messages["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == event_id("b6-message").as_str())
            .unwrap()
            .clone();
        assert_eq!(
            direct["to"]["mike@sip.example.org"][&d1]["last_status"],
            200
        );
        assert_eq!(
            direct["to"]["mike@sip.example.org"][&d2],
            json!({"last_status": 200, "received_at": "2026-08-20T10:30:00.000000Z"})
        );
        let group = messages["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == event_id("b6-group").as_str())
            .unwrap()
            .clone();
        assert_eq!(group["conference_id"], "chatroom-5x1");
        assert_eq!(
            group["to"]["+33612345678@sip.example.org"]["fs-gen-Ab3_dE-9fGhIjKlMnOpQ"]
                ["last_status"],
            202
        );

        let conference = h
            .admin("GET", "/api/statistics/conferences/5x1", None)
            .await
            .json();
        assert_eq!(conference["ended_at"], "2026-08-20T14:31:00.000000Z");
        assert_eq!(
            conference["participant_events"].as_array().unwrap().len(),
            2
        );
        assert_eq!(
            conference["participant_device_events"][1],
            json!({"participant": "tony@sip.example.org", "device_id": d1, "type": "left", "at": "2026-08-20T14:30:00.000000Z"})
        );

        assert_eq!(
            h.count("SELECT COUNT(*) FROM statistics_call_devices")
                .await,
            4
        );
        assert_eq!(
            h.count("SELECT COUNT(*) FROM statistics_message_devices")
                .await,
            4
        );
        let _ = stop.send(());
        server.await.unwrap().unwrap();
    }
}
