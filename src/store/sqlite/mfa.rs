//! [`MfaStore`] on SQLite: reads in-process, writes through the one writer, which runs
//! each write alone, so a conditional UPDATE sees every write before it.

use rusqlite::{OptionalExtension, params};

use super::SqliteStore;
use crate::domain::AccountId;
use crate::store::mfa::{
    FactorSummary, MfaStore, NewPending, PendingAttempt, Proof, SecondStep, Spent, StoredTotp, sql,
};
use crate::store::sessions::NewSession;
use crate::store::{Purged, StoreResult, WindowCount};

#[async_trait::async_trait]
impl MfaStore for SqliteStore {
    async fn totp(&self, account: &AccountId) -> StoreResult<Option<StoredTotp>> {
        self.readers.read(|c| {
            c.prepare_cached(sql::TOTP)?
                .query_row([&account.0], |r| {
                    Ok(StoredTotp {
                        secret: r.get(0)?,
                        confirmed: r.get(1)?,
                    })
                })
                .optional()
        })
    }

    async fn has_second_factor(&self, account: &AccountId) -> StoreResult<bool> {
        self.readers.read(|c| {
            c.prepare_cached(sql::HAS_SECOND_FACTOR)?
                .exists([&account.0])
        })
    }

    async fn begin_totp(&self, account: &AccountId, sealed: &str, now: i64) -> StoreResult<bool> {
        let (account, sealed) = (account.0.clone(), sealed.to_owned());
        self.writer
            .write(true, move |c| {
                Ok(c.prepare_cached(sql::BEGIN_TOTP)?
                    .execute(params![account, sealed, now])?
                    > 0)
            })
            .await
    }

    async fn accept_step(
        &self,
        account: &AccountId,
        step: i64,
        confirming: Option<&[String]>,
        now: i64,
    ) -> StoreResult<bool> {
        let account = account.0.clone();
        let codes = confirming.map(<[String]>::to_vec);
        self.writer
            .write(true, move |c| {
                let Some(codes) = codes else {
                    let n = c
                        .prepare_cached(sql::ACCEPT_STEP)?
                        .execute(params![step, account])?;
                    return Ok(n > 0);
                };
                let n = c
                    .prepare_cached(sql::CONFIRM_STEP)?
                    .execute(params![step, now, account])?;
                if n == 0 {
                    return Ok(false);
                }
                insert_codes(c, &account, &codes, now)?;
                Ok(true)
            })
            .await
    }

    async fn remove_factors(&self, account: &AccountId) -> StoreResult<bool> {
        let account = account.0.clone();
        self.writer
            .write(true, move |c| {
                c.prepare_cached(sql::REMOVE_CODES)?.execute([&account])?;
                Ok(c.prepare_cached(sql::REMOVE_TOTP)?.execute([&account])? > 0)
            })
            .await
    }

    async fn replace_recovery_codes(
        &self,
        account: &AccountId,
        hashes: &[String],
        now: i64,
    ) -> StoreResult<bool> {
        let account = account.0.clone();
        let hashes = hashes.to_vec();
        self.writer
            .write(true, move |c| {
                if !c
                    .prepare_cached(sql::HAS_SECOND_FACTOR)?
                    .exists([&account])?
                {
                    return Ok(false);
                }
                insert_codes(c, &account, &hashes, now)?;
                Ok(true)
            })
            .await
    }

    async fn factor_summary(&self, account: &AccountId) -> StoreResult<FactorSummary> {
        self.readers.read(|c| {
            c.prepare_cached(sql::SUMMARY)?
                .query_row([&account.0], |r| {
                    Ok(FactorSummary {
                        totp: r.get::<_, i64>(0)? > 0,
                        recovery_codes_left: r.get(1)?,
                    })
                })
        })
    }

    async fn put_pending(&self, p: &NewPending) -> StoreResult<()> {
        let p = p.clone();
        self.writer
            .write(false, move |c| {
                c.prepare_cached(sql::INSERT_PENDING)?.execute(params![
                    p.id_hash,
                    p.account.0,
                    p.amr,
                    p.method,
                    p.enroll_only,
                    p.expires_at
                ])?;
                Ok(())
            })
            .await
    }

    async fn attempt_pending(
        &self,
        id_hash: &str,
        now: i64,
        max_attempts: i64,
    ) -> StoreResult<Option<PendingAttempt>> {
        let id_hash = id_hash.to_owned();
        self.writer
            .write(false, move |c| {
                Ok(c.prepare_cached(sql::ATTEMPT_PENDING)?
                    .query_row(params![id_hash, now, max_attempts], |r| {
                        Ok(PendingAttempt {
                            account: AccountId(r.get(0)?),
                            amr: r.get(1)?,
                            method: r.get(2)?,
                            enroll_only: r.get(3)?,
                        })
                    })
                    .optional()?)
            })
            .await
    }

