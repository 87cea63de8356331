//! Running several nodes: one purger at a time (the `purge` lease), and SIGTERM
//! draining the real binary (`/ready` 503 at once, requests in flight finished, exit
//! 0, nothing acknowledged lost).

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Backend, TestApp, email, read};
use crate::process::{gatehouse, signal, start};

crate::on_every_backend!(one_node_at_a_time_holds_the_purge_lease);

async fn one_node_at_a_time_holds_the_purge_lease(b: Backend) {
    let app = TestApp::spawn(b).await;
    let other = app.another_node().await;
    let (a, b) = (&app.app.store, &other.app.store);
    let now = 1_000_000;
    // The nodes' own purgers took no lease at these times.
    assert!(
        a.take_lease("test-job", "node-a", now, now + 150)
            .await
            .unwrap()
    );
    assert!(
        !b.take_lease("test-job", "node-b", now + 1, now + 151)
            .await
            .unwrap()
    );
    assert!(
        a.take_lease("test-job", "node-a", now + 60, now + 210)
            .await
            .unwrap(),
        "renewed"
    );
    assert!(
        !b.take_lease("test-job", "node-b", now + 209, now + 359)
            .await
            .unwrap()
    );
    // Its holder gone quiet, the lease passes on once it has run out.
    assert!(
        b.take_lease("test-job", "node-b", now + 210, now + 360)
            .await
            .unwrap()
    );
    assert!(
        !a.take_lease("test-job", "node-a", now + 211, now + 361)
            .await
            .unwrap()
    );
    // Concurrent takers of a free lease: exactly one holds it.
    let takers = (0..8).map(|i| {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        tokio::spawn(async move {
            store
                .take_lease("race", &format!("node-{i}"), now, now + 150)
                .await
                .unwrap()
        })
    });
    let mut held = 0;
    for t in takers {
        held += usize::from(t.await.unwrap());
    }
    assert_eq!(held, 1);
}

#[tokio::test]
async fn sigterm_drains_finishes_what_is_in_flight_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log.txt");
    let serve = || {
        let mut cmd = gatehouse(dir.path());
        cmd.arg("serve")
            .env("GATEHOUSE_LISTEN", "127.0.0.1:0")
            .env("GATEHOUSE_HTTP__DRAIN_SECS", "2")
            .env("GATEHOUSE_ARGON2__MEMORY_KIB", "256")
            .env("GATEHOUSE_ARGON2__ITERATIONS", "1");
        cmd
    };
    let (mut child, base) = start(&mut serve(), &log).await;
    let bound = base.trim_start_matches("http://").to_owned();
    let client = crate::helpers::client();
    let post = |path: &str, body: serde_json::Value| {
        client.post(format!("{base}{path}")).json(&body).send()
    };
    let address = email();
    let credentials = json!({"email": address, "password": "password123"});
    let (status, body) = read(post("/auth/register", credentials.clone()).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // A login in flight: its headers and half its body sent before the signal.
    let body = credentials.to_string();
    let (first, rest) = body.split_at(body.len() / 2);
    let mut in_flight = std::net::TcpStream::connect(bound.as_str()).unwrap();
    write!(
        in_flight,
        "POST /auth/login HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{first}",
        body.len()
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(200));

    signal(&child, 15);
    let signalled = Instant::now();
    // /ready says 503 at once; the node still serves while the balancer notices.
    loop {
        let (status, body) = read(client.get(format!("{base}/ready")).send().await.unwrap()).await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(body, json!({"status": "draining"}));
            break;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(1),
            "/ready still {status}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, body) = read(post("/auth/login", credentials.clone()).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "served while draining: {body}");

    // After the drain the listener closes; the request in flight still finishes.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        std::net::TcpStream::connect(bound.as_str()).is_err(),
        "no longer listening after the drain"
    );
    in_flight.write_all(rest.as_bytes()).unwrap();
    let mut answer = String::new();
    in_flight.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"refresh_token\""), "{answer}");

    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "server did not stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.code(), Some(0));

    // Restarted on the same data (on a port of its own): what was acknowledged is there.
    let (mut child, base) = start(&mut serve(), &log).await;
    let res = client
        .post(format!("{base}/auth/login"))
        .json(&credentials)
        .send()
        .await;
    let (status, body) = read(res.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    signal(&child, 15);
    let _ = child.wait();
}

/// PostgreSQL: a connection the database dropped under a running node (a restart, an
/// administrator's `pg_terminate_backend`, a proxy's idle cut) costs at most the one
/// statement that was on it, with an opaque 500; the next statement on its slot opens
/// a new connection, so the node serves again with no restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_the_database_dropped_are_replaced() {
    let Some(base) = crate::helpers::postgres_url() else {
        eprintln!("skipped: GATEHOUSE_TEST_POSTGRES_URL is not set");
        return;
    };
    // Named, so that only this node's connections are ended.
    let name = format!("drop_{}", &gatehouse::crypto::random_id()[..12]);
    let url = format!(
        "{}&application_name={name}",
        crate::helpers::fresh_postgres_schema().await
    );
    let app = TestApp::spawn_on(&url, |_| {}).await;
    let token = app.registered(&email(), "password123").await;
    let (status, me) = read(app.get("/auth/me", Some(&token)).await).await;
    assert_eq!(status, StatusCode::OK, "{me}");

    let admin = sqlx::PgPool::connect(&base).await.unwrap();
    let ended: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
    )
    .bind(&name)
    .fetch_all(&admin)
    .await
    .unwrap();
    admin.close().await;
    assert!(!ended.is_empty() && ended.iter().all(|e| *e), "{ended:?}");

    // Sequential requests: each dropped connection fails at most the one statement
    // that finds it gone (the node opened at most its 4 connections).
    let mut failures = 0;
    loop {
        let (status, body) = read(app.get("/auth/me", Some(&token)).await).await;
        if status == StatusCode::OK {
            assert_eq!(body, me);
            break;
        }
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
        assert_eq!(body["message"], "Internal server error");
        failures += 1;
        assert!(failures <= 4, "still failing after {failures} requests");
    }
    let (status, body) = app.login(&email(), "password123").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
}
