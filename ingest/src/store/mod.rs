//! The embedded store (default mode): events go to the account database through a group-commit writer.
//!
//! Requests put their event in a bounded queue and wait for its outcome. One writer task takes everything
//! queued (up to `FLEXIAPI_INGEST_BATCH_MAX`), applies it in one transaction and commits; an acker task
//! answers every request of the batch once the commit is durable (at once on PostgreSQL; after the WAL
//! fsync of [`lite`] on SQLite, while the writer already applies the next batch) — so a reply always means
//! "committed and on disk", and the cost of an fsync is shared by every request that arrived meanwhile.
//! When the queue is full, requests wait for room (bounded memory) up to
//! `FLEXIAPI_INGEST_ENQUEUE_TIMEOUT_MS`; only then do they get a 503 (counted).
//! A batch that fails is replayed one event per transaction, so one bad event never fails its neighbours.
//! On SQLite the writes run on a dedicated thread ([`lite`]); on PostgreSQL, through sqlx. Reads use sqlx.

mod json;
mod lite;
pub mod sql;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::NaiveDateTime;
use flexiapi_core::{time, Config, Db};
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::error::IngestError;
use crate::event::{Event, Identity};
use crate::log::{BoxFuture, EventLog, Outcome, Page, StatsReader};
use crate::metrics as names;

/// Updates whose parent never arrived are forgotten after this long.
const PENDING_RETENTION: Duration = Duration::from_secs(24 * 3600);
/// How often the writer purges stale pending updates.
const PURGE_EVERY: Duration = Duration::from_secs(600);

type Reply = oneshot::Sender<Result<Outcome, IngestError>>;

// The stop marker is rare; boxing the common variant would cost an allocation per event.
#[allow(clippy::large_enum_variant)]
enum Message {
    Append(Event, Reply),
    Stop(oneshot::Sender<()>),
}

/// The embedded event log and reader over the account database.
pub struct Embedded {
    db: Db,
    queue: mpsc::Sender<Message>,
    enqueue_timeout: Duration,
    writer: Mutex<Option<JoinHandle<()>>>,
}

/// Where the writer task applies batches.
enum Target {
    /// The SQLite writer thread, on the file the pool was opened on.
    Sqlite(lite::Writer),
    /// The PostgreSQL pool.
    Postgres(PgPool),
}

impl Embedded {
    /// Starts the writer task (needs a Tokio runtime); on SQLite, opens the writer thread's connection.
    pub fn start(db: Db, config: &Config) -> Result<Embedded, IngestError> {
        let target = match &db {
            // The pool's own parsed options: the very file (and URL options) the Db was opened with.
            Db::Sqlite(pool) => Target::Sqlite(lite::Writer::open(
                pool.connect_options().get_filename(),
                config.ingest.sync_gather,
            )?),
            Db::Postgres(pool) => Target::Postgres(pool.clone()),
        };
        let (queue, receiver) = mpsc::channel(config.ingest.queue_depth.max(1));
        let writer = tokio::spawn(run_writer(target, receiver, config.ingest.batch_max.max(1)));
        Ok(Embedded {
            db,
            queue,
            enqueue_timeout: config.ingest.enqueue_timeout,
            writer: Mutex::new(Some(writer)),
        })
    }

    async fn enqueue(&self, event: Event) -> Result<Outcome, IngestError> {
        let (reply, outcome) = oneshot::channel();
        let message = Message::Append(event, reply);
        match self.queue.try_send(message) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(IngestError::Closed),
            Err(mpsc::error::TrySendError::Full(message)) => {
                // Back-pressure: wait for room rather than refuse (the client counts any status as delivered).
                metrics::counter!(names::ENQUEUE_WAITS).increment(1);
                match self.queue.send_timeout(message, self.enqueue_timeout).await {
                    Ok(()) => {}
                    Err(mpsc::error::SendTimeoutError::Closed(_)) => {
                        return Err(IngestError::Closed)
                    }
                    Err(mpsc::error::SendTimeoutError::Timeout(_)) => {
                        metrics::counter!(names::REJECTED).increment(1);
                        return Err(IngestError::Saturated);
                    }
                }
            }
        }
        outcome.await.map_err(|_| IngestError::Closed)?
    }
}

impl EventLog for Embedded {
    fn append(&self, event: Event) -> BoxFuture<'_, Result<Outcome, IngestError>> {
        Box::pin(self.enqueue(event))
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let (done, stopped) = oneshot::channel();
            if self.queue.send(Message::Stop(done)).await.is_ok() {
                let _ = stopped.await;
            }
            let writer = self.writer.lock().expect("writer handle").take();
            if let Some(writer) = writer {
                let _ = writer.await;
            }
        })
    }
}

