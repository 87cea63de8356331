//! Bounded work per request: huge headers, huge bodies, slow clients, and a flood of
//! logins, none of which takes the server down or starves other requests.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{Backend, TestApp, email, read};

crate::on_every_backend!(
    huge_headers_get_431_and_the_server_carries_on,
    clients_that_trickle_or_idle_are_disconnected,
    a_body_over_the_limit_is_refused_with_json,
    a_slow_body_gets_a_json_408,
    health_answers_while_200_logins_are_in_flight,
);

/// Bounds the slow-client loops: far longer than any timeout they wait for.
const PATIENCE: usize = 600;
const TICK: Duration = Duration::from_millis(100);

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// A raw HTTP/1.1 response: status, head, body.
struct Raw {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Raw {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&self.body)))
    }
}

/// Reads one response (head, then `Content-Length` bytes of body); `None` when the
/// server closed the connection without answering.
async fn read_response(stream: &mut (impl AsyncReadExt + Unpin)) -> Option<Raw> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
    let status = head[9..12].parse().unwrap();
    let length = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().unwrap())
        })
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    Some(Raw { status, head, body })
}

/// True once the server has closed the connection: a read sees the end (or a reset).
async fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(stream.read(&mut byte).await, Ok(0) | Err(_))
}

async fn health_is_ok(app: &TestApp) {
    let (status, body) = read(app.get("/health", None).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"status": "ok"}));
}

async fn huge_headers_get_431_and_the_server_carries_on(b: Backend) {
    let app = TestApp::spawn(b).await;
    // Control: 16 KiB of headers are fine (the limit is 32 KiB).
    let res = app
        .client
        .get(app.url("/health"))
        .header("x-big", "a".repeat(16 * 1024))
        .send()
        .await
        .unwrap();
    let (status, body) = read(res).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"status": "ok"}));

    let one_huge = format!(
        "GET /health HTTP/1.1\r\nHost: localhost\r\nX-Big: {}\r\n\r\n",
        "a".repeat(40 * 1024)
    );
    let many: String = (0..150).map(|i| format!("X-Header-{i}: {i}\r\n")).collect();
    let too_many = format!("GET /health HTTP/1.1\r\nHost: localhost\r\n{many}\r\n");
    for (what, request) in [("one 40 KiB header", one_huge), ("150 headers", too_many)] {
        let mut stream = connect(&app).await;
        let _ = stream.write_all(request.as_bytes()).await;
        let res = read_response(&mut stream).await.expect(what);
        // hyper answers before the request reaches the application: no body.
        assert_eq!(res.status, 431, "{what}: {}", res.head);
        assert!(res.body.is_empty(), "{what}");
        assert!(closed_by_server(&mut stream).await, "{what}");
    }
    health_is_ok(&app).await;
}

async fn clients_that_trickle_or_idle_are_disconnected(b: Backend) {
    let app = TestApp::spawn_with(b, |s| s.http.header_read_timeout_secs = 1).await;

    // Headers sent a byte at a time, never finished.
    let stream = connect(&app).await;
    let (mut reader, mut writer) = stream.into_split();
    writer
        .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        .await
        .unwrap();
    let trickle = async {
        for _ in 0..PATIENCE {
            if writer.write_all(b"a").await.is_err() {
                return;
            }
            tokio::time::sleep(TICK).await;
        }
        panic!("still connected after {PATIENCE} bytes");
    };
    let answer = async {
        let mut buf = Vec::new();
        let _ = reader.read_to_end(&mut buf).await;
        buf
    };
    tokio::select! {
        answer = answer => assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer)),
        () = trickle => {}
    }

    // A connection that never sends anything, and one left idle after a response.
    let mut silent = connect(&app).await;
    let mut idle = connect(&app).await;
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let res = read_response(&mut idle).await.unwrap();
    assert_eq!(res.status, 200);
    assert_eq!(res.json(), json!({"status": "ok"}));
    for stream in [&mut silent, &mut idle] {
        let closed = tokio::time::timeout(TICK * PATIENCE as u32, closed_by_server(stream)).await;
        assert_eq!(closed, Ok(true));
    }
    health_is_ok(&app).await;
}

