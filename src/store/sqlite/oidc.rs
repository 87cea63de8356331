//! [`OidcStore`] on SQLite.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::sessions::insert_session;
use super::{SqliteStore, on_unique};
use crate::crypto::random_id;
use crate::domain::client::{AuthMethod, Client};
use crate::store::authorize::sql as authorize_sql;
use crate::store::oidc::{
    CodeUse, OidcStore, QueuedLogout, StoredCode, list_from_text, list_to_text, sql,
};
use crate::store::sessions::NewSession;
use crate::store::{Purged, StoreResult};

#[async_trait::async_trait]
impl OidcStore for SqliteStore {
    async fn add_client(&self, client: &Client) -> StoreResult<()> {
        let c = client.clone();
        self.writer
            .write(true, move |conn| {
                insert_client(conn, sql::INSERT_CLIENT, &c)
            })
            .await
    }

    async fn client(&self, id: &str) -> StoreResult<Option<Client>> {
        self.readers.read(|c| {
            c.prepare_cached(sql::CLIENT_BY_ID)?
                .query_row([id], client_from_row)
                .optional()
        })
    }

    async fn client_revision(&self, id: &str) -> StoreResult<Option<String>> {
        self.readers.read(|c| {
            c.prepare_cached(sql::CLIENT_REVISION)?
                .query_row([id], |r| r.get(0))
                .optional()
        })
    }

    async fn clients(&self) -> StoreResult<Vec<Client>> {
        self.readers.read(|c| {
            c.prepare_cached(sql::EVERY_CLIENT)?
                .query_map([], client_from_row)?
                .collect()
        })
    }

    async fn update_client(&self, client: &Client) -> StoreResult<bool> {
        let c = client.clone();
        self.writer
            .write(true, move |conn| {
                let n = conn.prepare_cached(sql::UPDATE_CLIENT)?.execute(params![
                    c.name,
                    c.public,
                    c.first_party,
                    list_to_text(&c.redirect_uris),
                    list_to_text(&c.post_logout_redirect_uris),
                    list_to_text(&c.grant_types),
                    c.auth_method.as_str(),
                    c.jwks,
                    c.id_token_alg,
                    c.backchannel_logout_uri,
                    c.updated_at,
                    random_id(),
                    c.id
                ])?;
                Ok(n == 1)
            })
            .await
    }

    async fn remove_client(&self, id: &str) -> StoreResult<bool> {
        let id = id.to_owned();
        self.writer
            .write(true, move |c| {
                Ok(c.prepare_cached(sql::DELETE_CLIENT)?.execute([id])? == 1)
            })
            .await
    }

    async fn set_client_secret(&self, id: &str, hash: &str, now: i64) -> StoreResult<bool> {
        let (id, hash) = (id.to_owned(), hash.to_owned());
        self.writer
            .write(true, move |c| {
                Ok(c.prepare_cached(sql::SET_SECRET)?.execute(params![
                    hash,
                    now,
                    random_id(),
                    id
                ])? == 1)
            })
            .await
    }

