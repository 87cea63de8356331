//! [`PasskeyStore`] on SQLite.

use rusqlite::{Connection, OptionalExtension, params};

use super::super::queries as q;
use super::super::*;
use super::{SqliteStore, insert_account, on_unique};

#[async_trait]
impl PasskeyStore for SqliteStore {
    async fn create_account_with_passkey(&self, a: &NewAccount, p: &NewPasskey) -> StoreResult<()> {
        let (a, p) = (a.clone(), p.clone());
        self.writer
            .write(true, move |c| {
                insert_account(c, &a)?;
                insert_passkey(c, &a.id, &p)
            })
            .await
    }

    async fn add_passkey(&self, account: &AccountId, p: &NewPasskey) -> StoreResult<()> {
        let (account, p) = (account.clone(), p.clone());
        self.writer
            .write(true, move |c| insert_passkey(c, &account, &p))
            .await
    }

    async fn passkey_by_credential_id(
        &self,
        credential_id: &str,
    ) -> StoreResult<Option<StoredPasskey>> {
        self.readers.read(|c| {
            c.prepare_cached(q::PASSKEY_BY_CREDENTIAL_ID)?
                .query_row([credential_id], |r| {
                    Ok(StoredPasskey {
                        id: r.get(0)?,
                        account: AccountId(r.get(1)?),
                        credential: r.get(2)?,
                        format: r.get(3)?,
                        backup_state: r.get(4)?,
                        sign_count: r.get(5)?,
                    })
                })
                .optional()
        })
    }

    async fn passkeys(&self, account: &AccountId) -> StoreResult<Vec<PasskeySummary>> {
        self.readers.read(|c| {
            c.prepare_cached(q::PASSKEYS)?
                .query_map([&account.0], |r| {
                    Ok(PasskeySummary {
                        id: r.get(0)?,
                        credential_id: r.get(1)?,
                        name: r.get(2)?,
                        aaguid: r.get(3)?,
                        transports: r.get(4)?,
                        backup_eligible: r.get(5)?,
                        backup_state: r.get(6)?,
                        created_at: r.get(7)?,
                        last_used_at: r.get(8)?,
                    })
                })?
                .collect()
        })
    }

    async fn record_passkey_use(&self, id: &str, used: PasskeyUse) -> StoreResult<bool> {
        let id = id.to_owned();
        self.writer
            .write(true, move |c| {
                let changed = c.prepare_cached(q::RECORD_PASSKEY_USE)?.execute(params![
                    used.sign_count,
                    used.backup_state,
                    used.at,
                    id
                ])?;
                Ok(changed > 0)
            })
            .await
    }

    async fn rename_passkey(&self, account: &AccountId, id: &str, name: &str) -> StoreResult<bool> {
        let (account, id, name) = (account.0.clone(), id.to_owned(), name.to_owned());
        self.writer
            .write(true, move |c| {
                let changed = c
                    .prepare_cached(q::RENAME_PASSKEY)?
                    .execute(params![name, id, account])?;
                Ok(changed > 0)
            })
            .await
    }

    async fn remove_passkey(&self, account: &AccountId, id: &str) -> StoreResult<PasskeyRemoval> {
        let (account, id) = (account.0.clone(), id.to_owned());
        // One write at a time on the writer: nothing comes between check and delete.
        self.writer
            .write(true, move |c| {
                if c.prepare_cached(q::LOCK_ACCOUNT)?.execute([&account])? == 0 {
                    return Ok(PasskeyRemoval::NotFound);
                }
                let removed = c
                    .prepare_cached(q::DELETE_PASSKEY_UNLESS_LAST)?
                    .execute(params![id, account])?;
                if removed > 0 {
                    return Ok(PasskeyRemoval::Removed);
                }
                let there = c
                    .prepare_cached(q::PASSKEY_OF_ACCOUNT)?
                    .exists(params![id, account])?;
                Ok(if there {
                    PasskeyRemoval::LastSignInMethod
                } else {
                    PasskeyRemoval::NotFound
                })
            })
            .await
    }
}

fn insert_passkey(c: &Connection, account: &AccountId, p: &NewPasskey) -> StoreResult<()> {
    c.prepare_cached(q::INSERT_PASSKEY)?
        .execute(params![
            p.id,
            account.0,
            p.credential_id,
            p.name,
            p.credential,
            p.format,
            p.aaguid,
            p.transports,
            p.backup_eligible,
            p.backup_state,
            p.sign_count,
            p.created_at
        ])
        .map_err(on_unique)?;
    Ok(())
}
