-- Statistics pushed by Flexisip (shared/spec/stats.md §A7) plus what upstream drops: sip_call_id,
-- conference_id, the devices a call was forked to, the recipients/devices of a message, conferences and
-- their participant events, and updates that arrived before their parent (Flexisip <= 2.4).

CREATE TABLE statistics_messages (
    id VARCHAR(64) PRIMARY KEY NOT NULL,
    from_username TEXT NOT NULL,
    from_domain TEXT NOT NULL,
    sent_at TIMESTAMP NOT NULL,
    encrypted BOOLEAN NOT NULL DEFAULT FALSE,
    conference_id TEXT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX statistics_messages_from ON statistics_messages(from_username, from_domain);
CREATE INDEX statistics_messages_sent_at ON statistics_messages(sent_at);

-- Device responses (upstream's table): one row per (message, recipient, device) once it answered.
CREATE TABLE statistics_message_devices (
    id BIGSERIAL PRIMARY KEY,
    message_id VARCHAR(64) NOT NULL REFERENCES statistics_messages(id) ON DELETE CASCADE,
    to_username TEXT NOT NULL,
    to_domain TEXT NOT NULL,
    device_id TEXT NOT NULL,
    last_status BIGINT NOT NULL,
    received_at TIMESTAMP NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (message_id, to_username, to_domain, device_id)
);
CREATE INDEX statistics_message_devices_to ON statistics_message_devices(to_username, to_domain);

-- The `to` map of the POST: devices targeted at fork time (kept apart so device PATCHes keep upstream's 201/200).
CREATE TABLE statistics_message_recipients (
    message_id VARCHAR(64) NOT NULL REFERENCES statistics_messages(id) ON DELETE CASCADE,
    to_username TEXT NOT NULL,
    to_domain TEXT NOT NULL,
    device_id TEXT NOT NULL,
    last_status BIGINT NULL,
    received_at TIMESTAMP NULL,
    PRIMARY KEY (message_id, to_username, to_domain, device_id)
);
CREATE INDEX statistics_message_recipients_to ON statistics_message_recipients(to_username, to_domain);

CREATE TABLE statistics_calls (
    id VARCHAR(64) PRIMARY KEY NOT NULL,
    from_username TEXT NOT NULL,
    from_domain TEXT NOT NULL,
    to_username TEXT NOT NULL,
    to_domain TEXT NOT NULL,
    initiated_at TIMESTAMP NOT NULL,
    ended_at TIMESTAMP NULL,
    conference_id TEXT NULL,
    sip_call_id TEXT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX statistics_calls_from ON statistics_calls(from_username, from_domain);
CREATE INDEX statistics_calls_to ON statistics_calls(to_username, to_domain);
CREATE INDEX statistics_calls_initiated_at ON statistics_calls(initiated_at);

CREATE TABLE statistics_call_devices (
    id BIGSERIAL PRIMARY KEY,
    call_id VARCHAR(64) NOT NULL REFERENCES statistics_calls(id) ON DELETE CASCADE,
    device_id TEXT NOT NULL,
    rang_at TIMESTAMP NULL,
    invite_terminated_at TIMESTAMP NULL,
    invite_terminated_state VARCHAR(32) NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (call_id, device_id)
);

-- The `devices` map of the POST: branches of the fork (state kept as sent, JSON text, normally null).
CREATE TABLE statistics_call_forked_devices (
    call_id VARCHAR(64) NOT NULL REFERENCES statistics_calls(id) ON DELETE CASCADE,
    device_id TEXT NOT NULL,
    state TEXT NULL,
    PRIMARY KEY (call_id, device_id)
);

CREATE TABLE statistics_conferences (
    id TEXT PRIMARY KEY NOT NULL,
    created_at TIMESTAMP NOT NULL,
    ended_at TIMESTAMP NULL,
    schedule TEXT NULL,
    stored_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

-- Participant events need no conference row: the conference POST may never come.
CREATE TABLE statistics_conference_participant_events (
    id BIGSERIAL PRIMARY KEY,
    conference_id TEXT NOT NULL,
    participant_username TEXT NOT NULL,
    participant_domain TEXT NOT NULL,
    type VARCHAR(16) NOT NULL,
    at TIMESTAMP NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX statistics_conference_participant_events_conference ON statistics_conference_participant_events(conference_id);

CREATE TABLE statistics_conference_participant_device_events (
    id BIGSERIAL PRIMARY KEY,
    conference_id TEXT NOT NULL,
    participant_username TEXT NOT NULL,
    participant_domain TEXT NOT NULL,
    device_id TEXT NOT NULL,
    type VARCHAR(16) NOT NULL,
    at TIMESTAMP NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX statistics_conference_participant_device_events_conference ON statistics_conference_participant_device_events(conference_id);

-- Updates whose parent was not posted yet; applied in arrival order when it is, purged after a retention delay.
CREATE TABLE statistics_pending_updates (
    id BIGSERIAL PRIMARY KEY,
    entity_id TEXT NOT NULL,
    event TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX statistics_pending_updates_entity ON statistics_pending_updates(entity_id);
CREATE INDEX statistics_pending_updates_created_at ON statistics_pending_updates(created_at);

-- Deleting an account deletes the messages it sent and the calls it initiated (devices follow by cascade),
-- as upstream's model hook does; what it only received is kept.
CREATE FUNCTION statistics_delete_with_account() RETURNS trigger AS $$
BEGIN
    DELETE FROM statistics_messages WHERE from_username = OLD.username AND from_domain = OLD.domain;
    DELETE FROM statistics_calls WHERE from_username = OLD.username AND from_domain = OLD.domain;
    RETURN OLD;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER statistics_delete_with_account AFTER DELETE ON accounts
    FOR EACH ROW EXECUTE FUNCTION statistics_delete_with_account();
