//! Request bodies → [`Event`]s, with upstream's validation.
//!
//! Two paths give the same result: the fast one decodes the body with simd-json (reused buffers) straight
//! into a typed struct and accepts it only when every value is already in canonical form (what Flexisip
//! sends); anything else takes the reference path — serde_json into a `Value`, Laravel's TrimStrings and
//! ConvertEmptyStringsToNull, then the [`Validator`] rules of upstream, producing either the event or the
//! exact 422 body. A body that is not JSON at all is reported before authentication ([`Parsed::new`]).

use std::cell::RefCell;
use std::collections::BTreeMap;

use flexiapi_core::http::validation::{as_bool, as_integer};
use flexiapi_core::http::{Locale, ValidationErrors, Validator};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::date;
use crate::event::{
    DeviceResponse, Event, Identity, InviteTerminated, ParticipantDeviceEventType,
    ParticipantEventType, TerminatedState,
};

/// Upstream's message for a value the `iso_date` rule refuses (never translated).
const ISO_DATE: &str = "validation.iso_date";
const SIP_EN: &str = "The :attribute must be a SIP address (user@domain).";
const SIP_FR: &str = "Le champ :attribute doit être une adresse SIP (utilisateur@domaine).";

thread_local! {
    /// Per-thread scratch for simd-json: it parses in place and needs aligned work buffers.
    static SCRATCH: RefCell<(Vec<u8>, simd_json::Buffers)> = RefCell::new((Vec::new(), simd_json::Buffers::default()));
}

/// A body, decoded as far as the JSON check before authentication needs.
pub struct Parsed<T> {
    typed: Option<T>,
    value: Option<Value>,
    bytes: bytes::Bytes,
}

/// The body is not JSON: 400 `Invalid JSON: <detail>`.
#[derive(Debug)]
pub struct InvalidJson(pub &'static str);

impl<T: DeserializeOwned> Parsed<T> {
    /// Decodes `bytes`. Laravel reads a body only when it is declared JSON and checks its syntax only for
    /// clients expecting JSON; a blank or non-object body reads as `{}`.
    pub fn new(
        bytes: bytes::Bytes,
        declared_json: bool,
        expects_json: bool,
    ) -> Result<Self, InvalidJson> {
        let blank = bytes.iter().all(u8::is_ascii_whitespace);
        if blank || !(declared_json || expects_json) {
            return Ok(Parsed {
                typed: None,
                value: Some(Value::Object(Map::new())),
                bytes,
            });
        }
        if let Some(typed) = decode_fast::<T>(&bytes) {
            if declared_json {
                return Ok(Parsed {
                    typed: Some(typed),
                    value: None,
                    bytes,
                });
            }
        }
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(value) => {
                let value = if declared_json && value.is_object() {
                    normalise(value)
                } else {
                    Value::Object(Map::new())
                };
                Ok(Parsed {
                    typed: None,
                    value: Some(value),
                    bytes,
                })
            }
            Err(_) if std::str::from_utf8(&bytes).is_err() => Err(InvalidJson(
                "Malformed UTF-8 characters, possibly incorrectly encoded",
            )),
            Err(_) => Err(InvalidJson("Syntax error")),
        }
    }

    /// Runs the fast path when the typed decode succeeded, else (or when it declines) the reference path.
    fn build(
        self,
        fast: impl FnOnce(T) -> Option<Event>,
        slow: impl FnOnce(&Value, &mut Validator<'_>) -> Option<Event>,
        locale: Locale,
    ) -> Result<Event, ValidationErrors> {
        if let Some(typed) = self.typed {
            if let Some(event) = fast(typed) {
                return Ok(event);
            }
        }
        let value = match self.value {
            Some(value) => value,
            None => serde_json::from_slice::<Value>(&self.bytes)
                .map(normalise)
                .unwrap_or_else(|_| Value::Object(Map::new())),
        };
        let mut validator = Validator::new(&value, locale);
        let event = slow(&value, &mut validator);
        let errors = validator.into_errors();
        match event {
            Some(event) if errors.is_empty() => Ok(event),
            _ => Err(errors),
        }
    }
}

/// simd-json into `T` with the per-thread buffers.
fn decode_fast<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    SCRATCH.with(|cell| {
        let mut scratch = cell.borrow_mut();
        let (buffer, buffers) = &mut *scratch;
        buffer.clear();
        buffer.extend_from_slice(bytes);
        simd_json::serde::from_slice_with_buffers(buffer, buffers).ok()
    })
}

