//! Envelopes → ClickHouse rows, one struct per table of `schema/clickhouse`.
//!
//! Each row carries the Kafka partition and offset of its event: that pair is the row's identity (a replayed
//! event yields the same row, which the ReplacingMergeTree collapses) and the offset orders one entity's
//! events (they all sit in one partition, keyed by the entity id). DateTime columns are UTC unix seconds.

use clickhouse::Row;
use serde::{Deserialize, Serialize};

use crate::event::{Envelope, Event, Timestamp};

/// Where an event sits in the Kafka log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    /// Partition of the topic.
    pub partition: i32,
    /// Offset in the partition.
    pub offset: i64,
}

/// A row of `calls`.
#[derive(Clone, Debug, Row, Serialize, Deserialize)]
pub struct CallRow {
    pub id: String,
    pub from_username: String,
    pub from_domain: String,
    pub to_username: String,
    pub to_domain: String,
    pub initiated_at: u32,
    pub ended_at: Option<u32>,
    pub conference_id: Option<String>,
    pub sip_call_id: Option<String>,
    pub device_ids: Vec<String>,
    /// The state the sender gave each forked device, as JSON text ('' for null).
    pub device_states: Vec<String>,
    pub acked_at_us: u64,
    pub kafka_partition: u32,
    pub kafka_offset: u64,
}

/// A row of `call_ends`.
#[derive(Clone, Debug, Row, Serialize, Deserialize)]
pub struct CallEndRow {
    pub call_id: String,
    pub ended_at: u32,
    pub acked_at_us: u64,
    pub kafka_partition: u32,
    pub kafka_offset: u64,
}

/// A row of `call_device_events`.
#[derive(Clone, Debug, Row, Serialize, Deserialize)]
pub struct CallDeviceRow {
    pub call_id: String,
    pub device_id: String,
    pub rang_at: Option<u32>,
    pub terminated_at: Option<u32>,
    pub terminated_state: Option<String>,
    pub acked_at_us: u64,
    pub kafka_partition: u32,
    pub kafka_offset: u64,
}

/// A row of `messages`.
#[derive(Clone, Debug, Row, Serialize, Deserialize)]
pub struct MessageRow {
    pub id: String,
    pub from_username: String,
    pub from_domain: String,
    pub sent_at: u32,
    pub encrypted: u8,
    pub conference_id: Option<String>,
    /// Recipient `user@domain` of each (recipient, device) pair targeted at fork time.
    pub to_recipients: Vec<String>,
    /// Device of each pair.
    pub to_devices: Vec<String>,
    pub acked_at_us: u64,
    pub kafka_partition: u32,
    pub kafka_offset: u64,
}

/// A row of `message_device_responses`.
#[derive(Clone, Debug, Row, Serialize, Deserialize)]
pub struct MessageResponseRow {
    pub message_id: String,
    pub to_username: String,
    pub to_domain: String,
    pub device_id: String,
    pub last_status: i32,
    pub received_at: u32,
    pub acked_at_us: u64,
    pub kafka_partition: u32,
    pub kafka_offset: u64,
}

/// A row of `conferences`.
#[derive(Clone, Debug, Row, Serialize, Deserialize)]
pub struct ConferenceRow {
    pub id: String,
    pub created_at: u32,
    pub ended_at: Option<u32>,
    pub schedule: Option<String>,
    pub acked_at_us: u64,
    pub kafka_partition: u32,
    pub kafka_offset: u64,
}

/// A row of `conference_ends`.
#[derive(Clone, Debug, Row, Serialize, Deserialize)]
pub struct ConferenceEndRow {
    pub conference_id: String,
    pub ended_at: u32,
    pub acked_at_us: u64,
    pub kafka_partition: u32,
    pub kafka_offset: u64,
}

/// A row of `participant_events` (`device_id` '' for participant-level events).
#[derive(Clone, Debug, Row, Serialize, Deserialize)]
pub struct ParticipantEventRow {
    pub conference_id: String,
    pub participant_username: String,
    pub participant_domain: String,
    pub device_id: String,
    pub at: u32,
    #[serde(rename = "type")]
    pub event_type: String,
    pub acked_at_us: u64,
    pub kafka_partition: u32,
    pub kafka_offset: u64,
}

/// The rows of a batch of events, per table.
#[derive(Clone, Debug, Default)]
pub struct Rows {
    pub calls: Vec<CallRow>,
    pub call_ends: Vec<CallEndRow>,
    pub call_devices: Vec<CallDeviceRow>,
    pub messages: Vec<MessageRow>,
    pub message_responses: Vec<MessageResponseRow>,
    pub conferences: Vec<ConferenceRow>,
    pub conference_ends: Vec<ConferenceEndRow>,
    pub participant_events: Vec<ParticipantEventRow>,
}

/// DateTime is an unsigned 32-bit count of seconds: clamp what it cannot hold.
pub fn datetime(at: Timestamp) -> u32 {
    at.clamp(0, i64::from(u32::MAX)) as u32
}

fn wire<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(text)) => text,
        _ => String::new(),
    }
}

impl Rows {
    /// Rows in the batch.
    pub fn len(&self) -> usize {
        self.calls.len()
            + self.call_ends.len()
            + self.call_devices.len()
            + self.messages.len()
            + self.message_responses.len()
            + self.conferences.len()
            + self.conference_ends.len()
            + self.participant_events.len()
    }

