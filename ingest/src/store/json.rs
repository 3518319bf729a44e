//! Rows → the JSON upstream answers (cast dates as `…T…000000Z`; `invite_terminated_at` raw, as upstream
//! returns that uncast column).

use chrono::NaiveDateTime;
use flexiapi_core::time::{laravel, laravel_json, plain};
use serde_json::{json, Map, Value};

/// A `statistics_call_devices` row (or a forked device that never reported: `id` None).
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct CallDeviceRow {
    pub id: Option<i64>,
    pub call_id: String,
    pub device_id: String,
    pub rang_at: Option<NaiveDateTime>,
    pub invite_terminated_at: Option<NaiveDateTime>,
    pub invite_terminated_state: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl CallDeviceRow {
    /// Upstream's device JSON plus `forked` (the device was in the POST's `devices` map).
    pub fn to_json(&self, forked: bool) -> Value {
        json!({
            "id": self.id,
            "call_id": self.call_id,
            "device_id": self.device_id,
            "rang_at": laravel_json(self.rang_at.as_ref()),
            "invite_terminated_at": self
                .invite_terminated_at
                .map(|t| plain(&t)),
            "invite_terminated_state": self.invite_terminated_state,
            "created_at": laravel(&self.created_at),
            "updated_at": laravel(&self.updated_at),
            "forked": forked,
        })
    }
}

/// A `statistics_calls` row.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct CallRow {
    pub id: String,
    pub from_username: String,
    pub from_domain: String,
    pub to_username: String,
    pub to_domain: String,
    pub initiated_at: NaiveDateTime,
    pub ended_at: Option<NaiveDateTime>,
    pub conference_id: Option<String>,
    pub sip_call_id: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// Columns of [`CallRow`] in SELECT order.
pub const CALL_COLUMNS: &str = "id, from_username, from_domain, to_username, to_domain, initiated_at, ended_at, conference_id, sip_call_id, created_at, updated_at";

/// Columns of [`CallDeviceRow`] in SELECT order.
pub const CALL_DEVICE_COLUMNS: &str = "id, call_id, device_id, rang_at, invite_terminated_at, invite_terminated_state, created_at, updated_at";

impl CallRow {
    /// Upstream's call JSON (table columns) plus `sip_call_id` and `devices`.
    pub fn to_json(&self, devices: Vec<Value>) -> Value {
        json!({
            "id": self.id,
            "from_username": self.from_username,
            "from_domain": self.from_domain,
            "to_username": self.to_username,
            "to_domain": self.to_domain,
            "initiated_at": laravel(&self.initiated_at),
            "ended_at": laravel_json(self.ended_at.as_ref()),
            "conference_id": self.conference_id,
            "created_at": laravel(&self.created_at),
            "updated_at": laravel(&self.updated_at),
            "sip_call_id": self.sip_call_id,
            "devices": devices,
        })
    }

    /// Every device of the call: reported rows in arrival order, then forked devices that never reported.
    pub fn devices(&self, rows: &[CallDeviceRow], forked: &[(String, String)]) -> Vec<Value> {
        let mine = |call: &str| call == self.id;
        let forked_ids: Vec<&str> = forked
            .iter()
            .filter(|(call, _)| mine(call))
            .map(|(_, device)| device.as_str())
            .collect();
        let mut out: Vec<Value> = rows
            .iter()
            .filter(|row| mine(&row.call_id))
            .map(|row| row.to_json(forked_ids.contains(&row.device_id.as_str())))
            .collect();
        for device in &forked_ids {
            if !rows
                .iter()
                .any(|r| mine(&r.call_id) && r.device_id == *device)
            {
                let silent = CallDeviceRow {
                    id: None,
                    call_id: self.id.clone(),
                    device_id: (*device).to_owned(),
                    rang_at: None,
                    invite_terminated_at: None,
                    invite_terminated_state: None,
                    created_at: self.created_at,
                    updated_at: self.created_at,
                };
                out.push(silent.to_json(true));
            }
        }
        out
    }
}

/// A `statistics_message_devices` row.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct MessageDeviceRow {
    pub id: i64,
    pub message_id: String,
    pub to_username: String,
    pub to_domain: String,
    pub device_id: String,
    pub last_status: i64,
    pub received_at: NaiveDateTime,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// Columns of [`MessageDeviceRow`] in SELECT order.
pub const MESSAGE_DEVICE_COLUMNS: &str = "id, message_id, to_username, to_domain, device_id, last_status, received_at, created_at, updated_at";

impl MessageDeviceRow {
    /// Upstream's device row JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "message_id": self.message_id,
            "to_username": self.to_username,
            "to_domain": self.to_domain,
            "device_id": self.device_id,
            "last_status": self.last_status,
            "received_at": laravel(&self.received_at),
            "created_at": laravel(&self.created_at),
            "updated_at": laravel(&self.updated_at),
        })
    }
}

/// A `statistics_messages` row.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct MessageRow {
    pub id: String,
    pub from_username: String,
    pub from_domain: String,
    pub sent_at: NaiveDateTime,
    pub encrypted: bool,
    pub conference_id: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// Columns of [`MessageRow`] in SELECT order.
pub const MESSAGE_COLUMNS: &str =
    "id, from_username, from_domain, sent_at, encrypted, conference_id, created_at, updated_at";

/// A `statistics_message_recipients` row (a device targeted at fork time).
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct RecipientRow {
    pub message_id: String,
    pub to_username: String,
    pub to_domain: String,
    pub device_id: String,
    pub last_status: Option<i64>,
    pub received_at: Option<NaiveDateTime>,
}

impl MessageRow {
    /// The message's columns plus `to`: recipient → device → latest response (`null` until it answers),
    /// merging the devices targeted at fork time with every device that reported.
    pub fn to_json(&self, recipients: &[RecipientRow], responses: &[MessageDeviceRow]) -> Value {
        let mut to: Map<String, Value> = Map::new();
        let response = |status: i64, at: &NaiveDateTime| json!({"last_status": status, "received_at": laravel(at)});
        for r in recipients.iter().filter(|r| r.message_id == self.id) {
            let key = identity_key(&r.to_username, &r.to_domain);
            let value = match (r.last_status, &r.received_at) {
                (Some(status), Some(at)) => response(status, at),
                _ => Value::Null,
            };
            entry(&mut to, key).insert(r.device_id.clone(), value);
        }
        for d in responses.iter().filter(|d| d.message_id == self.id) {
            let key = identity_key(&d.to_username, &d.to_domain);
            entry(&mut to, key)
                .insert(d.device_id.clone(), response(d.last_status, &d.received_at));
        }
        json!({
            "id": self.id,
            "from_username": self.from_username,
            "from_domain": self.from_domain,
            "sent_at": laravel(&self.sent_at),
            "encrypted": self.encrypted,
            "conference_id": self.conference_id,
            "created_at": laravel(&self.created_at),
            "updated_at": laravel(&self.updated_at),
            "to": to,
        })
    }
}

fn identity_key(username: &str, domain: &str) -> String {
    if domain.is_empty() && !username.contains('@') {
        // A `to` key without `@` was kept whole in the username.
        username.to_owned()
    } else {
        format!("{username}@{domain}")
    }
}

fn entry(map: &mut Map<String, Value>, key: String) -> &mut Map<String, Value> {
    map.entry(key)
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
        .expect("inserted as an object")
}
