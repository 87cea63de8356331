//! The purge of expired rows: single-use values, replay keys, counters, timed-out
//! sessions, mails and mail tokens past their end. It deletes in bounded batches, a
//! statement of at most [`Batches::rows`] rows per table at a time with a pause between
//! rounds, so when a million sessions expire at once no single write holds SQLite's
//! writer (every sign-in and refresh waits for it) or PostgreSQL's locks and WAL for
//! the whole million. Its progress is `gatehouse_purged_rows_total{table}`.

use std::time::Duration;

use crate::metrics::Metrics;
use crate::store::{Store, StoreResult};

/// How the purge slices its work.
#[derive(Debug, Clone, Copy)]
pub struct Batches {
    /// The most rows one statement deletes.
    pub rows: i64,
    /// The pause between rounds, while more are left: the writer's turn for requests.
    pub pause: Duration,
}

impl Batches {
    /// A thousand rows a statement (a few milliseconds of SQLite's writer), 20 ms
    /// between rounds: a million expired sessions go in about a minute and a half.
    pub const DEFAULT: Batches = Batches {
        rows: 1_000,
        pause: Duration::from_millis(20),
    };
}

/// What one purge did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Purge {
    pub rows: u64,
    /// Rounds of statements (one per table each) it took.
    pub rounds: u64,
}

/// Deletes everything that expired before `now`, in rounds of `batches.rows` rows per
/// table, counting each round in `metrics` as it goes.
pub async fn expired(
    store: &dyn Store,
    metrics: &Metrics,
    now: i64,
    batches: Batches,
) -> StoreResult<Purge> {
    let mut done = Purge { rows: 0, rounds: 0 };
    loop {
        let mut round = store.purge_expired(now, batches.rows).await?;
        round.extend(store.mail().purge_mail(now, batches.rows).await?);
        round.push((
            "sessions",
            store.sessions().purge_sessions(now, batches.rows).await?,
        ));
        done.rounds += 1;
        let mut more = false;
        for (table, rows) in round {
            if rows > 0 {
                metrics.purged(table, rows);
            }
            done.rows += rows;
            more |= rows >= batches.rows.unsigned_abs();
        }
        if !more {
            return Ok(done);
        }
        tokio::time::sleep(batches.pause).await;
    }
}
