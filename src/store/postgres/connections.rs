//! The connections single statements run on: one round trip per statement.
//!
//! sqlx's pool tests every connection given back to it with a round trip of its own
//! (`return_to_pool` pings unconditionally), so a statement through the pool costs two
//! round trips, and a third task on each side. Statements outside a transaction run
//! here instead, on connections kept open and handed from one statement to the next
//! with no test in between; transactions, migrations and leases keep sqlx's pool.
//!
//! A connection a statement was cancelled on (a request dropped mid-query) is sound:
//! sqlx's connection counts the answers it still owes and reads them before its next
//! statement. One that failed below SQL (I/O, protocol, TLS) is closed, and the next
//! statement on its slot opens a new one; so is one idle past [`IDLE_LIMIT`], which a
//! server or a proxy in between may have dropped.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};
use tokio::sync::{Mutex, MutexGuard};

/// A connection unused this long is closed rather than trusted (sqlx's pool closes
/// idle connections after 10 minutes).
const IDLE_LIMIT: Duration = Duration::from_secs(300);

pub(super) struct Connections {
    options: PgConnectOptions,
    /// How long opening a connection may take (a server that accepts and never
    /// answers must not hold a statement until the request times out).
    connect_wait: Duration,
    slots: Box<[Mutex<Option<Held>>]>,
    next: AtomicUsize,
    closed: AtomicBool,
}

struct Held {
    connection: PgConnection,
    last_used: Instant,
}

/// One slot, held by one statement at a time.
pub(super) struct Slot<'a> {
    held: MutexGuard<'a, Option<Held>>,
    connections: &'a Connections,
}

impl Connections {
    /// At most `size` connections, each opened when a statement first needs it,
    /// within `connect_wait`.
    pub fn new(options: PgConnectOptions, size: usize, connect_wait: Duration) -> Connections {
        Connections {
            options,
            connect_wait,
            slots: (0..size.max(1)).map(|_| Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
        }
    }

    /// A free slot, or the next in turn once it is free.
    pub async fn slot(&self) -> Slot<'_> {
        let held = match self.slots.iter().find_map(|s| s.try_lock().ok()) {
            Some(free) => free,
            None => {
                let i = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
                self.slots[i].lock().await
            }
        };
        Slot {
            held,
            connections: self,
        }
    }

    /// Closes every connection (each waits for the statement it runs); statements
    /// after this fail with [`sqlx::Error::PoolClosed`].
    pub async fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        for slot in &self.slots {
            if let Some(held) = slot.lock().await.take() {
                let _ = held.connection.close().await;
            }
        }
    }
}

impl Slot<'_> {
    /// The slot's connection, opened if it has none or was idle too long.
    pub async fn connection(&mut self) -> sqlx::Result<&mut PgConnection> {
        if self.connections.closed.load(Ordering::SeqCst) {
            return Err(sqlx::Error::PoolClosed);
        }
        let now = Instant::now();
        if let Some(held) = self.held.take_if(|h| now - h.last_used > IDLE_LIMIT) {
            let _ = held.connection.close_hard().await;
        }
        let connection = match self.held.take() {
            Some(held) => held.connection,
            None => {
                let connect = self.connections.options.connect();
                tokio::time::timeout(self.connections.connect_wait, connect)
                    .await
                    .map_err(|_| sqlx::Error::PoolTimedOut)??
            }
        };
        let held = self.held.insert(Held {
            connection,
            last_used: now,
        });
        Ok(&mut held.connection)
    }

    /// After a statement: closes the connection if `error` says it is broken.
    pub fn check(&mut self, error: Option<&sqlx::Error>) {
        if error.is_some_and(is_broken) {
            self.held.take();
        }
    }
}

/// An error of the connection itself, not of the statement: the connection may be in
/// any state, and is not used again.
fn is_broken(e: &sqlx::Error) -> bool {
    matches!(
        e,
        sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that accepts and never answers fails the statement within the
    /// connect wait, and leaves the slot empty for the next statement.
    #[tokio::test]
    async fn a_server_that_never_answers_fails_within_the_connect_wait() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                open.push(socket);
            }
        });
        let options: PgConnectOptions = format!("postgres://u:p@127.0.0.1:{port}/db")
            .parse()
            .unwrap();
        let connections = Connections::new(options, 1, Duration::from_millis(200));
        let started = Instant::now();
        let mut slot = connections.slot().await;
        let result = slot.connection().await.map(|_| ());
        assert!(
            matches!(result, Err(sqlx::Error::PoolTimedOut)),
            "{result:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(slot.held.is_none());
        drop(slot);
        connections.close().await;
        let mut slot = connections.slot().await;
        let result = slot.connection().await.map(|_| ());
        assert!(matches!(result, Err(sqlx::Error::PoolClosed)), "{result:?}");
        held.abort();
    }
}
