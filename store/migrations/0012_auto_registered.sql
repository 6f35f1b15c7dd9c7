-- Accounts the gateway registered for connections without a login
-- ([autoregister]), kept for autoregister.keep_for after their last
-- client leaves and then deactivated on the homeserver. sealed_password
-- is the account's password sealed (base64 of nonce and AES-256-GCM) with
-- a key derived from the pickle key, which is kept outside the database:
-- the gateway needs the password to deactivate the account, and a dump of
-- the database alone must not give it away. left_at is when its last
-- client left (unix milliseconds), NULL while a client is attached.
CREATE TABLE auto_registered (
    user_id         TEXT   PRIMARY KEY,
    sealed_password TEXT   NOT NULL,
    created_at      BIGINT NOT NULL,
    left_at         BIGINT
);
