//! [`SigningKeyStore`] on PostgreSQL.

use sqlx::Row;
use sqlx::postgres::PgRow;

use super::PostgresStore;
use crate::store::StoreResult;
use crate::store::signing_keys::{SigningKeyStore, StoredKey, sql};

#[async_trait::async_trait]
impl SigningKeyStore for PostgresStore {
    async fn signing_keys(&self, now: Option<i64>) -> StoreResult<Vec<StoredKey>> {
        let rows = match now {
            Some(now) => {
                sqlx::query(sql::PUBLISHED)
                    .bind(now)
                    .fetch_all(&self.pool)
                    .await?
            }
            None => sqlx::query(sql::EVERY_KEY).fetch_all(&self.pool).await?,
        };
        Ok(rows.iter().map(key_from_row).collect::<sqlx::Result<_>>()?)
    }

    async fn add_signing_key(
        &self,
        k: &StoredKey,
        retire_others_at: Option<i64>,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(sql::INSERT)
            .bind(&k.kid)
            .bind(&k.algorithm)
            .bind(&k.public_jwk)
            .bind(&k.private_key)
            .bind(k.created_at)
            .bind(k.signs_from)
            .bind(k.retires_at)
            .bind(&k.purpose)
            .execute(&mut *tx)
            .await?;
        if let Some(at) = retire_others_at {
            sqlx::query(sql::RETIRE_OTHERS)
                .bind(at)
                .bind(&k.kid)
                .bind(&k.purpose)
                .bind(&k.algorithm)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn purge_signing_keys(&self, now: i64) -> StoreResult<u64> {
        let done = sqlx::query(sql::PURGE)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}

fn key_from_row(r: &PgRow) -> sqlx::Result<StoredKey> {
    Ok(StoredKey {
        kid: r.try_get(0)?,
        algorithm: r.try_get(1)?,
        public_jwk: r.try_get(2)?,
        private_key: r.try_get(3)?,
        created_at: r.try_get(4)?,
        signs_from: r.try_get(5)?,
        retires_at: r.try_get(6)?,
        purpose: r.try_get(7)?,
    })
}
