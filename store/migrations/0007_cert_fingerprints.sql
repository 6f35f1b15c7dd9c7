-- TLS client certificates that log in to an account by SASL EXTERNAL
-- (CERTFP ADD): the lowercase hex SHA-256 of the certificate's DER, as IRC
-- networks write a CertFP. One certificate logs in to one account.
CREATE TABLE cert_fingerprints (
    fingerprint TEXT   PRIMARY KEY,
    user_id     TEXT   NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX cert_fingerprints_user ON cert_fingerprints (user_id);
