//! Migration 0040 on a database that already holds statistics: calls and messages get their `seq`, and their
//! device, forked-device and recipient rows are re-keyed by it. What was stored before reads the same
//! afterwards, takes new updates, and still goes with its account.

mod common;

use common::*;
use flexiapi_core::testing::{Engine, TestDb, ENGINES};
use serde_json::json;

/// Applies the migrations numbered below `before` (copied to a directory, as a deployment of that version
/// would hold them).
async fn migrate_below(test_db: &TestDb, engine: Engine, before: i64) {
    let dir = tempfile::tempdir().unwrap();
    let schema = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(match engine {
        Engine::Sqlite => "../schema/sqlite",
        Engine::Postgres => "../schema/postgres",
    });
    for entry in std::fs::read_dir(&schema).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let version: i64 = name.split('_').next().unwrap().parse().unwrap();
        if version < before {
            std::fs::copy(&path, dir.path().join(&name)).unwrap();
        }
    }
    let migrator = sqlx::migrate::Migrator::new(dir.path()).await.unwrap();
    flexiapi_core::with_db!(&test_db.db, pool => migrator.run(pool).await).unwrap();
}

#[tokio::test]
async fn statistics_stored_before_the_seq_migration_read_and_update_after_it() {
    for engine in ENGINES {
        let test_db = TestDb::unmigrated(engine).await;
        migrate_below(&test_db, engine, 40).await;
        let call = event_id("old-call");
        let message = event_id("old-message");
        let (d1, d2, r1) = (device(1), device(2), device(3));
        let exec = |sql: String| {
            let db = test_db.db.clone();
            async move {
                flexiapi_core::with_db!(&db, pool => sqlx::query(&sql).execute(pool).await.map(|_| ())).unwrap();
            }
        };
        // The rows the writer of the previous schema left: a call from tony forked to two devices, one of
        // which rang; a message to tony with one recipient device that answered.
        exec(format!(
            "INSERT INTO statistics_calls (id, from_username, from_domain, to_username, to_domain, initiated_at, \
             created_at, updated_at) VALUES ('{call}', 'tony', '{HOST}', 'mike', '{HOST}', '2026-08-20 10:00:00', \
             '2026-08-20 10:00:00', '2026-08-20 10:00:00')"
        ))
        .await;
        for d in [&d1, &d2] {
            exec(format!(
                "INSERT INTO statistics_call_forked_devices (call_id, device_id, state) VALUES ('{call}', '{d}', NULL)"
            ))
            .await;
        }
        exec(format!(
            "INSERT INTO statistics_call_devices (call_id, device_id, rang_at, created_at, updated_at) \
             VALUES ('{call}', '{d1}', '2026-08-20 10:00:02', '2026-08-20 10:00:02', '2026-08-20 10:00:02')"
        ))
        .await;
        exec(format!(
            "INSERT INTO statistics_messages (id, from_username, from_domain, sent_at, created_at, updated_at) \
             VALUES ('{message}', 'mike', '{HOST}', '2026-08-20 11:00:00', '2026-08-20 11:00:00', '2026-08-20 11:00:00')"
        ))
        .await;
        exec(format!(
            "INSERT INTO statistics_message_recipients (message_id, to_username, to_domain, device_id) \
             VALUES ('{message}', 'tony', '{HOST}', '{r1}')"
        ))
        .await;
        exec(format!(
            "INSERT INTO statistics_message_devices (message_id, to_username, to_domain, device_id, last_status, \
             received_at, created_at, updated_at) VALUES ('{message}', 'tony', '{HOST}', '{r1}', 200, \
             '2026-08-20 11:00:01', '2026-08-20 11:00:01', '2026-08-20 11:00:01')"
        ))
        .await;

        test_db
            .db
            .migrate()
            .await
            .expect("migrate to the current schema");
        let h = Harness::on(test_db, &[]).await;

        // Read as before: the call with both forked devices, the one that rang first.
        let r = h.user("GET", "/api/accounts/me/statistics/calls").await;
        assert_eq!(r.status, 200, "{engine:?}: {}", r.text());
        let listed = &r.json()["data"][0];
        assert_eq!(listed["id"], call.as_str(), "{engine:?}");
        let devices = listed["devices"].as_array().unwrap();
        assert_eq!(devices.len(), 2, "{engine:?}: {devices:?}");
        assert_eq!(devices[0]["device_id"], d1.as_str(), "{engine:?}");
        assert_eq!(
            devices[0]["rang_at"], "2026-08-20T10:00:02.000000Z",
            "{engine:?}"
        );
        let r = h.user("GET", "/api/accounts/me/statistics/messages").await;
        assert_eq!(r.status, 200, "{engine:?}: {}", r.text());
        let listed = &r.json()["data"][0];
        assert_eq!(listed["id"], message.as_str(), "{engine:?}");
        assert_eq!(
            listed["to"][format!("tony@{HOST}")][&r1]["last_status"],
            200,
            "{engine:?}: {listed}"
        );

        // Updates of the migrated call find its rows: the rung device is updated (200), the other created
        // (201), and the end lists both.
        let path = |n| format!("/api/stats/calls/{call}/devices/{}", device_path(n));
        let terminated =
            json!({"invite_terminated": {"at": "2026-08-20T10:00:05Z", "state": "accepted"}});
        let r = h.admin("PATCH", &path(1), Some(terminated.clone())).await;
        assert_eq!(r.status, 200, "{engine:?}: {}", r.text());
        assert_eq!(
            r.json()["rang_at"],
            "2026-08-20T10:00:02.000000Z",
            "{engine:?}"
        );
        let r = h.admin("PATCH", &path(2), Some(terminated)).await;
        assert_eq!(r.status, 201, "{engine:?}: {}", r.text());
        let r = h
            .admin(
                "PATCH",
                &format!("/api/stats/calls/{call}"),
                Some(json!({"ended_at": "2026-08-20T10:01:00Z"})),
            )
            .await;
        assert_eq!(r.status, 200, "{engine:?}: {}", r.text());
        assert_eq!(
            r.json()["devices"].as_array().unwrap().len(),
            2,
            "{engine:?}"
        );
        // A message device update of the migrated message is an update, not a new row.
        let r = h
            .admin(
                "PATCH",
                &format!(
                    "/api/stats/messages/{message}/to/tony@{HOST}/devices/{}",
                    device_path(3)
                ),
                Some(json!({"last_status": 503, "received_at": "2026-08-20T11:00:09Z"})),
            )
            .await;
        assert_eq!(r.status, 200, "{engine:?}: {}", r.text());

        // New parents are numbered after the migrated ones.
        let new_call = event_id("new-call");
        let body = json!({"id": new_call, "from": format!("tony@{HOST}"), "to": format!("mike@{HOST}"),
                          "initiated_at": "2026-08-21T10:00:00Z", "devices": {device(4): null}});
        assert_eq!(
            h.admin("POST", "/api/stats/calls", Some(body)).await.status,
            200
        );
        assert_eq!(
            h.count(&format!(
                "SELECT COUNT(*) FROM statistics_calls a, statistics_calls b \
                 WHERE a.id = '{call}' AND b.id = '{new_call}' AND b.seq > a.seq"
            ))
            .await,
            1,
            "{engine:?}"
        );

        // Deleting the account still takes its calls and their rows with it.
        h.exec(&format!("DELETE FROM accounts WHERE id = {}", h.tony_id))
            .await;
        for table in [
            "statistics_calls",
            "statistics_call_devices",
            "statistics_call_forked_devices",
        ] {
            assert_eq!(
                h.count(&format!("SELECT COUNT(*) FROM {table}")).await,
                0,
                "{engine:?}: {table}"
            );
        }
    }
}
