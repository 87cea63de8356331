use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection, Row};
use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard};

use super::sql::impl_store;
use super::*;

type Db = sqlx::Sqlite;

/// The embedded default: one SQLite file in WAL mode.
pub struct SqliteStore {
    pool: sqlx::SqlitePool,
    ephemeral: sqlx::SqlitePool,
    readers: Readers,
    /// One writer at a time, in arrival order (see `serialize_writes`).
    writes: Mutex<()>,
}

/// Read-only connections for the reads on every request's path, outside the pool.
/// Each SQLite connection runs on a thread of its own, so each use is a round trip
/// to that thread; a pooled connection makes another (sqlx pings it on release),
/// and those thread wake-ups were the largest cost of `/auth/me`.
/// `None` once the store is closed.
struct Readers {
    connections: Vec<Mutex<Option<SqliteConnection>>>,
    next: AtomicUsize,
}

impl Readers {
    /// A free connection if there is one, else the next in turn once it is free.
    async fn get(&self) -> Result<MappedMutexGuard<'_, SqliteConnection>, sqlx::Error> {
        let guard = match self.connections.iter().find_map(|c| c.try_lock().ok()) {
            Some(free) => free,
            None => {
                let i = self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len();
                self.connections[i].lock().await
            }
        };
        MutexGuard::try_map(guard, Option::as_mut).map_err(|_| sqlx::Error::PoolClosed)
    }

    /// Closes every reader; those in use are closed when their query ends.
    async fn close(&self) {
        for c in &self.connections {
            if let Some(conn) = c.lock().await.take() {
                let _ = conn.close().await;
            }
        }
    }
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
            .connect_with(options.clone().synchronous(SqliteSynchronous::Normal))
            .await?;
        let mut readers = Vec::new();
        for _ in 0..READERS {
            let reader = options.clone().read_only(true).connect().await?;
            readers.push(Mutex::new(Some(reader)));
        }
        Ok(SqliteStore {
            pool,
            ephemeral,
            readers: Readers {
                connections: readers,
                next: AtomicUsize::new(0),
            },
            writes: Mutex::new(()),
        })
    }

    /// SQLite takes one writer at a time (both pools write to one file) and lets the
    /// others poll for the lock, sleeping 1, 2, 5 … up to 100 ms between tries; under
    /// load those sleeps, not the work, set the pace. A fair async mutex makes writes
    /// wait their turn without sleeping. Within one process only: SQLite serves one
    /// node; `busy_timeout` still covers another process (a `gatehouse migrate`).
    async fn serialize_writes(&self) -> Option<MutexGuard<'_, ()>> {
        Some(self.writes.lock().await)
    }

    async fn reader(&self) -> Result<MappedMutexGuard<'_, SqliteConnection>, sqlx::Error> {
        self.readers.get().await
    }

    /// Before the pools: the last connection to close checkpoints the WAL into the
    /// database file.
    async fn close_readers(&self) {
        self.readers.close().await;
    }
}

/// Enough to keep two cores busy with reads while others wait their turn briefly.
const READERS: usize = 4;

impl_store!(SqliteStore);
