//! [`PasskeyStore`] on PostgreSQL.

use sqlx::Row;
use sqlx::postgres::PgRow;

use super::super::queries as q;
use super::super::*;
use super::{PostgresStore, Query, insert_account, on_unique};

#[async_trait]
impl PasskeyStore for PostgresStore {
    async fn create_account_with_passkey(&self, a: &NewAccount, p: &NewPasskey) -> StoreResult<()> {
        let (mut tx, _timing) = self.begin().await?;
        insert_account(a)
            .execute(&mut *tx)
            .await
            .map_err(on_unique)?;
        insert_passkey(&a.id, p)
            .execute(&mut *tx)
            .await
            .map_err(on_unique)?;
        tx.commit().await?;
        Ok(())
    }

    async fn add_passkey(&self, account: &AccountId, p: &NewPasskey) -> StoreResult<()> {
        insert_passkey(account, p)
            .execute(self.db())
            .await
            .map_err(on_unique)?;
        Ok(())
    }

    async fn passkey_by_credential_id(
        &self,
        credential_id: &str,
    ) -> StoreResult<Option<StoredPasskey>> {
        let row = sqlx::query(q::PASSKEY_BY_CREDENTIAL_ID)
            .bind(credential_id)
            .fetch_optional(self.db())
            .await?;
        let Some(r) = row else { return Ok(None) };
        Ok(Some(StoredPasskey {
            id: r.try_get(0)?,
            account: AccountId(r.try_get(1)?),
            credential: r.try_get(2)?,
            format: r.try_get(3)?,
            backup_state: r.try_get(4)?,
            sign_count: r.try_get(5)?,
        }))
    }

    async fn passkeys(&self, account: &AccountId) -> StoreResult<Vec<PasskeySummary>> {
        let rows = sqlx::query(q::PASSKEYS)
            .bind(&account.0)
            .fetch_all(self.db())
            .await?;
        Ok(rows
            .iter()
            .map(summary_from_row)
            .collect::<Result<_, sqlx::Error>>()?)
    }

    async fn record_passkey_use(&self, id: &str, used: PasskeyUse) -> StoreResult<bool> {
        let done = sqlx::query(q::RECORD_PASSKEY_USE)
            .bind(used.sign_count)
            .bind(used.backup_state)
            .bind(used.at)
            .bind(id)
            .execute(self.db())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn rename_passkey(&self, account: &AccountId, id: &str, name: &str) -> StoreResult<bool> {
        let done = sqlx::query(q::RENAME_PASSKEY)
            .bind(name)
            .bind(id)
            .bind(&account.0)
            .execute(self.db())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn remove_passkey(&self, account: &AccountId, id: &str) -> StoreResult<PasskeyRemoval> {
        let (mut tx, _timing) = self.begin().await?;
        let found = sqlx::query(q::LOCK_ACCOUNT)
            .bind(&account.0)
            .execute(&mut *tx)
            .await?;
        if found.rows_affected() == 0 {
            return Ok(PasskeyRemoval::NotFound);
        }
        let removed = sqlx::query(q::DELETE_PASSKEY_UNLESS_LAST)
            .bind(id)
            .bind(&account.0)
            .execute(&mut *tx)
            .await?;
        let outcome = if removed.rows_affected() > 0 {
            PasskeyRemoval::Removed
        } else {
            let there: Option<(String,)> = sqlx::query_as(q::PASSKEY_OF_ACCOUNT)
                .bind(id)
                .bind(&account.0)
                .fetch_optional(&mut *tx)
                .await?;
            if there.is_some() {
                PasskeyRemoval::LastSignInMethod
            } else {
                PasskeyRemoval::NotFound
            }
        };
        tx.commit().await?;
        Ok(outcome)
    }
}

fn insert_passkey<'q>(account: &'q AccountId, p: &'q NewPasskey) -> Query<'q> {
    sqlx::query(q::INSERT_PASSKEY)
        .bind(&p.id)
        .bind(&account.0)
        .bind(&p.credential_id)
        .bind(&p.name)
        .bind(&p.credential)
        .bind(p.format)
        .bind(&p.aaguid)
        .bind(&p.transports)
        .bind(p.backup_eligible)
        .bind(p.backup_state)
        .bind(p.sign_count)
        .bind(p.created_at)
}

fn summary_from_row(r: &PgRow) -> Result<PasskeySummary, sqlx::Error> {
    Ok(PasskeySummary {
        id: r.try_get(0)?,
        credential_id: r.try_get(1)?,
        name: r.try_get(2)?,
        aaguid: r.try_get(3)?,
        transports: r.try_get(4)?,
        backup_eligible: r.try_get(5)?,
        backup_state: r.try_get(6)?,
        created_at: r.try_get(7)?,
        last_used_at: r.try_get(8)?,
    })
}