    /// True when the batch holds no row.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds the rows of one event.
    pub fn push(&mut self, envelope: &Envelope, at: Position) {
        let acked_at_us = envelope.acked_at_us.max(0) as u64;
        let kafka_partition = at.partition.max(0) as u32;
        let kafka_offset = at.offset.max(0) as u64;
        match &envelope.event {
            Event::CallCreated {
                id,
                from,
                to,
                initiated_at,
                ended_at,
                conference_id,
                sip_call_id,
                devices,
            } => self.calls.push(CallRow {
                id: id.clone(),
                from_username: from.username.clone(),
                from_domain: from.domain.clone(),
                to_username: to.username.clone(),
                to_domain: to.domain.clone(),
                initiated_at: datetime(*initiated_at),
                ended_at: ended_at.map(datetime),
                conference_id: conference_id.clone(),
                sip_call_id: sip_call_id.clone(),
                device_ids: devices.keys().cloned().collect(),
                device_states: devices
                    .values()
                    .map(|state| state.as_ref().map(|v| v.to_string()).unwrap_or_default())
                    .collect(),
                acked_at_us,
                kafka_partition,
                kafka_offset,
            }),
            Event::CallDeviceUpdated {
                call_id,
                device_id,
                rang_at,
                invite_terminated,
            } => self.call_devices.push(CallDeviceRow {
                call_id: call_id.clone(),
                device_id: device_id.clone(),
                rang_at: rang_at.map(datetime),
                terminated_at: invite_terminated.as_ref().map(|t| datetime(t.at)),
                terminated_state: invite_terminated
                    .as_ref()
                    .map(|t| t.state.as_str().to_owned()),
                acked_at_us,
                kafka_partition,
                kafka_offset,
            }),
            Event::CallEnded { call_id, ended_at } => self.call_ends.push(CallEndRow {
                call_id: call_id.clone(),
                ended_at: datetime(*ended_at),
                acked_at_us,
                kafka_partition,
                kafka_offset,
            }),
            Event::MessageCreated {
                id,
                from,
                sent_at,
                encrypted,
                conference_id,
                to,
            } => {
                let mut to_recipients = Vec::new();
                let mut to_devices = Vec::new();
                for (recipient, devices) in to {
                    for (device, response) in devices {
                        to_recipients.push(recipient.clone());
                        to_devices.push(device.clone());
                        // A response given in the POST itself counts as the device's first answer.
                        if let Some(response) = response {
                            let who = crate::event::Identity::parse(recipient).unwrap_or(
                                crate::event::Identity {
                                    username: recipient.clone(),
                                    domain: String::new(),
                                },
                            );
                            self.message_responses.push(MessageResponseRow {
                                message_id: id.clone(),
                                to_username: who.username,
                                to_domain: who.domain,
                                device_id: device.clone(),
                                last_status: response
                                    .last_status
                                    .clamp(i32::MIN as i64, i32::MAX as i64)
                                    as i32,
                                received_at: datetime(response.received_at),
                                acked_at_us,
                                kafka_partition,
                                kafka_offset,
                            });
                        }
                    }
                }
                self.messages.push(MessageRow {
                    id: id.clone(),
                    from_username: from.username.clone(),
                    from_domain: from.domain.clone(),
                    sent_at: datetime(*sent_at),
                    encrypted: u8::from(*encrypted),
                    conference_id: conference_id.clone(),
                    to_recipients,
                    to_devices,
                    acked_at_us,
                    kafka_partition,
                    kafka_offset,
                });
            }
            Event::MessageDeviceResponded {
                message_id,
                to,
                device_id,
                response,
            } => self.message_responses.push(MessageResponseRow {
                message_id: message_id.clone(),
                to_username: to.username.clone(),
                to_domain: to.domain.clone(),
                device_id: device_id.clone(),
                last_status: response.last_status.clamp(i32::MIN as i64, i32::MAX as i64) as i32,
                received_at: datetime(response.received_at),
                acked_at_us,
                kafka_partition,
                kafka_offset,
            }),
            Event::ConferenceCreated {
                id,
                created_at,
                ended_at,
                schedule,
            } => self.conferences.push(ConferenceRow {
                id: id.clone(),
                created_at: datetime(*created_at),
                ended_at: ended_at.map(datetime),
                schedule: schedule.clone(),
                acked_at_us,
                kafka_partition,
                kafka_offset,
            }),
            Event::ConferenceEnded {
                conference_id,
                ended_at,
            } => self.conference_ends.push(ConferenceEndRow {
                conference_id: conference_id.clone(),
                ended_at: datetime(*ended_at),
                acked_at_us,
                kafka_partition,
                kafka_offset,
            }),
            Event::ParticipantEvent {
                conference_id,
                participant,
                at,
                event_type,
            } => self.participant_events.push(ParticipantEventRow {
                conference_id: conference_id.clone(),
                participant_username: participant.username.clone(),
                participant_domain: participant.domain.clone(),
                device_id: String::new(),
                at: datetime(*at),
                event_type: wire(event_type),
                acked_at_us,
                kafka_partition,
                kafka_offset,
            }),
            Event::ParticipantDeviceEvent {
                conference_id,
                participant,
                device_id,
                at,
                event_type,
            } => self.participant_events.push(ParticipantEventRow {
                conference_id: conference_id.clone(),
                participant_username: participant.username.clone(),
                participant_domain: participant.domain.clone(),
                device_id: device_id.clone(),
                at: datetime(*at),
                event_type: wire(event_type),
                acked_at_us,
                kafka_partition,
                kafka_offset,
            }),
        }
    }
}
