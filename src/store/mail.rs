//! Mail in the database: link tokens and the durable outbox, the narrow interface the
//! mail rules ([`crate::mail`], [`crate::lifecycle`]) need, and its SQL, written once
//! for both backends (as in [`super::queries`]) except where PostgreSQL locks rows.
//!
//! A mail is queued in the same transaction as the token it carries, so a token never
//! exists without its mail nor a mail without its token. Senders lease due rows for a
//! while; a row is deleted once the SMTP server has taken it, so of several nodes on
//! one PostgreSQL exactly one sends each mail.

use async_trait::async_trait;

use super::{Purged, StoreResult};
use crate::domain::AccountId;

/// A mail to queue.
#[derive(Debug, Clone)]
pub struct NewMail {
    pub id: String,
    /// The account it is about; its mail goes when the account does.
    pub account: Option<AccountId>,
    /// `None`: the account's email, read in the transaction that queues the mail (no
    /// mail when the account has none).
    pub recipient: Option<String>,
    pub kind: String,
    /// The template's values, JSON.
    pub context: String,
    pub created_at: i64,
    /// Not sent after this.
    pub expires_at: i64,
}

/// A link token to store: its keyed hash only.
#[derive(Debug, Clone)]
pub struct NewLinkToken {
    pub hash: String,
    pub purpose: String,
    pub account: AccountId,
    pub detail: Option<String>,
    pub expires_at: i64,
}

/// A mail leased to this sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMail {
    pub id: String,
    pub recipient: String,
    pub kind: String,
    pub context: String,
    pub attempts: i64,
}

/// What using a link token did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkUse {
    /// No live token of that purpose has this hash (never issued, used, voided or
    /// expired).
    Refused,
    /// The token's account is disabled: nothing changed, the token is left as it was.
    AccountDisabled,
    Done {
        account: AccountId,
    },
}

/// Which sessions of the account a change ends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum EndSessions {
    #[default]
    None,
    All,
    /// Every session but this one (the one that made the change).
    Others(String),
}

/// What a change does to when the account's address was last proven.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Proof {
    #[default]
    Unchanged,
    /// Proven at this time (the address is verified), or, `None`, never (unverified).
    Set(Option<i64>),
}

/// Which ways in (wallets, passkeys, OwnID data) a change removes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Unproven {
    #[default]
    Keep,
    /// Those added since the account's address was last proven (as it stood before
    /// the change), every one if it never was.
    SinceProof,
    /// Those added at or after this time; every one with `None`.
    Since(Option<i64>),
}

/// A way in a change removed, as the owner's notice lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RemovedWayIn {
    /// `wallet`, `passkey` or `ownid`.
    pub kind: &'static str,
    /// The wallet's address, the passkey's name; empty for OwnID.
    pub name: String,
}

/// What using a link token, or a signed-in change, does to its account: all of it in
/// the one transaction that uses the token (or checks the password).
#[derive(Debug, Clone, Default)]
pub struct AccountChange {
    /// The new password's hash.
    pub password_hash: Option<String>,
    /// The account's email becomes this `(address, key)`; whether it is verified is
    /// `proof`'s.
    pub email: Option<(String, String)>,
    pub proof: Proof,
    /// The account's live tokens of these purposes are voided.
    pub void: Vec<&'static str>,
    /// The account's single-use values of these purposes (wallet link tokens) are
    /// voided.
    pub void_one_time: Vec<&'static str>,
    pub end_sessions: EndSessions,
    /// A token issued with the change (the revert link of an email change), for the
    /// change's account; it keeps when the account's address had last been proven
    /// before the change.
    pub issue: Option<NewLinkToken>,
    pub remove: Unproven,
    /// Queued when `remove` removed something, with the list under `removed`.
    pub removal_notice: Option<NewMail>,
    /// Mails queued with the change, about the change's account.
    pub mails: Vec<NewMail>,
}

/// `mail` with `removed` added to its template's values.
pub(crate) fn with_removed(mail: &NewMail, removed: &[RemovedWayIn]) -> NewMail {
    let mut context: serde_json::Value =
        serde_json::from_str(&mail.context).unwrap_or_else(|_| serde_json::json!({}));
    if let Some(values) = context.as_object_mut() {
        values.insert("removed".into(), serde_json::json!(removed));
    }
    NewMail {
        context: context.to_string(),
        ..mail.clone()
    }
}

