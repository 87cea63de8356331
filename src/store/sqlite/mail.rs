//! [`MailStore`] on SQLite: every write goes through the one writer, which runs each
//! alone, so a lease or a token's use sees no other write between its statements.

use rusqlite::{Connection, OptionalExtension, params};

use super::SqliteStore;
use crate::domain::AccountId;
use crate::store::mail::{
    AccountChange, EndSessions, LinkUse, MailStore, NewLinkToken, NewMail, Proof, QueuedMail,
    RemovedWayIn, Unproven, sql, with_removed,
};
use crate::store::sessions::sql as sessions_sql;
use crate::store::{Purged, StoreResult};

#[async_trait::async_trait]
impl MailStore for SqliteStore {
    async fn queue_mail(&self, mail: &NewMail) -> StoreResult<()> {
        let mail = mail.clone();
        self.writer
            .write(true, move |c| insert_mail(c, &mail))
            .await
    }

    async fn issue_link(&self, token: &NewLinkToken, mail: &NewMail) -> StoreResult<()> {
        let (t, mail) = (token.clone(), mail.clone());
        self.writer
            .write(true, move |c| {
                c.prepare_cached(sql::VOID_TOKENS)?
                    .execute(params![t.account.0, t.purpose])?;
                c.prepare_cached(sql::INSERT_TOKEN)?.execute(params![
                    t.hash,
                    t.purpose,
                    t.account.0,
                    t.detail,
                    t.expires_at,
                    None::<i64>
                ])?;
                insert_mail(c, &mail)
            })
            .await
    }

    async fn peek_link(
        &self,
        token_hash: &str,
        purpose: &str,
        now: i64,
    ) -> StoreResult<Option<(AccountId, Option<String>, Option<i64>)>> {
        self.readers.read(|c| {
            c.prepare_cached(sql::PEEK_TOKEN)?
                .query_row(params![token_hash, purpose, now], |r| {
                    Ok((AccountId(r.get(0)?), r.get(1)?, r.get(2)?))
                })
                .optional()
        })
    }

    async fn use_link(
        &self,
        token_hash: &str,
        purpose: &str,
        now: i64,
        change: &AccountChange,
    ) -> StoreResult<LinkUse> {
        let (hash, purpose, change) = (token_hash.to_owned(), purpose.to_owned(), change.clone());
        // A failed change (an email another account has) rolls the token's use back.
        // The writer runs alone: the account checked is the account changed.
        self.writer
            .write(true, move |c| {
                let peeked: Option<String> = c
                    .prepare_cached(sql::PEEK_TOKEN)?
                    .query_row(params![hash, purpose, now], |r| r.get(0))
                    .optional()?;
                if let Some(account) = peeked
                    && c.prepare_cached(sql::LOCK_ENABLED_ACCOUNT)?
                        .execute([&account])?
                        == 0
                {
                    return Ok(LinkUse::AccountDisabled);
                }
                let Some((account, _)) = take_token(c, &hash, &purpose, now)? else {
                    return Ok(LinkUse::Refused);
                };
                apply(c, &account, &change)?;
                Ok(LinkUse::Done { account })
            })
            .await
    }

    async fn change_account(
        &self,
        account: &AccountId,
        password_was: Option<&str>,
        change: &AccountChange,
    ) -> StoreResult<bool> {
        let (account, was, change) = (
            account.clone(),
            password_was.unwrap_or_default().to_owned(),
            change.clone(),
        );
        self.writer
            .write(true, move |c| {
                // Sets the same hash, or the new one, only if it is still `was`.
                let new = change.password_hash.as_deref().unwrap_or(&was);
                let held = c
                    .prepare_cached(sql::SET_PASSWORD_IF)?
                    .execute(params![new, account.0, was])?;
                if held == 0 {
                    return Ok(false);
                }
                apply(
                    c,
                    &account,
                    &AccountChange {
                        password_hash: None,
                        ..change
                    },
                )?;
                Ok(true)
            })
            .await
    }

