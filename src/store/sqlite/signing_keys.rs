//! [`SigningKeyStore`] on SQLite.

use rusqlite::{Row, params};

use super::SqliteStore;
use crate::store::StoreResult;
use crate::store::signing_keys::{SigningKeyStore, StoredKey, sql};

#[async_trait::async_trait]
impl SigningKeyStore for SqliteStore {
    async fn signing_keys(&self, now: Option<i64>) -> StoreResult<Vec<StoredKey>> {
        self.readers.read(|c| match now {
            Some(now) => c
                .prepare_cached(sql::PUBLISHED)?
                .query_map([now], key_from_row)?
                .collect(),
            None => c
                .prepare_cached(sql::EVERY_KEY)?
                .query_map([], key_from_row)?
                .collect(),
        })
    }

    async fn add_signing_key(
        &self,
        key: &StoredKey,
        retire_others_at: Option<i64>,
    ) -> StoreResult<()> {
        let k = key.clone();
        self.writer
            .write(true, move |c| {
                c.prepare_cached(sql::INSERT)?.execute(params![
                    k.kid,
                    k.algorithm,
                    k.public_jwk,
                    k.private_key,
                    k.created_at,
                    k.signs_from,
                    k.retires_at,
                    k.purpose
                ])?;
                if let Some(at) = retire_others_at {
                    c.prepare_cached(sql::RETIRE_OTHERS)?.execute(params![
                        at,
                        k.kid,
                        k.purpose,
                        k.algorithm
                    ])?;
                }
                Ok(())
            })
            .await
    }

    async fn purge_signing_keys(&self, now: i64) -> StoreResult<u64> {
        self.writer
            .write(false, move |c| {
                Ok(c.prepare_cached(sql::PURGE)?.execute([now])? as u64)
            })
            .await
    }
}

fn key_from_row(r: &Row<'_>) -> rusqlite::Result<StoredKey> {
    Ok(StoredKey {
        kid: r.get(0)?,
        algorithm: r.get(1)?,
        public_jwk: r.get(2)?,
        private_key: r.get(3)?,
        created_at: r.get(4)?,
        signs_from: r.get(5)?,
        retires_at: r.get(6)?,
        purpose: r.get(7)?,
    })
}
