//! The statistics reads of scale mode, from ClickHouse, in the same JSON shapes as the embedded store.
//!
//! Entity tables are read with `FINAL` and event tables are aggregated per device, so a replayed event never
//! shows twice. `created_at` / `updated_at` are the acknowledgement times of the first / latest event of a row
//! (there is no database clock in this mode); device rows have no numeric `id` (`null`).

use std::collections::HashMap;

use chrono::DateTime;
use clickhouse::{Client, Row};
use flexiapi_core::time::laravel;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{backend, rows::datetime};
use crate::error::IngestError;
use crate::event::Identity;
use crate::log::{BoxFuture, Page, StatsReader};

/// Reads the statistics from ClickHouse.
#[derive(Clone)]
pub struct ClickHouseReader {
    client: Client,
}

fn stamp(seconds: u32) -> String {
    let naive = DateTime::from_timestamp(i64::from(seconds), 0)
        .unwrap_or_default()
        .naive_utc();
    laravel(&naive)
}

fn stamp_us(us: u64) -> String {
    stamp(datetime((us / 1_000_000) as i64))
}

fn optional(seconds: Option<u32>) -> Value {
    seconds.map(stamp).map(Value::from).unwrap_or(Value::Null)
}

#[derive(Row, Deserialize)]
struct CallLine {
    id: String,
    from_username: String,
    from_domain: String,
    to_username: String,
    to_domain: String,
    initiated_at: u32,
    ended_at: Option<u32>,
    conference_id: Option<String>,
    sip_call_id: Option<String>,
    device_ids: Vec<String>,
    acked_at_us: u64,
}

#[derive(Row, Deserialize)]
struct EndLine {
    id: String,
    ended_at: u32,
    acked_at_us: u64,
}

#[derive(Row, Deserialize)]
struct CallDeviceLine {
    call_id: String,
    device_id: String,
    rang_at: Option<u32>,
    terminated_at: Option<u32>,
    terminated_state: Option<String>,
    first_us: u64,
    last_us: u64,
}

#[derive(Row, Deserialize)]
struct MessageLine {
    id: String,
    from_username: String,
    from_domain: String,
    sent_at: u32,
    encrypted: u8,
    conference_id: Option<String>,
    to_recipients: Vec<String>,
    to_devices: Vec<String>,
    acked_at_us: u64,
}

#[derive(Row, Deserialize)]
struct ResponseLine {
    message_id: String,
    to_username: String,
    to_domain: String,
    device_id: String,
    last_status: i32,
    received_at: u32,
}

#[derive(Row, Deserialize)]
struct ConferenceLine {
    created_at: u32,
    ended_at: Option<u32>,
    schedule: Option<String>,
    acked_at_us: u64,
}

#[derive(Row, Deserialize)]
struct ParticipantLine {
    participant_username: String,
    participant_domain: String,
    device_id: String,
    event_type: String,
    at: u32,
}

impl ClickHouseReader {
    /// A reader over a client on the statistics database.
    pub fn new(client: Client) -> ClickHouseReader {
        ClickHouseReader { client }
    }

    async fn call_devices(&self, ids: &[String]) -> Result<Vec<CallDeviceLine>, IngestError> {
        // argMax skips NULLs: each field is the latest one sent ("only the fields present are changed").
        self.client
            .query(
                "SELECT call_id, device_id, argMax(rang_at, kafka_offset), argMax(terminated_at, kafka_offset), \
                 argMax(terminated_state, kafka_offset), min(acked_at_us), max(acked_at_us) \
                 FROM call_device_events FINAL WHERE has(?, call_id) \
                 GROUP BY call_id, device_id ORDER BY min(kafka_offset)",
            )
            .bind(ids)
            .fetch_all()
            .await
            .map_err(backend)
    }

    async fn calls_page(
        &self,
        who: &Identity,
        offset: u64,
        limit: u64,
    ) -> Result<Page, IngestError> {
        let filter =
            "(from_username = ? AND from_domain = ?) OR (to_username = ? AND to_domain = ?)";
        let total: u64 = self
            .client
            .query(&format!("SELECT count() FROM calls FINAL WHERE {filter}"))
            .bind(&who.username)
            .bind(&who.domain)
            .bind(&who.username)
            .bind(&who.domain)
            .fetch_one()
            .await
            .map_err(backend)?;
        let calls: Vec<CallLine> = self
            .client
            .query(&format!(
                "SELECT id, from_username, from_domain, to_username, to_domain, initiated_at, ended_at, \
                 conference_id, sip_call_id, device_ids, acked_at_us FROM calls FINAL WHERE {filter} \
                 ORDER BY initiated_at DESC, id LIMIT ?, ?"
            ))
            .bind(&who.username)
            .bind(&who.domain)
            .bind(&who.username)
            .bind(&who.domain)
            .bind(offset)
            .bind(limit)
            .fetch_all()
            .await
            .map_err(backend)?;
        let ids: Vec<String> = calls.iter().map(|c| c.id.clone()).collect();
        let items = self.calls_json(calls, &ids).await?;
        Ok(Page { items, total })
    }

