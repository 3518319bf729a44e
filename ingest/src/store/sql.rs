//! The SQL of the embedded store, written once and expanded for each engine (`sqlite`, `postgres`) so row
//! and connection types stay concrete. Every function takes the connection of the current transaction.
//!
//! Updates whose parent is missing are kept in `statistics_pending_updates` under `kind:id` and applied,
//! in arrival order, by the POST that creates the parent.

use chrono::NaiveDateTime;
use serde_json::Value;

use super::json::*;
use crate::date::naive;
use crate::event::{Event, Identity};
use crate::log::{Outcome, Page};

/// The key an update waits under until its parent exists.
pub fn pending_key(event: &Event) -> Option<String> {
    match event {
        Event::MessageDeviceResponded { message_id, .. } => Some(format!("message:{message_id}")),
        Event::CallDeviceUpdated { call_id, .. } | Event::CallEnded { call_id, .. } => {
            Some(format!("call:{call_id}"))
        }
        Event::ConferenceEnded { conference_id, .. } => Some(format!("conference:{conference_id}")),
        _ => None,
    }
}

/// `$first, $first+1, …` for `count` values.
fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Splits a `to` map key like upstream; a key without `@` is kept whole as the username.
pub(super) fn recipient(key: &str) -> Identity {
    Identity::parse(key).unwrap_or_else(|| Identity {
        username: key.to_owned(),
        domain: String::new(),
    })
}

