//! Answers given before the request's body was read reach the client: the server
//! closes such connections lingering (`src/http/linger.rs`) and says
//! `Connection: close`. Connection handling is below the store, so these run on
//! SQLite only.

use std::time::{Duration, Instant};

use gatehouse::http::linger::{LINGER_BYTES, LINGER_IDLE, LINGER_TIME};
use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{Backend, TestApp};

const TRIES: usize = 200;

/// Sends `TRIES` requests one after another with reqwest; every one must come back
/// with `status` and `body`, none with a transport error.
async fn every_try(
    send: impl Fn() -> reqwest::RequestBuilder,
    status: StatusCode,
    check: impl Fn(&Value),
) {
    let mut transport_errors = Vec::new();
    for i in 0..TRIES {
        match send().send().await {
            Ok(res) => {
                assert_eq!(res.status(), status, "try {i}");
                let body: Value = res.json().await.expect("a JSON body");
                check(&body);
            }
            Err(e) => transport_errors.push(format!("try {i}: {e:?}")),
        }
    }
    assert!(transport_errors.is_empty(), "{transport_errors:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multipart_sign_up_with_a_challenge_token_gets_its_400_every_time() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let res = app.get("/api/v1/selfkey/auth/challenge", None).await;
    assert_eq!(res.status(), StatusCode::OK);
    let challenge: Value = res.json().await.unwrap();
    let challenge = challenge["jwt"].as_str().unwrap().to_string();
    let attributes =
        json!([{"id": "email", "data": {"value": "ada@example.com"}, "documents": [1]}]);
    let scan = vec![7u8; 256 * 1024];
    every_try(
        || {
            let form = Form::new()
                .part(
                    "attributes",
                    Part::text(attributes.to_string())
                        .mime_str("application/json")
                        .unwrap(),
                )
                .part(
                    "$document-1",
                    Part::bytes(scan.clone())
                        .file_name("scan.pdf")
                        .mime_str("application/pdf")
                        .unwrap(),
                );
            app.client
                .post(app.url("/api/v1/selfkey/users"))
                .bearer_auth(&challenge)
                .multipart(form)
        },
        StatusCode::BAD_REQUEST,
        |body| {
            assert_eq!(
                *body,
                json!({"code": "invalid_token", "message": "Invalid token: not a token of the expected kind"})
            );
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_3_mib_login_body_gets_its_400_every_time() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let body = json!({"email": "ada@example.com", "password": "x".repeat(3 << 20)}).to_string();
    every_try(
        || {
            app.client
                .post(app.url("/auth/login"))
                .header("content-type", "application/json")
                .body(body.clone())
        },
        StatusCode::BAD_REQUEST,
        |body| {
            assert_eq!(
                *body,
                json!({"message": "The request body is too large.", "error": "Unable to parse JSON request"})
            );
        },
    )
    .await;
}

/// Opens a connection, declares a 1 GiB login body, and reads the early answer.
async fn refused_upload(
    app: &TestApp,
) -> (
    tokio::net::tcp::OwnedReadHalf,
    tokio::net::tcp::OwnedWriteHalf,
) {
    let stream = TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let head = "POST /auth/login HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n\
                Content-Length: 1073741824\r\n\r\n";
    writer.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    while !answer.ends_with(b"}") {
        let n = reader.read(&mut chunk).await.unwrap();
        assert!(n > 0, "closed before answering");
        answer.extend_from_slice(&chunk[..n]);
    }
    let answer = String::from_utf8(answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("\r\nconnection: close\r\n"),
        "{answer}"
    );
    assert!(
        answer.ends_with(
            r#"{"message":"The request body is too large.","error":"Unable to parse JSON request"}"#
        ),
        "{answer}"
    );
    // Then the end of the answer: the server has shut down its side.
    assert_eq!(reader.read(&mut chunk).await.unwrap(), 0);
    (reader, writer)
}

/// Lingering is bounded: a client that goes on sending after its answer is cut off
/// after `LINGER_BYTES`, or after `LINGER_TIME` when it trickles, or after
/// `LINGER_IDLE` when it goes quiet without closing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_keeps_sending_after_its_answer_is_cut_off() {
    let app = TestApp::spawn(Backend::Sqlite).await;

    // As fast as it can: the server stops reading after LINGER_BYTES and resets.
    let (_reader, mut writer) = refused_upload(&app).await;
    let chunk = vec![b' '; 64 * 1024];
    let mut sent = 0;
    while writer.write_all(&chunk).await.is_ok() {
        sent += chunk.len();
        assert!(sent < 2 * LINGER_BYTES, "still accepted {sent} bytes");
    }
    assert!(sent >= LINGER_BYTES / 2, "cut off after only {sent} bytes");

    // A byte every 100 ms: cut off once LINGER_TIME has passed.
    let (_reader, mut writer) = refused_upload(&app).await;
    let start = Instant::now();
    while writer.write_all(b" ").await.is_ok() {
        assert!(start.elapsed() < LINGER_TIME * 2, "still connected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(start.elapsed() >= LINGER_TIME - Duration::from_secs(1));

    // Silent but open: the server closes after LINGER_IDLE; a late write is refused.
    let (_reader, mut writer) = refused_upload(&app).await;
    tokio::time::sleep(LINGER_IDLE + Duration::from_secs(1)).await;
    let mut refused = false;
    for _ in 0..50 {
        if writer.write_all(b" ").await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        refused,
        "the connection is still open after {LINGER_IDLE:?} of silence"
    );

    let (status, body) = crate::helpers::read(app.get("/health", None).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"status": "ok"}));
}
