//! Devices read from Flexisip's registrar data in a real Redis (`FLEXIAPI_TEST_REDIS_URL`), seeded as
//! Flexisip writes it (hash `fs:<user>@<domain>`, field `"<urn:uuid:…>"`, value the serialised Contact), binding
//! deletion with its notification, and the external-account notifications to the B2BUA (api-accounts.md
//! §2.10, §2.15), on both engines.

mod common;

use std::time::Duration;

use common::{Harness, HOST, OTHER};
use flexiapi_core::testing::ENGINES;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

fn redis_url() -> String {
    std::env::var("FLEXIAPI_TEST_REDIS_URL").expect(
        "FLEXIAPI_TEST_REDIS_URL is not set: run the tests with scripts/test.sh, which starts Redis",
    )
}

/// Usernames unique to this run: every test shares one Redis server.
fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{name}{}x{nanos}", std::process::id())
}

/// A registrar contact as Flexisip serialises it.
fn contact(host: &str, uuid: &str, updated_at: i64, user_agent: &str) -> String {
    let user_agent = user_agent.replace(' ', "%20");
    format!(
        "<sip:dev@{host}:50712;transport=tcp;fs-conn-id=1f2e;callid=Ab~c-1;expires=3600;cseq=21;updatedAt={updated_at};\
         alias=no;usedAsRoute=no?path=%3Csip%3Aproxy.example.org%3Blr%3E&accept=application/sdp&user-agent={user_agent}>;\
         +sip.instance=\"<{uuid}>\";expires=3600;q=1.0"
    )
}

async fn redis(cmd: &mut redis::Cmd) -> redis::Value {
    let client = redis::Client::open(redis_url()).unwrap();
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .expect("Redis reachable");
    cmd.query_async(&mut connection).await.unwrap()
}

async fn register(identifier: &str, uuid: &str, value: &str) {
    redis(
        redis::cmd("HSET")
            .arg(format!("fs:{identifier}"))
            .arg(format!("\"<{uuid}>\""))
            .arg(value),
    )
    .await;
}

async fn registered(identifier: &str, uuid: &str) -> bool {
    let exists = redis(
        redis::cmd("HEXISTS")
            .arg(format!("fs:{identifier}"))
            .arg(format!("\"<{uuid}>\"")),
    )
    .await;
    exists == redis::Value::Int(1)
}

/// A raw RESP subscriber (Redis protocol over TCP), to see what the API publishes.
struct Subscriber {
    reader: BufReader<TcpStream>,
}

impl Subscriber {
    async fn start(channel: &str) -> Subscriber {
        let url = redis_url();
        let address = url
            .trim_start_matches("redis://")
            .trim_end_matches('/')
            .to_owned();
        let mut stream = TcpStream::connect(address).await.unwrap();
        let command = format!(
            "*2\r\n$9\r\nSUBSCRIBE\r\n${}\r\n{channel}\r\n",
            channel.len()
        );
        stream.write_all(command.as_bytes()).await.unwrap();
        let mut subscriber = Subscriber {
            reader: BufReader::new(stream),
        };
        let confirmation = subscriber.frame().await;
        assert_eq!(confirmation[0], "subscribe");
        subscriber
    }

    /// One array frame of bulk strings / integers.
    async fn frame(&mut self) -> Vec<String> {
        let mut header = String::new();
        self.reader.read_line(&mut header).await.unwrap();
        let count: usize = header.trim()[1..].parse().unwrap();
        let mut items = Vec::new();
        for _ in 0..count {
            let mut line = String::new();
            self.reader.read_line(&mut line).await.unwrap();
            let line = line.trim_end().to_owned();
            if let Some(length) = line.strip_prefix('$') {
                let mut data = vec![0u8; length.parse::<usize>().unwrap() + 2];
                self.reader.read_exact(&mut data).await.unwrap();
                data.truncate(data.len() - 2);
                items.push(String::from_utf8(data).unwrap());
            } else {
                items.push(line[1..].to_owned());
            }
        }
        items
    }

