mod admin;
mod authorize;
mod connections;
mod mail;
mod mfa;
mod oidc;
mod sessions;
mod signing_keys;
mod social;
#[cfg(test)]
mod tests;

use std::time::Duration;

use futures_core::future::BoxFuture;
use futures_core::stream::BoxStream;
use futures_util::{FutureExt, StreamExt};
use sqlx::postgres::{
    PgConnectOptions, PgConnection, PgPoolOptions, PgQueryResult, PgRow, PgStatement, PgTypeInfo,
};
use sqlx::{Connection, PgPool, Postgres, Row};

use crate::metrics::{DatabaseTimer, DbCall, DbTiming};
use connections::Connections;

use super::queries as q;
use super::*;

mod passkeys;

/// Shared PostgreSQL, for several Gatehouse nodes behind a load balancer. Every value
/// a request needs (single-use tokens, replay keys, counters) is a row here, so any
/// node can serve any request; PostgreSQL runs concurrent writers and groups their
/// commits itself.
pub struct PostgresStore {
    /// Transactions, migrations and leases.
    pool: PgPool,
    /// Single statements: one round trip each ([`connections`]).
    statements: Connections,
    timer: DatabaseTimer,
}

impl PostgresStore {
    /// Connects and runs the PostgreSQL migrations (serialised across nodes by
    /// sqlx's advisory lock).
    pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Self> {
        // JIT off: every statement here is a point lookup or a small batch, and
        // PostgreSQL (12+) JIT-compiles any plan whose estimated cost passes 100,000 —
        // without statistics on a 10 M store, an account's sessions — for 20–250 ms.
        let options = url.parse::<PgConnectOptions>()?.options([("jit", "off")]);
        reach(&options).await?;
        // No ping before each use of a pooled connection: it was a round trip per
        // transaction. A connection the server dropped fails its statement instead, and
        // the pool replaces it (sqlx still pings on release, after the answer).
        // `max_connections` in all: half for single statements, half for transactions
        // (at least one each).
        let for_transactions = (max_connections / 2).max(1);
        let for_statements = max_connections.saturating_sub(for_transactions).max(1);
        let pool = PgPoolOptions::new()
            .test_before_acquire(false)
            .max_connections(for_transactions)
            .acquire_timeout(CONNECT_WAIT)
            .connect_with(options.clone())
            .await?;
        let statements = Connections::new(options, for_statements as usize, CONNECT_WAIT);
        let migrator = sqlx::migrate!("./migrations/postgres");
        let from = schema_version(&pool).await?;
        migrator.run(&pool).await?;
        let to = schema_version(&pool).await?;
        Migrated { from, to }.log();
        Ok(PostgresStore {
            pool,
            statements,
            timer: DatabaseTimer::default(),
        })
    }

    /// Times every statement and transaction with `timer`.
    pub fn timed(mut self, timer: DatabaseTimer) -> Self {
        self.timer = timer;
        self
    }

    /// An executor of single statements, each timed, on [`Connections`].
    fn db(&self) -> Timed<'_> {
        Timed {
            statements: &self.statements,
            pool: &self.pool,
            timer: &self.timer,
        }
    }

    /// Runs each `(table, statement)` of a batched purge once: rows deleted, by table.
    async fn purge(
        &self,
        statements: &[(&'static str, &'static str)],
        now: i64,
        limit: i64,
    ) -> StoreResult<Purged> {
        let mut purged = Vec::with_capacity(statements.len());
        for (table, statement) in statements {
            let done = sqlx::query(*statement)
                .bind(now)
                .bind(limit)
                .execute(self.db())
                .await?;
            purged.push((*table, done.rows_affected()));
        }
        Ok(purged)
    }

    /// Begins a transaction, timed until the returned timing drops (after its commit).
    async fn begin(&self) -> sqlx::Result<(sqlx::Transaction<'static, Postgres>, DbTiming)> {
        let timing = self.timer.start(DbCall::Transaction);
        Ok((self.pool.begin().await?, timing))
    }
}

