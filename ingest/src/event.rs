//! The statistics events: what a validated request becomes before it is appended to the event log.
//!
//! One type for both logs: the embedded store applies them to SQL tables; in scale mode they are
//! serialised as JSON into Kafka (key = [`Event::entity_id`], so one call's events stay ordered) and the
//! sink turns them into ClickHouse rows. Timestamps are UTC unix seconds (what the client sends has second
//! precision). Identities are `user@domain` split as upstream splits them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// UTC unix seconds.
pub type Timestamp = i64;

/// `user@domain` split on the first `@` (anything after a second `@` is dropped, as upstream does).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Identity {
    /// Text before the first `@`.
    pub username: String,
    /// Text between the first and the second `@`.
    pub domain: String,
}

impl Identity {
    /// Splits `user@domain`; None when there is no `@`.
    pub fn parse(text: &str) -> Option<Identity> {
        let (username, rest) = text.split_once('@')?;
        let domain = rest.split('@').next().unwrap_or("");
        Some(Identity {
            username: username.to_owned(),
            domain: domain.to_owned(),
        })
    }
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.username, self.domain)
    }
}

/// A device's answer to a message (`last_status` + `received_at`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceResponse {
    /// SIP status of the device's response.
    pub last_status: i64,
    /// When the response was received.
    pub received_at: Timestamp,
}

/// How a device's INVITE branch ended (Flexisip's TerminatedState).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TerminatedState {
    Accepted,
    AcceptedElsewhere,
    Canceled,
    Declined,
    DeclinedElsewhere,
    Error,
}

impl TerminatedState {
    /// Every value, in upstream's order.
    pub const ALL: [TerminatedState; 6] = [
        TerminatedState::Accepted,
        TerminatedState::AcceptedElsewhere,
        TerminatedState::Canceled,
        TerminatedState::Declined,
        TerminatedState::DeclinedElsewhere,
        TerminatedState::Error,
    ];

    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TerminatedState::Accepted => "accepted",
            TerminatedState::AcceptedElsewhere => "accepted_elsewhere",
            TerminatedState::Canceled => "canceled",
            TerminatedState::Declined => "declined",
            TerminatedState::DeclinedElsewhere => "declined_elsewhere",
            TerminatedState::Error => "error",
        }
    }

    /// Parses the wire spelling.
    pub fn parse(text: &str) -> Option<TerminatedState> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// The end of a device's INVITE branch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteTerminated {
    /// When the branch ended.
    pub at: Timestamp,
    /// How it ended.
    pub state: TerminatedState,
}

/// What a conference participant did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParticipantEventType {
    Added,
    Left,
    Removed,
}

/// What a conference participant's device did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParticipantDeviceEventType {
    Invited,
    Joined,
    Left,
    Error,
}

/// One statistics event, as accepted from a Flexisip server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// `POST …/messages`.
    MessageCreated {
        id: String,
        from: Identity,
        sent_at: Timestamp,
        encrypted: bool,
        conference_id: Option<String>,
        /// Recipient `user@domain` → device id → response (null until the device answers).
        to: BTreeMap<String, BTreeMap<String, Option<DeviceResponse>>>,
    },
    /// `PATCH …/messages/{message_id}/to/{to}/devices/{device_id}`.
    MessageDeviceResponded {
        message_id: String,
        to: Identity,
        device_id: String,
        response: DeviceResponse,
    },
    /// `POST …/calls`.
    CallCreated {
        id: String,
        from: Identity,
        to: Identity,
        initiated_at: Timestamp,
        ended_at: Option<Timestamp>,
        conference_id: Option<String>,
        sip_call_id: Option<String>,
        /// Devices targeted when the call was forked (their state, when the sender gave one, is kept as sent).
        devices: BTreeMap<String, Option<serde_json::Value>>,
    },
    /// `PATCH …/calls/{call_id}/devices/{device_id}`: only the fields present are changed.
    CallDeviceUpdated {
        call_id: String,
        device_id: String,
        rang_at: Option<Timestamp>,
        invite_terminated: Option<InviteTerminated>,
    },
    /// `PATCH …/calls/{call_id}`.
    CallEnded {
        call_id: String,
        ended_at: Timestamp,
    },
    /// `POST …/conferences`.
    ConferenceCreated {
        id: String,
        created_at: Timestamp,
        ended_at: Option<Timestamp>,
        schedule: Option<String>,
    },
    /// `PATCH …/conferences/{conference_id}`.
    ConferenceEnded {
        conference_id: String,
        ended_at: Timestamp,
    },
    /// `POST …/conferences/{conference_id}/participants/{participant}/events`.
    ParticipantEvent {
        conference_id: String,
        participant: Identity,
        at: Timestamp,
        #[serde(rename = "type")]
        event_type: ParticipantEventType,
    },
    /// `POST …/conferences/{id}/participants/{participant}/devices/{device_id}/events`.
    ParticipantDeviceEvent {
        conference_id: String,
        participant: Identity,
        device_id: String,
        at: Timestamp,
        #[serde(rename = "type")]
        event_type: ParticipantDeviceEventType,
    },
}

