-- Accounts an operator can disable (`gatehouse users disable`), and when each last
-- signed in (`gatehouse users show`). Times are Unix seconds (UTC).
--
-- A disabled account keeps its data; every sign-in and every token check refuses it,
-- and disabling ends its sessions in the same transaction.
ALTER TABLE accounts ADD COLUMN disabled_at INTEGER;
ALTER TABLE accounts ADD COLUMN last_sign_in_at INTEGER;

-- Every sign-in starts a session: the session's row says when, so the account's
-- last sign-in is kept by the database itself, with no statement more per sign-in.
CREATE TRIGGER sessions_last_sign_in AFTER INSERT ON sessions
BEGIN
    UPDATE accounts SET last_sign_in_at = NEW.auth_time WHERE id = NEW.account_id;
END;

-- Periodic jobs that one node at a time runs (the purge of expired rows): the node
-- holding a job's row until `expires_at` runs it, and renews the row as it does.
CREATE TABLE leases (
    name        TEXT PRIMARY KEY NOT NULL,
    holder      TEXT NOT NULL,
    expires_at  INTEGER NOT NULL
) STRICT;
