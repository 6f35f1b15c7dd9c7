-- OAuth 2.0 login (Matrix spec v1.15+, RFC 8628 device authorization).

-- The client_id the gateway registered (RFC 7591) with the authorization
-- server of each homeserver, by the homeserver's client-server API base URL.
-- issuer says which server issued it: a homeserver that moves its logins to
-- another authorization server needs a new registration.
CREATE TABLE oauth_clients (
    homeserver TEXT   PRIMARY KEY,
    issuer     TEXT   NOT NULL,
    client_id  TEXT   NOT NULL,
    created_at BIGINT NOT NULL
);

-- Each account's OAuth grant: the refresh token that renews the access token
-- kept in accounts.access_token. A secret of the gateway, never shown to an
-- IRC client. client_id is the client the grant was issued to, which a
-- refresh must name. expires_at is when the access token stops working
-- (unix milliseconds, 0 when the server did not say).
CREATE TABLE oauth_grants (
    user_id       TEXT   PRIMARY KEY,
    client_id     TEXT   NOT NULL,
    refresh_token TEXT   NOT NULL,
    expires_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
