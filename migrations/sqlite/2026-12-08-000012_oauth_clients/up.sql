-- The apps and services registered with Hearth's authorization server
-- (`hearth client add`), one JSON document each (`hearth_auth::client`):
-- name, redirect URIs, allowed scopes, and how it authenticates (none, a
-- hashed secret, or public keys). Any node reads them.
CREATE TABLE oauth_clients (
    client_id TEXT PRIMARY KEY NOT NULL,
    document TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
-- The client assertions (RFC 7523) already used, by client and jti, kept
-- until they expire: an assertion is accepted once.
CREATE TABLE client_assertions (
    client_id TEXT NOT NULL,
    jti TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (client_id, jti)
);
CREATE INDEX client_assertions_expiry ON client_assertions (expires_at);
