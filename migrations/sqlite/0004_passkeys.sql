-- Passkeys (WebAuthn credentials); several per account. A credential id belongs to
-- one account only.
CREATE TABLE passkeys (
    id               TEXT PRIMARY KEY NOT NULL,   -- our id (UUID), used in the API
    account_id       TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    credential_id    TEXT NOT NULL UNIQUE,        -- base64url, as the authenticator made it
    name             TEXT NOT NULL,
    credential       TEXT NOT NULL,               -- the verifier's stored form (JSON), see format
    format           INTEGER NOT NULL,            -- 1: webauthn-rs 0.6 Passkey
    aaguid           TEXT NOT NULL,               -- the authenticator model, UUID form
    transports       TEXT NOT NULL,               -- JSON array of transport hints
    backup_eligible  INTEGER NOT NULL,            -- 0/1: may be synced
    backup_state     INTEGER NOT NULL,            -- 0/1: is synced (changes over time)
    sign_count       INTEGER NOT NULL,            -- last signature counter seen
    created_at       INTEGER NOT NULL,
    last_used_at     INTEGER
) STRICT;
CREATE INDEX passkeys_account_id ON passkeys (account_id);
