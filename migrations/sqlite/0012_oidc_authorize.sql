-- The authorization endpoint's state: pending authorization requests (between
-- /oauth/authorize, the sign-in pages and the consent page; single use, short-lived,
-- so that a request begun on one node finishes on any other) and the consents a
-- person gave to a client. Times are Unix seconds (UTC).
CREATE TABLE oidc_requests (
    id          TEXT PRIMARY KEY NOT NULL,   -- random, in the browser's URL or form
    client_id   TEXT NOT NULL REFERENCES oidc_clients (id) ON DELETE CASCADE,
    request     TEXT NOT NULL,               -- the checked request, JSON
    expires_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX oidc_requests_expires_at ON oidc_requests (expires_at);

-- Consent per account and client, with the scopes granted (space-separated): a
-- request for the same or fewer scopes does not ask again. Revoking it ends the
-- client's sessions of the account.
CREATE TABLE oidc_consents (
    account_id  TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    client_id   TEXT NOT NULL REFERENCES oidc_clients (id) ON DELETE CASCADE,
    scopes      TEXT NOT NULL,
    granted_at  INTEGER NOT NULL,
    PRIMARY KEY (account_id, client_id)
) STRICT;
CREATE INDEX oidc_consents_client_id ON oidc_consents (client_id);
