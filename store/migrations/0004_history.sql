-- Always-on sessions: an event store shared by all accounts, each account's
-- stream of the events it received, sync tokens, per-client delivery cursors
-- and an outbox of messages not yet confirmed sent.

-- Per-account override of the gateway's always-on setting: NULL follows the
-- global setting, otherwise 0 or 1.
ALTER TABLE accounts ADD COLUMN always_on BIGINT;

-- Position counters. Writers of events take the 'events' row's lock first
-- (an UPDATE of it), which hands out room positions in commit order and
-- serializes everything that writes events or account streams. One schema
-- for both databases rules out SQLite's INTEGER PRIMARY KEY and PostgreSQL's
-- BIGSERIAL.
CREATE TABLE counters (
    name  TEXT   PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO counters (name, value) VALUES ('events', 0);
INSERT INTO counters (name, value) VALUES ('outbox', 0);

-- One row per Matrix event, whichever account stored it first, without
-- what the homeserver tells only the sender (unsigned.transaction_id). seq
-- is the room position: global and increasing in insertion order.
CREATE TABLE events (
    seq      BIGINT PRIMARY KEY,
    room_id  TEXT   NOT NULL,
    event_id TEXT   NOT NULL,
    sender   TEXT   NOT NULL,
    type     TEXT   NOT NULL,
    ts       BIGINT NOT NULL,
    json     TEXT   NOT NULL,
    UNIQUE (room_id, event_id)
);
CREATE INDEX events_room_seq ON events (room_id, seq);
CREATE INDEX events_room_ts ON events (room_id, ts);

-- Each account's view: every event the homeserver gave it, which is what
-- its history may show (the shared table also holds what other accounts
-- saw, perhaps before this one joined). seq counts 1, 2, ... per account
-- and is never reused (sync_state.head remembers the last one given out).
-- The stream, which clients are given and replayed, is the rows that are
-- not history_only; history_only rows are what a newly joined room showed
-- from before the join. txn_id is the transaction ID the account's own
-- device sent the event with ('' for everyone else's): the homeserver
-- tells it only to the sending device, so it belongs to the account, not
-- to the shared event.
CREATE TABLE account_events (
    user_id      TEXT   NOT NULL,
    seq          BIGINT NOT NULL,
    room_id      TEXT   NOT NULL,
    event_id     TEXT   NOT NULL,
    ts           BIGINT NOT NULL,
    txn_id       TEXT   NOT NULL DEFAULT '',
    history_only BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, seq),
    UNIQUE (user_id, room_id, event_id)
);
CREATE INDEX account_events_user_ts ON account_events (user_id, ts);
CREATE INDEX account_events_room_event ON account_events (room_id, event_id);
CREATE INDEX account_events_txn ON account_events (user_id, txn_id) WHERE txn_id <> '';

CREATE TABLE sync_state (
    user_id    TEXT   PRIMARY KEY,
    next_batch TEXT   NOT NULL,
    head       BIGINT NOT NULL
);

CREATE TABLE client_cursors (
    user_id TEXT   NOT NULL,
    client  TEXT   NOT NULL,
    seq     BIGINT NOT NULL,
    PRIMARY KEY (user_id, client)
);

-- Oldest first is by created_at, then ord (from counters 'outbox'), the
-- insertion order.
CREATE TABLE outbox (
    user_id    TEXT   NOT NULL,
    txn_id     TEXT   NOT NULL,
    room_id    TEXT   NOT NULL,
    type       TEXT   NOT NULL,
    content    TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    ord        BIGINT NOT NULL,
    PRIMARY KEY (user_id, txn_id)
);