/// Laravel's TrimStrings then ConvertEmptyStringsToNull, recursively (keys are left alone).
pub fn normalise(value: Value) -> Value {
    match value {
        Value::String(s) => {
            let trimmed = s.trim();
            if trimmed.is_empty() {
                Value::Null
            } else if trimmed.len() == s.len() {
                Value::String(s)
            } else {
                Value::String(trimmed.to_owned())
            }
        }
        Value::Array(items) => Value::Array(items.into_iter().map(normalise).collect()),
        Value::Object(map) => {
            Value::Object(map.into_iter().map(|(k, v)| (k, normalise(v))).collect())
        }
        other => other,
    }
}

/// A string the fast path takes as is: non-empty, no surrounding blanks, at most `max` characters.
fn canonical(text: &str, max: usize) -> bool {
    !text.is_empty() && text.trim().len() == text.len() && text.chars().count() <= max
}

fn canonical_identity(text: &str) -> Option<Identity> {
    canonical(text, 256)
        .then(|| Identity::parse(text))
        .flatten()
}

fn iso(field: &str, v: &mut Validator<'_>, required: bool, nullable: bool) -> Option<i64> {
    let mut f = v.field(field);
    if required {
        f = f.required();
    }
    if nullable {
        f = f.nullable();
    }
    let f = f.check(
        |value| value.as_str().and_then(date::parse).is_some(),
        ISO_DATE,
    );
    f.value().and_then(Value::as_str).and_then(date::parse)
}

fn sip_field(field: &str, v: &mut Validator<'_>) -> Option<Identity> {
    let f = v.field(field).required().string().max(256).check_localized(
        |value| value.as_str().is_some_and(|s| s.contains('@')),
        SIP_EN,
        SIP_FR,
    );
    f.value().and_then(Value::as_str).and_then(Identity::parse)
}

/// A path segment naming a SIP identity; a 422 entry under `field` when it has no `@`.
fn sip_path(field: &str, text: &str, v: &mut Validator<'_>) -> Option<Identity> {
    let identity = Identity::parse(text);
    if identity.is_none() {
        let message = match v.locale() {
            Locale::En => SIP_EN,
            Locale::Fr => SIP_FR,
        };
        let message = v.render(message, field, &[]);
        v.add(field, message);
    }
    identity
}

fn required_string(field: &str, max: usize, v: &mut Validator<'_>) -> Option<String> {
    let f = v.field(field).required().string().max(max);
    f.value().and_then(Value::as_str).map(str::to_owned)
}

fn nullable_string(field: &str, v: &mut Validator<'_>) -> Option<String> {
    let f = v.field(field).nullable().string();
    f.value().and_then(Value::as_str).map(str::to_owned)
}

// ---------------------------------------------------------------------------------------------------------
// POST messages

/// Typed body of `POST …/messages`.
#[derive(Deserialize)]
pub struct MessageIn {
    id: String,
    from: String,
    sent_at: String,
    encrypted: bool,
    #[serde(default)]
    conference_id: Option<String>,
    #[serde(default)]
    to: Option<BTreeMap<String, BTreeMap<String, Option<ResponseIn>>>>,
}

/// A device response inside the `to` map.
#[derive(Deserialize)]
pub struct ResponseIn {
    last_status: i64,
    received_at: String,
}

