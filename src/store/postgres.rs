use std::time::Duration;

use sqlx::Row;
use sqlx::postgres::PgPoolOptions;

use super::sql::impl_store;
use super::*;

type Db = sqlx::Postgres;

/// Shared PostgreSQL, for several Gatehouse nodes behind a load balancer.
pub struct PostgresStore {
    pool: sqlx::PgPool,
    /// The same pool: PostgreSQL's group commit makes durable counters cheap enough.
    ephemeral: sqlx::PgPool,
}

impl PostgresStore {
    /// Connects and runs the PostgreSQL migrations (serialised across nodes by
    /// sqlx's advisory lock).
    pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(PostgresStore {
            ephemeral: pool.clone(),
            pool,
        })
    }
}

impl PostgresStore {
    /// A connection for the hot reads: any from the pool.
    async fn reader(&self) -> Result<sqlx::pool::PoolConnection<Db>, sqlx::Error> {
        self.pool.acquire().await
    }

    /// The hot reads use the pool, closed with it.
    async fn close_readers(&self) {}

    /// PostgreSQL runs concurrent writers itself: nothing to queue.
    async fn serialize_writes(&self) -> Option<()> {
        None
    }
}

impl_store!(PostgresStore);
