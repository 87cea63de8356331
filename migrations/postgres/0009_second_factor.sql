-- The second factor (issue 25): TOTP, recovery codes, and the sign-ins that wait for
-- one. Times are Unix seconds (UTC).

-- An account's TOTP authenticator (RFC 6238: SHA-1, 6 digits, 30 s). It counts as a
-- second factor once confirmed with a valid code; a new enrolment replaces an
-- unconfirmed one. A time step is accepted once: `last_step` moves on in one
-- conditional UPDATE (`... WHERE last_step < $step`), so of concurrent requests with
-- the same code, on any node, exactly one succeeds.
CREATE TABLE totp_factors (
    account_id    TEXT PRIMARY KEY NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    secret        TEXT NOT NULL,      -- sealed (AES-256-GCM, key derived from the JWT secret)
    created_at    BIGINT NOT NULL,
    confirmed_at  BIGINT,            -- NULL until a valid code confirmed the enrolment
    last_step     BIGINT NOT NULL    -- the newest time step accepted (-1: none)
);

-- Recovery codes: ten per set, shown once, kept as SHA-256 digests, each used once
-- (`used_at` set in one conditional UPDATE). A new set deletes the old one.
CREATE TABLE recovery_codes (
    account_id  TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    code_hash   TEXT NOT NULL,        -- hex SHA-256 of the normalised code
    created_at  BIGINT NOT NULL,
    used_at     BIGINT,
    PRIMARY KEY (account_id, code_hash)
);

-- A sign-in whose first factor was proven and that owes the second: no session yet.
-- Its token is kept as a SHA-256 digest. Each attempt is counted before its code is
-- checked (`attempts < max` in the same UPDATE), so concurrent guesses on any node
-- get no more tries; a success deletes the row, so it is used once.
CREATE TABLE pending_signins (
    id_hash      TEXT PRIMARY KEY NOT NULL,
    account_id   TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    amr          TEXT NOT NULL,       -- the first factor's RFC 8176 values, space-separated
    method       TEXT NOT NULL,       -- how the session will have begun: password, siwe, ...
    enroll_only  BIGINT NOT NULL,    -- 1: accounts.require_mfa, the account has no factor yet
    attempts     BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX pending_signins_account_id ON pending_signins (account_id);
CREATE INDEX pending_signins_expires_at ON pending_signins (expires_at);

-- The factors a session's sign-in proved (RFC 8176 `amr` values, space-separated); its
-- tokens carry them, and a refresh keeps them exactly. Sessions started before: none.
ALTER TABLE sessions ADD COLUMN amr TEXT NOT NULL DEFAULT '';
