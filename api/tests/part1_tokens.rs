//! Account creation (request) tokens, recovery tokens, auth tokens, public account creation; both engines.

mod common;

use common::{Harness, HOST, OTHER};
use flexiapi_core::testing::ENGINES;
use serde_json::json;

/// A fake `flexisip_pusher` that records its arguments and succeeds.
fn fake_pusher(dir: &std::path::Path) -> (String, std::path::PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let log = dir.join("pushes.log");
    let script = dir.join("flexisip_pusher");
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho \"$@\" >> {}\n", log.display()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    (script.display().to_string(), log)
}

#[tokio::test]
async fn send_by_push_validation_pusher_and_throttle() {
    for engine in ENGINES {
        let h = Harness::new(engine, &[]).await;
        for path in [
            "/api/account_creation_tokens/send-by-push",
            "/api/account_recovery_tokens/send-by-push",
        ] {
            let r = h.call("POST", HOST, path, None, Some(json!({}))).await;
            assert_eq!(r.status, 422);
            let r = h
                .call(
                    "POST",
                    HOST,
                    path,
                    None,
                    Some(
                        json!({"pn_provider": "wrong", "pn_param": "@wrong", "pn_prid": "@wrong"}),
                    ),
                )
                .await;
            assert_eq!(r.status, 422);
            let errors = r.json()["errors"].clone();
            assert_eq!(
                errors["pn_provider"],
                json!(["The pn provider should be in apns.dev, apns, fcm"])
            );
            assert!(errors["pn_param"].is_array() && errors["pn_prid"].is_array());
            let r = h
                .call(
                    "POST",
                    HOST,
                    path,
                    None,
                    Some(json!({"pn_provider": "fcm", "pn_param": "a.b_c", "pn_prid": "x-y:z"})),
                )
                .await;
            assert_eq!(r.status, 503, "no pusher configured");
            assert_eq!(r.json()["message"], "Token not sent");
        }
        assert_eq!(
            h.count("SELECT COUNT(*) FROM account_creation_tokens")
                .await,
            0
        );

        let dir = tempfile::tempdir().unwrap();
        let (pusher, log) = fake_pusher(dir.path());
        let h = Harness::new(engine, &[("APP_FLEXISIP_PUSHER_PATH", &pusher)]).await;
        let body = json!({"pn_provider": "apns", "pn_param": "team.app", "pn_prid": "device1"});
        let path = "/api/account_creation_tokens/send-by-push";
        let r = h.call("POST", HOST, path, None, Some(body.clone())).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.text(), "");
        let logged = std::fs::read_to_string(&log).unwrap();
        let token: String = flexiapi_core::with_db!(h.db(), pool => sqlx::query_scalar(
            "SELECT token FROM account_creation_tokens").fetch_one(pool).await)
        .unwrap();
        assert!(
            logged.contains("--pn-provider apns --pn-param team.app --pn-prid device1"),
            "{logged}"
        );
        assert!(
            logged.contains(&format!("--customPayload {{\"token\":\"{token}\"}}")),
            "{logged}"
        );
        assert!(logged.contains("--apple-push-type Background"), "{logged}");
        // Unused tokens do not throttle; a used one does.
        let r = h.call("POST", HOST, path, None, Some(body.clone())).await;
        assert_eq!(r.status, 200);
        h.exec("UPDATE account_creation_tokens SET used = TRUE")
            .await;
        let r = h.call("POST", HOST, path, None, Some(body.clone())).await;
        assert_eq!(r.status, 429);
        assert_eq!(r.json()["message"], "Last token requested too recently");
        let r = h
            .call(
                "POST",
                HOST,
                path,
                None,
                Some(json!({"pn_provider": "apns", "pn_param": "team.app", "pn_prid": "device2"})),
            )
            .await;
        assert_eq!(r.status, 200, "another device is not throttled");
    }
}

