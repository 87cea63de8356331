-- Sessions: what every sign-in starts and every account token names (`sid`). A
-- session ends by deleting its row, so every token of it is refused at once, on every
-- node. Times are Unix seconds (UTC).
--
-- No refresh token is stored: a refresh token is `<id>.<generation>.<mac>`, the MAC
-- keyed with a key derived from the signing secret, so a copy of this table yields
-- no usable token. Refreshing moves `generation` on by one in one conditional UPDATE.
CREATE TABLE sessions (
    id               TEXT PRIMARY KEY NOT NULL,  -- 32 hex digits, the tokens' `sid`
    account_id       TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    generation       INTEGER NOT NULL,           -- of the current refresh token
    rotated_at       INTEGER NOT NULL,           -- when `generation` last moved
    replays          INTEGER NOT NULL,           -- the previous token's replays since
    method           TEXT NOT NULL,              -- how the session began: password, selfkey, ownid, …
    user_agent       TEXT,
    ip               TEXT,
    auth_time        INTEGER NOT NULL,           -- when the person signed in
    created_at       INTEGER NOT NULL,
    last_used_at     INTEGER NOT NULL,           -- the last refresh
    idle_expires_at  INTEGER NOT NULL,           -- last use + idle timeout, capped by expires_at
    expires_at       INTEGER NOT NULL            -- absolute end
) STRICT;
CREATE INDEX sessions_account_id ON sessions (account_id);
CREATE INDEX sessions_idle_expires_at ON sessions (idle_expires_at);
