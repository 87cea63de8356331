//! [`SocialStore`] on PostgreSQL. Each single-use row is one `DELETE … RETURNING`:
//! concurrent requests on any node queue on the row's lock, and exactly one gets it.

use sqlx::Row;
use sqlx::postgres::PgRow;

use super::{PostgresStore, insert_account, on_unique};
use crate::domain::AccountId;
use crate::store::queries as q;
use crate::store::social::{
    IdentityAdded, IdentityRemoval, IdentitySummary, KnownIdentity, NewIdentity, SocialStore,
    StoredPending, sql,
};
use crate::store::{NewAccount, StoreResult};

#[async_trait::async_trait]
impl SocialStore for PostgresStore {
    async fn put_social_pending(&self, p: &StoredPending) -> StoreResult<()> {
        sqlx::query(sql::INSERT_PENDING)
            .bind(&p.state_hash)
            .bind(&p.binding_hash)
            .bind(&p.provider)
            .bind(&p.nonce)
            .bind(&p.verifier)
            .bind(&p.mode)
            .bind(p.return_to.as_deref())
            .bind(p.link_account.as_ref().map(|a| a.0.as_str()))
            .bind(p.link_session.as_deref())
            .bind(p.expires_at)
            .execute(self.db())
            .await
            .map_err(on_unique)?;
        Ok(())
    }

    async fn take_social_pending(
        &self,
        state_hash: &str,
        binding_hash: &str,
        now: i64,
    ) -> StoreResult<Option<StoredPending>> {
        let row = sqlx::query(sql::TAKE_PENDING)
            .bind(state_hash)
            .bind(binding_hash)
            .bind(now)
            .fetch_optional(self.db())
            .await?;
        Ok(row.as_ref().map(pending_from_row).transpose()?)
    }

    async fn identity_account(
        &self,
        provider: &str,
        subject: &str,
    ) -> StoreResult<Option<KnownIdentity>> {
        let row = sqlx::query(sql::IDENTITY_ACCOUNT)
            .bind(provider)
            .bind(subject)
            .fetch_optional(self.db())
            .await?;
        Ok(match row {
            Some(r) => Some(KnownIdentity {
                account: AccountId(r.try_get(0)?),
                display_name: r.try_get(1)?,
            }),
            None => None,
        })
    }

    async fn set_identity_name(
        &self,
        provider: &str,
        subject: &str,
        name: &str,
    ) -> StoreResult<()> {
        sqlx::query(sql::SET_DISPLAY_NAME)
            .bind(name)
            .bind(provider)
            .bind(subject)
            .execute(self.db())
            .await?;
        Ok(())
    }

