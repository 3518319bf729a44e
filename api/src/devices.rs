//! Registered devices, read from Flexisip's registrar data in Redis (api-accounts.md §2.10).
//!
//! Flexisip keeps one Redis hash per address of record, `fs:<username>@<domain>`; each field is a device key
//! (`"<urn:uuid:…>"`, quotes and angle brackets included) and each value a serialised Contact header:
//! `<sip:…;callid=…;expires=…;cseq=…;updatedAt=<unix time>;alias=no;usedAsRoute=no?path=…&accept=…&user-agent=…>;+sip.instance="<urn:uuid:…>";…`.
//! [`parse_contact`] reads a value the way the account manager does; [`Registrar`] lists and deletes bindings
//! and notifies Flexisip (publish on the AoR channel) so the proxy drops its cached copy.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, NaiveDateTime};
use http::StatusCode;
use percent_encoding::percent_decode_str;
use regex::Regex;
use serde_json::{json, Map, Value};

use flexiapi_core::http::text_response;
use flexiapi_core::time::laravel_json;
use flexiapi_core::Config;

use crate::access::{self, Authenticated};
use crate::context::Ctx;
use crate::error::ApiResult;
use crate::state::AppState;

/// How long a Redis connection attempt or command may take before the registrar counts as unavailable.
const REDIS_TIMEOUT: Duration = Duration::from_secs(3);

/// One registered device (a registrar binding).
#[derive(Clone, Debug, PartialEq)]
pub struct Device {
    /// `+sip.instance` without its `"<` `>"` wrapping (e.g. `urn:uuid:…`).
    pub uuid: String,
    /// The binding's `updatedAt` time.
    pub update_time: Option<NaiveDateTime>,
    /// `User-Agent` of the device.
    pub user_agent: String,
    /// Application name parsed from the user agent (whole user agent when it does not parse).
    pub app: String,
    /// Application version ("" when unknown).
    pub version: String,
    /// Device model ("" when unknown).
    pub device_name: String,
}

impl Device {
    /// Upstream's Device JSON (keys in upstream's assignment order).
    pub fn to_json(&self) -> Value {
        json!({
            "uuid": self.uuid,
            "update_time": laravel_json(self.update_time.as_ref()),
            "user_agent": self.user_agent,
            "app": self.app,
            "version": self.version,
            "device_name": self.device_name,
        })
    }
}

/// PHP's `parse_str` on `a=b&c=d`: percent- and plus-decoding, keys with leading spaces trimmed and
/// `.`/` ` turned into `_` (so `+sip.instance` becomes `sip_instance`); the last duplicate wins.
fn parse_str(text: &str) -> Vec<(String, String)> {
    let decode = |s: &str| {
        percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = decode(key).trim_start_matches(' ').replace(['.', ' '], "_");
            (key, decode(value))
        })
        .collect()
}

fn lookup<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Splits a user agent like `LinphoneAndroid/5.2 (Pixel 7) …` into (app, version, device).
pub fn parse_user_agent(user_agent: &str) -> (String, String, String) {
    // PHP's \w and \d are ASCII-only without the `u` flag.
    let pattern = Regex::new(r"([A-Za-z0-9_-]+)/([0-9.]+)[^(]*\(([^)]*)").expect("static regex");
    match pattern.captures(user_agent) {
        Some(c) => (c[1].to_owned(), c[2].to_owned(), c[3].to_owned()),
        None => (user_agent.to_owned(), String::new(), String::new()),
    }
}

