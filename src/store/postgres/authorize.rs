//! [`AuthorizeStore`] on PostgreSQL.

use sqlx::Row;

use super::PostgresStore;
use crate::domain::AccountId;
use crate::store::authorize::{AuthorizeStore, Consent, sql};
use crate::store::{Purged, StoreResult};

#[async_trait::async_trait]
impl AuthorizeStore for PostgresStore {
    async fn add_request(
        &self,
        id: &str,
        client_id: &str,
        request: &str,
        expires_at: i64,
    ) -> StoreResult<()> {
        sqlx::query(sql::INSERT_REQUEST)
            .bind(id)
            .bind(client_id)
            .bind(request)
            .bind(expires_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn take_request(&self, id: &str, now: i64) -> StoreResult<Option<String>> {
        Ok(sqlx::query_scalar(sql::TAKE_REQUEST)
            .bind(id)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn peek_request(&self, id: &str, now: i64) -> StoreResult<Option<String>> {
        Ok(sqlx::query_scalar(sql::PEEK_REQUEST)
            .bind(id)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn consent(&self, account: &AccountId, client_id: &str) -> StoreResult<Option<String>> {
        Ok(sqlx::query_scalar(sql::CONSENT)
            .bind(&account.0)
            .bind(client_id)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn grant_consent(
        &self,
        account: &AccountId,
        client_id: &str,
        scopes: &str,
        now: i64,
    ) -> StoreResult<()> {
        sqlx::query(sql::GRANT_CONSENT)
            .bind(&account.0)
            .bind(client_id)
            .bind(scopes)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn consents(&self, account: &AccountId) -> StoreResult<Vec<Consent>> {
        let rows = sqlx::query(sql::CONSENTS)
            .bind(&account.0)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                Ok(Consent {
                    client_id: r.try_get(0)?,
                    client_name: r.try_get(1)?,
                    scopes: r.try_get(2)?,
                    granted_at: r.try_get(3)?,
                })
            })
            .collect::<sqlx::Result<_>>()?)
    }

    async fn revoke_consent(&self, account: &AccountId, client_id: &str) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        let consents = sqlx::query(sql::REVOKE_CONSENT)
            .bind(&account.0)
            .bind(client_id)
            .execute(&mut *tx)
            .await?;
        let sessions = sqlx::query(sql::END_CLIENT_SESSIONS)
            .bind(&account.0)
            .bind(client_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(consents.rows_affected() + sessions.rows_affected() > 0)
    }

    async fn session_amr(&self, session: &str) -> StoreResult<Option<String>> {
        Ok(sqlx::query_scalar(sql::SESSION_AMR)
            .bind(session)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn purge_requests(&self, now: i64, limit: i64) -> StoreResult<Purged> {
        self.purge(&sql::PURGE_POSTGRES, now, limit).await
    }
}
