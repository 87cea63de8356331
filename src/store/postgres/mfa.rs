//! [`MfaStore`] on PostgreSQL. Each single-use value is one conditional UPDATE or
//! DELETE on its row: concurrent requests on any node queue on the row's lock, and each
//! re-reads the row as the one before it left it (READ COMMITTED), so exactly one wins.

use sqlx::Row;

use super::PostgresStore;
use crate::domain::AccountId;
use crate::store::mfa::{
    FactorSummary, MfaStore, NewPending, PendingAttempt, Proof, SecondStep, Spent, StoredTotp, sql,
};
use crate::store::sessions::NewSession;
use crate::store::{Purged, StoreResult, WindowCount};

#[async_trait::async_trait]
impl MfaStore for PostgresStore {
    async fn totp(&self, account: &AccountId) -> StoreResult<Option<StoredTotp>> {
        let row = sqlx::query(sql::TOTP)
            .bind(&account.0)
            .fetch_optional(self.db())
            .await?;
        Ok(row
            .map(|r| -> sqlx::Result<StoredTotp> {
                Ok(StoredTotp {
                    secret: r.try_get(0)?,
                    confirmed: r.try_get(1)?,
                })
            })
            .transpose()?)
    }

    async fn has_second_factor(&self, account: &AccountId) -> StoreResult<bool> {
        let row = sqlx::query(sql::HAS_SECOND_FACTOR)
            .bind(&account.0)
            .fetch_optional(self.db())
            .await?;
        Ok(row.is_some())
    }

