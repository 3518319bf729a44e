//! Admin account endpoints, validation, isolation between spaces and `max_accounts`, on both engines.

mod common;

use common::{Harness, HOST, OTHER};
use flexiapi_core::testing::ENGINES;
use serde_json::json;

#[tokio::test]
async fn admin_create_validate_list_show_search() {
    for engine in ENGINES {
        let h = Harness::new(engine, &[]).await;
        let (_, admin) = h.account("admin", OTHER, true).await;
        let create = |body| h.call("POST", OTHER, "/api/accounts", Some(&admin), Some(body));

        let r = create(json!({})).await;
        assert_eq!(r.status, 422);
        assert_eq!(
            r.json()["message"],
            "The username field is required. (and 1 more error)"
        );
        let r = create(json!({"username": "Foobar1", "password": "ab", "algorithm": "SHA-1", "dtmf_protocol": "x"})).await;
        assert_eq!(r.status, 422);
        let errors = &r.json()["errors"];
        assert_eq!(
            errors["username"],
            json!([
                "No uppercase letters are allowed.",
                "The username should be a valid SIP username"
            ])
        );
        assert_eq!(
            errors["password"],
            json!(["The password must be at least 6 characters."])
        );
        assert_eq!(
            errors["algorithm"],
            json!(["The selected algorithm is invalid."])
        );
        assert_eq!(
            errors["dtmf_protocol"],
            json!(["The selected dtmf protocol is invalid."])
        );
        let keys: Vec<&String> = errors.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["username", "password", "dtmf_protocol", "algorithm"]);
        let r = create(json!({"username": "+33612121212", "password": "secret"})).await;
        assert_eq!(
            r.json()["errors"]["username"],
            json!(["The username should not be a phone number"])
        );
        assert_eq!(
            h.count("SELECT COUNT(*) FROM accounts").await,
            1,
            "no partial write"
        );

        let r = h
            .call_with(
                "POST",
                OTHER,
                "/api/accounts",
                Some(&admin),
                &[("accept-language", "fr")],
                Some(json!({})),
            )
            .await;
        assert_eq!(
            r.json()["errors"]["username"],
            json!(["Le champ pseudo est obligatoire."])
        );

        let r = create(json!({
            "username": "foobar", "password": "secret", "dtmf_protocol": "sipinfo", "email": "foo@example.com",
            "display_name": "  Foo  ", "dictionary": {"color": "blue"}, "admin": true, "domain": HOST
        }))
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
        let created = r.json();
        assert_eq!(
            created["domain"], OTHER,
            "a plain admin cannot pick another domain"
        );
        assert_eq!(created["display_name"], "Foo");
        assert_eq!(created["admin"], true);
        assert_eq!(created["activated"], false);
        assert_eq!(created["dictionary"], json!({"color": "blue"}));
        assert_eq!(created["passwords"], json!([{"algorithm": "SHA-256"}]));
        assert!(created.get("space").is_none());
        let id = created["id"].as_i64().unwrap();

        let r = create(json!({"username": "foobar", "password": "secret"})).await;
        assert_eq!(
            r.json()["errors"]["username"],
            json!(["The username has already been taken."])
        );
        let r =
            create(json!({"username": "other1", "password": "secret", "email": "foo@example.com"}))
                .await;
        assert_eq!(
            r.json()["errors"]["email"],
            json!(["The email has already been taken."])
        );
        let r =
            create(json!({"username": "other1", "password": "secret", "dictionary": ["a"]})).await;
        assert_eq!(
            r.json()["errors"]["dictionary"],
            json!(["The dictionary must be an associative dictionary of strings"])
        );

        let r = h
            .call("GET", OTHER, "/api/accounts", Some(&admin), None)
            .await;
        assert_eq!(r.status, 200);
        let page = r.json();
        assert_eq!(page["total"], 2);
        assert_eq!(page["per_page"], 20);
        assert_eq!(page["path"], "http://sip2.example.com/api/accounts");
        assert!(page["data"][0].get("passwords").is_none());
        assert_eq!(page["data"][1]["phone_change_code"], json!(null));

        let r = h
            .call(
                "GET",
                OTHER,
                &format!("/api/accounts/{id}"),
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["phone"], json!(null));
        let r = h
            .call("GET", OTHER, "/api/accounts/abc", Some(&admin), None)
            .await;
        assert_eq!(r.status, 404);

        let r = h
            .call(
                "GET",
                OTHER,
                "/api/accounts/foobar@sip2.example.com/search",
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["call_forwardings"], json!([]));
        let r = h
            .call(
                "GET",
                OTHER,
                "/api/accounts/wrong/search",
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(r.status, 404);
        assert_eq!(r.json()["message"], "SIP address not found");
        let r = h
            .call(
                "GET",
                OTHER,
                "/api/accounts/foo@example.com/search-by-email",
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(r.json()["id"], id);
        let r = h
            .call(
                "GET",
                OTHER,
                "/api/accounts/no@example.com/search-by-email",
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(r.status, 404);
    }
}

#[tokio::test]
async fn admin_update_flags_delete() {
    for engine in ENGINES {
        let h = Harness::new(engine, &[]).await;
        let (_, admin) = h.account("admin", OTHER, true).await;
        let (target, target_key) = h.account("target", OTHER, false).await;
        let path = format!("/api/accounts/{}", target.id);

        let r = h.call("PUT", OTHER, &path, Some(&admin), None).await;
        assert_eq!(r.status, 422);
        assert!(r.json()["errors"]["username"].is_array());
        let r = h
            .call("PUT", OTHER, &path, Some(&admin), Some(json!({"username": "target", "display_name": "T", "dictionary": {"a": "1", "b": 2}})))
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["display_name"], "T");
        assert_eq!(r.json()["dictionary"], json!({"a": "1", "b": "2"}));
        let r = h
            .call(
                "PUT",
                OTHER,
                &path,
                Some(&admin),
                Some(json!({"username": "renamed", "password": "another", "algorithm": "SHA-256"})),
            )
            .await;
        assert_eq!(r.status, 200);
        let body = r.json();
        assert_eq!(body["username"], "renamed");
        assert_eq!(
            body["display_name"],
            json!(null),
            "absent display_name is cleared"
        );
        assert_eq!(body["activated"], true, "absent activated is kept");
        assert_eq!(
            body["dictionary"],
            json!({"a": "1", "b": "2"}),
            "absent dictionary is kept"
        );
        let r = h
            .call(
                "PUT",
                OTHER,
                &path,
                Some(&admin),
                Some(json!({"username": "renamed", "dictionary": []})),
            )
            .await;
        assert_eq!(r.json()["dictionary"], json!({}));
        let r = h
            .call(
                "PUT",
                OTHER,
                "/api/accounts/999999",
                Some(&admin),
                Some(json!({"username": "nobody"})),
            )
            .await;
        assert_eq!(r.status, 404);

        for (action, key, value) in [
            ("deactivate", "activated", false),
            ("activate", "activated", true),
            ("block", "blocked", true),
        ] {
            let r = h
                .call(
                    "POST",
                    OTHER,
                    &format!("{path}/{action}"),
                    Some(&admin),
                    None,
                )
                .await;
            assert_eq!(r.status, 200);
            assert_eq!(r.json()[key], value);
        }
        let r = h
            .call("GET", OTHER, "/api/accounts/me", Some(&target_key), None)
            .await;
        assert_eq!(r.status, 403, "blocked");
        let r = h
            .call(
                "POST",
                OTHER,
                &format!("{path}/unblock"),
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(r.json()["blocked"], false);
        let r = h
            .call("GET", OTHER, "/api/accounts/me", Some(&target_key), None)
            .await;
        assert_eq!(r.status, 200);

        let r = h
            .call(
                "GET",
                OTHER,
                &format!("{path}/provision"),
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(r.status, 200);
        let r = h
            .call(
                "POST",
                OTHER,
                &format!("{path}/send_provisioning_email"),
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(r.status, 403);
        assert_eq!(r.json()["message"], "No email configured");

        let r = h.call("DELETE", OTHER, &path, Some(&admin), None).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), "");
        let r = h.call("GET", OTHER, &path, Some(&admin), None).await;
        assert_eq!(r.status, 404);
        let r = h
            .call(
                "POST",
                OTHER,
                "/api/accounts",
                Some(&admin),
                Some(json!({"username": "renamed", "password": "secret"})),
            )
            .await;
        assert_eq!(r.status, 422, "tombstone blocks the username");
    }
}

#[tokio::test]
async fn isolation_between_spaces() {
    for engine in ENGINES {
        let h = Harness::new(engine, &[]).await;
        let (_, other_admin) = h.account("admin2", OTHER, true).await;
        let (_, super_admin) = h.account("root", HOST, true).await;
        let (victim, _) = h.account("victim", HOST, false).await;

        // An admin of OTHER on the super space's host: refused, no data.
        let r = h
            .call("GET", HOST, "/api/accounts", Some(&other_admin), None)
            .await;
        assert_eq!(r.status, 403);
        assert!(!r.text().contains("victim"));
        let r = h
            .call(
                "GET",
                HOST,
                &format!("/api/accounts/{}", victim.id),
                Some(&other_admin),
                None,
            )
            .await;
        assert_eq!(r.status, 403);
        // On its own host it cannot reach an account of another space either.
        for (method, suffix) in [
            ("GET", ""),
            ("DELETE", ""),
            ("POST", "/block"),
            ("GET", "/provision"),
        ] {
            let r = h
                .call(
                    method,
                    OTHER,
                    &format!("/api/accounts/{}{suffix}", victim.id),
                    Some(&other_admin),
                    None,
                )
                .await;
            assert_eq!(r.status, 404, "{method} {suffix}");
        }
        let r = h
            .call(
                "PUT",
                OTHER,
                &format!("/api/accounts/{}", victim.id),
                Some(&other_admin),
                Some(json!({"username": "hijack"})),
            )
            .await;
        assert_eq!(r.status, 404);
        assert_eq!(
            h.count("SELECT COUNT(*) FROM accounts WHERE username = 'victim' AND blocked = FALSE")
                .await,
            1
        );
        let r = h
            .call(
                "GET",
                OTHER,
                "/api/accounts/victim@sip.example.com/search",
                Some(&other_admin),
                None,
            )
            .await;
        assert_eq!(r.status, 404);
        let r = h
            .call("GET", OTHER, "/api/spaces", Some(&other_admin), None)
            .await;
        assert_eq!(r.status, 403);

        // The super admin creates accounts in another domain and updates them by id from its own host.
        let r = h
            .call(
                "POST",
                HOST,
                "/api/accounts",
                Some(&super_admin),
                Some(json!({"username": "remote", "password": "secret", "domain": OTHER})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["domain"], OTHER);
        let r = h
            .call("POST", HOST, "/api/accounts", Some(&super_admin), Some(json!({"username": "remote", "password": "secret", "domain": "unknown.example.com"})))
            .await;
        assert_eq!(r.status, 403);
        assert_eq!(r.json()["message"], "This action is unauthorized.");
        let r = h
            .call("GET", OTHER, "/api/accounts", Some(&super_admin), None)
            .await;
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["total"], 2);
    }
}

#[tokio::test]
async fn max_accounts_refusals() {
    for engine in ENGINES {
        let h = Harness::new(engine, &[]).await;
        let (_, admin) = h.account("admin", OTHER, true).await;
        h.exec("UPDATE spaces SET max_accounts = 2 WHERE domain = 'sip2.example.com'")
            .await;
        let r = h
            .call(
                "POST",
                OTHER,
                "/api/accounts",
                Some(&admin),
                Some(json!({"username": "first1", "password": "secret"})),
            )
            .await;
        assert_eq!(r.status, 200);
        let r = h
            .call(
                "POST",
                OTHER,
                "/api/accounts",
                Some(&admin),
                Some(json!({"username": "second", "password": "secret"})),
            )
            .await;
        assert_eq!(r.status, 403);
        assert_eq!(
            h.count("SELECT COUNT(*) FROM accounts WHERE domain = 'sip2.example.com'")
                .await,
            2
        );
        // Public creation is refused before validation.
        let r = h
            .call(
                "POST",
                OTHER,
                "/api/accounts/with-account-creation-token",
                None,
                Some(json!({})),
            )
            .await;
        assert_eq!(r.status, 403);
    }
}
