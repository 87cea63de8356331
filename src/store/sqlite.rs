//! The embedded default: one SQLite file in WAL mode, used in-process through
//! rusqlite.
//!
//! SQLite admits one writer at a time and, under `synchronous = FULL`, pays an fsync
//! for every commit. So every write goes to one writer thread ([`writer`]), which
//! commits whatever writes have queued up meanwhile in one transaction — one fsync
//! for the lot — and answers each only once that commit is on disk.
//!
//! Reads run on the caller's thread, on read-only connections that see every
//! acknowledged write. They are point lookups by key that take microseconds, less
//! than a hop to another thread and back, which is what a read cost before.

mod admin;
mod authorize;
mod backup;
mod mail;
mod mfa;
mod migrations;
mod oidc;
mod passkeys;
mod sessions;
mod signing_keys;
mod social;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};

use super::queries as q;
use super::*;
use crate::metrics::DbCall;
pub use backup::{BackupSummary, backup};
use writer::Writer;

pub struct SqliteStore {
    readers: Readers,
    writer: Writer,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file, runs the SQLite migrations, starts
    /// the writer thread and opens `readers` read-only connections.
    ///
    /// `synchronous = FULL`: a commit is on disk before it is acknowledged, so no
    /// acknowledged write is lost to a crash of the process or of the machine. A batch
    /// holding only rate-limit counters and replay keys commits with `NORMAL`: in WAL
    /// mode that survives a crash of the process, not a power cut, and those values
    /// expire long before a machine is back.
    pub async fn connect(url: &str, readers: u32) -> anyhow::Result<Self> {
        let path = file_of(url).ok_or_else(|| anyhow::anyhow!("database_url: {NEEDS_A_FILE}"))?;
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            crate::files::create_private_dir(dir).map_err(|e| {
                anyhow::anyhow!("cannot create the directory {}: {e}", dir.display())
            })?;
        }
        let tightened = crate::files::private_sqlite_files(&path)
            .map_err(|e| anyhow::anyhow!("cannot create or open {}: {e}", path.display()))?;
        for file in tightened {
            tracing::warn!(file = %file.display(), "made the database file readable by its owner only (0600)");
        }
        let (writer, readers) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let mut writer = open(&path, false)
                .map_err(|e| anyhow::anyhow!("cannot open {} to write: {e:#}", path.display()))?;
            migrations::run(&mut writer)?.log();
            let writer = Writer::start(writer)?;
            let readers = (0..readers.max(1))
                .map(|_| open(&path, true).map(|c| Mutex::new(Some(c))))
                .collect::<anyhow::Result<Vec<_>>>()?;
            Ok((writer, readers))
        })
        .await??;
        Ok(SqliteStore {
            readers: Readers {
                connections: readers.into_boxed_slice(),
                next: AtomicUsize::new(0),
                timer: DatabaseTimer::default(),
            },
            writer,
        })
    }

    /// Times every read and write with `timer`.
    pub fn timed(mut self, timer: DatabaseTimer) -> Self {
        self.writer.timed(timer.clone());
        self.readers.timer = timer;
        self
    }
}

/// The file a `sqlite://PATH` (or `sqlite:PATH`) URL names, relative paths from the
/// working directory; `None` for anything else: no options, not `:memory:` (every
/// connection here must open the same file).
pub fn file_of(url: &str) -> Option<PathBuf> {
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let usable = !path.is_empty() && !path.contains('?') && !path.starts_with(":memory:");
    usable.then(|| PathBuf::from(path))
}

/// What a SQLite `database_url` must be.
pub const NEEDS_A_FILE: &str =
    "SQLite needs a file, written sqlite://PATH (no options, not :memory:)";

