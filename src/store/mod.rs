//! Storage: one narrow interface, one implementation per database, chosen from the
//! URL scheme. Domain code sees only [`Store`]; SQL lives in the backends.

pub(crate) mod admin;
pub mod authorize;
pub mod mail;
pub mod mfa;
pub mod oidc;
mod ownid;
mod passkeys;
mod postgres;
mod queries;
pub mod sessions;
pub mod signing_keys;
pub mod social;
mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;

use crate::domain::{Account, AccountId, WalletSummary};
use crate::metrics::DatabaseTimer;

pub use admin::{AccountOverview, AdminStore, contains_pattern};
pub use authorize::{AuthorizeStore, Consent};
pub use mail::MailStore;
pub use mfa::MfaStore;
pub use oidc::{CodeUse, OidcStore, StoredCode};
pub use ownid::{OwnIdLookup, OwnIdStore};
pub use passkeys::{
    FORMAT_WEBAUTHN_RS_0_6, NewPasskey, PasskeyRemoval, PasskeyStore, PasskeySummary, PasskeyUse,
    StoredPasskey,
};
pub use postgres::PostgresStore;
pub use sessions::SessionStore;
pub use signing_keys::{SigningKeyStore, StoredKey};
pub use social::SocialStore;
pub(crate) use sqlite::NEEDS_A_FILE as SQLITE_NEEDS_A_FILE;
pub use sqlite::{BackupSummary, SqliteStore, backup as backup_sqlite, file_of as sqlite_file};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule refused the write; names the constraint's subject.
    #[error("conflict on {0}")]
    Conflict(Unique),
    /// PostgreSQL.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// SQLite; shared by every write of a group commit that failed as a whole.
    #[error(transparent)]
    Sqlite(Arc<rusqlite::Error>),
    #[error("the database is closed")]
    Closed,
    /// A write panicked (a bug); what it wrote was rolled back.
    #[error("a database write panicked")]
    Panicked,
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Sqlite(Arc::new(e))
    }
}

/// The unique keys a write can collide with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unique {
    Email,
    Wallet,
    Passkey,
    Other,
}

impl Unique {
    /// Which key a database's unique-violation message (and constraint name) is about.
    fn named_in(text: &str) -> Unique {
        if text.contains("email") {
            Unique::Email
        } else if text.contains("wallets") || text.contains("address") {
            Unique::Wallet
        } else if text.contains("passkeys") || text.contains("credential_id") {
            Unique::Passkey
        } else {
            Unique::Other
        }
    }
}

impl std::fmt::Display for Unique {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Unique::Email => "email",
            Unique::Wallet => "wallet",
            Unique::Passkey => "passkey",
            Unique::Other => "a unique key",
        })
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Rows one round of a batched purge deleted, by table.
pub type Purged = Vec<(&'static str, u64)>;

/// A new account. At least one way to sign in must be present.
#[derive(Debug, Clone)]
pub struct NewAccount {
    pub id: AccountId,
    pub email: Option<(String, String)>, // (as entered, key)
    pub password_hash: Option<String>,
    pub ownid_data: Option<String>,
    pub created_at: i64,
}

impl NewAccount {
    /// The email as entered and its key, or two NULLs.
    fn email_parts(&self) -> (Option<&str>, Option<&str>) {
        match &self.email {
            Some((email, key)) => (Some(email), Some(key)),
            None => (None, None),
        }
    }
}

/// A wallet about to be linked to an account.
#[derive(Debug, Clone)]
pub struct NewWallet {
    pub address: String,
    pub public_key: String,
    pub attributes: String,
    pub now: i64,
}

/// The account, its wallets and its passkeys, read together for `/auth/me` in one
/// statement ([`queries::ACCOUNT_PROFILE`], [`queries::LIVE_PROFILE`]).
#[derive(Debug, Clone)]
pub struct AccountProfile {
    pub account: Account,
    pub wallets: Vec<WalletSummary>,
    pub passkeys: Vec<ProfilePasskey>,
}

/// A passkey as the profile lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfilePasskey {
    pub id: String,
    pub name: String,
    pub created_at: i64,
}

