//! Email and phone changes: codes by real SMTP and by the HTTP SMS provider, expiry, blocking; both engines.

mod common;

use common::{Harness, SmsCapture, SmtpCapture, HOST};
use flexiapi_core::testing::ENGINES;
use serde_json::json;

/// Marks the account "validated" (a consumed account creation token), as the change endpoints require.
async fn validate(h: &Harness, account_id: i64) {
    h.exec(&format!(
        "INSERT INTO account_creation_tokens (token, used, account_id, created_at, updated_at) \
         VALUES ('validated{account_id}', TRUE, {account_id}, '2020-01-01 00:00:00', '2020-01-01 00:00:00')"
    ))
    .await;
}

#[tokio::test]
async fn email_change_by_smtp() {
    for engine in ENGINES {
        let smtp = SmtpCapture::start().await;
        let port = smtp.port.to_string();
        let h = Harness::new(
            engine,
            &[
                ("MAIL_HOST", "127.0.0.1"),
                ("MAIL_PORT", &port),
                ("MAIL_FROM_ADDRESS", "noreply@example.com"),
            ],
        )
        .await;
        let (account, key) = h.account("frank", HOST, false).await;
        let (_, admin) = h.account("admin", HOST, true).await;
        let request = |body| {
            h.call(
                "POST",
                HOST,
                "/api/accounts/me/email/request",
                Some(&key),
                Some(body),
            )
        };

        let r = request(json!({"email": "new@example.com"})).await;
        assert_eq!(r.status, 403);
        assert_eq!(r.json()["message"], "Account unvalidated");
        validate(&h, account.id).await;
        let r = request(json!({"email": "not-an-email"})).await;
        assert_eq!(r.status, 422);
        assert_eq!(
            r.json()["errors"]["email"],
            json!(["The email must be a valid email address."])
        );
        let r = request(json!({"email": "new@example.com"})).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.text(), "");

        let mails = smtp.all();
        assert_eq!(mails.len(), 1);
        let code: String = flexiapi_core::with_db!(h.db(), pool => sqlx::query_scalar(
            "SELECT code FROM email_change_codes").fetch_one(pool).await)
        .unwrap();
        assert!(mails[0].contains(&code), "{}", mails[0]);
        assert!(mails[0].contains("To: new@example.com"), "{}", mails[0]);
        assert!(
            mails[0].contains("Subject: Example: Confirm your registration"),
            "{}",
            mails[0]
        );

        let me = h
            .call("GET", HOST, "/api/accounts/me", Some(&key), None)
            .await
            .json();
        assert_eq!(me["email_change_code"]["email"], "new@example.com");
        assert!(me["email_change_code"].get("code").is_none());
        let shown = h
            .call(
                "GET",
                HOST,
                &format!("/api/accounts/{}", account.id),
                Some(&admin),
                None,
            )
            .await
            .json();
        assert_eq!(shown["email_change_code"]["code"], code.as_str());

        let confirm = |body| {
            h.call(
                "POST",
                HOST,
                "/api/accounts/me/email",
                Some(&key),
                Some(body),
            )
        };
        let r = confirm(json!({"code": "wrong"})).await;
        assert_eq!(
            r.json()["errors"]["code"],
            json!(["The code must be 4 digits."])
        );
        let wrong = if code == "1234" { "4321" } else { "1234" };
        let r = confirm(json!({"code": wrong})).await;
        assert_eq!(r.status, 422);
        assert_eq!(
            r.json(),
            json!({"message": "The code should be valid", "errors": {"code": ["The code should be valid"]}})
        );
        let r = confirm(json!({"code": code})).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["email"], "new@example.com");
        assert_eq!(r.json()["email_change_code"], json!(null));
        let r = request(json!({"email": "new@example.com"})).await;
        assert_eq!(r.status, 422, "same as current");

        // Expired code.
        let r = request(json!({"email": "other@example.com"})).await;
        assert_eq!(r.status, 200);
        h.exec("UPDATE email_change_codes SET created_at = '2000-01-01 00:00:00'")
            .await;
        let r = confirm(json!({"code": "1000"})).await;
        assert_eq!(r.status, 410);
        assert_eq!(r.json()["message"], "Expired code");
    }
}

