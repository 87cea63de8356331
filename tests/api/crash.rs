//! Nothing lost: the real binary is killed with SIGKILL in the middle of concurrent
//! registrations and restarted on the same database. Every registration it answered
//! 200 can sign in, and no account row is half-written.

use std::path::Path;
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Backend, JWT_SECRET, fresh_postgres_schema, read};
use crate::process::{gatehouse, start};

crate::on_every_backend!(acknowledged_registrations_survive_sigkill);

/// The `gatehouse` binary serving on a free port, with the tests' secret and cheap
/// argon2 parameters; killed (SIGKILL) when dropped.
pub struct Server {
    child: Child,
    pub base: String,
}

impl Server {
    /// A server on a port of its own (its log in `dir`).
    pub async fn start(dir: &Path, database_url: &str, env: &[(&str, &str)]) -> Server {
        let mut cmd = gatehouse(dir);
        cmd.args(["serve", "--listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(dir)
            .env("GATEHOUSE_DATABASE_URL", database_url)
            .env("GATEHOUSE_JWT_SECRET", JWT_SECRET)
            .env("GATEHOUSE_ARGON2__MEMORY_KIB", "256")
            .env("GATEHOUSE_ARGON2__ITERATIONS", "1")
            .envs(env.iter().copied());
        let (child, base) = start(&mut cmd, &dir.join("server.log")).await;
        Server { child, base }
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const CLIENTS: usize = 16;
/// Answered registrations to wait for before the kill.
const BEFORE_KILL: usize = 48;

async fn acknowledged_registrations_survive_sigkill(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let url = match b {
        Backend::Sqlite => format!("sqlite://{}", dir.path().join("crash.db").display()),
        Backend::Postgres => fresh_postgres_schema().await,
    };
    let env = [("GATEHOUSE_RATE_LIMIT__ENABLED", "false")];
    let mut server = Server::start(dir.path(), &url, &env).await;

    let acknowledged = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let client = crate::helpers::client_builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let workers: Vec<_> = (0..CLIENTS)
        .map(|worker| {
            let (client, base) = (client.clone(), server.base.clone());
            let (acknowledged, stop) = (Arc::clone(&acknowledged), Arc::clone(&stop));
            tokio::spawn(async move {
                let mut sent = 0;
                while !stop.load(Ordering::SeqCst) {
                    let email = format!("crash-{worker}-{sent}@example.com");
                    let password = format!("password-{worker}-{sent}");
                    sent += 1;
                    let res = client
                        .post(format!("{base}/auth/register"))
                        .json(&json!({"email": email, "password": password}))
                        .send()
                        .await;
                    let Ok(res) = res else { continue };
                    let status = res.status();
                    let Ok(bytes) = res.bytes().await else {
                        continue;
                    };
                    if status == StatusCode::OK {
                        let body: Value = serde_json::from_slice(&bytes).unwrap();
                        assert!(body["token"].is_string(), "{body}");
                        acknowledged.lock().unwrap().push((email, password));
                    }
                }
                sent
            })
        })
        .collect();

    let deadline = Instant::now() + Duration::from_secs(120);
    while acknowledged.lock().unwrap().len() < BEFORE_KILL {
        assert!(Instant::now() < deadline, "registrations did not get going");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill();
    stop.store(true, Ordering::SeqCst);
    let mut sent = 0;
    for worker in workers {
        sent += worker.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() >= BEFORE_KILL);

    let server = Server::start(dir.path(), &url, &env).await;
    for (email, password) in &acknowledged {
        let res = client
            .post(format!("{}/auth/login", server.base))
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .unwrap();
        let (status, body) = read(res).await;
        assert_eq!(status, StatusCode::OK, "{email}: {body}");
        assert!(body["token"].is_string(), "{body}");
    }

    let (total, half_written) = account_rows(&url).await;
    assert_eq!(half_written, 0, "accounts without an email key or a hash");
    assert!(
        (acknowledged.len() as i64..=sent as i64).contains(&total),
        "{total} rows for {} acknowledged of {sent} sent",
        acknowledged.len()
    );
}

/// Every account row, and those missing a part a password registration writes.
async fn account_rows(url: &str) -> (i64, i64) {
    const TOTAL: &str = "SELECT COUNT(*) FROM accounts";
    const HALF: &str = "SELECT COUNT(*) FROM accounts
        WHERE email IS NULL OR email_key IS NULL OR email_key <> LOWER(email)
           OR password_hash IS NULL OR password_hash NOT LIKE '$argon2id$%'";
    if let Some(path) = url.strip_prefix("sqlite://") {
        let conn = rusqlite::Connection::open(path).unwrap();
        let count = |sql| conn.query_row(sql, [], |r| r.get(0)).unwrap();
        (count(TOTAL), count(HALF))
    } else {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        let total = sqlx::query_scalar(TOTAL).fetch_one(&pool).await.unwrap();
        let half = sqlx::query_scalar(HALF).fetch_one(&pool).await.unwrap();
        pool.close().await;
        (total, half)
    }
}
