//! The one writer of the SQLite file.
//!
//! A thread owns the only read-write connection. It takes every write queued so far,
//! runs them in one transaction, each in a savepoint of its own, commits — one fsync
//! for the lot (group commit) — and only then answers each.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::metrics::{DatabaseTimer, DbCall};
use crate::store::{StoreError, StoreResult};

/// Writes waiting for the writer thread; senders wait when it is full.
const QUEUE: usize = 1024;
/// The most writes one transaction commits together.
const MAX_BATCH: usize = 256;
/// The size, in bytes, the log file is cut back to when it starts over.
const WAL_SIZE_LIMIT: i64 = 64 << 20;

pub struct Writer {
    queue: mpsc::Sender<Message>,
    timer: DatabaseTimer,
}

impl Writer {
    /// Starts the writer thread on `conn`, a read-write connection.
    ///
    /// It checkpoints as SQLite does by default: after a commit that leaves more than
    /// 1,000 pages in the log, it copies them into the database file, and the next
    /// write starts the log over from its beginning (cutting the file back to
    /// `WAL_SIZE_LIMIT` if a large batch grew it). The writes queued meanwhile wait
    /// for that copy; copying from another thread was tried and does not work: SQLite
    /// starts the log over only when a write begins with every frame copied, which a
    /// checkpointer running beside steady writes never sees, so the log grew without
    /// end (2 GB in 30 s of the wallet and OwnID benchmarks).
    pub fn start(conn: Connection) -> anyhow::Result<Writer> {
        conn.pragma_update(None, "wal_autocheckpoint", 1000)?;
        conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)?;
        let (queue, jobs) = mpsc::channel(QUEUE);
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || write_loop(conn, jobs))?;
        Ok(Writer {
            queue,
            timer: DatabaseTimer::default(),
        })
    }

    pub fn timed(&mut self, timer: DatabaseTimer) {
        self.timer = timer;
    }

    /// Runs `work` inside the next group commit, and answers once that commit is
    /// done: with `work`'s result if it committed, with the commit's error if not.
    /// When `work` fails, what it wrote is rolled back and the others' writes commit.
    /// `durable`: commit with `synchronous = FULL` (an fsync), else `NORMAL`.
    pub async fn write<T: Send + 'static>(
        &self,
        durable: bool,
        work: impl FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let _timing = self.timer.start(DbCall::Write);
        let (reply, answer) = oneshot::channel();
        let work: Work = Box::new(move |conn| {
            let result = work(conn);
            (result.is_ok(), Box::new(result))
        });
        let job = Job {
            durable,
            work,
            reply,
        };
        self.queue
            .send(Message::Job(job))
            .await
            .map_err(|_| StoreError::Closed)?;
        let done = answer.await.map_err(|_| StoreError::Closed)??;
        match done.downcast::<StoreResult<T>>() {
            Ok(result) => *result,
            Err(_) => unreachable!("a write answers with the type of its own work"),
        }
    }

    pub fn is_closed(&self) -> bool {
        self.queue.is_closed()
    }

    /// Finishes the writes already queued, refuses later ones, and closes the
    /// connection; the last to close checkpoints the whole log and removes it.
    pub async fn close(&self) {
        let (done, closed) = oneshot::channel();
        if self.queue.send(Message::Close(done)).await.is_ok() {
            let _ = closed.await;
        }
    }
}

/// The result of a write, typed by its caller ([`Writer::write`]).
type Done = Box<dyn Any + Send>;
/// A write: whether to keep what it wrote, and its result.
type Work = Box<dyn FnOnce(&Connection) -> (bool, Done) + Send>;

struct Job {
    durable: bool,
    work: Work,
    reply: oneshot::Sender<StoreResult<Done>>,
}

enum Message {
    Job(Job),
    Close(oneshot::Sender<()>),
}

