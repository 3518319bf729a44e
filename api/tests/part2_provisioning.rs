//! Remote provisioning: the `x-linphone-provisioning` header, the linphone XML (exact documents), custom
//! entries and overwrite-all, CardDAV sections, token consumption and expiry, auth tokens, `reset_password`,
//! and QR codes decoded back with rqrr (provisioning.md §1–5), on both engines.

mod common;

use common::{Harness, HOST, OTHER};
use flexiapi_core::model::Algorithm;
use flexiapi_core::testing::{Engine, ENGINES};

const HEADER: (&str, &str) = ("x-linphone-provisioning", "");
const ROOT: &str = r#"<config xmlns="http://www.linphone.org/xsds/lpconfig.xsd">"#;

fn misc() -> String {
    format!(
        r#"<section name="misc"><entry name="contacts-vcard-list">http://{OTHER}/contacts/vcard</entry></section>"#
    )
}

/// The `ui` section of a Space with default settings.
const UI_DEFAULTS: &str = concat!(
    r#"<section name="ui"><entry name="super">0</entry><entry name="disable_chat_feature">0</entry>"#,
    r#"<entry name="disable_meetings_feature">0</entry><entry name="disable_broadcast_feature">1</entry>"#,
    r#"<entry name="hide_settings">0</entry><entry name="hide_account_settings">0</entry>"#,
    r#"<entry name="disable_call_recordings_feature">0</entry><entry name="only_display_sip_uri_username">0</entry>"#,
    r#"<entry name="assistant_hide_create_account">0</entry><entry name="assistant_disable_qr_code">0</entry>"#,
    r#"<entry name="assistant_hide_third_party_account">0</entry><entry name="max_account">0</entry></section>"#
);

/// `auth_info_<n>` of the harness password (`password`, SHA-256, realm = domain).
fn auth_info(n: usize, username: &str) -> String {
    let ha1 = Algorithm::Sha256.ha1(username, OTHER, "password");
    format!(
        r#"<section name="auth_info_{n}"><entry name="username">{username}</entry><entry name="domain">{OTHER}</entry><entry name="ha1">{ha1}</entry><entry name="realm">{OTHER}</entry><entry name="algorithm">SHA-256</entry></section>"#
    )
}

async fn stored_hash(h: &Harness, account_id: i64) -> String {
    let sql = format!("SELECT password FROM passwords WHERE account_id = {account_id}");
    flexiapi_core::with_db!(h.db(), pool => sqlx::query_scalar::<_, String>(&sql).fetch_one(pool).await)
        .unwrap()
}

