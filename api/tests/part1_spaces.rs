//! Spaces, their email server and phone countries (super admin), on both engines.

mod common;

use common::{Harness, HOST, OTHER};
use flexiapi_core::testing::ENGINES;
use serde_json::json;

#[tokio::test]
async fn spaces_crud() {
    for engine in ENGINES {
        let h = Harness::new(engine, &[]).await;
        let (_, root) = h.account("root", HOST, true).await;
        let (_, admin) = h.account("admin", OTHER, true).await;
        let r = h
            .call("POST", OTHER, "/api/spaces", Some(&admin), Some(json!({})))
            .await;
        assert_eq!(r.status, 403, "plain admin");

        let r = h
            .call(
                "POST",
                HOST,
                "/api/spaces",
                Some(&root),
                Some(json!({"name": "Third", "domain": "Bad"})),
            )
            .await;
        assert_eq!(r.status, 422);
        assert_eq!(
            r.json()["errors"]["domain"],
            json!(["The domain should be a valid domain"])
        );
        assert!(
            r.json()["errors"].get("host").is_none(),
            "phase 2 waits for phase 1"
        );
        let r = h
            .call("POST", HOST, "/api/spaces", Some(&root), Some(json!({"name": "Third", "domain": "third.example.com", "expire_at": "2001-01-01"})))
            .await;
        assert_eq!(r.status, 422);
        let errors = r.json()["errors"].clone();
        assert_eq!(errors["host"], json!(["The host field is required."]));
        assert_eq!(
            errors["expire_at"],
            json!(["The expire at must be a date after or equal to today."])
        );
        let r = h
            .call(
                "POST",
                HOST,
                "/api/spaces",
                Some(&root),
                Some(json!({
                    "name": "Third", "domain": "third.example.com", "host": "third.example.com",
                    "custom_provisioning_entries": "[ui]\nhide_settings=1"
                })),
            )
            .await;
        assert!(r.json()["errors"]["custom_provisioning_entries"][0]
            .as_str()
            .unwrap()
            .ends_with("platform: hide_settings"));
        let r = h
            .call("POST", HOST, "/api/spaces", Some(&root), Some(json!({
                "name": "Third", "domain": "third.example.com", "host": "third.example.com", "max_accounts": 3, "super": "false"
            })))
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
        let created = r.json();
        assert_eq!(
            created["super"], true,
            "PHP cast: the string \"false\" is true"
        );
        assert_eq!(created["max_accounts"], 3);
        assert_eq!(created["theme_hue"], 22);
        assert_eq!(created["disable_broadcast_feature"], true);
        assert!(created.get("email_server").is_none());

        let r = h.call("GET", HOST, "/api/spaces", Some(&root), None).await;
        assert_eq!(r.json().as_array().unwrap().len(), 3);
        let r = h
            .call(
                "GET",
                HOST,
                "/api/spaces/third.example.com",
                Some(&root),
                None,
            )
            .await;
        let mut space = r.json();
        assert_eq!(
            space["digest_authentication_configuration"]["realm"],
            "third.example.com"
        );
        assert_eq!(space["email_server"], json!(null));
        let r = h
            .call(
                "PUT",
                HOST,
                "/api/spaces/third.example.com",
                Some(&root),
                Some(json!({"super": true})),
            )
            .await;
        assert_eq!(r.status, 422);
        space["super"] = json!(false);
        space["max_accounts"] = json!(0);
        space["expire_at"] = json!("2999-01-01");
        space["copyright_text"] = json!("(c)");
        let r = h
            .call(
                "PUT",
                HOST,
                "/api/spaces/third.example.com",
                Some(&root),
                Some(space.clone()),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        let updated = r.json();
        assert_eq!(updated["super"], false);
        assert_eq!(updated["expire_at"], "2999-01-01T00:00:00.000000Z");
        assert_eq!(updated["copyright_text"], "(c)");
        let r = h
            .call(
                "PUT",
                HOST,
                "/api/spaces/none.example.com",
                Some(&root),
                Some(space.clone()),
            )
            .await;
        assert_eq!(r.status, 404);

        // max_accounts below the current number of accounts is refused.
        h.account("someone", "third.example.com", false).await;
        h.account("someone2", "third.example.com", false).await;
        space["max_accounts"] = json!(1);
        let r = h
            .call(
                "PUT",
                HOST,
                "/api/spaces/third.example.com",
                Some(&root),
                Some(space.clone()),
            )
            .await;
        assert_eq!(r.status, 422);

        let r = h
            .call(
                "DELETE",
                HOST,
                "/api/spaces/third.example.com",
                Some(&root),
                None,
            )
            .await;
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), "1");
        assert_eq!(
            h.count("SELECT COUNT(*) FROM accounts WHERE domain = 'third.example.com'")
                .await,
            0,
            "cascade"
        );
        let r = h
            .call(
                "DELETE",
                HOST,
                "/api/spaces/third.example.com",
                Some(&root),
                None,
            )
            .await;
        assert_eq!(r.text(), "0");
    }
}

