-- OpenID Connect Back-Channel Logout 1.0: a logout token owed to a client whose OIDC
-- session ended while it lived. The row is written by a trigger on the session's
-- DELETE, so every path that ends a session (sign-out, revocation, a replayed code, a
-- reused refresh token, a password reset, a deleted or MFA-reset account, the
-- per-account cap; and, by the second trigger, a disabled account) queues it in the
-- same statement, and no code path can forget to. Sessions the purge deletes after
-- their idle end are not logged out (they ended by timing out, not by anyone's act).
-- Every node's deliverer leases due rows, signs
-- the token at delivery (the keys are not in the database in the clear), POSTs it,
-- and deletes the row once the client answered 2xx; a failure moves next_attempt_at
-- on. Times are Unix seconds (UTC).
CREATE TABLE oidc_logouts (
    id              TEXT PRIMARY KEY NOT NULL,  -- also the logout token's jti
    client_id       TEXT NOT NULL,              -- its aud; no reference: see the trigger
    account_id      TEXT NOT NULL,              -- its sub; kept when the account is deleted
    session_id      TEXT NOT NULL,              -- its sid
    created_at      BIGINT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    leased_until    BIGINT NOT NULL DEFAULT 0,
    lease           TEXT,
    last_error      TEXT
);
CREATE INDEX oidc_logouts_due ON oidc_logouts (next_attempt_at);

CREATE FUNCTION sessions_backchannel_logout() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    now_secs BIGINT := floor(extract(epoch FROM clock_timestamp()))::BIGINT;
BEGIN
    -- A disabled account's sessions were logged out as it was disabled (below).
    IF OLD.idle_expires_at > now_secs AND NOT EXISTS (SELECT 1 FROM accounts a
            WHERE a.id = OLD.account_id AND a.disabled_at IS NOT NULL) THEN
        INSERT INTO oidc_logouts (id, client_id, account_id, session_id, created_at,
            next_attempt_at)
        SELECT replace(gen_random_uuid()::text, '-', ''), c.id, OLD.account_id, OLD.id,
            now_secs, now_secs
        FROM oidc_clients c
        WHERE c.id = OLD.oidc_client_id AND c.backchannel_logout_uri IS NOT NULL;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER sessions_backchannel_logout AFTER DELETE ON sessions
    FOR EACH ROW WHEN (OLD.oidc_client_id IS NOT NULL)
    EXECUTE FUNCTION sessions_backchannel_logout();

-- Disabling an account keeps its session rows (every check refuses them; enabling it
-- deletes them), so its live OIDC sessions are logged out as it is disabled.
CREATE FUNCTION accounts_disabled_backchannel_logout() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    now_secs BIGINT := floor(extract(epoch FROM clock_timestamp()))::BIGINT;
BEGIN
    INSERT INTO oidc_logouts (id, client_id, account_id, session_id, created_at,
        next_attempt_at)
    SELECT replace(gen_random_uuid()::text, '-', ''), c.id, s.account_id, s.id,
        now_secs, now_secs
    FROM sessions s JOIN oidc_clients c ON c.id = s.oidc_client_id
    WHERE s.account_id = NEW.id AND s.idle_expires_at > now_secs
        AND c.backchannel_logout_uri IS NOT NULL;
    RETURN NULL;
END
$$;

CREATE TRIGGER accounts_disabled_backchannel_logout AFTER UPDATE OF disabled_at ON accounts
    FOR EACH ROW WHEN (OLD.disabled_at IS NULL AND NEW.disabled_at IS NOT NULL)
    EXECUTE FUNCTION accounts_disabled_backchannel_logout();

-- A client row's revision: a random value every write of the row sets anew, so a node
-- that keeps a parsed client can tell with one small read whether it is still the
-- registration (see oidc::provider's client cache).
ALTER TABLE oidc_clients ADD COLUMN revision TEXT NOT NULL DEFAULT '';