#[tokio::test]
async fn creation_request_token_to_account() {
    for engine in ENGINES {
        let h = Harness::new(engine, &[]).await;
        let (_, admin) = h.account("admin", HOST, true).await;
        let r = h
            .call(
                "POST",
                HOST,
                "/api/account_creation_request_tokens",
                None,
                None,
            )
            .await;
        assert_eq!(r.status, 201);
        let request_token = r.json()["token"].as_str().unwrap().to_owned();
        assert_eq!(
            r.json()["validation_url"],
            format!("http://sip.example.com/creation_token/check/{request_token}")
        );

        let path = "/api/account_creation_tokens/using-account-creation-request-token";
        let r = h
            .call(
                "POST",
                HOST,
                path,
                None,
                Some(json!({"account_creation_request_token": "unknown123456"})),
            )
            .await;
        assert_eq!(r.status, 422);
        let r = h
            .call(
                "POST",
                HOST,
                path,
                None,
                Some(json!({"account_creation_request_token": request_token})),
            )
            .await;
        assert_eq!(r.status, 404, "not validated yet");
        h.exec("UPDATE account_creation_request_tokens SET validated_at = created_at")
            .await;
        let r = h
            .call(
                "POST",
                HOST,
                path,
                None,
                Some(json!({"account_creation_request_token": request_token})),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
        let token = r.json()["token"].as_str().unwrap().to_owned();
        assert_eq!(r.json()["expire_at"], json!(null));
        assert_eq!(h.count("SELECT COUNT(*) FROM account_creation_request_tokens WHERE used = TRUE AND acc_creation_token_id IS NOT NULL").await, 1);
        let r = h
            .call(
                "POST",
                HOST,
                path,
                None,
                Some(json!({"account_creation_request_token": request_token})),
            )
            .await;
        assert_eq!(r.status, 422, "request token spent");

        let create = |body| {
            h.call(
                "POST",
                HOST,
                "/api/accounts/with-account-creation-token",
                None,
                Some(body),
            )
        };
        let r = create(json!({"username": "newbie", "password": "secret", "account_creation_token": token, "admin": false})).await;
        assert_eq!(r.status, 422);
        assert_eq!(
            r.json()["errors"]["admin"],
            json!(["The admin field must be missing."])
        );
        let r = create(
            json!({"username": "newbie", "password": "secret", "account_creation_token": "wrong"}),
        )
        .await;
        assert_eq!(
            r.json()["errors"]["account_creation_token"],
            json!([
                "Please provide a valid account_creation_token",
                "The provided token is expired"
            ])
        );
        let r = create(json!({"username": "newbie", "password": "secret", "account_creation_token": token, "dtmf_protocol": "rfc2833"})).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let account = r.json();
        assert_eq!(account["activated"], false);
        assert_eq!(account["user_agent"], "Example");
        assert_eq!(account["passwords"], json!([{"algorithm": "SHA-256"}]));
        let r = create(
            json!({"username": "newbie2", "password": "secret", "account_creation_token": token}),
        )
        .await;
        assert_eq!(r.status, 422, "token reused");
        assert_eq!(
            h.count(&format!("SELECT COUNT(*) FROM account_creation_tokens WHERE used = TRUE AND account_id = {}", account["id"])).await,
            1
        );

        // Admin-made tokens, expiry and consumption.
        let r = h
            .call(
                "POST",
                HOST,
                "/api/account_creation_tokens",
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(r.status, 201);
        let admin_token = r.json()["token"].as_str().unwrap().to_owned();
        let (_, user_key) = h.account("consumer", HOST, false).await;
        let r = h
            .call(
                "POST",
                HOST,
                "/api/account_creation_tokens/consume",
                Some(&user_key),
                Some(json!({"account_creation_token": "nope"})),
            )
            .await;
        assert_eq!(r.status, 404);
        let r = h
            .call(
                "POST",
                HOST,
                "/api/account_creation_tokens/consume",
                Some(&user_key),
                Some(json!({"account_creation_token": admin_token})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["used"], true);
        let r = h
            .call(
                "POST",
                HOST,
                "/api/account_creation_tokens/consume",
                Some(&user_key),
                Some(json!({"account_creation_token": admin_token})),
            )
            .await;
        assert_eq!(r.status, 404);

        let h = Harness::new(
            engine,
            &[("APP_ACCOUNT_CREATION_TOKEN_EXPIRATION_MINUTES", "10")],
        )
        .await;
        let (_, admin) = h.account("admin", HOST, true).await;
        let r = h
            .call(
                "POST",
                HOST,
                "/api/account_creation_tokens",
                Some(&admin),
                None,
            )
            .await;
        let expiring = r.json();
        assert!(expiring["expire_at"]
            .as_str()
            .unwrap()
            .ends_with(".000000Z"));
        h.exec("UPDATE account_creation_tokens SET created_at = '2000-01-01 00:00:00'")
            .await;
        let r = h
            .call("POST", HOST, "/api/accounts/with-account-creation-token", None, Some(json!({"username": "late12", "password": "secret", "account_creation_token": expiring["token"]})))
            .await;
        assert_eq!(
            r.json()["errors"]["account_creation_token"],
            json!(["The provided token is expired"])
        );
    }
}

#[tokio::test]
async fn blacklisted_usernames() {
    for engine in ENGINES {
        let h = Harness::new(
            engine,
            &[(
                "ACCOUNT_BLACKLISTED_USERNAMES",
                "foobar,blacklisted,username-.*",
            )],
        )
        .await;
        let (_, admin) = h.account("admin", OTHER, true).await;
        for (username, status) in [
            ("foobar", 422),
            ("username-12", 422),
            ("valid-username", 200),
        ] {
            let r = h
                .call(
                    "POST",
                    OTHER,
                    "/api/accounts",
                    Some(&admin),
                    Some(json!({"username": username, "password": "secret"})),
                )
                .await;
            assert_eq!(r.status, status, "{username}: {}", r.text());
            if status == 422 {
                assert_eq!(
                    r.json()["errors"]["username"],
                    json!(["Username already used."])
                );
            }
        }
    }
}

#[tokio::test]
async fn auth_tokens() {
    for engine in ENGINES {
        let h = Harness::new(engine, &[]).await;
        let (account, key) = h.account("eve", HOST, false).await;
        let r = h
            .call("POST", HOST, "/api/accounts/auth_token", None, None)
            .await;
        assert_eq!(r.status, 201);
        let body = r.json();
        let token = body["token"].as_str().unwrap().to_owned();
        assert_eq!(token.len(), 32);
        assert!(body.get("account_id").is_none());

        let exchange = format!("/api/accounts/me/api_key/{token}");
        let r = h.call("GET", HOST, &exchange, None, None).await;
        assert_eq!(r.status, 404, "not attached yet");
        let attach = format!("/api/accounts/auth_token/{token}/attach");
        let r = h.call("GET", HOST, &attach, Some(&key), None).await;
        assert_eq!(r.status, 200);
        let r = h.call("GET", HOST, &attach, Some(&key), None).await;
        assert_eq!(r.status, 404, "already attached");
        let r = h
            .call(
                "GET",
                HOST,
                "/api/accounts/auth_token/wrong/attach",
                Some(&key),
                None,
            )
            .await;
        assert_eq!(r.status, 404);

        let r = h.call("GET", HOST, &exchange, None, None).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let api_key = r.json()["api_key"].as_str().unwrap().to_owned();
        assert!(r.headers["set-cookie"]
            .to_str()
            .unwrap()
            .starts_with(&format!("x-api-key={api_key};")));
        let r = h.call("GET", HOST, &exchange, None, None).await;
        assert_eq!(r.status, 404, "spent");
        let r = h
            .call_with(
                "GET",
                HOST,
                "/api/accounts/me",
                Some(&api_key),
                &[("from", "sip:bogus@sip.example.com")],
                None,
            )
            .await;
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["id"], account.id);

        // Tokens older than 5 minutes are dead.
        let r = h
            .call("POST", HOST, "/api/accounts/auth_token", None, None)
            .await;
        let old = r.json()["token"].as_str().unwrap().to_owned();
        h.exec(&format!(
            "UPDATE auth_tokens SET created_at = '2000-01-01 00:00:00' WHERE token = '{old}'"
        ))
        .await;
        let r = h
            .call(
                "GET",
                HOST,
                &format!("/api/accounts/auth_token/{old}/attach"),
                Some(&key),
                None,
            )
            .await;
        assert_eq!(r.status, 404);
    }
}