#[tokio::test]
async fn space_email_server_is_used_for_admin_mails() {
    for engine in ENGINES {
        let smtp = SmtpCapture::start().await;
        let h = Harness::new(engine, &[]).await;
        let (_, root) = h.account("root", HOST, true).await;
        let r = h
            .call("POST", HOST, "/api/spaces/sip.example.com/email", Some(&root),
                Some(json!({"host": "localhost.localdomain", "port": smtp.port, "from_address": "space@example.com", "signature": "Space signature"})))
            .await;
        assert_eq!(r.status, 201);
        // The Domain rule wants a dotted name; point it back to loopback for the test.
        h.exec("UPDATE space_email_servers SET host = '127.0.0.1'")
            .await;
        let r = h
            .call("POST", HOST, "/api/accounts", Some(&root), Some(json!({"username": "mailed", "password": "secret", "email": "mailed@example.com"})))
            .await;
        let id = r.json()["id"].as_i64().unwrap();
        let r = h
            .call(
                "POST",
                HOST,
                &format!("/api/accounts/{id}/send_provisioning_email"),
                Some(&root),
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        let r = h
            .call(
                "POST",
                HOST,
                &format!("/api/accounts/{id}/send_reset_password_email"),
                Some(&root),
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        let mails = smtp.all();
        assert_eq!(mails.len(), 2);
        let token: String = flexiapi_core::with_db!(h.db(), pool => sqlx::query_scalar(
            "SELECT token FROM provisioning_tokens WHERE account_id = $1 ORDER BY id DESC LIMIT 1").bind(id).fetch_one(pool).await).unwrap();
        assert!(
            mails[0].contains(&format!("http://sip.example.com/provisioning/{token}")),
            "{}",
            mails[0]
        );
        assert!(
            mails[0].contains("From: Example <space@example.com>"),
            "{}",
            mails[0]
        );
        assert!(mails[0].contains("Space signature"));
        let reset: String = flexiapi_core::with_db!(h.db(), pool => sqlx::query_scalar(
            "SELECT token FROM reset_password_email_tokens").fetch_one(pool).await)
        .unwrap();
        assert_eq!(reset.len(), 16);
        assert!(
            mails[1].contains(&format!("/reset_password/{reset}")),
            "{}",
            mails[1]
        );
    }
}

#[tokio::test]
async fn phone_change_by_sms_and_blocking() {
    for engine in ENGINES {
        let sms = SmsCapture::start().await;
        let h = Harness::new(
            engine,
            &[
                ("FLEXIAPI_SMS_URL", &sms.url),
                ("BLOCKING_AMOUNT_EVENTS_AUTHORIZED_DURING_PERIOD", "3"),
            ],
        )
        .await;
        let (account, key) = h.account("grace", HOST, false).await;
        validate(&h, account.id).await;
        h.exec("UPDATE phone_countries SET activated = TRUE WHERE country_code = '33'")
            .await;
        let request = |body| {
            h.call(
                "POST",
                HOST,
                "/api/accounts/me/phone/request",
                Some(&key),
                Some(body),
            )
        };

        let r = request(json!({"phone": "blabla"})).await;
        assert_eq!(r.status, 422);
        let r = request(json!({"phone": "+31612345678"})).await;
        assert_eq!(
            r.json()["errors"]["phone"],
            json!(["The phone number must belong to an authorized country."])
        );
        let r = request(json!({"phone": "+33612121212"})).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let r = request(json!({"phone": "+33612121212"})).await;
        assert_eq!(r.status, 200);
        assert_eq!(h.count("SELECT COUNT(*) FROM phone_change_codes").await, 2);
        let sent = sms.all();
        assert_eq!(sent.len(), 2);
        let code: String = flexiapi_core::with_db!(h.db(), pool => sqlx::query_scalar(
            "SELECT code FROM phone_change_codes ORDER BY id DESC LIMIT 1").fetch_one(pool).await)
        .unwrap();
        assert_eq!(sent[1]["to"], "+33612121212");
        assert_eq!(
            sent[1]["message"],
            format!("Your Example validation code is {code}. The code is available for 10 minutes")
        );

        let r = h
            .call(
                "POST",
                HOST,
                "/api/accounts/me/phone",
                Some(&key),
                Some(json!({"code": code})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["phone"], "+33612121212");

        // Third request in the window reaches the threshold (3): the account gets blocked.
        let r = request(json!({"phone": "+33612121213"})).await;
        assert_eq!(r.status, 200);
        let r = request(json!({"phone": "+33612121214"})).await;
        assert_eq!(r.status, 403);
        assert_eq!(r.json()["message"], "Account blocked");
        assert_eq!(
            h.count(&format!(
                "SELECT COUNT(*) FROM accounts WHERE id = {} AND blocked = TRUE",
                account.id
            ))
            .await,
            1
        );
        let r = h
            .call("GET", HOST, "/api/accounts/me", Some(&key), None)
            .await;
        assert_eq!(r.status, 403);
    }
}
