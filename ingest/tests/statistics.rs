//! The statistics endpoints against real SQLite and PostgreSQL: upstream's statuses and bodies, validation,
//! what flexiapi-rs stores beyond upstream, listings, reconciliation of early updates, account deletion.

mod common;

use common::*;
use flexiapi_core::testing::ENGINES;
use serde_json::{json, Value};

fn call_body(id: &str, from: &str, to: &str, at: &str, devices: &[u32]) -> Value {
    let devices: serde_json::Map<String, Value> =
        devices.iter().map(|d| (device(*d), Value::Null)).collect();
    json!({"conference_id": null, "devices": devices, "ended_at": null, "from": from, "id": id,
           "initiated_at": at, "sip_call_id": format!("sip-{}", &id[..8]), "to": to})
}

#[tokio::test]
async fn call_lifecycle_answers_like_upstream() {
    for engine in ENGINES {
        let h = Harness::new(engine).await;
        let id = event_id("call-1");
        let body = call_body(
            &id,
            "tony@sip.example.org",
            "mike@sip.example.org",
            "2026-08-20T10:00:00Z",
            &[1, 2],
        );

        let r = h
            .admin("POST", "/api/statistics/calls", Some(body.clone()))
            .await;
        assert_eq!(
            (r.status.as_u16(), r.text().as_str()),
            (200, "1"),
            "{engine:?}"
        );
        assert_eq!(r.headers["content-type"], "text/html; charset=UTF-8");
        // Duplicate id, under Flexisip's default prefix this time.
        let r = h.admin("POST", "/api/stats/calls", Some(body)).await;
        assert_eq!(r.status, 400);
        assert_eq!(r.json(), json!({"message": "Database error"}));

        let d1 = format!("/api/stats/calls/{id}/devices/{}", device_path(1));
        let r = h
            .admin(
                "PATCH",
                &d1,
                Some(json!({"rang_at": "2026-08-20T10:00:02Z"})),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
        let row = r.json();
        assert_eq!(row["device_id"], device(1));
        assert_eq!(row["call_id"], id.as_str());
        assert_eq!(row["rang_at"], "2026-08-20T10:00:02.000000Z");
        assert_eq!(row["invite_terminated_state"], Value::Null);

        let r = h
            .admin("PATCH", &d1, Some(json!({"invite_terminated": {"at": "2026-08-20T10:00:05Z", "state": "accepted"}})))
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        let row = r.json();
        assert_eq!(row["rang_at"], "2026-08-20T10:00:02.000000Z", "rang kept");
        assert_eq!(row["invite_terminated_at"], "2026-08-20 10:00:05");
        assert_eq!(row["invite_terminated_state"], "accepted");
        // A later rang-only PATCH keeps the termination (only fields sent change).
        let r = h
            .admin(
                "PATCH",
                &d1,
                Some(json!({"rang_at": "2026-08-20T10:00:03Z"})),
            )
            .await;
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["invite_terminated_state"], "accepted");
        assert_eq!(
            h.count("SELECT COUNT(*) FROM statistics_call_devices")
                .await,
            1
        );

        let r = h
            .admin(
                "PATCH",
                &format!("/api/statistics/calls/{id}/"),
                Some(json!({"ended_at": "2026-08-20T10:05:00Z"})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        let call = r.json();
        assert_eq!(call["ended_at"], "2026-08-20T10:05:00.000000Z");
        assert_eq!(call["initiated_at"], "2026-08-20T10:00:00.000000Z");
        assert_eq!(call["from_username"], "tony");
        assert_eq!(call["to_domain"], "sip.example.org");
        assert_eq!(call["sip_call_id"], format!("sip-{}", &id[..8]));
        let devices = call["devices"].as_array().unwrap();
        assert_eq!(
            devices.len(),
            2,
            "the reporting device and the silent forked one: {call}"
        );
        assert_eq!(devices[0]["device_id"], device(1));
        assert_eq!(devices[0]["forked"], true);
        assert_eq!(devices[1]["device_id"], device(2));
        assert_eq!(devices[1]["id"], Value::Null);

        let r = h
            .admin(
                "PATCH",
                &format!("/api/statistics/calls/{}", event_id("nope")),
                Some(json!({"ended_at": "2026-08-20T10:05:00Z"})),
            )
            .await;
        assert_eq!(r.status, 404);
        assert_eq!(
            r.json(),
            json!({"message": "No query results for model [App\\StatisticsCall]."})
        );
        // A device PATCH for a call never posted: upstream's 400.
        let r = h
            .admin(
                "PATCH",
                &format!("/api/statistics/calls/{}/devices/d", event_id("nope")),
                Some(json!({})),
            )
            .await;
        assert_eq!(r.status, 400);
        // Wrong method on a statistics route.
        let r = h.admin("GET", "/api/statistics/calls", None).await;
        assert_eq!(r.status, 405);
    }
}

#[tokio::test]
async fn message_lifecycle_stores_the_to_map_and_responses() {
    for engine in ENGINES {
        let h = Harness::new(engine).await;
        let id = event_id("message-1");
        let body = json!({"conference_id": null, "encrypted": false, "from": "tony@sip.example.org", "id": id,
                          "sent_at": "2026-08-20T10:00:00Z",
                          "to": {"mike@sip.example.org": {device(1): null, device(2): null}}});
        let r = h
            .admin("POST", "/api/stats/messages", Some(body.clone()))
            .await;
        assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "1"));
        let r = h
            .admin("POST", "/api/statistics/messages", Some(body))
            .await;
        assert_eq!(r.status, 400);

        let path = |d: u32| {
            format!(
                "/api/stats/messages/{id}/to/mike@sip.example.org/devices/{}",
                device_path(d)
            )
        };
        let r = h
            .admin(
                "PATCH",
                &path(1),
                Some(json!({"last_status": 200, "received_at": "2026-08-20T10:00:01Z"})),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
        let row = r.json();
        assert_eq!(
            (row["to_username"].as_str(), row["to_domain"].as_str()),
            (Some("mike"), Some("sip.example.org"))
        );
        assert_eq!(row["last_status"], 200);
        let r = h
            .admin(
                "PATCH",
                &path(2),
                Some(json!({"last_status": 503, "received_at": "2026-08-20T10:00:01Z"})),
            )
            .await;
        assert_eq!(r.status, 201);
        let r = h
            .admin(
                "PATCH",
                &path(2),
                Some(json!({"last_status": "200", "received_at": "2026-08-20T10:01:00Z"})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["last_status"], 200);
        assert_eq!(
            h.count("SELECT COUNT(*) FROM statistics_message_devices")
                .await,
            2
        );

        // The recipient (a user) lists it with every device's latest response.
        let (mike_id, mike_key) = account(h.db(), "mike", HOST, false).await;
        let r = h
            .raw(
                "GET",
                "/api/accounts/me/statistics/messages",
                Some(&mike_key),
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        let page = r.json();
        assert_eq!(page["total"], 1);
        let message = &page["data"][0];
        assert_eq!(message["id"], id.as_str());
        assert_eq!(message["from_username"], "tony");
        assert_eq!(
            message["to"]["mike@sip.example.org"][device(1)]["last_status"],
            200
        );
        assert_eq!(
            message["to"]["mike@sip.example.org"][device(2)]["received_at"],
            "2026-08-20T10:01:00.000000Z"
        );
        assert_eq!(
            page["path"],
            "http://sip.example.org/api/accounts/me/statistics/messages"
        );
        // The sender, through the admin listing.
        let r = h
            .admin(
                "GET",
                &format!("/api/accounts/{}/statistics/messages", h.tony_id),
                None,
            )
            .await;
        assert_eq!(r.json()["total"], 1);
        let r = h
            .admin(
                "GET",
                &format!("/api/accounts/{mike_id}/statistics/messages"),
                None,
            )
            .await;
        assert_eq!(r.json()["data"][0]["id"], id.as_str());

        // Group chat: `to: {}` and a conference id, then a participant receipt.
        let group = event_id("message-2");
        let r = h
            .admin(
                "POST",
                "/api/stats/messages",
                Some(
                    json!({"conference_id": "abc", "encrypted": "1", "from": "tony@sip.example.org",
                    "id": group, "sent_at": "2026-08-20T11:00:00Z", "to": {}}),
                ),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        let r = h
            .admin(
                "GET",
                &format!("/api/accounts/{}/statistics/messages", h.tony_id),
                None,
            )
            .await;
        let page = r.json();
        assert_eq!(page["total"], 2);
        assert_eq!(page["data"][0]["id"], group.as_str(), "newest first");
        assert_eq!(page["data"][0]["conference_id"], "abc");
        assert_eq!(page["data"][0]["encrypted"], true);
        assert_eq!(page["data"][0]["to"], json!({}));
    }
}

#[tokio::test]
async fn validation_answers_laravel_422() {
    for engine in ENGINES {
        let h = Harness::new(engine).await;
        let r = h
            .admin("POST", "/api/statistics/messages", Some(json!({})))
            .await;
        assert_eq!(r.status, 422);
        assert_eq!(
            r.json(),
            json!({"message": "The id field is required. (and 3 more errors)", "errors": {
                "id": ["The id field is required."], "from": ["The from field is required."],
                "sent_at": ["The sent at field is required."], "encrypted": ["The encrypted field is required."]}})
        );
        let r = h
            .admin("POST", "/api/statistics/messages", Some(json!({"id": 12, "from": "nodomain", "sent_at": "bad_date", "encrypted": "yes"})))
            .await;
        assert_eq!(r.status, 422);
        let errors = &r.json()["errors"];
        assert_eq!(errors["id"], json!(["The id must be a string."]));
        assert_eq!(
            errors["from"],
            json!(["The from must be a SIP address (user@domain)."])
        );
        assert_eq!(errors["sent_at"], json!(["validation.iso_date"]));
        assert_eq!(
            errors["encrypted"],
            json!(["The encrypted field must be true or false."])
        );

        let long = "x".repeat(65);
        let r = h
            .admin("POST", "/api/statistics/calls", Some(json!({"id": long, "from": "a@b", "to": "c@d", "initiated_at": "2017-07-21", "ended_at": "nope"})))
            .await;
        assert_eq!(r.status, 422);
        assert_eq!(
            r.json()["errors"]["id"],
            json!(["The id may not be greater than 64 characters."])
        );
        assert_eq!(
            r.json()["errors"]["ended_at"],
            json!(["validation.iso_date"])
        );

        let id = event_id("v-call");
        h.admin(
            "POST",
            "/api/statistics/calls",
            Some(call_body(&id, "a@b", "c@d", "2017-07-21T17:32:28Z", &[])),
        )
        .await;
        let path = format!("/api/statistics/calls/{id}/devices/x");
        for (body, field, message) in [
            (json!({"rang_at": null}), "rang_at", "validation.iso_date"),
            (json!({"rang_at": "x"}), "rang_at", "validation.iso_date"),
            (json!({"invite_terminated": {"state": "declined"}}), "invite_terminated.at",
             "The invite terminated.at field is required when invite terminated.state / iso date is present."),
            (json!({"invite_terminated": {"at": "2017-07-21T17:32:28Z", "state": "whatever"}}), "invite_terminated.state",
             "The selected invite terminated.state is invalid."),
            (json!({"invite_terminated": {"at": "2017-07-21T17:32:28Z"}}), "invite_terminated.state",
             "The invite terminated.state field is required when invite terminated.at is present."),
        ] {
            let r = h.admin("PATCH", &path, Some(body.clone())).await;
            assert_eq!(r.status, 422, "{body}");
            assert_eq!(r.json()["errors"][field], json!([message]), "{body}: {}", r.text());
        }
        // Validation runs before the lookup: an unknown call with a bad body is a 422, not a 404.
        let r = h
            .admin(
                "PATCH",
                &format!("/api/statistics/calls/{}", event_id("unknown")),
                Some(json!({})),
            )
            .await;
        assert_eq!(r.status, 422);
        assert_eq!(
            r.json()["errors"]["ended_at"],
            json!(["The ended at field is required."])
        );
        // `{to}` without `@` is a 422 rather than upstream's crash.
        let r = h
            .admin(
                "PATCH",
                &format!("/api/statistics/messages/{id}/to/nodomain/devices/d"),
                Some(json!({"last_status": 200, "received_at": "2017-07-21"})),
            )
            .await;
        assert_eq!(r.status, 422);
        assert!(r.json()["errors"]["to"].is_array());
        // French messages.
        let mut builder =
            flexiapi_core::testing::json_request("POST", HOST, "/api/statistics/calls")
                .header("x-api-key", &h.admin_key)
                .header("accept-language", "fr");
        builder = builder.header("x-test", "1");
        let r = flexiapi_core::testing::send(
            &h.router,
            builder.body(axum::body::Body::from("{}")).unwrap(),
        )
        .await;
        assert_eq!(
            r.json()["errors"]["id"],
            json!(["Le champ id est obligatoire."])
        );

        assert_eq!(
            h.count("SELECT COUNT(*) FROM statistics_calls").await,
            1,
            "nothing written by refused requests"
        );
        assert_eq!(
            h.count("SELECT COUNT(*) FROM statistics_call_devices")
                .await,
            0
        );
        assert_eq!(h.count("SELECT COUNT(*) FROM statistics_messages").await, 0);
        assert_eq!(
            h.count("SELECT COUNT(*) FROM statistics_pending_updates")
                .await,
            0
        );
    }
}

#[tokio::test]
async fn bad_bodies_and_credentials_get_clear_4xx() {
    for engine in ENGINES {
        let h = Harness::with_settings(engine, &[("FLEXIAPI_INGEST_MAX_BODY_BYTES", "1024")]).await;
        // Invalid JSON is reported before authentication.
        let r = h
            .raw(
                "POST",
                "/api/statistics/calls",
                None,
                Some("{\"id\":".into()),
            )
            .await;
        assert_eq!(r.status, 400);
        assert_eq!(r.json(), json!({"message": "Invalid JSON: Syntax error"}));
        let r = h
            .raw("POST", "/api/statistics/calls", None, Some("{}".into()))
            .await;
        assert_eq!(r.status, 401, "{}", r.text());
        let r = h
            .raw(
                "POST",
                "/api/statistics/calls",
                Some("wrong"),
                Some("{}".into()),
            )
            .await;
        assert_eq!(r.status, 401);
        assert!(r.text().contains("Invalid API Key"), "{}", r.text());
        let r = h
            .raw(
                "POST",
                "/api/statistics/calls",
                Some(&h.user_key),
                Some("{}".into()),
            )
            .await;
        assert_eq!(r.status, 403);
        assert_eq!(r.json(), json!({"message": "Unauthorized area"}));
        // Oversized body → 413.
        let big = json!({"id": event_id("big"), "from": "a@b", "to": "c@d", "initiated_at": "2017-07-21", "pad": "x".repeat(2000)});
        let r = h.admin("POST", "/api/statistics/calls", Some(big)).await;
        assert_eq!(r.status, 413);
        // Invalid UTF-8.
        let r = h
            .raw(
                "POST",
                "/api/statistics/calls",
                Some(&h.admin_key),
                Some(b"{\"id\":\"\xff\"}".to_vec()),
            )
            .await;
        assert_eq!(
            r.json(),
            json!({"message": "Invalid JSON: Malformed UTF-8 characters, possibly incorrectly encoded"})
        );
        // Unknown host.
        let builder = flexiapi_core::testing::json_request(
            "POST",
            "nowhere.example.org",
            "/api/statistics/calls",
        );
        let r = flexiapi_core::testing::send(
            &h.router,
            builder.body(axum::body::Body::from("{}")).unwrap(),
        )
        .await;
        assert_eq!(r.status, 404);
        assert_eq!(h.count("SELECT COUNT(*) FROM statistics_calls").await, 0);
    }
}

#[tokio::test]
async fn updates_arriving_before_their_post_are_reconciled() {
    for engine in ENGINES {
        let h = Harness::new(engine).await;
        let id = event_id("early");
        // Flexisip <= 2.4: the PATCHes may overtake the POST. Upstream's statuses, but nothing is lost.
        let r = h
            .admin(
                "PATCH",
                &format!("/api/stats/calls/{id}/devices/{}", device_path(7)),
                Some(json!({"rang_at": "2026-08-20T10:00:02Z"})),
            )
            .await;
        assert_eq!(r.status, 400);
        let r = h
            .admin("PATCH", &format!("/api/stats/calls/{id}/devices/{}", device_path(7)),
                   Some(json!({"invite_terminated": {"at": "2026-08-20T10:00:04Z", "state": "declined"}})))
            .await;
        assert_eq!(r.status, 400);
        let r = h
            .admin(
                "PATCH",
                &format!("/api/stats/calls/{id}"),
                Some(json!({"ended_at": "2026-08-20T10:01:00Z"})),
            )
            .await;
        assert_eq!(r.status, 404);
        let message = event_id("early-message");
        let r = h
            .admin(
                "PATCH",
                &format!(
                    "/api/stats/messages/{message}/to/tony@sip.example.org/devices/{}",
                    device_path(3)
                ),
                Some(json!({"last_status": 200, "received_at": "2026-08-20T10:00:01Z"})),
            )
            .await;
        assert_eq!(r.status, 400);
        assert_eq!(
            h.count("SELECT COUNT(*) FROM statistics_pending_updates")
                .await,
            4
        );

        let r = h
            .admin(
                "POST",
                "/api/stats/calls",
                Some(call_body(
                    &id,
                    "mike@sip.example.org",
                    "tony@sip.example.org",
                    "2026-08-20T10:00:00Z",
                    &[7],
                )),
            )
            .await;
        assert_eq!(r.status, 200);
        let r = h
            .admin("POST", "/api/stats/messages", Some(json!({"id": message, "from": "mike@sip.example.org", "sent_at": "2026-08-20T10:00:00Z", "encrypted": false, "to": {}})))
            .await;
        assert_eq!(r.status, 200);
        assert_eq!(
            h.count("SELECT COUNT(*) FROM statistics_pending_updates")
                .await,
            0
        );

        let r = h.user("GET", "/api/accounts/me/statistics/calls").await;
        let call = &r.json()["data"][0];
        assert_eq!(call["ended_at"], "2026-08-20T10:01:00.000000Z");
        assert_eq!(call["devices"][0]["rang_at"], "2026-08-20T10:00:02.000000Z");
        assert_eq!(call["devices"][0]["invite_terminated_state"], "declined");
        let r = h.user("GET", "/api/accounts/me/statistics/messages").await;
        assert_eq!(
            r.json()["data"][0]["to"]["tony@sip.example.org"][device(3)]["last_status"],
            200
        );
    }
}

#[tokio::test]
async fn call_listings_order_paginate_and_scope() {
    for engine in ENGINES {
        let h = Harness::new(engine).await;
        for i in 0..31 {
            let (from, to) = if i % 2 == 0 {
                ("tony@sip.example.org", "mike@sip.example.org")
            } else {
                ("mike@sip.example.org", "tony@sip.example.org")
            };
            let at = format!("2026-08-20T10:{:02}:00Z", i);
            let r = h
                .admin(
                    "POST",
                    "/api/statistics/calls",
                    Some(call_body(&event_id(&format!("c{i}")), from, to, &at, &[i])),
                )
                .await;
            assert_eq!(r.status, 200);
        }
        // A self-call appears once (SQL UNION), calls of others not at all.
        h.admin(
            "POST",
            "/api/statistics/calls",
            Some(call_body(
                &event_id("self"),
                "tony@sip.example.org",
                "tony@sip.example.org",
                "2026-08-19T00:00:00Z",
                &[],
            )),
        )
        .await;
        h.admin(
            "POST",
            "/api/statistics/calls",
            Some(call_body(
                &event_id("other"),
                "mike@sip.example.org",
                "bob@sip.example.org",
                "2026-08-21T00:00:00Z",
                &[],
            )),
        )
        .await;

        let r = h.user("GET", "/api/accounts/me/statistics/calls").await;
        assert_eq!(r.status, 200, "{}", r.text());
        let page = r.json();
        assert_eq!(page["total"], 32);
        assert_eq!(page["per_page"], 30);
        assert_eq!(page["last_page"], 2);
        let data = page["data"].as_array().unwrap();
        assert_eq!(data.len(), 30);
        assert_eq!(
            data[0]["initiated_at"], "2026-08-20T10:30:00.000000Z",
            "newest first"
        );
        assert_eq!(data[29]["initiated_at"], "2026-08-20T10:01:00.000000Z");
        assert_eq!(data[0]["devices"][0]["device_id"], device(30));
        let r = h
            .user("GET", "/api/accounts/me/statistics/calls?page=2")
            .await;
        let page = r.json();
        assert_eq!(page["data"].as_array().unwrap().len(), 2);
        assert_eq!(page["data"][1]["id"], event_id("self").as_str());
        assert_eq!(
            page["prev_page_url"],
            "http://sip.example.org/api/accounts/me/statistics/calls?page=1"
        );

        let r = h
            .admin(
                "GET",
                &format!("/api/accounts/{}/statistics/calls", h.tony_id),
                None,
            )
            .await;
        assert_eq!(r.json()["total"], 32);
        assert_eq!(
            r.json()["path"],
            format!(
                "http://sip.example.org/api/accounts/{}/statistics/calls",
                h.tony_id
            )
        );
        // The user listing needs authentication; the admin one an admin.
        assert_eq!(
            h.raw("GET", "/api/accounts/me/statistics/calls", None, None)
                .await
                .status,
            401
        );
        assert_eq!(
            h.user(
                "GET",
                &format!("/api/accounts/{}/statistics/calls", h.tony_id)
            )
            .await
            .status,
            403
        );
        // Accounts of another Space are invisible to this Space's admin.
        let (other_id, _) = account(h.db(), "zoe", OTHER, false).await;
        let r = h
            .admin(
                "GET",
                &format!("/api/accounts/{other_id}/statistics/calls"),
                None,
            )
            .await;
        assert_eq!(r.status, 404);
        assert_eq!(
            r.json(),
            json!({"message": format!("No query results for model [App\\Account] {other_id}")})
        );
        assert_eq!(
            h.admin("GET", "/api/accounts/abc/statistics/calls", None)
                .await
                .status,
            404
        );
    }
}

#[tokio::test]
async fn deleting_an_account_deletes_what_it_sent() {
    for engine in ENGINES {
        let h = Harness::new(engine).await;
        let sent = event_id("sent");
        let received = event_id("received");
        h.admin(
            "POST",
            "/api/statistics/calls",
            Some(call_body(
                &sent,
                "tony@sip.example.org",
                "mike@sip.example.org",
                "2026-08-20T10:00:00Z",
                &[1],
            )),
        )
        .await;
        h.admin(
            "PATCH",
            &format!("/api/statistics/calls/{sent}/devices/d1"),
            Some(json!({"rang_at": "2026-08-20T10:00:01Z"})),
        )
        .await;
        h.admin(
            "POST",
            "/api/statistics/calls",
            Some(call_body(
                &received,
                "mike@sip.example.org",
                "tony@sip.example.org",
                "2026-08-20T10:00:00Z",
                &[],
            )),
        )
        .await;
        let message = event_id("m");
        h.admin("POST", "/api/statistics/messages", Some(json!({"id": message, "from": "tony@sip.example.org", "sent_at": "2026-08-20", "encrypted": false, "to": {"mike@sip.example.org": {"d": null}}}))).await;

        h.exec(&format!("DELETE FROM accounts WHERE id = {}", h.tony_id))
            .await;
        assert_eq!(
            h.count(&format!(
                "SELECT COUNT(*) FROM statistics_calls WHERE id = '{sent}'"
            ))
            .await,
            0
        );
        assert_eq!(
            h.count("SELECT COUNT(*) FROM statistics_call_devices")
                .await,
            0,
            "devices follow by cascade"
        );
        assert_eq!(
            h.count("SELECT COUNT(*) FROM statistics_call_forked_devices")
                .await,
            0
        );
        assert_eq!(
            h.count(&format!(
                "SELECT COUNT(*) FROM statistics_calls WHERE id = '{received}'"
            ))
            .await,
            1,
            "received call kept"
        );
        assert_eq!(h.count("SELECT COUNT(*) FROM statistics_messages").await, 0);
        assert_eq!(
            h.count("SELECT COUNT(*) FROM statistics_message_recipients")
                .await,
            0
        );
        // The id is free again.
        let r = h
            .admin(
                "POST",
                "/api/statistics/calls",
                Some(call_body(
                    &sent,
                    "tony@sip.example.org",
                    "mike@sip.example.org",
                    "2026-08-20T10:00:00Z",
                    &[],
                )),
            )
            .await;
        assert_eq!(r.status, 200);
    }
}

#[tokio::test]
async fn conferences_and_participant_events() {
    for engine in ENGINES {
        let h = Harness::new(engine).await;
        let r = h.admin("POST", "/api/stats/conferences", Some(json!({"created_at": "2026-08-20T10:00:00Z", "ended_at": null, "id": "conf-1", "schedule": null}))).await;
        assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "1"));
        assert_eq!(
            h.admin(
                "POST",
                "/api/stats/conferences",
                Some(json!({"created_at": "2026-08-20T10:00:00Z", "id": "conf-1"}))
            )
            .await
            .status,
            400
        );
        let r = h
            .admin(
                "POST",
                "/api/stats/conferences/conf-1/participants/tony@sip.example.org/events",
                Some(json!({"at": "2026-08-20T10:00:01Z", "type": "added"})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        let r = h
            .admin("POST", &format!("/api/stats/conferences/conf-1/participants/tony@sip.example.org/devices/{}/events", device_path(4)),
                   Some(json!({"at": "2026-08-20T10:00:02Z", "type": "joined"})))
            .await;
        assert_eq!(r.status, 200);
        let r = h
            .admin(
                "POST",
                "/api/stats/conferences/conf-1/participants/tony@sip.example.org/events",
                Some(json!({"at": "2026-08-20T10:00:01Z", "type": "joined"})),
            )
            .await;
        assert_eq!(r.status, 422);
        assert_eq!(
            r.json()["errors"]["type"],
            json!(["The selected type is invalid."])
        );
        let r = h
            .admin(
                "PATCH",
                "/api/stats/conferences/conf-1",
                Some(json!({"ended_at": "2026-08-20T11:00:00Z"})),
            )
            .await;
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["ended_at"], "2026-08-20T11:00:00.000000Z");
        assert_eq!(
            h.admin(
                "PATCH",
                "/api/stats/conferences/nope",
                Some(json!({"ended_at": "2026-08-20T11:00:00Z"}))
            )
            .await
            .status,
            404
        );

        let r = h
            .admin("GET", "/api/statistics/conferences/conf-1", None)
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        let conference = r.json();
        assert_eq!(conference["created_at"], "2026-08-20T10:00:00.000000Z");
        assert_eq!(
            conference["participant_events"],
            json!([{"participant": "tony@sip.example.org", "type": "added", "at": "2026-08-20T10:00:01.000000Z"}])
        );
        assert_eq!(
            conference["participant_device_events"][0]["device_id"],
            device(4)
        );
        assert_eq!(
            h.admin("GET", "/api/statistics/conferences/nope", None)
                .await
                .status,
            404
        );
        assert_eq!(
            h.user("GET", "/api/statistics/conferences/conf-1")
                .await
                .status,
            403
        );
    }
}

#[tokio::test]
async fn concurrent_requests_share_commits_and_all_land() {
    for engine in ENGINES {
        let h = std::sync::Arc::new(
            Harness::with_settings(engine, &[("FLEXIAPI_INGEST_QUEUE_DEPTH", "8")]).await,
        );
        let mut tasks = Vec::new();
        for i in 0..200u32 {
            let h = h.clone();
            tasks.push(tokio::spawn(async move {
                let id = event_id(&format!("load{i}"));
                let r = h
                    .admin(
                        "POST",
                        "/api/stats/calls",
                        Some(call_body(
                            &id,
                            "tony@sip.example.org",
                            "mike@sip.example.org",
                            "2026-08-20T10:00:00Z",
                            &[i],
                        )),
                    )
                    .await;
                assert_eq!(r.status, 200);
                let r = h
                    .admin(
                        "PATCH",
                        &format!("/api/stats/calls/{id}/devices/{}", device_path(i)),
                        Some(json!({"rang_at": "2026-08-20T10:00:01Z"})),
                    )
                    .await;
                assert_eq!(r.status, 201);
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(h.count("SELECT COUNT(*) FROM statistics_calls").await, 200);
        assert_eq!(
            h.count("SELECT COUNT(*) FROM statistics_call_devices")
                .await,
            200
        );
    }
}

#[tokio::test]
async fn shutdown_drains_accepted_events() {
    for engine in ENGINES {
        let mut h = Harness::new(engine).await;
        let r = h
            .admin(
                "POST",
                "/api/stats/calls",
                Some(call_body(
                    &event_id("before"),
                    "a@b",
                    "c@d",
                    "2026-08-20T10:00:00Z",
                    &[],
                )),
            )
            .await;
        assert_eq!(r.status, 200);
        h.ingest.take().unwrap().shutdown().await;
        // After shutdown the log refuses new events with a 503 instead of losing them silently.
        let r = h
            .admin(
                "POST",
                "/api/stats/calls",
                Some(call_body(
                    &event_id("after"),
                    "a@b",
                    "c@d",
                    "2026-08-20T10:00:00Z",
                    &[],
                )),
            )
            .await;
        assert_eq!(r.status, 503);
        assert_eq!(h.count("SELECT COUNT(*) FROM statistics_calls").await, 1);
    }
}

#[tokio::test]
async fn a_failing_event_fails_alone_in_its_batch() {
    for engine in ENGINES {
        let h = std::sync::Arc::new(Harness::new(engine).await);
        let bad = event_id("refused");
        // A trigger makes one insert fail inside the database, as a disk or constraint error would.
        match engine {
            flexiapi_core::testing::Engine::Sqlite => {
                h.exec(&format!(
                    "CREATE TRIGGER refuse BEFORE INSERT ON statistics_calls WHEN NEW.id = '{bad}' \
                     BEGIN SELECT RAISE(ABORT, 'refused'); END"
                ))
                .await
            }
            flexiapi_core::testing::Engine::Postgres => {
                h.exec(&format!(
                    "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN \
                     IF NEW.id = '{bad}' THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql"
                ))
                .await;
                h.exec("CREATE TRIGGER refuse BEFORE INSERT ON statistics_calls FOR EACH ROW EXECUTE FUNCTION refuse()")
                    .await
            }
        }
        // Sent together, so that they share batches with the bad one (the test runtime is single-threaded:
        // every request is queued before the writer runs).
        let mut tasks = Vec::new();
        for i in 0..40u32 {
            let h = h.clone();
            let id = if i == 20 {
                bad.clone()
            } else {
                event_id(&format!("fine{i}"))
            };
            tasks.push(tokio::spawn(async move {
                let body = call_body(&id, "a@b", "c@d", "2026-08-20T10:00:00Z", &[i]);
                (
                    i,
                    h.admin("POST", "/api/stats/calls", Some(body)).await.status,
                )
            }));
        }
        for task in tasks {
            let (i, status) = task.await.unwrap();
            assert_eq!(status, if i == 20 { 500 } else { 200 }, "request {i}");
        }
        assert_eq!(h.count("SELECT COUNT(*) FROM statistics_calls").await, 39);
        assert_eq!(
            h.count("SELECT COUNT(*) FROM statistics_call_forked_devices")
                .await,
            39
        );
    }
}

#[tokio::test]
async fn sqlite_timestamps_are_stored_as_sqlx_text() {
    let h = Harness::new(flexiapi_core::testing::Engine::Sqlite).await;
    let id = event_id("stamps");
    let body = call_body(&id, "a@b", "c@d", "2026-08-20T10:00:00+02:00", &[1]);
    assert_eq!(
        h.admin("POST", "/api/stats/calls", Some(body)).await.status,
        200
    );
    let r = h
        .admin(
            "PATCH",
            &format!("/api/stats/calls/{id}/devices/{}", device_path(1)),
            Some(json!({"rang_at": "2026-08-20T08:00:03Z"})),
        )
        .await;
    assert_eq!(r.status, 201);
    // sqlx-sqlite writes `%F %T%.f` text; the account row below was written by sqlx itself.
    assert_eq!(
        h.count(&format!(
            "SELECT COUNT(*) FROM statistics_calls WHERE id = '{id}' AND typeof(initiated_at) = 'text' \
             AND initiated_at = '2026-08-20 08:00:00' AND created_at = updated_at"
        ))
        .await,
        1
    );
    assert_eq!(
        h.count(
            "SELECT COUNT(*) FROM statistics_call_devices d, accounts a WHERE a.username = 'tony' \
             AND d.rang_at = '2026-08-20 08:00:03' AND typeof(d.created_at) = typeof(a.created_at) \
             AND length(d.created_at) = length(a.created_at) AND substr(d.created_at, 11, 1) = substr(a.created_at, 11, 1)"
        )
        .await,
        1
    );
}
