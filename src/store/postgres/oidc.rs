//! [`OidcStore`] on PostgreSQL.

use sqlx::postgres::PgRow;
use sqlx::{Postgres, Row};

use super::sessions::insert_session;
use super::{PostgresStore, on_unique};
use crate::crypto::random_id;
use crate::domain::client::{AuthMethod, Client};
use crate::store::authorize::sql as authorize_sql;
use crate::store::oidc::{
    CodeUse, OidcStore, QueuedLogout, StoredCode, list_from_text, list_to_text, sql,
};
use crate::store::sessions::NewSession;
use crate::store::{Purged, StoreResult};

#[async_trait::async_trait]
impl OidcStore for PostgresStore {
    async fn add_client(&self, client: &Client) -> StoreResult<()> {
        insert_client(sql::INSERT_CLIENT, client)
            .execute(&self.pool)
            .await
            .map_err(on_unique)?;
        Ok(())
    }

    async fn client(&self, id: &str) -> StoreResult<Option<Client>> {
        let row = sqlx::query(sql::CLIENT_BY_ID)
            .bind(id)
            .fetch_optional(self.db())
            .await?;
        Ok(row.as_ref().map(client_from_row).transpose()?)
    }

    async fn client_revision(&self, id: &str) -> StoreResult<Option<String>> {
        Ok(sqlx::query_scalar(sql::CLIENT_REVISION)
            .bind(id)
            .fetch_optional(self.db())
            .await?)
    }

    async fn clients(&self) -> StoreResult<Vec<Client>> {
        let rows = sqlx::query(sql::EVERY_CLIENT).fetch_all(self.db()).await?;
        Ok(rows
            .iter()
            .map(client_from_row)
            .collect::<sqlx::Result<_>>()?)
    }

