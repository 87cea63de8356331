//! The authorization endpoint's rows: pending authorization requests (single use,
//! short-lived) and the consents people gave to clients. The narrow interface
//! `/oauth/authorize` and the account page need, and its SQL, written once for both
//! backends.

use async_trait::async_trait;

use super::{Purged, StoreResult};
use crate::domain::AccountId;

/// A consent as the account page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consent {
    pub client_id: String,
    pub client_name: String,
    /// Space-separated.
    pub scopes: String,
    pub granted_at: i64,
}

#[async_trait]
pub trait AuthorizeStore: Send + Sync + 'static {
    /// Stores a pending request (`request`: the checked request, as text) under `id`.
    async fn add_request(
        &self,
        id: &str,
        client_id: &str,
        request: &str,
        expires_at: i64,
    ) -> StoreResult<()>;
    /// Takes a pending request, once: the row is deleted by the same statement that
    /// reads it. `None`: unknown, expired or taken already.
    async fn take_request(&self, id: &str, now: i64) -> StoreResult<Option<String>>;
    /// A pending request, read and left in place (for what a page shows or allows
    /// before the request is taken): `None` if unknown or expired.
    async fn peek_request(&self, id: &str, now: i64) -> StoreResult<Option<String>>;
    /// The scopes the account consented to for the client, if it did.
    async fn consent(&self, account: &AccountId, client_id: &str) -> StoreResult<Option<String>>;
    /// Records (or replaces) the account's consent to the client.
    async fn grant_consent(
        &self,
        account: &AccountId,
        client_id: &str,
        scopes: &str,
        now: i64,
    ) -> StoreResult<()>;
    /// The account's consents, by client name.
    async fn consents(&self, account: &AccountId) -> StoreResult<Vec<Consent>>;
    /// Removes the account's consent to the client and, in the same transaction, ends
    /// the client's sessions of the account (their refresh and access tokens are
    /// refused from then on). False if there was no consent and no session.
    async fn revoke_consent(&self, account: &AccountId, client_id: &str) -> StoreResult<bool>;
    /// The factors a session's sign-in proved (RFC 8176, space-separated).
    async fn session_amr(&self, session: &str) -> StoreResult<Option<String>>;
    /// The purge's batches ([`crate::purge`]): deletes at most `limit` pending requests
    /// expired at or before `now`.
    async fn purge_requests(&self, now: i64, limit: i64) -> StoreResult<Purged>;
}

pub(super) mod sql {
    pub const INSERT_REQUEST: &str =
        "INSERT INTO oidc_requests (id, client_id, request, expires_at) VALUES ($1, $2, $3, $4)";

    /// Only one taker can see the row come back.
    pub const TAKE_REQUEST: &str =
        "DELETE FROM oidc_requests WHERE id = $1 AND expires_at > $2 RETURNING request";

    pub const PEEK_REQUEST: &str =
        "SELECT request FROM oidc_requests WHERE id = $1 AND expires_at > $2";

    pub const CONSENT: &str =
        "SELECT scopes FROM oidc_consents WHERE account_id = $1 AND client_id = $2";

    pub const GRANT_CONSENT: &str =
        "INSERT INTO oidc_consents (account_id, client_id, scopes, granted_at)
     VALUES ($1, $2, $3, $4)
     ON CONFLICT (account_id, client_id) DO UPDATE SET scopes = excluded.scopes,
        granted_at = excluded.granted_at";

    pub const CONSENTS: &str = "SELECT c.client_id, k.name, c.scopes, c.granted_at
     FROM oidc_consents c JOIN oidc_clients k ON k.id = c.client_id
     WHERE c.account_id = $1 ORDER BY k.name, c.client_id";

    pub const REVOKE_CONSENT: &str =
        "DELETE FROM oidc_consents WHERE account_id = $1 AND client_id = $2";

    pub const END_CLIENT_SESSIONS: &str =
        "DELETE FROM sessions WHERE account_id = $1 AND oidc_client_id = $2";

    pub const SESSION_AMR: &str = "SELECT amr FROM sessions WHERE id = $1";

    use crate::store::queries::purge_batch;

    /// The purge's batches of expired requests (see [`purge_batch!`]), on SQLite.
    pub const PURGE: [(&str, &str); 1] = [(
        "oidc_requests",
        purge_batch!(sqlite, "oidc_requests", "expires_at"),
    )];

    /// [`PURGE`] on PostgreSQL.
    pub const PURGE_POSTGRES: [(&str, &str); 1] = [(
        "oidc_requests",
        purge_batch!(postgres, "oidc_requests", "id", "expires_at"),
    )];

    /// Every statement above, for the tests that prepare each on each backend.
    #[cfg(test)]
    pub const ALL: &[&str] = &[
        INSERT_REQUEST,
        TAKE_REQUEST,
        PEEK_REQUEST,
        CONSENT,
        GRANT_CONSENT,
        CONSENTS,
        REVOKE_CONSENT,
        END_CLIENT_SESSIONS,
        SESSION_AMR,
    ];
}
