-- What the homeserver's sync summary says of each room an account is in
-- (m.joined_member_count, m.invited_member_count, m.heroes), kept with the
-- account's rooms and token: with lazy-loaded members the stored state
-- holds only some members, and a resumed session needs the counts and
-- heroes to show member counts and to tell a DM from a group room. -1 and
-- '' are unknown (never sent since the row was written).
ALTER TABLE account_rooms ADD COLUMN joined_count BIGINT NOT NULL DEFAULT -1;
ALTER TABLE account_rooms ADD COLUMN invited_count BIGINT NOT NULL DEFAULT -1;
ALTER TABLE account_rooms ADD COLUMN heroes TEXT NOT NULL DEFAULT '';
