//! The SQLite write side of the embedded store: each batch runs synchronously on one dedicated OS thread
//! through `rusqlite`, with cached prepared statements.
//!
//! sqlx-sqlite sends every statement to its worker thread and waits for the answer — several thread
//! handoffs per event, which dominated the cost of a write. Here a whole batch costs one handoff. The
//! outcomes and stored text are those of the PostgreSQL write side in [`super::sql`] (timestamps in the
//! `%F %T%.f` text sqlx-sqlite writes, so the sqlx read side parses them), and reads stay on sqlx. The SQL
//! differs where a statement is cheaper here: a device update finds its parent, its row and whether it was
//! forked in one lookup (which also gives the parent's `seq` its child rows are keyed by), and a batch looks
//! for waiting updates only when the pending table has any.
//!
//! Durability is pipelined. The writer commits with `synchronous=NORMAL` (no fsync) and goes on with the
//! next batch, while a sync thread fsyncs the WAL file and only then lets the batch's requests be answered.
//! That is the guarantee of `synchronous=FULL` (the WAL synced after every commit before anyone hears of
//! it) without holding the writer for the fsync. WAL frames are appended in commit order, so a sync covers
//! every commit made before it. The sync thread lets commits gather for a moment (`sync_gather`, 300 µs by
//! default) before each fsync: with fsyncs back to back, now and then one stalled for tens of milliseconds on
//! the test VM's disk, holding every reply; with the pause (and fewer fsyncs) the half-rate p99 stayed under
//! 10 ms in 8 of 9 interleaved runs against 3 of 9, for about an eighth less maximum rate
//! (`benches/NOTES.md`).
//!
//! Checkpoints run on a third thread (PASSIVE: they never block the writer), not inline in the commit that
//! crosses SQLite's auto-checkpoint threshold; that thread runs at idle priority, so its bursts of page
//! copies take only the time the request and writer threads leave.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::{NaiveDateTime, Timelike};
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSqlOutput, ValueRef};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Row, ToSql, TransactionBehavior};
use serde_json::Value;
use tokio::sync::oneshot;

use super::json::{CallDeviceRow, CallRow, MessageDeviceRow};
use super::sql::{
    conference_json, pending_key, recipient, wire, ConferenceRow, ParticipantDeviceRow,
    ParticipantRow,
};
use crate::date::naive;
use crate::error::IngestError;
use crate::event::Event;
use crate::log::Outcome;

/// Resolves once the WAL frames of a committed batch are on disk; only then may its requests be answered.
pub type Durable = oneshot::Receiver<Result<(), IngestError>>;

/// What a batch gives back: its events (for a replay) and, once committed, their outcomes and the
/// batch's durability — or why it was rolled back.
type BatchResult = (Vec<Event>, Result<(Vec<Outcome>, Durable), IngestError>);

/// Pause between two background checkpoints: each one copies the pages of many commits at once, and the
/// fewer there are, the fewer times a page rewritten by every commit is copied (and the fewer database fsyncs
/// hold up the WAL fsyncs that replies wait for).
const CHECKPOINT_PAUSE: Duration = Duration::from_millis(500);
/// Extra back-to-back checkpoints the checkpoint thread runs while frames remain. Each copies only what was
/// committed during the previous one, so they shorten; one that ends while the writer is between batches
/// leaves the whole WAL copied, and the writer's next transaction starts it over (SQLite does it, nothing
/// holds up the writer).
const CATCH_UP_PASSES: usize = 8;
/// When the (idle-priority) checkpoint thread has not reported for this long, the writer checkpoints itself.
/// (At 20 000 events/s, about 2 s of commits is 30 000 frames, 120 MiB of WAL.)
const CHECKPOINTER_STARVED: Duration = Duration::from_secs(2);
/// When the writer never pauses (a saturated core), no background checkpoint catches up with the last commit
/// and SQLite never starts the WAL over. Past this length (40 MiB) the writer checkpoints what is left itself,
/// between two batches, and its next transaction starts the WAL from the beginning. Below it, the catch-up
/// passes restart the WAL without holding up the writer.
const WAL_RESTART_FRAMES: i64 = 10_000;

enum Job {
    Batch {
        events: Vec<Event>,
        now: NaiveDateTime,
        done: oneshot::Sender<BatchResult>,
    },
    Purge {
        before: NaiveDateTime,
        done: oneshot::Sender<Result<u64, IngestError>>,
    },
}