    async fn create_account_with_identity(
        &self,
        account: &NewAccount,
        identity: &NewIdentity,
        email_verified: bool,
    ) -> StoreResult<()> {
        let (mut tx, _timing) = self.begin().await?;
        insert_account(account)
            .execute(&mut *tx)
            .await
            .map_err(on_unique)?;
        insert_identity(&account.id, identity)
            .execute(&mut *tx)
            .await
            .map_err(on_unique)?;
        if email_verified {
            sqlx::query(sql::MARK_VERIFIED)
                .bind(identity.linked_at)
                .bind(&account.id.0)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn add_identity(
        &self,
        account: &AccountId,
        identity: &NewIdentity,
        session: &str,
        now: i64,
    ) -> StoreResult<IdentityAdded> {
        let (mut tx, _timing) = self.begin().await?;
        let held = sqlx::query(q::HOLD_LIVE_SESSION)
            .bind(session)
            .bind(&account.0)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        if held.rows_affected() == 0 {
            return Ok(IdentityAdded::SessionEnded);
        }
        let linked: Option<String> = sqlx::query_scalar(sql::IDENTITY_LINKED_TO)
            .bind(&identity.provider)
            .bind(&identity.subject)
            .fetch_optional(&mut *tx)
            .await?;
        if linked.as_deref() == Some(account.0.as_str()) {
            return Ok(IdentityAdded::AlreadyLinked);
        }
        insert_identity(account, identity)
            .execute(&mut *tx)
            .await
            .map_err(on_unique)?;
        tx.commit().await?;
        Ok(IdentityAdded::Added)
    }

    async fn identities(&self, account: &AccountId) -> StoreResult<Vec<IdentitySummary>> {
        let rows = sqlx::query(sql::IDENTITIES)
            .bind(&account.0)
            .fetch_all(self.db())
            .await?;
        rows.iter()
            .map(|r| -> sqlx::Result<IdentitySummary> {
                Ok(IdentitySummary {
                    id: r.try_get(0)?,
                    provider: r.try_get(1)?,
                    email: r.try_get(2)?,
                    linked_at: r.try_get(3)?,
                    display_name: r.try_get(4)?,
                })
            })
            .collect::<sqlx::Result<_>>()
            .map_err(Into::into)
    }

    async fn remove_identity(&self, account: &AccountId, id: &str) -> StoreResult<IdentityRemoval> {
        let (mut tx, _timing) = self.begin().await?;
        let found = sqlx::query(q::LOCK_ACCOUNT)
            .bind(&account.0)
            .execute(&mut *tx)
            .await?;
        if found.rows_affected() == 0 {
            return Ok(IdentityRemoval::NotFound);
        }
        let removed = sqlx::query(sql::DELETE_IDENTITY_UNLESS_LAST)
            .bind(id)
            .bind(&account.0)
            .execute(&mut *tx)
            .await?;
        let outcome = if removed.rows_affected() > 0 {
            IdentityRemoval::Removed
        } else {
            let linked: Option<String> = sqlx::query_scalar(sql::IDENTITY_EXISTS)
                .bind(id)
                .bind(&account.0)
                .fetch_optional(&mut *tx)
                .await?;
            match linked {
                Some(_) => IdentityRemoval::LastSignInMethod,
                None => IdentityRemoval::NotFound,
            }
        };
        tx.commit().await?;
        Ok(outcome)
    }

    async fn put_social_code(
        &self,
        code_hash: &str,
        account: &AccountId,
        provider: &str,
        expires_at: i64,
    ) -> StoreResult<()> {
        sqlx::query(sql::INSERT_CODE)
            .bind(code_hash)
            .bind(&account.0)
            .bind(provider)
            .bind(expires_at)
            .execute(self.db())
            .await
            .map_err(on_unique)?;
        Ok(())
    }

    async fn take_social_code(
        &self,
        code_hash: &str,
        now: i64,
    ) -> StoreResult<Option<(AccountId, String)>> {
        let row = sqlx::query(sql::TAKE_CODE)
            .bind(code_hash)
            .bind(now)
            .fetch_optional(self.db())
            .await?;
        Ok(match row {
            Some(r) => Some((AccountId(r.try_get(0)?), r.try_get(1)?)),
            None => None,
        })
    }
}

fn insert_identity<'q>(account: &'q AccountId, i: &'q NewIdentity) -> super::Query<'q> {
    sqlx::query(sql::INSERT_IDENTITY)
        .bind(&i.id)
        .bind(&i.provider)
        .bind(&i.subject)
        .bind(&account.0)
        .bind(i.email.as_deref())
        .bind(i.linked_at)
        .bind(i.display_name.as_deref())
}

fn pending_from_row(r: &PgRow) -> sqlx::Result<StoredPending> {
    Ok(StoredPending {
        state_hash: r.try_get(0)?,
        binding_hash: r.try_get(1)?,
        provider: r.try_get(2)?,
        nonce: r.try_get(3)?,
        verifier: r.try_get(4)?,
        mode: r.try_get(5)?,
        return_to: r.try_get(6)?,
        link_account: r.try_get::<Option<String>, _>(7)?.map(AccountId),
        link_session: r.try_get(8)?,
        expires_at: r.try_get(9)?,
    })
}
