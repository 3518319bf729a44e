//! `flexiapi sink`: Kafka → ClickHouse.
//!
//! The loop: consume events into a batch bounded by size (`FLEXIAPI_SINK_BATCH_MAX`) and time
//! (`FLEXIAPI_SINK_BATCH_MS`, counted from the batch's first event) → turn them into rows per table
//! ([`crate::clickhouse::rows`]) → insert every table in RowBinary (`async_insert=0` where the server knows
//! the setting, so an accepted insert is written) → only then commit the offsets that follow the batch.
//! Consuming and inserting overlap: a writer task inserts one batch while the next one is filled.
//!
//! Failures: an insert that fails is retried with exponential back-off from the rows the sink kept (it does
//! not use the crate's `Inserter`, which drops its buffer on error); nothing is committed before every table
//! took its rows. A crash (kill -9) between insert and commit replays the batch: each row carries its Kafka
//! partition and offset, so the ReplacingMergeTree tables collapse the replayed copies and the reads use
//! `FINAL` — no duplicate in any query result. An event that is not a valid envelope is counted and skipped
//! (it can never become valid, and blocking the partition on it would stop the whole pipeline).

pub mod metrics;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clickhouse::{Client, Row};
use flexiapi_core::Config;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{ClientContext, Offset, Statistics, TopicPartitionList};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::clickhouse::rows::{Position, Rows};
use crate::clickhouse::{self as ch, backend};
use crate::error::IngestError;
use crate::event::Envelope;
use crate::kafka;

/// Longest pause between two insert attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long a stopping sink keeps writing the batches it holds (under the 10 s a container runtime gives
/// by default before SIGKILL); what is still unwritten then is replayed at the next start.
const STOP_GRACE: Duration = Duration::from_secs(8);

/// Publishes the consumer lag librdkafka reports in its statistics.
struct SinkContext;

impl ClientContext for SinkContext {
    fn stats(&self, statistics: Statistics) {
        for (topic, detail) in &statistics.topics {
            for (partition, p) in &detail.partitions {
                if *partition >= 0 && p.consumer_lag >= 0 {
                    metrics::lag(topic, *partition, p.consumer_lag);
                }
            }
        }
    }
}

impl ConsumerContext for SinkContext {}

