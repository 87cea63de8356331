//! The OpenID Connect provider's rows: clients, authorization codes and used client
//! assertions. The narrow interface [`crate::oidc`] needs, and its SQL, written once
//! for both backends (as in [`super::queries`]).

use async_trait::async_trait;

use super::sessions::NewSession;
use super::{Purged, StoreResult};
use crate::domain::client::Client;

/// An authorization code as stored: its hash, never the code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCode {
    pub code_hash: String,
    pub client_id: String,
    pub account_id: String,
    pub session_id: String,
    pub redirect_uri: String,
    pub scopes: String,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub auth_time: i64,
    /// The factors the authorizing sign-in proved (RFC 8176, space-separated).
    pub amr: String,
    pub expires_at: i64,
}

/// What using a code found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeUse {
    /// Consumed now, by this use alone.
    Fresh(Box<StoredCode>),
    /// Consumed before: the session its tokens went to has been ended.
    Replayed,
    /// No such code, or it expired.
    Unknown,
}

/// A logout token owed to a client (OpenID Connect Back-Channel Logout), leased to
/// this deliverer. The database queued it as the session ended; the token is signed
/// at delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedLogout {
    /// Also the logout token's `jti`, the same at every attempt.
    pub id: String,
    pub client_id: String,
    pub account_id: String,
    pub session_id: String,
    pub created_at: i64,
    pub attempts: i64,
}

#[async_trait]
pub trait OidcStore: Send + Sync + 'static {
    /// Registers a client; `Conflict` if its id is taken.
    async fn add_client(&self, client: &Client) -> StoreResult<()>;
    async fn client(&self, id: &str) -> StoreResult<Option<Client>>;
    /// The client's revision, which every write of its row changes; `None` for no
    /// such client. One small read by key: a node that keeps a parsed client checks
    /// it is still the registration with this ([`crate::oidc::provider`]).
    async fn client_revision(&self, id: &str) -> StoreResult<Option<String>>;
    /// Every client, by name.
    async fn clients(&self) -> StoreResult<Vec<Client>>;
    /// Rewrites a client's registration (not its id, secret or creation time); false if
    /// there is no such client.
    async fn update_client(&self, client: &Client) -> StoreResult<bool>;
    /// Removes a client, its codes with it; false if there was none.
    async fn remove_client(&self, id: &str) -> StoreResult<bool>;
    /// Replaces a client's secret hash; false if there is no such client.
    async fn set_client_secret(&self, id: &str, hash: &str, now: i64) -> StoreResult<bool>;
    /// Makes the clients of the configuration exactly `clients` (source `config`), in
    /// one transaction: each is written whole, and configuration clients no longer
    /// listed are removed. Clients registered with the CLI are not touched.
    async fn sync_config_clients(&self, clients: &[Client]) -> StoreResult<()>;

    async fn add_code(&self, code: &StoredCode) -> StoreResult<()>;
    /// Adds `code` for the pending authorization request `request`, taking the request
    /// (as [`AuthorizeStore::take_request`] does, if it has not expired at `now`) in the
    /// same transaction: the code is added only if this write took the request. False,
    /// and no code: the request was unknown, expired or taken already.
    ///
    /// [`AuthorizeStore::take_request`]: super::authorize::AuthorizeStore::take_request
    async fn add_code_taking(
        &self,
        code: &StoredCode,
        request: &str,
        now: i64,
    ) -> StoreResult<bool>;
    /// Consumes a code in one conditional write; a second use ends the session of the
    /// first (deletes its row, and so every token of it) in the same transaction.
    async fn use_code(&self, code_hash: &str, now: i64) -> StoreResult<CodeUse>;
    /// A live code not used yet, read and left in place: what an exchange checks before
    /// it redeems the code ([`OidcStore::redeem_code`]). `None`: unknown, expired or used.
    async fn peek_code(&self, code_hash: &str, now: i64) -> StoreResult<Option<StoredCode>>;
    /// Consumes a code as [`OidcStore::use_code`] does and, only if this write consumed
    /// it, starts `session` (the session of the code's tokens) in the same transaction:
    /// one write, and never a session without its code spent. A code used meanwhile is
    /// a second use (`Replayed`, the first use's session ended); one expired
    /// meanwhile is `Unknown`.
    async fn redeem_code(
        &self,
        code_hash: &str,
        now: i64,
        session: &NewSession,
    ) -> StoreResult<CodeUse>;
    /// Records a client assertion's `jti`; false if this client used it already.
    async fn use_assertion(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: i64,
        now: i64,
    ) -> StoreResult<bool>;
    /// The client and scopes of an OIDC session; `None` for no session, or one that is
    /// not an OIDC session.
    async fn oidc_session(&self, session: &str) -> StoreResult<Option<(String, String)>>;
    /// Ends an OIDC session (deletes its row); false if there was none.
    async fn end_oidc_session(&self, session: &str) -> StoreResult<bool>;
    /// The purge's batches ([`crate::purge`]): deletes at most `limit` codes an hour
    /// past their expiry at `now`, and at most `limit` assertion records expired at or
    /// before `now`.
    async fn purge_oidc(&self, now: i64, limit: i64) -> StoreResult<Purged>;

    /// Leases up to `limit` due logout tokens until `leased_until`, under the name
    /// `lease`; rows another deliverer holds are skipped.
    async fn lease_logouts(
        &self,
        lease: &str,
        now: i64,
        leased_until: i64,
        limit: i64,
    ) -> StoreResult<Vec<QueuedLogout>>;
    /// Deletes a logout this deliverer still holds: delivered, or given up.
    async fn logout_done(&self, lease: &str, id: &str) -> StoreResult<()>;
    /// Gives a logout back for another attempt at `next_attempt_at`.
    async fn logout_failed(
        &self,
        lease: &str,
        id: &str,
        next_attempt_at: i64,
        error: &str,
    ) -> StoreResult<()>;
}

