//! Social sign-in's rows: the identities linked to accounts, the pending sign-ins
//! between a provider's redirect and its callback, and the API mode's exchange codes.
//! The narrow interface [`crate::signin::social`] needs, and its SQL, written once for
//! both backends. Every single-use row is consumed by one `DELETE … RETURNING`.

use async_trait::async_trait;

use super::{NewAccount, StoreResult};
use crate::domain::AccountId;

/// A pending sign-in as stored: digests of its `state` and binding cookie, never them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPending {
    pub state_hash: String,
    pub binding_hash: String,
    pub provider: String,
    pub nonce: String,
    pub verifier: String,
    /// `browser`, `api` or `link`.
    pub mode: String,
    pub return_to: Option<String>,
    pub link_account: Option<AccountId>,
    pub link_session: Option<String>,
    pub expires_at: i64,
}

/// An upstream identity about to be linked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewIdentity {
    pub id: String,
    pub provider: String,
    pub subject: String,
    pub email: Option<String>,
    /// The person's name as the provider gave it (Apple: on the first sign-in only).
    pub display_name: Option<String>,
    pub linked_at: i64,
}

/// A linked identity, as its account's owner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentitySummary {
    pub id: String,
    pub provider: String,
    pub email: Option<String>,
    pub display_name: Option<String>,
    pub linked_at: i64,
}

/// The account an identity belongs to, and the name kept for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownIdentity {
    pub account: AccountId,
    pub display_name: Option<String>,
}

/// What linking an identity to an existing account did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityAdded {
    Added,
    /// This identity is linked to this account already.
    AlreadyLinked,
    /// Refused: the session that asked for the link has ended.
    SessionEnded,
}

/// What removing an identity did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityRemoval {
    Removed,
    NotFound,
    /// Refused: it is the account's last way to sign in.
    LastSignInMethod,
}

#[async_trait]
pub trait SocialStore: Send + Sync + 'static {
    async fn put_social_pending(&self, pending: &StoredPending) -> StoreResult<()>;
    /// Consumes a live pending sign-in of this browser (`binding_hash`): of concurrent
    /// callers exactly one gets it; another browser's callback leaves it alone.
    async fn take_social_pending(
        &self,
        state_hash: &str,
        binding_hash: &str,
        now: i64,
    ) -> StoreResult<Option<StoredPending>>;
    /// The account an identity belongs to, and the name kept for it.
    async fn identity_account(
        &self,
        provider: &str,
        subject: &str,
    ) -> StoreResult<Option<KnownIdentity>>;
    /// Keeps `name` as the identity's display name (a name, never nothing: Apple sends
    /// it only once).
    async fn set_identity_name(&self, provider: &str, subject: &str, name: &str)
    -> StoreResult<()>;
    /// Creates an account and its first identity in one transaction; the email is
    /// verified (proven at `linked_at`) when `email_verified`. `Conflict(Email)` when
    /// the address has an account, `Conflict(Other)` when the identity is linked.
    async fn create_account_with_identity(
        &self,
        account: &NewAccount,
        identity: &NewIdentity,
        email_verified: bool,
    ) -> StoreResult<()>;
    /// Links an identity to an existing account if `session` (the one that asked)
    /// still lives, checked in the write itself; `Conflict(Other)` when the identity
    /// belongs to another account.
    async fn add_identity(
        &self,
        account: &AccountId,
        identity: &NewIdentity,
        session: &str,
        now: i64,
    ) -> StoreResult<IdentityAdded>;
    /// The account's identities, oldest first.
    async fn identities(&self, account: &AccountId) -> StoreResult<Vec<IdentitySummary>>;
    /// Unlinks an identity unless it is the account's last way to sign in; atomic
    /// against concurrent removals.
    async fn remove_identity(&self, account: &AccountId, id: &str) -> StoreResult<IdentityRemoval>;
    /// Stores an API-mode exchange code (its digest) until `expires_at`.
    async fn put_social_code(
        &self,
        code_hash: &str,
        account: &AccountId,
        provider: &str,
        expires_at: i64,
    ) -> StoreResult<()>;
    /// Consumes a live exchange code: the account and provider it was for.
    async fn take_social_code(
        &self,
        code_hash: &str,
        now: i64,
    ) -> StoreResult<Option<(AccountId, String)>>;
}

pub(super) mod sql {
    pub const INSERT_PENDING: &str = "INSERT INTO social_pending (state_hash, binding_hash,
        provider, nonce, verifier, mode, return_to, link_account, link_session, expires_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";

    pub const TAKE_PENDING: &str = "DELETE FROM social_pending
     WHERE state_hash = $1 AND binding_hash = $2 AND expires_at > $3
     RETURNING state_hash, binding_hash, provider, nonce, verifier, mode, return_to,
        link_account, link_session, expires_at";

    pub const IDENTITY_ACCOUNT: &str = "SELECT account_id, display_name FROM social_identities
     WHERE provider = $1 AND subject = $2";

    pub const SET_DISPLAY_NAME: &str =
        "UPDATE social_identities SET display_name = $1 WHERE provider = $2 AND subject = $3";

    pub const INSERT_IDENTITY: &str = "INSERT INTO social_identities (id, provider, subject,
        account_id, email, linked_at, display_name)
     VALUES ($1, $2, $3, $4, $5, $6, $7)";

    pub const MARK_VERIFIED: &str =
        "UPDATE accounts SET email_verified = TRUE, email_proven_at = $1 WHERE id = $2";

    pub const IDENTITIES: &str = "SELECT id, provider, email, linked_at, display_name
     FROM social_identities
     WHERE account_id = $1 ORDER BY linked_at, id";

    pub const IDENTITY_LINKED_TO: &str =
        "SELECT account_id FROM social_identities WHERE provider = $1 AND subject = $2";

    /// As wallets are removed ([`super::super::queries::LOCK_ACCOUNT`] first): only
    /// while another way in is left.
    pub const DELETE_IDENTITY_UNLESS_LAST: &str =
        "DELETE FROM social_identities WHERE id = $1 AND account_id = $2 AND (
        (SELECT COUNT(*) FROM social_identities WHERE account_id = $2) > 1
        OR EXISTS (SELECT 1 FROM wallets WHERE account_id = $2)
        OR EXISTS (SELECT 1 FROM passkeys WHERE account_id = $2)
        OR EXISTS (SELECT 1 FROM accounts WHERE id = $2
                   AND (password_hash IS NOT NULL OR ownid_data IS NOT NULL)))";

    pub const IDENTITY_EXISTS: &str =
        "SELECT id FROM social_identities WHERE id = $1 AND account_id = $2";

    pub const INSERT_CODE: &str = "INSERT INTO social_codes (code_hash, account_id, provider,
        expires_at) VALUES ($1, $2, $3, $4)";

    pub const TAKE_CODE: &str = "DELETE FROM social_codes
     WHERE code_hash = $1 AND expires_at > $2 RETURNING account_id, provider";

    /// Every statement above, for the tests that prepare each on each backend.
    #[cfg(test)]
    pub const ALL: &[&str] = &[
        INSERT_PENDING,
        TAKE_PENDING,
        IDENTITY_ACCOUNT,
        SET_DISPLAY_NAME,
        INSERT_IDENTITY,
        MARK_VERIFIED,
        IDENTITIES,
        IDENTITY_LINKED_TO,
        DELETE_IDENTITY_UNLESS_LAST,
        IDENTITY_EXISTS,
        INSERT_CODE,
        TAKE_CODE,
    ];
}
