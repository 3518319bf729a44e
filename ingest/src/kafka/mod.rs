//! Scale mode's event log: `flexiapi ingest` appends every accepted event to Kafka.
//!
//! [`KafkaLog`] implements [`EventLog`]: the event is wrapped in an [`Envelope`] (acknowledgement time in µs),
//! serialised as JSON and produced with the entity id as key (one call's, message's or conference's events
//! land in one partition, in order) by an idempotent producer with `acks=all`; the reply is sent only once
//! the broker confirmed the delivery. The statuses that depend on earlier events come from the [`index`],
//! rebuilt at start from the topic's recent events ([`rebuild`]). The producer's delivery reports apply each
//! event to the index, so it follows the log's order, the one a rebuild replays.
//!
//! Several ingest nodes: each node's index knows the events it appended itself plus, as of its start, those
//! of the others. Flexisip keeps one connection per process and sends one entity's events one at a time, so
//! with sticky routing (one Flexisip process → one node) every status is the single-node one. When one
//! entity's events reach different nodes, every event is still appended and stored; only a status may differ
//! (e.g. 400 for a device update whose call was posted through another node since this one started).

pub mod index;

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use flexiapi_core::Config;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::oneshot;

use crate::error::IngestError;
use crate::event::{Envelope, Event};
use crate::log::{BoxFuture, EventLog, Outcome};

use index::Index;

fn kafka_error(what: &str) -> impl Fn(rdkafka::error::KafkaError) -> IngestError + '_ {
    move |e| IngestError::Backend(format!("kafka {what}: {e}"))
}

/// Creates the topic when it does not exist yet.
pub async fn ensure_topic(brokers: &str, topic: &str, partitions: i32) -> Result<(), IngestError> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .map_err(|e| IngestError::Setup(format!("kafka admin: {e}")))?;
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &options,
        )
        .await
        .map_err(|e| IngestError::Setup(format!("kafka create topic {topic}: {e}")))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(IngestError::Setup(format!(
                    "kafka create topic {name}: {code}"
                )))
            }
        }
    }
    Ok(())
}

/// What a delivery report needs: the event (for the index) and who waits for the outcome.
struct Pending {
    envelope: Envelope,
    reply: oneshot::Sender<Result<Outcome, IngestError>>,
}

/// The producer's delivery reports. Each applies its event to the index, then answers the request: the reports
/// of a partition come in offset order, so one entity's events reach the index in the order the log holds them
/// (the order a rebuild replays), whatever the order the requests' tasks run in; and a request dropped
/// meanwhile (its client gone) still has its delivered event applied.
struct Deliveries {
    index: Arc<Mutex<Index>>,
    /// Set when a report shows the producer can deliver nothing more (fenced: a broker that came back after
    /// deliveries timed out gave its producer id away); the next request replaces it.
    fenced: AtomicBool,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = Box<Pending>;

    fn delivery(&self, result: &DeliveryResult<'_>, pending: Box<Pending>) {
        let Pending { envelope, reply } = *pending;
        let outcome = match result {
            Ok(_) => {
                metrics::counter!(crate::metrics::EVENTS_APPENDED, "kind" => envelope.event.kind())
                    .increment(1);
                Ok(lock(&self.index).apply(&envelope))
            }
            Err((e, _)) => {
                if e.rdkafka_error_code() == Some(RDKafkaErrorCode::ProducerFenced) {
                    self.fenced.store(true, Ordering::Relaxed);
                }
                tracing::warn!(error = %e, "kafka delivery failed: answering 503");
                lock(&self.index).abandon(&envelope.event);
                Err(IngestError::Unavailable(format!("kafka delivery: {e}")))
            }
        };
        // The request may be gone; its event is applied all the same.
        let _ = reply.send(outcome);
    }
}

/// A create waiting for room in the producer's queue: forgotten (`abandon`) if the request is dropped meanwhile.
struct Unqueued<'a> {
    index: &'a Mutex<Index>,
    event: Option<Event>,
}

impl Drop for Unqueued<'_> {
    fn drop(&mut self) {
        if let Some(event) = &self.event {
            lock(self.index).abandon(event);
        }
    }
}

/// The Kafka event log of `flexiapi ingest`.
pub struct KafkaLog {
    /// Replaced whole when librdkafka declares it failed for good ([`KafkaLog::live_producer`]).
    producer: RwLock<ThreadedProducer<Deliveries>>,
    brokers: String,
    topic: Arc<str>,
    index: Arc<Mutex<Index>>,
    last_ack_us: AtomicI64,
}