    async fn calls_json(
        &self,
        calls: Vec<CallLine>,
        ids: &[String],
    ) -> Result<Vec<Value>, IngestError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ends: Vec<EndLine> = self
            .client
            .query(
                "SELECT call_id, ended_at, acked_at_us FROM call_ends FINAL WHERE has(?, call_id)",
            )
            .bind(ids)
            .fetch_all()
            .await
            .map_err(backend)?;
        let ends: HashMap<String, EndLine> = ends.into_iter().map(|e| (e.id.clone(), e)).collect();
        let devices = self.call_devices(ids).await?;
        Ok(calls
            .into_iter()
            .map(|call| {
                let end = ends.get(&call.id);
                let ended_at = end.map(|e| e.ended_at).or(call.ended_at);
                let mut updated_us = call.acked_at_us.max(end.map_or(0, |e| e.acked_at_us));
                let mut list: Vec<Value> = Vec::new();
                for d in devices.iter().filter(|d| d.call_id == call.id) {
                    updated_us = updated_us.max(d.last_us);
                    list.push(json!({
                        "id": null,
                        "call_id": d.call_id,
                        "device_id": d.device_id,
                        "rang_at": optional(d.rang_at),
                        "invite_terminated_at": d.terminated_at.map(|t| stamp(t).replace('T', " ")[..19].to_owned()),
                        "invite_terminated_state": d.terminated_state,
                        "created_at": stamp_us(d.first_us),
                        "updated_at": stamp_us(d.last_us),
                        "forked": call.device_ids.contains(&d.device_id),
                    }));
                }
                for forked in &call.device_ids {
                    if !devices.iter().any(|d| d.call_id == call.id && &d.device_id == forked) {
                        list.push(json!({
                            "id": null,
                            "call_id": call.id,
                            "device_id": forked,
                            "rang_at": null,
                            "invite_terminated_at": null,
                            "invite_terminated_state": null,
                            "created_at": stamp_us(call.acked_at_us),
                            "updated_at": stamp_us(call.acked_at_us),
                            "forked": true,
                        }));
                    }
                }
                json!({
                    "id": call.id,
                    "from_username": call.from_username,
                    "from_domain": call.from_domain,
                    "to_username": call.to_username,
                    "to_domain": call.to_domain,
                    "initiated_at": stamp(call.initiated_at),
                    "ended_at": optional(ended_at),
                    "conference_id": call.conference_id,
                    "created_at": stamp_us(call.acked_at_us),
                    "updated_at": stamp_us(updated_us),
                    "sip_call_id": call.sip_call_id,
                    "devices": list,
                })
            })
            .collect())
    }

    async fn messages_page(
        &self,
        who: &Identity,
        offset: u64,
        limit: u64,
    ) -> Result<Page, IngestError> {
        let filter = "(from_username = ? AND from_domain = ?) OR has(to_recipients, ?) OR id IN \
                      (SELECT message_id FROM message_device_responses WHERE to_username = ? AND to_domain = ?)";
        let key = who.to_string();
        let total: u64 = self
            .client
            .query(&format!(
                "SELECT count() FROM messages FINAL WHERE {filter}"
            ))
            .bind(&who.username)
            .bind(&who.domain)
            .bind(&key)
            .bind(&who.username)
            .bind(&who.domain)
            .fetch_one()
            .await
            .map_err(backend)?;
        let messages: Vec<MessageLine> = self
            .client
            .query(&format!(
                "SELECT id, from_username, from_domain, sent_at, encrypted, conference_id, to_recipients, \
                 to_devices, acked_at_us FROM messages FINAL WHERE {filter} ORDER BY sent_at DESC, id LIMIT ?, ?"
            ))
            .bind(&who.username)
            .bind(&who.domain)
            .bind(&key)
            .bind(&who.username)
            .bind(&who.domain)
            .bind(offset)
            .bind(limit)
            .fetch_all()
            .await
            .map_err(backend)?;
        if messages.is_empty() {
            return Ok(Page {
                items: Vec::new(),
                total,
            });
        }
        let ids: Vec<String> = messages.iter().map(|m| m.id.clone()).collect();
        let responses: Vec<ResponseLine> = self
            .client
            .query(
                "SELECT message_id, to_username, to_domain, device_id, argMax(last_status, kafka_offset), \
                 argMax(received_at, kafka_offset) FROM message_device_responses FINAL WHERE has(?, message_id) \
                 GROUP BY message_id, to_username, to_domain, device_id ORDER BY min(kafka_offset)",
            )
            .bind(&ids)
            .fetch_all()
            .await
            .map_err(backend)?;
        let items = messages
            .into_iter()
            .map(|m| {
                let mut to: Map<String, Value> = Map::new();
                for (recipient, device) in m.to_recipients.iter().zip(&m.to_devices) {
                    entry(&mut to, recipient.clone()).insert(device.clone(), Value::Null);
                }
                for r in responses.iter().filter(|r| r.message_id == m.id) {
                    let key = if r.to_domain.is_empty() && !r.to_username.contains('@') {
                        r.to_username.clone()
                    } else {
                        format!("{}@{}", r.to_username, r.to_domain)
                    };
                    entry(&mut to, key).insert(
                        r.device_id.clone(),
                        json!({"last_status": r.last_status, "received_at": stamp(r.received_at)}),
                    );
                }
                json!({
                    "id": m.id,
                    "from_username": m.from_username,
                    "from_domain": m.from_domain,
                    "sent_at": stamp(m.sent_at),
                    "encrypted": m.encrypted != 0,
                    "conference_id": m.conference_id,
                    "created_at": stamp_us(m.acked_at_us),
                    "updated_at": stamp_us(m.acked_at_us),
                    "to": to,
                })
            })
            .collect();
        Ok(Page { items, total })
    }

    async fn conference_json(&self, id: &str) -> Result<Option<Value>, IngestError> {
        let row: Option<ConferenceLine> = self
            .client
            .query("SELECT created_at, ended_at, schedule, acked_at_us FROM conferences FINAL WHERE id = ?")
            .bind(id)
            .fetch_optional()
            .await
            .map_err(backend)?;
        let end: Option<EndLine> = self
            .client
            .query("SELECT conference_id, ended_at, acked_at_us FROM conference_ends FINAL WHERE conference_id = ?")
            .bind(id)
            .fetch_optional()
            .await
            .map_err(backend)?;
        let events: Vec<ParticipantLine> = self
            .client
            .query(
                "SELECT participant_username, participant_domain, device_id, type, at FROM participant_events FINAL \
                 WHERE conference_id = ? ORDER BY at, kafka_offset",
            )
            .bind(id)
            .fetch_all()
            .await
            .map_err(backend)?;
        if row.is_none() && end.is_none() && events.is_empty() {
            return Ok(None);
        }
        let (created_at, ended_at, schedule, updated_at) = match &row {
            Some(c) => {
                let updated = c.acked_at_us.max(end.as_ref().map_or(0, |e| e.acked_at_us));
                (
                    Value::from(stamp(c.created_at)),
                    optional(end.as_ref().map(|e| e.ended_at).or(c.ended_at)),
                    c.schedule.clone().map(Value::from).unwrap_or(Value::Null),
                    Value::from(stamp_us(updated)),
                )
            }
            None => (
                Value::Null,
                optional(end.as_ref().map(|e| e.ended_at)),
                Value::Null,
                Value::Null,
            ),
        };
        let participant =
            |e: &ParticipantLine| format!("{}@{}", e.participant_username, e.participant_domain);
        Ok(Some(json!({
            "id": id,
            "created_at": created_at,
            "ended_at": ended_at,
            "schedule": schedule,
            "updated_at": updated_at,
            "participant_events": events.iter().filter(|e| e.device_id.is_empty()).map(|e| json!({
                "participant": participant(e), "type": e.event_type, "at": stamp(e.at),
            })).collect::<Vec<_>>(),
            "participant_device_events": events.iter().filter(|e| !e.device_id.is_empty()).map(|e| json!({
                "participant": participant(e), "device_id": e.device_id, "type": e.event_type, "at": stamp(e.at),
            })).collect::<Vec<_>>(),
        })))
    }
}

fn entry(map: &mut Map<String, Value>, key: String) -> &mut Map<String, Value> {
    map.entry(key)
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
        .expect("inserted as an object")
}

impl StatsReader for ClickHouseReader {
    fn calls(
        &self,
        who: &Identity,
        offset: u64,
        limit: u64,
    ) -> BoxFuture<'_, Result<Page, IngestError>> {
        let who = who.clone();
        Box::pin(async move { self.calls_page(&who, offset, limit).await })
    }

    fn messages(
        &self,
        who: &Identity,
        offset: u64,
        limit: u64,
    ) -> BoxFuture<'_, Result<Page, IngestError>> {
        let who = who.clone();
        Box::pin(async move { self.messages_page(&who, offset, limit).await })
    }

    fn conference(&self, id: &str) -> BoxFuture<'_, Result<Option<Value>, IngestError>> {
        let id = id.to_owned();
        Box::pin(async move { self.conference_json(&id).await })
    }
}
