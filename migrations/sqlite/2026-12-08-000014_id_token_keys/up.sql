-- The RSA key that signs OpenID Connect id_tokens (RS256, which SMART
-- requires), made the first time an id_token is issued; PKCS#1 DER.
CREATE TABLE id_token_keys (
    kid TEXT PRIMARY KEY NOT NULL,
    private_key BLOB NOT NULL,
    created_at BIGINT NOT NULL
);