async fn new_token(h: &Harness, key: &str) -> String {
    let r = h
        .call("GET", OTHER, "/api/accounts/me/provision", Some(key), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["provisioning_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn base_and_me_documents() {
    for engine in ENGINES {
        let h = Harness::new(engine, &[]).await;
        let (alice, key) = h.account("alice", OTHER, false).await;

        for path in ["/provisioning", "/provisioning/"] {
            let r = h.call("GET", OTHER, path, None, None).await;
            assert_eq!(r.status, 400);
            assert_eq!(
                r.json()["message"],
                "x-linphone-provisioning header is missing"
            );
            let r = h.call_with("GET", OTHER, path, None, &[HEADER], None).await;
            assert_eq!(r.status, 200);
            assert_eq!(r.headers["content-type"], "application/xml");
            assert_eq!(
                r.text(),
                format!("{ROOT}{}</config>", misc()),
                "no account sections"
            );
        }

        // `documentation` is a page, never a token.
        let r = h
            .call("GET", OTHER, "/provisioning/documentation", None, None)
            .await;
        assert_eq!(r.status, 200);
        assert_eq!(r.headers["content-type"], "text/html; charset=UTF-8");
        assert!(r
            .text()
            .contains(&format!("http://{OTHER}/provisioning/me")));

        // Authentication comes before the header check.
        assert_eq!(
            h.call("GET", OTHER, "/provisioning/me", None, None)
                .await
                .status,
            401
        );
        let r = h
            .call("GET", OTHER, "/provisioning/me", Some(&key), None)
            .await;
        assert_eq!(r.status, 400);
        let expected = format!(
            r#"{ROOT}{}{UI_DEFAULTS}<section name="proxy_0"><entry name="reg_identity">&lt;sip:alice@{OTHER}&gt;</entry></section>{}</config>"#,
            misc(),
            auth_info(0, "alice")
        );
        for _ in 0..2 {
            let r = h
                .call_with(
                    "GET",
                    OTHER,
                    "/provisioning/me",
                    Some(&key),
                    &[HEADER],
                    None,
                )
                .await;
            assert_eq!(r.status, 200);
            assert_eq!(r.text(), expected, "credentials every time");
        }
        // A user of space OTHER is refused on the super space's host.
        let r = h
            .call_with("GET", HOST, "/provisioning/me", Some(&key), &[HEADER], None)
            .await;
        assert_eq!(r.status, 403);

        // Display name verbatim (quotes and apostrophe not escaped), `<`/`>`/`&` escaped.
        h.exec(&format!(
            "UPDATE accounts SET display_name = 'Anna O''Reily & co' WHERE id = {}",
            alice.id
        ))
        .await;
        let r = h
            .call_with(
                "GET",
                OTHER,
                "/provisioning/me",
                Some(&key),
                &[HEADER],
                None,
            )
            .await;
        assert!(r.text().contains(&format!(
            r#"<entry name="reg_identity">"Anna O'Reily &amp; co" &lt;sip:alice@{OTHER}&gt;</entry>"#
        )));

        // A Space may turn the header check off (seed-era flag, default on).
        h.exec(&format!(
            "UPDATE spaces SET provisioning_use_linphone_provisioning_header = FALSE WHERE domain = '{OTHER}'"
        ))
        .await;
        assert_eq!(
            h.call("GET", OTHER, "/provisioning", None, None)
                .await
                .status,
            200
        );
    }
}

#[tokio::test]
async fn custom_entries_overwrite_and_carddav() {
    for engine in ENGINES {
        let h = Harness::new(engine, &[]).await;
        let (alice, key) = h.account("alice", OTHER, false).await;
        let ini = "[proxy_0]\nreg_proxy = \"<sip:sip.example.org;transport=tls>\"\n[sip]\nverify_server_certs = no\nurl = \"https://x.org/?a=1&b=2\"\n";
        let set_ini = format!(
            "UPDATE spaces SET custom_provisioning_entries = '{ini}', custom_provisioning_overwrite_all = TRUE WHERE domain = '{OTHER}'"
        );
        h.exec(&set_ini).await;
        let r = h
            .call_with(
                "GET",
                OTHER,
                "/provisioning/me",
                Some(&key),
                &[HEADER],
                None,
            )
            .await;
        assert_eq!(
            r.status, 200,
            "a raw & in a custom value is escaped, never a 500"
        );
        let body = r.text();
        let order: Vec<&str> = body
            .split("<section name=\"")
            .skip(1)
            .map(|s| s.split('"').next().unwrap())
            .collect();
        assert_eq!(order, ["proxy_0", "sip", "misc", "ui", "auth_info_0"]);
        assert!(body.contains(
            r#"<section name="proxy_0"><entry name="reg_proxy" overwrite="true">&lt;sip:sip.example.org;transport=tls&gt;</entry><entry name="reg_identity" overwrite="true">&lt;sip:alice@"#
        ));
        assert!(body.contains(r#"<entry name="verify_server_certs" overwrite="true"/>"#));
        assert!(body
            .contains(r#"<entry name="url" overwrite="true">https://x.org/?a=1&amp;b=2</entry>"#));
        assert_eq!(
            body.matches("<entry ").count(),
            body.matches("overwrite=\"true\"").count()
        );

        // A custom [ui] suppresses the generated one; a custom [misc] receives the vCard entry.
        h.exec(&format!(
            "UPDATE spaces SET custom_provisioning_entries = '[ui]\ntheme = dark\n[misc]\nx = 1\n', custom_provisioning_overwrite_all = FALSE WHERE domain = '{OTHER}'"
        ))
        .await;
        let r = h
            .call_with("GET", OTHER, "/provisioning", None, &[HEADER], None)
            .await;
        assert_eq!(
            r.text(),
            format!(
                r#"{ROOT}<section name="ui"><entry name="theme">dark</entry></section><section name="misc"><entry name="x">1</entry><entry name="contacts-vcard-list">http://{OTHER}/contacts/vcard</entry></section></config>"#
            )
        );
        h.exec(&format!(
            "UPDATE spaces SET custom_provisioning_entries = NULL WHERE domain = '{OTHER}'"
        ))
        .await;

        // CardDAV: the directory section, its credentials in auth_info_0, the SIP password shifted to auth_info_1.
        let now = "2026-01-01 00:00:00";
        h.exec(&format!(
            "INSERT INTO space_carddav_servers (space_id, enabled, uri, min_characters, results_limit, timeout, delay, use_exact_match_policy, created_at, updated_at) \
             SELECT id, TRUE, 'http://uri.com', 3, 0, 5, 500, FALSE, '{now}', '{now}' FROM spaces WHERE domain = '{OTHER}'"
        ))
        .await;
        h.exec(&format!(
            "INSERT INTO account_carddav_credentials (space_carddav_server_id, account_id, username, password, realm, algorithm) \
             SELECT id, {}, 'john', 'ce44af78c5f81f5870818b8db523fd95', 'hop.com', 'MD5' FROM space_carddav_servers",
            alice.id
        ))
        .await;
        let r = h
            .call_with(
                "GET",
                OTHER,
                "/provisioning/me",
                Some(&key),
                &[HEADER],
                None,
            )
            .await;
        let expected = format!(
            concat!(
                r#"{root}<section name="remote_contact_directory_0"><entry name="enabled">1</entry><entry name="type">carddav</entry>"#,
                r#"<entry name="uri">http://uri.com</entry><entry name="min_characters">3</entry><entry name="results_limit">0</entry>"#,
                r#"<entry name="timeout">5</entry><entry name="delay">500</entry><entry name="carddav_fields_for_user_input"/>"#,
                r#"<entry name="carddav_fields_for_domain"/><entry name="carddav_use_exact_match_policy">0</entry></section>"#,
                r#"<section name="auth_info_0"><entry name="username">john</entry><entry name="realm">hop.com</entry>"#,
                r#"<entry name="ha1">ce44af78c5f81f5870818b8db523fd95</entry><entry name="algorithm">MD5</entry></section>"#,
                r#"{misc}{ui}<section name="proxy_0"><entry name="reg_identity">&lt;sip:alice@{other}&gt;</entry></section>{auth}</config>"#
            ),
            root = ROOT,
            misc = misc(),
            ui = UI_DEFAULTS,
            other = OTHER,
            auth = auth_info(1, "alice")
        );
        assert_eq!(r.text(), expected);
        // The base document (no account) lists the directory but no credentials.
        let r = h
            .call_with("GET", OTHER, "/provisioning", None, &[HEADER], None)
            .await;
        assert!(r.text().contains("remote_contact_directory_0") && !r.text().contains("auth_info"));
    }
}

#[tokio::test]
async fn provisioning_token_is_consumed_once() {
    for engine in ENGINES {
        let h = Harness::new(
            engine,
            &[("APP_PROVISIONING_TOKEN_EXPIRATION_MINUTES", "30")],
        )
        .await;
        let (alice, key) = h.account("alice", OTHER, false).await;
        let old = new_token(&h, &key).await;
        let token = new_token(&h, &key).await;
        h.exec(&format!(
            "UPDATE accounts SET activated = FALSE WHERE id = {}",
            alice.id
        ))
        .await;
        let path = format!("/provisioning/{token}");

        let r = h.call("GET", OTHER, &path, None, None).await;
        assert_eq!(r.status, 400, "no header: nothing consumed");
        let activated = format!(
            "SELECT COUNT(*) FROM accounts WHERE id = {} AND activated = TRUE",
            alice.id
        );
        assert_eq!(h.count(&activated).await, 0);
        assert_eq!(
            h.call_with(
                "GET",
                OTHER,
                "/provisioning/unknowntoken1",
                None,
                &[HEADER],
                None
            )
            .await
            .status,
            404
        );
        let r = h
            .call_with(
                "GET",
                OTHER,
                &format!("/provisioning/{old}"),
                None,
                &[HEADER],
                None,
            )
            .await;
        assert_eq!(r.status, 404, "an older unused token is not current");

        let r = h
            .call_with("GET", OTHER, &path, None, &[HEADER], None)
            .await;
        assert_eq!(r.status, 200);
        assert!(r.text().contains(&auth_info(0, "alice")), "{}", r.text());
        assert_eq!(h.count(&activated).await, 1, "account activated");
        let r = h
            .call_with("GET", OTHER, &path, None, &[HEADER], None)
            .await;
        assert_eq!(r.status, 404, "used");
        // The token route works from any host (the token is the credential); the ui section is the account's.
        let token = new_token(&h, &key).await;
        let r = h
            .call_with(
                "GET",
                HOST,
                &format!("/provisioning/{token}"),
                None,
                &[HEADER],
                None,
            )
            .await;
        assert_eq!(r.status, 200);
        assert!(r.text().contains(&format!("http://{HOST}/contacts/vcard")));
        assert!(r.text().contains(r#"<entry name="super">0</entry>"#));

        // Expired → 410.
        let token = new_token(&h, &key).await;
        let backdate = match engine {
            Engine::Sqlite => "datetime('now', '-31 minutes')",
            Engine::Postgres => "(now() at time zone 'utc') - interval '31 minutes'",
        };
        h.exec(&format!(
            "UPDATE provisioning_tokens SET created_at = {backdate} WHERE token = '{token}'"
        ))
        .await;
        let r = h
            .call_with(
                "GET",
                OTHER,
                &format!("/provisioning/{token}"),
                None,
                &[HEADER],
                None,
            )
            .await;
        assert_eq!(
            (r.status.as_u16(), r.json()["message"].clone()),
            (410, "Expired".into())
        );

        // reset_password: a new hash, stored, and sent.
        let before = stored_hash(&h, alice.id).await;
        let token = new_token(&h, &key).await;
        let r = h
            .call_with(
                "GET",
                OTHER,
                &format!("/provisioning/{token}?reset_password"),
                None,
                &[HEADER],
                None,
            )
            .await;
        let after = stored_hash(&h, alice.id).await;
        assert_ne!(before, after);
        assert!(r
            .text()
            .contains(&format!(r#"<entry name="ha1">{after}</entry>"#)));
        assert!(!r.text().contains(&before));
    }
}

#[tokio::test]
async fn auth_token_route() {
    for engine in ENGINES {
        let h = Harness::new(engine, &[]).await;
        let (alice, _) = h.account("alice", OTHER, false).await;
        let now = flexiapi_core::time::now();
        let old = now - chrono::Duration::minutes(6);
        for (token, account, created) in [
            ("a".repeat(32), Some(alice.id), now),
            ("b".repeat(32), None, now),
            ("c".repeat(32), Some(alice.id), old),
        ] {
            flexiapi_core::with_db!(h.db(), pool => sqlx::query(
                "INSERT INTO auth_tokens (account_id, token, created_at, updated_at) VALUES ($1, $2, $3, $3)")
                .bind(account).bind(&token).bind(created).execute(pool).await.map(|_| ()))
            .unwrap();
        }
        let path = format!("/provisioning/auth_token/{}", "a".repeat(32));
        let r = h.call("GET", OTHER, &path, None, None).await;
        assert_eq!(r.status, 200, "no header needed: {}", r.text());
        assert!(r.text().contains(&auth_info(0, "alice")));
        assert_eq!(
            h.call("GET", OTHER, &path, None, None).await.status,
            404,
            "deleted after use"
        );
        let unattached = format!("/provisioning/auth_token/{}", "b".repeat(32));
        assert_eq!(
            h.call("GET", OTHER, &unattached, None, None).await.status,
            404
        );
        assert_eq!(
            h.count("SELECT COUNT(*) FROM auth_tokens").await,
            2,
            "unattached token kept"
        );
        let expired = format!("/provisioning/auth_token/{}", "c".repeat(32));
        assert_eq!(h.call("GET", OTHER, &expired, None, None).await.status, 404);
    }
}

fn decode_qr(png: &[u8]) -> (u32, u32, String) {
    let image = image::load_from_memory(png).expect("a PNG").to_luma8();
    let (width, height) = image.dimensions();
    let mut prepared =
        rqrr::PreparedImage::prepare_from_greyscale(width as usize, height as usize, |x, y| {
            image.get_pixel(x as u32, y as u32).0[0]
        });
    let grids = prepared.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code");
    let (_, content) = grids[0].decode().expect("decodable");
    (width, height, content)
}

#[tokio::test]
async fn qr_codes_encode_the_provisioning_url() {
    for engine in ENGINES {
        let h = Harness::new(engine, &[]).await;
        let (_, key) = h.account("alice", OTHER, false).await;
        let token = new_token(&h, &key).await;

        let r = h
            .call(
                "GET",
                OTHER,
                &format!("/provisioning/qrcode/{token}"),
                None,
                None,
            )
            .await;
        assert_eq!(r.status, 200);
        assert_eq!(r.headers["content-type"], "image/png");
        let url = format!("http://{OTHER}/provisioning/{token}");
        assert_eq!(r.headers["x-qrcode-url"], url.as_str());
        assert_eq!(decode_qr(&r.body), (320, 320, url.clone()));
        let r = h
            .call(
                "GET",
                OTHER,
                &format!("/provisioning/qrcode/{token}?reset_password"),
                None,
                None,
            )
            .await;
        assert_eq!(decode_qr(&r.body).2, format!("{url}?reset_password=1"));
        let r = h
            .call(
                "GET",
                HOST,
                &format!("/provisioning/qrcode/{token}"),
                None,
                None,
            )
            .await;
        assert_eq!(
            decode_qr(&r.body).2,
            format!("http://{HOST}/provisioning/{token}"),
            "request host"
        );
        assert_eq!(
            h.count("SELECT COUNT(*) FROM provisioning_tokens WHERE used = TRUE")
                .await,
            0,
            "nothing consumed"
        );

        assert_eq!(
            h.call(
                "GET",
                OTHER,
                "/provisioning/qrcode/unknowntoken1",
                None,
                None
            )
            .await
            .status,
            404
        );
        h.call_with(
            "GET",
            OTHER,
            &format!("/provisioning/{token}"),
            None,
            &[HEADER],
            None,
        )
        .await;
        let r = h
            .call(
                "GET",
                OTHER,
                &format!("/provisioning/qrcode/{token}"),
                None,
                None,
            )
            .await;
        assert_eq!(r.status, 404, "used token");
    }
}