/// `POST …/messages` → [`Event::MessageCreated`].
pub fn message_created(
    parsed: Parsed<MessageIn>,
    locale: Locale,
) -> Result<Event, ValidationErrors> {
    parsed.build(
        |m| {
            let from = canonical_identity(&m.from)?;
            if !canonical(&m.id, 64)
                || m.conference_id
                    .as_deref()
                    .is_some_and(|c| !canonical(c, usize::MAX))
            {
                return None;
            }
            let mut to = BTreeMap::new();
            for (recipient, devices) in m.to.unwrap_or_default() {
                let mut out = BTreeMap::new();
                for (device, response) in devices {
                    let response = match response {
                        None => None,
                        Some(r) => Some(DeviceResponse {
                            last_status: r.last_status,
                            received_at: canonical(&r.received_at, 64)
                                .then(|| date::parse(&r.received_at))
                                .flatten()?,
                        }),
                    };
                    out.insert(device, response);
                }
                to.insert(recipient, out);
            }
            Some(Event::MessageCreated {
                id: m.id,
                from,
                sent_at: canonical(&m.sent_at, 64)
                    .then(|| date::parse(&m.sent_at))
                    .flatten()?,
                encrypted: m.encrypted,
                conference_id: m.conference_id,
                to,
            })
        },
        |input, v| {
            let id = required_string("id", 64, v);
            let from = sip_field("from", v);
            let sent_at = iso("sent_at", v, true, false);
            let encrypted = v
                .field("encrypted")
                .required()
                .boolean()
                .value()
                .and_then(as_bool);
            let conference_id = nullable_string("conference_id", v);
            Some(Event::MessageCreated {
                id: id?,
                from: from?,
                sent_at: sent_at?,
                encrypted: encrypted?,
                conference_id,
                to: loose_to_map(input.get("to")),
            })
        },
        locale,
    )
}

/// The `to` map as far as it is well formed (upstream ignores it entirely, so it never causes a 422).
fn loose_to_map(
    value: Option<&Value>,
) -> BTreeMap<String, BTreeMap<String, Option<DeviceResponse>>> {
    let mut to = BTreeMap::new();
    let Some(Value::Object(recipients)) = value else {
        return to;
    };
    for (recipient, devices) in recipients {
        let mut out = BTreeMap::new();
        if let Value::Object(devices) = devices {
            for (device, response) in devices {
                let response = response.as_object().and_then(|r| {
                    Some(DeviceResponse {
                        last_status: as_integer(r.get("last_status")?)?,
                        received_at: date::parse(r.get("received_at")?.as_str()?)?,
                    })
                });
                out.insert(device.clone(), response);
            }
        }
        to.insert(recipient.clone(), out);
    }
    to
}

// ---------------------------------------------------------------------------------------------------------
// PATCH messages/{message_id}/to/{to}/devices/{device_id}

/// Typed body of a message device PATCH.
#[derive(Deserialize)]
pub struct MessageDeviceIn {
    last_status: i64,
    received_at: String,
}

/// Message device PATCH → [`Event::MessageDeviceResponded`].
pub fn message_device(
    parsed: Parsed<MessageDeviceIn>,
    message_id: &str,
    to: &str,
    device_id: &str,
    locale: Locale,
) -> Result<Event, ValidationErrors> {
    parsed.build(
        |m| {
            Some(Event::MessageDeviceResponded {
                message_id: message_id.to_owned(),
                to: Identity::parse(to)?,
                device_id: device_id.to_owned(),
                response: DeviceResponse {
                    last_status: m.last_status,
                    received_at: canonical(&m.received_at, 64)
                        .then(|| date::parse(&m.received_at))
                        .flatten()?,
                },
            })
        },
        |_, v| {
            let last_status = v
                .field("last_status")
                .required()
                .integer()
                .value()
                .and_then(as_integer);
            let received_at = iso("received_at", v, true, false);
            let to = sip_path("to", to, v);
            Some(Event::MessageDeviceResponded {
                message_id: message_id.to_owned(),
                to: to?,
                device_id: device_id.to_owned(),
                response: DeviceResponse {
                    last_status: last_status?,
                    received_at: received_at?,
                },
            })
        },
        locale,
    )
}

// ---------------------------------------------------------------------------------------------------------
// POST calls

