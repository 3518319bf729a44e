//! Ping, the JSON body check, `/api/accounts/me` and the other user endpoints, on SQLite and PostgreSQL.

mod common;

use common::{Harness, HOST};
use flexiapi_core::testing::{send, ENGINES};
use serde_json::json;

#[tokio::test]
async fn ping_invalid_json_and_unknown_host() {
    for engine in ENGINES {
        let h = Harness::new(engine, &[]).await;
        let r = h.call("GET", HOST, "/api/ping", None, None).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), "pong");
        assert_eq!(r.headers["content-type"], "text/html; charset=UTF-8");

        // Malformed JSON is refused before authentication (no credentials here).
        let request = flexiapi_core::testing::json_request("POST", HOST, "/api/accounts")
            .body(axum::body::Body::from("{\"username\": "))
            .unwrap();
        let r = send(&h.router, request).await;
        assert_eq!(r.status, 400, "{}", r.text());
        assert_eq!(r.json()["message"], "Invalid JSON: Syntax error");

        let r = h
            .call("GET", "unknown.example.com", "/api/ping", None, None)
            .await;
        assert_eq!(r.status, 404);
        assert_eq!(r.json()["message"], "Host not configured");

        let r = h.call("GET", HOST, "/api/nothing", None, None).await;
        assert_eq!(r.status, 404);
    }
}

#[tokio::test]
async fn me_full_object_and_unauthenticated() {
    for engine in ENGINES {
        let h = Harness::new(engine, &[]).await;
        let (account, key) = h.account("alice", HOST, false).await;
        let r = h.call("GET", HOST, "/api/accounts/me", None, None).await;
        assert_eq!(r.status, 401, "{}", r.text());

        let r = h
            .call("GET", HOST, "/api/accounts/me", Some(&key), None)
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        let me = r.json();
        assert_eq!(me["id"], account.id);
        assert_eq!(me["username"], "alice");
        assert_eq!(me["sip_uri"], "sip:alice@sip.example.com");
        assert_eq!(me["passwords"], json!([{"algorithm": "SHA-256"}]));
        assert_eq!(me["dictionary"], json!({}));
        assert_eq!(me["email_change_code"], json!(null));
        assert_eq!(me["types"], json!([]));
        assert_eq!(me["actions"], json!([]));
        assert_eq!(me["carddav_servers"], json!([]));
        assert_eq!(me["provisioning_token"].as_str().unwrap().len(), 13);
        assert_eq!(me["provisioning_token_expire_at"], json!(null));
        assert!(me.get("phone_change_code").is_none());
        let keys: Vec<&str> = me.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(&keys[..4], ["id", "username", "domain", "email"]);
        assert!(me["created_at"].as_str().unwrap().ends_with(".000000Z"));

        // A user key never reaches an admin endpoint.
        let r = h.call("GET", HOST, "/api/accounts", Some(&key), None).await;
        assert_eq!(r.status, 403, "{}", r.text());
        let r = h.call("GET", HOST, "/api/spaces", Some(&key), None).await;
        assert_eq!(r.status, 403);
    }
}

#[tokio::test]
async fn api_key_cookie_provision_info_and_delete() {
    for engine in ENGINES {
        let h = Harness::new(engine, &[]).await;
        let (account, key) = h.account("bob", HOST, false).await;
        let r = h
            .call("GET", HOST, "/api/accounts/me/api_key", Some(&key), None)
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        let user_key = r.text();
        assert_eq!(user_key.len(), 40);
        let cookie = r.headers["set-cookie"].to_str().unwrap();
        assert!(
            cookie.starts_with(&format!("x-api-key={user_key}; expires=")),
            "{cookie}"
        );
        assert!(
            cookie.contains("Max-Age=3600; path=/; httponly"),
            "{cookie}"
        );
        let r = h
            .call("GET", HOST, "/api/accounts/me", Some(&user_key), None)
            .await;
        assert_eq!(r.status, 200);

        let before = h
            .call("GET", HOST, "/api/accounts/me", Some(&key), None)
            .await
            .json();
        let r = h
            .call("GET", HOST, "/api/accounts/me/provision", Some(&key), None)
            .await;
        assert_eq!(r.status, 200);
        assert_ne!(r.json()["provisioning_token"], before["provisioning_token"]);

        let r = h
            .call(
                "GET",
                HOST,
                "/api/accounts/bob@sip.example.com/info",
                None,
                None,
            )
            .await;
        assert_eq!(r.status, 200);
        assert_eq!(
            r.json(),
            json!({"activated": true, "realm": "sip.example.com"})
        );
        let r = h
            .call(
                "GET",
                HOST,
                "/api/accounts/nobody@sip.example.com/info",
                None,
                None,
            )
            .await;
        assert_eq!(r.status, 404);

        let r = h
            .call("DELETE", HOST, "/api/accounts/me", Some(&key), None)
            .await;
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), "1");
        assert_eq!(
            h.count(&format!(
                "SELECT COUNT(*) FROM accounts WHERE id = {}",
                account.id
            ))
            .await,
            0
        );
        assert_eq!(
            h.count("SELECT COUNT(*) FROM accounts_tombstones WHERE username = 'bob'")
                .await,
            1
        );
        let r = h
            .call(
                "GET",
                HOST,
                "/api/accounts/bob@sip.example.com/info",
                None,
                None,
            )
            .await;
        assert_eq!(r.status, 404);
    }
}