fn open(path: &Path, read_only: bool) -> anyhow::Result<Connection> {
    let access = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE
    };
    let conn = Connection::open_with_flags(path, access | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    // Another process (`gatehouse migrate`) may hold the write lock for a moment.
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.set_prepared_statement_cache_capacity(32);
    // The query planner stability guarantee: a statement keeps its plan whatever values
    // are bound. This SQLite is built with STAT4; once `ANALYZE` (or `PRAGMA optimize`)
    // has written samples, a cached statement whose parameter meets an indexed column
    // (`/auth/me`'s `idle_expires_at > $3`, `p.account_id = $2`) is otherwise compiled
    // again at every new binding: 50-70 µs more on every `/auth/me` of a grown store.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    if !read_only {
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        anyhow::ensure!(
            mode.eq_ignore_ascii_case("wal"),
            "SQLite's journal_mode stayed {mode}: the file system does not support WAL"
        );
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
    }
    Ok(conn)
}

/// Read-only connections, each used by one caller at a time. `None` once closed.
struct Readers {
    connections: Box<[Mutex<Option<Connection>>]>,
    next: AtomicUsize,
    timer: DatabaseTimer,
}

impl Readers {
    /// Runs `read` on a free connection, or on the next in turn once it is free (a
    /// wait of one query at most, as every query here is a lookup by key).
    fn read<T>(&self, read: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> StoreResult<T> {
        let _timing = self.timer.start(DbCall::Read);
        let guard = match self.connections.iter().find_map(|c| c.try_lock().ok()) {
            Some(free) => free,
            None => {
                let i = self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len();
                lock(&self.connections[i])
            }
        };
        let conn = guard.as_ref().ok_or(StoreError::Closed)?;
        Ok(read(conn)?)
    }

    fn close(&self) {
        for c in &self.connections {
            drop(lock(c).take());
        }
    }
}

/// A poisoned lock only means a panic while it was held; the connection is sound
/// (rusqlite resets its statements as they drop).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[async_trait]
impl Store for SqliteStore {
    fn mail(&self) -> &dyn MailStore {
        self
    }

    fn sessions(&self) -> &dyn SessionStore {
        self
    }

    fn signing_keys(&self) -> &dyn SigningKeyStore {
        self
    }

    fn oidc(&self) -> &dyn OidcStore {
        self
    }

    fn admin(&self) -> &dyn AdminStore {
        self
    }

    fn mfa(&self) -> &dyn MfaStore {
        self
    }

    fn authorize(&self) -> &dyn AuthorizeStore {
        self
    }

    fn social(&self) -> &dyn SocialStore {
        self
    }

    async fn ping(&self) -> StoreResult<()> {
        if self.writer.is_closed() {
            return Err(StoreError::Closed);
        }
        self.readers
            .read(|c| c.prepare_cached("SELECT 1")?.query_row([], |_| Ok(())))
    }

    async fn close(&self) {
        self.readers.close();
        self.writer.close().await;
    }

    async fn optimize(&self) -> StoreResult<()> {
        self.writer
            .write(false, |c| {
                Ok(c.execute_batch("PRAGMA analysis_limit = 400; PRAGMA optimize = 0x10002")?)
            })
            .await
    }

    async fn create_account(&self, a: &NewAccount) -> StoreResult<()> {
        let a = a.clone();
        self.writer
            .write(true, move |c| insert_account(c, &a))
            .await
    }

    async fn account_by_email(&self, email_key: &str) -> StoreResult<Option<Account>> {
        self.readers.read(|c| {
            c.prepare_cached(q::ACCOUNT_BY_EMAIL)?
                .query_row([email_key], account_from_row)
                .optional()
        })
    }

    async fn account_profile(&self, id: &AccountId) -> StoreResult<Option<AccountProfile>> {
        self.readers
            .read(|c| profile(c, q::ACCOUNT_PROFILE, rusqlite::params![id.0]))
    }

    async fn replace_password_hash(&self, id: &AccountId, old: &str, new: &str) -> StoreResult<()> {
        let (id, old, new) = (id.0.clone(), old.to_owned(), new.to_owned());
        self.writer
            .write(true, move |c| {
                c.prepare_cached(q::REPLACE_PASSWORD_HASH)?
                    .execute(params![new, id, old])?;
                Ok(())
            })
            .await
    }

