//! Scale mode's event log: `flexiapi ingest` appends every accepted event to Kafka.
//!
//! [`KafkaLog`] implements [`EventLog`]: the event is wrapped in an [`Envelope`] (acknowledgement time in µs),
//! serialised as JSON and produced with the entity id as key (one call's, message's or conference's events
//! land in one partition, in order) by an idempotent producer with `acks=all`; the reply is sent only once
//! the broker confirmed the delivery. The statuses that depend on earlier events come from the [`index`],
//! rebuilt at start from the topic's recent events ([`rebuild`]).
//!
//! Several ingest nodes: each node's index knows the events it appended itself plus, as of its start, those
//! of the others. Flexisip keeps one connection per process and sends one entity's events one at a time, so
//! with sticky routing (one Flexisip process → one node) every status is the single-node one. When one
//! entity's events reach different nodes, every event is still appended and stored; only a status may differ
//! (e.g. 400 for a device update whose call was posted through another node since this one started).

pub mod index;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flexiapi_core::Config;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use rdkafka::ClientContext;
use rdkafka::{Offset, TopicPartitionList};

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

/// The Kafka event log of `flexiapi ingest`.
pub struct KafkaLog {
    producer: FutureProducer,
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
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            // Flexisip gives up on a request after 30 s of silence: fail before that.
            .set("message.timeout.ms", "25000")
            .set("linger.ms", "1")
            .create()
            .map_err(|e| IngestError::Setup(format!("kafka producer: {e}")))?;
        let topic = config.kafka_topic.clone();
        let capacity = config.scale.index_capacity;
        let window = config.scale.index_window;
        let index =
            tokio::task::spawn_blocking(move || rebuild(&brokers, &topic, capacity, window))
                .await
                .map_err(|e| IngestError::Setup(format!("index rebuild: {e}")))??;
        tracing::info!(
            entities = index.len(),
            "ingest index rebuilt from the topic"
        );
        Ok(Arc::new(KafkaLog {
            producer,
            topic: Arc::from(config.kafka_topic.as_str()),
            index: Arc::new(Mutex::new(index)),
            last_ack_us: AtomicI64::new(0),
        }))
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
        // Delivery and the index update run on their own task: a request dropped meanwhile (its client gone)
        // must not leave a delivered event out of the index, or its create marked in flight for good.
        let (producer, topic, index) = (
            self.producer.clone(),
            self.topic.clone(),
            self.index.clone(),
        );
        tokio::spawn(async move {
            let record = FutureRecord::to(&topic)
                .key(envelope.event.entity_id())
                .payload(&payload);
            let delivered = producer.send(record, Timeout::Never).await;
            let mut index = lock(&index);
            match delivered {
                Ok(_) => {
                    metrics::counter!(crate::metrics::EVENTS_APPENDED, "kind" => envelope.event.kind())
                        .increment(1);
                    Ok(index.apply(&envelope))
                }
                Err((e, _)) => {
                    index.abandon(&envelope.event);
                    Err(IngestError::Backend(format!("kafka delivery: {e}")))
                }
            }
        })
        .await
        .map_err(|e| IngestError::Backend(format!("kafka append task: {e}")))?
    }
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
            let producer = self.producer.clone();
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