    async fn sync_config_clients(&self, clients: &[Client]) -> StoreResult<()> {
        let clients = clients.to_vec();
        self.writer
            .write(true, move |conn| {
                let listed: Vec<String> = conn
                    .prepare_cached(sql::CONFIG_CLIENT_IDS)?
                    .query_map([], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                for gone in listed
                    .iter()
                    .filter(|id| !clients.iter().any(|c| &c.id == *id))
                {
                    conn.prepare_cached(sql::DELETE_CLIENT)?.execute([gone])?;
                }
                for c in &clients {
                    insert_client(conn, sql::UPSERT_CONFIG_CLIENT, c)?;
                }
                Ok(())
            })
            .await
    }

    async fn add_code(&self, code: &StoredCode) -> StoreResult<()> {
        let k = code.clone();
        self.writer.write(true, move |c| insert_code(c, &k)).await
    }

    async fn add_code_taking(
        &self,
        code: &StoredCode,
        request: &str,
        now: i64,
    ) -> StoreResult<bool> {
        let (k, request) = (code.clone(), request.to_owned());
        self.writer
            .write(true, move |c| {
                let taken = c
                    .prepare_cached(authorize_sql::TAKE_REQUEST)?
                    .query_row(params![request, now], |_| Ok(()))
                    .optional()?;
                if taken.is_none() {
                    return Ok(false);
                }
                insert_code(c, &k)?;
                Ok(true)
            })
            .await
    }

    async fn use_code(&self, code_hash: &str, now: i64) -> StoreResult<CodeUse> {
        let hash = code_hash.to_owned();
        self.writer
            .write(true, move |c| match consume_code(c, &hash, now)? {
                Some(code) => Ok(CodeUse::Fresh(Box::new(code))),
                None => second_use(c, &hash),
            })
            .await
    }

    async fn peek_code(&self, code_hash: &str, now: i64) -> StoreResult<Option<StoredCode>> {
        self.readers.read(|c| {
            c.prepare_cached(sql::PEEK_CODE)?
                .query_row(params![code_hash, now], code_from_row)
                .optional()
        })
    }

    async fn redeem_code(
        &self,
        code_hash: &str,
        now: i64,
        session: &NewSession,
    ) -> StoreResult<CodeUse> {
        let (hash, session) = (code_hash.to_owned(), session.clone());
        self.writer
            .write(true, move |c| match consume_code(c, &hash, now)? {
                Some(code) => {
                    insert_session(c, &session)?;
                    Ok(CodeUse::Fresh(Box::new(code)))
                }
                None => second_use(c, &hash),
            })
            .await
    }

    async fn use_assertion(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: i64,
        _now: i64,
    ) -> StoreResult<bool> {
        let (client, jti) = (client_id.to_owned(), jti.to_owned());
        self.writer
            .write(true, move |c| {
                Ok(c.prepare_cached(sql::INSERT_ASSERTION)?
                    .execute(params![client, jti, expires_at])?
                    == 1)
            })
            .await
    }

    async fn oidc_session(&self, session: &str) -> StoreResult<Option<(String, String)>> {
        self.readers.read(|c| {
            c.prepare_cached(sql::OIDC_SESSION)?
                .query_row([session], |r| {
                    Ok((
                        r.get(0)?,
                        r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                    ))
                })
                .optional()
        })
    }

    async fn end_oidc_session(&self, session: &str) -> StoreResult<bool> {
        let session = session.to_owned();
        self.writer
            .write(true, move |c| {
                Ok(c.prepare_cached(sql::END_OIDC_SESSION)?
                    .execute([session])?
                    == 1)
            })
            .await
    }

    async fn purge_oidc(&self, now: i64, limit: i64) -> StoreResult<Purged> {
        self.writer
            .write(false, move |c| super::purge(c, &sql::PURGE, now, limit))
            .await
    }

    async fn lease_logouts(
        &self,
        lease: &str,
        now: i64,
        leased_until: i64,
        limit: i64,
    ) -> StoreResult<Vec<QueuedLogout>> {
        let lease = lease.to_owned();
        // Not durable: a lease lost to a power cut only lets the token go out again.
        self.writer
            .write(false, move |c| {
                let mut statement = c.prepare_cached(sql::LEASE_LOGOUTS)?;
                let rows = statement.query_map(params![lease, leased_until, now, limit], |r| {
                    Ok(QueuedLogout {
                        id: r.get(0)?,
                        client_id: r.get(1)?,
                        account_id: r.get(2)?,
                        session_id: r.get(3)?,
                        created_at: r.get(4)?,
                        attempts: r.get(5)?,
                    })
                })?;
                Ok(rows.collect::<Result<Vec<_>, _>>()?)
            })
            .await
    }

    async fn logout_done(&self, lease: &str, id: &str) -> StoreResult<()> {
        let (lease, id) = (lease.to_owned(), id.to_owned());
        self.writer
            .write(true, move |c| {
                c.prepare_cached(sql::LOGOUT_DONE)?
                    .execute(params![id, lease])?;
                Ok(())
            })
            .await
    }

    async fn logout_failed(
        &self,
        lease: &str,
        id: &str,
        next_attempt_at: i64,
        error: &str,
    ) -> StoreResult<()> {
        let (lease, id, error) = (lease.to_owned(), id.to_owned(), error.to_owned());
        self.writer
            .write(true, move |c| {
                c.prepare_cached(sql::LOGOUT_FAILED)?.execute(params![
                    next_attempt_at,
                    error,
                    id,
                    lease
                ])?;
                Ok(())
            })
            .await
    }
}

fn insert_client(conn: &Connection, statement: &str, c: &Client) -> StoreResult<()> {
    conn.prepare_cached(statement)?
        .execute(params![
            c.id,
            c.name,
            c.secret_hash,
            c.public,
            c.first_party,
            list_to_text(&c.redirect_uris),
            list_to_text(&c.post_logout_redirect_uris),
            list_to_text(&c.grant_types),
            c.auth_method.as_str(),
            c.jwks,
            c.id_token_alg,
            c.backchannel_logout_uri,
            c.source,
            c.created_at,
            c.updated_at,
            random_id()
        ])
        .map_err(on_unique)?;
    Ok(())
}

fn client_from_row(r: &Row<'_>) -> rusqlite::Result<Client> {
    let method: String = r.get(8)?;
    Ok(Client {
        id: r.get(0)?,
        name: r.get(1)?,
        secret_hash: r.get(2)?,
        public: r.get(3)?,
        first_party: r.get(4)?,
        redirect_uris: list_from_text(&r.get::<_, String>(5)?),
        post_logout_redirect_uris: list_from_text(&r.get::<_, String>(6)?),
        grant_types: list_from_text(&r.get::<_, String>(7)?),
        auth_method: AuthMethod::parse(&method).unwrap_or(AuthMethod::ClientSecretBasic),
        jwks: r.get(9)?,
        id_token_alg: r.get(10)?,
        backchannel_logout_uri: r.get(11)?,
        source: r.get(12)?,
        created_at: r.get(13)?,
        updated_at: r.get(14)?,
    })
}

fn insert_code(c: &Connection, k: &StoredCode) -> StoreResult<()> {
    c.prepare_cached(sql::INSERT_CODE)?
        .execute(params![
            k.code_hash,
            k.client_id,
            k.account_id,
            k.session_id,
            k.redirect_uri,
            k.scopes,
            k.nonce,
            k.code_challenge,
            k.auth_time,
            k.expires_at,
            k.amr
        ])
        .map_err(on_unique)?;
    Ok(())
}

/// Consumes a live code: only one use can see it come back.
fn consume_code(c: &Connection, hash: &str, now: i64) -> StoreResult<Option<StoredCode>> {
    Ok(c.prepare_cached(sql::CONSUME_CODE)?
        .query_row(params![now, hash], code_from_row)
        .optional()?)
}

/// A code that was not live to consume: a second use ends the first's session.
fn second_use(c: &Connection, hash: &str) -> StoreResult<CodeUse> {
    let replayed: Option<String> = c
        .prepare_cached(sql::REPLAYED_CODE_SESSION)?
        .query_row([hash], |r| r.get(0))
        .optional()?;
    Ok(match replayed {
        Some(session) => {
            c.prepare_cached(sql::END_SESSION)?.execute([session])?;
            CodeUse::Replayed
        }
        None => CodeUse::Unknown,
    })
}

fn code_from_row(r: &Row<'_>) -> rusqlite::Result<StoredCode> {
    Ok(StoredCode {
        code_hash: r.get(0)?,
        client_id: r.get(1)?,
        account_id: r.get(2)?,
        session_id: r.get(3)?,
        redirect_uri: r.get(4)?,
        scopes: r.get(5)?,
        nonce: r.get(6)?,
        code_challenge: r.get(7)?,
        auth_time: r.get(8)?,
        expires_at: r.get(9)?,
        amr: r.get(10)?,
    })
}
