-- Social sign-in (issue 27): the upstream identities linked to accounts, the pending
-- sign-ins between the redirect to a provider and its callback, and the single-use
-- codes an API-mode callback hands a single-page app. Times are Unix seconds (UTC).

-- An upstream identity is (provider, subject), never an email; one belongs to one
-- account. `email` is what the provider said when it was linked, for display only.
CREATE TABLE social_identities (
    id          TEXT PRIMARY KEY NOT NULL,
    provider    TEXT NOT NULL,                 -- the configured provider's id
    subject     TEXT NOT NULL,                 -- the upstream `sub` (GitHub: the user id)
    account_id  TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    email       TEXT,
    linked_at   INTEGER NOT NULL,
    UNIQUE (provider, subject)
) STRICT;
CREATE INDEX social_identities_account_id ON social_identities (account_id);

-- A sign-in (or a link) sent to a provider and not back yet: single use, consumed by
-- one DELETE ... RETURNING at the callback. Only digests of the `state` and of the
-- browser's binding cookie are stored; the PKCE verifier and the nonce are stored as
-- they are, for the few minutes the row lives (they are worth nothing without the
-- upstream's code, which only the callback carries).
CREATE TABLE social_pending (
    state_hash    TEXT PRIMARY KEY NOT NULL,
    binding_hash  TEXT NOT NULL,
    provider      TEXT NOT NULL,
    nonce         TEXT NOT NULL,
    verifier      TEXT NOT NULL,
    mode          TEXT NOT NULL,               -- browser, api or link
    return_to     TEXT,
    link_account  TEXT REFERENCES accounts (id) ON DELETE CASCADE,
    link_session  TEXT,
    expires_at    INTEGER NOT NULL
) STRICT;
CREATE INDEX social_pending_expires_at ON social_pending (expires_at);

-- What an API-mode callback hands back instead of tokens: a code, single use, for 60
-- seconds, exchanged at POST /auth/social/exchange. Only its digest is stored.
CREATE TABLE social_codes (
    code_hash   TEXT PRIMARY KEY NOT NULL,
    account_id  TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    provider    TEXT NOT NULL,
    expires_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX social_codes_expires_at ON social_codes (expires_at);
