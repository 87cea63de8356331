//! [`AdminStore`] on SQLite.

use rusqlite::{OptionalExtension, Row, params};

use super::super::admin::{AccountOverview, AdminStore, sql};
use super::super::sessions::sql as sessions_sql;
use super::SqliteStore;
use crate::domain::AccountId;
use crate::store::StoreResult;

#[async_trait::async_trait]
impl AdminStore for SqliteStore {
    async fn list_accounts(
        &self,
        search: &str,
        now: i64,
        after: Option<&AccountId>,
        limit: i64,
    ) -> StoreResult<Vec<AccountOverview>> {
        self.readers.read(|c| match after {
            None => c
                .prepare_cached(sql::LIST)?
                .query_map(params![now, search, limit], overview)?
                .collect(),
            Some(after) => c
                .prepare_cached(sql::LIST_AFTER)?
                .query_map(params![now, search, after.0, limit], overview)?
                .collect(),
        })
    }

    async fn account_overview(
        &self,
        id: &AccountId,
        now: i64,
    ) -> StoreResult<Option<AccountOverview>> {
        self.readers.read(|c| {
            c.prepare_cached(sql::ONE)?
                .query_row(params![now, id.0], overview)
                .optional()
        })
    }

    async fn disable_account(&self, id: &AccountId, now: i64) -> StoreResult<Option<u64>> {
        let id = id.clone();
        self.writer
            .write(true, move |c| {
                if c.prepare_cached(sql::DISABLE)?
                    .execute(params![now, id.0])?
                    == 0
                {
                    return Ok(None);
                }
                let live: i64 = c
                    .prepare_cached(sql::LIVE_SESSIONS)?
                    .query_row(params![id.0, now], |r| r.get(0))?;
                Ok(Some(live as u64))
            })
            .await
    }

    async fn account_disabled(&self, id: &AccountId) -> StoreResult<bool> {
        self.readers
            .read(|c| c.prepare_cached(sql::IS_DISABLED)?.exists([&id.0]))
    }

    async fn enable_account(&self, id: &AccountId) -> StoreResult<bool> {
        let id = id.clone();
        self.writer
            .write(true, move |c| {
                c.prepare_cached(sessions_sql::END_ALL)?.execute([&id.0])?;
                Ok(c.prepare_cached(sql::ENABLE)?.execute([&id.0])? > 0)
            })
            .await
    }
}

fn overview(r: &Row<'_>) -> rusqlite::Result<AccountOverview> {
    Ok(AccountOverview {
        id: AccountId(r.get(0)?),
        email: r.get(1)?,
        email_verified: r.get(2)?,
        created_at: r.get(3)?,
        disabled_at: r.get(4)?,
        last_sign_in_at: r.get(5)?,
        has_password: r.get(6)?,
        has_ownid: r.get(7)?,
        wallets: r.get(8)?,
        passkeys: r.get(9)?,
        sessions: r.get(10)?,
    })
}