/// The handle of the writer thread, which owns the only writing `rusqlite` connection.
pub struct Writer {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    /// Opens the (migrated) database file and starts the writer, sync and checkpoint threads; the sync thread
    /// lets commits gather for `sync_gather` before each fsync.
    pub fn open(path: &Path, sync_gather: Duration) -> Result<Writer, IngestError> {
        // Opened here rather than on the threads so that a bad path fails the start, not the first event.
        let cannot_open = |e: rusqlite::Error| {
            IngestError::Setup(format!(
                "cannot open {} for the statistics writer: {e}",
                path.display()
            ))
        };
        let conn = connect(path).map_err(cannot_open)?;
        let checkpoints = connect(path).map_err(cannot_open)?;
        let start = |name: &str, body: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.into())
                .spawn(body)
                .map_err(|e| IngestError::Setup(format!("cannot start the {name} thread: {e}")))
        };
        let (pokes, poked) = mpsc::sync_channel(1);
        let wal = Arc::new(WalLength::new());
        let seen = wal.clone();
        let checkpointer = start(
            "stats-checkpoint",
            Box::new(move || {
                lower_priority();
                checkpoint_loop(checkpoints, poked, &seen)
            }),
        )?;
        let (syncs, sync_jobs) = mpsc::channel();
        let wal_file = wal_path(path);
        let syncer = start(
            "stats-sync",
            Box::new(move || sync_loop(&wal_file, sync_jobs, pokes, sync_gather)),
        )?;
        let (jobs, receiver) = mpsc::channel();
        let thread = start(
            "stats-writer",
            Box::new(move || {
                run(conn, receiver, syncs, &wal);
                // The senders are gone: the sync thread answers what it holds, then the checkpointer ends.
                let _ = syncer.join();
                let _ = checkpointer.join();
            }),
        )?;
        Ok(Writer {
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }

    /// Applies `events` in one transaction; gives them back with their outcomes once committed, with the
    /// future of their durability. When the thread is gone the events are not given back: their requests
    /// then see the log closed.
    pub async fn batch(&self, events: Vec<Event>, now: NaiveDateTime) -> BatchResult {
        let (done, result) = oneshot::channel();
        let Some(jobs) = &self.jobs else {
            return (events, Err(IngestError::Closed));
        };
        if let Err(mpsc::SendError(job)) = jobs.send(Job::Batch { events, now, done }) {
            let Job::Batch { events, .. } = job else {
                unreachable!("a batch was sent")
            };
            return (events, Err(IngestError::Closed));
        }
        result
            .await
            .unwrap_or_else(|_| (Vec::new(), Err(IngestError::Closed)))
    }

    /// Deletes the pending updates stored before `before`; returns how many.
    pub async fn purge(&self, before: NaiveDateTime) -> Result<u64, IngestError> {
        let (done, result) = oneshot::channel();
        let jobs = self.jobs.as_ref().ok_or(IngestError::Closed)?;
        jobs.send(Job::Purge { before, done })
            .map_err(|_| IngestError::Closed)?;
        result.await.map_err(|_| IngestError::Closed)?
    }

    /// Stops the threads and waits until every commit is synced and the connections are closed.
    pub async fn close(mut self) {
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

/// The WAL file SQLite keeps beside the database file `db`.
fn wal_path(db: &Path) -> PathBuf {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    PathBuf::from(wal)
}

/// Opens a connection with the settings of `flexiapi_core::db` (the file exists: migrations ran), except
/// for syncing and checkpoints, which the threads of this module do themselves.
fn connect(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get::<_, String>(0))?;
    // NORMAL: commits do not fsync (the sync thread does, before any reply); checkpoints still sync.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // The indexes of random 64-hex ids touch pages all over the file: keep them in memory (32 MiB).
    conn.pragma_update(None, "cache_size", -32_768)?;
    // Room for every statement of the write side, so none is ever prepared twice.
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// The WAL's length as the last checkpoint saw it, and when that was.
struct WalLength {
    frames: AtomicI64,
    /// Milliseconds from `origin` to the last report.
    reported_ms: AtomicU64,
    origin: Instant,
}

impl WalLength {
    fn new() -> WalLength {
        WalLength {
            frames: AtomicI64::new(0),
            reported_ms: AtomicU64::new(0),
            origin: Instant::now(),
        }
    }

    /// Records the length a checkpoint returned.
    fn report(&self, frames: i64) {
        self.frames.store(frames, Ordering::Relaxed);
        let now = self.origin.elapsed().as_millis() as u64;
        self.reported_ms.store(now, Ordering::Relaxed);
    }

    /// Whether the writer should checkpoint before its next transaction: the WAL is past
    /// [`WAL_RESTART_FRAMES`], or the checkpoint thread has not reported for [`CHECKPOINTER_STARVED`] (it
    /// runs at idle priority: on a saturated core it may not run, and the WAL must not grow without bound).
    fn restart_due(&self) -> bool {
        // Saturating: the checkpoint thread may report between the two reads.
        let since = (self.origin.elapsed().as_millis() as u64)
            .saturating_sub(self.reported_ms.load(Ordering::Relaxed));
        self.frames.load(Ordering::Relaxed) > WAL_RESTART_FRAMES
            || Duration::from_millis(since) > CHECKPOINTER_STARVED
    }
}

/// Runs the calling thread at idle priority (Linux `SCHED_IDLE`): the checkpoint thread copies pages in long
/// bursts, which would otherwise take the core from the threads that answer requests. Logged, not fatal, when
/// refused.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        use thread_priority::unix::{
            set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy,
            ThreadSchedulePolicy,
        };
        let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
        if let Err(error) = set_thread_priority_and_policy(
            thread_native_id(),
            thread_priority::ThreadPriority::Min,
            idle,
        ) {
            tracing::debug!(?error, "the checkpoint thread keeps its priority");
        }
    }
}

fn run(
    mut conn: Connection,
    jobs: mpsc::Receiver<Job>,
    syncs: mpsc::Sender<oneshot::Sender<Result<(), IngestError>>>,
    wal: &WalLength,
) {
    while let Ok(job) = jobs.recv() {
        if wal.restart_due() {
            // No other writer: this checkpoint completes, so the next transaction starts the WAL over.
            checkpoint(&conn, "PASSIVE", "writer");
            wal.report(0);
        }
        match job {
            Job::Batch { events, now, done } => {
                let result = transaction(&mut conn, &events, now)
                    .map_err(IngestError::from)
                    .map(|outcomes| {
                        let (synced, durable) = oneshot::channel();
                        if let Err(mpsc::SendError(synced)) = syncs.send(synced) {
                            let _ = synced.send(Err(IngestError::Closed));
                        }
                        (outcomes, durable)
                    });
                let _ = done.send((events, result));
            }
            Job::Purge { before, done } => {
                let result = conn
                    .prepare_cached("DELETE FROM statistics_pending_updates WHERE created_at < ?1")
                    .and_then(|mut delete| delete.execute(params![stamp(before)]))
                    .map(|purged| purged as u64)
                    .map_err(IngestError::from);
                let _ = done.send(result);
            }
        }
    }
    drop(syncs);
    if let Err((_, error)) = conn.close() {
        tracing::warn!(%error, "cannot close the statistics writer connection");
    }
}