    async fn begin_totp(&self, account: &AccountId, sealed: &str, now: i64) -> StoreResult<bool> {
        let done = sqlx::query(sql::BEGIN_TOTP)
            .bind(&account.0)
            .bind(sealed)
            .bind(now)
            .execute(self.db())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn accept_step(
        &self,
        account: &AccountId,
        step: i64,
        confirming: Option<&[String]>,
        now: i64,
    ) -> StoreResult<bool> {
        let Some(codes) = confirming else {
            let done = sqlx::query(sql::ACCEPT_STEP)
                .bind(step)
                .bind(&account.0)
                .execute(self.db())
                .await?;
            return Ok(done.rows_affected() > 0);
        };
        let (mut tx, _timing) = self.begin().await?;
        let done = sqlx::query(sql::CONFIRM_STEP)
            .bind(step)
            .bind(now)
            .bind(&account.0)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        insert_codes(&mut tx, account, codes, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn remove_factors(&self, account: &AccountId) -> StoreResult<bool> {
        let (mut tx, _timing) = self.begin().await?;
        sqlx::query(sql::REMOVE_CODES)
            .bind(&account.0)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query(sql::REMOVE_TOTP)
            .bind(&account.0)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    async fn replace_recovery_codes(
        &self,
        account: &AccountId,
        hashes: &[String],
        now: i64,
    ) -> StoreResult<bool> {
        let (mut tx, _timing) = self.begin().await?;
        // Locks the authenticator's row: a removal waits for this set, or this waits
        // for the removal and finds no factor.
        let confirmed = sqlx::query(
            "SELECT 1 FROM totp_factors WHERE account_id = $1 AND confirmed_at IS NOT NULL
             FOR UPDATE",
        )
        .bind(&account.0)
        .fetch_optional(&mut *tx)
        .await?;
        if confirmed.is_none() {
            return Ok(false);
        }
        insert_codes(&mut tx, account, hashes, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn factor_summary(&self, account: &AccountId) -> StoreResult<FactorSummary> {
        let row = sqlx::query(sql::SUMMARY)
            .bind(&account.0)
            .fetch_one(self.db())
            .await?;
        Ok(FactorSummary {
            totp: row.try_get::<i64, _>(0)? > 0,
            recovery_codes_left: row.try_get(1)?,
        })
    }

    async fn put_pending(&self, p: &NewPending) -> StoreResult<()> {
        sqlx::query(sql::INSERT_PENDING)
            .bind(&p.id_hash)
            .bind(&p.account.0)
            .bind(&p.amr)
            .bind(&p.method)
            .bind(i64::from(p.enroll_only))
            .bind(p.expires_at)
            .execute(self.db())
            .await?;
        Ok(())
    }

    async fn attempt_pending(
        &self,
        id_hash: &str,
        now: i64,
        max_attempts: i64,
    ) -> StoreResult<Option<PendingAttempt>> {
        let row = sqlx::query(sql::ATTEMPT_PENDING)
            .bind(id_hash)
            .bind(now)
            .bind(max_attempts)
            .fetch_optional(self.db())
            .await?;
        Ok(row
            .map(|r| -> sqlx::Result<PendingAttempt> {
                Ok(PendingAttempt {
                    account: AccountId(r.try_get(0)?),
                    amr: r.try_get(1)?,
                    method: r.try_get(2)?,
                    enroll_only: r.try_get::<i64, _>(3)? != 0,
                })
            })
            .transpose()?)
    }

    async fn peek_pending(
        &self,
        id_hash: &str,
        now: i64,
        max_attempts: i64,
    ) -> StoreResult<Option<PendingAttempt>> {
        let row = sqlx::query(sql::PEEK_PENDING)
            .bind(id_hash)
            .bind(now)
            .bind(max_attempts)
            .fetch_optional(self.db())
            .await?;
        Ok(row
            .map(|r| -> sqlx::Result<PendingAttempt> {
                Ok(PendingAttempt {
                    account: AccountId(r.try_get(0)?),
                    amr: r.try_get(1)?,
                    method: r.try_get(2)?,
                    enroll_only: r.try_get::<i64, _>(3)? != 0,
                })
            })
            .transpose()?)
    }

    async fn second_step(
        &self,
        id_hash: &str,
        now: i64,
        max_attempts: i64,
        failure_prefix: &str,
        failure_window: i64,
    ) -> StoreResult<Option<SecondStep>> {
        let row = sqlx::query(sql::SECOND_STEP)
            .bind(id_hash)
            .bind(now)
            .bind(max_attempts)
            .bind(failure_prefix)
            .bind(failure_window)
            .fetch_optional(self.db())
            .await?;
        let Some(r) = row else {
            return Ok(None);
        };
        let secret: Option<String> = r.try_get(4)?;
        let count: Option<i64> = r.try_get(6)?;
        Ok(Some(SecondStep {
            pending: pending_attempt(&r)?,
            totp: match secret {
                Some(secret) => Some(StoredTotp {
                    secret,
                    confirmed: r.try_get(5)?,
                }),
                None => None,
            },
            failures: match count {
                Some(count) => Some(WindowCount {
                    count,
                    window_start: r.try_get(7)?,
                }),
                None => None,
            },
        }))
    }

    async fn spend_attempt(
        &self,
        id_hash: &str,
        now: i64,
        max_attempts: i64,
        proof: Proof,
        session: Option<&NewSession>,
    ) -> StoreResult<Spent> {
        let (mut tx, _timing) = self.begin().await?;
        // The pending sign-in's row stays locked to the end: a concurrent attempt on it
        // waits, then finds it deleted or counted.
        let row = sqlx::query(sql::ATTEMPT_PENDING)
            .bind(id_hash)
            .bind(now)
            .bind(max_attempts)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            return Ok(Spent::NotPending);
        };
        let attempt = pending_attempt(&row)?;
        let account = &attempt.account.0;
        let (accepted, codes_left) = match &proof {
            Proof::Nothing => (false, None),
            Proof::Step(step) => {
                let done = sqlx::query(sql::ACCEPT_STEP)
                    .bind(step)
                    .bind(account)
                    .execute(&mut *tx)
                    .await?;
                (done.rows_affected() > 0, None)
            }
            Proof::RecoveryCode(hash) => {
                let done = sqlx::query(sql::USE_CODE)
                    .bind(now)
                    .bind(account)
                    .bind(hash)
                    .execute(&mut *tx)
                    .await?;
                let left: i64 = sqlx::query_scalar(sql::CODES_LEFT)
                    .bind(account)
                    .fetch_one(&mut *tx)
                    .await?;
                (done.rows_affected() > 0, Some(left))
            }
        };
        if !accepted {
            tx.commit().await?;
            return Ok(Spent::Counted(attempt));
        }
        sqlx::query(sql::SPEND_PENDING)
            .bind(id_hash)
            .execute(&mut *tx)
            .await?;
        let ended = match session {
            Some(s) => {
                let mut s = s.clone();
                s.account = attempt.account.clone();
                super::sessions::insert_session(&s)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
            }
            None => 0,
        };
        tx.commit().await?;
        Ok(Spent::Accepted {
            attempt,
            ended,
            codes_left,
        })
    }

    async fn take_pending(&self, id_hash: &str) -> StoreResult<bool> {
        let done = sqlx::query(sql::TAKE_PENDING)
            .bind(id_hash)
            .execute(self.db())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn purge_pending(&self, now: i64, limit: i64) -> StoreResult<Purged> {
        self.purge(&sql::PURGE_POSTGRES, now, limit).await
    }
}

/// The pending sign-in of a row of [`sql::ATTEMPT_PENDING`] or [`sql::SECOND_STEP`].
fn pending_attempt(r: &sqlx::postgres::PgRow) -> sqlx::Result<PendingAttempt> {
    Ok(PendingAttempt {
        account: AccountId(r.try_get(0)?),
        amr: r.try_get(1)?,
        method: r.try_get(2)?,
        enroll_only: r.try_get::<i64, _>(3)? != 0,
    })
}

/// Replaces the account's recovery codes with `hashes`, in `tx`.
async fn insert_codes(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    account: &AccountId,
    hashes: &[String],
    now: i64,
) -> sqlx::Result<()> {
    sqlx::query(sql::REMOVE_CODES)
        .bind(&account.0)
        .execute(&mut **tx)
        .await?;
    for hash in hashes {
        sqlx::query(sql::INSERT_CODE)
            .bind(&account.0)
            .bind(hash)
            .bind(now)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}
