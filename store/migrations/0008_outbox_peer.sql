-- A message accepted for someone the account has no direct room with yet
-- waits in the outbox under the person it is for (peer, a Matrix user ID)
-- with room_id '' until the room exists; then room_id is set and peer
-- cleared. A row with neither is an IRC line accepted before the session's
-- first sync, stored as typed, its target resolved after that sync.
ALTER TABLE outbox ADD COLUMN peer TEXT NOT NULL DEFAULT '';
