//! The seam between the HTTP front and where events go.
//!
//! The handlers turn a request into an [`Event`] and call [`EventLog::append`]; the [`Outcome`] carries
//! everything the reply needs, so the handlers never know which log they talk to. The embedded store
//! ([`crate::store::Embedded`], SQL with group commit) and the scale-mode Kafka log implement it. Reads go
//! through [`StatsReader`] (SQL in embedded mode, ClickHouse in scale mode).

use std::future::Future;
use std::pin::Pin;

use serde_json::Value;

use crate::error::IngestError;
use crate::event::{Event, Identity};

/// A boxed, sendable future (the traits are used as `Arc<dyn …>`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What appending an event did — the status and body of the reply follow from it.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// A call, message or conference was created, or a conference participant event recorded: 200 text `1`.
    Created,
    /// A call, message or conference with that id already exists: 400 `{"message":"Database error"}`.
    Duplicate,
    /// A device update for a call or message not (yet) posted: 400 `{"message":"Database error"}` as
    /// upstream answers; the update is kept and applied when the POST arrives.
    UnknownParent,
    /// The end of a call or conference not (yet) posted: 404 as upstream answers; kept and applied when the
    /// POST arrives.
    NotFound,
    /// A device row was upserted: 201 when `created`, else 200; `row` is the device row JSON.
    Upserted {
        /// True when the row did not exist.
        created: bool,
        /// The device row as upstream serialises it.
        row: Value,
    },
    /// A call or conference was ended: 200 with its JSON (a call with its `devices`).
    Ended(Value),
}

/// Where validated events are appended.
pub trait EventLog: Send + Sync + 'static {
    /// Appends one event; resolves once it is durable (the reply is sent only then).
    fn append(&self, event: Event) -> BoxFuture<'_, Result<Outcome, IngestError>>;

    /// Stops taking events and waits until every accepted one is durable.
    fn shutdown(&self) -> BoxFuture<'_, ()>;
}

/// One page of a listing: the items and the total count.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Page {
    /// The items of the page, in listing order.
    pub items: Vec<Value>,
    /// Items in the whole listing.
    pub total: u64,
}

/// The read side of the statistics.
pub trait StatsReader: Send + Sync + 'static {
    /// Calls `who` made or received, newest first (`initiated_at` desc), each with `sip_call_id` and
    /// `devices`; `offset`/`limit` select the page.
    fn calls(
        &self,
        who: &Identity,
        offset: u64,
        limit: u64,
    ) -> BoxFuture<'_, Result<Page, IngestError>>;

    /// Messages `who` sent or is a recipient of, newest first (`sent_at` desc), each with its `to` map.
    fn messages(
        &self,
        who: &Identity,
        offset: u64,
        limit: u64,
    ) -> BoxFuture<'_, Result<Page, IngestError>>;

    /// A conference with its participant and participant-device events; None when nothing is known of it.
    fn conference(&self, id: &str) -> BoxFuture<'_, Result<Option<Value>, IngestError>>;
}
