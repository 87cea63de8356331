//! The purge of expired rows: single-use values, replay keys, counters, timed-out
//! sessions, mails and mail tokens past their end, pending sign-ins that owe a second
//! factor, OIDC codes and used client assertions. It deletes in bounded batches, a
//! statement of at most [`Batches::rows`] rows per table at a time with a pause between
//! rounds, so when a million sessions expire at once no single write holds SQLite's
//! writer (every sign-in and refresh waits for it) or PostgreSQL's locks and WAL for
//! the whole million. Its progress is `gatehouse_purged_rows_total{table}`.
//!
//! A row of an expired session sits at a random place in each of the table's indexes
//! (its id, its account), so a batch writes about three pages a row, and on SQLite a
//! checkpoint (with its fsyncs) follows every thousand pages written. A round's time
//! is mostly that I/O, and the pause after it is at least as long as the round took:
//! the purge has the writer at most about half the time, whatever the disk.

use std::time::{Duration, Instant};

use crate::metrics::Metrics;
use crate::store::{Store, StoreResult};

/// How the purge slices its work.
#[derive(Debug, Clone, Copy)]
pub struct Batches {
    /// The most rows one statement deletes.
    pub rows: i64,
    /// The shortest pause between rounds, while more are left: the writer's turn for
    /// requests. A round that took longer is followed by a pause as long as it took.
    pub pause: Duration,
}

impl Batches {
    /// 200 rows a statement, 20 ms or more between rounds. On a million expired
    /// sessions in SQLite, a round of 200 held the writer about 15 ms (a round of
    /// 1,000 took 190-350 ms) but for the one that pays for a checkpoint.
    pub const DEFAULT: Batches = Batches {
        rows: 200,
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

/// The lease a purge runs under (one node at a time purges): renewed after every
/// round, so that a purge of minutes keeps it.
#[derive(Debug, Clone, Copy)]
pub struct Lease<'a> {
    pub name: &'a str,
    pub holder: &'a str,
    /// How long each renewal holds it, seconds.
    pub secs: i64,
}

/// Deletes everything that expired before `now`, in rounds of `batches.rows` rows per
/// table, counting each round in `metrics` as it goes. Under a `lease`, it renews the
/// lease before each round after the first, and stops (leaving the rest to the next
/// purge) if another holder has it.
pub async fn expired(
    store: &dyn Store,
    metrics: &Metrics,
    now: i64,
    batches: Batches,
    lease: Option<Lease<'_>>,
) -> StoreResult<Purge> {
    let mut done = Purge { rows: 0, rounds: 0 };
    loop {
        let started = Instant::now();
        let mut round = store.purge_expired(now, batches.rows).await?;
        round.extend(store.mail().purge_mail(now, batches.rows).await?);
        round.extend(store.mfa().purge_pending(now, batches.rows).await?);
        round.extend(store.oidc().purge_oidc(now, batches.rows).await?);
        round.extend(store.authorize().purge_requests(now, batches.rows).await?);
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
        tokio::time::sleep(batches.pause.max(started.elapsed())).await;
        if let Some(l) = lease {
            let t = crate::domain::unix_now();
            if !store.take_lease(l.name, l.holder, t, t + l.secs).await? {
                return Ok(done);
            }
        }
    }
}
