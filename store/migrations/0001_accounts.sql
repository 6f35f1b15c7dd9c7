-- Times are BIGINT unix milliseconds so the same schema and queries work on
-- SQLite and PostgreSQL without dialect-specific timestamp types.
CREATE TABLE accounts (
    user_id       TEXT   PRIMARY KEY,
    homeserver    TEXT   NOT NULL,
    device_id     TEXT   NOT NULL,
    access_token  TEXT   NOT NULL,
    password_hash TEXT   NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
