//! [`SocialStore`] on SQLite: reads in-process, writes through the one writer, which
//! runs each write alone (in its transaction), so a conditional write sees every write
//! before it.

use rusqlite::{OptionalExtension, Row, params};

use super::{SqliteStore, insert_account, on_unique};
use crate::domain::AccountId;
use crate::store::queries as q;
use crate::store::social::{
    IdentityAdded, IdentityRemoval, IdentitySummary, KnownIdentity, NewIdentity, SocialStore,
    StoredPending, sql,
};
use crate::store::{NewAccount, StoreResult};

#[async_trait::async_trait]
impl SocialStore for SqliteStore {
    // The pending sign-ins are written without an fsync of their own (as the pending
    // /oauth/authorize requests are): they live minutes, and a consumption lost to a
    // power cut leaves a row whose upstream code is spent already.
    async fn put_social_pending(&self, p: &StoredPending) -> StoreResult<()> {
        let p = p.clone();
        self.writer
            .write(false, move |c| {
                c.prepare_cached(sql::INSERT_PENDING)?
                    .execute(params![
                        p.state_hash,
                        p.binding_hash,
                        p.provider,
                        p.nonce,
                        p.verifier,
                        p.mode,
                        p.return_to,
                        p.link_account.map(|a| a.0),
                        p.link_session,
                        p.expires_at
                    ])
                    .map_err(on_unique)?;
                Ok(())
            })
            .await
    }

    async fn take_social_pending(
        &self,
        state_hash: &str,
        binding_hash: &str,
        now: i64,
    ) -> StoreResult<Option<StoredPending>> {
        let (hash, binding) = (state_hash.to_owned(), binding_hash.to_owned());
        self.writer
            .write(false, move |c| {
                Ok(c.prepare_cached(sql::TAKE_PENDING)?
                    .query_row(params![hash, binding, now], pending_from_row)
                    .optional()?)
            })
            .await
    }

    async fn identity_account(
        &self,
        provider: &str,
        subject: &str,
    ) -> StoreResult<Option<KnownIdentity>> {
        self.readers.read(|c| {
            c.prepare_cached(sql::IDENTITY_ACCOUNT)?
                .query_row([provider, subject], |r| {
                    Ok(KnownIdentity {
                        account: AccountId(r.get(0)?),
                        display_name: r.get(1)?,
                    })
                })
                .optional()
        })
    }

    async fn set_identity_name(
        &self,
        provider: &str,
        subject: &str,
        name: &str,
    ) -> StoreResult<()> {
        let (provider, subject, name) = (provider.to_owned(), subject.to_owned(), name.to_owned());
        self.writer
            .write(true, move |c| {
                c.prepare_cached(sql::SET_DISPLAY_NAME)?
                    .execute(params![name, provider, subject])?;
                Ok(())
            })
            .await
    }

    async fn create_account_with_identity(
        &self,
        account: &NewAccount,
        identity: &NewIdentity,
        email_verified: bool,
    ) -> StoreResult<()> {
        let (a, i) = (account.clone(), identity.clone());
        self.writer
            .write(true, move |c| {
                insert_account(c, &a)?;
                insert_identity(c, &a.id, &i)?;
                if email_verified {
                    c.prepare_cached(sql::MARK_VERIFIED)?
                        .execute(params![i.linked_at, a.id.0])?;
                }
                Ok(())
            })
            .await
    }

    async fn add_identity(
        &self,
        account: &AccountId,
        identity: &NewIdentity,
        session: &str,
        now: i64,
    ) -> StoreResult<IdentityAdded> {
        let (account, i, session) = (account.clone(), identity.clone(), session.to_owned());
        self.writer
            .write(true, move |c| {
                if c.prepare_cached(q::HOLD_LIVE_SESSION)?
                    .execute(params![session, account.0, now])?
                    == 0
                {
                    return Ok(IdentityAdded::SessionEnded);
                }
                let linked: Option<String> = c
                    .prepare_cached(sql::IDENTITY_LINKED_TO)?
                    .query_row([&i.provider, &i.subject], |r| r.get(0))
                    .optional()?;
                if linked.as_deref() == Some(account.0.as_str()) {
                    return Ok(IdentityAdded::AlreadyLinked);
                }
                insert_identity(c, &account, &i)?;
                Ok(IdentityAdded::Added)
            })
            .await
    }

    async fn identities(&self, account: &AccountId) -> StoreResult<Vec<IdentitySummary>> {
        self.readers.read(|c| {
            c.prepare_cached(sql::IDENTITIES)?
                .query_map([&account.0], |r| {
                    Ok(IdentitySummary {
                        id: r.get(0)?,
                        provider: r.get(1)?,
                        email: r.get(2)?,
                        linked_at: r.get(3)?,
                        display_name: r.get(4)?,
                    })
                })?
                .collect()
        })
    }

    async fn remove_identity(&self, account: &AccountId, id: &str) -> StoreResult<IdentityRemoval> {
        let (account, id) = (account.0.clone(), id.to_owned());
        self.writer
            .write(true, move |c| {
                if c.prepare_cached(q::LOCK_ACCOUNT)?.execute([&account])? == 0 {
                    return Ok(IdentityRemoval::NotFound);
                }
                let removed = c
                    .prepare_cached(sql::DELETE_IDENTITY_UNLESS_LAST)?
                    .execute(params![id, account])?;
                if removed > 0 {
                    return Ok(IdentityRemoval::Removed);
                }
                let linked = c
                    .prepare_cached(sql::IDENTITY_EXISTS)?
                    .exists(params![id, account])?;
                Ok(if linked {
                    IdentityRemoval::LastSignInMethod
                } else {
                    IdentityRemoval::NotFound
                })
            })
            .await
    }

    async fn put_social_code(
        &self,
        code_hash: &str,
        account: &AccountId,
        provider: &str,
        expires_at: i64,
    ) -> StoreResult<()> {
        let (hash, account, provider) =
            (code_hash.to_owned(), account.0.clone(), provider.to_owned());
        self.writer
            .write(true, move |c| {
                c.prepare_cached(sql::INSERT_CODE)?
                    .execute(params![hash, account, provider, expires_at])
                    .map_err(on_unique)?;
                Ok(())
            })
            .await
    }

    async fn take_social_code(
        &self,
        code_hash: &str,
        now: i64,
    ) -> StoreResult<Option<(AccountId, String)>> {
        let hash = code_hash.to_owned();
        self.writer
            .write(true, move |c| {
                Ok(c.prepare_cached(sql::TAKE_CODE)?
                    .query_row(params![hash, now], |r| {
                        Ok((AccountId(r.get(0)?), r.get(1)?))
                    })
                    .optional()?)
            })
            .await
    }
}

fn insert_identity(
    c: &rusqlite::Connection,
    account: &AccountId,
    i: &NewIdentity,
) -> StoreResult<()> {
    c.prepare_cached(sql::INSERT_IDENTITY)?
        .execute(params![
            i.id,
            i.provider,
            i.subject,
            account.0,
            i.email,
            i.linked_at,
            i.display_name
        ])
        .map_err(on_unique)?;
    Ok(())
}

fn pending_from_row(r: &Row<'_>) -> rusqlite::Result<StoredPending> {
    Ok(StoredPending {
        state_hash: r.get(0)?,
        binding_hash: r.get(1)?,
        provider: r.get(2)?,
        nonce: r.get(3)?,
        verifier: r.get(4)?,
        mode: r.get(5)?,
        return_to: r.get(6)?,
        link_account: r.get::<_, Option<String>>(7)?.map(AccountId),
        link_session: r.get(8)?,
        expires_at: r.get(9)?,
    })
}
