-- Access tokens revoked before they expire (`hearth revoke`): a token's
-- `issuer|jti` (or, without a jti, the hex SHA-256 of the token). Every
-- node reads the list every 2 s and refuses those tokens; a row is
-- dropped once its token has expired anyway.
CREATE TABLE revoked_tokens (
    token_id TEXT PRIMARY KEY NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT NOT NULL
);