/// Typed body of `POST …/calls`.
#[derive(Deserialize)]
pub struct CallIn {
    id: String,
    from: String,
    to: String,
    initiated_at: String,
    #[serde(default)]
    ended_at: Option<String>,
    #[serde(default)]
    conference_id: Option<String>,
    #[serde(default)]
    sip_call_id: Option<String>,
    #[serde(default)]
    devices: Option<BTreeMap<String, Option<Value>>>,
}

/// `POST …/calls` → [`Event::CallCreated`].
pub fn call_created(parsed: Parsed<CallIn>, locale: Locale) -> Result<Event, ValidationErrors> {
    parsed.build(
        |c| {
            if !canonical(&c.id, 64)
                || c.conference_id
                    .as_deref()
                    .is_some_and(|x| !canonical(x, usize::MAX))
                || c.sip_call_id
                    .as_deref()
                    .is_some_and(|x| !canonical(x, usize::MAX))
            {
                return None;
            }
            let ended_at = match &c.ended_at {
                None => None,
                Some(text) => Some(canonical(text, 64).then(|| date::parse(text)).flatten()?),
            };
            Some(Event::CallCreated {
                from: canonical_identity(&c.from)?,
                to: canonical_identity(&c.to)?,
                initiated_at: canonical(&c.initiated_at, 64)
                    .then(|| date::parse(&c.initiated_at))
                    .flatten()?,
                id: c.id,
                ended_at,
                conference_id: c.conference_id,
                sip_call_id: c.sip_call_id,
                devices: c.devices.unwrap_or_default(),
            })
        },
        |input, v| {
            let id = required_string("id", 64, v);
            let from = sip_field("from", v);
            let to = sip_field("to", v);
            let initiated_at = iso("initiated_at", v, true, false);
            let ended_at = iso("ended_at", v, false, true);
            let conference_id = nullable_string("conference_id", v);
            let devices = match input.get("devices") {
                Some(Value::Object(map)) => map
                    .iter()
                    .map(|(k, state)| (k.clone(), (!state.is_null()).then(|| state.clone())))
                    .collect(),
                _ => BTreeMap::new(),
            };
            Some(Event::CallCreated {
                id: id?,
                from: from?,
                to: to?,
                initiated_at: initiated_at?,
                ended_at,
                conference_id,
                sip_call_id: input
                    .get("sip_call_id")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                devices,
            })
        },
        locale,
    )
}

// ---------------------------------------------------------------------------------------------------------
// PATCH calls/{call_id}/devices/{device_id}

/// Typed body of a call device PATCH.
#[derive(Deserialize)]
pub struct CallDeviceIn {
    // An explicit null must fail (upstream refuses `rang_at: null`): leave it to the reference path.
    #[serde(default, deserialize_with = "present")]
    rang_at: Option<String>,
    #[serde(default, deserialize_with = "present")]
    invite_terminated: Option<TerminatedIn>,
}

/// Deserialises a field that, when present, must not be null (absent → `None` through `default`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// `invite_terminated` of a call device PATCH.
#[derive(Deserialize)]
pub struct TerminatedIn {
    at: String,
    state: String,
}

const STATES: [&str; 6] = [
    "accepted",
    "accepted_elsewhere",
    "canceled",
    "declined",
    "declined_elsewhere",
    "error",
];

