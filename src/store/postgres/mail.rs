//! [`MailStore`] on PostgreSQL. Several nodes lease from one outbox: the lease locks
//! the rows it picks and skips rows another node is picking (`FOR UPDATE SKIP
//! LOCKED`), and re-checks a row another node leased meanwhile, so no two nodes hold
//! one mail.

use sqlx::{Postgres, Transaction};

use super::PostgresStore;
use crate::domain::AccountId;
use crate::store::mail::{
    AccountChange, EndSessions, LinkUse, MailStore, NewLinkToken, NewMail, Proof, QueuedMail,
    RemovedWayIn, Unproven, sql, with_removed,
};
use crate::store::sessions::sql as sessions_sql;
use crate::store::{Purged, StoreResult};

#[async_trait::async_trait]
impl MailStore for PostgresStore {
    async fn queue_mail(&self, mail: &NewMail) -> StoreResult<()> {
        let (mut tx, _timing) = self.begin().await?;
        insert_mail(&mut tx, mail).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn issue_link(&self, t: &NewLinkToken, mail: &NewMail) -> StoreResult<()> {
        let (mut tx, _timing) = self.begin().await?;
        sqlx::query(sql::VOID_TOKENS)
            .bind(&t.account.0)
            .bind(&t.purpose)
            .execute(&mut *tx)
            .await?;
        sqlx::query(sql::INSERT_TOKEN)
            .bind(&t.hash)
            .bind(&t.purpose)
            .bind(&t.account.0)
            .bind(t.detail.as_deref())
            .bind(t.expires_at)
            .bind(None::<i64>)
            .execute(&mut *tx)
            .await?;
        insert_mail(&mut tx, mail).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn peek_link(
        &self,
        token_hash: &str,
        purpose: &str,
        now: i64,
    ) -> StoreResult<Option<(AccountId, Option<String>, Option<i64>)>> {
        let row: Option<(String, Option<String>, Option<i64>)> = sqlx::query_as(sql::PEEK_TOKEN)
            .bind(token_hash)
            .bind(purpose)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|(account, detail, proven)| (AccountId(account), detail, proven)))
    }

    async fn use_link(
        &self,
        token_hash: &str,
        purpose: &str,
        now: i64,
        change: &AccountChange,
    ) -> StoreResult<LinkUse> {
        let (mut tx, _timing) = self.begin().await?;
        let row: Option<(String, Option<String>)> = sqlx::query_as(sql::TAKE_TOKEN)
            .bind(token_hash)
            .bind(purpose)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
        let Some((account, _)) = row else {
            return Ok(LinkUse::Refused);
        };
        // Locked until the commit: a disable waits for this change, or this change
        // finds the account disabled and drops the transaction, token and all.
        let enabled = sqlx::query(sql::LOCK_ENABLED_ACCOUNT)
            .bind(&account)
            .execute(&mut *tx)
            .await?;
        if enabled.rows_affected() == 0 {
            return Ok(LinkUse::AccountDisabled);
        }
        let account = AccountId(account);
        // An error drops the transaction: the token's use is rolled back with it.
        apply(&mut tx, &account, change).await?;
        tx.commit().await?;
        Ok(LinkUse::Done { account })
    }

