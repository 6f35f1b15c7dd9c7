-- What a session needs to resume from its stored sync token without a
-- full-state sync: the rooms each account is in, and the state events of
-- those rooms, once per room for every account.

-- The rooms an account has joined, as of its stored sync token: written
-- with the token, so the two always agree.
CREATE TABLE account_rooms (
    user_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    PRIMARY KEY (user_id, room_id)
);

-- Every state event any account's sync brought, in the order the gateway
-- first stored it (seq, from the 'state' counter). A room's current state
-- is the newest row of each (type, state_key). Superseded rows stay, so an
-- account that lags behind and stores an older event again cannot make it
-- current once more (it is already there, with its old position).
CREATE TABLE room_state (
    seq       BIGINT PRIMARY KEY,
    room_id   TEXT   NOT NULL,
    event_id  TEXT   NOT NULL,
    type      TEXT   NOT NULL,
    state_key TEXT   NOT NULL,
    json      TEXT   NOT NULL,
    UNIQUE (room_id, event_id)
);
CREATE INDEX room_state_key ON room_state (room_id, type, state_key, seq);
INSERT INTO counters (name, value) VALUES ('state', 0);

-- 1 once account_rooms holds the account's whole room list (written by a
-- full-state or initial sync); until then a resume syncs with full state.
ALTER TABLE sync_state ADD COLUMN rooms_stored BIGINT NOT NULL DEFAULT 0;
