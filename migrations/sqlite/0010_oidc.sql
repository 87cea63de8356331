-- The OpenID Connect provider: registered clients, authorization codes, and the
-- `jti`s of client assertions (private_key_jwt) already used. Times are Unix seconds
-- (UTC). Lists are JSON arrays of strings.
CREATE TABLE oidc_clients (
    id                          TEXT PRIMARY KEY NOT NULL,  -- the client_id
    name                        TEXT NOT NULL,
    secret_hash                 TEXT,             -- SHA-256 of the secret, hex; NULL: none
    public                      INTEGER NOT NULL, -- 1: a public client (no secret)
    first_party                 INTEGER NOT NULL, -- 1: no consent asked
    redirect_uris               TEXT NOT NULL,
    post_logout_redirect_uris   TEXT NOT NULL,
    grant_types                 TEXT NOT NULL,
    token_endpoint_auth_method  TEXT NOT NULL,    -- client_secret_basic, …, none
    jwks                        TEXT,             -- for private_key_jwt
    id_token_signed_response_alg TEXT NOT NULL,   -- RS256, ES256 or EdDSA
    backchannel_logout_uri      TEXT,
    source                      TEXT NOT NULL,    -- cli or config
    created_at                  INTEGER NOT NULL,
    updated_at                  INTEGER NOT NULL
) STRICT;

-- Authorization codes: single use, consumed by one conditional UPDATE. Only the
-- code's SHA-256 is stored. A consumed code stays until it expires, so that a second
-- use is recognised and ends the session its tokens belong to (RFC 6749 §4.1.2).
CREATE TABLE oidc_codes (
    code_hash       TEXT PRIMARY KEY NOT NULL,
    client_id       TEXT NOT NULL REFERENCES oidc_clients (id) ON DELETE CASCADE,
    account_id      TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    session_id      TEXT NOT NULL,    -- the OIDC session its tokens belong to
    redirect_uri    TEXT NOT NULL,
    scopes          TEXT NOT NULL,    -- space-separated
    nonce           TEXT,
    code_challenge  TEXT,             -- S256; NULL: the authorization had none
    auth_time       INTEGER NOT NULL,
    amr             TEXT NOT NULL DEFAULT '',  -- the factors the browser's sign-in proved (RFC 8176)
    expires_at      INTEGER NOT NULL,
    consumed_at     INTEGER
) STRICT;
CREATE INDEX oidc_codes_expires_at ON oidc_codes (expires_at);

-- Client assertions already used (RFC 7523 §3: a jti is single use until it expires).
CREATE TABLE oidc_assertions (
    client_id   TEXT NOT NULL,
    jti         TEXT NOT NULL,
    expires_at  INTEGER NOT NULL,
    PRIMARY KEY (client_id, jti)
) STRICT;
CREATE INDEX oidc_assertions_expires_at ON oidc_assertions (expires_at);

-- An OIDC session is a session row, begun by a code exchange for this client, with
-- the scopes granted.
ALTER TABLE sessions ADD COLUMN oidc_client_id TEXT;
ALTER TABLE sessions ADD COLUMN oidc_scopes TEXT;

-- What a signing key signs: `account` tokens (jwt.algorithm), or `oidc` ID and access
-- tokens (RS256, ES256, EdDSA). Each verifier accepts only its own purpose's keys, so
-- a token meant for a relying party is never taken for an account token.
ALTER TABLE signing_keys ADD COLUMN purpose TEXT NOT NULL DEFAULT 'account';