    async fn change_account(
        &self,
        account: &AccountId,
        password_was: Option<&str>,
        change: &AccountChange,
    ) -> StoreResult<bool> {
        let was = password_was.unwrap_or_default();
        let mut tx = self.pool.begin().await?;
        // Sets the same hash, or the new one, only if it is still `was`; the row stays
        // locked until the commit, so a concurrent change waits and then finds it moved.
        let held = sqlx::query(sql::SET_PASSWORD_IF)
            .bind(change.password_hash.as_deref().unwrap_or(was))
            .bind(&account.0)
            .bind(was)
            .execute(&mut *tx)
            .await?;
        if held.rows_affected() == 0 {
            return Ok(false);
        }
        let rest = AccountChange {
            password_hash: None,
            ..change.clone()
        };
        apply(&mut tx, account, &rest).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn delete_account(
        &self,
        id: &AccountId,
        counters: &[String],
        prefixes: &[String],
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(sql::DELETE_ONE_TIME_OF)
            .bind(&id.0)
            .execute(&mut *tx)
            .await?;
        for key in counters {
            sqlx::query(sql::DELETE_COUNTER)
                .bind(key)
                .execute(&mut *tx)
                .await?;
        }
        for prefix in prefixes {
            sqlx::query(sql::DELETE_COUNTERS_UNDER)
                .bind(prefix)
                .execute(&mut *tx)
                .await?;
        }
        let deleted = sqlx::query(sql::DELETE_ACCOUNT)
            .bind(&id.0)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(deleted.rows_affected() > 0)
    }

    async fn lease_mail(
        &self,
        lease: &str,
        now: i64,
        leased_until: i64,
        limit: i64,
    ) -> StoreResult<Vec<QueuedMail>> {
        let rows: Vec<(String, String, String, String, i64)> = sqlx::query_as(sql::LEASE_POSTGRES)
            .bind(lease)
            .bind(leased_until)
            .bind(now)
            .bind(limit)
            .fetch_all(self.db())
            .await?;
        Ok(rows
            .into_iter()
            .map(|(id, recipient, kind, context, attempts)| QueuedMail {
                id,
                recipient,
                kind,
                context,
                attempts,
            })
            .collect())
    }

    async fn mails_sent(&self, lease: &str, ids: &[String]) -> StoreResult<()> {
        let (mut tx, _timing) = self.begin().await?;
        for id in ids {
            sqlx::query(sql::SENT)
                .bind(id)
                .bind(lease)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn mail_failed(
        &self,
        lease: &str,
        id: &str,
        next_attempt_at: i64,
        error: &str,
    ) -> StoreResult<()> {
        sqlx::query(sql::FAILED)
            .bind(next_attempt_at)
            .bind(error)
            .bind(id)
            .bind(lease)
            .execute(self.db())
            .await?;
        Ok(())
    }

    async fn purge_mail(&self, now: i64, limit: i64) -> StoreResult<Purged> {
        self.purge(&sql::PURGE_POSTGRES, now, limit).await
    }

    async fn outbox_depth(&self, now: i64) -> StoreResult<i64> {
        Ok(sqlx::query_scalar(sql::OUTBOX_DEPTH)
            .bind(now)
            .fetch_one(self.db())
            .await?)
    }
}

/// Makes `change` to `account` in the transaction.
async fn apply(
    tx: &mut Transaction<'_, Postgres>,
    account: &AccountId,
    change: &AccountChange,
) -> StoreResult<()> {
    let id = &account.0;
    let proven_before: Option<i64> = sqlx::query_scalar(sql::PROVEN_AT)
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
        .flatten();
    if let Some(hash) = &change.password_hash {
        sqlx::query(sql::SET_PASSWORD)
            .bind(hash)
            .bind(id)
            .execute(&mut **tx)
            .await?;
    }
    if let Some((address, key)) = &change.email {
        sqlx::query(sql::SET_EMAIL)
            .bind(address)
            .bind(key)
            .bind(id)
            .execute(&mut **tx)
            .await
            .map_err(super::on_unique)?;
    }
    if let Proof::Set(at) = change.proof {
        sqlx::query(sql::SET_PROOF)
            .bind(at)
            .bind(id)
            .execute(&mut **tx)
            .await?;
    }
    for purpose in &change.void {
        sqlx::query(sql::VOID_TOKENS)
            .bind(id)
            .bind(purpose)
            .execute(&mut **tx)
            .await?;
    }
    for purpose in &change.void_one_time {
        sqlx::query(sql::VOID_ONE_TIME)
            .bind(id)
            .bind(purpose)
            .execute(&mut **tx)
            .await?;
    }
    let since = match change.remove {
        Unproven::Keep => None,
        Unproven::SinceProof => Some(proven_before),
        Unproven::Since(at) => Some(at),
    };
    if let Some(since) = since {
        let mut removed = Vec::new();
        for (statement, kind) in [
            (sql::REMOVE_WALLETS_SINCE, "wallet"),
            (sql::REMOVE_PASSKEYS_SINCE, "passkey"),
            (sql::REMOVE_SOCIAL_SINCE, "social"),
            (sql::REMOVE_OWNID_SINCE, "ownid"),
        ] {
            let names: Vec<String> = sqlx::query_scalar(statement)
                .bind(id)
                .bind(since)
                .fetch_all(&mut **tx)
                .await?;
            removed.extend(names.into_iter().map(|name| RemovedWayIn {
                kind,
                name: if kind == "ownid" { String::new() } else { name },
            }));
        }
        if let Some(notice) = change
            .removal_notice
            .as_ref()
            .filter(|_| !removed.is_empty())
        {
            let notice = NewMail {
                account: Some(account.clone()),
                ..with_removed(notice, &removed)
            };
            insert_mail(tx, &notice).await?;
        }
    }
    match &change.end_sessions {
        EndSessions::None => {}
        EndSessions::All => {
            sqlx::query(sessions_sql::END_ALL)
                .bind(id)
                .execute(&mut **tx)
                .await?;
        }
        EndSessions::Others(current) => {
            sqlx::query(sessions_sql::END_OTHERS)
                .bind(id)
                .bind(current)
                .execute(&mut **tx)
                .await?;
        }
    }
    if let Some(t) = &change.issue {
        sqlx::query(sql::INSERT_TOKEN)
            .bind(&t.hash)
            .bind(&t.purpose)
            .bind(id)
            .bind(t.detail.as_deref())
            .bind(t.expires_at)
            .bind(proven_before)
            .execute(&mut **tx)
            .await?;
    }
    for mail in &change.mails {
        let mail = NewMail {
            account: Some(account.clone()),
            ..mail.clone()
        };
        insert_mail(tx, &mail).await?;
    }
    Ok(())
}

async fn insert_mail(tx: &mut Transaction<'_, Postgres>, m: &NewMail) -> StoreResult<()> {
    match (&m.recipient, &m.account) {
        (None, Some(account)) => {
            sqlx::query(sql::INSERT_MAIL_TO_ACCOUNT)
                .bind(&m.id)
                .bind(&m.kind)
                .bind(&m.context)
                .bind(m.created_at)
                .bind(m.expires_at)
                .bind(&account.0)
                .execute(&mut **tx)
                .await?;
        }
        (None, None) => {}
        (Some(recipient), account) => {
            sqlx::query(sql::INSERT_MAIL)
                .bind(&m.id)
                .bind(account.as_ref().map(|a| a.0.as_str()))
                .bind(recipient)
                .bind(&m.kind)
                .bind(&m.context)
                .bind(m.created_at)
                .bind(m.expires_at)
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(())
}