#[tokio::test]
async fn space_email_server() {
    for engine in ENGINES {
        let h = Harness::new(engine, &[]).await;
        let (_, root) = h.account("root", HOST, true).await;
        let path = "/api/spaces/sip2.example.com/email";
        let r = h.call("GET", HOST, path, Some(&root), None).await;
        assert_eq!(r.status, 404);
        let r = h
            .call(
                "POST",
                HOST,
                path,
                Some(&root),
                Some(json!({"host": "Bad host", "port": "x"})),
            )
            .await;
        assert_eq!(r.status, 422);
        assert_eq!(
            r.json()["errors"]["host"],
            json!(["The host should be a valid domain"])
        );
        assert_eq!(
            r.json()["errors"]["port"],
            json!(["The port must be an integer."])
        );
        let r = h
            .call("POST", HOST, path, Some(&root), Some(json!({"host": "smtp.example.com", "port": 25, "from_address": "a@example.com"})))
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
        let r = h
            .call(
                "POST",
                HOST,
                path,
                Some(&root),
                Some(json!({"host": "smtp2.example.com", "port": "587"})),
            )
            .await;
        assert_eq!(r.status, 200);
        let r = h.call("GET", HOST, path, Some(&root), None).await;
        assert_eq!(r.json()["host"], "smtp2.example.com");
        assert_eq!(r.json()["port"], 587);
        assert_eq!(r.json()["from_address"], json!(null));
        let r = h
            .call(
                "GET",
                HOST,
                "/api/spaces/sip2.example.com",
                Some(&root),
                None,
            )
            .await;
        assert_eq!(r.json()["email_server"]["host"], "smtp2.example.com");
        let r = h.call("DELETE", HOST, path, Some(&root), None).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), "1");
        let r = h.call("GET", HOST, path, Some(&root), None).await;
        assert_eq!(r.status, 404);
        let r = h
            .call(
                "POST",
                HOST,
                "/api/spaces/none.example.com/email",
                Some(&root),
                Some(json!({"host": "smtp.example.com", "port": 25})),
            )
            .await;
        assert_eq!(r.status, 404);
    }
}

#[tokio::test]
async fn phone_countries() {
    for engine in ENGINES {
        let h = Harness::new(engine, &[]).await;
        let (_, root) = h.account("root", HOST, true).await;
        let (_, admin) = h.account("admin", OTHER, true).await;
        let r = h
            .call("GET", HOST, "/api/phone_countries", None, None)
            .await;
        assert_eq!(r.status, 200);
        let list = r.json();
        let fr = list
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["code"] == "FR")
            .unwrap()
            .clone();
        assert_eq!(
            fr,
            json!({"code": "FR", "country_code": "33", "activated": false})
        );
        assert_eq!(
            h.call("GET", HOST, "/api/phones_countries", None, None)
                .await
                .json(),
            list
        );

        let create = |username: &str| json!({"username": username, "password": "secret", "phone": "+33612121212"});
        let r = h
            .call(
                "POST",
                OTHER,
                "/api/accounts",
                Some(&admin),
                Some(create("phoned")),
            )
            .await;
        assert_eq!(
            r.json()["errors"]["phone"],
            json!(["The phone number must belong to an authorized country."])
        );
        let r = h
            .call(
                "POST",
                OTHER,
                "/api/phone_countries/FR/activate",
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(r.status, 403);
        let r = h
            .call(
                "POST",
                HOST,
                "/api/phone_countries/FR/activate",
                Some(&root),
                None,
            )
            .await;
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), "1");
        let r = h
            .call(
                "POST",
                HOST,
                "/api/phone_countries/US/activate",
                Some(&root),
                None,
            )
            .await;
        assert!(r.text().parse::<u32>().unwrap() > 10, "every +1 region");
        let r = h
            .call(
                "POST",
                HOST,
                "/api/phone_countries/ZZ/activate",
                Some(&root),
                None,
            )
            .await;
        assert_eq!(r.status, 404);
        let r = h
            .call(
                "POST",
                OTHER,
                "/api/accounts",
                Some(&admin),
                Some(create("phoned")),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["phone"], "+33612121212");
        let r = h
            .call(
                "POST",
                OTHER,
                "/api/accounts",
                Some(&admin),
                Some(create("phoned2")),
            )
            .await;
        assert_eq!(
            r.json()["errors"]["phone"],
            json!(["The phone has already been taken."])
        );
        let r = h
            .call(
                "POST",
                OTHER,
                "/api/accounts",
                Some(&admin),
                Some(json!({"username": "x123456", "password": "secret", "phone": "blabla"})),
            )
            .await;
        assert_eq!(
            r.json()["errors"]["phone"],
            json!(["The phone field contains an invalid number."])
        );
        let r = h
            .call(
                "POST",
                HOST,
                "/api/phone_countries/FR/deactivate",
                Some(&root),
                None,
            )
            .await;
        assert_eq!(r.text(), "1");
        let r = h
            .call("GET", HOST, "/api/phone_countries", None, None)
            .await;
        let fr = r
            .json()
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["code"] == "FR")
            .unwrap()
            .clone();
        assert_eq!(fr["activated"], false);
    }
}