/// A profile as its rows come ([`queries::ACCOUNT_PROFILE`], [`queries::LIVE_PROFILE`]),
/// in any order.
#[derive(Default)]
struct ProfileRows {
    account: Option<Account>,
    wallets: Vec<WalletSummary>,
    passkeys: Vec<ProfilePasskey>,
}

impl ProfileRows {
    /// Adds one row: its part (column 10), the account its part-0 rows carry (read
    /// once), and its item (7), when it came (8) and its name (9).
    fn add<E>(
        &mut self,
        part: i64,
        account: impl FnOnce() -> Result<Account, E>,
        item: Option<String>,
        at: Option<i64>,
        name: Option<String>,
    ) -> Result<(), E> {
        if part == 0 && self.account.is_none() {
            self.account = Some(account()?);
        }
        match (part, item, at, name) {
            (0, Some(address), Some(linked_at), _) => {
                self.wallets.push(WalletSummary { address, linked_at })
            }
            (1, Some(id), Some(created_at), Some(name)) => self.passkeys.push(ProfilePasskey {
                id,
                name,
                created_at,
            }),
            _ => {}
        }
        Ok(())
    }

    /// The profile, wallets and passkeys each oldest first; none without the account.
    fn finish(self) -> Option<AccountProfile> {
        let ProfileRows {
            account,
            mut wallets,
            mut passkeys,
        } = self;
        wallets.sort_by(|a, b| (a.linked_at, &a.address).cmp(&(b.linked_at, &b.address)));
        passkeys.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Some(AccountProfile {
            account: account?,
            wallets,
            passkeys,
        })
    }
}

/// A linked wallet as stored, with the attributes it shared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletRecord {
    pub address: String,
    pub public_key: String,
    pub attributes: String,
    pub linked_at: i64,
    pub updated_at: i64,
}

/// What linking a wallet to an existing account did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalletAdded {
    Added,
    /// Refused: the account is disabled (or gone).
    AccountDisabled,
    /// Refused: the session that asked for the link has ended.
    SessionEnded,
}

/// What removing a wallet did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalletRemoval {
    Removed,
    NotFound,
    /// Refused: the wallet is the account's last way to sign in.
    LastSignInMethod,
}

impl WalletRemoval {
    /// The outcome when the conditional delete removed nothing.
    fn not_removed(still_linked: bool) -> WalletRemoval {
        if still_linked {
            WalletRemoval::LastSignInMethod
        } else {
            WalletRemoval::NotFound
        }
    }
}

/// A counter in a fixed window, after one more hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowCount {
    pub count: i64,
    pub window_start: i64,
}