/// Fsyncs the WAL for every commit handed over, several commits per fsync when they queue up.
fn sync_loop(
    wal: &Path,
    jobs: mpsc::Receiver<oneshot::Sender<Result<(), IngestError>>>,
    pokes: mpsc::SyncSender<()>,
    gather: Duration,
) {
    while let Ok(first) = jobs.recv() {
        if !gather.is_zero() {
            std::thread::sleep(gather);
        }
        // Everything queued was committed before this point: one fsync covers it all.
        let mut waiting = vec![first];
        waiting.extend(jobs.try_iter());
        // Opened per sync: the file a commit wrote is the one at this path while the writer's connection
        // lives (SQLite deletes the WAL only when its last connection closes).
        let started = Instant::now();
        let result = std::fs::File::open(wal).and_then(|file| file.sync_data());
        metrics::histogram!(crate::metrics::WAL_SYNC_SECONDS)
            .record(started.elapsed().as_secs_f64());
        if let Err(error) = &result {
            tracing::error!(%error, wal = %wal.display(), "cannot sync the statistics WAL");
        }
        for synced in waiting {
            let _ = synced.send(
                result
                    .as_ref()
                    .map(|_| ())
                    .map_err(|e| IngestError::Durability(format!("cannot sync the WAL: {e}"))),
            );
        }
        // A full channel means a checkpoint is already due.
        let _ = pokes.try_send(());
    }
}

/// Checkpoints the WAL in the background after commits, at most every [`CHECKPOINT_PAUSE`].
/// Publishes the WAL's length in `wal` for the writer.
fn checkpoint_loop(conn: Connection, poked: mpsc::Receiver<()>, wal: &WalLength) {
    while poked.recv().is_ok() {
        let mut pass = checkpoint(&conn, "PASSIVE", "background");
        for _ in 0..CATCH_UP_PASSES {
            match pass {
                Some((frames, copied)) if copied < frames => {
                    pass = checkpoint(&conn, "PASSIVE", "background")
                }
                _ => break,
            }
        }
        match pass {
            // All copied: the writer's next transaction starts the WAL over by itself.
            Some((frames, copied)) if copied >= frames => wal.report(0),
            Some((frames, _)) => wal.report(frames),
            None => {}
        }
        std::thread::sleep(CHECKPOINT_PAUSE);
    }
    // The last commits are in the (synced) WAL: fold them into the database before leaving.
    checkpoint(&conn, "PASSIVE", "background");
    if let Err((_, error)) = conn.close() {
        tracing::warn!(%error, "cannot close the statistics checkpoint connection");
    }
}

/// Runs one checkpoint; returns the WAL's length and how many of its frames are now in the database, or None
/// when it failed (logged). `by` labels its duration in [`crate::metrics::CHECKPOINT_SECONDS`].
fn checkpoint(conn: &Connection, mode: &str, by: &'static str) -> Option<(i64, i64)> {
    let started = Instant::now();
    let result = conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| {
        Ok((row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
    });
    metrics::histogram!(crate::metrics::CHECKPOINT_SECONDS, "by" => by)
        .record(started.elapsed().as_secs_f64());
    match result {
        Ok(frames) => Some(frames),
        Err(error) => {
            tracing::warn!(%error, mode, "statistics WAL checkpoint failed");
            None
        }
    }
}

/// The current time of a batch, with its stored text formatted once, and what the batch knows of the
/// pending updates.
struct Now {
    at: NaiveDateTime,
    text: Stamp,
    /// False when no update is waiting for its parent: a create then skips looking for its own (updates come
    /// before their POST only from old Flexisip versions, so the table is almost always empty).
    pending: std::cell::Cell<bool>,
}

fn transaction(
    conn: &mut Connection,
    events: &[Event],
    now: NaiveDateTime,
) -> rusqlite::Result<Vec<Outcome>> {
    // IMMEDIATE takes the write lock up front: a deferred transaction that reads first and then writes fails
    // at once with SQLITE_BUSY (no busy wait) when another connection wrote in between.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let pending = tx
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM statistics_pending_updates)")?
        .query_row([], |row| row.get(0))?;
    let now = Now {
        at: now,
        text: stamp(now),
        pending: std::cell::Cell::new(pending),
    };
    let mut outcomes = Vec::with_capacity(events.len());
    for event in events {
        outcomes.push(apply(&tx, event, &now)?);
    }
    tx.commit()?;
    Ok(outcomes)
}

