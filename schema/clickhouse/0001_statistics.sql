-- Statistics in ClickHouse (scale mode). Written by `flexiapi sink` from the Kafka event log.
--
-- Works on ClickHouse 18.16 and current releases: no DateTime64, no LowCardinality, no Nullable in keys.
--
-- Exactly-once in query results: every row carries the Kafka partition and offset of the event it came from.
-- A replayed event (sink crash before its offset commit) produces the very same row, same sorting key:
--   * entity tables (calls, messages, conferences, *_ends) are ReplacingMergeTree(kafka_offset) ORDER BY the
--     entity id: one row per entity after merge / with FINAL, the latest event winning;
--   * event tables (device updates, device responses, participant events) are ReplacingMergeTree ORDER BY
--     (entity, device, kafka_partition, kafka_offset): a replayed copy collapses, distinct events never do.
-- Queries read with FINAL (or aggregate with idempotent functions), so duplicates never show before a merge.
-- The aggregate table call_states is fed by materialized views with idempotent states only (min/max/any),
-- so a replayed batch cannot change it either.

CREATE TABLE IF NOT EXISTS calls (
    id String,
    from_username String,
    from_domain String,
    to_username String,
    to_domain String,
    initiated_at DateTime,
    ended_at Nullable(DateTime),
    conference_id Nullable(String),
    sip_call_id Nullable(String),
    device_ids Array(String),
    device_states Array(String),
    acked_at_us UInt64,
    kafka_partition UInt32,
    kafka_offset UInt64,
    inserted_at DateTime DEFAULT now()
) ENGINE = ReplacingMergeTree(kafka_offset) ORDER BY id;

CREATE TABLE IF NOT EXISTS call_ends (
    call_id String,
    ended_at DateTime,
    acked_at_us UInt64,
    kafka_partition UInt32,
    kafka_offset UInt64,
    inserted_at DateTime DEFAULT now()
) ENGINE = ReplacingMergeTree(kafka_offset) ORDER BY call_id;

CREATE TABLE IF NOT EXISTS call_device_events (
    call_id String,
    device_id String,
    rang_at Nullable(DateTime),
    terminated_at Nullable(DateTime),
    terminated_state Nullable(String),
    acked_at_us UInt64,
    kafka_partition UInt32,
    kafka_offset UInt64,
    inserted_at DateTime DEFAULT now()
) ENGINE = ReplacingMergeTree() ORDER BY (call_id, device_id, kafka_partition, kafka_offset);

CREATE TABLE IF NOT EXISTS messages (
    id String,
    from_username String,
    from_domain String,
    sent_at DateTime,
    encrypted UInt8,
    conference_id Nullable(String),
    to_recipients Array(String),
    to_devices Array(String),
    acked_at_us UInt64,
    kafka_partition UInt32,
    kafka_offset UInt64,
    inserted_at DateTime DEFAULT now()
) ENGINE = ReplacingMergeTree(kafka_offset) ORDER BY id;

CREATE TABLE IF NOT EXISTS message_device_responses (
    message_id String,
    to_username String,
    to_domain String,
    device_id String,
    last_status Int32,
    received_at DateTime,
    acked_at_us UInt64,
    kafka_partition UInt32,
    kafka_offset UInt64,
    inserted_at DateTime DEFAULT now()
) ENGINE = ReplacingMergeTree() ORDER BY (message_id, to_username, to_domain, device_id, kafka_partition, kafka_offset);

CREATE TABLE IF NOT EXISTS conferences (
    id String,
    created_at DateTime,
    ended_at Nullable(DateTime),
    schedule Nullable(String),
    acked_at_us UInt64,
    kafka_partition UInt32,
    kafka_offset UInt64,
    inserted_at DateTime DEFAULT now()
) ENGINE = ReplacingMergeTree(kafka_offset) ORDER BY id;

CREATE TABLE IF NOT EXISTS conference_ends (
    conference_id String,
    ended_at DateTime,
    acked_at_us UInt64,
    kafka_partition UInt32,
    kafka_offset UInt64,
    inserted_at DateTime DEFAULT now()
) ENGINE = ReplacingMergeTree(kafka_offset) ORDER BY conference_id;

-- device_id is '' for participant-level events (added, left, removed).
CREATE TABLE IF NOT EXISTS participant_events (
    conference_id String,
    participant_username String,
    participant_domain String,
    device_id String,
    at DateTime,
    type String,
    acked_at_us UInt64,
    kafka_partition UInt32,
    kafka_offset UInt64,
    inserted_at DateTime DEFAULT now()
) ENGINE = ReplacingMergeTree() ORDER BY (conference_id, participant_username, participant_domain, device_id, kafka_partition, kafka_offset);

-- One row per call after merge: what the dashboards need to classify and count calls. Each view fills every
-- column (18.16 requires it); the columns a view knows nothing of get the neutral value of max (0, epoch, '').
CREATE TABLE IF NOT EXISTS call_states (
    call_id String,
    initiated_at AggregateFunction(max, DateTime),
    from_domain AggregateFunction(max, String),
    to_domain AggregateFunction(max, String),
    accepted AggregateFunction(max, UInt8),
    declined AggregateFunction(max, UInt8),
    canceled AggregateFunction(max, UInt8),
    devices AggregateFunction(max, UInt8)
) ENGINE = AggregatingMergeTree() ORDER BY call_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS call_states_from_calls TO call_states AS
SELECT
    id AS call_id,
    maxState(initiated_at) AS initiated_at,
    maxState(from_domain) AS from_domain,
    maxState(to_domain) AS to_domain,
    maxState(toUInt8(0)) AS accepted,
    maxState(toUInt8(0)) AS declined,
    maxState(toUInt8(0)) AS canceled,
    maxState(toUInt8(0)) AS devices
FROM calls
GROUP BY id;

CREATE MATERIALIZED VIEW IF NOT EXISTS call_states_from_devices TO call_states AS
SELECT
    call_id,
    maxState(toDateTime(0)) AS initiated_at,
    maxState('') AS from_domain,
    maxState('') AS to_domain,
    maxState(toUInt8(ifNull(terminated_state, '') IN ('accepted', 'accepted_elsewhere'))) AS accepted,
    maxState(toUInt8(ifNull(terminated_state, '') IN ('declined', 'declined_elsewhere'))) AS declined,
    maxState(toUInt8(ifNull(terminated_state, '') = 'canceled')) AS canceled,
    maxState(toUInt8(1)) AS devices
FROM call_device_events
GROUP BY call_id;