/// Parses one serialised registrar contact; None when it lacks the parts a device needs.
pub fn parse_contact(contact: &str) -> Option<Device> {
    let outer = Regex::new(r"<(.*)>;(.*)").expect("static regex");
    let captures = outer.captures(contact)?;
    let uri = captures.get(1)?.as_str();
    let header_params = captures.get(2)?.as_str();
    // `sip:user@host;param=…?header=…`: parameters before `?`, URI headers after.
    let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
    let path = path.split_once(':').map_or(path, |(_, rest)| rest);
    let uri_params = parse_str(&path.replace(';', "&"));
    let uri_headers = parse_str(query);
    let params = parse_str(&header_params.replace(';', "&"));

    let instance = lookup(&params, "sip_instance")?;
    let uuid = instance.get(2..instance.len().checked_sub(2)?)?.to_owned();
    let update_time = lookup(&uri_params, "updatedAt")
        .and_then(|t| t.trim().parse::<i64>().ok())
        .and_then(|t| DateTime::from_timestamp(t, 0))
        .map(|t| t.naive_utc());
    let user_agent = lookup(&uri_headers, "user-agent")
        .unwrap_or_default()
        .to_owned();
    let (app, version, device_name) = parse_user_agent(&user_agent);
    Some(Device {
        uuid,
        update_time,
        user_agent,
        app,
        version,
        device_name,
    })
}

/// Access to Flexisip's Redis (`FLEXIAPI_REDIS_URL`); every failure is logged and reads as "nothing there",
/// as upstream does.
pub struct Registrar {
    client: Option<redis::Client>,
}

impl Registrar {
    /// The registrar of the configuration (unconfigured or invalid URL: always empty).
    pub fn from_config(config: &Config) -> Registrar {
        let client = config
            .redis_url
            .as_deref()
            .and_then(|url| match redis::Client::open(url) {
                Ok(client) => Some(client),
                Err(error) => {
                    tracing::error!(%error, "invalid FLEXIAPI_REDIS_URL");
                    None
                }
            });
        Registrar { client }
    }

    async fn connection(&self) -> Option<redis::aio::MultiplexedConnection> {
        let client = self.client.as_ref()?;
        match tokio::time::timeout(REDIS_TIMEOUT, client.get_multiplexed_async_connection()).await {
            Ok(Ok(connection)) => Some(connection),
            Ok(Err(error)) => {
                tracing::error!(%error, "Redis server issue");
                None
            }
            Err(_) => {
                tracing::error!("Redis server issue: connection timed out");
                None
            }
        }
    }

    async fn run<T: redis::FromRedisValue>(&self, command: &redis::Cmd) -> Option<T> {
        let mut connection = self.connection().await?;
        match tokio::time::timeout(REDIS_TIMEOUT, command.query_async::<T>(&mut connection)).await {
            Ok(Ok(value)) => Some(value),
            Ok(Err(error)) => {
                tracing::error!(%error, "Redis server issue");
                None
            }
            Err(_) => {
                tracing::error!("Redis server issue: command timed out");
                None
            }
        }
    }

    /// The devices registered for `identifier` (`username@domain`), in Redis order.
    pub async fn devices(&self, identifier: &str) -> Vec<Device> {
        let fields: Vec<(String, String)> = self
            .run(redis::cmd("HGETALL").arg(format!("fs:{identifier}")))
            .await
            .unwrap_or_default();
        fields
            .iter()
            .filter_map(|(key, contact)| {
                let device = parse_contact(contact);
                if device.is_none() {
                    tracing::warn!(%identifier, %key, "unparsable registrar contact skipped");
                }
                device
            })
            .collect()
    }

    /// Removes the binding of device `uuid` and tells Flexisip; true when a binding was removed.
    pub async fn delete_device(&self, identifier: &str, uuid: &str) -> bool {
        let removed: Option<i64> = self
            .run(
                redis::cmd("HDEL")
                    .arg(format!("fs:{identifier}"))
                    .arg(format!("\"<{uuid}>\"")),
            )
            .await;
        let _: Option<i64> = self
            .run(redis::cmd("PUBLISH").arg(identifier).arg(""))
            .await;
        removed.unwrap_or(0) > 0
    }