#[async_trait]
pub trait MailStore: Send + Sync + 'static {
    /// Queues a mail that carries no token (a notice).
    async fn queue_mail(&self, mail: &NewMail) -> StoreResult<()>;

    /// In one transaction: voids every live token of the same purpose for the account,
    /// stores the new one, and queues the mail that carries it.
    async fn issue_link(&self, token: &NewLinkToken, mail: &NewMail) -> StoreResult<()>;

    /// The account, detail and recorded proof time of the live token of `purpose` with
    /// this hash, without using it.
    async fn peek_link(
        &self,
        token_hash: &str,
        purpose: &str,
        now: i64,
    ) -> StoreResult<Option<(AccountId, Option<String>, Option<i64>)>>;

    /// In one transaction: consumes the live token of `purpose` with this hash and
    /// makes `change` to its account, unless the account is disabled. Of concurrent
    /// callers with one token exactly one gets `Done`. `Err(Conflict(Email))` when the new email is another account's:
    /// then nothing changed, and the token still works.
    async fn use_link(
        &self,
        token_hash: &str,
        purpose: &str,
        now: i64,
        change: &AccountChange,
    ) -> StoreResult<LinkUse>;

    /// In one transaction: makes `change` to the account if its password hash is still
    /// `password_was` (`None`: it has none), so of two concurrent changes from one
    /// password only one applies. False when it is not (or there is no account).
    async fn change_account(
        &self,
        account: &AccountId,
        password_was: Option<&str>,
        change: &AccountChange,
    ) -> StoreResult<bool>;

    /// Deletes an account and everything of it, in one transaction: its sessions,
    /// passkeys, wallets, link tokens and queued mail (by the foreign keys), the
    /// single-use values issued to it, the counters named in `counters` and those whose
    /// key starts with one of `prefixes`. False if there was no such account.
    async fn delete_account(
        &self,
        id: &AccountId,
        counters: &[String],
        prefixes: &[String],
    ) -> StoreResult<bool>;

    /// Leases up to `limit` due mails until `leased_until`, under the name `lease`;
    /// rows another sender holds are skipped.
    async fn lease_mail(
        &self,
        lease: &str,
        now: i64,
        leased_until: i64,
        limit: i64,
    ) -> StoreResult<Vec<QueuedMail>>;
    /// Deletes the mails the SMTP server took, if this sender still holds them.
    async fn mails_sent(&self, lease: &str, ids: &[String]) -> StoreResult<()>;
    /// Gives a mail back for another attempt at `next_attempt_at`.
    async fn mail_failed(
        &self,
        lease: &str,
        id: &str,
        next_attempt_at: i64,
        error: &str,
    ) -> StoreResult<()>;
    /// Deletes at most `limit` mails and `limit` tokens past their end: how many of
    /// each, by table.
    async fn purge_mail(&self, now: i64, limit: i64) -> StoreResult<Purged>;
    /// How many mails wait to be sent (not yet past their end), for `/metrics`.
    async fn outbox_depth(&self, now: i64) -> StoreResult<i64>;
}

/// The statements of [`MailStore`].
pub(crate) mod sql {
    pub const INSERT_MAIL: &str = "INSERT INTO mail_outbox
        (id, account_id, recipient, kind, context, created_at, expires_at, next_attempt_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $6)";

    /// The mail to the account's own address, if it has one.
    pub const INSERT_MAIL_TO_ACCOUNT: &str = "INSERT INTO mail_outbox
        (id, account_id, recipient, kind, context, created_at, expires_at, next_attempt_at)
        SELECT $1, id, email, $2, $3, $4, $5, $4 FROM accounts
        WHERE id = $6 AND email IS NOT NULL";

    pub const VOID_TOKENS: &str = "DELETE FROM mail_tokens WHERE account_id = $1 AND purpose = $2";

    pub const INSERT_TOKEN: &str =
        "INSERT INTO mail_tokens (hash, purpose, account_id, detail, expires_at, proven_at)
         VALUES ($1, $2, $3, $4, $5, $6)";

    pub const PROVEN_AT: &str = "SELECT email_proven_at FROM accounts WHERE id = $1";

    /// The account's address was proven at `$1` (verified), or never (`NULL`).
    pub const SET_PROOF: &str = "UPDATE accounts
        SET email_proven_at = $1, email_verified = ($1 IS NOT NULL) WHERE id = $2";

    pub const SET_EMAIL: &str = "UPDATE accounts SET email = $1, email_key = $2 WHERE id = $3";

    /// Locks the account row (PostgreSQL) until the transaction ends, if it is enabled:
    /// a change lands only on an account that stays enabled until it commits.
    pub const LOCK_ENABLED_ACCOUNT: &str =
        "UPDATE accounts SET created_at = created_at WHERE id = $1 AND disabled_at IS NULL";

    pub const VOID_ONE_TIME: &str =
        "DELETE FROM one_time_tokens WHERE subject = $1 AND purpose = $2";

    /// The ways in added at or after `$2` (every one when `$2` is NULL).
    pub const REMOVE_WALLETS_SINCE: &str = "DELETE FROM wallets
        WHERE account_id = $1 AND ($2 IS NULL OR created_at >= $2) RETURNING address";
    pub const REMOVE_PASSKEYS_SINCE: &str = "DELETE FROM passkeys
        WHERE account_id = $1 AND ($2 IS NULL OR created_at >= $2) RETURNING name";
    /// Social identities linked after `$2` (strictly: an account a provider made with
    /// its verified address has its identity and its proof at the same second, and the
    /// identity was that proof).
    pub const REMOVE_SOCIAL_SINCE: &str = "DELETE FROM social_identities
        WHERE account_id = $1 AND ($2 IS NULL OR linked_at > $2) RETURNING provider";
    pub const REMOVE_OWNID_SINCE: &str =
        "UPDATE accounts SET ownid_data = NULL, ownid_added_at = NULL
        WHERE id = $1 AND ownid_data IS NOT NULL
          AND ($2 IS NULL OR ownid_added_at IS NULL OR ownid_added_at >= $2) RETURNING id";

