//! `POST /api/push_notification` and the send-by-push deliveries through a stand-in `flexisip_pusher` that
//! records its arguments; `POST /api/messages` through a real unix-socket listener standing in for the
//! linphone daemon (api-accounts.md §2.4, §2.19, §2.20), on both engines.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use common::{Harness, HOST, OTHER};
use flexiapi_core::testing::ENGINES;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// A stand-in pusher: appends each argument on its own line, then a `--` separator, and exits with `status`.
fn pusher(dir: &Path, name: &str, status: i32) -> (String, PathBuf) {
    let log = dir.join(format!("{name}.log"));
    let script = dir.join(name);
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\" >> '{}'; done\necho -- >> '{}'\nexit {status}\n",
            log.display(),
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    (script.display().to_string(), log)
}

/// The recorded invocations, each as its argument list.
fn invocations(log: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.split("--\n")
        .filter(|chunk| !chunk.is_empty())
        .map(|chunk| chunk.lines().map(str::to_owned).collect())
        .collect()
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn push_notification_validation_and_delivery() {
    for engine in ENGINES {
        let dir = tempfile::tempdir().unwrap();
        let (path, log) = pusher(dir.path(), "flexisip_pusher", 0);
        let h = Harness::new(
            engine,
            &[
                ("APP_FLEXISIP_PUSHER_PATH", &path),
                (
                    "APP_FLEXISIP_PUSHER_FIREBASE_KEYSMAP",
                    "proj:KEY1 other:KEY2",
                ),
            ],
        )
        .await;
        let (_, key) = h.account("alice", OTHER, false).await;
        let me = Some(key.as_str());
        let push = |body| h.call("POST", OTHER, "/api/push_notification", me, Some(body));

        assert_eq!(
            h.call(
                "POST",
                OTHER,
                "/api/push_notification",
                None,
                Some(json!({}))
            )
            .await
            .status,
            401
        );
        let r = push(json!({})).await;
        assert_eq!(r.status, 422);
        assert_eq!(
            r.json()["errors"],
            json!({"pn_provider": ["The pn provider field is required."], "type": ["The type field is required."]})
        );
        let r = push(
            json!({"pn_provider": "fcm", "pn_param": "a@b", "type": "video", "call_id": "a b"}),
        )
        .await;
        let errors = r.json()["errors"].clone();
        assert_eq!(errors["type"], json!(["The selected type is invalid."]));
        assert_eq!(
            errors["call_id"],
            json!([
                "The call id should only contain only alphanumeric, tilde and dashes characters"
            ])
        );
        assert!(errors["pn_param"].is_array());
        let r = push(json!({"pn_provider": "fcm", "type": "call", "call_id": null})).await;
        assert!(
            r.json()["errors"]["call_id"].is_array(),
            "a null call_id fails too"
        );
        assert!(invocations(&log).is_empty(), "nothing run on a 422");

        let r = push(json!({"pn_provider": "apns", "pn_param": "ABCD.org.linphone.voip", "pn_prid": "tok:1-2", "type": "call", "call_id": "abc~1@x.org"}))
            .await;
        assert_eq!((r.status.as_u16(), r.text()), (200, String::new()));
        let r = push(
            json!({"pn_provider": "fcm", "pn_param": "proj", "pn_prid": "dev", "type": "message"}),
        )
        .await;
        assert_eq!(r.status, 200);
        let r = push(json!({"pn_provider": "apns.dev", "type": "background"})).await;
        assert_eq!(
            r.status, 200,
            "absent pn_param/pn_prid are empty strings, never a 500"
        );
        assert_eq!(
            invocations(&log),
            vec![
                args(&[
                    "--pn-provider",
                    "apns",
                    "--pn-param",
                    "ABCD.org.linphone.voip",
                    "--pn-prid",
                    "tok:1-2",
                    "--call-id",
                    "abc~1@x.org",
                    "--apple-push-type",
                    "PushKit"
                ]),
                args(&[
                    "--pn-provider",
                    "fcm",
                    "--pn-param",
                    "proj",
                    "--pn-prid",
                    "dev",
                    "--key",
                    "KEY1"
                ]),
                args(&[
                    "--pn-provider",
                    "apns.dev",
                    "--pn-param",
                    "",
                    "--pn-prid",
                    "",
                    "--apple-push-type",
                    "Background"
                ]),
            ]
        );

        // Token pushes carry the token as the custom payload; the stored token is the pushed one.
        let r = h
            .call(
                "POST",
                OTHER,
                "/api/account_creation_tokens/send-by-push",
                None,
                Some(json!({"pn_provider": "fcm", "pn_param": "other", "pn_prid": "p1"})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        let last = invocations(&log).pop().unwrap();
        let stored: String = flexiapi_core::with_db!(h.db(), pool => sqlx::query_scalar(
            "SELECT token FROM account_creation_tokens WHERE pn_prid = 'p1'").fetch_one(pool).await)
        .unwrap();
        assert_eq!(
            last,
            args(&[
                "--pn-provider",
                "fcm",
                "--pn-param",
                "other",
                "--pn-prid",
                "p1",
                "--customPayload",
                &json!({"token": stored}).to_string(),
                "--key",
                "KEY2"
            ])
        );
    }
}

#[tokio::test]
async fn push_failures_answer_503() {
    for engine in ENGINES {
        let dir = tempfile::tempdir().unwrap();
        let (failing, log) = pusher(dir.path(), "failing_pusher", 1);
        let missing = dir.path().join("nowhere").display().to_string();
        let body =
            json!({"pn_provider": "fcm", "pn_param": "p", "pn_prid": "d", "type": "message"});
        for settings in [
            vec![("APP_FLEXISIP_PUSHER_PATH", failing.as_str())],
            vec![("APP_FLEXISIP_PUSHER_PATH", missing.as_str())],
            vec![],
        ] {
            let h = Harness::new(engine, &settings).await;
            let (_, key) = h.account("alice", OTHER, false).await;
            let r = h
                .call(
                    "POST",
                    OTHER,
                    "/api/push_notification",
                    Some(&key),
                    Some(body.clone()),
                )
                .await;
            assert_eq!(
                (r.status.as_u16(), r.json()),
                (503, json!({"message": "Push notification not sent"})),
                "{settings:?}"
            );
            let r = h
                .call(
                    "POST",
                    OTHER,
                    "/api/account_recovery_tokens/send-by-push",
                    None,
                    Some(json!({"pn_provider": "fcm", "pn_param": "p", "pn_prid": "d"})),
                )
                .await;
            assert_eq!(r.status, 503);
            assert_eq!(
                h.count("SELECT COUNT(*) FROM account_recovery_tokens")
                    .await,
                0,
                "nothing stored"
            );
        }
        assert_eq!(invocations(&log).len(), 2, "the failing pusher did run");
    }
}

/// A linphone-daemon stand-in on a unix socket: records each command line and answers the next canned reply.
struct Daemon {
    path: PathBuf,
    commands: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    fn start(dir: &Path, replies: Vec<&'static str>) -> Daemon {
        let path = dir.join("daemon.sock");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let commands = Arc::new(Mutex::new(Vec::new()));
        let sink = commands.clone();
        let replies = Arc::new(Mutex::new(replies.into_iter()));
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (read, mut write) = stream.into_split();
                let mut line = String::new();
                BufReader::new(read).read_line(&mut line).await.ok();
                sink.lock().unwrap().push(line);
                let reply = replies.lock().unwrap().next().unwrap_or("");
                write.write_all(reply.as_bytes()).await.ok();
            }
        });
        Daemon { path, commands }
    }

    fn commands(&self) -> Vec<String> {
        self.commands.lock().unwrap().clone()
    }
}