/// The write side: applies events inside the caller's transaction. Expanded for PostgreSQL only — SQLite
/// writes go through [`super::lite`] (one OS thread, no per-statement async round trip).
macro_rules! writes {
    () => {
            /// Applies one event inside the caller's transaction.
            pub async fn apply(conn: &mut Conn, event: &Event, now: NaiveDateTime) -> Result<Outcome, sqlx::Error> {
                match event {
                    Event::MessageCreated { id, from, sent_at, encrypted, conference_id, to } => {
                        let inserted: Option<(i64,)> = sqlx::query_as(
                            "INSERT INTO statistics_messages (id, from_username, from_domain, sent_at, encrypted, conference_id, created_at, updated_at) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $7) ON CONFLICT (id) DO NOTHING RETURNING seq")
                            .bind(id).bind(&from.username).bind(&from.domain).bind(naive(*sent_at))
                            .bind(*encrypted).bind(conference_id).bind(now)
                            .fetch_optional(&mut *conn).await?;
                        // No row back: the id exists. The child rows are keyed by the new message's seq.
                        let Some((seq,)) = inserted else {
                            return Ok(Outcome::Duplicate);
                        };
                        for (key, devices) in to {
                            let who = recipient(key);
                            for (device, response) in devices {
                                sqlx::query(
                                    "INSERT INTO statistics_message_recipients (message_seq, message_id, to_username, to_domain, device_id, last_status, received_at) \
                                     VALUES ($7, $1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING")
                                    .bind(id).bind(&who.username).bind(&who.domain).bind(device)
                                    .bind(response.as_ref().map(|r| r.last_status))
                                    .bind(response.as_ref().map(|r| naive(r.received_at))).bind(seq)
                                    .execute(&mut *conn).await?;
                            }
                        }
                        apply_pending(conn, &format!("message:{id}"), now).await?;
                        Ok(Outcome::Created)
                    }
                    Event::CallCreated { id, from, to, initiated_at, ended_at, conference_id, sip_call_id, devices } => {
                        let inserted: Option<(i64,)> = sqlx::query_as(
                            "INSERT INTO statistics_calls (id, from_username, from_domain, to_username, to_domain, initiated_at, ended_at, conference_id, sip_call_id, created_at, updated_at) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) ON CONFLICT (id) DO NOTHING RETURNING seq")
                            .bind(id).bind(&from.username).bind(&from.domain).bind(&to.username).bind(&to.domain)
                            .bind(naive(*initiated_at)).bind(ended_at.map(naive)).bind(conference_id).bind(sip_call_id).bind(now)
                            .fetch_optional(&mut *conn).await?;
                        let Some((seq,)) = inserted else {
                            return Ok(Outcome::Duplicate);
                        };
                        for (device, state) in devices {
                            sqlx::query(
                                "INSERT INTO statistics_call_forked_devices (call_seq, call_id, device_id, state) \
                                 VALUES ($4, $1, $2, $3) ON CONFLICT DO NOTHING")
                                .bind(id).bind(device).bind(state.as_ref().map(Value::to_string)).bind(seq)
                                .execute(&mut *conn).await?;
                        }
                        apply_pending(conn, &format!("call:{id}"), now).await?;
                        Ok(Outcome::Created)
                    }
                    Event::ConferenceCreated { id, created_at, ended_at, schedule } => {
                        let inserted = sqlx::query(
                            "INSERT INTO statistics_conferences (id, created_at, ended_at, schedule, stored_at, updated_at) \
                             VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (id) DO NOTHING")
                            .bind(id).bind(naive(*created_at)).bind(ended_at.map(naive)).bind(schedule).bind(now)
                            .execute(&mut *conn).await?.rows_affected();
                        if inserted == 0 {
                            return Ok(Outcome::Duplicate);
                        }
                        apply_pending(conn, &format!("conference:{id}"), now).await?;
                        Ok(Outcome::Created)
                    }
                    Event::ParticipantEvent { conference_id, participant, at, event_type } => {
                        sqlx::query(
                            "INSERT INTO statistics_conference_participant_events (conference_id, participant_username, participant_domain, type, at, created_at) \
                             VALUES ($1, $2, $3, $4, $5, $6)")
                            .bind(conference_id).bind(&participant.username).bind(&participant.domain)
                            .bind(wire(event_type)).bind(naive(*at)).bind(now)
                            .execute(&mut *conn).await?;
                        Ok(Outcome::Created)
                    }
                    Event::ParticipantDeviceEvent { conference_id, participant, device_id, at, event_type } => {
                        sqlx::query(
                            "INSERT INTO statistics_conference_participant_device_events (conference_id, participant_username, participant_domain, device_id, type, at, created_at) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7)")
                            .bind(conference_id).bind(&participant.username).bind(&participant.domain).bind(device_id)
                            .bind(wire(event_type)).bind(naive(*at)).bind(now)
                            .execute(&mut *conn).await?;
                        Ok(Outcome::Created)
                    }
                    update => apply_update(conn, update, now, true).await,
                }
            }

            /// Applies an update; when its parent is missing and `keep`, stores it for later.
            async fn apply_update(conn: &mut Conn, event: &Event, now: NaiveDateTime, keep: bool) -> Result<Outcome, sqlx::Error> {
                let outcome = match event {
                    Event::MessageDeviceResponded { message_id, to, device_id, response } => {
                        // The message's seq, found once: its device rows are keyed by it.
                        if let Some(seq) = seq_of(conn, "SELECT seq FROM statistics_messages WHERE id = $1", message_id).await? {
                            let existing: Option<(i64, NaiveDateTime)> = sqlx::query_as(
                                "SELECT id, created_at FROM statistics_message_devices \
                                 WHERE message_seq = $1 AND to_username = $2 AND to_domain = $3 AND device_id = $4")
                                .bind(seq).bind(&to.username).bind(&to.domain).bind(device_id)
                                .fetch_optional(&mut *conn).await?;
                            let received_at = naive(response.received_at);
                            let (id, created_at, created) = match existing {
                                Some((id, created_at)) => {
                                    sqlx::query("UPDATE statistics_message_devices SET last_status = $1, received_at = $2, updated_at = $3 WHERE id = $4")
                                        .bind(response.last_status).bind(received_at).bind(now).bind(id)
                                        .execute(&mut *conn).await?;
                                    (id, created_at, false)
                                }
                                None => {
                                    let (id,): (i64,) = sqlx::query_as(
                                        "INSERT INTO statistics_message_devices (message_seq, message_id, to_username, to_domain, device_id, last_status, received_at, created_at, updated_at) \
                                         VALUES ($8, $1, $2, $3, $4, $5, $6, $7, $7) RETURNING id")
                                        .bind(message_id).bind(&to.username).bind(&to.domain).bind(device_id)
                                        .bind(response.last_status).bind(received_at).bind(now).bind(seq)
                                        .fetch_one(&mut *conn).await?;
                                    (id, now, true)
                                }
                            };
                            let row = MessageDeviceRow {
                                id,
                                message_id: message_id.clone(),
                                to_username: to.username.clone(),
                                to_domain: to.domain.clone(),
                                device_id: device_id.clone(),
                                last_status: response.last_status,
                                received_at,
                                created_at,
                                updated_at: now,
                            };
                            Some(Outcome::Upserted { created, row: row.to_json() })
                        } else {
                            None
                        }
                    }
                    Event::CallDeviceUpdated { call_id, device_id, rang_at, invite_terminated } => {
                        // The call's seq, found once: its device and forked-device rows are keyed by it.
                        if let Some(seq) = seq_of(conn, "SELECT seq FROM statistics_calls WHERE id = $1", call_id).await? {
                            let existing: Option<CallDeviceRow> = sqlx::query_as(&format!(
                                "SELECT {CALL_DEVICE_COLUMNS} FROM statistics_call_devices WHERE call_seq = $1 AND device_id = $2"))
                                .bind(seq).bind(device_id)
                                .fetch_optional(&mut *conn).await?;
                            // Only the fields sent change the row (a later rang-only PATCH keeps the termination).
                            let rang = rang_at.map(naive);
                            let term_at = invite_terminated.as_ref().map(|t| naive(t.at));
                            let term_state = invite_terminated.as_ref().map(|t| t.state.as_str().to_owned());
                            let (row, created) = match existing {
                                Some(old) => {
                                    let row = CallDeviceRow {
                                        rang_at: rang.or(old.rang_at),
                                        invite_terminated_at: term_at.or(old.invite_terminated_at),
                                        invite_terminated_state: term_state.or(old.invite_terminated_state.clone()),
                                        updated_at: now,
                                        ..old
                                    };
                                    sqlx::query("UPDATE statistics_call_devices SET rang_at = $1, invite_terminated_at = $2, invite_terminated_state = $3, updated_at = $4 WHERE id = $5")
                                        .bind(row.rang_at).bind(row.invite_terminated_at).bind(&row.invite_terminated_state).bind(now).bind(row.id)
                                        .execute(&mut *conn).await?;
                                    (row, false)
                                }
                                None => {
                                    let (id,): (i64,) = sqlx::query_as(
                                        "INSERT INTO statistics_call_devices (call_seq, call_id, device_id, rang_at, invite_terminated_at, invite_terminated_state, created_at, updated_at) \
                                         VALUES ($7, $1, $2, $3, $4, $5, $6, $6) RETURNING id")
                                        .bind(call_id).bind(device_id).bind(rang).bind(term_at).bind(&term_state).bind(now).bind(seq)
                                        .fetch_one(&mut *conn).await?;
                                    let row = CallDeviceRow {
                                        id: Some(id),
                                        call_id: call_id.clone(),
                                        device_id: device_id.clone(),
                                        rang_at: rang,
                                        invite_terminated_at: term_at,
                                        invite_terminated_state: term_state,
                                        created_at: now,
                                        updated_at: now,
                                    };
                                    (row, true)
                                }
                            };
                            let forked = sqlx::query("SELECT 1 FROM statistics_call_forked_devices WHERE call_seq = $1 AND device_id = $2")
                                .bind(seq).bind(device_id)
                                .fetch_optional(&mut *conn).await?.is_some();
                            Some(Outcome::Upserted { created, row: row.to_json(forked) })
                        } else {
                            None
                        }
                    }
                    Event::CallEnded { call_id, ended_at } => {
                        let updated = sqlx::query("UPDATE statistics_calls SET ended_at = $1, updated_at = $2 WHERE id = $3")
                            .bind(naive(*ended_at)).bind(now).bind(call_id)
                            .execute(&mut *conn).await?.rows_affected();
                        if updated == 0 {
                            None
                        } else {
                            let call = call_json(conn, call_id).await?;
                            Some(Outcome::Ended(call.unwrap_or(Value::Null)))
                        }
                    }
                    Event::ConferenceEnded { conference_id, ended_at } => {
                        let updated = sqlx::query("UPDATE statistics_conferences SET ended_at = $1, updated_at = $2 WHERE id = $3")
                            .bind(naive(*ended_at)).bind(now).bind(conference_id)
                            .execute(&mut *conn).await?.rows_affected();
                        if updated == 0 {
                            None
                        } else {
                            Some(Outcome::Ended(conference(conn, conference_id).await?.unwrap_or(Value::Null)))
                        }
                    }
                    other => unreachable!("not an update: {other:?}"),
                };
                if let Some(outcome) = outcome {
                    return Ok(outcome);
                }
                if keep {
                    if let Some(key) = pending_key(event) {
                        let text = serde_json::to_string(event).expect("events serialise");
                        sqlx::query("INSERT INTO statistics_pending_updates (entity_id, event, created_at) VALUES ($1, $2, $3)")
                            .bind(key).bind(text).bind(now)
                            .execute(&mut *conn).await?;
                        metrics::counter!(crate::metrics::PENDING_KEPT, "kind" => event.kind()).increment(1);
                    }
                }
                Ok(match event {
                    Event::CallEnded { .. } | Event::ConferenceEnded { .. } => Outcome::NotFound,
                    _ => Outcome::UnknownParent,
                })
            }

            /// Applies, in arrival order, the updates that were waiting for `key`'s parent.
            async fn apply_pending(conn: &mut Conn, key: &str, now: NaiveDateTime) -> Result<(), sqlx::Error> {
                let waiting: Vec<(i64, String)> = sqlx::query_as(
                    "SELECT id, event FROM statistics_pending_updates WHERE entity_id = $1 ORDER BY id")
                    .bind(key)
                    .fetch_all(&mut *conn).await?;
                if waiting.is_empty() {
                    return Ok(());
                }
                for (_, text) in &waiting {
                    match serde_json::from_str::<Event>(text) {
                        Ok(event) => {
                            apply_update(conn, &event, now, false).await?;
                            metrics::counter!(crate::metrics::PENDING_APPLIED).increment(1);
                        }
                        Err(error) => tracing::warn!(%error, key, "unreadable pending update dropped"),
                    }
                }
                sqlx::query("DELETE FROM statistics_pending_updates WHERE entity_id = $1")
                    .bind(key)
                    .execute(&mut *conn).await?;
                Ok(())
            }

            /// Forgets updates whose parent never came.
            pub async fn purge_pending(conn: &mut Conn, before: NaiveDateTime) -> Result<u64, sqlx::Error> {
                Ok(sqlx::query("DELETE FROM statistics_pending_updates WHERE created_at < $1")
                    .bind(before)
                    .execute(&mut *conn).await?.rows_affected())
            }

            /// The `seq` a one-column query by id finds, None when there is no such row.
            async fn seq_of(conn: &mut Conn, sql: &str, id: &str) -> Result<Option<i64>, sqlx::Error> {
                Ok(sqlx::query_as::<_, (i64,)>(sql).bind(id).fetch_optional(&mut *conn).await?.map(|(seq,)| seq))
            }

            /// A call with every device, or None.
            pub async fn call_json(conn: &mut Conn, id: &str) -> Result<Option<Value>, sqlx::Error> {
                let call: Option<CallRow> = sqlx::query_as(&format!("SELECT {CALL_COLUMNS} FROM statistics_calls WHERE id = $1"))
                    .bind(id)
                    .fetch_optional(&mut *conn).await?;
                let Some(call) = call else { return Ok(None) };
                let mut listed = with_devices(conn, vec![call]).await?;
                Ok(listed.pop())
            }

    };
}

