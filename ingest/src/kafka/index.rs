//! The status index of `flexiapi ingest` in scale mode: what the replies need to know of earlier events
//! (duplicate id, unknown parent, device created or updated, the call JSON of an end), in bounded memory.
//!
//! It holds the latest `capacity` entities (calls, messages, conferences); the oldest is forgotten first.
//! Applying an event is deterministic, so the index is rebuilt at start by applying the topic's recent events
//! in log order ([`super::rebuild`]).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use chrono::DateTime;
use flexiapi_core::time::laravel;
use serde_json::{json, Value};

use crate::event::{Envelope, Event, Identity, Timestamp};
use crate::log::Outcome;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Call,
    Message,
    Conference,
}

/// Entities of one kind by id. Looked up by `&str` (no key is built per request); the id is allocated once,
/// shared with the eviction order.
type Map<V> = HashMap<Arc<str>, V>;

#[derive(Default)]
struct CallDevice {
    device_id: String,
    rang_at: Option<Timestamp>,
    terminated_at: Option<Timestamp>,
    terminated_state: Option<&'static str>,
    created_us: i64,
    updated_us: i64,
}

struct CallInfo {
    from: Identity,
    to: Identity,
    initiated_at: Timestamp,
    ended_at: Option<Timestamp>,
    conference_id: Option<String>,
    sip_call_id: Option<String>,
    forked: Vec<String>,
    created_us: i64,
}

#[derive(Default)]
struct CallEntry {
    /// Its POST is on its way to the log (see [`Index::begin`]).
    creating: bool,
    info: Option<CallInfo>,
    devices: Vec<CallDevice>,
    ended_at: Option<Timestamp>,
    updated_us: i64,
}

#[derive(Default)]
struct MessageEntry {
    creating: bool,
    created: bool,
    /// (to, device) pairs that reported.
    responded: Vec<(Identity, String)>,
}

#[derive(Default)]
struct ConferenceEntry {
    creating: bool,
    created: Option<(Timestamp, Option<String>, i64)>,
    ended_at: Option<Timestamp>,
    updated_us: i64,
    participant_events: Vec<Value>,
    participant_device_events: Vec<Value>,
}

/// Entities seen recently, with what the replies need.
pub struct Index {
    calls: Map<CallEntry>,
    messages: Map<MessageEntry>,
    conferences: Map<ConferenceEntry>,
    /// Every remembered entity, oldest first.
    order: VecDeque<(Kind, Arc<str>)>,
    capacity: usize,
}

fn stamp(seconds: Timestamp) -> String {
    laravel(
        &DateTime::from_timestamp(seconds, 0)
            .unwrap_or_default()
            .naive_utc(),
    )
}

fn optional(seconds: Option<Timestamp>) -> Value {
    seconds.map(stamp).map(Value::from).unwrap_or(Value::Null)
}