    async fn set_verified_email(
        &self,
        id: &AccountId,
        email: &str,
        email_key: &str,
        now: i64,
    ) -> StoreResult<bool> {
        let (id, email, key) = (id.0.clone(), email.to_owned(), email_key.to_owned());
        self.writer
            .write(true, move |c| {
                let changed = c
                    .prepare_cached(q::SET_VERIFIED_EMAIL)?
                    .execute(params![email, key, now, id])
                    .map_err(on_unique)?;
                Ok(changed > 0)
            })
            .await
    }

    async fn wallet_account(&self, address: &str) -> StoreResult<Option<AccountId>> {
        let id = self.readers.read(|c| {
            c.prepare_cached(q::WALLET_ACCOUNT)?
                .query_row([address], |r| r.get(0))
                .optional()
        })?;
        Ok(id.map(AccountId))
    }

    async fn create_account_with_wallet(&self, a: &NewAccount, w: &NewWallet) -> StoreResult<()> {
        let (a, w) = (a.clone(), w.clone());
        self.writer
            .write(true, move |c| {
                insert_account(c, &a)?;
                insert_wallet(c, &a.id, &w)
            })
            .await
    }

    async fn add_wallet(
        &self,
        account: &AccountId,
        w: &NewWallet,
        session: Option<&str>,
    ) -> StoreResult<WalletAdded> {
        let (account, w, session) = (account.clone(), w.clone(), session.map(str::to_owned));
        // The writer runs alone: nothing ends the session or disables the account
        // between these checks and the insert.
        self.writer
            .write(true, move |c| {
                let enabled = c
                    .prepare_cached(crate::store::mail::sql::LOCK_ENABLED_ACCOUNT)?
                    .execute([&account.0])?;
                if enabled == 0 {
                    return Ok(WalletAdded::AccountDisabled);
                }
                if let Some(session) = &session
                    && c.prepare_cached(q::HOLD_LIVE_SESSION)?
                        .execute(params![session, account.0, w.now])?
                        == 0
                {
                    return Ok(WalletAdded::SessionEnded);
                }
                insert_wallet(c, &account, &w)?;
                Ok(WalletAdded::Added)
            })
            .await
    }

    async fn update_wallet_attributes(
        &self,
        account: &AccountId,
        address: &str,
        attributes: &str,
        now: i64,
    ) -> StoreResult<bool> {
        let (account, address, attributes) =
            (account.0.clone(), address.to_owned(), attributes.to_owned());
        self.writer
            .write(true, move |c| {
                let changed = c
                    .prepare_cached(q::UPDATE_WALLET_ATTRIBUTES)?
                    .execute(params![attributes, now, address, account])?;
                Ok(changed > 0)
            })
            .await
    }

    async fn wallets(&self, account: &AccountId) -> StoreResult<Vec<WalletSummary>> {
        self.readers.read(|c| {
            c.prepare_cached(q::WALLETS)?
                .query_map([&account.0], |r| {
                    Ok(WalletSummary {
                        address: r.get(0)?,
                        linked_at: r.get(1)?,
                    })
                })?
                .collect()
        })
    }

    async fn wallet_record(
        &self,
        account: &AccountId,
        address: &str,
    ) -> StoreResult<Option<WalletRecord>> {
        self.readers.read(|c| {
            c.prepare_cached(q::WALLET_RECORD)?
                .query_row(params![address, account.0], |r| {
                    Ok(WalletRecord {
                        address: r.get(0)?,
                        public_key: r.get(1)?,
                        attributes: r.get(2)?,
                        linked_at: r.get(3)?,
                        updated_at: r.get(4)?,
                    })
                })
                .optional()
        })
    }