macro_rules! engine {
    ($name:ident, $conn:ty $(, $writes:ident)?) => {
        /// The store's SQL for one engine.
        pub mod $name {
            use super::*;

            type Conn = $conn;

            $($writes!();)?

            async fn with_devices(conn: &mut Conn, calls: Vec<CallRow>) -> Result<Vec<Value>, sqlx::Error> {
                if calls.is_empty() {
                    return Ok(Vec::new());
                }
                let marks = placeholders(1, calls.len());
                let sql = format!("SELECT {CALL_DEVICE_COLUMNS} FROM statistics_call_devices \
                                   WHERE call_seq IN (SELECT seq FROM statistics_calls WHERE id IN ({marks})) ORDER BY id");
                let mut query = sqlx::query_as::<_, CallDeviceRow>(&sql);
                for call in &calls {
                    query = query.bind(&call.id);
                }
                let rows = query.fetch_all(&mut *conn).await?;
                let sql = format!("SELECT call_id, device_id FROM statistics_call_forked_devices \
                                   WHERE call_seq IN (SELECT seq FROM statistics_calls WHERE id IN ({marks})) ORDER BY call_id, device_id");
                let mut query = sqlx::query_as::<_, (String, String)>(&sql);
                for call in &calls {
                    query = query.bind(&call.id);
                }
                let forked = query.fetch_all(&mut *conn).await?;
                Ok(calls.iter().map(|call| call.to_json(call.devices(&rows, &forked))).collect())
            }

            /// Calls `who` made or received (SQL UNION: a self-call once), newest first.
            pub async fn calls(conn: &mut Conn, who: &Identity, offset: u64, limit: u64) -> Result<Page, sqlx::Error> {
                let union = format!(
                    "SELECT {CALL_COLUMNS} FROM statistics_calls WHERE from_username = $1 AND from_domain = $2 \
                     UNION SELECT {CALL_COLUMNS} FROM statistics_calls WHERE to_username = $1 AND to_domain = $2");
                let (total,): (i64,) = sqlx::query_as(&format!("SELECT COUNT(*) FROM ({union}) AS listed"))
                    .bind(&who.username).bind(&who.domain)
                    .fetch_one(&mut *conn).await?;
                let rows: Vec<CallRow> = sqlx::query_as(&format!("{union} ORDER BY initiated_at DESC, id LIMIT $3 OFFSET $4"))
                    .bind(&who.username).bind(&who.domain).bind(limit as i64).bind(offset as i64)
                    .fetch_all(&mut *conn).await?;
                Ok(Page { items: with_devices(conn, rows).await?, total: total as u64 })
            }

            /// Messages `who` sent or was a recipient of (targeted at fork time or reported by a device).
            pub async fn messages(conn: &mut Conn, who: &Identity, offset: u64, limit: u64) -> Result<Page, sqlx::Error> {
                let m = MESSAGE_COLUMNS
                    .split(", ")
                    .map(|c| format!("m.{c}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let union = format!(
                    "SELECT {MESSAGE_COLUMNS} FROM statistics_messages WHERE from_username = $1 AND from_domain = $2 \
                     UNION SELECT {m} FROM statistics_messages m JOIN statistics_message_recipients r ON r.message_seq = m.seq \
                       WHERE r.to_username = $1 AND r.to_domain = $2 \
                     UNION SELECT {m} FROM statistics_messages m JOIN statistics_message_devices d ON d.message_seq = m.seq \
                       WHERE d.to_username = $1 AND d.to_domain = $2");
                let (total,): (i64,) = sqlx::query_as(&format!("SELECT COUNT(*) FROM ({union}) AS listed"))
                    .bind(&who.username).bind(&who.domain)
                    .fetch_one(&mut *conn).await?;
                let rows: Vec<MessageRow> = sqlx::query_as(&format!("{union} ORDER BY sent_at DESC, id LIMIT $3 OFFSET $4"))
                    .bind(&who.username).bind(&who.domain).bind(limit as i64).bind(offset as i64)
                    .fetch_all(&mut *conn).await?;
                if rows.is_empty() {
                    return Ok(Page { items: Vec::new(), total: total as u64 });
                }
                let marks = placeholders(1, rows.len());
                let sql = format!("SELECT message_id, to_username, to_domain, device_id, last_status, received_at \
                                   FROM statistics_message_recipients \
                                   WHERE message_seq IN (SELECT seq FROM statistics_messages WHERE id IN ({marks})) ORDER BY message_id, to_username, to_domain, device_id");
                let mut query = sqlx::query_as::<_, RecipientRow>(&sql);
                for row in &rows {
                    query = query.bind(&row.id);
                }
                let recipients = query.fetch_all(&mut *conn).await?;
                let sql = format!("SELECT {MESSAGE_DEVICE_COLUMNS} FROM statistics_message_devices \
                                   WHERE message_seq IN (SELECT seq FROM statistics_messages WHERE id IN ({marks})) ORDER BY id");
                let mut query = sqlx::query_as::<_, MessageDeviceRow>(&sql);
                for row in &rows {
                    query = query.bind(&row.id);
                }
                let responses = query.fetch_all(&mut *conn).await?;
                Ok(Page {
                    items: rows.iter().map(|m| m.to_json(&recipients, &responses)).collect(),
                    total: total as u64,
                })
            }

            /// A conference with its events; None when neither it nor any event of it is known.
            pub async fn conference(conn: &mut Conn, id: &str) -> Result<Option<Value>, sqlx::Error> {
                let row: Option<ConferenceRow> = sqlx::query_as(
                    "SELECT created_at, ended_at, schedule, updated_at FROM statistics_conferences WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut *conn).await?;
                let participants: Vec<ParticipantRow> = sqlx::query_as(
                    "SELECT participant_username, participant_domain, type, at FROM statistics_conference_participant_events \
                     WHERE conference_id = $1 ORDER BY at, id")
                    .bind(id)
                    .fetch_all(&mut *conn).await?;
                let devices: Vec<ParticipantDeviceRow> = sqlx::query_as(
                    "SELECT participant_username, participant_domain, device_id, type, at FROM statistics_conference_participant_device_events \
                     WHERE conference_id = $1 ORDER BY at, id")
                    .bind(id)
                    .fetch_all(&mut *conn).await?;
                Ok(conference_json(id, row, &participants, &devices))
            }
        }
    };
}

engine!(sqlite, sqlx::SqliteConnection);
engine!(postgres, sqlx::PgConnection, writes);

/// A stored conference row: created_at, ended_at, schedule, updated_at.
pub(super) type ConferenceRow = (
    NaiveDateTime,
    Option<NaiveDateTime>,
    Option<String>,
    NaiveDateTime,
);
/// A participant event: username, domain, type, at.
pub(super) type ParticipantRow = (String, String, String, NaiveDateTime);
/// A participant device event: username, domain, device id, type, at.
pub(super) type ParticipantDeviceRow = (String, String, String, String, NaiveDateTime);

/// A conference's JSON from its row and events; None when nothing is known of it.
pub(super) fn conference_json(
    id: &str,
    row: Option<ConferenceRow>,
    participants: &[ParticipantRow],
    devices: &[ParticipantDeviceRow],
) -> Option<Value> {
    if row.is_none() && participants.is_empty() && devices.is_empty() {
        return None;
    }
    let laravel = |t: &NaiveDateTime| flexiapi_core::time::laravel(t);
    let (created_at, ended_at, schedule, updated_at) = match &row {
        Some((c, e, s, u)) => (
            Value::from(laravel(c)),
            flexiapi_core::time::laravel_json(e.as_ref()),
            s.clone().map(Value::from).unwrap_or(Value::Null),
            Value::from(laravel(u)),
        ),
        None => (Value::Null, Value::Null, Value::Null, Value::Null),
    };
    Some(serde_json::json!({
        "id": id,
        "created_at": created_at,
        "ended_at": ended_at,
        "schedule": schedule,
        "updated_at": updated_at,
        "participant_events": participants.iter().map(|(u, d, t, at)| serde_json::json!({
            "participant": format!("{u}@{d}"), "type": t, "at": laravel(at),
        })).collect::<Vec<_>>(),
        "participant_device_events": devices.iter().map(|(u, d, dev, t, at)| serde_json::json!({
            "participant": format!("{u}@{d}"), "device_id": dev, "type": t, "at": laravel(at),
        })).collect::<Vec<_>>(),
    }))
}

/// The wire spelling of a participant (device) event type.
pub(super) fn wire<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(s)) => s,
        _ => String::new(),
    }
}
