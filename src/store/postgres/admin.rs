//! [`AdminStore`] on PostgreSQL.

use sqlx::Row;
use sqlx::postgres::PgRow;

use super::super::admin::{AccountOverview, AdminStore, sql};
use super::super::sessions::sql as sessions_sql;
use super::PostgresStore;
use crate::domain::AccountId;
use crate::store::StoreResult;

#[async_trait::async_trait]
impl AdminStore for PostgresStore {
    async fn list_accounts(
        &self,
        search: &str,
        now: i64,
        after: Option<&AccountId>,
        limit: i64,
    ) -> StoreResult<Vec<AccountOverview>> {
        let query = match after {
            None => sqlx::query(sql::LIST).bind(now).bind(search),
            Some(after) => sqlx::query(sql::LIST_AFTER)
                .bind(now)
                .bind(search)
                .bind(&after.0),
        };
        let rows = query.bind(limit).fetch_all(self.db()).await?;
        Ok(rows
            .iter()
            .map(overview)
            .collect::<Result<_, sqlx::Error>>()?)
    }

    async fn account_overview(
        &self,
        id: &AccountId,
        now: i64,
    ) -> StoreResult<Option<AccountOverview>> {
        let row = sqlx::query(sql::ONE)
            .bind(now)
            .bind(&id.0)
            .fetch_optional(self.db())
            .await?;
        Ok(row.as_ref().map(overview).transpose()?)
    }

    async fn disable_account(&self, id: &AccountId, now: i64) -> StoreResult<Option<u64>> {
        let disabled = sqlx::query(sql::DISABLE)
            .bind(now)
            .bind(&id.0)
            .execute(self.db())
            .await?;
        if disabled.rows_affected() == 0 {
            return Ok(None);
        }
        let live: i64 = sqlx::query_scalar(sql::LIVE_SESSIONS)
            .bind(&id.0)
            .bind(now)
            .fetch_one(self.db())
            .await?;
        Ok(Some(live as u64))
    }

    async fn account_disabled(&self, id: &AccountId) -> StoreResult<bool> {
        let row = sqlx::query(sql::IS_DISABLED)
            .bind(&id.0)
            .fetch_optional(self.db())
            .await?;
        Ok(row.is_some())
    }

    async fn enable_account(&self, id: &AccountId) -> StoreResult<bool> {
        let (mut tx, _timing) = self.begin().await?;
        sqlx::query(sessions_sql::END_ALL)
            .bind(&id.0)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query(sql::ENABLE)
            .bind(&id.0)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }
}

fn overview(r: &PgRow) -> Result<AccountOverview, sqlx::Error> {
    Ok(AccountOverview {
        id: AccountId(r.try_get(0)?),
        email: r.try_get(1)?,
        email_verified: r.try_get(2)?,
        created_at: r.try_get(3)?,
        disabled_at: r.try_get(4)?,
        last_sign_in_at: r.try_get(5)?,
        has_password: r.try_get(6)?,
        has_ownid: r.try_get(7)?,
        wallets: r.try_get(8)?,
        passkeys: r.try_get(9)?,
        sessions: r.try_get(10)?,
    })
}