    /// Publishes `message` on `channel` (B2BUA notifications); false when Redis is unavailable.
    pub async fn publish(&self, channel: &str, message: &str) -> bool {
        let sent: Option<i64> = self
            .run(redis::cmd("PUBLISH").arg(channel).arg(message))
            .await;
        sent.is_some()
    }
}

/// `{"<uuid>": Device, …}`, or `{}` when there is none.
fn devices_json(devices: &[Device]) -> Value {
    let map: Map<String, Value> = devices
        .iter()
        .map(|d| (d.uuid.clone(), d.to_json()))
        .collect();
    Value::Object(map)
}

/// `1` when something was deleted, an empty body otherwise (PHP `true` / `false`).
fn deleted_response(deleted: bool) -> Response {
    text_response(StatusCode::OK, if deleted { "1" } else { "" })
}

/// `GET /api/accounts/me/devices`.
pub async fn my_devices(
    State(state): State<AppState>,
    Extension(caller): Extension<Authenticated>,
) -> ApiResult<Response> {
    let registrar = Registrar::from_config(&state.config);
    let devices = registrar.devices(&caller.account.identifier()).await;
    Ok(Json(devices_json(&devices)).into_response())
}

/// `DELETE /api/accounts/me/devices/{uuid}`.
pub async fn delete_my_device(
    State(state): State<AppState>,
    Extension(caller): Extension<Authenticated>,
    Path(uuid): Path<String>,
) -> ApiResult<Response> {
    let registrar = Registrar::from_config(&state.config);
    let deleted = registrar
        .delete_device(&caller.account.identifier(), &uuid)
        .await;
    Ok(deleted_response(deleted))
}

/// `GET /api/accounts/{id}/devices` (account of the request space).
pub async fn account_devices(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let account = access::space_account(&state.db, &ctx.space, access::parse_id(&id)?).await?;
    let registrar = Registrar::from_config(&state.config);
    let devices = registrar.devices(&account.identifier()).await;
    Ok(Json(devices_json(&devices)).into_response())
}

/// `DELETE /api/accounts/{id}/devices/{uuid}`.
pub async fn delete_account_device(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((id, uuid)): Path<(String, String)>,
) -> ApiResult<Response> {
    let account = access::space_account(&state.db, &ctx.space, access::parse_id(&id)?).await?;
    let registrar = Registrar::from_config(&state.config);
    Ok(deleted_response(
        registrar.delete_device(&account.identifier(), &uuid).await,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_flexisip_contact() {
        let contact = "<sip:alice@192.168.1.20:50712;transport=tcp;fs-conn-id=1f2e;callid=Ab~c-1;expires=3600;cseq=21;updatedAt=1767225600;alias=no;usedAsRoute=no?path=%3Csip%3Aproxy.example.org%3Blr%3E&accept=application/sdp&user-agent=LinphoneAndroid/5.2.5%20(Pixel%207)%20LinphoneSDK/5.3.0%20(tags/5.3.0)>;+sip.instance=\"<urn:uuid:0b2a3c4d-1111-2222-3333-444455556666>\";expires=3600;q=1.0";
        let device = parse_contact(contact).expect("device");
        assert_eq!(device.uuid, "urn:uuid:0b2a3c4d-1111-2222-3333-444455556666");
        assert_eq!(
            device.user_agent,
            "LinphoneAndroid/5.2.5 (Pixel 7) LinphoneSDK/5.3.0 (tags/5.3.0)"
        );
        assert_eq!(
            (
                device.app.as_str(),
                device.version.as_str(),
                device.device_name.as_str()
            ),
            ("LinphoneAndroid", "5.2.5", "Pixel 7")
        );
        assert_eq!(
            device.to_json()["update_time"],
            "2026-01-01T00:00:00.000000Z"
        );
    }

    #[test]
    fn unknown_user_agent_shape() {
        assert_eq!(
            parse_user_agent("curl"),
            ("curl".into(), String::new(), String::new())
        );
        assert!(parse_contact("garbage").is_none());
    }
}
