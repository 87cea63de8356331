//! `gatehouse backup FILE` while the server serves: taken under a steady stream of
//! registrations, the copy holds every account acknowledged before the backup began,
//! and a server started on the copy signs each of them in.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::read;
use crate::process::{gatehouse, sigterm, start, wait_exit};

const PASSWORD: &str = "backup-password-1";

/// A server on a port of its own, with `args`; the child and its base URL.
async fn server(dir: &std::path::Path, args: &[&str], log: &str) -> (std::process::Child, String) {
    let mut cmd = gatehouse(dir);
    cmd.arg("serve")
        .args(args)
        .args(["--listen", "127.0.0.1:0"])
        .env("GATEHOUSE_JWT_SECRET", crate::helpers::JWT_SECRET)
        .env("GATEHOUSE_RATE_LIMIT__ENABLED", "false")
        .env("GATEHOUSE_ARGON2__MEMORY_KIB", "256")
        .env("GATEHOUSE_ARGON2__ITERATIONS", "1");
    start(&mut cmd, &dir.join(log)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_under_write_load_restores_every_acknowledged_account() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (mut child, base) = server(
        dir.path(),
        &["--data-dir", data.to_str().unwrap()],
        "first.log",
    )
    .await;

    // Four writers register accounts until told to stop; each acknowledged email is
    // recorded with the moment its 200 arrived.
    let acked: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let client = crate::helpers::client();
    let mut writers = Vec::new();
    for w in 0..4 {
        let (acked, stop, client, base) =
            (acked.clone(), stop.clone(), client.clone(), base.clone());
        writers.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && n < 5_000 {
                let email = format!("w{w}-{n}@backup.example");
                n += 1;
                let res = client
                    .post(format!("{base}/auth/register"))
                    .json(&json!({"email": email, "password": PASSWORD}))
                    .send()
                    .await
                    .unwrap();
                let (status, body) = read(res).await;
                assert_eq!(status, StatusCode::OK, "{body}");
                acked.lock().unwrap().push((Instant::now(), email));
            }
        }));
    }
    while acked.lock().unwrap().len() < 100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let copy = dir.path().join("copy.db");
    let began = Instant::now();
    let out = {
        let (dir, data, copy) = (dir.path().to_owned(), data.clone(), copy.clone());
        tokio::task::spawn_blocking(move || {
            gatehouse(&dir)
                .args([
                    "backup",
                    copy.to_str().unwrap(),
                    "--data-dir",
                    data.to_str().unwrap(),
                ])
                .output()
                .unwrap()
        })
        .await
        .unwrap()
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("backup written and checked"), "{stderr}");
    let during = acked
        .lock()
        .unwrap()
        .iter()
        .filter(|(t, _)| *t > began)
        .count();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    sigterm(&child);
    assert!(wait_exit(&mut child).success());
    assert!(during > 0, "the writes went on while the backup ran");

    let before: Vec<String> = acked
        .lock()
        .unwrap()
        .iter()
        .filter(|(t, _)| *t < began)
        .map(|(_, e)| e.clone())
        .collect();
    let accounts: i64 = stderr
        .split("accounts=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the summary counts the accounts: {stderr}"));
    assert!(
        accounts >= before.len() as i64,
        "{accounts} < {}",
        before.len()
    );
    eprintln!(
        "acknowledged before the backup: {}, during it: {during}, in the copy: {accounts}",
        before.len()
    );

    // Restore: a server on the copy signs in every account acknowledged before it.
    let restored = dir.path().join("restored");
    let url = format!("sqlite://{}", copy.display());
    let (mut child, base) = server(
        dir.path(),
        &[
            "--data-dir",
            restored.to_str().unwrap(),
            "--database-url",
            &url,
        ],
        "restored.log",
    )
    .await;
    for email in &before {
        let res = client
            .post(format!("{base}/auth/login"))
            .json(&json!({"email": email, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        let (status, body) = read(res).await;
        assert_eq!(status, StatusCode::OK, "{email}: {body}");
        assert!(body["token"].is_string(), "{email}: {body}");
    }
    sigterm(&child);
    assert!(wait_exit(&mut child).success());

    // The backup refuses to overwrite, and says why.
    let out = gatehouse(dir.path())
        .args([
            "backup",
            copy.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("never overwrites"));
}