    /// One statement, so of concurrent consumers exactly one gets the row.
    pub const TAKE_TOKEN: &str = "DELETE FROM mail_tokens
        WHERE hash = $1 AND purpose = $2 AND expires_at > $3
        RETURNING account_id, detail";

    pub const DELETE_ONE_TIME_OF: &str = "DELETE FROM one_time_tokens WHERE subject = $1";
    pub const DELETE_COUNTER: &str = "DELETE FROM rate_counters WHERE key = $1";
    /// By prefix without `LIKE`, so `%` and `_` in an address match only themselves.
    pub const DELETE_COUNTERS_UNDER: &str =
        "DELETE FROM rate_counters WHERE substr(key, 1, length($1)) = $1";
    pub const DELETE_ACCOUNT: &str = "DELETE FROM accounts WHERE id = $1";

    pub const SET_PASSWORD: &str = "UPDATE accounts SET password_hash = $1 WHERE id = $2";

    /// The password's compare-and-set: `$3` is the hash it must still have ('' for
    /// none).
    pub const SET_PASSWORD_IF: &str = "UPDATE accounts SET password_hash = $1
        WHERE id = $2 AND COALESCE(password_hash, '') = $3";

    pub const PEEK_TOKEN: &str = "SELECT account_id, detail, proven_at FROM mail_tokens
        WHERE hash = $1 AND purpose = $2 AND expires_at > $3";

    /// The lease: the due rows nobody holds, oldest first. PostgreSQL's form locks the
    /// rows it picks and skips those another sender is picking ([`LEASE_POSTGRES`]).
    pub const LEASE: &str = "UPDATE mail_outbox SET lease = $1, leased_until = $2
        WHERE id IN (SELECT id FROM mail_outbox
                     WHERE next_attempt_at <= $3 AND leased_until <= $3 AND expires_at > $3
                     ORDER BY next_attempt_at LIMIT $4)
        RETURNING id, recipient, kind, context, attempts";

    pub const LEASE_POSTGRES: &str = "UPDATE mail_outbox SET lease = $1, leased_until = $2
        WHERE id IN (SELECT id FROM mail_outbox
                     WHERE next_attempt_at <= $3 AND leased_until <= $3 AND expires_at > $3
                     ORDER BY next_attempt_at LIMIT $4
                     FOR UPDATE SKIP LOCKED)
        RETURNING id, recipient, kind, context, attempts";

    pub const SENT: &str = "DELETE FROM mail_outbox WHERE id = $1 AND lease = $2";

    pub const FAILED: &str = "UPDATE mail_outbox SET attempts = attempts + 1,
        next_attempt_at = $1, leased_until = 0, lease = NULL, last_error = $2
        WHERE id = $3 AND lease = $4";

    use crate::store::queries::purge_batch;

    /// The purge's batches of mails and link tokens past their end, by table (see
    /// [`purge_batch!`]), on SQLite.
    pub const PURGE: [(&str, &str); 2] = [
        (
            "mail_outbox",
            purge_batch!(sqlite, "mail_outbox", "expires_at"),
        ),
        (
            "mail_tokens",
            purge_batch!(sqlite, "mail_tokens", "expires_at"),
        ),
    ];

    /// [`PURGE`] on PostgreSQL.
    pub const PURGE_POSTGRES: [(&str, &str); 2] = [
        (
            "mail_outbox",
            purge_batch!(postgres, "mail_outbox", "id", "expires_at"),
        ),
        (
            "mail_tokens",
            purge_batch!(postgres, "mail_tokens", "hash", "expires_at"),
        ),
    ];

    pub const OUTBOX_DEPTH: &str = "SELECT COUNT(*) FROM mail_outbox WHERE expires_at > $1";

    #[cfg(test)]
    pub const ALL: &[&str] = &[
        OUTBOX_DEPTH,
        INSERT_MAIL,
        INSERT_MAIL_TO_ACCOUNT,
        VOID_TOKENS,
        INSERT_TOKEN,
        PROVEN_AT,
        SET_PROOF,
        SET_EMAIL,
        LOCK_ENABLED_ACCOUNT,
        VOID_ONE_TIME,
        REMOVE_WALLETS_SINCE,
        REMOVE_PASSKEYS_SINCE,
        REMOVE_SOCIAL_SINCE,
        REMOVE_OWNID_SINCE,
        TAKE_TOKEN,
        SET_PASSWORD,
        SET_PASSWORD_IF,
        PEEK_TOKEN,
        DELETE_ONE_TIME_OF,
        DELETE_COUNTER,
        DELETE_COUNTERS_UNDER,
        DELETE_ACCOUNT,
        LEASE,
        SENT,
        FAILED,
        PURGE[0].1,
        PURGE[1].1,
    ];
}
