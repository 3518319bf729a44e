//! Account types, actions, dictionary, external accounts, contacts and contacts lists (api-accounts.md
//! §2.11–2.18): validation, status codes, bodies, space isolation and role checks, on both engines.

mod common;

use common::{Harness, HOST, OTHER};
use flexiapi_core::testing::ENGINES;
use serde_json::json;

#[tokio::test]
async fn account_types_crud_attach_and_refusals() {
    for engine in ENGINES {
        let h = Harness::new(engine, &[]).await;
        let (_, admin) = h.account("admin", OTHER, true).await;
        let (user, user_key) = h.account("bob", OTHER, false).await;
        let (foreign, _) = h.account("carol", HOST, false).await;
        let key = Some(admin.as_str());

        let r = h
            .call("POST", OTHER, "/api/account_types", key, Some(json!({})))
            .await;
        assert_eq!(r.status, 422);
        assert_eq!(
            r.json()["errors"]["key"],
            json!(["The key field is required."])
        );
        let r = h
            .call(
                "POST",
                OTHER,
                "/api/account_types",
                key,
                Some(json!({"key": "Phone!"})),
            )
            .await;
        assert_eq!(
            r.json()["errors"]["key"],
            json!([
                "The key may only contain letters, numbers, dashes and underscores.",
                "No uppercase letters are allowed."
            ])
        );
        let r = h
            .call(
                "POST",
                OTHER,
                "/api/account_types",
                key,
                Some(json!({"key": "phone"})),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
        let type_id = r.json()["id"].as_i64().unwrap();
        assert_eq!(r.json(), json!({"key": "phone", "id": type_id}));
        let r = h
            .call(
                "POST",
                OTHER,
                "/api/account_types",
                key,
                Some(json!({"key": "phone"})),
            )
            .await;
        assert_eq!(
            r.json()["errors"]["key"],
            json!(["The key has already been taken."])
        );

        let r = h.call("GET", OTHER, "/api/account_types", key, None).await;
        assert_eq!(r.json(), json!([{"id": type_id, "key": "phone"}]));
        let one = format!("/api/account_types/{type_id}");
        assert_eq!(
            h.call("GET", OTHER, &one, key, None).await.json()["key"],
            "phone"
        );
        assert_eq!(
            h.call("GET", OTHER, "/api/account_types/999", key, None)
                .await
                .status,
            404
        );
        assert_eq!(
            h.call("GET", OTHER, "/api/account_types/abc", key, None)
                .await
                .status,
            404
        );
        let r = h
            .call("PUT", OTHER, &one, key, Some(json!({"key": "door"})))
            .await;
        assert_eq!(
            (r.status.as_u16(), r.json()),
            (200, json!({"id": type_id, "key": "door"}))
        );
        assert_eq!(
            h.call("PUT", OTHER, &one, key, Some(json!({})))
                .await
                .status,
            422,
            "never a 500"
        );

        let attach = format!("/api/accounts/{}/types/{type_id}", user.id);
        let r = h.call("POST", OTHER, &attach, key, None).await;
        assert_eq!((r.status.as_u16(), r.text()), (200, String::new()));
        assert_eq!(
            h.call("POST", OTHER, &attach, key, None).await.status,
            403,
            "already attached"
        );
        let unknown = format!("/api/accounts/{}/types/999", user.id);
        assert_eq!(h.call("POST", OTHER, &unknown, key, None).await.status, 404);
        let shown = h
            .call(
                "GET",
                OTHER,
                &format!("/api/accounts/{}", user.id),
                key,
                None,
            )
            .await;
        assert_eq!(
            shown.json()["types"],
            json!([{"id": type_id, "key": "door"}])
        );
        // Isolation: an account of another space is not reachable through this host; users are refused.
        let r = h
            .call(
                "POST",
                OTHER,
                &format!("/api/accounts/{}/types/{type_id}", foreign.id),
                key,
                None,
            )
            .await;
        assert_eq!(r.status, 404);
        assert_eq!(
            h.call("POST", HOST, &attach, key, None).await.status,
            403,
            "admin of another space"
        );
        assert_eq!(
            h.call("GET", OTHER, "/api/account_types", Some(&user_key), None)
                .await
                .status,
            403
        );

        let r = h.call("DELETE", OTHER, &attach, key, None).await;
        assert_eq!((r.status.as_u16(), r.text()), (200, "1".to_owned()));
        assert_eq!(
            h.call("DELETE", OTHER, &attach, key, None).await.status,
            403,
            "not attached"
        );
        h.call("POST", OTHER, &attach, key, None).await;
        let r = h.call("DELETE", OTHER, &one, key, None).await;
        assert_eq!(r.text(), "1");
        assert_eq!(
            h.count("SELECT COUNT(*) FROM account_account_type").await,
            0,
            "pivot cascades"
        );
        assert_eq!(h.call("DELETE", OTHER, &one, key, None).await.text(), "0");
    }
}

#[tokio::test]
async fn actions_need_dtmf_and_validate() {
    for engine in ENGINES {
        let h = Harness::new(engine, &[]).await;
        let (_, admin) = h.account("admin", OTHER, true).await;
        let (user, user_key) = h.account("bob", OTHER, false).await;
        let (foreign, _) = h.account("carol", HOST, false).await;
        let key = Some(admin.as_str());
        let path = format!("/api/accounts/{}/actions", user.id);

        let r = h.call("POST", OTHER, &path, key, Some(json!({}))).await;
        assert_eq!(
            (r.status.as_u16(), r.json()),
            (403, json!({"message": "DTMF Protocol must be configured"})),
            "checked before validation"
        );
        assert_eq!(h.call("GET", OTHER, &path, key, None).await.status, 403);
        h.exec(&format!(
            "UPDATE accounts SET dtmf_protocol = 'sipinfo' WHERE id IN ({}, {})",
            user.id, foreign.id
        ))
        .await;

        let r = h
            .call(
                "POST",
                OTHER,
                &path,
                key,
                Some(json!({"key": "Open Door", "code": "1-2"})),
            )
            .await;
        assert_eq!(r.status, 422);
        assert_eq!(
            r.json()["errors"],
            json!({
                "key": ["The key may only contain letters, numbers, dashes and underscores.", "No uppercase letters are allowed."],
                "code": ["The code may only contain letters and numbers."]
            })
        );
        let r = h
            .call_with(
                "POST",
                OTHER,
                &path,
                key,
                &[("accept-language", "fr")],
                Some(json!({})),
            )
            .await;
        assert_eq!(
            r.json()["errors"]["key"],
            json!(["Le champ key est obligatoire."])
        );
        let r = h
            .call(
                "POST",
                OTHER,
                &path,
                key,
                Some(json!({"key": "open_door", "code": "12a"})),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
        let id = r.json()["id"].as_i64().unwrap();
        assert_eq!(
            r.json(),
            json!({"key": "open_door", "code": "12a", "id": id})
        );

        let r = h.call("GET", OTHER, &path, key, None).await;
        assert_eq!(
            r.json(),
            json!([{"id": id, "key": "open_door", "code": "12a"}])
        );
        let one = format!("{path}/{id}");
        assert_eq!(
            h.call("GET", OTHER, &one, key, None).await.json()["code"],
            "12a"
        );
        assert_eq!(
            h.call("GET", OTHER, &format!("{path}/999"), key, None)
                .await
                .status,
            404
        );
        let r = h
            .call(
                "PUT",
                OTHER,
                &one,
                key,
                Some(json!({"key": "gate", "code": "9"})),
            )
            .await;
        assert_eq!(r.json(), json!({"id": id, "key": "gate", "code": "9"}));
        assert_eq!(
            h.call("PUT", OTHER, &one, key, Some(json!({"key": "gate"})))
                .await
                .status,
            422
        );
        let r = h
            .call(
                "PUT",
                OTHER,
                &format!("{path}/999"),
                key,
                Some(json!({"key": "a", "code": "1"})),
            )
            .await;
        assert_eq!(r.status, 404);

        // Isolation and roles.
        let foreign_path = format!("/api/accounts/{}/actions", foreign.id);
        assert_eq!(
            h.call("GET", OTHER, &foreign_path, key, None).await.status,
            404
        );
        assert_eq!(h.call("GET", HOST, &path, key, None).await.status, 403);
        assert_eq!(
            h.call("GET", OTHER, &path, Some(&user_key), None)
                .await
                .status,
            403
        );
        assert_eq!(h.call("GET", OTHER, &path, None, None).await.status, 401);

        assert_eq!(
            h.call("DELETE", OTHER, &format!("{path}/999"), key, None)
                .await
                .text(),
            "0"
        );
        assert_eq!(h.call("DELETE", OTHER, &one, key, None).await.text(), "1");
        assert_eq!(
            h.call("GET", OTHER, &path, key, None).await.json(),
            json!([])
        );
    }
}

#[tokio::test]
async fn dictionary_set_show_delete_clear() {
    for engine in ENGINES {
        let h = Harness::new(engine, &[]).await;
        let (_, admin) = h.account("admin", OTHER, true).await;
        let (user, user_key) = h.account("bob", OTHER, false).await;
        let (foreign, _) = h.account("carol", HOST, false).await;
        let key = Some(admin.as_str());
        let base = format!("/api/accounts/{}/dictionary", user.id);

        let r = h.call("GET", OTHER, &base, key, None).await;
        assert_eq!((r.status.as_u16(), r.text()), (200, "{}".to_owned()));
        let r = h
            .call(
                "POST",
                OTHER,
                &format!("{base}/color"),
                key,
                Some(json!({})),
            )
            .await;
        assert_eq!(
            r.json()["errors"]["value"],
            json!(["The value field is required."])
        );
        let r = h
            .call(
                "POST",
                OTHER,
                &format!("{base}/color"),
                key,
                Some(json!({"value": ["x"]})),
            )
            .await;
        assert_eq!(r.status, 422, "arrays are refused, never a 500");
        let r = h
            .call(
                "POST",
                OTHER,
                &format!("{base}/color"),
                key,
                Some(json!({"value": "blue"})),
            )
            .await;
        assert_eq!(
            (r.status.as_u16(), r.json()),
            (201, json!({"value": "blue"}))
        );
        let r = h
            .call(
                "POST",
                OTHER,
                &format!("{base}/color"),
                key,
                Some(json!({"value": "red"})),
            )
            .await;
        assert_eq!(
            (r.status.as_u16(), r.json()),
            (201, json!({"value": "red"})),
            "overwrite is 201 too"
        );
        h.call(
            "POST",
            OTHER,
            &format!("{base}/size"),
            key,
            Some(json!({"value": 42})),
        )
        .await;
        let r = h.call("GET", OTHER, &base, key, None).await;
        assert_eq!(r.json(), json!({"color": "red", "size": "42"}));
        let shown = h
            .call(
                "GET",
                OTHER,
                &format!("/api/accounts/{}", user.id),
                key,
                None,
            )
            .await;
        assert_eq!(
            shown.json()["dictionary"],
            json!({"color": "red", "size": "42"})
        );
        assert_eq!(
            h.call("GET", OTHER, &format!("{base}/color"), key, None)
                .await
                .json(),
            json!({"value": "red"})
        );
        let r = h
            .call("GET", OTHER, &format!("{base}/nope"), key, None)
            .await;
        assert_eq!((r.status.as_u16(), r.text()), (200, String::new()));

        let foreign_base = format!("/api/accounts/{}/dictionary", foreign.id);
        assert_eq!(
            h.call("GET", OTHER, &foreign_base, key, None).await.status,
            404
        );
        let r = h
            .call(
                "POST",
                OTHER,
                &format!("{foreign_base}/x"),
                key,
                Some(json!({"value": "1"})),
            )
            .await;
        assert_eq!(r.status, 404);
        assert_eq!(
            h.call("GET", OTHER, &base, Some(&user_key), None)
                .await
                .status,
            403
        );

        assert_eq!(
            h.call("DELETE", OTHER, &format!("{base}/color"), key, None)
                .await
                .text(),
            "1"
        );
        assert_eq!(
            h.call("DELETE", OTHER, &format!("{base}/color"), key, None)
                .await
                .text(),
            "0"
        );
        h.call(
            "POST",
            OTHER,
            &format!("{base}/a"),
            key,
            Some(json!({"value": "1"})),
        )
        .await;
        assert_eq!(h.call("DELETE", OTHER, &base, key, None).await.text(), "2");
        assert_eq!(h.call("GET", OTHER, &base, key, None).await.text(), "{}");
    }
}

#[tokio::test]
async fn external_account_rules_create_update_delete() {
    for engine in ENGINES {
        let h = Harness::new(engine, &[]).await;
        let (_, admin) = h.account("admin", OTHER, true).await;
        let (user, user_key) = h.account("bob", OTHER, false).await;
        let (other_user, _) = h.account("dave", OTHER, false).await;
        let (foreign, _) = h.account("carol", HOST, false).await;
        let key = Some(admin.as_str());
        let path = format!("/api/accounts/{}/external", user.id);

        assert_eq!(
            h.call("GET", OTHER, &path, key, None).await.status,
            404,
            "none yet"
        );
        let r = h.call("POST", OTHER, &path, key, Some(json!({}))).await;
        assert_eq!(r.status, 422);
        let errors = r.json()["errors"].clone();
        let fields: Vec<&String> = errors.as_object().unwrap().keys().collect();
        assert_eq!(fields, ["username", "domain", "protocol"]);
        let r = h
            .call(
                "POST",
                OTHER,
                &path,
                key,
                Some(json!({"username": "Ext", "domain": "not a domain", "realm": "x.org", "protocol": "SCTP"})),
            )
            .await;
        let errors = r.json()["errors"].clone();
        assert_eq!(
            errors["username"],
            json!(["The username should be a valid SIP username"])
        );
        assert_eq!(
            errors["domain"],
            json!(["The domain should be a valid domain"])
        );
        assert_eq!(
            errors["protocol"],
            json!(["The selected protocol is invalid."])
        );
        let r = h
            .call(
                "POST",
                OTHER,
                &path,
                key,
                Some(json!({"username": "ext", "domain": "ext.org", "realm": "ext.org", "registrar": "ext.org", "protocol": "UDP"})),
            )
            .await;
        assert_eq!(
            r.json()["errors"]["realm"],
            json!(["The realm and domain must be different."])
        );
        assert_eq!(
            r.json()["errors"]["registrar"],
            json!(["The registrar and domain must be different."])
        );
        let r = h
            .call(
                "POST",
                OTHER,
                &path,
                key,
                Some(json!({"username": "ext", "domain": "10.0.0.1", "protocol": "UDP"})),
            )
            .await;
        assert_eq!(
            (r.status.as_u16(), r.json()["errors"].clone()),
            (
                422,
                json!({"password": ["The password field is required."]})
            ),
            "an IP is a valid domain; the password is required on creation"
        );

        let r = h
            .call(
                "POST",
                OTHER,
                &path,
                key,
                Some(json!({"username": "ext", "domain": "ext.org", "realm": ["x"], "registrar": "", "protocol": "TLS", "password": ["p"]})),
            )
            .await;
        assert_eq!(
            r.json()["errors"],
            json!({"realm": ["The realm must be a string."]}),
            "arrays refused, empty strings are null"
        );
        let r = h
            .call(
                "POST",
                OTHER,
                &path,
                key,
                Some(json!({"username": "ext", "domain": "ext.org", "protocol": "TLS", "password": ["p"]})),
            )
            .await;
        assert_eq!(
            r.json()["errors"],
            json!({"password": ["The password must be a string."]})
        );
        let body = json!({"username": "ext", "domain": "ext.org", "realm": "realm.org", "protocol": "TLS", "password": "secret"});
        let r = h.call("POST", OTHER, &path, key, Some(body)).await;
        assert_eq!(r.status, 201, "{}", r.text());
        let created = r.json();
        let md5 = flexiapi_core::model::Algorithm::Md5.ha1("ext", "realm.org", "secret");
        assert_eq!(created["password"], md5);
        assert_eq!(created["algorithm"], "MD5");
        assert_eq!(created["registrar"], json!(null));
        assert_eq!(created["account_id"], user.id);
        assert_eq!(
            h.call("GET", OTHER, &path, key, None).await.json()["username"],
            "ext"
        );

        // Same values again without a password: an update keeping the hash (decision: own row ignored).
        let same = json!({"username": "ext", "domain": "ext.org", "realm": "realm.org", "protocol": "UDP"});
        let r = h.call("POST", OTHER, &path, key, Some(same)).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(
            (r.json()["protocol"].clone(), r.json()["password"].clone()),
            (json!("UDP"), json!(md5))
        );
        let r = h
            .call(
                "POST",
                OTHER,
                &path,
                key,
                Some(json!({"username": "ext", "domain": "ext.org", "protocol": "UDP"})),
            )
            .await;
        assert_eq!(r.status, 422, "realm changed → password required");
        // Another account may not take the same (username, domain).
        let other_path = format!("/api/accounts/{}/external", other_user.id);
        let r = h
            .call("POST", OTHER, &other_path, key, Some(json!({"username": "ext", "domain": "ext.org", "protocol": "UDP", "password": "p"})))
            .await;
        assert_eq!(
            r.json()["errors"]["username"],
            json!(["The username has already been taken."])
        );

        let foreign_path = format!("/api/accounts/{}/external", foreign.id);
        let body = json!({"username": "z", "domain": "z.org", "protocol": "UDP", "password": "p"});
        assert_eq!(
            h.call("POST", OTHER, &foreign_path, key, Some(body.clone()))
                .await
                .status,
            404
        );
        assert_eq!(
            h.call("POST", OTHER, &path, Some(&user_key), Some(body))
                .await
                .status,
            403
        );
        assert_eq!(h.count("SELECT COUNT(*) FROM external_accounts").await, 1);

        let r = h.call("DELETE", OTHER, &path, key, None).await;
        assert_eq!((r.status.as_u16(), r.text()), (200, "1".to_owned()));
        let r = h.call("DELETE", OTHER, &path, key, None).await;
        assert_eq!((r.status.as_u16(), r.text()), (200, String::new()));
        assert_eq!(h.call("GET", OTHER, &path, key, None).await.status, 404);
    }
}

#[tokio::test]
async fn contacts_and_contacts_lists() {
    for engine in ENGINES {
        let h = Harness::new(engine, &[]).await;
        let (_, admin) = h.account("admin", OTHER, true).await;
        let (_, host_admin) = h.account("root", HOST, true).await;
        let (alice, alice_key) = h.account("alice", OTHER, false).await;
        let (bob, _) = h.account("bob", OTHER, false).await;
        let (dave, _) = h.account("dave", OTHER, false).await;
        let (foreign, _) = h.account("carol", HOST, false).await;
        let key = Some(admin.as_str());

        // Direct contacts.
        let add = format!("/api/accounts/{}/contacts/{}", alice.id, bob.id);
        let r = h.call("POST", OTHER, &add, key, None).await;
        assert_eq!((r.status.as_u16(), r.text()), (200, String::new()));
        h.call("POST", OTHER, &add, key, None).await;
        assert_eq!(
            h.count("SELECT COUNT(*) FROM contacts").await,
            1,
            "idempotent"
        );
        let cross = format!("/api/accounts/{}/contacts/{}", alice.id, foreign.id);
        assert_eq!(
            h.call("POST", OTHER, &cross, key, None).await.status,
            404,
            "contact of another space"
        );
        let list = format!("/api/accounts/{}/contacts", alice.id);
        let r = h.call("GET", OTHER, &list, key, None).await;
        assert_eq!(r.json().as_array().unwrap().len(), 1);
        assert_eq!(r.json()[0]["username"], "bob");
        assert_eq!(
            h.call("GET", OTHER, &add, key, None).await.json()["id"],
            bob.id
        );
        let not_contact = format!("/api/accounts/{}/contacts/{}", alice.id, dave.id);
        assert_eq!(
            h.call("GET", OTHER, &not_contact, key, None).await.status,
            404
        );
        assert_eq!(
            h.call("GET", OTHER, &list, Some(&alice_key), None)
                .await
                .status,
            403
        );
        assert_eq!(
            h.call(
                "GET",
                OTHER,
                &format!("/api/accounts/{}/contacts", foreign.id),
                key,
                None
            )
            .await
            .status,
            404
        );

        // Contacts lists.
        let r = h
            .call("POST", OTHER, "/api/contacts_lists", key, Some(json!({})))
            .await;
        assert_eq!(
            r.json()["errors"],
            json!({"title": ["The title field is required."], "description": ["The description field is required."]})
        );
        let r = h
            .call(
                "POST",
                OTHER,
                "/api/contacts_lists",
                key,
                Some(json!({"title": "Team", "description": "All"})),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
        let created = r.json();
        let list_id = created["id"].as_i64().unwrap();
        assert_eq!(created["title"], "Team");
        assert!(created.get("contacts_count").is_none());
        let r = h
            .call(
                "POST",
                OTHER,
                "/api/contacts_lists",
                key,
                Some(json!({"title": ["a"], "description": {"b": 1}})),
            )
            .await;
        assert_eq!(
            r.json()["errors"],
            json!({"title": ["The title must be a string."], "description": ["The description must be a string."]}),
            "never a 500"
        );
        let r = h
            .call(
                "POST",
                HOST,
                "/api/contacts_lists",
                Some(&host_admin),
                Some(json!({"title": "Team", "description": "x"})),
            )
            .await;
        assert_eq!(
            r.json()["errors"]["title"],
            json!(["The title has already been taken."]),
            "never a 500"
        );

        let members = format!("/api/contacts_lists/{list_id}/contacts/{}", dave.id);
        assert_eq!(h.call("POST", OTHER, &members, key, None).await.status, 200);
        h.call("POST", OTHER, &members, key, None).await;
        let foreign_member = format!("/api/contacts_lists/{list_id}/contacts/{}", foreign.id);
        assert_eq!(
            h.call("POST", OTHER, &foreign_member, key, None)
                .await
                .status,
            404
        );
        let r = h.call("GET", OTHER, "/api/contacts_lists", key, None).await;
        assert_eq!(r.json()[0]["contacts_count"], 1);
        let one = format!("/api/contacts_lists/{list_id}");
        assert_eq!(
            h.call("GET", OTHER, &one, key, None).await.json()["title"],
            "Team"
        );
        // The list of space OTHER is invisible from the super space's host.
        assert_eq!(
            h.call("GET", HOST, &one, Some(&host_admin), None)
                .await
                .status,
            404
        );
        assert_eq!(
            h.call("GET", HOST, "/api/contacts_lists", Some(&host_admin), None)
                .await
                .json(),
            json!([])
        );
        let r = h
            .call(
                "PUT",
                OTHER,
                &one,
                key,
                Some(json!({"title": "Crew", "description": "d"})),
            )
            .await;
        assert_eq!(
            (
                r.json()["title"].clone(),
                r.json()["contacts_count"].clone()
            ),
            (json!("Crew"), json!(1))
        );

        let attach = format!("/api/accounts/{}/contacts_lists/{list_id}", alice.id);
        let r = h.call("POST", OTHER, &attach, key, None).await;
        assert_eq!((r.status.as_u16(), r.text()), (200, String::new()));
        assert_eq!(
            h.call("POST", OTHER, &attach, key, None).await.status,
            403,
            "already attached"
        );
        let missing = format!("/api/accounts/{}/contacts_lists/999", alice.id);
        assert_eq!(h.call("POST", OTHER, &missing, key, None).await.status, 404);

        // The user side: direct contacts ∪ list members.
        let r = h
            .call(
                "GET",
                OTHER,
                "/api/accounts/me/contacts",
                Some(&alice_key),
                None,
            )
            .await;
        let body = r.json();
        let names: Vec<&str> = body
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["username"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["bob", "dave"]);
        let r = h
            .call(
                "GET",
                OTHER,
                &format!("/api/accounts/me/contacts/dave@{OTHER}"),
                Some(&alice_key),
                None,
            )
            .await;
        assert_eq!(r.json()["id"], dave.id);
        let r = h
            .call(
                "GET",
                OTHER,
                &format!("/api/accounts/me/contacts/admin@{OTHER}"),
                Some(&alice_key),
                None,
            )
            .await;
        assert_eq!(r.status, 404);

        let r = h.call("DELETE", OTHER, &members, key, None).await;
        assert_eq!(r.text(), "1");
        assert_eq!(
            h.call("DELETE", OTHER, &members, key, None).await.status,
            404
        );
        assert_eq!(
            h.call("DELETE", OTHER, &attach, key, None).await.text(),
            "1"
        );
        assert_eq!(
            h.call("DELETE", OTHER, &attach, key, None).await.status,
            403,
            "not attached"
        );
        assert_eq!(h.call("DELETE", OTHER, &add, key, None).await.text(), "1");
        let r = h.call("DELETE", OTHER, &add, key, None).await;
        assert_eq!((r.status.as_u16(), r.json()), (404, json!({"message": ""})));
        assert_eq!(
            h.call("DELETE", HOST, &one, Some(&host_admin), None)
                .await
                .text(),
            "0",
            "other space"
        );
        assert_eq!(h.call("DELETE", OTHER, &one, key, None).await.text(), "1");
        assert_eq!(
            h.count("SELECT COUNT(*) FROM contacts_list_contact").await,
            0
        );
    }
}
