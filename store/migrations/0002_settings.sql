-- Gateway-wide values that must survive restarts, such as the key that
-- signs media links.
CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
