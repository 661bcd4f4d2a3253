-- The people who sign in to Hearth's authorization server (`hearth user
-- add`): each is a FHIR Patient or Practitioner (`fhir_user`), with an
-- Argon2id password hash.
CREATE TABLE oauth_users (
    username TEXT PRIMARY KEY NOT NULL,
    fhir_user TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
-- Authorization codes (by the SHA-256 of the code): what the person
-- approved, for one client, redirect URI and PKCE challenge; used once.
-- `issued` names what the code's exchange produced (its access token and
-- refresh-token family), revoked if the code is presented again.
CREATE TABLE oauth_codes (
    code_hash TEXT PRIMARY KEY NOT NULL,
    document TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT,
    issued TEXT
);
CREATE INDEX oauth_codes_expiry ON oauth_codes (expires_at);
-- Refresh tokens (by SHA-256), in families: each use rotates the token;
-- presenting a rotated one revokes its whole family.
CREATE TABLE oauth_refresh_tokens (
    token_hash TEXT PRIMARY KEY NOT NULL,
    family TEXT NOT NULL,
    document TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    rotated_at BIGINT,
    revoked_at BIGINT
);
CREATE INDEX oauth_refresh_family ON oauth_refresh_tokens (family);
CREATE INDEX oauth_refresh_expiry ON oauth_refresh_tokens (expires_at);
-- EHR launch contexts (by the SHA-256 of the `launch` value): the patient,
-- encounter and other context an EHR opens an app with; bound to that
-- app, short-lived, used once.
CREATE TABLE oauth_launches (
    launch_hash TEXT PRIMARY KEY NOT NULL,
    client_id TEXT NOT NULL,
    document TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX oauth_launches_expiry ON oauth_launches (expires_at);