#[async_trait]
pub trait Store: PasskeyStore + OwnIdStore + Send + Sync + 'static {
    /// The same database, seen through its mail ([`MailStore`]).
    fn mail(&self) -> &dyn MailStore;
    /// The same database, seen through its sessions ([`SessionStore`]).
    fn sessions(&self) -> &dyn SessionStore;
    /// The same database, seen through its signing keys ([`SigningKeyStore`]).
    fn signing_keys(&self) -> &dyn SigningKeyStore;
    /// The same database, seen through the OpenID Connect provider ([`OidcStore`]).
    fn oidc(&self) -> &dyn OidcStore;
    /// The same database, seen by an operator ([`AdminStore`]).
    fn admin(&self) -> &dyn AdminStore;
    /// The same database, seen through the second factor ([`MfaStore`]).
    fn mfa(&self) -> &dyn MfaStore;
    /// The same database, seen through the authorization endpoint ([`AuthorizeStore`]).
    fn authorize(&self) -> &dyn AuthorizeStore;
    /// The same database, seen through social sign-in ([`SocialStore`]).
    fn social(&self) -> &dyn SocialStore;

    /// The database answers.
    async fn ping(&self) -> StoreResult<()>;
    /// Closes the pool, waiting for connections in use.
    async fn close(&self);
    /// Keeps the query planner's statistics current, as the database recommends for a
    /// long-lived connection. SQLite: `PRAGMA optimize=0x10002` (every table, with an
    /// `analysis_limit` of 400 rows an index, so it takes milliseconds at any size),
    /// which runs `ANALYZE` only on tables that changed enough since their last one.
    /// PostgreSQL: nothing (autovacuum analyzes). Every hot statement keeps its plan
    /// whatever the statistics say (`store::sqlite::tests`, `store::postgres` plans).
    async fn optimize(&self) -> StoreResult<()>;

    async fn create_account(&self, account: &NewAccount) -> StoreResult<()>;
    async fn account_by_email(&self, email_key: &str) -> StoreResult<Option<Account>>;
    async fn account_profile(&self, id: &AccountId) -> StoreResult<Option<AccountProfile>>;
    /// Replaces the password hash (a rehash at new parameters); only if it is still `old`.
    async fn replace_password_hash(&self, id: &AccountId, old: &str, new: &str) -> StoreResult<()>;

    /// Makes `email` (key `email_key`) the account's email, verified; false when there
    /// is no such account, `Conflict(Email)` when another account has that email.
    async fn set_verified_email(
        &self,
        id: &AccountId,
        email: &str,
        email_key: &str,
        now: i64,
    ) -> StoreResult<bool>;

    /// The account a wallet belongs to.
    async fn wallet_account(&self, address: &str) -> StoreResult<Option<AccountId>>;
    /// Creates an account and its first wallet in one transaction.
    async fn create_account_with_wallet(
        &self,
        account: &NewAccount,
        wallet: &NewWallet,
    ) -> StoreResult<()>;
    /// Links a wallet to an existing account if it is enabled and, with `session`, that
    /// session (the one that asked for the link) still lives, checked in the write
    /// itself; `Conflict(Wallet)` if it is linked already.
    async fn add_wallet(
        &self,
        account: &AccountId,
        wallet: &NewWallet,
        session: Option<&str>,
    ) -> StoreResult<WalletAdded>;
    /// Replaces the attributes of a wallet of this account; false if it is not there.
    async fn update_wallet_attributes(
        &self,
        account: &AccountId,
        address: &str,
        attributes: &str,
        now: i64,
    ) -> StoreResult<bool>;
    async fn wallets(&self, account: &AccountId) -> StoreResult<Vec<WalletSummary>>;
    /// One wallet of this account, with its attributes.
    async fn wallet_record(
        &self,
        account: &AccountId,
        address: &str,
    ) -> StoreResult<Option<WalletRecord>>;
    /// Unlinks a wallet unless it is the account's last way to sign in; atomic
    /// against concurrent removals.
    async fn remove_wallet(&self, account: &AccountId, address: &str)
    -> StoreResult<WalletRemoval>;

    /// Stores a single-use value until `expires_at`.
    async fn put_one_time(
        &self,
        id: &str,
        purpose: &str,
        subject: &str,
        expires_at: i64,
    ) -> StoreResult<()>;
    /// Consumes a single-use value: of concurrent callers exactly one gets the subject.
    async fn take_one_time(&self, id: &str, purpose: &str, now: i64)
    -> StoreResult<Option<String>>;

    /// Records a key until `expires_at`; false if it was already recorded and live.
    async fn remember_once(&self, key: &str, now: i64, expires_at: i64) -> StoreResult<bool>;

    /// Counts one more hit on `key` in a fixed window of `window` seconds.
    async fn hit(&self, key: &str, now: i64, window: i64) -> StoreResult<WindowCount>;
    /// The live count on `key`, without counting.
    async fn count(&self, key: &str, now: i64, window: i64) -> StoreResult<Option<WindowCount>>;
    async fn reset(&self, key: &str) -> StoreResult<()>;
    /// Takes back one hit on `key` (never below zero).
    async fn release(&self, key: &str) -> StoreResult<()>;
    /// Spends `interval` seconds of a rate on `key` at `now`; returns the time at
    /// which the key's spending is paid off (read it back with `count(key, now, 0)`).
    async fn spend(&self, key: &str, now: i64, interval: i64) -> StoreResult<i64>;

    /// Deletes at most `limit` expired rows of each table of single-use values, replay
    /// keys and counters: how many, by table.
    async fn purge_expired(&self, now: i64, limit: i64) -> StoreResult<Purged>;

    /// Takes (or renews) the lease `name` for `holder` until `until`: true when the
    /// holder has it, false while another holder's lease runs. For periodic jobs one
    /// node at a time runs, on every node's shared database.
    async fn take_lease(&self, name: &str, holder: &str, now: i64, until: i64)
    -> StoreResult<bool>;
}