/// Runs the sink until `shutdown` resolves: the batch in hand is then written and committed before returning.
pub async fn run(config: &Config, shutdown: impl Future<Output = ()>) -> Result<(), IngestError> {
    let brokers = config
        .kafka_brokers
        .as_deref()
        .ok_or_else(|| IngestError::Setup("flexiapi sink needs FLEXIAPI_KAFKA_BROKERS".into()))?;
    let client = ch::client(config)?;
    let writer = Writer::new(client).await?;
    kafka::ensure_topic(brokers, &config.kafka_topic, config.scale.kafka_partitions).await?;
    let consumer: StreamConsumer<SinkContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", &config.kafka_group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        // A ClickHouse outage keeps the sink retrying without polling: stay in the group meanwhile.
        .set("max.poll.interval.ms", "3600000")
        // Heartbeats come from librdkafka's own thread (a long insert does not miss them); a short session
        // lets a restarted sink take over quickly after a crash.
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "3000")
        .set("statistics.interval.ms", "5000")
        // Fewer, fuller fetches once caught up: a broker may hold a fetch until it has `min.bytes` (with the
        // default of 1 byte a sink that keeps up asks again for every few events); the wait bounds the lag.
        // Every fetch costs the broker a read of each partition (Tansu reads again during the wait), and a
        // caught-up sink's fetches compete with the ingest's produces: with 500 ms rather than 100 ms the
        // benchmark's half-rate phase was served in 6 runs of 11 instead of 1 of 5 (README, Benchmarks).
        .set("fetch.min.bytes", "262144")
        .set(
            "fetch.wait.max.ms",
            config.scale.sink_fetch_wait.as_millis().to_string(),
        )
        // With the longer wait, a backlog still drains in few fetches: up to 4 MiB per partition each.
        .set("max.partition.fetch.bytes", "4194304")
        .create_with_context(SinkContext)
        .map_err(|e| IngestError::Setup(format!("kafka consumer: {e}")))?;
    consumer
        .subscribe(&[&config.kafka_topic])
        .map_err(|e| IngestError::Setup(format!("kafka subscribe: {e}")))?;
    tracing::info!(topic = %config.kafka_topic, group = %config.kafka_group, "sink consuming");
    let consumer = Arc::new(consumer);
    // Pipelined: the writer inserts one batch while the loop below consumes the next. The channel holds one
    // batch, so at most three are in memory (being inserted, queued, being filled).
    let (batches, queued) = mpsc::channel::<Batch>(1);
    let mut writing = tokio::spawn(write_batches(
        writer,
        consumer.clone(),
        config.kafka_topic.clone(),
        queued,
    ));
    let batch_max = config.scale.sink_batch_max;
    let batch_time = config.scale.sink_batch_time;
    tokio::pin!(shutdown);
    let mut stopping = false;
    while !stopping {
        let mut batch = Batch::default();
        // Wait for the first event (or the end).
        tokio::select! {
            message = consumer.recv() => batch.take(message, &config.kafka_topic),
            _ = &mut shutdown => break,
        }
        let deadline = tokio::time::Instant::now() + batch_time;
        while batch.events < batch_max {
            tokio::select! {
                message = consumer.recv() => batch.take(message, &config.kafka_topic),
                _ = tokio::time::sleep_until(deadline) => break,
                _ = &mut shutdown => { stopping = true; break; }
            }
        }
        if batch.offsets.is_empty() {
            continue;
        }
        // Waits while the writer is busy with the batch before (back-pressure on consumption).
        let sent = if stopping {
            // Never wait for room here: a writer retrying against a ClickHouse that is down would hold the
            // stop forever. A batch left behind is not committed and is replayed at the next start.
            match batches.try_send(batch) {
                Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => true,
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        } else {
            tokio::select! {
                sent = batches.send(batch) => sent.is_ok(),
                // Dropped uncommitted: replayed at the next start.
                _ = &mut shutdown => { stopping = true; true }
            }
        };
        if !sent {
            // The writer ended on its own: only an error ends it.
            break;
        }
    }
    drop(batches);
    // What was handed over is written and committed; while ClickHouse is down, leave without committing
    // (those batches are replayed at the next start).
    match tokio::time::timeout(STOP_GRACE, &mut writing).await {
        Ok(Ok(result)) => result?,
        Ok(Err(e)) => return Err(IngestError::Backend(format!("sink writer task: {e}"))),
        Err(_) => {
            writing.abort();
            tracing::warn!("stopping before the last batches were written; they will be replayed");
            return Ok(());
        }
    }
    tracing::info!("sink stopped");
    Ok(())
}

/// Writes the batches in the order they were consumed and commits each one's offsets once ClickHouse took
/// all its rows.
async fn write_batches(
    writer: Writer,
    consumer: Arc<StreamConsumer<SinkContext>>,
    topic: String,
    mut queued: mpsc::Receiver<Batch>,
) -> Result<(), IngestError> {
    while let Some(batch) = queued.recv().await {
        writer.write_until_done(&batch.rows).await?;
        commit(&consumer, &topic, &batch.offsets);
    }
    Ok(())
}

fn commit<C: ConsumerContext + 'static>(
    consumer: &StreamConsumer<C>,
    topic: &str,
    offsets: &HashMap<i32, i64>,
) {
    let mut list = TopicPartitionList::new();
    for (partition, offset) in offsets {
        // The committed offset is the next one to read.
        if let Err(e) = list.add_partition_offset(topic, *partition, Offset::Offset(offset + 1)) {
            tracing::error!(error = %e, "cannot build the offset list");
            return;
        }
    }
    // A failed commit (rebalance, broker restart) only means this batch may be replayed: rows collapse.
    if let Err(e) = consumer.commit(&list, CommitMode::Sync) {
        metrics::commit_failed();
        tracing::warn!(error = %e, "offset commit failed; the batch may be replayed");
    }
}

