use std::str::FromStr;
use std::time::Duration;

use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::sql::impl_store;
use super::*;

type Db = sqlx::Sqlite;

/// The embedded default: one SQLite file in WAL mode.
pub struct SqliteStore {
    pool: sqlx::SqlitePool,
    ephemeral: sqlx::SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and runs the SQLite migrations.
    /// `synchronous = FULL`: a commit is on disk before it is acknowledged, so no
    /// acknowledged write is lost to a crash of the process or of the machine. The
    /// small `ephemeral` pool on the same file commits counters with `NORMAL`: in WAL
    /// mode that survives a crash of the process, not a power cut.
    pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        if let Some(dir) = options.get_filename().parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)?;
        }
        // No ping on acquire: a connection to a local file has no peer to lose, and
        // each ping is a round trip to the connection's worker thread (sqlx already
        // pings on release, which catches a connection left mid-statement).
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(10))
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        let ephemeral = SqlitePoolOptions::new()
            .max_connections((max_connections / 4).max(2))
            .acquire_timeout(Duration::from_secs(10))
            .test_before_acquire(false)
            .connect_with(options.synchronous(SqliteSynchronous::Normal))
            .await?;
        Ok(SqliteStore { pool, ephemeral })
    }
}

impl_store!(SqliteStore);