#[tokio::test]
async fn password_change() {
    for engine in ENGINES {
        let h = Harness::new(engine, &[]).await;
        let (account, key) = h.account("carol", HOST, false).await;
        h.exec(&format!(
            "UPDATE accounts SET activated = FALSE WHERE id = {}",
            account.id
        ))
        .await;
        let r = h
            .call(
                "POST",
                HOST,
                "/api/accounts/me/password",
                Some(&key),
                Some(json!({"algorithm": "SHA-1", "password": "x"})),
            )
            .await;
        assert_eq!(r.status, 422);
        assert_eq!(
            r.json()["errors"]["algorithm"][0],
            "The selected algorithm is invalid."
        );
        let r = h
            .call(
                "POST",
                HOST,
                "/api/accounts/me/password",
                Some(&key),
                Some(json!({"password": "newpass"})),
            )
            .await;
        assert_eq!(r.status, 422);
        assert!(r.json()["errors"]["old_password"].is_array());
        let r = h
            .call(
                "POST",
                HOST,
                "/api/accounts/me/password",
                Some(&key),
                Some(json!({"password": "newpass", "old_password": "wrong"})),
            )
            .await;
        assert_eq!(r.status, 422);
        assert_eq!(
            r.json(),
            json!({"errors": {"old_password": "Incorrect old password"}})
        );
        // Validation passed: upstream activates the account even though the old password was wrong.
        assert_eq!(
            h.count(&format!(
                "SELECT COUNT(*) FROM accounts WHERE id = {} AND activated = TRUE",
                account.id
            ))
            .await,
            1
        );
        let r = h
            .call(
                "POST",
                HOST,
                "/api/accounts/me/password",
                Some(&key),
                Some(
                    json!({"password": "newpass", "old_password": "password", "algorithm": "MD5"}),
                ),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["passwords"], json!([{"algorithm": "MD5"}]));
        let hash: String = flexiapi_core::with_db!(h.db(), pool => sqlx::query_scalar(
            "SELECT password FROM passwords WHERE account_id = $1").bind(account.id).fetch_one(pool).await).unwrap();
        assert_eq!(
            hash,
            flexiapi_core::model::Algorithm::Md5.ha1("carol", "sip.example.com", "newpass")
        );
    }
}

#[tokio::test]
async fn turn_credentials() {
    for engine in ENGINES {
        let h = Harness::new(engine, &[]).await;
        let (_, key) = h.account("dave", HOST, false).await;
        let r = h
            .call(
                "GET",
                HOST,
                "/api/accounts/me/services/turn",
                Some(&key),
                None,
            )
            .await;
        assert_eq!(r.status, 404);
        assert_eq!(r.json()["message"], "No TURN service configured");

        let h = Harness::new(
            engine,
            &[
                ("COTURN_SERVER_HOST", "turn.example.com"),
                ("COTURN_STATIC_AUTH_SECRET", "s3cret"),
                ("COTURN_SESSION_TTL_MINUTES", "10"),
            ],
        )
        .await;
        let (_, key) = h.account("dave", HOST, false).await;
        let r = h
            .call(
                "GET",
                HOST,
                "/api/accounts/me/services/turn",
                Some(&key),
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        let body = r.json();
        assert_eq!(body["ttl"], 600);
        assert_eq!(body["uris"], json!(["turn:turn.example.com"]));
        let username = body["username"].as_str().unwrap();
        let (expiry, random) = username.split_once(':').unwrap();
        let expiry: i64 = expiry.parse().unwrap();
        assert!((expiry - chrono::Utc::now().timestamp() - 600).abs() <= 60);
        assert_eq!(
            body["password"],
            flexiapi_api::turn::credentials_for("s3cret", expiry, random).1
        );
    }
}

#[tokio::test]
async fn me_shows_every_write_at_once_and_outside_writes_within_the_cache_ttl() {
    for engine in ENGINES {
        // The rendered-body cache is on here (the other tests run with a zero TTL).
        let h = Harness::new(engine, &[("FLEXIAPI_AUTH_CACHE_TTL_MS", "3000")]).await;
        let (_, admin) = h.account("admin", HOST, true).await;
        let (bob, key) = h.account("robert", HOST, false).await;
        let first = me(&h, &key).await;
        assert_eq!(first["username"], "robert");
        assert_eq!(me(&h, &key).await, first);

        // An admin's write through the API shows on the very next read.
        let path = format!("/api/accounts/{}", bob.id);
        let r = h
            .call(
                "PUT",
                HOST,
                &path,
                Some(&admin),
                Some(json!({"username": "robert", "display_name": "Bobby", "dictionary": {"k": "v"}})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        let after = me(&h, &key).await;
        assert_eq!(after["display_name"], "Bobby");
        assert_eq!(after["dictionary"], json!({"k": "v"}));

        // So does a GET that writes (a new provisioning token).
        let r = h
            .call("GET", HOST, "/api/accounts/me/provision", Some(&key), None)
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        let token = r.json()["provisioning_token"].clone();
        assert!(token.is_string());
        assert_eq!(me(&h, &key).await["provisioning_token"], token);

        // Another account never gets robert's body.
        let (_, alice_key) = h.account("alice", HOST, false).await;
        assert_eq!(me(&h, &alice_key).await["username"], "alice");

        // A write this process did not make (another node, the CLI) shows once the TTL has passed.
        let cached = me(&h, &key).await;
        h.exec(&format!(
            "UPDATE accounts SET display_name = 'Outside' WHERE id = {}",
            bob.id
        ))
        .await;
        assert_eq!(me(&h, &key).await, cached);
        tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
        assert_eq!(me(&h, &key).await["display_name"], "Outside");
    }
}

/// `GET /api/accounts/me` with `key`: checks the status and content type, gives the body.
async fn me(h: &Harness, key: &str) -> serde_json::Value {
    let r = h
        .call("GET", HOST, "/api/accounts/me", Some(key), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.headers["content-type"], "application/json");
    r.json()
}