    async fn remove_wallet(
        &self,
        account: &AccountId,
        address: &str,
    ) -> StoreResult<WalletRemoval> {
        let (account, address) = (account.0.clone(), address.to_owned());
        // The writer runs one write at a time, so nothing can come between the check
        // and the delete.
        self.writer
            .write(true, move |c| {
                if c.prepare_cached(q::LOCK_ACCOUNT)?.execute([&account])? == 0 {
                    return Ok(WalletRemoval::NotFound);
                }
                let removed = c
                    .prepare_cached(q::DELETE_WALLET_UNLESS_LAST)?
                    .execute(params![address, account])?;
                if removed > 0 {
                    return Ok(WalletRemoval::Removed);
                }
                let linked = c
                    .prepare_cached(q::WALLET_LINKED)?
                    .exists(params![address, account])?;
                Ok(WalletRemoval::not_removed(linked))
            })
            .await
    }

    async fn put_one_time(
        &self,
        id: &str,
        purpose: &str,
        subject: &str,
        expires_at: i64,
    ) -> StoreResult<()> {
        let (id, purpose, subject) = (id.to_owned(), purpose.to_owned(), subject.to_owned());
        self.writer
            .write(true, move |c| {
                c.prepare_cached(q::PUT_ONE_TIME)?
                    .execute(params![id, purpose, subject, expires_at])
                    .map_err(on_unique)?;
                Ok(())
            })
            .await
    }

    async fn take_one_time(
        &self,
        id: &str,
        purpose: &str,
        now: i64,
    ) -> StoreResult<Option<String>> {
        let (id, purpose) = (id.to_owned(), purpose.to_owned());
        self.writer
            .write(true, move |c| {
                // The delete happens in full on the first step, which query_row takes.
                Ok(c.prepare_cached(q::TAKE_ONE_TIME)?
                    .query_row(params![id, purpose, now], |r| r.get(0))
                    .optional()?)
            })
            .await
    }

    async fn remember_once(&self, key: &str, now: i64, expires_at: i64) -> StoreResult<bool> {
        let key = key.to_owned();
        self.writer
            .write(false, move |c| {
                let changed = c
                    .prepare_cached(q::REMEMBER_ONCE)?
                    .execute(params![key, expires_at, now])?;
                Ok(changed > 0)
            })
            .await
    }

    async fn hit(&self, key: &str, now: i64, window: i64) -> StoreResult<WindowCount> {
        let key = key.to_owned();
        self.writer
            .write(false, move |c| {
                Ok(c.prepare_cached(q::HIT)?
                    .query_row(params![key, now, window], window_count)?)
            })
            .await
    }

    async fn count(&self, key: &str, now: i64, window: i64) -> StoreResult<Option<WindowCount>> {
        self.readers.read(|c| {
            c.prepare_cached(q::COUNT)?
                .query_row(params![key, window, now], window_count)
                .optional()
        })
    }

    async fn reset(&self, key: &str) -> StoreResult<()> {
        let key = key.to_owned();
        self.writer
            .write(false, move |c| {
                c.prepare_cached(q::RESET)?.execute([key])?;
                Ok(())
            })
            .await
    }

    async fn release(&self, key: &str) -> StoreResult<()> {
        let key = key.to_owned();
        self.writer
            .write(false, move |c| {
                c.prepare_cached(q::RELEASE)?.execute([key])?;
                Ok(())
            })
            .await
    }

    async fn spend(&self, key: &str, now: i64, interval: i64) -> StoreResult<i64> {
        let key = key.to_owned();
        self.writer
            .write(false, move |c| {
                Ok(c.prepare_cached(q::SPEND)?
                    .query_row(params![key, now, interval], |r| r.get(0))?)
            })
            .await
    }

    async fn purge_expired(&self, now: i64, limit: i64) -> StoreResult<Purged> {
        self.writer
            .write(false, move |c| purge(c, &q::PURGE_EXPIRED, now, limit))
            .await
    }