impl StatsReader for Embedded {
    fn calls(
        &self,
        who: &Identity,
        offset: u64,
        limit: u64,
    ) -> BoxFuture<'_, Result<Page, IngestError>> {
        let who = who.clone();
        Box::pin(async move {
            Ok(match &self.db {
                Db::Sqlite(pool) => {
                    sql::sqlite::calls(&mut *pool.acquire().await?, &who, offset, limit).await?
                }
                Db::Postgres(pool) => {
                    sql::postgres::calls(&mut *pool.acquire().await?, &who, offset, limit).await?
                }
            })
        })
    }

    fn messages(
        &self,
        who: &Identity,
        offset: u64,
        limit: u64,
    ) -> BoxFuture<'_, Result<Page, IngestError>> {
        let who = who.clone();
        Box::pin(async move {
            Ok(match &self.db {
                Db::Sqlite(pool) => {
                    sql::sqlite::messages(&mut *pool.acquire().await?, &who, offset, limit).await?
                }
                Db::Postgres(pool) => {
                    sql::postgres::messages(&mut *pool.acquire().await?, &who, offset, limit)
                        .await?
                }
            })
        })
    }

    fn conference(
        &self,
        id: &str,
    ) -> BoxFuture<'_, Result<Option<serde_json::Value>, IngestError>> {
        let id = id.to_owned();
        Box::pin(async move {
            Ok(match &self.db {
                Db::Sqlite(pool) => {
                    sql::sqlite::conference(&mut *pool.acquire().await?, &id).await?
                }
                Db::Postgres(pool) => {
                    sql::postgres::conference(&mut *pool.acquire().await?, &id).await?
                }
            })
        })
    }
}

/// Committed batches waiting for durability before their requests are answered (bounds the pipeline).
const ACKS_IN_FLIGHT: usize = 64;