impl Event {
    /// The id of the entity the event belongs to (call, message or conference): the Kafka key.
    pub fn entity_id(&self) -> &str {
        match self {
            Event::MessageCreated { id, .. } => id,
            Event::MessageDeviceResponded { message_id, .. } => message_id,
            Event::CallCreated { id, .. } => id,
            Event::CallDeviceUpdated { call_id, .. } | Event::CallEnded { call_id, .. } => call_id,
            Event::ConferenceCreated { id, .. } => id,
            Event::ConferenceEnded { conference_id, .. }
            | Event::ParticipantEvent { conference_id, .. }
            | Event::ParticipantDeviceEvent { conference_id, .. } => conference_id,
        }
    }

    /// The snake_case kind of the event (the `kind` label of the ingest's metrics): the spelling of its serde
    /// `kind` tag, without serialising.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::MessageCreated { .. } => "message_created",
            Event::MessageDeviceResponded { .. } => "message_device_responded",
            Event::CallCreated { .. } => "call_created",
            Event::CallDeviceUpdated { .. } => "call_device_updated",
            Event::CallEnded { .. } => "call_ended",
            Event::ConferenceCreated { .. } => "conference_created",
            Event::ConferenceEnded { .. } => "conference_ended",
            Event::ParticipantEvent { .. } => "participant_event",
            Event::ParticipantDeviceEvent { .. } => "participant_device_event",
        }
    }
}

/// An event as stored in the log: the event plus the instant the ingest acknowledged it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Acknowledgement time in UTC microseconds; monotonic per ingest node, used as the row version
    /// (ReplacingMergeTree) so replays after a crash collapse instead of doubling.
    pub acked_at_us: i64,
    /// The event.
    #[serde(flatten)]
    pub event: Event,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_split_like_upstream() {
        let id = Identity::parse("bob@example.org@extra").unwrap();
        assert_eq!(
            (id.username.as_str(), id.domain.as_str()),
            ("bob", "example.org")
        );
        let id = Identity::parse("@d").unwrap();
        assert_eq!((id.username.as_str(), id.domain.as_str()), ("", "d"));
        assert!(Identity::parse("nodomain").is_none());
    }

    #[test]
    fn envelope_round_trip() {
        let envelope = Envelope {
            acked_at_us: 1,
            event: Event::CallDeviceUpdated {
                call_id: "c".into(),
                device_id: "\"<urn:uuid:x>\"".into(),
                rang_at: None,
                invite_terminated: Some(InviteTerminated {
                    at: 5,
                    state: TerminatedState::AcceptedElsewhere,
                }),
            },
        };
        let json = serde_json::to_string(&envelope).unwrap();
        assert!(json.contains(r#""kind":"call_device_updated""#), "{json}");
        assert_eq!(envelope.event.kind(), "call_device_updated");
        assert!(json.contains(r#""state":"accepted_elsewhere""#), "{json}");
        assert_eq!(serde_json::from_str::<Envelope>(&json).unwrap(), envelope);
        assert_eq!(envelope.event.entity_id(), "c");
    }
}