    async fn take_lease(
        &self,
        name: &str,
        holder: &str,
        now: i64,
        until: i64,
    ) -> StoreResult<bool> {
        let (name, holder) = (name.to_owned(), holder.to_owned());
        self.writer
            .write(false, move |c| {
                let changed = c
                    .prepare_cached(q::TAKE_LEASE)?
                    .execute(params![name, holder, until, now])?;
                Ok(changed > 0)
            })
            .await
    }
}

#[async_trait]
impl OwnIdStore for SqliteStore {
    async fn set_ownid_data(&self, email_key: &str, data: &str, now: i64) -> StoreResult<bool> {
        let (email_key, data) = (email_key.to_owned(), data.to_owned());
        self.writer
            .write(true, move |c| {
                let changed = c
                    .prepare_cached(q::SET_OWNID_DATA)?
                    .execute(params![data, now, email_key])?;
                Ok(changed > 0)
            })
            .await
    }

    async fn ownid_data(&self, email_key: &str) -> StoreResult<OwnIdLookup> {
        let row = self.readers.read(|c| {
            c.prepare_cached(q::OWNID_DATA)?
                .query_row([email_key], |r| r.get::<_, Option<String>>(0))
                .optional()
        })?;
        Ok(OwnIdLookup::from_row(row))
    }
}

fn insert_account(c: &Connection, a: &NewAccount) -> StoreResult<()> {
    let (email, email_key) = a.email_parts();
    c.prepare_cached(q::INSERT_ACCOUNT)?
        .execute(params![
            a.id.0,
            email,
            email_key,
            a.password_hash,
            a.ownid_data,
            a.created_at
        ])
        .map_err(on_unique)?;
    Ok(())
}

fn insert_wallet(c: &Connection, account: &AccountId, w: &NewWallet) -> StoreResult<()> {
    c.prepare_cached(q::INSERT_WALLET)?
        .execute(params![
            w.address,
            w.public_key,
            account.0,
            w.attributes,
            w.now
        ])
        .map_err(on_unique)?;
    Ok(())
}

/// The profile the statement `sql` ([`q::ACCOUNT_PROFILE`], [`q::LIVE_PROFILE`]) reads.
fn profile(
    c: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> rusqlite::Result<Option<AccountProfile>> {
    let mut statement = c.prepare_cached(sql)?;
    let mut rows = statement.query(params)?;
    let mut profile = ProfileRows::default();
    while let Some(r) = rows.next()? {
        profile.add(
            r.get(10)?,
            || account_from_row(r),
            r.get(7)?,
            r.get(8)?,
            r.get(9)?,
        )?;
    }
    Ok(profile.finish())
}

fn account_from_row(r: &Row<'_>) -> rusqlite::Result<Account> {
    Ok(Account {
        id: AccountId(r.get(0)?),
        email: r.get(1)?,
        password_hash: r.get(2)?,
        has_ownid: r.get(3)?,
        created_at: r.get(4)?,
        email_verified: r.get(5)?,
        disabled: r.get(6)?,
    })
}

fn window_count(r: &Row<'_>) -> rusqlite::Result<WindowCount> {
    Ok(WindowCount {
        count: r.get(0)?,
        window_start: r.get(1)?,
    })
}

/// Maps a unique-key violation to [`StoreError::Conflict`], by the violated index.
fn on_unique(e: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(failure, message) = &e
        && matches!(
            failure.extended_code,
            rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
        )
    {
        return StoreError::Conflict(Unique::named_in(message.as_deref().unwrap_or("")));
    }
    e.into()
}

#[cfg(test)]
mod tests;

/// Runs each `(table, statement)` of a batched purge once: rows deleted, by table.
pub(super) fn purge(
    c: &Connection,
    statements: &[(&'static str, &str)],
    now: i64,
    limit: i64,
) -> StoreResult<Purged> {
    let mut purged = Vec::with_capacity(statements.len());
    for (table, statement) in statements {
        let n = c.prepare_cached(statement)?.execute(params![now, limit])?;
        purged.push((*table, n as u64));
    }
    Ok(purged)
}