/// Applies one event inside the current transaction.
fn apply(conn: &Connection, event: &Event, now: &Now) -> rusqlite::Result<Outcome> {
    match event {
        Event::MessageCreated {
            id,
            from,
            sent_at,
            encrypted,
            conference_id,
            to,
        } => {
            let inserted = conn.prepare_cached(
                "INSERT INTO statistics_messages (id, from_username, from_domain, sent_at, encrypted, conference_id, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7) ON CONFLICT (id) DO NOTHING")?
                .execute(params![id, from.username, from.domain, stamp(naive(*sent_at)), encrypted, conference_id, now.text])?;
            if inserted == 0 {
                return Ok(Outcome::Duplicate);
            }
            // `seq` is the rowid (INTEGER PRIMARY KEY): the child rows are keyed by it.
            let seq = conn.last_insert_rowid();
            let mut insert = conn.prepare_cached(
                "INSERT INTO statistics_message_recipients (message_seq, message_id, to_username, to_domain, device_id, last_status, received_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING")?;
            for (key, devices) in to {
                let who = recipient(key);
                for (device, response) in devices {
                    insert.execute(params![
                        seq,
                        id,
                        who.username,
                        who.domain,
                        device,
                        response.as_ref().map(|r| r.last_status),
                        response.as_ref().map(|r| stamp(naive(r.received_at))),
                    ])?;
                }
            }
            apply_pending(conn, &format!("message:{id}"), now)?;
            Ok(Outcome::Created)
        }
        Event::CallCreated {
            id,
            from,
            to,
            initiated_at,
            ended_at,
            conference_id,
            sip_call_id,
            devices,
        } => {
            let inserted = conn.prepare_cached(
                "INSERT INTO statistics_calls (id, from_username, from_domain, to_username, to_domain, initiated_at, ended_at, conference_id, sip_call_id, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10) ON CONFLICT (id) DO NOTHING")?
                .execute(params![
                    id, from.username, from.domain, to.username, to.domain,
                    stamp(naive(*initiated_at)), ended_at.map(|t| stamp(naive(t))), conference_id, sip_call_id, now.text,
                ])?;
            if inserted == 0 {
                return Ok(Outcome::Duplicate);
            }
            let seq = conn.last_insert_rowid();
            let mut insert = conn.prepare_cached(
                "INSERT INTO statistics_call_forked_devices (call_seq, call_id, device_id, state) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING")?;
            for (device, state) in devices {
                insert.execute(params![
                    seq,
                    id,
                    device,
                    state.as_ref().map(Value::to_string)
                ])?;
            }
            apply_pending(conn, &format!("call:{id}"), now)?;
            Ok(Outcome::Created)
        }
        Event::ConferenceCreated {
            id,
            created_at,
            ended_at,
            schedule,
        } => {
            let inserted = conn.prepare_cached(
                "INSERT INTO statistics_conferences (id, created_at, ended_at, schedule, stored_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5) ON CONFLICT (id) DO NOTHING")?
                .execute(params![id, stamp(naive(*created_at)), ended_at.map(|t| stamp(naive(t))), schedule, now.text])?;
            if inserted == 0 {
                return Ok(Outcome::Duplicate);
            }
            apply_pending(conn, &format!("conference:{id}"), now)?;
            Ok(Outcome::Created)
        }
        Event::ParticipantEvent {
            conference_id,
            participant,
            at,
            event_type,
        } => {
            conn.prepare_cached(
                "INSERT INTO statistics_conference_participant_events (conference_id, participant_username, participant_domain, type, at, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?
                .execute(params![conference_id, participant.username, participant.domain, wire(event_type), stamp(naive(*at)), now.text])?;
            Ok(Outcome::Created)
        }
        Event::ParticipantDeviceEvent {
            conference_id,
            participant,
            device_id,
            at,
            event_type,
        } => {
            conn.prepare_cached(
                "INSERT INTO statistics_conference_participant_device_events (conference_id, participant_username, participant_domain, device_id, type, at, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")?
                .execute(params![
                    conference_id, participant.username, participant.domain, device_id,
                    wire(event_type), stamp(naive(*at)), now.text,
                ])?;
            Ok(Outcome::Created)
        }
        update => apply_update(conn, update, now, true),
    }
}

/// Applies an update; when its parent is missing and `keep`, stores it for later.
fn apply_update(
    conn: &Connection,
    event: &Event,
    now: &Now,
    keep: bool,
) -> rusqlite::Result<Outcome> {
    let outcome = match event {
        Event::MessageDeviceResponded {
            message_id,
            to,
            device_id,
            response,
        } => {
            // One lookup for the message (its seq) and its device row: no row, no message; NULLs, no device
            // row yet.
            let found: Option<(i64, Option<(i64, NaiveDateTime)>)> = conn.prepare_cached(
                "SELECT m.seq, d.id, d.created_at FROM statistics_messages m LEFT JOIN statistics_message_devices d \
                 ON d.message_seq = m.seq AND d.to_username = ?2 AND d.to_domain = ?3 AND d.device_id = ?4 WHERE m.id = ?1")?
                .query_row(params![message_id, to.username, to.domain, device_id], |row| {
                    let device = match row.get::<_, Option<i64>>(1)? {
                        Some(id) => Some((id, row.get::<_, Stored>(2)?.0)),
                        None => None,
                    };
                    Ok((row.get(0)?, device))
                })
                .optional()?;
            if let Some((seq, existing)) = found {
                let received_at = naive(response.received_at);
                let (id, created_at, created) = match existing {
                    Some((id, created_at)) => {
                        conn.prepare_cached("UPDATE statistics_message_devices SET last_status = ?1, received_at = ?2, updated_at = ?3 WHERE id = ?4")?
                            .execute(params![response.last_status, stamp(received_at), now.text, id])?;
                        (id, created_at, false)
                    }
                    None => {
                        let id: i64 = conn.prepare_cached(
                            "INSERT INTO statistics_message_devices (message_seq, message_id, to_username, to_domain, device_id, last_status, received_at, created_at, updated_at) \
                             VALUES (?8, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7) RETURNING id")?
                            .query_row(params![
                                message_id, to.username, to.domain, device_id,
                                response.last_status, stamp(received_at), now.text, seq,
                            ], |row| row.get(0))?;
                        (id, now.at, true)
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
                    updated_at: now.at,
                };
                Some(Outcome::Upserted {
                    created,
                    row: row.to_json(),
                })
            } else {
                None
            }
        }
        Event::CallDeviceUpdated {
            call_id,
            device_id,
            rang_at,
            invite_terminated,
        } => {
            // One lookup for the call (its seq), its device row and whether the POST forked to that device:
            // no row, no call; a NULL id, no device row yet.
            let found: Option<(Option<CallDeviceRow>, bool, i64)> = conn.prepare_cached(
                "SELECT d.id, d.call_id, d.device_id, d.rang_at, d.invite_terminated_at, d.invite_terminated_state, d.created_at, d.updated_at, \
                 EXISTS (SELECT 1 FROM statistics_call_forked_devices f WHERE f.call_seq = c.seq AND f.device_id = ?2), c.seq \
                 FROM statistics_calls c LEFT JOIN statistics_call_devices d ON d.call_seq = c.seq AND d.device_id = ?2 WHERE c.id = ?1")?
                .query_row(params![call_id, device_id], |row| {
                    let device = match row.get::<_, Option<i64>>(0)? {
                        Some(_) => Some(call_device_row(row)?),
                        None => None,
                    };
                    Ok((device, row.get(8)?, row.get(9)?))
                })
                .optional()?;
            if let Some((existing, forked, seq)) = found {
                // Only the fields sent change the row (a later rang-only PATCH keeps the termination).
                let rang = rang_at.map(naive);
                let term_at = invite_terminated.as_ref().map(|t| naive(t.at));
                let term_state = invite_terminated
                    .as_ref()
                    .map(|t| t.state.as_str().to_owned());
                let (row, created) = match existing {
                    Some(old) => {
                        let row = CallDeviceRow {
                            rang_at: rang.or(old.rang_at),
                            invite_terminated_at: term_at.or(old.invite_terminated_at),
                            invite_terminated_state: term_state
                                .or(old.invite_terminated_state.clone()),
                            updated_at: now.at,
                            ..old
                        };
                        conn.prepare_cached("UPDATE statistics_call_devices SET rang_at = ?1, invite_terminated_at = ?2, invite_terminated_state = ?3, updated_at = ?4 WHERE id = ?5")?
                            .execute(params![
                                row.rang_at.map(stamp), row.invite_terminated_at.map(stamp), row.invite_terminated_state,
                                now.text, row.id,
                            ])?;
                        (row, false)
                    }
                    None => {
                        let id: i64 = conn.prepare_cached(
                            "INSERT INTO statistics_call_devices (call_seq, call_id, device_id, rang_at, invite_terminated_at, invite_terminated_state, created_at, updated_at) \
                             VALUES (?7, ?1, ?2, ?3, ?4, ?5, ?6, ?6) RETURNING id")?
                            .query_row(params![call_id, device_id, rang.map(stamp), term_at.map(stamp), term_state, now.text, seq], |row| row.get(0))?;
                        let row = CallDeviceRow {
                            id: Some(id),
                            call_id: call_id.clone(),
                            device_id: device_id.clone(),
                            rang_at: rang,
                            invite_terminated_at: term_at,
                            invite_terminated_state: term_state,
                            created_at: now.at,
                            updated_at: now.at,
                        };
                        (row, true)
                    }
                };
                Some(Outcome::Upserted {
                    created,
                    row: row.to_json(forked),
                })
            } else {
                None
            }
        }
        Event::CallEnded { call_id, ended_at } => {
            let updated = conn
                .prepare_cached(
                    "UPDATE statistics_calls SET ended_at = ?1, updated_at = ?2 WHERE id = ?3",
                )?
                .execute(params![stamp(naive(*ended_at)), now.text, call_id])?;
            if updated == 0 {
                None
            } else {
                let call = call_json(conn, call_id)?;
                Some(Outcome::Ended(call.unwrap_or(Value::Null)))
            }
        }
        Event::ConferenceEnded {
            conference_id,
            ended_at,
        } => {
            let updated = conn.prepare_cached("UPDATE statistics_conferences SET ended_at = ?1, updated_at = ?2 WHERE id = ?3")?
                .execute(params![stamp(naive(*ended_at)), now.text, conference_id])?;
            if updated == 0 {
                None
            } else {
                Some(Outcome::Ended(
                    conference(conn, conference_id)?.unwrap_or(Value::Null),
                ))
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
            conn.prepare_cached("INSERT INTO statistics_pending_updates (entity_id, event, created_at) VALUES (?1, ?2, ?3)")?
                .execute(params![key, text, now.text])?;
            now.pending.set(true);
            metrics::counter!(crate::metrics::PENDING_KEPT, "kind" => event.kind()).increment(1);
        }
    }
    Ok(match event {
        Event::CallEnded { .. } | Event::ConferenceEnded { .. } => Outcome::NotFound,
        _ => Outcome::UnknownParent,
    })
}

/// Applies, in arrival order, the updates that were waiting for `key`'s parent.
fn apply_pending(conn: &Connection, key: &str, now: &Now) -> rusqlite::Result<()> {
    if !now.pending.get() {
        return Ok(());
    }
    let waiting: Vec<(i64, String)> = conn
        .prepare_cached(
            "SELECT id, event FROM statistics_pending_updates WHERE entity_id = ?1 ORDER BY id",
        )?
        .query_map(params![key], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    if waiting.is_empty() {
        return Ok(());
    }
    for (_, text) in &waiting {
        match serde_json::from_str::<Event>(text) {
            Ok(event) => {
                apply_update(conn, &event, now, false)?;
                metrics::counter!(crate::metrics::PENDING_APPLIED).increment(1);
            }
            Err(error) => tracing::warn!(%error, key, "unreadable pending update dropped"),
        }
    }
    conn.prepare_cached("DELETE FROM statistics_pending_updates WHERE entity_id = ?1")?
        .execute(params![key])?;
    Ok(())
}

/// A call with every device, or None (the read side's query for one call).
fn call_json(conn: &Connection, id: &str) -> rusqlite::Result<Option<Value>> {
    let call = conn
        .prepare_cached(
            "SELECT id, from_username, from_domain, to_username, to_domain, initiated_at, ended_at, conference_id, sip_call_id, created_at, updated_at, seq \
             FROM statistics_calls WHERE id = ?1",
        )?
        .query_row(params![id], |row| {
            let seq: i64 = row.get(11)?;
            let call = CallRow {
                id: row.get(0)?,
                from_username: row.get(1)?,
                from_domain: row.get(2)?,
                to_username: row.get(3)?,
                to_domain: row.get(4)?,
                initiated_at: row.get::<_, Stored>(5)?.0,
                ended_at: row.get::<_, Option<Stored>>(6)?.map(|t| t.0),
                conference_id: row.get(7)?,
                sip_call_id: row.get(8)?,
                created_at: row.get::<_, Stored>(9)?.0,
                updated_at: row.get::<_, Stored>(10)?.0,
            };
            Ok((call, seq))
        })
        .optional()?;
    let Some((call, seq)) = call else {
        return Ok(None);
    };
    let rows: Vec<CallDeviceRow> = conn
        .prepare_cached(
            "SELECT id, call_id, device_id, rang_at, invite_terminated_at, invite_terminated_state, created_at, updated_at \
             FROM statistics_call_devices WHERE call_seq = ?1 ORDER BY id",
        )?
        .query_map(params![seq], call_device_row)?
        .collect::<Result<_, _>>()?;
    let forked: Vec<(String, String)> = conn
        .prepare_cached(
            "SELECT call_id, device_id FROM statistics_call_forked_devices WHERE call_seq = ?1 ORDER BY device_id",
        )?
        .query_map(params![seq], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    Ok(Some(call.to_json(call.devices(&rows, &forked))))
}

/// A `statistics_call_devices` row selected with the columns of `CALL_DEVICE_COLUMNS`, in order.
fn call_device_row(row: &Row<'_>) -> rusqlite::Result<CallDeviceRow> {
    Ok(CallDeviceRow {
        id: row.get(0)?,
        call_id: row.get(1)?,
        device_id: row.get(2)?,
        rang_at: row.get::<_, Option<Stored>>(3)?.map(|t| t.0),
        invite_terminated_at: row.get::<_, Option<Stored>>(4)?.map(|t| t.0),
        invite_terminated_state: row.get(5)?,
        created_at: row.get::<_, Stored>(6)?.0,
        updated_at: row.get::<_, Stored>(7)?.0,
    })
}

/// A conference with its events (the read side's queries), None when nothing is known of it.
fn conference(conn: &Connection, id: &str) -> rusqlite::Result<Option<Value>> {
    let row: Option<ConferenceRow> = conn
        .prepare_cached(
            "SELECT created_at, ended_at, schedule, updated_at FROM statistics_conferences WHERE id = ?1",
        )?
        .query_row(params![id], |row| {
            Ok((
                row.get::<_, Stored>(0)?.0,
                row.get::<_, Option<Stored>>(1)?.map(|t| t.0),
                row.get(2)?,
                row.get::<_, Stored>(3)?.0,
            ))
        })
        .optional()?;
    let participants: Vec<ParticipantRow> = conn
        .prepare_cached(
            "SELECT participant_username, participant_domain, type, at FROM statistics_conference_participant_events \
             WHERE conference_id = ?1 ORDER BY at, id",
        )?
        .query_map(params![id], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get::<_, Stored>(3)?.0))
        })?
        .collect::<Result<_, _>>()?;
    let devices: Vec<ParticipantDeviceRow> = conn
        .prepare_cached(
            "SELECT participant_username, participant_domain, device_id, type, at FROM statistics_conference_participant_device_events \
             WHERE conference_id = ?1 ORDER BY at, id",
        )?
        .query_map(params![id], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get::<_, Stored>(4)?.0))
        })?
        .collect::<Result<_, _>>()?;
    Ok(conference_json(id, row, &participants, &devices))
}

