-- Calls and messages get an integer `seq` in insertion order, and their child rows (devices, forked devices,
-- recipients) are keyed and referenced by it instead of the parent's random 64-hex id. The writer used to
-- insert each child row at a random place in an index keyed by that id, so every event dirtied pages all
-- over the file (about two 4 KiB WAL frames per event); keyed by `seq`, new child rows go to the end of their
-- indexes, where a batch's events share pages. Children keep the parent id as a plain column (the JSON
-- rows carry it). SQLite cannot change a table's key in place: the tables are rebuilt.

-- The account deletion trigger names the parent tables; it is dropped while they are renamed.
DROP TRIGGER statistics_delete_with_account;

CREATE TABLE statistics_calls_new (
    seq INTEGER PRIMARY KEY,
    id VARCHAR(64) NOT NULL UNIQUE,
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
INSERT INTO statistics_calls_new (seq, id, from_username, from_domain, to_username, to_domain, initiated_at,
        ended_at, conference_id, sip_call_id, created_at, updated_at)
    SELECT rowid, id, from_username, from_domain, to_username, to_domain, initiated_at, ended_at, conference_id,
        sip_call_id, created_at, updated_at
    FROM statistics_calls ORDER BY rowid;

CREATE TABLE statistics_call_devices_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    call_seq INTEGER NOT NULL REFERENCES statistics_calls_new(seq) ON DELETE CASCADE,
    call_id VARCHAR(64) NOT NULL,
    device_id TEXT NOT NULL,
    rang_at TIMESTAMP NULL,
    invite_terminated_at TIMESTAMP NULL,
    invite_terminated_state VARCHAR(32) NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (call_seq, device_id)
);
INSERT INTO statistics_call_devices_new (id, call_seq, call_id, device_id, rang_at, invite_terminated_at,
        invite_terminated_state, created_at, updated_at)
    SELECT d.id, c.seq, d.call_id, d.device_id, d.rang_at, d.invite_terminated_at, d.invite_terminated_state,
        d.created_at, d.updated_at
    FROM statistics_call_devices d JOIN statistics_calls_new c ON c.id = d.call_id ORDER BY d.id;

CREATE TABLE statistics_call_forked_devices_new (
    call_seq INTEGER NOT NULL REFERENCES statistics_calls_new(seq) ON DELETE CASCADE,
    call_id VARCHAR(64) NOT NULL,
    device_id TEXT NOT NULL,
    state TEXT NULL,
    PRIMARY KEY (call_seq, device_id)
);
INSERT INTO statistics_call_forked_devices_new (call_seq, call_id, device_id, state)
    SELECT c.seq, f.call_id, f.device_id, f.state
    FROM statistics_call_forked_devices f JOIN statistics_calls_new c ON c.id = f.call_id;

CREATE TABLE statistics_messages_new (
    seq INTEGER PRIMARY KEY,
    id VARCHAR(64) NOT NULL UNIQUE,
    from_username TEXT NOT NULL,
    from_domain TEXT NOT NULL,
    sent_at TIMESTAMP NOT NULL,
    encrypted BOOLEAN NOT NULL DEFAULT FALSE,
    conference_id TEXT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
INSERT INTO statistics_messages_new (seq, id, from_username, from_domain, sent_at, encrypted, conference_id,
        created_at, updated_at)
    SELECT rowid, id, from_username, from_domain, sent_at, encrypted, conference_id, created_at, updated_at
    FROM statistics_messages ORDER BY rowid;

CREATE TABLE statistics_message_devices_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    message_seq INTEGER NOT NULL REFERENCES statistics_messages_new(seq) ON DELETE CASCADE,
    message_id VARCHAR(64) NOT NULL,
    to_username TEXT NOT NULL,
    to_domain TEXT NOT NULL,
    device_id TEXT NOT NULL,
    last_status INTEGER NOT NULL,
    received_at TIMESTAMP NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (message_seq, to_username, to_domain, device_id)
);
INSERT INTO statistics_message_devices_new (id, message_seq, message_id, to_username, to_domain, device_id,
        last_status, received_at, created_at, updated_at)
    SELECT d.id, m.seq, d.message_id, d.to_username, d.to_domain, d.device_id, d.last_status, d.received_at,
        d.created_at, d.updated_at
    FROM statistics_message_devices d JOIN statistics_messages_new m ON m.id = d.message_id ORDER BY d.id;

CREATE TABLE statistics_message_recipients_new (
    message_seq INTEGER NOT NULL REFERENCES statistics_messages_new(seq) ON DELETE CASCADE,
    message_id VARCHAR(64) NOT NULL,
    to_username TEXT NOT NULL,
    to_domain TEXT NOT NULL,
    device_id TEXT NOT NULL,
    last_status INTEGER NULL,
    received_at TIMESTAMP NULL,
    PRIMARY KEY (message_seq, to_username, to_domain, device_id)
);
INSERT INTO statistics_message_recipients_new (message_seq, message_id, to_username, to_domain, device_id,
        last_status, received_at)
    SELECT m.seq, r.message_id, r.to_username, r.to_domain, r.device_id, r.last_status, r.received_at
    FROM statistics_message_recipients r JOIN statistics_messages_new m ON m.id = r.message_id;

DROP TABLE statistics_call_devices;
DROP TABLE statistics_call_forked_devices;
DROP TABLE statistics_message_devices;
DROP TABLE statistics_message_recipients;
DROP TABLE statistics_calls;
DROP TABLE statistics_messages;
ALTER TABLE statistics_calls_new RENAME TO statistics_calls;
ALTER TABLE statistics_call_devices_new RENAME TO statistics_call_devices;
ALTER TABLE statistics_call_forked_devices_new RENAME TO statistics_call_forked_devices;
ALTER TABLE statistics_messages_new RENAME TO statistics_messages;
ALTER TABLE statistics_message_devices_new RENAME TO statistics_message_devices;
ALTER TABLE statistics_message_recipients_new RENAME TO statistics_message_recipients;

CREATE INDEX statistics_calls_from ON statistics_calls(from_username, from_domain);
CREATE INDEX statistics_calls_to ON statistics_calls(to_username, to_domain);
CREATE INDEX statistics_calls_initiated_at ON statistics_calls(initiated_at);
CREATE INDEX statistics_messages_from ON statistics_messages(from_username, from_domain);
CREATE INDEX statistics_messages_sent_at ON statistics_messages(sent_at);
CREATE INDEX statistics_message_devices_to ON statistics_message_devices(to_username, to_domain);
CREATE INDEX statistics_message_recipients_to ON statistics_message_recipients(to_username, to_domain);

CREATE TRIGGER statistics_delete_with_account AFTER DELETE ON accounts
BEGIN
    DELETE FROM statistics_messages WHERE from_username = OLD.username AND from_domain = OLD.domain;
    DELETE FROM statistics_calls WHERE from_username = OLD.username AND from_domain = OLD.domain;
END;