    async fn delete_account(
        &self,
        id: &AccountId,
        counters: &[String],
        prefixes: &[String],
    ) -> StoreResult<bool> {
        let (id, counters, prefixes) = (id.0.clone(), counters.to_vec(), prefixes.to_vec());
        self.writer
            .write(true, move |c| {
                c.prepare_cached(sql::DELETE_ONE_TIME_OF)?.execute([&id])?;
                for key in &counters {
                    c.prepare_cached(sql::DELETE_COUNTER)?.execute([key])?;
                }
                for prefix in &prefixes {
                    c.prepare_cached(sql::DELETE_COUNTERS_UNDER)?
                        .execute([prefix])?;
                }
                Ok(c.prepare_cached(sql::DELETE_ACCOUNT)?.execute([&id])? > 0)
            })
            .await
    }

    async fn lease_mail(
        &self,
        lease: &str,
        now: i64,
        leased_until: i64,
        limit: i64,
    ) -> StoreResult<Vec<QueuedMail>> {
        let lease = lease.to_owned();
        // Not durable: a lease lost to a power cut only lets the mail go out again.
        self.writer
            .write(false, move |c| {
                let mut statement = c.prepare_cached(sql::LEASE)?;
                let rows = statement.query_map(params![lease, leased_until, now, limit], |r| {
                    Ok(QueuedMail {
                        id: r.get(0)?,
                        recipient: r.get(1)?,
                        kind: r.get(2)?,
                        context: r.get(3)?,
                        attempts: r.get(4)?,
                    })
                })?;
                Ok(rows.collect::<Result<Vec<_>, _>>()?)
            })
            .await
    }

    async fn mails_sent(&self, lease: &str, ids: &[String]) -> StoreResult<()> {
        let (lease, ids) = (lease.to_owned(), ids.to_vec());
        self.writer
            .write(true, move |c| {
                let mut statement = c.prepare_cached(sql::SENT)?;
                for id in &ids {
                    statement.execute(params![id, lease])?;
                }
                Ok(())
            })
            .await
    }

    async fn mail_failed(
        &self,
        lease: &str,
        id: &str,
        next_attempt_at: i64,
        error: &str,
    ) -> StoreResult<()> {
        let (lease, id, error) = (lease.to_owned(), id.to_owned(), error.to_owned());
        self.writer
            .write(true, move |c| {
                c.prepare_cached(sql::FAILED)?.execute(params![
                    next_attempt_at,
                    error,
                    id,
                    lease
                ])?;
                Ok(())
            })
            .await
    }

    async fn purge_mail(&self, now: i64, limit: i64) -> StoreResult<Purged> {
        self.writer
            .write(false, move |c| super::purge(c, &sql::PURGE, now, limit))
            .await
    }

    async fn outbox_depth(&self, now: i64) -> StoreResult<i64> {
        self.readers.read(|c| {
            c.prepare_cached(sql::OUTBOX_DEPTH)?
                .query_row([now], |r| r.get(0))
        })
    }
}

fn insert_mail(c: &Connection, m: &NewMail) -> StoreResult<()> {
    match (&m.recipient, &m.account) {
        (None, Some(account)) => {
            c.prepare_cached(sql::INSERT_MAIL_TO_ACCOUNT)?
                .execute(params![
                    m.id,
                    m.kind,
                    m.context,
                    m.created_at,
                    m.expires_at,
                    account.0
                ])?;
        }
        (None, None) => {}
        (Some(recipient), account) => {
            c.prepare_cached(sql::INSERT_MAIL)?.execute(params![
                m.id,
                account.as_ref().map(|a| &a.0),
                recipient,
                m.kind,
                m.context,
                m.created_at,
                m.expires_at
            ])?;
        }
    }
    Ok(())
}