/// A timestamp as sqlx-sqlite stores it: `%F %T%.f` (`2025-06-17 09:03:00`, a fraction only when non-zero).
#[derive(Clone, Copy)]
enum Stamp {
    /// Whole seconds in years 0–9999 (every value the store writes), formatted without chrono's formatter.
    Seconds([u8; 19]),
    /// Anything else, formatted by chrono exactly as sqlx does (kept inline: never reached in practice).
    Other(NaiveDateTime),
}

fn stamp(at: NaiveDateTime) -> Stamp {
    if at.nanosecond() != 0 {
        return Stamp::Other(at);
    }
    flexiapi_core::time::digits(&at, *b"0000-00-00 00:00:00")
        .map_or(Stamp::Other(at), Stamp::Seconds)
}

impl ToSql for Stamp {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Stamp::Seconds(text) => ToSqlOutput::Borrowed(ValueRef::Text(text)),
            Stamp::Other(at) => ToSqlOutput::from(at.format("%F %T%.f").to_string()),
        })
    }
}

/// A stored timestamp read back (the forms sqlx writes: `%F %T%.f`, or `%FT%T%.f`).
struct Stored(NaiveDateTime);

impl FromSql for Stored {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let text = value.as_str()?;
        if let Some(at) = whole_seconds(text.as_bytes()) {
            return Ok(Stored(at));
        }
        NaiveDateTime::parse_from_str(text, "%F %T%.f")
            .or_else(|_| NaiveDateTime::parse_from_str(text, "%FT%T%.f"))
            .map(Stored)
            .map_err(|e| FromSqlError::Other(Box::new(e)))
    }
}

