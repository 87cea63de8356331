//! [`SessionStore`] on SQLite: reads in-process, writes through the one writer, which
//! runs each write alone, so a refresh's statements see no other write between them.

use rusqlite::{Connection, OptionalExtension, params};

use super::super::queries as q;
use super::super::sessions::{
    NewSession, Refresh, RefreshRules, Refreshed, SessionRecord, SessionStore, sql,
};
use super::{SqliteStore, account_from_row, profile};
use crate::domain::AccountId;
use crate::store::{AccountProfile, StoreResult};

#[async_trait::async_trait]
impl SessionStore for SqliteStore {
    async fn create_session(&self, s: &NewSession) -> StoreResult<u64> {
        let s = s.clone();
        self.writer
            .write(true, move |c| insert_session(c, &s))
            .await
    }

    async fn session_is_live(&self, id: &str, account: &AccountId, now: i64) -> StoreResult<bool> {
        self.readers.read(|c| {
            c.prepare_cached(sql::IS_LIVE)?
                .exists(params![id, account.0, now])
        })
    }

    async fn live_profile(
        &self,
        id: &str,
        account: &AccountId,
        now: i64,
    ) -> StoreResult<Option<AccountProfile>> {
        self.readers
            .read(|c| profile(c, q::LIVE_PROFILE, params![id, account.0, now]))
    }

    async fn refresh_session(
        &self,
        id: &str,
        generation: i64,
        r: RefreshRules,
    ) -> StoreResult<Refresh> {
        let id = id.to_owned();
        self.writer
            .write(true, move |c| {
                let rotate = params![r.now, r.idle_secs, id, generation];
                if let Some(s) = refreshed(c, &id, sql::ROTATE, rotate)? {
                    return Ok(Refresh::Rotated(s));
                }
                let replay = params![id, generation, r.grace_secs, r.now, r.max_replays];
                if let Some(s) = refreshed(c, &id, sql::REPLAY, replay)? {
                    return Ok(Refresh::Replayed(s));
                }
                let revoked = c.prepare_cached(sql::REVOKE_REUSED)?.execute(params![
                    id,
                    generation,
                    r.grace_secs,
                    r.now
                ])?;
                Ok(if revoked > 0 {
                    Refresh::Revoked
                } else {
                    Refresh::Refused
                })
            })
            .await
    }

    async fn sessions_of(&self, account: &AccountId, now: i64) -> StoreResult<Vec<SessionRecord>> {
        self.readers.read(|c| {
            c.prepare_cached(sql::OF_ACCOUNT)?
                .query_map(params![account.0, now], |r| {
                    Ok(SessionRecord {
                        id: r.get(0)?,
                        method: r.get(1)?,
                        user_agent: r.get(2)?,
                        ip: r.get(3)?,
                        auth_time: r.get(4)?,
                        created_at: r.get(5)?,
                        last_used_at: r.get(6)?,
                    })
                })?
                .collect()
        })
    }

    async fn end_session(&self, account: &AccountId, id: &str) -> StoreResult<bool> {
        let (account, id) = (account.0.clone(), id.to_owned());
        self.writer
            .write(true, move |c| {
                Ok(c.prepare_cached(sql::END_ONE)?
                    .execute(params![id, account])?
                    > 0)
            })
            .await
    }

    async fn end_sessions(&self, account: &AccountId, keep: Option<&str>) -> StoreResult<u64> {
        let (account, keep) = (account.0.clone(), keep.map(str::to_owned));
        self.writer
            .write(true, move |c| {
                let ended = match keep {
                    Some(keep) => c
                        .prepare_cached(sql::END_OTHERS)?
                        .execute(params![account, keep])?,
                    None => c.prepare_cached(sql::END_ALL)?.execute([account])?,
                };
                Ok(ended as u64)
            })
            .await
    }

    async fn purge_sessions(&self, now: i64, limit: i64) -> StoreResult<u64> {
        self.writer
            .write(false, move |c| {
                Ok(c.prepare_cached(sql::PURGE)?.execute([now, limit])? as u64)
            })
            .await
    }
}

/// Runs a refresh statement; on a match, reads the session's account with it.
fn refreshed(
    c: &Connection,
    id: &str,
    statement: &str,
    params: impl rusqlite::Params,
) -> StoreResult<Option<Refreshed>> {
    let row = c
        .prepare_cached(statement)?
        .query_row(params, |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get(2)?,
                r.get::<_, String>(3)?,
            ))
        })
        .optional()?;
    let Some((account_id, generation, auth_time, amr)) = row else {
        return Ok(None);
    };
    let account = c
        .prepare_cached(q::ACCOUNT_BY_ID)?
        .query_row([&account_id], account_from_row)?;
    Ok(Some(Refreshed {
        id: id.to_owned(),
        generation,
        auth_time,
        amr,
        account,
    }))
}

/// Starts a session, and ends the account's oldest beyond its cap: how many it ended.
/// (A code's exchange and a second step start their sessions in the same write as the
/// code's or the step's use: [`super::oidc`], [`super::mfa`].)
pub(super) fn insert_session(c: &Connection, s: &NewSession) -> StoreResult<u64> {
    c.prepare_cached(sql::INSERT)?.execute(params![
        s.id,
        s.account.0,
        s.now,
        s.method,
        s.user_agent,
        s.ip,
        s.idle_expires_at,
        s.expires_at,
        s.amr,
        s.oidc.as_ref().map(|o| &o.client_id),
        s.oidc.as_ref().map(|o| &o.scopes)
    ])?;
    let count: i64 = c
        .prepare_cached(sql::COUNT_OF_ACCOUNT)?
        .query_row([&s.account.0], |r| r.get(0))?;
    if count <= s.max_per_account {
        return Ok(0);
    }
    let ended = c.prepare_cached(sql::END_OVER_CAP)?.execute(params![
        s.account.0,
        s.id,
        s.keep_per_account - 1
    ])?;
    Ok(ended as u64)
}