/// Call device PATCH → [`Event::CallDeviceUpdated`]; only the fields present change the row.
pub fn call_device(
    parsed: Parsed<CallDeviceIn>,
    call_id: &str,
    device_id: &str,
    locale: Locale,
) -> Result<Event, ValidationErrors> {
    parsed.build(
        |d| {
            let rang_at = match &d.rang_at {
                None => None,
                Some(text) => Some(canonical(text, 64).then(|| date::parse(text)).flatten()?),
            };
            let invite_terminated = match &d.invite_terminated {
                None => None,
                Some(t) => Some(InviteTerminated {
                    at: canonical(&t.at, 64).then(|| date::parse(&t.at)).flatten()?,
                    state: TerminatedState::parse(&t.state)?,
                }),
            };
            Some(Event::CallDeviceUpdated {
                call_id: call_id.to_owned(),
                device_id: device_id.to_owned(),
                rang_at,
                invite_terminated,
            })
        },
        |_, v| {
            // `rang_at: null` fails as upstream does (the rule is not nullable).
            let rang_at = iso("rang_at", v, false, false);
            let state_present = v.field("invite_terminated.state").value().is_some();
            let at_field = v.field("invite_terminated.at");
            let at_missing = at_field.value().is_none();
            drop(at_field);
            let mut at = None;
            if state_present && at_missing {
                // Upstream's rule reads the date check as a second field name; its message says so.
                let message = match v.locale() {
                    Locale::En => "The invite terminated.at field is required when invite terminated.state / iso date is present.",
                    Locale::Fr => "Le champ invite terminated.at est obligatoire quand invite terminated.state / iso date est présent.",
                };
                v.add("invite_terminated.at", message);
            } else {
                at = iso("invite_terminated.at", v, false, true);
            }
            let state = v
                .field("invite_terminated.state")
                .required_with("invite_terminated.at")
                .one_of(&STATES)
                .value()
                .and_then(Value::as_str)
                .and_then(TerminatedState::parse);
            let invite_terminated = match (at, state) {
                (Some(at), Some(state)) => Some(InviteTerminated { at, state }),
                _ => None,
            };
            Some(Event::CallDeviceUpdated {
                call_id: call_id.to_owned(),
                device_id: device_id.to_owned(),
                rang_at,
                invite_terminated,
            })
        },
        locale,
    )
}

// ---------------------------------------------------------------------------------------------------------
// PATCH calls/{call_id} and PATCH conferences/{conference_id}

/// Typed body of an end PATCH.
#[derive(Deserialize)]
pub struct EndIn {
    ended_at: String,
}

fn ended_at(parsed: Parsed<EndIn>, locale: Locale) -> Result<i64, ValidationErrors> {
    // The builder speaks events; the id is filled in by the caller.
    let event = parsed.build(
        |e| {
            Some(Event::CallEnded {
                call_id: String::new(),
                ended_at: canonical(&e.ended_at, 64)
                    .then(|| date::parse(&e.ended_at))
                    .flatten()?,
            })
        },
        |_, v| {
            Some(Event::CallEnded {
                call_id: String::new(),
                ended_at: iso("ended_at", v, true, false)?,
            })
        },
        locale,
    )?;
    match event {
        Event::CallEnded { ended_at, .. } => Ok(ended_at),
        _ => unreachable!("built above"),
    }
}

/// `PATCH …/calls/{call_id}` → [`Event::CallEnded`].
pub fn call_ended(
    parsed: Parsed<EndIn>,
    call_id: &str,
    locale: Locale,
) -> Result<Event, ValidationErrors> {
    Ok(Event::CallEnded {
        call_id: call_id.to_owned(),
        ended_at: ended_at(parsed, locale)?,
    })
}

/// `PATCH …/conferences/{conference_id}` → [`Event::ConferenceEnded`].
pub fn conference_ended(
    parsed: Parsed<EndIn>,
    conference_id: &str,
    locale: Locale,
) -> Result<Event, ValidationErrors> {
    Ok(Event::ConferenceEnded {
        conference_id: conference_id.to_owned(),
        ended_at: ended_at(parsed, locale)?,
    })
}

// ---------------------------------------------------------------------------------------------------------
// Conferences (not routed upstream; rules in the same style)

/// Typed body of `POST …/conferences`.
#[derive(Deserialize)]
pub struct ConferenceIn {
    id: String,
    created_at: String,
    #[serde(default)]
    ended_at: Option<String>,
    #[serde(default)]
    schedule: Option<String>,
}