impl Index {
    /// An empty index remembering at most `capacity` entities.
    pub fn new(capacity: usize) -> Index {
        Index {
            calls: Map::default(),
            messages: Map::default(),
            conferences: Map::default(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// Entities remembered.
    pub fn len(&self) -> usize {
        self.calls.len() + self.messages.len() + self.conferences.len()
    }

    /// True when nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when `event` creates an entity that already exists, or whose creation is on its way to the log:
    /// it is answered 400 and not appended.
    pub fn is_duplicate(&self, event: &Event) -> bool {
        match event {
            Event::CallCreated { id, .. } => self
                .calls
                .get(id.as_str())
                .is_some_and(|c| c.creating || c.info.is_some()),
            Event::MessageCreated { id, .. } => self
                .messages
                .get(id.as_str())
                .is_some_and(|m| m.creating || m.created),
            Event::ConferenceCreated { id, .. } => self
                .conferences
                .get(id.as_str())
                .is_some_and(|c| c.creating || c.created.is_some()),
            _ => false,
        }
    }

    /// Before `event` goes to the log: false when it is a duplicate create (not to be appended). A create that
    /// goes marks its entity as being created until [`Index::apply`] or [`Index::abandon`], so a second POST
    /// of the same id meanwhile is refused too, instead of both reaching the log.
    pub fn begin(&mut self, event: &Event) -> bool {
        if self.is_duplicate(event) {
            return false;
        }
        match event {
            Event::CallCreated { id, .. } => self.call(id).creating = true,
            Event::MessageCreated { id, .. } => self.message(id).creating = true,
            Event::ConferenceCreated { id, .. } => self.conference(id).creating = true,
            _ => {}
        }
        true
    }

    /// `event` did not reach the log: its create may be tried again.
    pub fn abandon(&mut self, event: &Event) {
        match event {
            Event::CallCreated { id, .. } => {
                if let Some(call) = self.calls.get_mut(id.as_str()) {
                    call.creating = false;
                }
            }
            Event::MessageCreated { id, .. } => {
                if let Some(message) = self.messages.get_mut(id.as_str()) {
                    message.creating = false;
                }
            }
            Event::ConferenceCreated { id, .. } => {
                if let Some(conference) = self.conferences.get_mut(id.as_str()) {
                    conference.creating = false;
                }
            }
            _ => {}
        }
    }

    /// Forgets the oldest entities until there is room for one more.
    fn make_room(&mut self) {
        while self.len() >= self.capacity {
            let Some((kind, id)) = self.order.pop_front() else {
                break;
            };
            match kind {
                Kind::Call => drop(self.calls.remove(&id)),
                Kind::Message => drop(self.messages.remove(&id)),
                Kind::Conference => drop(self.conferences.remove(&id)),
            }
        }
    }

    /// Remembers `id` as the newest entity (it is not in any map yet); the key to insert it under.
    fn admit(&mut self, kind: Kind, id: &str) -> Arc<str> {
        self.make_room();
        let key: Arc<str> = Arc::from(id);
        self.order.push_back((kind, key.clone()));
        key
    }

    fn call(&mut self, id: &str) -> &mut CallEntry {
        if !self.calls.contains_key(id) {
            let key = self.admit(Kind::Call, id);
            self.calls.insert(key, CallEntry::default());
        }
        self.calls.get_mut(id).expect("just inserted")
    }

    fn message(&mut self, id: &str) -> &mut MessageEntry {
        if !self.messages.contains_key(id) {
            let key = self.admit(Kind::Message, id);
            self.messages.insert(key, MessageEntry::default());
        }
        self.messages.get_mut(id).expect("just inserted")
    }

    fn conference(&mut self, id: &str) -> &mut ConferenceEntry {
        if !self.conferences.contains_key(id) {
            let key = self.admit(Kind::Conference, id);
            self.conferences.insert(key, ConferenceEntry::default());
        }
        self.conferences.get_mut(id).expect("just inserted")
    }

    /// Applies an appended event and returns the reply's outcome.
    pub fn apply(&mut self, envelope: &Envelope) -> Outcome {
        let now = envelope.acked_at_us;
        match &envelope.event {
            Event::CallCreated {
                from,
                to,
                initiated_at,
                ended_at,
                conference_id,
                sip_call_id,
                devices,
                ..
            } => {
                let call = self.call(envelope.event.entity_id());
                call.creating = false;
                if call.info.is_some() {
                    return Outcome::Duplicate;
                }
                call.info = Some(CallInfo {
                    from: from.clone(),
                    to: to.clone(),
                    initiated_at: *initiated_at,
                    ended_at: *ended_at,
                    conference_id: conference_id.clone(),
                    sip_call_id: sip_call_id.clone(),
                    forked: devices.keys().cloned().collect(),
                    created_us: now,
                });
                call.updated_us = call.updated_us.max(now);
                Outcome::Created
            }
            Event::CallDeviceUpdated {
                call_id,
                device_id,
                rang_at,
                invite_terminated,
            } => {
                let call = self.call(call_id);
                let created = !call.devices.iter().any(|d| &d.device_id == device_id);
                if created {
                    call.devices.push(CallDevice {
                        device_id: device_id.clone(),
                        created_us: now,
                        ..CallDevice::default()
                    });
                }
                let device = call
                    .devices
                    .iter_mut()
                    .find(|d| &d.device_id == device_id)
                    .expect("just ensured");
                if let Some(at) = rang_at {
                    device.rang_at = Some(*at);
                }
                if let Some(t) = invite_terminated {
                    device.terminated_at = Some(t.at);
                    device.terminated_state = Some(t.state.as_str());
                }
                device.updated_us = now;
                call.updated_us = call.updated_us.max(now);
                let Some(info) = &call.info else {
                    return Outcome::UnknownParent;
                };
                let row = device_json(call_id, device, info.forked.contains(device_id));
                Outcome::Upserted { created, row }
            }
            Event::CallEnded { call_id, ended_at } => {
                let call = self.call(call_id);
                call.ended_at = Some(*ended_at);
                call.updated_us = call.updated_us.max(now);
                match &call.info {
                    Some(_) => Outcome::Ended(call_json(call_id, call)),
                    None => Outcome::NotFound,
                }
            }
            Event::MessageCreated { .. } => {
                let message = self.message(envelope.event.entity_id());
                message.creating = false;
                if message.created {
                    return Outcome::Duplicate;
                }
                message.created = true;
                Outcome::Created
            }
            Event::MessageDeviceResponded {
                message_id,
                to,
                device_id,
                response,
            } => {
                let message = self.message(message_id);
                let created = !message
                    .responded
                    .iter()
                    .any(|(t, d)| t == to && d == device_id);
                if created {
                    message.responded.push((to.clone(), device_id.clone()));
                }
                if !message.created {
                    return Outcome::UnknownParent;
                }
                let at = stamp(now / 1_000_000);
                Outcome::Upserted {
                    created,
                    row: json!({
                        "id": null,
                        "message_id": message_id,
                        "to_username": to.username,
                        "to_domain": to.domain,
                        "device_id": device_id,
                        "last_status": response.last_status,
                        "received_at": stamp(response.received_at),
                        "created_at": at,
                        "updated_at": at,
                    }),
                }
            }
            Event::ConferenceCreated {
                created_at,
                ended_at,
                schedule,
                ..
            } => {
                let conference = self.conference(envelope.event.entity_id());
                conference.creating = false;
                if conference.created.is_some() {
                    return Outcome::Duplicate;
                }
                conference.created = Some((*created_at, schedule.clone(), now));
                if conference.ended_at.is_none() {
                    conference.ended_at = *ended_at;
                }
                conference.updated_us = conference.updated_us.max(now);
                Outcome::Created
            }
            Event::ConferenceEnded {
                conference_id,
                ended_at,
            } => {
                let conference = self.conference(conference_id);
                conference.ended_at = Some(*ended_at);
                conference.updated_us = conference.updated_us.max(now);
                if conference.created.is_none() {
                    return Outcome::NotFound;
                }
                Outcome::Ended(conference_json(conference_id, conference))
            }
            Event::ParticipantEvent {
                participant,
                at,
                event_type,
                ..
            } => {
                let conference = self.conference(envelope.event.entity_id());
                conference.participant_events.push(json!({
                    "participant": participant.to_string(), "type": event_type, "at": stamp(*at),
                }));
                Outcome::Created
            }
            Event::ParticipantDeviceEvent {
                participant,
                device_id,
                at,
                event_type,
                ..
            } => {
                let conference = self.conference(envelope.event.entity_id());
                conference.participant_device_events.push(json!({
                    "participant": participant.to_string(), "device_id": device_id, "type": event_type, "at": stamp(*at),
                }));
                Outcome::Created
            }
        }
    }
}

fn device_json(call_id: &str, d: &CallDevice, forked: bool) -> Value {
    json!({
        "id": null,
        "call_id": call_id,
        "device_id": d.device_id,
        "rang_at": optional(d.rang_at),
        "invite_terminated_at": d.terminated_at.and_then(|t| DateTime::from_timestamp(t, 0))
            .map(|t| flexiapi_core::time::plain(&t.naive_utc())),
        "invite_terminated_state": d.terminated_state,
        "created_at": stamp(d.created_us / 1_000_000),
        "updated_at": stamp(d.updated_us / 1_000_000),
        "forked": forked,
    })
}

fn call_json(call_id: &str, call: &CallEntry) -> Value {
    let Some(info) = &call.info else {
        return Value::Null;
    };
    let mut devices: Vec<Value> = call
        .devices
        .iter()
        .map(|d| device_json(call_id, d, info.forked.contains(&d.device_id)))
        .collect();
    for forked in &info.forked {
        if !call.devices.iter().any(|d| &d.device_id == forked) {
            let silent = CallDevice {
                device_id: forked.clone(),
                created_us: info.created_us,
                updated_us: info.created_us,
                ..CallDevice::default()
            };
            devices.push(device_json(call_id, &silent, true));
        }
    }
    json!({
        "id": call_id,
        "from_username": info.from.username,
        "from_domain": info.from.domain,
        "to_username": info.to.username,
        "to_domain": info.to.domain,
        "initiated_at": stamp(info.initiated_at),
        "ended_at": optional(call.ended_at.or(info.ended_at)),
        "conference_id": info.conference_id,
        "created_at": stamp(info.created_us / 1_000_000),
        "updated_at": stamp(call.updated_us / 1_000_000),
        "sip_call_id": info.sip_call_id,
        "devices": devices,
    })
}

fn conference_json(id: &str, c: &ConferenceEntry) -> Value {
    let (created_at, schedule) = match &c.created {
        Some((at, schedule, _)) => (
            Value::from(stamp(*at)),
            schedule.clone().map(Value::from).unwrap_or(Value::Null),
        ),
        None => (Value::Null, Value::Null),
    };
    json!({
        "id": id,
        "created_at": created_at,
        "ended_at": optional(c.ended_at),
        "schedule": schedule,
        "updated_at": stamp(c.updated_us / 1_000_000),
        "participant_events": c.participant_events,
        "participant_device_events": c.participant_device_events,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{InviteTerminated, TerminatedState};

    fn env(us: i64, event: Event) -> Envelope {
        Envelope {
            acked_at_us: us,
            event,
        }
    }

    fn call(id: &str) -> Event {
        Event::CallCreated {
            id: id.into(),
            from: Identity::parse("a@d").unwrap(),
            to: Identity::parse("b@d").unwrap(),
            initiated_at: 1_700_000_000,
            ended_at: None,
            conference_id: None,
            sip_call_id: Some("x".into()),
            devices: [("d1".to_owned(), None)].into_iter().collect(),
        }
    }

    fn device(id: &str, dev: &str) -> Event {
        Event::CallDeviceUpdated {
            call_id: id.into(),
            device_id: dev.into(),
            rang_at: Some(1_700_000_001),
            invite_terminated: None,
        }
    }

    #[test]
    fn statuses_follow_earlier_events() {
        let mut index = Index::new(10);
        assert_eq!(
            index.apply(&env(1, device("c", "d1"))),
            Outcome::UnknownParent
        );
        assert!(!index.is_duplicate(&call("c")));
        assert_eq!(index.apply(&env(2, call("c"))), Outcome::Created);
        assert!(index.is_duplicate(&call("c")));
        // The early update was kept: the same device now updates (200), a new one is created (201).
        match index.apply(&env(3, device("c", "d1"))) {
            Outcome::Upserted { created, row } => {
                assert!(!created);
                assert_eq!(row["forked"], true);
            }
            other => panic!("{other:?}"),
        }
        let terminated = Event::CallDeviceUpdated {
            call_id: "c".into(),
            device_id: "d2".into(),
            rang_at: None,
            invite_terminated: Some(InviteTerminated {
                at: 1_700_000_005,
                state: TerminatedState::Accepted,
            }),
        };
        assert!(matches!(
            index.apply(&env(4, terminated)),
            Outcome::Upserted { created: true, .. }
        ));
        match index.apply(&env(
            5,
            Event::CallEnded {
                call_id: "c".into(),
                ended_at: 1_700_000_100,
            },
        )) {
            Outcome::Ended(call) => {
                assert_eq!(call["devices"].as_array().unwrap().len(), 2);
                assert_eq!(call["devices"][1]["invite_terminated_state"], "accepted");
                assert_eq!(
                    call["devices"][1]["invite_terminated_at"],
                    "2023-11-14 22:13:25"
                );
                assert_eq!(call["ended_at"], "2023-11-14T22:15:00.000000Z");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            index.apply(&env(
                6,
                Event::CallEnded {
                    call_id: "nope".into(),
                    ended_at: 1
                }
            )),
            Outcome::NotFound
        );
    }

    #[test]
    fn memory_is_bounded() {
        let mut index = Index::new(3);
        for n in 0..10 {
            index.apply(&env(n, call(&format!("c{n}"))));
        }
        assert_eq!(index.len(), 3);
        assert!(index.is_duplicate(&call("c9")));
        assert!(!index.is_duplicate(&call("c0")));
    }

    #[test]
    fn kinds_share_the_bound_and_not_their_ids() {
        let message = |id: &str| Event::MessageCreated {
            id: id.into(),
            from: Identity::parse("a@d").unwrap(),
            sent_at: 1_700_000_000,
            encrypted: false,
            conference_id: None,
            to: Default::default(),
        };
        let mut index = Index::new(2);
        assert_eq!(index.apply(&env(1, call("x"))), Outcome::Created);
        // A message may carry a call's id: it is another entity.
        assert!(!index.is_duplicate(&message("x")));
        assert_eq!(index.apply(&env(2, message("x"))), Outcome::Created);
        assert!(index.is_duplicate(&call("x")) && index.is_duplicate(&message("x")));
        // A third entity, of either kind, pushes out the oldest: the call.
        assert_eq!(index.apply(&env(3, message("y"))), Outcome::Created);
        assert_eq!(index.len(), 2);
        assert!(!index.is_duplicate(&call("x")));
        assert!(index.is_duplicate(&message("x")) && index.is_duplicate(&message("y")));
    }

    #[test]
    fn a_create_on_its_way_to_the_log_refuses_a_second_one() {
        let mut index = Index::new(10);
        assert!(index.begin(&call("c")));
        // A second POST while the first is being delivered.
        assert!(!index.begin(&call("c")));
        assert!(index.is_duplicate(&call("c")));
        // Updates are not held back meanwhile.
        assert!(index.begin(&device("c", "d1")));
        // The first never reached the log: the call may be posted again.
        index.abandon(&call("c"));
        assert!(!index.is_duplicate(&call("c")));
        assert!(index.begin(&call("c")));
        assert_eq!(index.apply(&env(1, call("c"))), Outcome::Created);
        assert!(!index.begin(&call("c")));
        // Each kind has its own mark.
        let message = Event::MessageCreated {
            id: "c".into(),
            from: Identity::parse("a@d").unwrap(),
            sent_at: 1_700_000_000,
            encrypted: false,
            conference_id: None,
            to: Default::default(),
        };
        assert!(index.begin(&message));
        assert!(!index.begin(&message));
        assert_eq!(index.apply(&env(2, message.clone())), Outcome::Created);
        assert!(index.is_duplicate(&message));
    }
}