async fn a_body_over_the_limit_is_refused_with_json(b: Backend) {
    let app = TestApp::spawn(b).await;
    // Chunked, so no Content-Length announces the size: the limit holds as it streams.
    let stream = connect(&app).await;
    let (mut reader, mut writer) = stream.into_split();
    let addr = email();
    let head = "POST /auth/register HTTP/1.1\r\nHost: localhost\r\n\
                Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    writer.write_all(head.as_bytes()).await.unwrap();
    let send = tokio::spawn(async move {
        let start = format!(r#"{{"email":"{addr}","password":""#);
        let _ = writer
            .write_all(format!("{:x}\r\n{start}\r\n", start.len()).as_bytes())
            .await;
        let chunk = format!("10000\r\n{}\r\n", "x".repeat(0x10000));
        for _ in 0..48 {
            if writer.write_all(chunk.as_bytes()).await.is_err() {
                return;
            }
        }
    });
    let res = read_response(&mut reader).await.expect("an answer");
    assert_eq!(res.status, 400, "{}", res.head);
    assert_eq!(
        res.json(),
        json!({"message": "The request body is too large.", "error": "Unable to parse JSON request"})
    );
    send.abort();
    health_is_ok(&app).await;
}

async fn a_slow_body_gets_a_json_408(b: Backend) {
    let app = TestApp::spawn_with(b, |s| s.http.request_timeout_secs = 1).await;
    let stream = connect(&app).await;
    let (mut reader, mut writer) = stream.into_split();
    let head = "POST /auth/login HTTP/1.1\r\nHost: localhost\r\n\
                Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"email\":";
    writer.write_all(head.as_bytes()).await.unwrap();
    let trickle = tokio::spawn(async move {
        for _ in 0..PATIENCE {
            if writer.write_all(b" ").await.is_err() {
                return;
            }
            tokio::time::sleep(TICK).await;
        }
    });
    let res = read_response(&mut reader).await.expect("an answer");
    assert_eq!(res.status, 408, "{}", res.head);
    assert_eq!(res.json(), json!({"message": "The request took too long."}));
    assert!(
        !trickle.is_finished(),
        "answered while the body was still coming"
    );
    trickle.abort();
    health_is_ok(&app).await;
}

/// Logins hash one at a time at a real (if modest) cost, so 200 of them queue for
/// seconds; `/health` is answered in the meantime. (The request timeout is raised so
/// that a slow machine queues them rather than answering 408.)
async fn health_answers_while_200_logins_are_in_flight(b: Backend) {
    let app = TestApp::spawn_with(b, |s| {
        s.argon2.memory_kib = 4096;
        s.argon2.max_in_flight = Some(1);
        s.http.request_timeout_secs = 600;
        s.rate_limit.enabled = false;
    })
    .await;
    let addr = email();
    app.registered(&addr, "password123").await;
    let done = Arc::new(AtomicUsize::new(0));
    let logins: Vec<_> = (0..200)
        .map(|_| {
            let (client, url, addr) = (app.client.clone(), app.url("/auth/login"), addr.clone());
            let done = Arc::clone(&done);
            tokio::spawn(async move {
                let res = client
                    .post(url)
                    .json(&json!({"email": addr, "password": "wrong-password"}))
                    .send()
                    .await
                    .unwrap();
                let answer = read(res).await;
                done.fetch_add(1, Ordering::SeqCst);
                answer
            })
        })
        .collect();
    // Once one has been answered the rest are queued at the server.
    while done.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for _ in 0..5 {
        health_is_ok(&app).await;
    }
    let answered = done.load(Ordering::SeqCst);
    assert!(
        answered < 200,
        "the logins were no longer in flight ({answered} done)"
    );
    for login in logins {
        let (status, body) = login.await.unwrap();
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body, json!({"message": "Invalid credentials"}));
    }
}
