-- One user store for every sign-in method. Times are Unix seconds (UTC).

-- An account may have no email (a wallet-only account) and no password
-- (wallet-only or OwnID passwordless accounts).
CREATE TABLE accounts (
    id            TEXT PRIMARY KEY NOT NULL,
    email         TEXT,
    email_key     TEXT UNIQUE,            -- trimmed, lower-cased email: the unique lookup key
    password_hash TEXT,                   -- argon2id PHC string
    ownid_data    TEXT,                   -- opaque OwnID data, stored as received
    created_at    BIGINT NOT NULL
);

-- SelfKey wallets; several per account. The address identifies a wallet in both the
-- public-key and the DID (did:eth) forms of the protocol.
CREATE TABLE wallets (
    address     TEXT PRIMARY KEY NOT NULL,   -- 0x + 40 lower-case hex
    public_key  TEXT NOT NULL,               -- 128 lower-case hex, no 04 prefix
    account_id  TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    attributes  TEXT NOT NULL,               -- JSON array of the wallet's attributes
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX wallets_account_id ON wallets (account_id);

-- Single-use values (challenges, login tokens, link tokens): consumed by one
-- DELETE ... RETURNING, so exactly one consumer wins, on any node.
CREATE TABLE one_time_tokens (
    id          TEXT PRIMARY KEY NOT NULL,
    purpose     TEXT NOT NULL,
    subject     TEXT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX one_time_tokens_expires_at ON one_time_tokens (expires_at);

-- Replay guard for signed requests (OwnID): a key is accepted once until it expires.
CREATE TABLE seen_requests (
    key         TEXT PRIMARY KEY NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX seen_requests_expires_at ON seen_requests (expires_at);

-- Fixed-window counters for rate limits and login lockouts, shared by every node.
CREATE TABLE rate_counters (
    key           TEXT PRIMARY KEY NOT NULL,
    window_start  BIGINT NOT NULL,
    count         BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL
);
CREATE INDEX rate_counters_expires_at ON rate_counters (expires_at);
