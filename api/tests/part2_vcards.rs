//! vCards storage (user and admin API, raw-text pages) and the vCard 4.0 contact exports (api-accounts.md
//! §2.12, §2.22; provisioning.md §8), on both engines.

mod common;

use common::{Harness, HOST, OTHER};
use flexiapi_core::testing::ENGINES;
use serde_json::json;

const UID: &str = "urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6";

fn card(uid: &str, name: &str) -> String {
    format!("BEGIN:VCARD\r\nFN:{name}\r\nVERSION:4.0\r\nUID:{uid}\r\nTEL;TYPE=\"voice,home\":tel:+1-418-262-6501\r\nEND:VCARD")
}

fn stored(uid: &str, name: &str) -> String {
    format!("BEGIN:VCARD\nVERSION:4.0\nFN:{name}\nUID:{uid}\nTEL;TYPE=\"voice,home\":tel:+1-418-262-6501\nEND:VCARD\n")
}

#[tokio::test]
async fn user_storage_crud_and_raw_pages() {
    for engine in ENGINES {
        let h = Harness::new(engine, &[]).await;
        let (_, alice) = h.account("alice", OTHER, false).await;
        let (_, bob) = h.account("bob", OTHER, false).await;
        let me = Some(alice.as_str());
        let base = "/api/accounts/me/vcards-storage";

        let r = h.call("GET", OTHER, base, me, None).await;
        assert_eq!((r.status.as_u16(), r.text()), (200, "{}".to_owned()));
        let r = h.call("POST", OTHER, base, me, Some(json!({}))).await;
        assert_eq!(
            r.json()["errors"],
            json!({"vcard": ["The vcard field is required."]})
        );
        for invalid in [
            "hello",
            "BEGIN:VCARD\nVERSION:4.0\nFN:No uid\nEND:VCARD",
            "BEGIN:VCARD\nVERSION:4.0\nUID:x\nEND:VCARD",
        ] {
            let r = h
                .call("POST", OTHER, base, me, Some(json!({ "vcard": invalid })))
                .await;
            assert_eq!(
                (r.status.as_u16(), r.json()["errors"].clone()),
                (422, json!({"vcard": ["Invalid vcard passed"]})),
                "{invalid}"
            );
        }
        let r = h
            .call(
                "POST",
                OTHER,
                base,
                me,
                Some(json!({"vcard": card(UID, "Simon")})),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
        let created = r.json();
        assert_eq!(
            created["vcard"],
            stored(UID, "Simon"),
            "VERSION first, LF line ends, trailing newline"
        );
        let keys: Vec<&String> = created.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 3, "only vcard and the timestamps: {created}");
        let r = h
            .call(
                "POST",
                OTHER,
                base,
                me,
                Some(json!({"vcard": card(UID, "Again")})),
            )
            .await;
        assert_eq!(
            (r.status.as_u16(), r.json()),
            (409, json!({"message": "Vcard already exists"}))
        );

        let long_name = "Ø".repeat(50);
        let second = "urn:uuid:0000";
        let r = h
            .call(
                "POST",
                OTHER,
                base,
                me,
                Some(json!({"vcard": card(second, &long_name)})),
            )
            .await;
        let text = r.json()["vcard"].as_str().unwrap().to_owned();
        assert!(
            text.lines().all(|line| line.len() <= 75),
            "folded at 75 octets: {text}"
        );
        assert!(
            text.contains("\n "),
            "continuation lines start with a space"
        );

        let r = h.call("GET", OTHER, base, me, None).await;
        let index = r.json();
        assert_eq!(index[UID]["vcard"], stored(UID, "Simon"));
        assert_eq!(index.as_object().unwrap().len(), 2);
        let one = format!("{base}/{UID}");
        assert_eq!(
            h.call("GET", OTHER, &one, me, None).await.json()["vcard"],
            stored(UID, "Simon")
        );
        assert_eq!(
            h.call("GET", OTHER, &format!("{base}/nope"), me, None)
                .await
                .status,
            404
        );
        // Another user's storage is invisible.
        assert_eq!(
            h.call("GET", OTHER, &one, Some(&bob), None).await.status,
            404
        );
        assert_eq!(
            h.call("GET", OTHER, base, Some(&bob), None).await.text(),
            "{}"
        );

        let r = h
            .call(
                "PUT",
                OTHER,
                &one,
                me,
                Some(json!({"vcard": card("urn:other", "X")})),
            )
            .await;
        assert_eq!(
            (r.status.as_u16(), r.json()),
            (422, json!({"message": "UUID should be the same"}))
        );
        let r = h
            .call("PUT", OTHER, &one, me, Some(json!({"vcard": "bad"})))
            .await;
        assert_eq!(
            r.json()["errors"]["vcard"],
            json!(["Invalid vcard passed"]),
            "validation first"
        );
        let r = h
            .call(
                "PATCH",
                OTHER,
                &one,
                me,
                Some(json!({"vcard": card(UID, "Renamed")})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["vcard"], stored(UID, "Renamed"));
        let r = h
            .call(
                "PUT",
                OTHER,
                &format!("{base}/urn:missing"),
                me,
                Some(json!({"vcard": card("urn:missing", "X")})),
            )
            .await;
        assert_eq!(r.status, 404);

        // Raw pages outside /api.
        let r = h.call("GET", OTHER, "/vcards-storage", me, None).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.headers["content-type"], "text/html; charset=UTF-8");
        let expected = format!("{}\n{text}\n", stored(UID, "Renamed"));
        assert_eq!(
            r.text(),
            expected,
            "each stored card followed by one more newline"
        );
        assert_eq!(
            h.call("GET", OTHER, "/vcards-storage/", me, None)
                .await
                .text(),
            expected
        );
        let r = h
            .call("GET", OTHER, &format!("/vcards-storage/{UID}"), me, None)
            .await;
        assert_eq!(r.text(), stored(UID, "Renamed"));
        assert_eq!(
            h.call("GET", OTHER, "/vcards-storage/nope", me, None)
                .await
                .status,
            404
        );
        assert_eq!(
            h.call("GET", OTHER, "/vcards-storage", Some(&bob), None)
                .await
                .text(),
            ""
        );
        assert_eq!(
            h.call("GET", OTHER, "/vcards-storage", None, None)
                .await
                .status,
            401
        );

        let r = h.call("DELETE", OTHER, &one, me, None).await;
        assert_eq!((r.status.as_u16(), r.text()), (200, "1".to_owned()));
        assert_eq!(h.call("DELETE", OTHER, &one, me, None).await.status, 404);
    }
}