    async fn update_client(&self, c: &Client) -> StoreResult<bool> {
        let done = sqlx::query(sql::UPDATE_CLIENT)
            .bind(&c.name)
            .bind(c.public)
            .bind(c.first_party)
            .bind(list_to_text(&c.redirect_uris))
            .bind(list_to_text(&c.post_logout_redirect_uris))
            .bind(list_to_text(&c.grant_types))
            .bind(c.auth_method.as_str())
            .bind(&c.jwks)
            .bind(&c.id_token_alg)
            .bind(&c.backchannel_logout_uri)
            .bind(c.updated_at)
            .bind(random_id())
            .bind(&c.id)
            .execute(self.db())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn remove_client(&self, id: &str) -> StoreResult<bool> {
        let done = sqlx::query(sql::DELETE_CLIENT)
            .bind(id)
            .execute(self.db())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_client_secret(&self, id: &str, hash: &str, now: i64) -> StoreResult<bool> {
        let done = sqlx::query(sql::SET_SECRET)
            .bind(hash)
            .bind(now)
            .bind(random_id())
            .bind(id)
            .execute(self.db())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn sync_config_clients(&self, clients: &[Client]) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        let listed: Vec<String> = sqlx::query_scalar(sql::CONFIG_CLIENT_IDS)
            .fetch_all(&mut *tx)
            .await?;
        for gone in listed
            .iter()
            .filter(|id| !clients.iter().any(|c| &c.id == *id))
        {
            sqlx::query(sql::DELETE_CLIENT)
                .bind(gone)
                .execute(&mut *tx)
                .await?;
        }
        for c in clients {
            insert_client(sql::UPSERT_CONFIG_CLIENT, c)
                .execute(&mut *tx)
                .await
                .map_err(on_unique)?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn add_code(&self, k: &StoredCode) -> StoreResult<()> {
        insert_code(k)
            .execute(&self.pool)
            .await
            .map_err(on_unique)?;
        Ok(())
    }

    async fn add_code_taking(
        &self,
        code: &StoredCode,
        request: &str,
        now: i64,
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        let taken: Option<String> = sqlx::query_scalar(authorize_sql::TAKE_REQUEST)
            .bind(request)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
        if taken.is_none() {
            return Ok(false);
        }
        insert_code(code)
            .execute(&mut *tx)
            .await
            .map_err(on_unique)?;
        tx.commit().await?;
        Ok(true)
    }

    async fn use_code(&self, code_hash: &str, now: i64) -> StoreResult<CodeUse> {
        let mut tx = self.pool.begin().await?;
        let result = match consume_code(&mut tx, code_hash, now).await? {
            Some(code) => CodeUse::Fresh(Box::new(code)),
            None => second_use(&mut tx, code_hash).await?,
        };
        tx.commit().await?;
        Ok(result)
    }

    async fn peek_code(&self, code_hash: &str, now: i64) -> StoreResult<Option<StoredCode>> {
        let row = sqlx::query(sql::PEEK_CODE)
            .bind(code_hash)
            .bind(now)
            .fetch_optional(self.db())
            .await?;
        Ok(row.as_ref().map(code_from_row).transpose()?)
    }

    async fn redeem_code(
        &self,
        code_hash: &str,
        now: i64,
        session: &NewSession,
    ) -> StoreResult<CodeUse> {
        let mut tx = self.pool.begin().await?;
        let result = match consume_code(&mut tx, code_hash, now).await? {
            Some(code) => {
                insert_session(session).execute(&mut *tx).await?;
                CodeUse::Fresh(Box::new(code))
            }
            None => second_use(&mut tx, code_hash).await?,
        };
        tx.commit().await?;
        Ok(result)
    }

    async fn use_assertion(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: i64,
        _now: i64,
    ) -> StoreResult<bool> {
        let done = sqlx::query(sql::INSERT_ASSERTION)
            .bind(client_id)
            .bind(jti)
            .bind(expires_at)
            .execute(self.db())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn oidc_session(&self, session: &str) -> StoreResult<Option<(String, String)>> {
        let row = sqlx::query(sql::OIDC_SESSION)
            .bind(session)
            .fetch_optional(self.db())
            .await?;
        Ok(match row {
            Some(r) => Some((
                r.try_get(0)?,
                r.try_get::<Option<String>, _>(1)?.unwrap_or_default(),
            )),
            None => None,
        })
    }

    async fn end_oidc_session(&self, session: &str) -> StoreResult<bool> {
        let done = sqlx::query(sql::END_OIDC_SESSION)
            .bind(session)
            .execute(self.db())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn purge_oidc(&self, now: i64, limit: i64) -> StoreResult<Purged> {
        self.purge(&sql::PURGE_POSTGRES, now, limit).await
    }

    async fn lease_logouts(
        &self,
        lease: &str,
        now: i64,
        leased_until: i64,
        limit: i64,
    ) -> StoreResult<Vec<QueuedLogout>> {
        let rows: Vec<(String, String, String, String, i64, i64)> =
            sqlx::query_as(sql::LEASE_LOGOUTS_POSTGRES)
                .bind(lease)
                .bind(leased_until)
                .bind(now)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .into_iter()
            .map(
                |(id, client_id, account_id, session_id, created_at, attempts)| QueuedLogout {
                    id,
                    client_id,
                    account_id,
                    session_id,
                    created_at,
                    attempts,
                },
            )
            .collect())
    }

    async fn logout_done(&self, lease: &str, id: &str) -> StoreResult<()> {
        sqlx::query(sql::LOGOUT_DONE)
            .bind(id)
            .bind(lease)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn logout_failed(
        &self,
        lease: &str,
        id: &str,
        next_attempt_at: i64,
        error: &str,
    ) -> StoreResult<()> {
        sqlx::query(sql::LOGOUT_FAILED)
            .bind(next_attempt_at)
            .bind(error)
            .bind(id)
            .bind(lease)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

fn insert_code(k: &StoredCode) -> sqlx::query::Query<'_, Postgres, sqlx::postgres::PgArguments> {
    sqlx::query(sql::INSERT_CODE)
        .bind(&k.code_hash)
        .bind(&k.client_id)
        .bind(&k.account_id)
        .bind(&k.session_id)
        .bind(&k.redirect_uri)
        .bind(&k.scopes)
        .bind(&k.nonce)
        .bind(&k.code_challenge)
        .bind(k.auth_time)
        .bind(k.expires_at)
        .bind(&k.amr)
}

/// Consumes a live code: only one use can see it come back.
async fn consume_code(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    hash: &str,
    now: i64,
) -> StoreResult<Option<StoredCode>> {
    let row = sqlx::query(sql::CONSUME_CODE)
        .bind(now)
        .bind(hash)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(row.as_ref().map(code_from_row).transpose()?)
}

/// A code that was not live to consume: a second use ends the first's session.
async fn second_use(tx: &mut sqlx::Transaction<'_, Postgres>, hash: &str) -> StoreResult<CodeUse> {
    let replayed: Option<String> = sqlx::query_scalar(sql::REPLAYED_CODE_SESSION)
        .bind(hash)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(match replayed {
        Some(session) => {
            sqlx::query(sql::END_SESSION)
                .bind(session)
                .execute(&mut **tx)
                .await?;
            CodeUse::Replayed
        }
        None => CodeUse::Unknown,
    })
}

fn insert_client(
    statement: &'static str,
    c: &Client,
) -> sqlx::query::Query<'static, Postgres, sqlx::postgres::PgArguments> {
    sqlx::query(statement)
        .bind(c.id.clone())
        .bind(c.name.clone())
        .bind(c.secret_hash.clone())
        .bind(c.public)
        .bind(c.first_party)
        .bind(list_to_text(&c.redirect_uris))
        .bind(list_to_text(&c.post_logout_redirect_uris))
        .bind(list_to_text(&c.grant_types))
        .bind(c.auth_method.as_str())
        .bind(c.jwks.clone())
        .bind(c.id_token_alg.clone())
        .bind(c.backchannel_logout_uri.clone())
        .bind(c.source.clone())
        .bind(c.created_at)
        .bind(c.updated_at)
        .bind(random_id())
}

fn client_from_row(r: &PgRow) -> sqlx::Result<Client> {
    let method: String = r.try_get(8)?;
    Ok(Client {
        id: r.try_get(0)?,
        name: r.try_get(1)?,
        secret_hash: r.try_get(2)?,
        public: r.try_get(3)?,
        first_party: r.try_get(4)?,
        redirect_uris: list_from_text(&r.try_get::<String, _>(5)?),
        post_logout_redirect_uris: list_from_text(&r.try_get::<String, _>(6)?),
        grant_types: list_from_text(&r.try_get::<String, _>(7)?),
        auth_method: AuthMethod::parse(&method).unwrap_or(AuthMethod::ClientSecretBasic),
        jwks: r.try_get(9)?,
        id_token_alg: r.try_get(10)?,
        backchannel_logout_uri: r.try_get(11)?,
        source: r.try_get(12)?,
        created_at: r.try_get(13)?,
        updated_at: r.try_get(14)?,
    })
}

fn code_from_row(r: &PgRow) -> sqlx::Result<StoredCode> {
    Ok(StoredCode {
        code_hash: r.try_get(0)?,
        client_id: r.try_get(1)?,
        account_id: r.try_get(2)?,
        session_id: r.try_get(3)?,
        redirect_uri: r.try_get(4)?,
        scopes: r.try_get(5)?,
        nonce: r.try_get(6)?,
        code_challenge: r.try_get(7)?,
        auth_time: r.try_get(8)?,
        expires_at: r.try_get(9)?,
        amr: r.try_get(10)?,
    })
}