    /// The next published payload (fails after 5 s).
    async fn message(&mut self) -> String {
        let frame = tokio::time::timeout(Duration::from_secs(5), self.frame())
            .await
            .expect("a published message");
        assert_eq!(frame[0], "message");
        frame[2].clone()
    }
}

#[tokio::test]
async fn devices_listed_and_deleted() {
    let url = redis_url();
    for engine in ENGINES {
        let h = Harness::new(engine, &[("FLEXIAPI_REDIS_URL", &url)]).await;
        let (_, admin) = h.account("admin", OTHER, true).await;
        let (alice, alice_key) = h.account(&unique("alice"), OTHER, false).await;
        let (lonely, lonely_key) = h.account(&unique("lonely"), OTHER, false).await;
        let (foreign, _) = h.account(&unique("carol"), HOST, false).await;
        let identifier = alice.identifier();
        let phone = "urn:uuid:0b2a3c4d-1111-2222-3333-444455556666";
        let desk = "urn:uuid:99999999-aaaa-bbbb-cccc-dddddddddddd";
        register(
            &identifier,
            phone,
            &contact(
                "192.168.1.20",
                phone,
                1767225600,
                "LinphoneAndroid/5.2.5 (Pixel 7) LinphoneSDK/5.3.0 (tags/5.3.0)",
            ),
        )
        .await;
        register(
            &identifier,
            desk,
            &contact("10.0.0.2", desk, 1767229200, "curl"),
        )
        .await;
        register(&identifier, "urn:uuid:broken", "not a contact").await;
        register(
            &foreign.identifier(),
            phone,
            &contact("10.0.0.3", phone, 1, "x"),
        )
        .await;

        let expected = json!({
            phone: {
                "uuid": phone, "update_time": "2026-01-01T00:00:00.000000Z",
                "user_agent": "LinphoneAndroid/5.2.5 (Pixel 7) LinphoneSDK/5.3.0 (tags/5.3.0)",
                "app": "LinphoneAndroid", "version": "5.2.5", "device_name": "Pixel 7"
            },
            desk: {
                "uuid": desk, "update_time": "2026-01-01T01:00:00.000000Z", "user_agent": "curl",
                "app": "curl", "version": "", "device_name": ""
            }
        });
        let r = h
            .call(
                "GET",
                OTHER,
                "/api/accounts/me/devices",
                Some(&alice_key),
                None,
            )
            .await;
        assert_eq!(r.status, 200);
        assert_eq!(
            r.json(),
            expected,
            "unparsable bindings skipped, never a 500"
        );
        let admin_path = format!("/api/accounts/{}/devices", alice.id);
        assert_eq!(
            h.call("GET", OTHER, &admin_path, Some(&admin), None)
                .await
                .json(),
            expected
        );
        let r = h
            .call(
                "GET",
                OTHER,
                "/api/accounts/me/devices",
                Some(&lonely_key),
                None,
            )
            .await;
        assert_eq!((r.status.as_u16(), r.text()), (200, "{}".to_owned()));
        let r = h
            .call(
                "GET",
                OTHER,
                &format!("/api/accounts/{}/devices", lonely.id),
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(r.text(), "{}");

        // Isolation and roles.
        let foreign_path = format!("/api/accounts/{}/devices", foreign.id);
        assert_eq!(
            h.call("GET", OTHER, &foreign_path, Some(&admin), None)
                .await
                .status,
            404
        );
        let r = h
            .call(
                "DELETE",
                OTHER,
                &format!("{foreign_path}/{phone}"),
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(r.status, 404);
        assert!(
            registered(&foreign.identifier(), phone).await,
            "another space's binding untouched"
        );
        assert_eq!(
            h.call("GET", HOST, &admin_path, Some(&admin), None)
                .await
                .status,
            403
        );
        assert_eq!(
            h.call("GET", OTHER, &admin_path, Some(&alice_key), None)
                .await
                .status,
            403
        );
        assert_eq!(
            h.call("GET", OTHER, "/api/accounts/me/devices", None, None)
                .await
                .status,
            401
        );

        // Deleting a binding removes the hash field and publishes an empty message on the AoR channel.
        let mut subscriber = Subscriber::start(&identifier).await;
        let r = h
            .call(
                "DELETE",
                OTHER,
                &format!("/api/accounts/me/devices/{phone}"),
                Some(&alice_key),
                None,
            )
            .await;
        assert_eq!((r.status.as_u16(), r.text()), (200, "1".to_owned()));
        assert!(!registered(&identifier, phone).await);
        assert_eq!(subscriber.message().await, "");
        let r = h
            .call(
                "DELETE",
                OTHER,
                &format!("/api/accounts/me/devices/{phone}"),
                Some(&alice_key),
                None,
            )
            .await;
        assert_eq!(
            (r.status.as_u16(), r.text()),
            (200, String::new()),
            "unknown uuid: empty, not 404"
        );
        let r = h
            .call(
                "DELETE",
                OTHER,
                &format!("{admin_path}/{desk}"),
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(r.text(), "1");
        assert!(!registered(&identifier, desk).await);
        assert!(
            registered(&identifier, "urn:uuid:broken").await,
            "other fields kept"
        );
        redis(
            redis::cmd("DEL")
                .arg(format!("fs:{identifier}"))
                .arg(format!("fs:{}", foreign.identifier())),
        )
        .await;
    }
}

#[tokio::test]
async fn redis_unavailable_reads_as_nothing() {
    for engine in ENGINES {
        let h = Harness::new(engine, &[("FLEXIAPI_REDIS_URL", "redis://127.0.0.1:1/")]).await;
        let (_, key) = h.account("alice", OTHER, false).await;
        let r = h
            .call("GET", OTHER, "/api/accounts/me/devices", Some(&key), None)
            .await;
        assert_eq!((r.status.as_u16(), r.text()), (200, "{}".to_owned()));
        let r = h
            .call(
                "DELETE",
                OTHER,
                "/api/accounts/me/devices/urn:uuid:x",
                Some(&key),
                None,
            )
            .await;
        assert_eq!((r.status.as_u16(), r.text()), (200, String::new()));
    }
}

#[tokio::test]
async fn external_account_changes_notify_the_b2bua() {
    let url = redis_url();
    for engine in ENGINES {
        let h = Harness::new(engine, &[("FLEXIAPI_REDIS_URL", &url)]).await;
        let (_, admin) = h.account("admin", OTHER, true).await;
        let (alice, _) = h.account("alice", OTHER, false).await;
        let path = format!("/api/accounts/{}/external", alice.id);
        let username = unique("ext");
        let mut subscriber = Subscriber::start("flexisip/B2BUA/account").await;
        let body =
            json!({"username": username, "domain": "ext.org", "protocol": "TLS", "password": "p"});
        let r = h.call("POST", OTHER, &path, Some(&admin), Some(body)).await;
        assert_eq!(r.status, 201, "{}", r.text());
        let id = r.json()["id"].as_i64().unwrap();
        let expected =
            json!({"username": username, "domain": "ext.org", "identifier": id.to_string()});
        // Other tests may publish on the same channel: wait for ours.
        let mut seen = Vec::new();
        loop {
            let message: serde_json::Value =
                serde_json::from_str(&subscriber.message().await).unwrap();
            if message == expected {
                break;
            }
            seen.push(message);
            assert!(seen.len() < 20, "{seen:?}");
        }
        assert_eq!(
            h.call("DELETE", OTHER, &path, Some(&admin), None)
                .await
                .text(),
            "1"
        );
        loop {
            let message: serde_json::Value =
                serde_json::from_str(&subscriber.message().await).unwrap();
            if message == expected {
                break;
            }
        }
    }
}