/// The writer thread: takes the writes queued so far, commits them together, answers
/// them, and waits for more.
fn write_loop(conn: Connection, mut queue: mpsc::Receiver<Message>) {
    let mut synchronous_full = true;
    let mut closed = Vec::new();
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = queue.blocking_recv() {
        let mut next = Some(first);
        while let Some(message) = next {
            match message {
                Message::Job(job) => batch.push(job),
                Message::Close(done) => {
                    queue.close();
                    closed.push(done);
                }
            }
            next = if batch.len() < MAX_BATCH {
                queue.try_recv().ok()
            } else {
                None
            };
        }
        if !batch.is_empty() {
            commit(&conn, &mut batch, &mut synchronous_full);
        }
    }
    drop(conn);
    for done in closed {
        let _ = done.send(());
    }
}

/// Runs every job of `batch` in one transaction, each in a savepoint, commits, and
/// answers each.
fn commit(conn: &Connection, batch: &mut Vec<Job>, synchronous_full: &mut bool) {
    let durable = batch.iter().any(|j| j.durable);
    if durable != *synchronous_full {
        let level = if durable { "FULL" } else { "NORMAL" };
        if let Err(e) = conn.pragma_update(None, "synchronous", level) {
            return fail(batch.drain(..).map(|j| j.reply), &Arc::new(e));
        }
        *synchronous_full = durable;
    }
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        return fail(batch.drain(..).map(|j| j.reply), &Arc::new(e));
    }
    let mut answers = Vec::with_capacity(batch.len());
    let mut jobs = batch.drain(..);
    while let Some(job) = jobs.next() {
        match run(conn, job.work) {
            Ok(done) => answers.push((job.reply, done)),
            Err(e) => {
                // A savepoint statement failed: the transaction cannot be trusted.
                let _ = conn.execute_batch("ROLLBACK");
                let done = answers.into_iter().map(|(reply, _)| reply);
                let pending = jobs.map(|j| j.reply);
                return fail(done.chain([job.reply]).chain(pending), &Arc::new(e));
            }
        }
    }
    drop(jobs);
    match conn.execute_batch("COMMIT") {
        Ok(()) => {
            for (reply, done) in answers {
                let _ = reply.send(done);
            }
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            fail(answers.into_iter().map(|(reply, _)| reply), &Arc::new(e));
        }
    }
}

/// Runs one write in a savepoint: released if the write succeeded, rolled back if it
/// failed or panicked.
fn run(conn: &Connection, work: Work) -> rusqlite::Result<StoreResult<Done>> {
    conn.prepare_cached("SAVEPOINT write")?.execute([])?;
    let (keep, done) = match catch_unwind(AssertUnwindSafe(|| work(conn))) {
        Ok((keep, done)) => (keep, Ok(done)),
        Err(_) => (false, Err(StoreError::Panicked)),
    };
    if !keep {
        conn.prepare_cached("ROLLBACK TO write")?.execute([])?;
    }
    conn.prepare_cached("RELEASE write")?.execute([])?;
    Ok(done)
}

fn fail(
    replies: impl Iterator<Item = oneshot::Sender<StoreResult<Done>>>,
    e: &Arc<rusqlite::Error>,
) {
    for reply in replies {
        let _ = reply.send(Err(StoreError::Sqlite(e.clone())));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(c: &Connection) -> StoreResult<i64> {
        Ok(c.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))?)
    }

    #[tokio::test]
    async fn a_write_that_panics_is_rolled_back_and_the_writer_goes_on() {
        let writer = Writer::start(Connection::open_in_memory().unwrap()).unwrap();
        writer
            .write(true, |c| Ok(c.execute_batch("CREATE TABLE t (x INTEGER)")?))
            .await
            .unwrap();
        let panicked = writer
            .write(true, |c| -> StoreResult<()> {
                c.execute("INSERT INTO t VALUES (1)", [])?;
                panic!("a bug in a write");
            })
            .await;
        assert!(
            matches!(panicked, Err(StoreError::Panicked)),
            "{panicked:?}"
        );
        let kept = writer
            .write(false, |c| {
                c.execute("INSERT INTO t VALUES (2)", [])?;
                count(c)
            })
            .await;
        assert_eq!(kept.unwrap(), 1);
        writer.close().await;
        assert!(writer.is_closed());
        assert!(matches!(
            writer.write(true, count).await,
            Err(StoreError::Closed)
        ));
    }
}
