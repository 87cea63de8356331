//! The one implementation of [`Store`](super::Store), written once in SQL that both
//! SQLite and PostgreSQL accept (`$N` placeholders, `RETURNING`, `ON CONFLICT`), and
//! instantiated for each backend's pool type by [`impl_store!`]. Backends differ only
//! in how they connect and in their migrations.

/// Implements `Store` for `$store`, a struct with two `sqlx::Pool` fields: `pool` for
/// what must survive any crash, and `ephemeral` for rate-limit counters and replay
/// keys, whose loss in a power cut is harmless (they expire long before a machine
/// is back) and which must not pay an fsync on every request. The reads on every
/// request's path (accounts, wallets) take their connection from `$store::reader()`.
/// Every write first takes `$store::serialize_writes()`: SQLite admits one writer at a
/// time and makes the others poll with sleeps of up to 100 ms, so its writes queue
/// in-process instead (PostgreSQL needs no such queue).
macro_rules! impl_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::Store for $store {
            async fn ping(&self) -> StoreResult<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn close(&self) {
                self.close_readers().await;
                self.pool.close().await;
                self.ephemeral.close().await;
            }

            async fn create_account(&self, a: &NewAccount) -> StoreResult<()> {
                let _writing = self.serialize_writes().await;
                insert_account(a).execute(&self.pool).await.map_err(on_unique)?;
                Ok(())
            }

            async fn account_by_email(&self, email_key: &str) -> StoreResult<Option<Account>> {
                let row = sqlx::query(
                    "SELECT id, email, password_hash, ownid_data IS NOT NULL, created_at
                     FROM accounts WHERE email_key = $1",
                )
                .bind(email_key)
                .fetch_optional(&mut *self.reader().await?)
                .await?;
                Ok(row.map(|r| account_from_row(&r)).transpose()?)
            }

            async fn account_profile(&self, id: &AccountId) -> StoreResult<Option<AccountProfile>> {
                let rows = sqlx::query(
                    "SELECT a.id, a.email, a.password_hash, a.ownid_data IS NOT NULL, a.created_at,
                            w.address, w.created_at
                     FROM accounts a LEFT JOIN wallets w ON w.account_id = a.id
                     WHERE a.id = $1 ORDER BY w.created_at, w.address",
                )
                .bind(&id.0)
                .fetch_all(&mut *self.reader().await?)
                .await?;
                let Some(first) = rows.first() else { return Ok(None) };
                let account = account_from_row(first)?;
                let mut wallets = Vec::with_capacity(rows.len());
                for r in &rows {
                    if let Some(address) = r.try_get::<Option<String>, _>(5)? {
                        wallets.push(WalletSummary { address, linked_at: r.try_get(6)? });
                    }
                }
                Ok(Some(AccountProfile { account, wallets }))
            }

            async fn replace_password_hash(&self, id: &AccountId, old: &str, new: &str) -> StoreResult<()> {
                let _writing = self.serialize_writes().await;
                sqlx::query("UPDATE accounts SET password_hash = $1 WHERE id = $2 AND password_hash = $3")
                    .bind(new)
                    .bind(&id.0)
                    .bind(old)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn set_ownid_data(&self, email_key: &str, data: &str) -> StoreResult<bool> {
                let _writing = self.serialize_writes().await;
                let done = sqlx::query("UPDATE accounts SET ownid_data = $1 WHERE email_key = $2")
                    .bind(data)
                    .bind(email_key)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn ownid_data(&self, email_key: &str) -> StoreResult<OwnIdLookup> {
                let row: Option<(Option<String>,)> =
                    sqlx::query_as("SELECT ownid_data FROM accounts WHERE email_key = $1")
                        .bind(email_key)
                        .fetch_optional(&mut *self.reader().await?)
                        .await?;
                Ok(match row {
                    None => OwnIdLookup::NoAccount,
                    Some((Some(data),)) if !data.is_empty() => OwnIdLookup::Data(data),
                    Some(_) => OwnIdLookup::NoData,
                })
            }

            async fn wallet_account(&self, address: &str) -> StoreResult<Option<AccountId>> {
                let row: Option<(String,)> =
                    sqlx::query_as("SELECT account_id FROM wallets WHERE address = $1")
                        .bind(address)
                        .fetch_optional(&mut *self.reader().await?)
                        .await?;
                Ok(row.map(|(id,)| AccountId(id)))
            }

            async fn create_account_with_wallet(&self, a: &NewAccount, w: &NewWallet) -> StoreResult<()> {
                let _writing = self.serialize_writes().await;
                let mut tx = self.pool.begin().await?;
                insert_account(a).execute(&mut *tx).await.map_err(on_unique)?;
                insert_wallet(&a.id, w).execute(&mut *tx).await.map_err(on_unique)?;
                tx.commit().await?;
                Ok(())
            }

            async fn add_wallet(&self, account: &AccountId, w: &NewWallet) -> StoreResult<()> {
                let _writing = self.serialize_writes().await;
                insert_wallet(account, w).execute(&self.pool).await.map_err(on_unique)?;
                Ok(())
            }

            async fn update_wallet_attributes(
                &self,
                account: &AccountId,
                address: &str,
                attributes: &str,
                now: i64,
            ) -> StoreResult<bool> {
                let _writing = self.serialize_writes().await;
                let done = sqlx::query(
                    "UPDATE wallets SET attributes = $1, updated_at = $2
                     WHERE address = $3 AND account_id = $4",
                )
                .bind(attributes)
                .bind(now)
                .bind(address)
                .bind(&account.0)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn wallets(&self, account: &AccountId) -> StoreResult<Vec<WalletSummary>> {
                let rows: Vec<(String, i64)> = sqlx::query_as(
                    "SELECT address, created_at FROM wallets WHERE account_id = $1
                     ORDER BY created_at, address",
                )
                .bind(&account.0)
                .fetch_all(&mut *self.reader().await?)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(address, linked_at)| WalletSummary { address, linked_at })
                    .collect())
            }

            async fn wallet_record(&self, account: &AccountId, address: &str) -> StoreResult<Option<WalletRecord>> {
                let row: Option<(String, String, String, i64, i64)> = sqlx::query_as(
                    "SELECT address, public_key, attributes, created_at, updated_at FROM wallets
                     WHERE address = $1 AND account_id = $2",
                )
                .bind(address)
                .bind(&account.0)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(|(address, public_key, attributes, linked_at, updated_at)| WalletRecord {
                    address,
                    public_key,
                    attributes,
                    linked_at,
                    updated_at,
                }))
            }

            async fn remove_wallet(&self, account: &AccountId, address: &str) -> StoreResult<WalletRemoval> {
                let _writing = self.serialize_writes().await;
                let mut tx = self.pool.begin().await?;
                // A no-op write locks the account row (PostgreSQL) or the database
                // (SQLite) first, so two removals cannot both see "another method left".
                let found = sqlx::query("UPDATE accounts SET created_at = created_at WHERE id = $1")
                    .bind(&account.0)
                    .execute(&mut *tx)
                    .await?;
                if found.rows_affected() == 0 {
                    return Ok(WalletRemoval::NotFound);
                }
                let removed = sqlx::query(
                    "DELETE FROM wallets WHERE address = $1 AND account_id = $2 AND (
                        (SELECT COUNT(*) FROM wallets WHERE account_id = $2) > 1
                        OR EXISTS (SELECT 1 FROM accounts WHERE id = $2
                                   AND (password_hash IS NOT NULL OR ownid_data IS NOT NULL)))",
                )
                .bind(address)
                .bind(&account.0)
                .execute(&mut *tx)
                .await?;
                let outcome = if removed.rows_affected() > 0 {
                    WalletRemoval::Removed
                } else {
                    let linked: Option<(String,)> = sqlx::query_as(
                        "SELECT address FROM wallets WHERE address = $1 AND account_id = $2",
                    )
                    .bind(address)
                    .bind(&account.0)
                    .fetch_optional(&mut *tx)
                    .await?;
                    if linked.is_some() { WalletRemoval::LastSignInMethod } else { WalletRemoval::NotFound }
                };
                tx.commit().await?;
                Ok(outcome)
            }

            async fn put_one_time(&self, id: &str, purpose: &str, subject: &str, expires_at: i64) -> StoreResult<()> {
                let _writing = self.serialize_writes().await;
                sqlx::query(
                    "INSERT INTO one_time_tokens (id, purpose, subject, expires_at) VALUES ($1, $2, $3, $4)",
                )
                .bind(id)
                .bind(purpose)
                .bind(subject)
                .bind(expires_at)
                .execute(&self.pool)
                .await
                .map_err(on_unique)?;
                Ok(())
            }

            async fn take_one_time(&self, id: &str, purpose: &str, now: i64) -> StoreResult<Option<String>> {
                let _writing = self.serialize_writes().await;
                let row: Option<(String,)> = sqlx::query_as(
                    "DELETE FROM one_time_tokens WHERE id = $1 AND purpose = $2 AND expires_at > $3
                     RETURNING subject",
                )
                .bind(id)
                .bind(purpose)
                .bind(now)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(|(s,)| s))
            }

            async fn remember_once(&self, key: &str, now: i64, expires_at: i64) -> StoreResult<bool> {
                let _writing = self.serialize_writes().await;
                let done = sqlx::query(
                    "INSERT INTO seen_requests (key, expires_at) VALUES ($1, $2)
                     ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at
                     WHERE seen_requests.expires_at <= $3",
                )
                .bind(key)
                .bind(expires_at)
                .bind(now)
                .execute(&self.ephemeral)
                .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn hit(&self, key: &str, now: i64, window: i64) -> StoreResult<WindowCount> {
                let _writing = self.serialize_writes().await;
                // Every SET expression reads the row as it was, so the window restarts
                // and the count resets together.
                let (count, window_start): (i64, i64) = sqlx::query_as(
                    "INSERT INTO rate_counters (key, window_start, count, expires_at)
                     VALUES ($1, $2, 1, $2 + $3)
                     ON CONFLICT (key) DO UPDATE SET
                        count = CASE WHEN rate_counters.window_start + $3 <= $2
                                     THEN 1 ELSE rate_counters.count + 1 END,
                        window_start = CASE WHEN rate_counters.window_start + $3 <= $2
                                     THEN $2 ELSE rate_counters.window_start END,
                        expires_at = CASE WHEN rate_counters.window_start + $3 <= $2
                                     THEN $2 + $3 ELSE rate_counters.expires_at END
                     RETURNING count, window_start",
                )
                .bind(key)
                .bind(now)
                .bind(window)
                .fetch_one(&self.ephemeral)
                .await?;
                Ok(WindowCount { count, window_start })
            }

            async fn count(&self, key: &str, now: i64, window: i64) -> StoreResult<Option<WindowCount>> {
                let row: Option<(i64, i64)> = sqlx::query_as(
                    "SELECT count, window_start FROM rate_counters WHERE key = $1 AND window_start + $2 > $3",
                )
                .bind(key)
                .bind(window)
                .bind(now)
                .fetch_optional(&self.ephemeral)
                .await?;
                Ok(row.map(|(count, window_start)| WindowCount { count, window_start }))
            }

            async fn reset(&self, key: &str) -> StoreResult<()> {
                let _writing = self.serialize_writes().await;
                sqlx::query("DELETE FROM rate_counters WHERE key = $1")
                    .bind(key)
                    .execute(&self.ephemeral)
                    .await?;
                Ok(())
            }

            async fn purge_expired(&self, now: i64) -> StoreResult<u64> {
                let _writing = self.serialize_writes().await;
                let mut purged = 0;
                for statement in [
                    "DELETE FROM one_time_tokens WHERE expires_at <= $1",
                    "DELETE FROM seen_requests WHERE expires_at <= $1",
                    "DELETE FROM rate_counters WHERE expires_at <= $1",
                ] {
                    purged += sqlx::query(statement)
                        .bind(now)
                        .execute(&self.pool)
                        .await?
                        .rows_affected();
                }
                Ok(purged)
            }
        }

        fn insert_account<'q>(
            a: &'q NewAccount,
        ) -> sqlx::query::Query<'q, Db, <Db as sqlx::Database>::Arguments> {
            let (email, email_key) = match &a.email {
                Some((email, key)) => (Some(email.as_str()), Some(key.as_str())),
                None => (None, None),
            };
            sqlx::query(
                "INSERT INTO accounts (id, email, email_key, password_hash, ownid_data, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&a.id.0)
            .bind(email)
            .bind(email_key)
            .bind(a.password_hash.as_deref())
            .bind(a.ownid_data.as_deref())
            .bind(a.created_at)
        }

        fn insert_wallet<'q>(
            account: &'q AccountId,
            w: &'q NewWallet,
        ) -> sqlx::query::Query<'q, Db, <Db as sqlx::Database>::Arguments> {
            sqlx::query(
                "INSERT INTO wallets (address, public_key, account_id, attributes, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $5)",
            )
            .bind(&w.address)
            .bind(&w.public_key)
            .bind(&account.0)
            .bind(&w.attributes)
            .bind(w.now)
        }

        fn account_from_row(r: &<Db as sqlx::Database>::Row) -> Result<Account, sqlx::Error> {
            Ok(Account {
                id: AccountId(r.try_get(0)?),
                email: r.try_get(1)?,
                password_hash: r.try_get(2)?,
                has_ownid: r.try_get(3)?,
                created_at: r.try_get(4)?,
            })
        }
    };
}

pub(crate) use impl_store;
