-- When the account's room-creation budget (matrix.room_create_burst, one
-- more each room_create_interval, spent by JOIN of new channels and by new
-- DMs) is full again, in unix milliseconds; 0 when it is full. Kept so a
-- restart does not hand out a new burst.
ALTER TABLE accounts ADD COLUMN room_create_full_at BIGINT NOT NULL DEFAULT 0;
