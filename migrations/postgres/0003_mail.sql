-- Mail: link tokens and the durable outbox. Times are Unix seconds (UTC).

-- Tokens sent in links (password reset, email verification). Only a keyed hash of
-- each is stored; a token is consumed by one DELETE ... RETURNING, and issuing a
-- new one deletes every older one of its purpose for the account.
CREATE TABLE mail_tokens (
    hash        TEXT PRIMARY KEY NOT NULL,   -- hex HMAC-SHA256 of purpose and token
    purpose     TEXT NOT NULL,
    account_id  TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    detail      TEXT,                        -- what the token grants beyond the account
    expires_at  BIGINT NOT NULL
);
CREATE INDEX mail_tokens_account ON mail_tokens (account_id, purpose);
CREATE INDEX mail_tokens_expires_at ON mail_tokens (expires_at);

-- Mails waiting to be sent, queued in the transaction that made what they carry.
-- A sender leases due rows (leased_until in the future: another sender has them),
-- deletes each once the SMTP server took it, or moves next_attempt_at on.
CREATE TABLE mail_outbox (
    id              TEXT PRIMARY KEY NOT NULL,
    account_id      TEXT REFERENCES accounts (id) ON DELETE CASCADE,
    recipient       TEXT NOT NULL,
    kind            TEXT NOT NULL,
    context         TEXT NOT NULL,           -- JSON: the template's values
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,         -- not worth sending after this
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    leased_until    BIGINT NOT NULL DEFAULT 0,
    lease           TEXT,
    last_error      TEXT
);
CREATE INDEX mail_outbox_due ON mail_outbox (next_attempt_at);
CREATE INDEX mail_outbox_account ON mail_outbox (account_id);
