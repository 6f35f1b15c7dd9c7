-- An app password is a gateway-local password (PASSWORD SET) that logs an
-- IRC client in to the account's stored Matrix session, for accounts whose
-- Matrix login is not a password (OAuth, SSO). Only its verifier is kept;
-- '' means none.
ALTER TABLE accounts ADD COLUMN app_password_hash TEXT NOT NULL DEFAULT '';