/// `POST …/conferences` → [`Event::ConferenceCreated`].
pub fn conference_created(
    parsed: Parsed<ConferenceIn>,
    locale: Locale,
) -> Result<Event, ValidationErrors> {
    parsed.build(
        |c| {
            if !canonical(&c.id, 255)
                || c.schedule
                    .as_deref()
                    .is_some_and(|s| !canonical(s, usize::MAX))
            {
                return None;
            }
            let ended_at = match &c.ended_at {
                None => None,
                Some(text) => Some(canonical(text, 64).then(|| date::parse(text)).flatten()?),
            };
            Some(Event::ConferenceCreated {
                created_at: canonical(&c.created_at, 64)
                    .then(|| date::parse(&c.created_at))
                    .flatten()?,
                id: c.id,
                ended_at,
                schedule: c.schedule,
            })
        },
        |_, v| {
            let id = required_string("id", 255, v);
            let created_at = iso("created_at", v, true, false);
            let ended_at = iso("ended_at", v, false, true);
            let schedule = nullable_string("schedule", v);
            Some(Event::ConferenceCreated {
                id: id?,
                created_at: created_at?,
                ended_at,
                schedule,
            })
        },
        locale,
    )
}

/// Typed body of a participant (device) event.
#[derive(Deserialize)]
pub struct ParticipantEventIn {
    at: String,
    #[serde(rename = "type")]
    event_type: String,
}

const PARTICIPANT_TYPES: [&str; 3] = ["added", "left", "removed"];
const DEVICE_TYPES: [&str; 4] = ["invited", "joined", "left", "error"];

fn participant_type(text: &str) -> Option<ParticipantEventType> {
    match text {
        "added" => Some(ParticipantEventType::Added),
        "left" => Some(ParticipantEventType::Left),
        "removed" => Some(ParticipantEventType::Removed),
        _ => None,
    }
}

fn device_type(text: &str) -> Option<ParticipantDeviceEventType> {
    match text {
        "invited" => Some(ParticipantDeviceEventType::Invited),
        "joined" => Some(ParticipantDeviceEventType::Joined),
        "left" => Some(ParticipantDeviceEventType::Left),
        "error" => Some(ParticipantDeviceEventType::Error),
        _ => None,
    }
}

/// `POST …/conferences/{id}/participants/{participant}/events` → [`Event::ParticipantEvent`].
pub fn participant_event(
    parsed: Parsed<ParticipantEventIn>,
    conference_id: &str,
    participant: &str,
    locale: Locale,
) -> Result<Event, ValidationErrors> {
    parsed.build(
        |e| {
            Some(Event::ParticipantEvent {
                conference_id: conference_id.to_owned(),
                participant: Identity::parse(participant)?,
                at: canonical(&e.at, 64).then(|| date::parse(&e.at)).flatten()?,
                event_type: participant_type(&e.event_type)?,
            })
        },
        |_, v| {
            let at = iso("at", v, true, false);
            let event_type = v
                .field("type")
                .required()
                .one_of(&PARTICIPANT_TYPES)
                .value()
                .and_then(Value::as_str)
                .and_then(participant_type);
            let participant = sip_path("participant", participant, v);
            Some(Event::ParticipantEvent {
                conference_id: conference_id.to_owned(),
                participant: participant?,
                at: at?,
                event_type: event_type?,
            })
        },
        locale,
    )
}

/// `POST …/participants/{participant}/devices/{device_id}/events` → [`Event::ParticipantDeviceEvent`].
pub fn participant_device_event(
    parsed: Parsed<ParticipantEventIn>,
    conference_id: &str,
    participant: &str,
    device_id: &str,
    locale: Locale,
) -> Result<Event, ValidationErrors> {
    parsed.build(
        |e| {
            Some(Event::ParticipantDeviceEvent {
                conference_id: conference_id.to_owned(),
                participant: Identity::parse(participant)?,
                device_id: device_id.to_owned(),
                at: canonical(&e.at, 64).then(|| date::parse(&e.at)).flatten()?,
                event_type: device_type(&e.event_type)?,
            })
        },
        |_, v| {
            let at = iso("at", v, true, false);
            let event_type = v
                .field("type")
                .required()
                .one_of(&DEVICE_TYPES)
                .value()
                .and_then(Value::as_str)
                .and_then(device_type);
            let participant = sip_path("participant", participant, v);
            Some(Event::ParticipantDeviceEvent {
                conference_id: conference_id.to_owned(),
                participant: participant?,
                device_id: device_id.to_owned(),
                at: at?,
                event_type: event_type?,
            })
        },
        locale,
    )
}