    async fn peek_pending(
        &self,
        id_hash: &str,
        now: i64,
        max_attempts: i64,
    ) -> StoreResult<Option<PendingAttempt>> {
        self.readers.read(|c| {
            c.prepare_cached(sql::PEEK_PENDING)?
                .query_row(params![id_hash, now, max_attempts], |r| {
                    Ok(PendingAttempt {
                        account: AccountId(r.get(0)?),
                        amr: r.get(1)?,
                        method: r.get(2)?,
                        enroll_only: r.get(3)?,
                    })
                })
                .optional()
        })
    }

    async fn second_step(
        &self,
        id_hash: &str,
        now: i64,
        max_attempts: i64,
        failure_prefix: &str,
        failure_window: i64,
    ) -> StoreResult<Option<SecondStep>> {
        self.readers.read(|c| {
            c.prepare_cached(sql::SECOND_STEP)?
                .query_row(
                    params![id_hash, now, max_attempts, failure_prefix, failure_window],
                    |r| {
                        let secret: Option<String> = r.get(4)?;
                        let count: Option<i64> = r.get(6)?;
                        Ok(SecondStep {
                            pending: PendingAttempt {
                                account: AccountId(r.get(0)?),
                                amr: r.get(1)?,
                                method: r.get(2)?,
                                enroll_only: r.get(3)?,
                            },
                            totp: match secret {
                                Some(secret) => Some(StoredTotp {
                                    secret,
                                    confirmed: r.get(5)?,
                                }),
                                None => None,
                            },
                            failures: match count {
                                Some(count) => Some(WindowCount {
                                    count,
                                    window_start: r.get(7)?,
                                }),
                                None => None,
                            },
                        })
                    },
                )
                .optional()
        })
    }

    async fn spend_attempt(
        &self,
        id_hash: &str,
        now: i64,
        max_attempts: i64,
        proof: Proof,
        session: Option<&NewSession>,
    ) -> StoreResult<Spent> {
        let id_hash = id_hash.to_owned();
        let session = session.cloned();
        // Durable when it may accept a proof: an accepted step or code, or a started
        // session, must not come back (or go) after a crash.
        let durable = proof != Proof::Nothing;
        self.writer
            .write(durable, move |c| {
                let attempt = c
                    .prepare_cached(sql::ATTEMPT_PENDING)?
                    .query_row(params![id_hash, now, max_attempts], pending_attempt)
                    .optional()?;
                let Some(attempt) = attempt else {
                    return Ok(Spent::NotPending);
                };
                let account = &attempt.account.0;
                let (accepted, codes_left) = match &proof {
                    Proof::Nothing => (false, None),
                    Proof::Step(step) => {
                        let n = c
                            .prepare_cached(sql::ACCEPT_STEP)?
                            .execute(params![step, account])?;
                        (n > 0, None)
                    }
                    Proof::RecoveryCode(hash) => {
                        let n = c
                            .prepare_cached(sql::USE_CODE)?
                            .execute(params![now, account, hash])?;
                        let left: i64 = c
                            .prepare_cached(sql::CODES_LEFT)?
                            .query_row([account], |r| r.get(0))?;
                        (n > 0, Some(left))
                    }
                };
                if !accepted {
                    return Ok(Spent::Counted(attempt));
                }
                c.prepare_cached(sql::SPEND_PENDING)?.execute([&id_hash])?;
                let ended = match session {
                    Some(mut s) => {
                        s.account = attempt.account.clone();
                        super::sessions::insert_session(c, &s)?
                    }
                    None => 0,
                };
                Ok(Spent::Accepted {
                    attempt,
                    ended,
                    codes_left,
                })
            })
            .await
    }

    async fn take_pending(&self, id_hash: &str) -> StoreResult<bool> {
        let id_hash = id_hash.to_owned();
        self.writer
            .write(false, move |c| {
                Ok(c.prepare_cached(sql::TAKE_PENDING)?.execute([&id_hash])? > 0)
            })
            .await
    }

    async fn purge_pending(&self, now: i64, limit: i64) -> StoreResult<Purged> {
        self.writer
            .write(false, move |c| super::purge(c, &sql::PURGE, now, limit))
            .await
    }
}

fn pending_attempt(r: &rusqlite::Row<'_>) -> rusqlite::Result<PendingAttempt> {
    Ok(PendingAttempt {
        account: AccountId(r.get(0)?),
        amr: r.get(1)?,
        method: r.get(2)?,
        enroll_only: r.get(3)?,
    })
}

/// Replaces the account's recovery codes with `hashes`.
fn insert_codes(
    c: &rusqlite::Connection,
    account: &str,
    hashes: &[String],
    now: i64,
) -> rusqlite::Result<()> {
    c.prepare_cached(sql::REMOVE_CODES)?.execute([account])?;
    let mut insert = c.prepare_cached(sql::INSERT_CODE)?;
    for hash in hashes {
        insert.execute(params![account, hash, now])?;
    }
    Ok(())
}