#[tokio::test]
async fn admin_storage_scoped_to_the_space() {
    for engine in ENGINES {
        let h = Harness::new(engine, &[]).await;
        let (_, admin) = h.account("admin", OTHER, true).await;
        let (alice, alice_key) = h.account("alice", OTHER, false).await;
        let (foreign, _) = h.account("carol", HOST, false).await;
        let key = Some(admin.as_str());
        let base = format!("/api/accounts/{}/vcards-storage", alice.id);

        let r = h
            .call(
                "POST",
                OTHER,
                &base,
                key,
                Some(json!({"vcard": card(UID, "Simon")})),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
        // The user sees what the admin stored for her.
        let r = h
            .call(
                "GET",
                OTHER,
                &format!("/api/accounts/me/vcards-storage/{UID}"),
                Some(&alice_key),
                None,
            )
            .await;
        assert_eq!(r.json()["vcard"], stored(UID, "Simon"));
        assert_eq!(
            h.call("GET", OTHER, &base, key, None).await.json()[UID]["vcard"],
            stored(UID, "Simon")
        );
        let one = format!("{base}/{UID}");
        let r = h
            .call(
                "PUT",
                OTHER,
                &one,
                key,
                Some(json!({"vcard": card(UID, "Admin")})),
            )
            .await;
        assert_eq!(r.json()["vcard"], stored(UID, "Admin"));

        let foreign_base = format!("/api/accounts/{}/vcards-storage", foreign.id);
        let r = h
            .call(
                "POST",
                OTHER,
                &foreign_base,
                key,
                Some(json!({"vcard": card(UID, "X")})),
            )
            .await;
        assert_eq!(r.status, 404, "account of another space");
        assert_eq!(
            h.call("GET", OTHER, &foreign_base, key, None).await.status,
            404
        );
        assert_eq!(
            h.call("GET", HOST, &base, key, None).await.status,
            403,
            "admin of another space"
        );
        assert_eq!(
            h.call("GET", OTHER, &base, Some(&alice_key), None)
                .await
                .status,
            403,
            "user key"
        );
        assert_eq!(h.count("SELECT COUNT(*) FROM vcards_storage").await, 1);

        assert_eq!(h.call("DELETE", OTHER, &one, key, None).await.text(), "1");
        assert_eq!(h.call("GET", OTHER, &one, key, None).await.status, 404);
    }
}

#[tokio::test]
async fn contact_exports_exact_lines() {
    for engine in ENGINES {
        let h = Harness::new(engine, &[]).await;
        let (_, admin) = h.account("admin", OTHER, true).await;
        let (alice, alice_key) = h.account("alice", OTHER, false).await;
        let (bob, _) = h.account("bob", OTHER, false).await;
        let (dave, dave_key) = h.account("dave", OTHER, false).await;
        let key = Some(admin.as_str());

        let r = h
            .call("GET", OTHER, "/contacts/vcard", Some(&alice_key), None)
            .await;
        assert_eq!(
            (r.status.as_u16(), r.text()),
            (200, String::new()),
            "no contacts → empty body"
        );

        h.exec(&format!(
            "UPDATE accounts SET display_name = 'Bob B', dtmf_protocol = 'sipinfo' WHERE id = {}",
            bob.id
        ))
        .await;
        let types = h
            .call(
                "POST",
                OTHER,
                "/api/account_types",
                key,
                Some(json!({"key": "phone"})),
            )
            .await;
        let phone = types.json()["id"].as_i64().unwrap();
        let types = h
            .call(
                "POST",
                OTHER,
                "/api/account_types",
                key,
                Some(json!({"key": "door"})),
            )
            .await;
        let door = types.json()["id"].as_i64().unwrap();
        h.call(
            "POST",
            OTHER,
            &format!("/api/accounts/{}/types/{phone}", bob.id),
            key,
            None,
        )
        .await;
        h.call(
            "POST",
            OTHER,
            &format!("/api/accounts/{}/types/{door}", dave.id),
            key,
            None,
        )
        .await;
        let r = h
            .call(
                "POST",
                OTHER,
                &format!("/api/accounts/{}/actions", bob.id),
                key,
                Some(json!({"key": "open", "code": "123"})),
            )
            .await;
        assert_eq!(r.status, 201);
        // An action stored while dave had a DTMF protocol is not exported once it is gone.
        h.exec(&format!(
            "UPDATE accounts SET dtmf_protocol = 'rfc2833' WHERE id = {}",
            dave.id
        ))
        .await;
        h.call(
            "POST",
            OTHER,
            &format!("/api/accounts/{}/actions", dave.id),
            key,
            Some(json!({"key": "x", "code": "1"})),
        )
        .await;
        h.exec(&format!(
            "UPDATE accounts SET dtmf_protocol = NULL WHERE id = {}",
            dave.id
        ))
        .await;

        // bob is a direct contact, dave comes through a contacts list.
        h.call(
            "POST",
            OTHER,
            &format!("/api/accounts/{}/contacts/{}", alice.id, bob.id),
            key,
            None,
        )
        .await;
        let list = h
            .call(
                "POST",
                OTHER,
                "/api/contacts_lists",
                key,
                Some(json!({"title": "T", "description": "D"})),
            )
            .await;
        let list_id = list.json()["id"].as_i64().unwrap();
        h.call(
            "POST",
            OTHER,
            &format!("/api/contacts_lists/{list_id}/contacts/{}", dave.id),
            key,
            None,
        )
        .await;
        h.call(
            "POST",
            OTHER,
            &format!("/api/accounts/{}/contacts_lists/{list_id}", alice.id),
            key,
            None,
        )
        .await;

        let bob_card = format!(
            "BEGIN:VCARD\nVERSION:4.0\nKIND:individual\nIMPP:sip:bob@{OTHER}\nFN:Bob B\n\
             X-LINPHONE-ACCOUNT-DTMF-PROTOCOL:sipinfo\nX-LINPHONE-ACCOUNT-TYPE:phone\n\
             X-LINPHONE-ACCOUNT-ACTION:open;123\nEND:VCARD"
        );
        let dave_card = format!(
            "BEGIN:VCARD\nVERSION:4.0\nKIND:individual\nIMPP:sip:dave@{OTHER}\nFN:dave@{OTHER}\n\
             X-LINPHONE-ACCOUNT-TYPE:door\nEND:VCARD"
        );
        let r = h
            .call("GET", OTHER, "/contacts/vcard", Some(&alice_key), None)
            .await;
        assert_eq!(r.status, 200);
        assert_eq!(r.headers["content-type"], "text/html; charset=UTF-8");
        assert_eq!(
            r.text(),
            format!("{bob_card}\n{dave_card}"),
            "joined by one LF, no trailing newline"
        );
        let r = h
            .call(
                "GET",
                OTHER,
                &format!("/contacts/vcard/bob@{OTHER}"),
                Some(&alice_key),
                None,
            )
            .await;
        assert_eq!(r.text(), bob_card);
        let r = h
            .call(
                "GET",
                OTHER,
                &format!("/contacts/vcard/dave@{OTHER}"),
                Some(&alice_key),
                None,
            )
            .await;
        assert_eq!(r.text(), dave_card);
        assert_eq!(
            h.call("GET", OTHER, "/contacts/vcard/bob", Some(&alice_key), None)
                .await
                .status,
            404
        );
        let r = h
            .call(
                "GET",
                OTHER,
                &format!("/contacts/vcard/admin@{OTHER}"),
                Some(&alice_key),
                None,
            )
            .await;
        assert_eq!(r.status, 404, "not a contact");
        // Contacts are per account: dave has none.
        assert_eq!(
            h.call("GET", OTHER, "/contacts/vcard", Some(&dave_key), None)
                .await
                .text(),
            ""
        );
        assert_eq!(
            h.call("GET", OTHER, "/contacts/vcard", None, None)
                .await
                .status,
            401
        );
    }
}
