-- The read marker (draft/read-marker) an IRC client of the account set
-- for a target, exactly as the client gave it, in unix milliseconds.
-- target is the room ID of a channel, or the Matrix user ID of a query's
-- peer (a query may have no room yet). Matrix keeps its own markers on
-- events (m.fully_read, m.read); a client's time may fall between events
-- or before any, and is reported back to the account's clients as given.
CREATE TABLE read_markers (
    user_id TEXT   NOT NULL,
    target  TEXT   NOT NULL,
    ts      BIGINT NOT NULL,
    PRIMARY KEY (user_id, target)
);
