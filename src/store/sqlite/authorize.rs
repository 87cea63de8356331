//! [`AuthorizeStore`] on SQLite.

use rusqlite::{OptionalExtension, params};

use super::SqliteStore;
use crate::domain::AccountId;
use crate::store::authorize::{AuthorizeStore, Consent, sql};
use crate::store::{Purged, StoreResult};

#[async_trait::async_trait]
impl AuthorizeStore for SqliteStore {
    async fn add_request(
        &self,
        id: &str,
        client_id: &str,
        request: &str,
        expires_at: i64,
    ) -> StoreResult<()> {
        let (id, client, request) = (id.to_owned(), client_id.to_owned(), request.to_owned());
        self.writer
            .write(false, move |c| {
                c.prepare_cached(sql::INSERT_REQUEST)?
                    .execute(params![id, client, request, expires_at])?;
                Ok(())
            })
            .await
    }

    async fn take_request(&self, id: &str, now: i64) -> StoreResult<Option<String>> {
        let id = id.to_owned();
        self.writer
            .write(false, move |c| {
                Ok(c.prepare_cached(sql::TAKE_REQUEST)?
                    .query_row(params![id, now], |r| r.get(0))
                    .optional()?)
            })
            .await
    }

    async fn peek_request(&self, id: &str, now: i64) -> StoreResult<Option<String>> {
        self.readers.read(|c| {
            c.prepare_cached(sql::PEEK_REQUEST)?
                .query_row(params![id, now], |r| r.get(0))
                .optional()
        })
    }

    async fn consent(&self, account: &AccountId, client_id: &str) -> StoreResult<Option<String>> {
        self.readers.read(|c| {
            c.prepare_cached(sql::CONSENT)?
                .query_row(params![account.0, client_id], |r| r.get(0))
                .optional()
        })
    }

    async fn grant_consent(
        &self,
        account: &AccountId,
        client_id: &str,
        scopes: &str,
        now: i64,
    ) -> StoreResult<()> {
        let (account, client, scopes) =
            (account.0.clone(), client_id.to_owned(), scopes.to_owned());
        self.writer
            .write(true, move |c| {
                c.prepare_cached(sql::GRANT_CONSENT)?
                    .execute(params![account, client, scopes, now])?;
                Ok(())
            })
            .await
    }

    async fn consents(&self, account: &AccountId) -> StoreResult<Vec<Consent>> {
        self.readers.read(|c| {
            c.prepare_cached(sql::CONSENTS)?
                .query_map([&account.0], |r| {
                    Ok(Consent {
                        client_id: r.get(0)?,
                        client_name: r.get(1)?,
                        scopes: r.get(2)?,
                        granted_at: r.get(3)?,
                    })
                })?
                .collect()
        })
    }

    async fn revoke_consent(&self, account: &AccountId, client_id: &str) -> StoreResult<bool> {
        let (account, client) = (account.0.clone(), client_id.to_owned());
        self.writer
            .write(true, move |c| {
                let consents = c
                    .prepare_cached(sql::REVOKE_CONSENT)?
                    .execute(params![account, client])?;
                let sessions = c
                    .prepare_cached(sql::END_CLIENT_SESSIONS)?
                    .execute(params![account, client])?;
                Ok(consents + sessions > 0)
            })
            .await
    }

    async fn session_amr(&self, session: &str) -> StoreResult<Option<String>> {
        self.readers.read(|c| {
            c.prepare_cached(sql::SESSION_AMR)?
                .query_row([session], |r| r.get(0))
                .optional()
        })
    }

    async fn purge_requests(&self, now: i64, limit: i64) -> StoreResult<Purged> {
        self.writer
            .write(false, move |c| super::purge(c, &sql::PURGE, now, limit))
            .await
    }
}