/// Single statements as an [`sqlx::Executor`], each on one of the [`Connections`] and
/// timed: the one point all of this backend's statements outside a transaction go
/// through.
#[derive(Clone, Copy)]
struct Timed<'a> {
    statements: &'a Connections,
    pool: &'a PgPool,
    timer: &'a DatabaseTimer,
}

impl std::fmt::Debug for Timed<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Timed")
    }
}

impl<'a> sqlx::Executor<'a> for Timed<'a> {
    type Database = Postgres;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, sqlx::Result<sqlx::Either<PgQueryResult, PgRow>>>
    where
        'a: 'e,
        E: 'q + sqlx::Execute<'q, Postgres>,
    {
        let timing = self.timer.start(DbCall::Statement);
        // Read to its end on the connection, then handed out: every statement here
        // answers a handful of rows.
        let run = async move {
            let mut slot = self.statements.slot().await;
            let items: Vec<_> = match slot.connection().await {
                Ok(conn) => conn.fetch_many(query).collect().await,
                Err(e) => vec![Err(e)],
            };
            slot.check(items.iter().find_map(|i| i.as_ref().err()));
            drop(timing);
            futures_util::stream::iter(items)
        };
        Box::pin(run.flatten_stream())
    }

    fn fetch_optional<'e, 'q: 'e, E>(self, query: E) -> BoxFuture<'e, sqlx::Result<Option<PgRow>>>
    where
        'a: 'e,
        E: 'q + sqlx::Execute<'q, Postgres>,
    {
        let timing = self.timer.start(DbCall::Statement);
        Box::pin(async move {
            let mut slot = self.statements.slot().await;
            let row = match slot.connection().await {
                Ok(conn) => conn.fetch_optional(query).await,
                Err(e) => Err(e),
            };
            slot.check(row.as_ref().err());
            drop(timing);
            row
        })
    }

    fn prepare_with<'e>(
        self,
        sql: sqlx::SqlStr,
        parameters: &'e [PgTypeInfo],
    ) -> BoxFuture<'e, sqlx::Result<PgStatement>>
    where
        'a: 'e,
    {
        self.pool.prepare_with(sql, parameters)
    }

    fn describe<'e>(
        self,
        sql: sqlx::SqlStr,
    ) -> BoxFuture<'e, sqlx::Result<sqlx::Describe<Postgres>>>
    where
        'a: 'e,
    {
        self.pool.describe(sql)
    }
}

/// How long a start waits for PostgreSQL to accept connections.
const CONNECT_WAIT: Duration = Duration::from_secs(10);

