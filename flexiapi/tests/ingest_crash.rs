//! Durability of the embedded statistics store: the real `flexiapi serve` is killed with SIGKILL while
//! concurrent clients stream call and device events; after a restart, every event that was acknowledged
//! (2xx) is in the database — on SQLite and on PostgreSQL.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flexiapi_core::testing::{Engine, TestDb, ENGINES};
use flexiapi_core::with_db;

mod common;

use common::Server;

const HOST: &str = "flexiapi.example.org";
const DOMAIN: &str = "sip.example.org";

async fn start(database_url: &str) -> Server {
    common::serve(database_url, HOST, &[], None).await
}

fn call_id(worker: usize, n: usize) -> String {
    format!("{worker:032x}{n:032x}")
}

async fn crash_keeps_acknowledged_events(engine: Engine) {
    let test_db = TestDb::new(engine).await;
    let url = test_db.url.clone();
    let admin = common::space_with_admin(&url, DOMAIN, HOST, "admin");
    let key = admin["api_key"].as_str().unwrap().to_owned();

    let mut server = start(&url).await;
    // (call id, device acknowledged?) for every 2xx answer.
    let calls_acked = Arc::new(Mutex::new(HashSet::<String>::new()));
    let devices_acked = Arc::new(Mutex::new(HashSet::<String>::new()));
    let mut workers = Vec::new();
    for worker in 0..16 {
        let (base, key) = (server.base.clone(), key.clone());
        let (calls_acked, devices_acked) = (calls_acked.clone(), devices_acked.clone());
        workers.push(tokio::spawn(async move {
            let client = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
            for n in 0.. {
                let id = call_id(worker, n);
                let body = format!(
                    r#"{{"conference_id":null,"devices":{{"\"<urn:uuid:{n:08x}-0000-4000-8000-00000000{worker:04x}>\"":null}},"ended_at":null,"from":"tony@{DOMAIN}","id":"{id}","initiated_at":"2026-08-20T10:00:00Z","sip_call_id":"c{n}","to":"mike@{DOMAIN}"}}"#
                );
                let answer = client
                    .post(format!("{base}/api/stats/calls"))
                    .header("Host", HOST)
                    .header("accept", "application/json")
                    .header("content-type", "application/json")
                    .header("x-api-key", &key)
                    .body(body)
                    .send()
                    .await;
                match answer {
                    Ok(r) if r.status() == 200 => {
                        calls_acked.lock().unwrap().insert(id.clone());
                    }
                    Ok(r) => panic!("unexpected status {}", r.status()),
                    Err(_) => return n,
                }
                let answer = client
                    .patch(format!("{base}/api/stats/calls/{id}/devices/%22%3Curn:uuid:{n:08x}%3E%22"))
                    .header("Host", HOST)
                    .header("accept", "application/json")
                    .header("content-type", "application/json")
                    .header("x-api-key", &key)
                    .body(r#"{"rang_at":"2026-08-20T10:00:01Z"}"#)
                    .send()
                    .await;
                match answer {
                    Ok(r) if r.status() == 201 => {
                        devices_acked.lock().unwrap().insert(id);
                    }
                    Ok(r) => panic!("unexpected status {}", r.status()),
                    Err(_) => return n,
                }
            }
            unreachable!()
        }));
    }
    // Kill once a good number of events are acknowledged, while requests are still flowing.
    let deadline = Instant::now() + Duration::from_secs(60);
    while calls_acked.lock().unwrap().len() < 400 {
        assert!(Instant::now() < deadline, "load did not progress");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // std's Child::kill is SIGKILL on Unix: no shutdown path runs.
    server.child.kill().unwrap();
    let _ = server.child.wait();
    for worker in workers {
        worker.await.unwrap();
    }
    let calls_acked = calls_acked.lock().unwrap().clone();
    let devices_acked = devices_acked.lock().unwrap().clone();

    // Restart on the same database: the store opens cleanly and holds everything acknowledged.
    let server = start(&url).await;
    let stored_calls: Vec<String> = with_db!(&test_db.db, pool =>
        sqlx::query_scalar("SELECT id FROM statistics_calls").fetch_all(pool).await)
    .unwrap();
    let stored_devices: Vec<String> = with_db!(&test_db.db, pool =>
        sqlx::query_scalar("SELECT call_id FROM statistics_call_devices").fetch_all(pool).await)
    .unwrap();
    let stored_calls: HashSet<String> = stored_calls.into_iter().collect();
    let stored_devices: HashSet<String> = stored_devices.into_iter().collect();
    let lost_calls: Vec<_> = calls_acked.difference(&stored_calls).collect();
    let lost_devices: Vec<_> = devices_acked.difference(&stored_devices).collect();
    assert!(
        lost_calls.is_empty(),
        "{engine:?}: {} acknowledged calls lost",
        lost_calls.len()
    );
    assert!(
        lost_devices.is_empty(),
        "{engine:?}: {} acknowledged device updates lost",
        lost_devices.len()
    );
    assert!(calls_acked.len() >= 400);

    // And it keeps ingesting.
    let r = reqwest::Client::new()
        .post(format!("{}/api/stats/calls", server.base))
        .header("Host", HOST)
        .header("accept", "application/json")
        .header("content-type", "application/json")
        .header("x-api-key", &key)
        .body(format!(r#"{{"from":"a@{DOMAIN}","id":"{}","initiated_at":"2026-08-20T10:00:00Z","to":"b@{DOMAIN}"}}"#, call_id(99, 0)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_no_acknowledged_event() {
    for engine in ENGINES {
        crash_keeps_acknowledged_events(engine).await;
    }
}