impl KafkaLog {
    /// Connects, creates the topic when missing and rebuilds the index from the topic's recent events.
    pub async fn start(config: &Config) -> Result<Arc<KafkaLog>, IngestError> {
        let brokers = config
            .kafka_brokers
            .clone()
            .ok_or_else(|| IngestError::Setup("FLEXIAPI_KAFKA_BROKERS is not set".into()))?;
        ensure_topic(&brokers, &config.kafka_topic, config.scale.kafka_partitions).await?;
        let index = Arc::new(Mutex::new(Index::new(1)));
        let producer = new_producer(&brokers, &index)?;
        let topic = config.kafka_topic.clone();
        let capacity = config.scale.index_capacity;
        let window = config.scale.index_window;
        let rebuilt =
            tokio::task::spawn_blocking(move || rebuild(&brokers, &topic, capacity, window))
                .await
                .map_err(|e| IngestError::Setup(format!("index rebuild: {e}")))??;
        tracing::info!(
            entities = rebuilt.len(),
            "ingest index rebuilt from the topic"
        );
        // Nothing was produced yet: the placeholder the delivery reports share is replaced whole.
        *lock(&index) = rebuilt;
        Ok(Arc::new(KafkaLog {
            producer: RwLock::new(producer),
            brokers: config.kafka_brokers.clone().unwrap_or_default(),
            topic: Arc::from(config.kafka_topic.as_str()),
            index,
            last_ack_us: AtomicI64::new(0),
        }))
    }

    /// The producer, or a new one when the current one failed for good: fenced (seen with Tansu when it comes
    /// back after deliveries timed out) or a librdkafka fatal error. Only a new producer gets past these; without
    /// this every later request would be answered 503 until a restart.
    fn live_producer(&self) -> Result<ThreadedProducer<Deliveries>, IngestError> {
        let current = self
            .producer
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        if !failed(&current) {
            return Ok(current);
        }
        drop(current);
        let mut slot = self
            .producer
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Another request may have replaced it meanwhile.
        if failed(&slot) {
            tracing::warn!(
                fatal = ?slot.client().fatal_error(),
                "kafka producer failed for good: starting a new one"
            );
            let failed = std::mem::replace(&mut *slot, new_producer(&self.brokers, &self.index)?);
            metrics::counter!(crate::metrics::PRODUCER_RESTARTS).increment(1);
            // Its drop joins its polling thread and waits for its purged messages: not on a request thread.
            tokio::task::spawn_blocking(move || drop(failed));
        }
        Ok(slot.clone())
    }

    /// Acknowledgement time, strictly increasing on this node.
    fn ack_time(&self) -> i64 {
        let now = chrono::Utc::now().timestamp_micros();
        let mut last = self.last_ack_us.load(Ordering::Relaxed);
        loop {
            let next = now.max(last + 1);
            match self.last_ack_us.compare_exchange(
                last,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return next,
                Err(seen) => last = seen,
            }
        }
    }

    async fn append_event(&self, event: Event) -> Result<Outcome, IngestError> {
        if !lock(&self.index).begin(&event) {
            return Ok(Outcome::Duplicate);
        }
        let envelope = Envelope {
            acked_at_us: self.ack_time(),
            event,
        };
        let payload = match serde_json::to_vec(&envelope) {
            Ok(payload) => payload,
            Err(e) => {
                lock(&self.index).abandon(&envelope.event);
                return Err(IngestError::Backend(format!("event encoding: {e}")));
            }
        };
        let producer = match self.live_producer() {
            Ok(producer) => producer,
            Err(e) => {
                lock(&self.index).abandon(&envelope.event);
                return Err(e);
            }
        };
        let key = envelope.event.entity_id().to_owned();
        let (reply, outcome) = oneshot::channel();
        let pending = Box::new(Pending { envelope, reply });
        let record = BaseRecord::with_opaque_to(&self.topic, pending)
            .key(&key)
            .payload(&payload);
        match producer.send(record) {
            Ok(()) => {}
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), record)) => {
                self.enqueue_when_room(&producer, record.delivery_opaque, &key, &payload)
                    .await?
            }
            Err((e, record)) => {
                lock(&self.index).abandon(&record.delivery_opaque.envelope.event);
                return Err(IngestError::Unavailable(format!("kafka produce: {e}")));
            }
        }
        outcome.await.map_err(|_| {
            IngestError::Backend("kafka producer gone before the delivery report".into())
        })?
    }

    /// The producer's queue was full (the broker is slow or away): tries again every 100 ms, as long as the
    /// request waits, rather than answering what the client would count as delivered.
    async fn enqueue_when_room(
        &self,
        producer: &ThreadedProducer<Deliveries>,
        mut pending: Box<Pending>,
        key: &str,
        payload: &[u8],
    ) -> Result<(), IngestError> {
        let mut unqueued = Unqueued {
            index: &self.index,
            event: Some(pending.envelope.event.clone()),
        };
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let record = BaseRecord::with_opaque_to(&self.topic, pending)
                .key(key)
                .payload(payload);
            match producer.send(record) {
                Ok(()) => {
                    // From here the delivery report settles the create.
                    unqueued.event = None;
                    return Ok(());
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), record)) => {
                    pending = record.delivery_opaque
                }
                Err((e, _)) => return Err(IngestError::Unavailable(format!("kafka produce: {e}"))),
            }
        }
    }
}