/// Waits up to [`CONNECT_WAIT`] for the server to accept one connection, saying at
/// once in the log why it does not, and failing with that reason (a pool that times out
/// only says that it timed out). Errors other than the server being unreachable (a
/// wrong password, an unknown database) fail at once.
async fn reach(options: &PgConnectOptions) -> anyhow::Result<()> {
    let place = format!(
        "{}:{}/{}",
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or("")
    );
    let deadline = tokio::time::Instant::now() + CONNECT_WAIT;
    let mut warned = false;
    loop {
        let attempt = tokio::time::timeout_at(deadline, PgConnection::connect_with(options)).await;
        match attempt {
            Ok(Ok(conn)) => {
                let _ = conn.close().await;
                return Ok(());
            }
            Ok(Err(e @ sqlx::Error::Io(_))) if tokio::time::Instant::now() < deadline => {
                if !warned {
                    tracing::warn!(
                        "PostgreSQL at {place} is not reachable ({e}); retrying for up to {} s",
                        CONNECT_WAIT.as_secs()
                    );
                    warned = true;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Ok(Err(e)) => anyhow::bail!("PostgreSQL at {place}: {e}"),
            Err(_) => anyhow::bail!(
                "PostgreSQL at {place}: no connection within {} s",
                CONNECT_WAIT.as_secs()
            ),
        }
    }
}

/// The newest migration applied (0 on an empty database).
async fn schema_version(pool: &PgPool) -> sqlx::Result<i64> {
    let table: Option<String> = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations')::text")
        .fetch_one(pool)
        .await?;
    if table.is_none() {
        return Ok(0);
    }
    sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations WHERE success")
        .fetch_one(pool)
        .await
}

#[async_trait]
impl Store for PostgresStore {
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
        sqlx::query("SELECT 1").execute(self.db()).await?;
        Ok(())
    }

    async fn close(&self) {
        self.statements.close().await;
        self.pool.close().await;
    }

    async fn optimize(&self) -> StoreResult<()> {
        Ok(())
    }

    async fn create_account(&self, a: &NewAccount) -> StoreResult<()> {
        insert_account(a)
            .execute(self.db())
            .await
            .map_err(on_unique)?;
        Ok(())
    }

    async fn account_by_email(&self, email_key: &str) -> StoreResult<Option<Account>> {
        let row = sqlx::query(q::ACCOUNT_BY_EMAIL)
            .bind(email_key)
            .fetch_optional(self.db())
            .await?;
        Ok(row.map(|r| account_from_row(&r)).transpose()?)
    }

    async fn account_profile(&self, id: &AccountId) -> StoreResult<Option<AccountProfile>> {
        let rows = sqlx::query(q::ACCOUNT_PROFILE)
            .bind(&id.0)
            .fetch_all(self.db())
            .await?;
        Ok(profile(&rows)?)
    }

    async fn replace_password_hash(&self, id: &AccountId, old: &str, new: &str) -> StoreResult<()> {
        sqlx::query(q::REPLACE_PASSWORD_HASH)
            .bind(new)
            .bind(&id.0)
            .bind(old)
            .execute(self.db())
            .await?;
        Ok(())
    }

    async fn set_verified_email(
        &self,
        id: &AccountId,
        email: &str,
        email_key: &str,
        now: i64,
    ) -> StoreResult<bool> {
        let done = sqlx::query(q::SET_VERIFIED_EMAIL)
            .bind(email)
            .bind(email_key)
            .bind(now)
            .bind(&id.0)
            .execute(self.db())
            .await
            .map_err(on_unique)?;
        Ok(done.rows_affected() > 0)
    }

    async fn wallet_account(&self, address: &str) -> StoreResult<Option<AccountId>> {
        let row: Option<(String,)> = sqlx::query_as(q::WALLET_ACCOUNT)
            .bind(address)
            .fetch_optional(self.db())
            .await?;
        Ok(row.map(|(id,)| AccountId(id)))
    }

    async fn create_account_with_wallet(&self, a: &NewAccount, w: &NewWallet) -> StoreResult<()> {
        let (mut tx, _timing) = self.begin().await?;
        insert_account(a)
            .execute(&mut *tx)
            .await
            .map_err(on_unique)?;
        insert_wallet(&a.id, w)
            .execute(&mut *tx)
            .await
            .map_err(on_unique)?;
        tx.commit().await?;
        Ok(())
    }

    async fn add_wallet(
        &self,
        account: &AccountId,
        w: &NewWallet,
        session: Option<&str>,
    ) -> StoreResult<WalletAdded> {
        let (mut tx, _timing) = self.begin().await?;
        // Both rows stay locked until the commit: a disable or a sign-out waits for
        // the link, or the link finds them gone and drops the transaction.
        let enabled = sqlx::query(crate::store::mail::sql::LOCK_ENABLED_ACCOUNT)
            .bind(&account.0)
            .execute(&mut *tx)
            .await?;
        if enabled.rows_affected() == 0 {
            return Ok(WalletAdded::AccountDisabled);
        }
        if let Some(session) = session {
            let live = sqlx::query(q::HOLD_LIVE_SESSION)
                .bind(session)
                .bind(&account.0)
                .bind(w.now)
                .execute(&mut *tx)
                .await?;
            if live.rows_affected() == 0 {
                return Ok(WalletAdded::SessionEnded);
            }
        }
        insert_wallet(account, w)
            .execute(&mut *tx)
            .await
            .map_err(on_unique)?;
        tx.commit().await?;
        Ok(WalletAdded::Added)
    }

    async fn update_wallet_attributes(
        &self,
        account: &AccountId,
        address: &str,
        attributes: &str,
        now: i64,
    ) -> StoreResult<bool> {
        let done = sqlx::query(q::UPDATE_WALLET_ATTRIBUTES)
            .bind(attributes)
            .bind(now)
            .bind(address)
            .bind(&account.0)
            .execute(self.db())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn wallets(&self, account: &AccountId) -> StoreResult<Vec<WalletSummary>> {
        let rows: Vec<(String, i64)> = sqlx::query_as(q::WALLETS)
            .bind(&account.0)
            .fetch_all(self.db())
            .await?;
        Ok(rows
            .into_iter()
            .map(|(address, linked_at)| WalletSummary { address, linked_at })
            .collect())
    }

    async fn wallet_record(
        &self,
        account: &AccountId,
        address: &str,
    ) -> StoreResult<Option<WalletRecord>> {
        let row: Option<(String, String, String, i64, i64)> = sqlx::query_as(q::WALLET_RECORD)
            .bind(address)
            .bind(&account.0)
            .fetch_optional(self.db())
            .await?;
        Ok(row.map(
            |(address, public_key, attributes, linked_at, updated_at)| WalletRecord {
                address,
                public_key,
                attributes,
                linked_at,
                updated_at,
            },
        ))
    }

    async fn remove_wallet(
        &self,
        account: &AccountId,
        address: &str,
    ) -> StoreResult<WalletRemoval> {
        let (mut tx, _timing) = self.begin().await?;
        let found = sqlx::query(q::LOCK_ACCOUNT)
            .bind(&account.0)
            .execute(&mut *tx)
            .await?;
        if found.rows_affected() == 0 {
            return Ok(WalletRemoval::NotFound);
        }
        let removed = sqlx::query(q::DELETE_WALLET_UNLESS_LAST)
            .bind(address)
            .bind(&account.0)
            .execute(&mut *tx)
            .await?;
        let outcome = if removed.rows_affected() > 0 {
            WalletRemoval::Removed
        } else {
            let linked: Option<(String,)> = sqlx::query_as(q::WALLET_LINKED)
                .bind(address)
                .bind(&account.0)
                .fetch_optional(&mut *tx)
                .await?;
            WalletRemoval::not_removed(linked.is_some())
        };
        tx.commit().await?;
        Ok(outcome)
    }

    async fn put_one_time(
        &self,
        id: &str,
        purpose: &str,
        subject: &str,
        expires_at: i64,
    ) -> StoreResult<()> {
        sqlx::query(q::PUT_ONE_TIME)
            .bind(id)
            .bind(purpose)
            .bind(subject)
            .bind(expires_at)
            .execute(self.db())
            .await
            .map_err(on_unique)?;
        Ok(())
    }

    async fn take_one_time(
        &self,
        id: &str,
        purpose: &str,
        now: i64,
    ) -> StoreResult<Option<String>> {
        let row: Option<(String,)> = sqlx::query_as(q::TAKE_ONE_TIME)
            .bind(id)
            .bind(purpose)
            .bind(now)
            .fetch_optional(self.db())
            .await?;
        Ok(row.map(|(s,)| s))
    }

    async fn remember_once(&self, key: &str, now: i64, expires_at: i64) -> StoreResult<bool> {
        let done = sqlx::query(q::REMEMBER_ONCE)
            .bind(key)
            .bind(expires_at)
            .bind(now)
            .execute(self.db())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn hit(&self, key: &str, now: i64, window: i64) -> StoreResult<WindowCount> {
        let (count, window_start): (i64, i64) = sqlx::query_as(q::HIT)
            .bind(key)
            .bind(now)
            .bind(window)
            .fetch_one(self.db())
            .await?;
        Ok(WindowCount {
            count,
            window_start,
        })
    }

    async fn count(&self, key: &str, now: i64, window: i64) -> StoreResult<Option<WindowCount>> {
        let row: Option<(i64, i64)> = sqlx::query_as(q::COUNT)
            .bind(key)
            .bind(window)
            .bind(now)
            .fetch_optional(self.db())
            .await?;
        Ok(row.map(|(count, window_start)| WindowCount {
            count,
            window_start,
        }))
    }

    async fn reset(&self, key: &str) -> StoreResult<()> {
        sqlx::query(q::RESET).bind(key).execute(self.db()).await?;
        Ok(())
    }

    async fn release(&self, key: &str) -> StoreResult<()> {
        sqlx::query(q::RELEASE).bind(key).execute(self.db()).await?;
        Ok(())
    }

    async fn spend(&self, key: &str, now: i64, interval: i64) -> StoreResult<i64> {
        let (paid_off,): (i64,) = sqlx::query_as(q::SPEND)
            .bind(key)
            .bind(now)
            .bind(interval)
            .fetch_one(self.db())
            .await?;
        Ok(paid_off)
    }

    async fn purge_expired(&self, now: i64, limit: i64) -> StoreResult<Purged> {
        self.purge(&q::PURGE_EXPIRED_POSTGRES, now, limit).await
    }

    async fn take_lease(
        &self,
        name: &str,
        holder: &str,
        now: i64,
        until: i64,
    ) -> StoreResult<bool> {
        let done = sqlx::query(q::TAKE_LEASE)
            .bind(name)
            .bind(holder)
            .bind(until)
            .bind(now)
            .execute(self.db())
            .await?;
        Ok(done.rows_affected() > 0)
    }
}

#[async_trait]
impl OwnIdStore for PostgresStore {
    async fn set_ownid_data(&self, email_key: &str, data: &str, now: i64) -> StoreResult<bool> {
        let done = sqlx::query(q::SET_OWNID_DATA)
            .bind(data)
            .bind(now)
            .bind(email_key)
            .execute(self.db())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn ownid_data(&self, email_key: &str) -> StoreResult<OwnIdLookup> {
        let row: Option<(Option<String>,)> = sqlx::query_as(q::OWNID_DATA)
            .bind(email_key)
            .fetch_optional(self.db())
            .await?;
        Ok(OwnIdLookup::from_row(row.map(|(data,)| data)))
    }
}

type Query<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

fn insert_account(a: &NewAccount) -> Query<'_> {
    let (email, email_key) = a.email_parts();
    sqlx::query(q::INSERT_ACCOUNT)
        .bind(&a.id.0)
        .bind(email)
        .bind(email_key)
        .bind(a.password_hash.as_deref())
        .bind(a.ownid_data.as_deref())
        .bind(a.created_at)
}

fn insert_wallet<'q>(account: &'q AccountId, w: &'q NewWallet) -> Query<'q> {
    sqlx::query(q::INSERT_WALLET)
        .bind(&w.address)
        .bind(&w.public_key)
        .bind(&account.0)
        .bind(&w.attributes)
        .bind(w.now)
}

/// The profile in the rows of [`q::ACCOUNT_PROFILE`] or [`q::LIVE_PROFILE`].
fn profile(rows: &[PgRow]) -> Result<Option<AccountProfile>, sqlx::Error> {
    let mut profile = ProfileRows::default();
    for r in rows {
        profile.add(
            r.try_get::<i32, _>(10)?.into(),
            || account_from_row(r),
            r.try_get(7)?,
            r.try_get(8)?,
            r.try_get(9)?,
        )?;
    }
    Ok(profile.finish())
}

fn account_from_row(r: &PgRow) -> Result<Account, sqlx::Error> {
    Ok(Account {
        id: AccountId(r.try_get(0)?),
        email: r.try_get(1)?,
        password_hash: r.try_get(2)?,
        has_ownid: r.try_get(3)?,
        created_at: r.try_get(4)?,
        email_verified: r.try_get(5)?,
        disabled: r.try_get(6)?,
    })
}

/// Maps a unique-key violation to [`StoreError::Conflict`], by the violated index.
fn on_unique(err: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &err
        && db.is_unique_violation()
    {
        let text = format!("{} {}", db.message(), db.constraint().unwrap_or(""));
        return StoreError::Conflict(Unique::named_in(&text));
    }
    StoreError::Database(err)
}