pub type DynStore = Arc<dyn Store>;

/// The log target of "the schema is up to date".
pub const SCHEMA_LOG: &str = "gatehouse::store::schema";

/// What opening a database did to its schema (versions are migration numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migrated {
    pub from: i64,
    pub to: i64,
}

impl Migrated {
    /// Says in the log what happened to the schema, so `gatehouse migrate` tells what
    /// it did. "Up to date" has a target of its own, [`SCHEMA_LOG`]: the operator's
    /// commands leave it out unless the log is at debug; a change is always said.
    fn log(self) {
        let Migrated { from, to } = self;
        if from == to {
            tracing::info!(target: SCHEMA_LOG, "database schema: at version {to}, up to date");
        } else if from == 0 {
            tracing::info!("database schema: created (version {to})");
        } else {
            tracing::info!("database schema: migrated from version {from} to {to}");
        }
    }
}

/// Opens the database the URL names (`sqlite://…` or `postgres://…`) and runs its
/// migrations; its calls are timed by `timer`.
pub async fn connect(
    url: &str,
    max_connections: u32,
    timer: DatabaseTimer,
) -> anyhow::Result<DynStore> {
    let store: DynStore = if url.starts_with("sqlite:") {
        Arc::new(
            SqliteStore::connect(url, max_connections)
                .await?
                .timed(timer),
        )
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Arc::new(
            PostgresStore::connect(url, max_connections)
                .await?
                .timed(timer),
        )
    } else {
        anyhow::bail!("database_url: unsupported scheme; use sqlite://PATH or postgres://…");
    };
    Ok(store)
}

#[cfg(test)]
mod profile_rows {
    use super::*;

    fn account() -> Result<Account, ()> {
        Ok(Account {
            id: AccountId("a".into()),
            email: None,
            email_verified: false,
            password_hash: None,
            has_ownid: false,
            created_at: 1,
            disabled: false,
        })
    }

    fn row(rows: &mut ProfileRows, part: i64, item: &str, at: i64, name: Option<&str>) {
        let name = name.map(str::to_owned);
        rows.add(part, account, Some(item.into()), Some(at), name)
            .unwrap();
    }

    #[test]
    fn rows_in_any_order_give_wallets_and_passkeys_oldest_first() {
        let mut rows = ProfileRows::default();
        row(&mut rows, 1, "p2", 20, Some("second"));
        row(&mut rows, 0, "0xb", 10, None);
        row(&mut rows, 1, "p1", 5, Some("first"));
        row(&mut rows, 0, "0xa", 10, None);
        row(&mut rows, 0, "0xc", 3, None);
        let profile = rows.finish().unwrap();
        let wallets: Vec<_> = profile.wallets.iter().map(|w| w.address.as_str()).collect();
        assert_eq!(wallets, ["0xc", "0xa", "0xb"]);
        let passkeys: Vec<_> = profile.passkeys.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(passkeys, ["first", "second"]);
        assert_eq!(profile.account.id, AccountId("a".into()));
    }

    #[test]
    fn passkeys_without_the_accounts_row_are_no_profile() {
        let mut rows = ProfileRows::default();
        row(&mut rows, 1, "p1", 5, Some("first"));
        assert!(rows.finish().is_none());
        let mut rows = ProfileRows::default();
        rows.add(0, account, None, None, None).unwrap();
        let profile = rows.finish().unwrap();
        assert!(profile.wallets.is_empty() && profile.passkeys.is_empty());
    }
}