/// True when `producer` can deliver nothing more.
fn failed(producer: &ThreadedProducer<Deliveries>) -> bool {
    producer.context().fenced.load(Ordering::Relaxed) || producer.client().fatal_error().is_some()
}

/// An idempotent producer whose delivery reports update `index`.
fn new_producer(
    brokers: &str,
    index: &Arc<Mutex<Index>>,
) -> Result<ThreadedProducer<Deliveries>, IngestError> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        // Flexisip gives up on a request after 30 s of silence: fail before that.
        // (The answer comes a few seconds after this timeout.)
        .set("message.timeout.ms", "20000")
        .set("linger.ms", "1")
        .create_with_context(Deliveries {
            index: index.clone(),
            fenced: AtomicBool::new(false),
        })
        .map_err(|e| IngestError::Setup(format!("kafka producer: {e}")))
}

/// The index; a plain mutex, as it is never held across an await.
fn lock(index: &Mutex<Index>) -> std::sync::MutexGuard<'_, Index> {
    index
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl EventLog for KafkaLog {
    fn append(&self, event: Event) -> BoxFuture<'_, Result<Outcome, IngestError>> {
        Box::pin(self.append_event(event))
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            // Every reply already waited for its delivery; flush whatever a cancelled request left behind.
            let producer = self
                .producer
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .clone();
            let _ =
                tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(10))).await;
        })
    }
}

/// The rebuild consumer's context: the end of a partition is what the rebuild waits for, not an error to log.
struct RebuildContext;

impl ClientContext for RebuildContext {
    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() != Some(RDKafkaErrorCode::PartitionEOF) {
            tracing::warn!(%error, reason, "index rebuild: kafka error");
        }
    }
}

impl ConsumerContext for RebuildContext {}

/// Reads the topic from `window` ago up to its current end and applies every event to a fresh index.
///
/// The end of each partition is where a fetch reports it (partition EOF), not the offset a ListOffsets request
/// gives: Tansu's S3 storage answers ListOffsets from object modification times, so its "latest" can fall short
/// of the newest acknowledged events, and those would be missing.
pub fn rebuild(
    brokers: &str,
    topic: &str,
    capacity: usize,
    window: Duration,
) -> Result<Index, IngestError> {
    let consumer: BaseConsumer<RebuildContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "flexiapi-ingest-index")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest")
        .create_with_context(RebuildContext)
        .map_err(|e| IngestError::Setup(format!("kafka index consumer: {e}")))?;
    let timeout = Duration::from_secs(30);
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .map_err(kafka_error("metadata"))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    let mut index = Index::new(capacity);
    if partitions.is_empty() {
        return Ok(index);
    }
    let since_ms = chrono::Utc::now().timestamp_millis() - window.as_millis() as i64;
    let mut by_time = TopicPartitionList::new();
    for partition in &partitions {
        by_time
            .add_partition_offset(topic, *partition, Offset::Offset(since_ms))
            .map_err(kafka_error("offsets"))?;
    }
    let starts = consumer
        .offsets_for_times(by_time, timeout)
        .map_err(kafka_error("offsets for times"))?;
    let mut assignment = TopicPartitionList::new();
    for partition in &partitions {
        let start = match starts.find_partition(topic, *partition).map(|p| p.offset()) {
            Some(Offset::Offset(o)) if o >= 0 => Offset::Offset(o),
            // No event in the window: only what arrives from now on.
            Some(Offset::End) => Offset::End,
            // No timestamp support: everything.
            _ => Offset::Beginning,
        };
        assignment
            .add_partition_offset(topic, *partition, start)
            .map_err(kafka_error("assign"))?;
    }
    consumer
        .assign(&assignment)
        .map_err(kafka_error("assign"))?;
    let mut remaining: Vec<i32> = partitions;
    let deadline = std::time::Instant::now() + Duration::from_secs(600);
    while !remaining.is_empty() {
        if std::time::Instant::now() > deadline {
            return Err(IngestError::Setup(
                "index rebuild: the topic could not be read in 10 minutes".into(),
            ));
        }
        match consumer.poll(Duration::from_millis(500)) {
            None => {}
            Some(Ok(message)) => {
                if let Some(Ok(envelope)) =
                    message.payload().map(serde_json::from_slice::<Envelope>)
                {
                    index.apply(&envelope);
                }
            }
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                remaining.retain(|p| *p != partition);
            }
            Some(Err(e)) => tracing::warn!(error = %e, "index rebuild: consume error"),
        }
    }
    Ok(index)
}