/// Makes `change` to `account` (the writer's transaction rolls it back on an error).
fn apply(c: &Connection, account: &AccountId, change: &AccountChange) -> StoreResult<()> {
    let id = &account.0;
    let proven_before: Option<i64> = c
        .prepare_cached(sql::PROVEN_AT)?
        .query_row([id], |r| r.get(0))
        .optional()?
        .flatten();
    if let Some(hash) = &change.password_hash {
        c.prepare_cached(sql::SET_PASSWORD)?
            .execute(params![hash, id])?;
    }
    if let Some((address, key)) = &change.email {
        c.prepare_cached(sql::SET_EMAIL)?
            .execute(params![address, key, id])
            .map_err(super::on_unique)?;
    }
    if let Proof::Set(at) = change.proof {
        c.prepare_cached(sql::SET_PROOF)?.execute(params![at, id])?;
    }
    for purpose in &change.void {
        c.prepare_cached(sql::VOID_TOKENS)?
            .execute(params![id, purpose])?;
    }
    for purpose in &change.void_one_time {
        c.prepare_cached(sql::VOID_ONE_TIME)?
            .execute(params![id, purpose])?;
    }
    let since = match change.remove {
        Unproven::Keep => None,
        Unproven::SinceProof => Some(proven_before),
        Unproven::Since(at) => Some(at),
    };
    if let Some(since) = since {
        let removed = remove_ways_in(c, id, since)?;
        if let Some(notice) = change
            .removal_notice
            .as_ref()
            .filter(|_| !removed.is_empty())
        {
            let notice = NewMail {
                account: Some(account.clone()),
                ..with_removed(notice, &removed)
            };
            insert_mail(c, &notice)?;
        }
    }
    match &change.end_sessions {
        EndSessions::None => {}
        EndSessions::All => {
            c.prepare_cached(sessions_sql::END_ALL)?.execute([id])?;
        }
        EndSessions::Others(current) => {
            c.prepare_cached(sessions_sql::END_OTHERS)?
                .execute(params![id, current])?;
        }
    }
    if let Some(t) = &change.issue {
        c.prepare_cached(sql::INSERT_TOKEN)?.execute(params![
            t.hash,
            t.purpose,
            id,
            t.detail,
            t.expires_at,
            proven_before
        ])?;
    }
    for mail in &change.mails {
        let mail = NewMail {
            account: Some(account.clone()),
            ..mail.clone()
        };
        insert_mail(c, &mail)?;
    }
    Ok(())
}

/// Removes the ways in added at or after `since` (every one with `None`).
fn remove_ways_in(c: &Connection, id: &str, since: Option<i64>) -> StoreResult<Vec<RemovedWayIn>> {
    let mut removed = Vec::new();
    let mut taken = |statement: &str, kind: &'static str| -> StoreResult<()> {
        let mut statement = c.prepare_cached(statement)?;
        let names = statement.query_map(params![id, since], |r| r.get::<_, String>(0))?;
        for name in names {
            let name = name?;
            let name = if kind == "ownid" { String::new() } else { name };
            removed.push(RemovedWayIn { kind, name });
        }
        Ok(())
    };
    taken(sql::REMOVE_WALLETS_SINCE, "wallet")?;
    taken(sql::REMOVE_PASSKEYS_SINCE, "passkey")?;
    taken(sql::REMOVE_SOCIAL_SINCE, "social")?;
    taken(sql::REMOVE_OWNID_SINCE, "ownid")?;
    Ok(removed)
}

fn take_token(
    c: &Connection,
    hash: &str,
    purpose: &str,
    now: i64,
) -> StoreResult<Option<(AccountId, Option<String>)>> {
    // The delete happens in full on the first step, which query_row takes.
    let row: Option<(String, Option<String>)> = c
        .prepare_cached(sql::TAKE_TOKEN)?
        .query_row(params![hash, purpose, now], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    Ok(row.map(|(account, detail)| (AccountId(account), detail)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_placeholder_is_numbered_by_its_position() {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::migrations::run(&mut conn).unwrap();
        for statement in sql::ALL {
            let prepared = conn.prepare(statement).unwrap();
            for i in 1..=prepared.parameter_count() {
                assert_eq!(
                    prepared.parameter_name(i),
                    Some(format!("${i}").as_str()),
                    "{statement}"
                );
            }
        }
    }
}
