-- The IRC channel name each account gave a room without an alias, so that
-- it stays the same across reconnects and restarts.
CREATE TABLE channel_names (
    user_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    name    TEXT NOT NULL,
    PRIMARY KEY (user_id, room_id)
);