/// `YYYY-MM-DD HH:MM:SS` (what [`stamp`] writes) without chrono's format parser; None for anything else.
fn whole_seconds(text: &[u8]) -> Option<NaiveDateTime> {
    if text.len() != 19 || text[10] != b' ' {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<u32> {
        text[range].iter().try_fold(0, |n, b| {
            b.is_ascii_digit().then(|| n * 10 + u32::from(b - b'0'))
        })
    };
    let separators = [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')];
    if separators.iter().any(|(i, c)| text[*i] != *c) {
        return None;
    }
    chrono::NaiveDate::from_ymd_opt(number(0..4)? as i32, number(5..7)?, number(8..10)?)?
        .and_hms_opt(number(11..13)?, number(14..16)?, number(17..19)?)
}

#[cfg(test)]
mod tests {
    use sqlx::Connection as _;

    use super::*;

    fn text(at: NaiveDateTime) -> String {
        match stamp(at).to_sql().unwrap() {
            ToSqlOutput::Borrowed(ValueRef::Text(bytes)) => {
                String::from_utf8(bytes.to_vec()).unwrap()
            }
            ToSqlOutput::Owned(rusqlite::types::Value::Text(text)) => text,
            _ => panic!("a timestamp binds as text"),
        }
    }

    /// A new database file in `dir` (as the migrations leave it: existing) and a writer-side connection to it.
    fn database(dir: &tempfile::TempDir) -> (PathBuf, Connection) {
        let path = dir.path().join("stats.db");
        Connection::open(&path).unwrap();
        let conn = connect(&path).unwrap();
        (path, conn)
    }

    #[test]
    fn the_writer_connection_has_the_pool_settings() {
        let dir = tempfile::tempdir().unwrap();
        let (_, conn) = database(&dir);
        let value = |name: &str| -> String {
            conn.pragma_query_value(None, name, |row| {
                row.get::<_, rusqlite::types::Value>(0)
                    .map(|v| format!("{v:?}"))
            })
            .unwrap()
        };
        assert_eq!(value("journal_mode"), r#"Text("wal")"#);
        // NORMAL (1): the commit does not fsync; the sync thread does before any reply.
        assert_eq!(value("synchronous"), "Integer(1)");
        assert_eq!(value("wal_autocheckpoint"), "Integer(0)");
        assert_eq!(value("foreign_keys"), "Integer(1)");
        assert_eq!(value("busy_timeout"), "Integer(10000)");
        // No create: the store only opens a database the migrations made.
        assert!(connect(&dir.path().join("missing.db")).is_err());
    }

    #[test]
    fn a_failed_sync_acknowledges_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (syncs, jobs) = mpsc::channel();
        let (pokes, poked) = mpsc::sync_channel(1);
        let missing = dir.path().join("gone.db-wal");
        let syncer = std::thread::spawn(move || sync_loop(&missing, jobs, pokes, Duration::ZERO));
        let (first, first_done) = oneshot::channel();
        let (second, second_done) = oneshot::channel();
        syncs.send(first).unwrap();
        syncs.send(second).unwrap();
        drop(syncs);
        syncer.join().unwrap();
        for done in [first_done, second_done] {
            let result = done.blocking_recv().expect("every commit gets an answer");
            assert!(
                matches!(result, Err(IngestError::Durability(_))),
                "{result:?}"
            );
        }
        // The checkpointer is still poked: the commits are in the WAL whatever the sync said.
        assert!(poked.try_recv().is_ok());

        // And a WAL that exists is synced: the answer is Ok.
        let (path, conn) = database(&dir);
        conn.execute_batch("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1);")
            .unwrap();
        let (syncs, jobs) = mpsc::channel();
        let (pokes, _poked) = mpsc::sync_channel(1);
        let wal = wal_path(&path);
        let syncer =
            std::thread::spawn(move || sync_loop(&wal, jobs, pokes, Duration::from_micros(300)));
        let (done, synced) = oneshot::channel();
        syncs.send(done).unwrap();
        drop(syncs);
        syncer.join().unwrap();
        assert!(synced.blocking_recv().unwrap().is_ok());
    }

    /// Runs the checkpoint thread over `path` for one poke and until it ends; gives what it reported.
    fn checkpoint_once(path: &Path) -> i64 {
        let (pokes, poked) = mpsc::sync_channel(1);
        let checkpoints = connect(path).unwrap();
        let wal = Arc::new(WalLength::new());
        // Not a length any checkpoint here returns: proves that the thread reported.
        wal.report(-1);
        let seen = wal.clone();
        let checkpointer = std::thread::spawn(move || checkpoint_loop(checkpoints, poked, &seen));
        pokes.send(()).unwrap();
        drop(pokes);
        checkpointer.join().unwrap();
        wal.frames.load(Ordering::Relaxed)
    }

    /// The WAL's length in frames (a checkpoint that copies nothing when the WAL is already copied).
    fn wal_frames(conn: &Connection) -> i64 {
        checkpoint(conn, "PASSIVE", "background").unwrap().0
    }

    #[test]
    fn the_checkpoint_thread_folds_the_wal_into_the_database_and_lets_it_start_over() {
        let dir = tempfile::tempdir().unwrap();
        let (path, conn) = database(&dir);
        conn.execute_batch(
            "CREATE TABLE t (x TEXT); \
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000) \
             INSERT INTO t SELECT hex(randomblob(500)) FROM n;",
        )
        .unwrap();
        let size = || std::fs::metadata(&path).unwrap().len();
        // No auto-checkpoint: everything is still in the WAL.
        let before = size();
        assert!(before < 100_000, "{before} bytes before any checkpoint");
        // 2 000 rows of 1 000 characters now live in the database file itself, and with the whole WAL copied
        // the thread tells the writer there is nothing to start over.
        assert_eq!(checkpoint_once(&path), 0);
        let after = size();
        assert!(after > 2_000_000, "{after} bytes after the checkpoint");
        // SQLite starts the WAL over at the next transaction, without any checkpoint from the writer.
        let full = wal_frames(&conn);
        assert!(full > 500, "{full} frames before the next transaction");
        conn.execute("INSERT INTO t VALUES ('x')", []).unwrap();
        let restarted = wal_frames(&conn);
        assert!(restarted < 10, "{restarted} frames after it");
        let count: i64 = conn
            .query_row("SELECT COUNT(*) FROM t", [], |row| row.get(0))
            .unwrap();
        assert_eq!(count, 2001);
    }

    #[test]
    fn a_wal_the_checkpoint_thread_cannot_copy_whole_is_reported_to_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let (path, conn) = database(&dir);
        conn.execute_batch("CREATE TABLE t (x TEXT); INSERT INTO t VALUES ('a');")
            .unwrap();
        // A reader's snapshot: commits after it cannot be copied while it lasts.
        let reader = connect(&path).unwrap();
        reader.execute_batch("BEGIN").unwrap();
        let seen: i64 = reader
            .query_row("SELECT COUNT(*) FROM t", [], |row| row.get(0))
            .unwrap();
        assert_eq!(seen, 1);
        conn.execute_batch(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200) \
             INSERT INTO t SELECT hex(randomblob(500)) FROM n;",
        )
        .unwrap();
        // The catch-up passes give up (they do not spin) and the writer hears the WAL's real length.
        let reported = checkpoint_once(&path);
        assert!(reported > 50, "{reported} frames reported");
        assert_eq!(reported, wal_frames(&conn));
        reader.execute_batch("COMMIT").unwrap();
    }

    #[test]
    fn the_writer_restarts_the_wal_when_long_or_when_the_checkpointer_is_starved() {
        let wal = WalLength::new();
        assert!(!wal.restart_due(), "a new WAL");
        wal.report(WAL_RESTART_FRAMES);
        assert!(!wal.restart_due(), "at the bound, not past it");
        wal.report(WAL_RESTART_FRAMES + 1);
        assert!(wal.restart_due(), "past the bound");
        wal.report(0);
        assert!(!wal.restart_due(), "just started over");
        // No report for longer than the checkpoint thread may stay silent: the writer checkpoints itself.
        let silent = WalLength {
            origin: Instant::now() - CHECKPOINTER_STARVED - Duration::from_millis(100),
            ..WalLength::new()
        };
        assert!(silent.restart_due(), "starved checkpointer");
        silent.report(10);
        assert!(!silent.restart_due(), "it reported again");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_checkpoint_thread_yields_the_core_to_the_others() {
        use thread_priority::unix::{
            thread_schedule_policy, NormalThreadSchedulePolicy, ThreadSchedulePolicy,
        };
        let policy = std::thread::spawn(|| {
            lower_priority();
            thread_schedule_policy().unwrap()
        })
        .join()
        .unwrap();
        assert_eq!(
            policy,
            ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle)
        );
        // Only the thread that asked: the caller keeps its policy.
        assert_ne!(thread_schedule_policy().unwrap(), policy);
    }

    #[tokio::test]
    async fn stamps_are_the_text_sqlx_writes_and_reads() {
        // The read side (sqlx) must parse what this side writes, and rows from both must compare as text.
        let mut sqlx = sqlx::SqliteConnection::connect("sqlite::memory:")
            .await
            .unwrap();
        let mut instants: Vec<NaiveDateTime> = [
            0_i64,
            1_750_150_980,
            253_402_300_799,
            -62_167_219_200,
            951_782_400,
        ]
        .into_iter()
        .map(naive)
        .collect();
        instants.push(naive(1_750_150_980) + chrono::Duration::milliseconds(250));
        for at in instants {
            let encoded: String = sqlx::query_scalar("SELECT ?1")
                .bind(at)
                .fetch_one(&mut sqlx)
                .await
                .unwrap();
            assert_eq!(text(at), encoded, "{at}");
            let decoded: NaiveDateTime = sqlx::query_scalar("SELECT ?1")
                .bind(text(at))
                .fetch_one(&mut sqlx)
                .await
                .unwrap();
            assert_eq!(decoded, at);
            let back = Stored::column_result(ValueRef::Text(encoded.as_bytes())).unwrap();
            assert_eq!(back.0, at);
        }
        assert!(Stored::column_result(ValueRef::Text(b"yesterday")).is_err());
        // The fast path refuses what chrono refuses, and leaves other forms to chrono.
        assert!(Stored::column_result(ValueRef::Text(b"2025-02-30 10:00:00")).is_err());
        assert!(Stored::column_result(ValueRef::Text(b"2025-06-17 24:00:00")).is_err());
        assert!(Stored::column_result(ValueRef::Text(b"2025-06-17 1a:00:00")).is_err());
        let iso = Stored::column_result(ValueRef::Text(b"2025-06-17T09:03:00")).unwrap();
        assert_eq!(iso.0, naive(1_750_150_980));
    }
}