/// Events taken from Kafka but not yet committed.
#[derive(Default)]
struct Batch {
    rows: Rows,
    /// Highest offset seen per partition.
    offsets: HashMap<i32, i64>,
    events: usize,
}

impl Batch {
    fn take<M: Message>(&mut self, message: Result<M, rdkafka::error::KafkaError>, topic: &str) {
        let message = match message {
            Ok(message) => message,
            Err(e) => {
                // Transient (broker restart, rebalance): librdkafka reconnects by itself.
                tracing::warn!(error = %e, "kafka consume error");
                metrics::consume_error();
                return;
            }
        };
        if message.topic() != topic {
            return;
        }
        let at = Position {
            partition: message.partition(),
            offset: message.offset(),
        };
        let entry = self.offsets.entry(at.partition).or_insert(at.offset);
        *entry = (*entry).max(at.offset);
        self.events += 1;
        match message.payload().map(serde_json::from_slice::<Envelope>) {
            Some(Ok(envelope)) => self.rows.push(&envelope, at),
            other => {
                metrics::invalid_event();
                tracing::error!(
                    partition = at.partition,
                    offset = at.offset,
                    error = ?other.and_then(|r| r.err()).map(|e| e.to_string()),
                    "skipping a message that is not a statistics event"
                );
            }
        }
    }
}

/// Inserts rows into ClickHouse, retrying until every table took them.
pub struct Writer {
    client: Client,
    async_insert_setting: bool,
}

impl Writer {
    /// A writer on the statistics database (detects what the server supports).
    pub async fn new(client: Client) -> Result<Writer, IngestError> {
        // The server may be down when the sink starts: wait for it like for any insert.
        let mut backoff = Duration::from_millis(100);
        let async_insert_setting = loop {
            match ch::knows_async_insert(&client).await {
                Ok(known) => break known,
                Err(e) => {
                    tracing::warn!(error = %e, "ClickHouse not reachable yet; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        };
        Ok(Writer {
            client,
            async_insert_setting,
        })
    }

    /// Inserts every table of `rows`, retrying with back-off until all succeed.
    pub async fn write_until_done(&self, rows: &Rows) -> Result<(), IngestError> {
        let mut backoff = Duration::from_millis(100);
        loop {
            let started = Instant::now();
            match self.write(rows).await {
                Ok(()) => {
                    metrics::batch_written(rows.len(), started.elapsed());
                    return Ok(());
                }
                Err(e) => {
                    metrics::retry();
                    tracing::warn!(error = %e, rows = rows.len(), retry_in_ms = backoff.as_millis() as u64, "ClickHouse insert failed; retrying the kept batch");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// One attempt: every non-empty table at once. A table already written is written again on the next
    /// attempt; its rows are identical and collapse.
    pub async fn write(&self, rows: &Rows) -> Result<(), IngestError> {
        // The tables are independent: ClickHouse takes them in parallel.
        tokio::try_join!(
            self.table("calls", &rows.calls),
            self.table("call_ends", &rows.call_ends),
            self.table("call_device_events", &rows.call_devices),
            self.table("messages", &rows.messages),
            self.table("message_device_responses", &rows.message_responses),
            self.table("conferences", &rows.conferences),
            self.table("conference_ends", &rows.conference_ends),
            self.table("participant_events", &rows.participant_events),
        )?;
        Ok(())
    }

    async fn table<T: Row + Serialize>(&self, name: &str, rows: &[T]) -> Result<(), IngestError> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut insert = self
            .client
            .insert::<T>(name)
            .map_err(backend)?
            .with_timeouts(Some(Duration::from_secs(30)), Some(Duration::from_secs(60)));
        if self.async_insert_setting {
            insert = insert.with_option("async_insert", "0");
        }
        for row in rows {
            insert.write(row).await.map_err(backend)?;
        }
        insert.end().await.map_err(backend)?;
        metrics::rows(name, rows.len());
        Ok(())
    }
}
