//! [`SessionStore`] on PostgreSQL. Each statement of a refresh is one atomic UPDATE or
//! DELETE on the session's row: concurrent refreshes on any node queue on the row's
//! lock, and each re-reads the row as the one before it left it (READ COMMITTED), so
//! none fails with a serialization error and exactly one rotates.

use sqlx::Row;

use super::super::queries as q;
use super::super::sessions::{
    NewSession, Refresh, RefreshRules, Refreshed, SessionRecord, SessionStore, sql,
};
use super::{PostgresStore, account_from_row, profile};
use crate::domain::AccountId;
use crate::store::{AccountProfile, StoreResult};

#[async_trait::async_trait]
impl SessionStore for PostgresStore {
    async fn create_session(&self, s: &NewSession) -> StoreResult<u64> {
        let done = insert_session(s).execute(self.db()).await?;
        Ok(done.rows_affected())
    }

    async fn session_is_live(&self, id: &str, account: &AccountId, now: i64) -> StoreResult<bool> {
        let row = sqlx::query(sql::IS_LIVE)
            .bind(id)
            .bind(&account.0)
            .bind(now)
            .fetch_optional(self.db())
            .await?;
        Ok(row.is_some())
    }

    async fn live_profile(
        &self,
        id: &str,
        account: &AccountId,
        now: i64,
    ) -> StoreResult<Option<AccountProfile>> {
        let rows = sqlx::query(q::LIVE_PROFILE)
            .bind(id)
            .bind(&account.0)
            .bind(now)
            .fetch_all(self.db())
            .await?;
        Ok(profile(&rows)?)
    }

    async fn refresh_session(
        &self,
        id: &str,
        generation: i64,
        r: RefreshRules,
    ) -> StoreResult<Refresh> {
        let rotated = sqlx::query(sql::ROTATE)
            .bind(r.now)
            .bind(r.idle_secs)
            .bind(id)
            .bind(generation)
            .fetch_optional(self.db())
            .await?;
        if let Some(row) = rotated {
            return Ok(self
                .refreshed(id, &row)
                .await?
                .map_or(Refresh::Refused, Refresh::Rotated));
        }
        let replayed = sqlx::query(sql::REPLAY)
            .bind(id)
            .bind(generation)
            .bind(r.grace_secs)
            .bind(r.now)
            .bind(r.max_replays)
            .fetch_optional(self.db())
            .await?;
        if let Some(row) = replayed {
            return Ok(self
                .refreshed(id, &row)
                .await?
                .map_or(Refresh::Refused, Refresh::Replayed));
        }
        let revoked = sqlx::query(sql::REVOKE_REUSED)
            .bind(id)
            .bind(generation)
            .bind(r.grace_secs)
            .bind(r.now)
            .execute(self.db())
            .await?;
        Ok(if revoked.rows_affected() > 0 {
            Refresh::Revoked
        } else {
            Refresh::Refused
        })
    }

    async fn sessions_of(&self, account: &AccountId, now: i64) -> StoreResult<Vec<SessionRecord>> {
        let rows = sqlx::query(sql::OF_ACCOUNT)
            .bind(&account.0)
            .bind(now)
            .fetch_all(self.db())
            .await?;
        rows.iter()
            .map(|r| {
                Ok(SessionRecord {
                    id: r.try_get(0)?,
                    method: r.try_get(1)?,
                    user_agent: r.try_get(2)?,
                    ip: r.try_get(3)?,
                    auth_time: r.try_get(4)?,
                    created_at: r.try_get(5)?,
                    last_used_at: r.try_get(6)?,
                })
            })
            .collect()
    }

    async fn end_session(&self, account: &AccountId, id: &str) -> StoreResult<bool> {
        let done = sqlx::query(sql::END_ONE)
            .bind(id)
            .bind(&account.0)
            .execute(self.db())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn end_sessions(&self, account: &AccountId, keep: Option<&str>) -> StoreResult<u64> {
        let done = match keep {
            Some(keep) => {
                sqlx::query(sql::END_OTHERS)
                    .bind(&account.0)
                    .bind(keep)
                    .execute(self.db())
                    .await?
            }
            None => {
                sqlx::query(sql::END_ALL)
                    .bind(&account.0)
                    .execute(self.db())
                    .await?
            }
        };
        Ok(done.rows_affected())
    }

    async fn purge_sessions(&self, now: i64, limit: i64) -> StoreResult<u64> {
        let done = sqlx::query(sql::PURGE_POSTGRES)
            .bind(now)
            .bind(limit)
            .execute(self.db())
            .await?;
        Ok(done.rows_affected())
    }
}

impl PostgresStore {
    /// The refreshed session (`row`: account id, generation, auth time, amr) and its account;
    /// `None` if the account was deleted in between (its sessions went with it).
    async fn refreshed(
        &self,
        id: &str,
        row: &sqlx::postgres::PgRow,
    ) -> StoreResult<Option<Refreshed>> {
        let account_id: String = row.try_get(0)?;
        let account = sqlx::query(q::ACCOUNT_BY_ID)
            .bind(&account_id)
            .fetch_optional(self.db())
            .await?;
        let Some(account) = account else {
            return Ok(None);
        };
        Ok(Some(Refreshed {
            id: id.to_owned(),
            generation: row.try_get(1)?,
            auth_time: row.try_get(2)?,
            amr: row.try_get(3)?,
            account: account_from_row(&account)?,
        }))
    }
}

/// Starts a session, and ends the account's oldest beyond its cap (the rows it affects:
/// those it ended). A code's exchange and a second step run it in the transaction that
/// spends the code or the step ([`super::oidc`], [`super::mfa`]).
pub(super) fn insert_session(
    s: &NewSession,
) -> sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments> {
    sqlx::query(sql::INSERT_CAPPED_POSTGRES)
        .bind(&s.id)
        .bind(&s.account.0)
        .bind(s.now)
        .bind(&s.method)
        .bind(s.user_agent.as_deref())
        .bind(s.ip.as_deref())
        .bind(s.idle_expires_at)
        .bind(s.expires_at)
        .bind(s.keep_per_account - 1)
        .bind(s.max_per_account)
        .bind(&s.amr)
        .bind(s.oidc.as_ref().map(|o| &o.client_id))
        .bind(s.oidc.as_ref().map(|o| &o.scopes))
}