/// A client's lists, as stored.
pub(super) fn list_to_text(list: &[String]) -> String {
    serde_json::to_string(list).expect("strings serialise")
}

pub(super) fn list_from_text(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

pub(super) mod sql {
    /// Every write of a client row sets `revision` (`$16` here) to a new random value.
    pub const INSERT_CLIENT: &str = "INSERT INTO oidc_clients (id, name, secret_hash, public,
        first_party, redirect_uris, post_logout_redirect_uris, grant_types,
        token_endpoint_auth_method, jwks, id_token_signed_response_alg,
        backchannel_logout_uri, source, created_at, updated_at, revision)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)";

    pub const UPSERT_CONFIG_CLIENT: &str = "INSERT INTO oidc_clients (id, name, secret_hash,
        public, first_party, redirect_uris, post_logout_redirect_uris, grant_types,
        token_endpoint_auth_method, jwks, id_token_signed_response_alg,
        backchannel_logout_uri, source, created_at, updated_at, revision)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
     ON CONFLICT (id) DO UPDATE SET name = excluded.name, secret_hash = excluded.secret_hash,
        public = excluded.public, first_party = excluded.first_party,
        redirect_uris = excluded.redirect_uris,
        post_logout_redirect_uris = excluded.post_logout_redirect_uris,
        grant_types = excluded.grant_types,
        token_endpoint_auth_method = excluded.token_endpoint_auth_method,
        jwks = excluded.jwks,
        id_token_signed_response_alg = excluded.id_token_signed_response_alg,
        backchannel_logout_uri = excluded.backchannel_logout_uri, source = excluded.source,
        updated_at = excluded.updated_at, revision = excluded.revision";

    pub const CLIENT_BY_ID: &str = "SELECT id, name, secret_hash, public, first_party,
        redirect_uris, post_logout_redirect_uris, grant_types, token_endpoint_auth_method,
        jwks, id_token_signed_response_alg, backchannel_logout_uri, source, created_at,
        updated_at
     FROM oidc_clients WHERE id = $1";

    pub const EVERY_CLIENT: &str = "SELECT id, name, secret_hash, public, first_party,
        redirect_uris, post_logout_redirect_uris, grant_types, token_endpoint_auth_method,
        jwks, id_token_signed_response_alg, backchannel_logout_uri, source, created_at,
        updated_at
     FROM oidc_clients ORDER BY name, id";

    pub const UPDATE_CLIENT: &str = "UPDATE oidc_clients SET name = $1, public = $2,
        first_party = $3, redirect_uris = $4, post_logout_redirect_uris = $5,
        grant_types = $6, token_endpoint_auth_method = $7, jwks = $8,
        id_token_signed_response_alg = $9, backchannel_logout_uri = $10, updated_at = $11,
        revision = $12
     WHERE id = $13";

    pub const DELETE_CLIENT: &str = "DELETE FROM oidc_clients WHERE id = $1";

    pub const SET_SECRET: &str =
        "UPDATE oidc_clients SET secret_hash = $1, updated_at = $2, revision = $3 WHERE id = $4";

    /// A client's revision: what a node checks its parsed copy against.
    pub const CLIENT_REVISION: &str = "SELECT revision FROM oidc_clients WHERE id = $1";

    pub const CONFIG_CLIENT_IDS: &str = "SELECT id FROM oidc_clients WHERE source = 'config'";

    pub const INSERT_CODE: &str = "INSERT INTO oidc_codes (code_hash, client_id, account_id,
        session_id, redirect_uri, scopes, nonce, code_challenge, auth_time, expires_at, amr)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";

    /// Consumes a live code: only one use can see a row come back.
    pub const CONSUME_CODE: &str = "UPDATE oidc_codes SET consumed_at = $1
     WHERE code_hash = $2 AND consumed_at IS NULL AND expires_at > $1
     RETURNING code_hash, client_id, account_id, session_id, redirect_uri, scopes, nonce,
        code_challenge, auth_time, expires_at, amr";

    /// A live code not used yet, left in place.
    pub const PEEK_CODE: &str = "SELECT code_hash, client_id, account_id, session_id,
        redirect_uri, scopes, nonce, code_challenge, auth_time, expires_at, amr
     FROM oidc_codes WHERE code_hash = $1 AND consumed_at IS NULL AND expires_at > $2";

    /// The session of a code consumed before, for ending it.
    pub const REPLAYED_CODE_SESSION: &str =
        "SELECT session_id FROM oidc_codes WHERE code_hash = $1 AND consumed_at IS NOT NULL";

    pub const END_SESSION: &str = "DELETE FROM sessions WHERE id = $1";

    pub const OIDC_SESSION: &str = "SELECT oidc_client_id, oidc_scopes FROM sessions
     WHERE id = $1 AND oidc_client_id IS NOT NULL";

    pub const END_OIDC_SESSION: &str =
        "DELETE FROM sessions WHERE id = $1 AND oidc_client_id IS NOT NULL";

    pub const INSERT_ASSERTION: &str = "INSERT INTO oidc_assertions (client_id, jti, expires_at)
     VALUES ($1, $2, $3) ON CONFLICT (client_id, jti) DO NOTHING";

    use crate::store::queries::purge_batch;

    /// The purge's batches of codes and used assertions (see [`purge_batch!`]), on
    /// SQLite. A consumed code is kept an hour past its expiry to recognise a late
    /// replay.
    pub const PURGE: [(&str, &str); 2] = [
        (
            "oidc_codes",
            purge_batch!(sqlite, "oidc_codes", "expires_at", "$1 - 3600"),
        ),
        (
            "oidc_assertions",
            purge_batch!(sqlite, "oidc_assertions", "expires_at"),
        ),
    ];

    /// [`PURGE`] on PostgreSQL; an assertion's key is two columns: they go by `ctid`.
    pub const PURGE_POSTGRES: [(&str, &str); 2] = [
        (
            "oidc_codes",
            purge_batch!(
                postgres,
                "oidc_codes",
                "code_hash",
                "expires_at",
                "$1 - 3600"
            ),
        ),
        (
            "oidc_assertions",
            purge_batch!(postgres, "oidc_assertions", "ctid", "expires_at"),
        ),
    ];

    /// The due logouts nobody holds, oldest first (see the mail outbox's lease).
    pub const LEASE_LOGOUTS: &str = "UPDATE oidc_logouts SET lease = $1, leased_until = $2
        WHERE id IN (SELECT id FROM oidc_logouts
                     WHERE next_attempt_at <= $3 AND leased_until <= $3
                     ORDER BY next_attempt_at LIMIT $4)
        RETURNING id, client_id, account_id, session_id, created_at, attempts";

    pub const LEASE_LOGOUTS_POSTGRES: &str = "UPDATE oidc_logouts SET lease = $1,
        leased_until = $2
        WHERE id IN (SELECT id FROM oidc_logouts
                     WHERE next_attempt_at <= $3 AND leased_until <= $3
                     ORDER BY next_attempt_at LIMIT $4
                     FOR UPDATE SKIP LOCKED)
        RETURNING id, client_id, account_id, session_id, created_at, attempts";

    pub const LOGOUT_DONE: &str = "DELETE FROM oidc_logouts WHERE id = $1 AND lease = $2";

    pub const LOGOUT_FAILED: &str = "UPDATE oidc_logouts SET attempts = attempts + 1,
        next_attempt_at = $1, leased_until = 0, lease = NULL, last_error = $2
        WHERE id = $3 AND lease = $4";

    /// Every statement above, for the tests that prepare each on each backend.
    #[cfg(test)]
    pub const ALL: &[&str] = &[
        LEASE_LOGOUTS,
        LOGOUT_DONE,
        LOGOUT_FAILED,
        INSERT_CLIENT,
        UPSERT_CONFIG_CLIENT,
        CLIENT_BY_ID,
        EVERY_CLIENT,
        UPDATE_CLIENT,
        DELETE_CLIENT,
        SET_SECRET,
        CLIENT_REVISION,
        CONFIG_CLIENT_IDS,
        INSERT_CODE,
        CONSUME_CODE,
        PEEK_CODE,
        REPLAYED_CODE_SESSION,
        END_SESSION,
        OIDC_SESSION,
        END_OIDC_SESSION,
        INSERT_ASSERTION,
        PURGE[0].1,
        PURGE[1].1,
    ];
}