/// A committed batch: its replies, sent once `durable` resolves (`None`: durable at commit, PostgreSQL).
struct Ack {
    durable: Option<lite::Durable>,
    /// Each request's reply, outcome and event kind (counted once durable).
    replies: Vec<(Reply, Outcome, &'static str)>,
    started: Instant,
}

/// The writer: drains the queue in batches until stopped, then drains what is left.
async fn run_writer(target: Target, mut receiver: mpsc::Receiver<Message>, batch_max: usize) {
    let (acks, pending) = mpsc::channel(ACKS_IN_FLIGHT);
    // Answers come from their own task so that the writer commits the next batch while one is being synced.
    let acker = tokio::spawn(run_acker(pending));
    let mut messages = Vec::with_capacity(batch_max);
    let mut stops = Vec::new();
    let mut last_purge: Option<Instant> = None;
    loop {
        if receiver.recv_many(&mut messages, batch_max).await == 0 {
            break;
        }
        // Let the requests that are ready to run reach the queue first: a bigger batch costs less per event.
        while messages.len() < batch_max {
            tokio::task::yield_now().await;
            let (before, room) = (messages.len(), batch_max - messages.len());
            messages.extend(std::iter::from_fn(|| receiver.try_recv().ok()).take(room));
            if messages.len() == before {
                break;
            }
        }
        metrics::gauge!(names::QUEUE_DEPTH).set(receiver.len() as f64);
        let mut jobs = Vec::with_capacity(messages.len());
        for message in messages.drain(..) {
            match message {
                Message::Append(event, reply) => jobs.push((event, reply)),
                Message::Stop(done) => {
                    // Refuse new events; what is already queued is still written.
                    receiver.close();
                    stops.push(done);
                }
            }
        }
        if !jobs.is_empty() {
            commit(&target, jobs, &acks).await;
        }
        if last_purge.is_none_or(|at| at.elapsed() > PURGE_EVERY) {
            last_purge = Some(Instant::now());
            purge(&target).await;
        }
    }
    metrics::gauge!(names::QUEUE_DEPTH).set(0.0);
    drop(acks);
    if let Target::Sqlite(writer) = target {
        // Shutdown resolves only once every commit is synced and the writer connection is closed.
        writer.close().await;
    }
    let _ = acker.await;
    for done in stops {
        let _ = done.send(());
    }
}

/// Answers each committed batch, in commit order, once it is durable.
async fn run_acker(mut pending: mpsc::Receiver<Ack>) {
    while let Some(ack) = pending.recv().await {
        let durable = match ack.durable {
            None => Ok(()),
            Some(durable) => durable.await.unwrap_or(Err(IngestError::Closed)),
        };
        match durable {
            Ok(()) => {
                metrics::histogram!(names::STORE_SECONDS)
                    .record(ack.started.elapsed().as_secs_f64());
                for (reply, outcome, kind) in ack.replies {
                    // A duplicate changed nothing: only what the batch stored counts as appended.
                    if !matches!(outcome, Outcome::Duplicate) {
                        metrics::counter!(names::EVENTS_APPENDED, "kind" => kind).increment(1);
                    }
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(error) => {
                // Committed but not known to be on disk: not acknowledged (the client sees a 5xx).
                let reason = error.to_string();
                for (reply, _, _) in ack.replies {
                    let _ = reply.send(Err(IngestError::Durability(reason.clone())));
                }
            }
        }
    }
}

/// Applies a batch in one transaction and hands its answers to the acker; on failure, one transaction per
/// event.
async fn commit(target: &Target, jobs: Vec<(Event, Reply)>, acks: &mpsc::Sender<Ack>) {
    let started = Instant::now();
    let now = time::now();
    let (events, replies): (Vec<Event>, Vec<Reply>) = jobs.into_iter().unzip();
    let count = events.len();
    // The events come back with the result (the SQLite thread borrows them); if they do not (the thread is
    // gone), the replies are dropped below and their requests see the log closed.
    let (events, result) = transaction(target, events, now).await;
    match result {
        Ok((outcomes, durable)) => {
            metrics::histogram!(names::BATCH_SIZE).record(count as f64);
            let replies = replies
                .into_iter()
                .zip(outcomes)
                .zip(&events)
                .map(|((reply, outcome), event)| (reply, outcome, event.kind()))
                .collect();
            send_ack(acks, durable, replies, started).await;
        }
        Err(error) => {
            tracing::warn!(%error, events = count, "batch failed; replaying one event per transaction");
            for (event, reply) in events.into_iter().zip(replies) {
                let kind = event.kind();
                let (_, result) = transaction(target, vec![event], now).await;
                match result {
                    Ok((mut outcomes, durable)) => {
                        metrics::histogram!(names::BATCH_SIZE).record(1.0);
                        let outcome = outcomes.pop().expect("one outcome per event");
                        send_ack(acks, durable, vec![(reply, outcome, kind)], started).await;
                    }
                    Err(error) => {
                        let _ = reply.send(Err(error));
                    }
                }
            }
        }
    }
}

async fn send_ack(
    acks: &mpsc::Sender<Ack>,
    durable: Option<lite::Durable>,
    replies: Vec<(Reply, Outcome, &'static str)>,
    started: Instant,
) {
    let ack = Ack {
        durable,
        replies,
        started,
    };
    // The acker lives as long as the writer; if it is gone, the dropped replies read as a closed log.
    let _ = acks.send(ack).await;
}

/// Applies `events` in one transaction; gives them back with the outcomes and, on SQLite, the future of
/// their durability (or the error, rolled back).
async fn transaction(
    target: &Target,
    events: Vec<Event>,
    now: NaiveDateTime,
) -> (
    Vec<Event>,
    Result<(Vec<Outcome>, Option<lite::Durable>), IngestError>,
) {
    match target {
        Target::Sqlite(writer) => {
            let (events, result) = writer.batch(events, now).await;
            (
                events,
                result.map(|(outcomes, durable)| (outcomes, Some(durable))),
            )
        }
        Target::Postgres(pool) => {
            let result = postgres_transaction(pool, &events, now).await;
            (
                events,
                result
                    .map(|outcomes| (outcomes, None))
                    .map_err(IngestError::from),
            )
        }
    }
}

async fn postgres_transaction(
    pool: &PgPool,
    events: &[Event],
    now: NaiveDateTime,
) -> Result<Vec<Outcome>, sqlx::Error> {
    let mut outcomes = Vec::with_capacity(events.len());
    let mut tx = pool.begin().await?;
    for event in events {
        outcomes.push(sql::postgres::apply(&mut tx, event, now).await?);
    }
    tx.commit().await?;
    Ok(outcomes)
}

async fn purge(target: &Target) {
    let before =
        time::now() - chrono::Duration::from_std(PENDING_RETENTION).expect("retention fits");
    let result = match target {
        Target::Sqlite(writer) => writer.purge(before).await,
        Target::Postgres(pool) => match pool.acquire().await {
            Ok(mut conn) => sql::postgres::purge_pending(&mut conn, before)
                .await
                .map_err(IngestError::from),
            Err(e) => Err(e.into()),
        },
    };
    match result {
        Ok(0) => {}
        Ok(purged) => tracing::info!(purged, "stale pending statistics updates purged"),
        Err(error) => tracing::warn!(%error, "cannot purge pending statistics updates"),
    }
}