#[tokio::test]
async fn messages_over_the_daemon_socket() {
    for engine in ENGINES {
        // No socket configured: no route.
        let h = Harness::new(engine, &[]).await;
        let (_, admin) = h.account("admin", OTHER, true).await;
        let body = json!({"to": "bob@x.org", "body": "hello"});
        let r = h
            .call(
                "POST",
                OTHER,
                "/api/messages",
                Some(&admin),
                Some(body.clone()),
            )
            .await;
        assert_eq!(r.status, 404);

        let dir = tempfile::tempdir().unwrap();
        let daemon = Daemon::start(
            dir.path(),
            vec![
                "Status: Ok\n\nId: 42\n",
                "Status: Error\nReason: Invalid address\n",
            ],
        );
        let socket = daemon.path.display().to_string();
        let h = Harness::new(engine, &[("APP_LINPHONE_DAEMON_UNIX_PATH", &socket)]).await;
        let (_, admin) = h.account("admin", OTHER, true).await;
        let (_, user) = h.account("alice", OTHER, false).await;
        let key = Some(admin.as_str());

        let r = h
            .call("POST", OTHER, "/api/messages", key, Some(json!({})))
            .await;
        assert_eq!(
            r.json()["errors"],
            json!({"to": ["The to field is required."], "body": ["The body field is required."]})
        );
        assert_eq!(
            h.call(
                "POST",
                OTHER,
                "/api/messages",
                Some(&user),
                Some(body.clone())
            )
            .await
            .status,
            403
        );
        assert_eq!(
            h.call("POST", HOST, "/api/messages", key, Some(body.clone()))
                .await
                .status,
            403
        );
        let r = h
            .call(
                "POST",
                OTHER,
                "/api/messages",
                key,
                Some(json!({"to": ["a"], "body": "x"})),
            )
            .await;
        assert_eq!(
            r.json()["errors"],
            json!({"to": ["The to must be a string."]})
        );
        assert!(
            daemon.commands().is_empty(),
            "refusals never reach the daemon"
        );

        let r = h
            .call(
                "POST",
                OTHER,
                "/api/messages",
                key,
                Some(json!({"to": "bob@x.org", "body": "hello\nquit"})),
            )
            .await;
        assert_eq!((r.status.as_u16(), r.json()), (200, json!({"id": "42"})));
        let r = h
            .call("POST", OTHER, "/api/messages", key, Some(body.clone()))
            .await;
        assert_eq!(
            (r.status.as_u16(), r.json()),
            (
                422,
                json!({"message": "Invalid address", "errors": [["Invalid address"]]})
            )
        );
        assert_eq!(
            daemon.commands(),
            [
                "message sip:bob@x.org hello quit\n",
                "message sip:bob@x.org hello\n"
            ],
            "one command line each, newlines flattened"
        );

        // Nobody listening on the configured socket.
        std::fs::remove_file(&daemon.path).unwrap();
        let r = h
            .call("POST", OTHER, "/api/messages", key, Some(body))
            .await;
        let failure = "The internal socket cannot be requested properly";
        assert_eq!(
            (r.status.as_u16(), r.json()),
            (422, json!({"message": failure, "errors": [[failure]]}))
        );
    }
}
