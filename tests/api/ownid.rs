//! OwnID's server endpoints, called as OwnID's cloud calls them: raw JSON bytes signed
//! with HMAC-SHA256 under a base64 shared secret. Passwordless accounts too.

use std::io::{Read, Write};
use std::process::Stdio;
use std::sync::atomic::{AtomicI64, Ordering};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use gatehouse::config::Settings;
use gatehouse::domain::{Secret, unix_now_millis};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, email, jwt_parts};

crate::on_every_backend!(
    set_get_and_session_for_a_passwordless_account,
    set_on_a_password_account_adds_ownid_to_its_sign_in_methods,
    unknown_accounts_get_an_empty_404_and_nothing_is_created,
    missing_fields_and_bad_bodies_get_a_json_400_and_change_nothing,
    the_signature_covers_the_raw_bytes_whatever_their_layout,
    bad_signatures_get_an_empty_401_and_change_nothing,
    header_names_are_case_insensitive,
    an_exact_replay_is_refused_on_every_node,
    every_configured_secret_is_accepted_while_rotating,
    legacy_responses_answer_200_with_error_objects,
    the_routes_are_off_without_a_shared_secret,
    registration_refuses_ownid_data_while_ownid_is_off,
    the_routes_follow_the_base_and_the_openapi_document_shows_them,
);

/// The shared secret the tests' "OwnID cloud" holds, as OwnID's console shows it.
pub(crate) const SECRET: &str = "b3duaWQtdGVzdC1zaGFyZWQtc2VjcmV0LTMyLWJ5dGVz";
/// The secret a rotation brings in.
const NEW_SECRET: &str = "cm90YXRlZC1pbi1vd25pZC1zaGFyZWQtc2VjcmV0IQ==";
/// A secret the server was never given.
const FOREIGN_SECRET: &str = "c29tZW9uZSBlbHNlJ3Mgc2hhcmVkIHNlY3JldCEhISE=";

pub(crate) const SET: &str = "/ownid/setOwnIDDataByLoginId";
pub(crate) const GET: &str = "/ownid/getOwnIDDataByLoginId";
pub(crate) const SESSION: &str = "/ownid/getSessionByLoginId";

pub(crate) fn with_secrets(secrets: &[&str]) -> impl FnOnce(&mut Settings) {
    let secrets: Vec<_> = secrets.iter().map(|s| Secret::new(s.to_string())).collect();
    move |s: &mut Settings| s.ownid.shared_secrets = secrets
}

pub(crate) async fn spawn(b: Backend) -> TestApp {
    TestApp::spawn_with(b, with_secrets(&[SECRET])).await
}

/// A second node on the same database, with these secrets.
async fn another_node(b: Backend, first: &TestApp, secrets: &[&str]) -> TestApp {
    let url = first.app.settings.database_url();
    let secrets = with_secrets(secrets);
    TestApp::spawn_with(b, move |s| {
        s.database_url = Some(url);
        secrets(s);
    })
    .await
}

/// What OwnID's cloud sends: standard base64 of HMAC-SHA256(decoded secret, body "." timestamp).
fn sign(secret: &str, body: &[u8], timestamp: &str) -> String {
    use hmac::{KeyInit, Mac};
    let key = STANDARD.decode(secret).unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(body);
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// Now, in milliseconds, and later than any earlier call: OwnID signs each request
/// anew, so two requests in one millisecond must not look like a replay.
fn now() -> String {
    static LAST: AtomicI64 = AtomicI64::new(0);
    let now = unix_now_millis();
    let last = LAST
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| {
            Some(now.max(last + 1))
        })
        .unwrap();
    now.max(last + 1).to_string()
}

/// One signed request: the exact bytes and headers, so it can be sent again.
#[derive(Clone)]
struct Signed {
    body: Vec<u8>,
    headers: Vec<(String, String)>,
}

impl Signed {
    fn new(secret: &str, body: &str) -> Signed {
        Self::at(secret, body, &now())
    }

    fn at(secret: &str, body: &str, timestamp: &str) -> Signed {
        Signed {
            body: body.as_bytes().to_vec(),
            headers: vec![
                (
                    "ownid-signature".into(),
                    sign(secret, body.as_bytes(), timestamp),
                ),
                ("ownid-timestamp".into(), timestamp.into()),
            ],
        }
    }

    /// Sends it over a fresh connection to the server at `address`, blocking.
    fn send_raw(&self, address: &str, path: &str) -> Reply {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        raw_exchange(
            address,
            path,
            &headers,
            std::str::from_utf8(&self.body).unwrap(),
        )
    }
}

/// A response: status, headers, and the body as text ("" when empty).
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: String,
}

impl Reply {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("not JSON: {:?}", self.body))
    }

    pub(crate) fn assert_empty(&self, status: StatusCode, what: &str) {
        assert_eq!(
            (self.status, self.body.as_str()),
            (status, ""),
            "{what}: an empty {status}"
        );
    }

    fn assert_json(&self, status: StatusCode, body: Value, what: &str) {
        assert_eq!(self.status, status, "{what}: {}", self.body);
        assert_eq!(self.headers["content-type"], "application/json", "{what}");
        assert_eq!(self.json(), body, "{what}");
    }
}

async fn send(app: &TestApp, path: &str, req: &Signed) -> Reply {
    let mut builder = app
        .client
        .post(app.url(path))
        .header("content-type", "application/json")
        .body(req.body.clone());
    for (name, value) in &req.headers {
        builder = builder.header(name, value);
    }
    let res = builder.send().await.unwrap();
    Reply {
        status: res.status(),
        headers: res.headers().clone(),
        body: res.text().await.unwrap(),
    }
}

/// Signs `body` now with the test secret and sends it.
pub(crate) async fn call(app: &TestApp, path: &str, body: Value) -> Reply {
    send(app, path, &Signed::new(SECRET, &body.to_string())).await
}

async fn stored_data(app: &TestApp, addr: &str) -> Option<String> {
    match app
        .app
        .store
        .ownid_data(&addr.to_lowercase())
        .await
        .unwrap()
    {
        gatehouse::store::OwnIdLookup::Data(d) => Some(d),
        _ => None,
    }
}

async fn set_get_and_session_for_a_passwordless_account(b: Backend) {
    let app = spawn(b).await;
    let addr = email();
    let registered = app
        .registered_passwordless(&addr, "registration-credential")
        .await;

    let got = call(&app, GET, json!({"loginId": addr})).await;
    got.assert_json(
        StatusCode::OK,
        json!({"ownIdData": "registration-credential"}),
        "get",
    );
    assert_eq!(got.headers["cache-control"], "no-store");

    let set = call(
        &app,
        SET,
        json!({"loginId": addr, "ownIdData": "second-device"}),
    )
    .await;
    set.assert_empty(StatusCode::NO_CONTENT, "set");
    call(&app, GET, json!({"loginId": addr.to_uppercase()}))
        .await
        .assert_json(
            StatusCode::OK,
            json!({"ownIdData": "second-device"}),
            "get after set",
        );

    let session = call(
        &app,
        SESSION,
        json!({"loginId": format!(" {addr} "), "sessionType": "browser"}),
    )
    .await;
    assert_eq!(session.status, StatusCode::OK, "{}", session.body);
    assert_eq!(session.headers["cache-control"], "no-store");
    let body = session.json();
    assert_eq!(body.as_object().unwrap().len(), 4, "the tokens: {body}");
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["refresh_token"].is_string());
    let token = body["token"].as_str().unwrap();
    let (header, claims) = jwt_parts(token);
    assert_eq!(header, json!({"alg": "HS512", "typ": "JWT"}));
    assert_eq!(claims["sub"], jwt_parts(&registered).1["sub"]);
    assert_eq!(claims["email"], addr);
    assert!(app.app.sessions.authenticate(token).await.is_ok());

    let (status, me) = app.me(token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["email"], addr);
    assert_eq!(me["sign_in_methods"], json!([{"method": "ownid"}]));

    // Without the optional sessionType, and from a mobile app: the same kind of token.
    for extra in [json!({}), json!({"sessionType": "mobile"})] {
        let mut req = json!({"loginId": addr});
        req.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let reply = call(&app, SESSION, req).await;
        assert_eq!(reply.status, StatusCode::OK);
        let token = reply.json()["token"].as_str().unwrap().to_string();
        assert_eq!(app.me(&token).await.0, StatusCode::OK);
    }

    // A passwordless account refuses password login exactly as a wrong password is.
    let password_account = email();
    app.registered(&password_account, "password123").await;
    let wrong = app.login(&password_account, "wrong-password").await;
    let passwordless = app.login(&addr, "password123").await;
    assert_eq!(
        wrong,
        (
            StatusCode::UNAUTHORIZED,
            json!({"message": "Invalid credentials"})
        )
    );
    assert_eq!(passwordless, wrong);
}

async fn set_on_a_password_account_adds_ownid_to_its_sign_in_methods(b: Backend) {
    let app = spawn(b).await;
    let addr = email();
    let token = app.registered(&addr, "password123").await;
    call(&app, GET, json!({"loginId": addr}))
        .await
        .assert_empty(StatusCode::NO_CONTENT, "no data yet");

    call(&app, SET, json!({"loginId": addr, "ownIdData": "device"}))
        .await
        .assert_empty(StatusCode::NO_CONTENT, "set");
    let (status, me) = app.me(&token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        me["sign_in_methods"],
        json!([{"method": "password"}, {"method": "ownid"}])
    );
    // The password still works; the data is there.
    assert_eq!(app.login(&addr, "password123").await.0, StatusCode::OK);
    assert_eq!(stored_data(&app, &addr).await.as_deref(), Some("device"));
}

async fn unknown_accounts_get_an_empty_404_and_nothing_is_created(b: Backend) {
    let app = spawn(b).await;
    let unknown = email();
    for login_id in [unknown.as_str(), "+15551234567", "", "not an email"] {
        for (path, body) in [
            (SET, json!({"loginId": login_id, "ownIdData": "device"})),
            (GET, json!({"loginId": login_id})),
            (
                SESSION,
                json!({"loginId": login_id, "sessionType": "browser"}),
            ),
        ] {
            call(&app, path, body)
                .await
                .assert_empty(StatusCode::NOT_FOUND, &format!("{path} {login_id:?}"));
        }
    }
    assert!(
        app.app
            .store
            .account_by_email(&unknown)
            .await
            .unwrap()
            .is_none()
    );
}

async fn missing_fields_and_bad_bodies_get_a_json_400_and_change_nothing(b: Backend) {
    let app = spawn(b).await;
    let addr = email();
    app.registered_passwordless(&addr, "original").await;
    let too_long = "x".repeat(64 * 1024 + 1);
    let cases = [
        (
            SET,
            json!({"ownIdData": "changed"}),
            "The 'loginId' field is required and was not provided.",
        ),
        (
            SET,
            json!({"loginId": addr}),
            "The 'ownIdData' field is required and was not provided.",
        ),
        (
            SET,
            json!({"loginId": addr, "ownIdData": ""}),
            "The 'ownIdData' field must not be empty.",
        ),
        (
            SET,
            json!({"loginId": addr, "ownIdData": too_long}),
            "The 'ownIdData' field must be at most 65536 bytes long.",
        ),
        (
            GET,
            json!({}),
            "The 'loginId' field is required and was not provided.",
        ),
        (
            SESSION,
            json!({"sessionType": "browser"}),
            "The 'loginId' field is required and was not provided.",
        ),
    ];
    for (path, body, message) in cases {
        call(&app, path, body).await.assert_json(
            StatusCode::BAD_REQUEST,
            json!({ "message": message }),
            path,
        );
    }
    let unparsable = [
        ("{not json", "The request body is not valid JSON."),
        ("", "The request body is not valid JSON."),
        (r#"["loginId"]"#, "The request body must be a JSON object."),
    ];
    for (body, message) in unparsable {
        let reply = send(&app, SET, &Signed::new(SECRET, body)).await;
        reply.assert_json(
            StatusCode::BAD_REQUEST,
            json!({"message": message, "error": "Unable to parse JSON request"}),
            body,
        );
    }
    let reply = call(&app, SET, json!({"loginId": addr, "ownIdData": 5})).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.json()["error"], "Unable to parse JSON request");
    assert!(
        reply.json()["message"]
            .as_str()
            .unwrap()
            .contains("invalid type: integer `5`"),
        "{}",
        reply.body
    );
    assert_eq!(stored_data(&app, &addr).await.as_deref(), Some("original"));

    // Exactly the limit is fine (OwnID asks for room for at least 5,000 characters).
    let largest = "é".repeat(32 * 1024);
    call(&app, SET, json!({"loginId": addr, "ownIdData": largest}))
        .await
        .assert_empty(StatusCode::NO_CONTENT, "64 KiB");
    assert_eq!(stored_data(&app, &addr).await, Some(largest));

    // A body over the server's body limit is refused before its signature is checked.
    let small = TestApp::spawn_with(b, |s| {
        with_secrets(&[SECRET])(s);
        s.http.body_limit_bytes = 2048;
    })
    .await;
    let body = json!({"loginId": addr, "ownIdData": "x".repeat(4096)}).to_string();
    send(&small, SET, &Signed::new(SECRET, &body))
        .await
        .assert_json(
            StatusCode::BAD_REQUEST,
            json!({"message": "The request body is too large.", "error": "Unable to parse JSON request"}),
            "over the body limit",
        );
}

async fn the_signature_covers_the_raw_bytes_whatever_their_layout(b: Backend) {
    let app = spawn(b).await;
    let addr = email();
    app.registered(&addr, "password123").await;
    let upper = addr.to_uppercase();
    let bodies = [
        // Spacing, newlines and tabs, and the keys in the other order.
        (
            format!(
                "{{\n  \"ownIdData\" :\t\"clé-🔑-данные\" ,\n  \"loginId\" : \"  {upper} \"\n}}\n"
            ),
            "clé-🔑-данные",
        ),
        // JSON escapes: the signature is over the escapes, the data is what they mean.
        (
            format!(r#"{{"loginId":"{addr}","ownIdData":"caf\u00e9 \"quoted\" \\ \ud83d\udd11"}}"#),
            "café \"quoted\" \\ 🔑",
        ),
        // Unknown fields are ignored.
        (
            format!(r#"{{"extra":[1,{{"a":null}}],"loginId":"{addr}","ownIdData":"plain"}}"#),
            "plain",
        ),
    ];
    for (body, stored) in bodies {
        send(&app, SET, &Signed::new(SECRET, &body))
            .await
            .assert_empty(StatusCode::NO_CONTENT, &body);
        assert_eq!(stored_data(&app, &addr).await.as_deref(), Some(stored));
        let get = format!("  {{ \"loginId\":\n\"{upper}\" }}");
        send(&app, GET, &Signed::new(SECRET, &get))
            .await
            .assert_json(StatusCode::OK, json!({ "ownIdData": stored }), &get);
    }
    // Re-serialising the JSON (as OwnID's doc samples do before hashing) is not what
    // is signed: a signature over other bytes of the same JSON is refused.
    let sent = format!(r#"{{ "loginId": "{addr}" }}"#);
    let compact = json!({"loginId": addr}).to_string();
    let mut req = Signed::new(SECRET, &compact);
    req.body = sent.into_bytes();
    send(&app, GET, &req)
        .await
        .assert_empty(StatusCode::UNAUTHORIZED, "signed over re-serialised JSON");
}

async fn bad_signatures_get_an_empty_401_and_change_nothing(b: Backend) {
    let app = spawn(b).await;
    let addr = email();
    app.registered_passwordless(&addr, "original").await;
    let body = json!({"loginId": addr, "ownIdData": "changed"}).to_string();
    let ms = unix_now_millis();
    let good = Signed::new(SECRET, &body);
    let with_headers = |headers: Vec<(&str, String)>| Signed {
        body: body.clone().into_bytes(),
        headers: headers
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    };
    let signature = good.headers[0].1.clone();
    let timestamp = good.headers[1].1.clone();
    let tampered = Signed {
        body: body.replace("changed", "chang3d").into_bytes(),
        ..good.clone()
    };
    let cases = [
        ("tampered body", tampered),
        ("wrong secret", Signed::new(FOREIGN_SECRET, &body)),
        (
            "stale",
            Signed::at(SECRET, &body, &(ms - 61_000).to_string()),
        ),
        (
            "future",
            Signed::at(SECRET, &body, &(ms + 61_000).to_string()),
        ),
        ("non-numeric timestamp", Signed::at(SECRET, &body, "now")),
        (
            "timestamp in seconds",
            Signed::at(SECRET, &body, &(ms / 1000).to_string()),
        ),
        (
            "another timestamp than signed",
            with_headers(vec![
                ("ownid-signature", signature.clone()),
                // One millisecond after the signed one (not after `ms`: the good
                // request may have been signed a millisecond after `ms` was read).
                (
                    "ownid-timestamp",
                    (timestamp.parse::<i64>().unwrap() + 1).to_string(),
                ),
            ]),
        ),
        (
            "missing signature",
            with_headers(vec![("ownid-timestamp", timestamp.clone())]),
        ),
        (
            "missing timestamp",
            with_headers(vec![("ownid-signature", signature.clone())]),
        ),
        ("no headers", with_headers(vec![])),
        (
            "unpadded signature",
            with_headers(vec![
                (
                    "ownid-signature",
                    signature.trim_end_matches('=').to_string(),
                ),
                ("ownid-timestamp", timestamp.clone()),
            ]),
        ),
        (
            "hex signature",
            with_headers(vec![
                (
                    "ownid-signature",
                    hex::encode(STANDARD.decode(&signature).unwrap()),
                ),
                ("ownid-timestamp", timestamp.clone()),
            ]),
        ),
        (
            "repeated signature header",
            with_headers(vec![
                ("ownid-signature", signature.clone()),
                ("ownid-signature", signature.clone()),
                ("ownid-timestamp", timestamp.clone()),
            ]),
        ),
    ];
    for (what, req) in &cases {
        send(&app, SET, req)
            .await
            .assert_empty(StatusCode::UNAUTHORIZED, what);
    }
    assert_eq!(stored_data(&app, &addr).await.as_deref(), Some("original"));
    // The good request was never spent by the refusals around it.
    send(&app, SET, &good)
        .await
        .assert_empty(StatusCode::NO_CONTENT, "the good request");
    assert_eq!(stored_data(&app, &addr).await.as_deref(), Some("changed"));
}

/// Sends a request byte for byte, header names exactly as given (reqwest would
/// lower-case them).
async fn raw_post(app: &TestApp, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    let address = app.base.trim_start_matches("http://").to_string();
    let path = path.to_string();
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let body = body.to_string();
    tokio::task::spawn_blocking(move || {
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        raw_exchange(&address, &path, &headers, &body)
    })
    .await
    .unwrap()
}

/// One HTTP/1.1 POST over a fresh connection, blocking.
pub(crate) fn raw_exchange(
    address: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    let mut headers = HeaderMap::new();
    for line in head.lines().skip(1) {
        let (name, value) = line.split_once(':').unwrap();
        headers.insert(
            reqwest::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.trim().parse().unwrap(),
        );
    }
    Reply {
        status: StatusCode::from_u16(status).unwrap(),
        headers,
        body: body.to_string(),
    }
}

async fn header_names_are_case_insensitive(b: Backend) {
    let app = spawn(b).await;
    let addr = email();
    app.registered_passwordless(&addr, "device").await;
    let body = json!({"loginId": addr}).to_string();
    for (signature_name, timestamp_name) in [
        ("OwnID-Signature", "OwnID-Timestamp"),
        ("OWNID-SIGNATURE", "ownid-TIMESTAMP"),
    ] {
        let ts = now();
        let signature = sign(SECRET, body.as_bytes(), &ts);
        let reply = raw_post(
            &app,
            GET,
            &[(signature_name, &signature), (timestamp_name, &ts)],
            &body,
        )
        .await;
        reply.assert_json(
            StatusCode::OK,
            json!({"ownIdData": "device"}),
            signature_name,
        );
    }
    // The raw client really does reach the refusals too.
    let reply = raw_post(&app, GET, &[("OwnID-Timestamp", &now())], &body).await;
    reply.assert_empty(StatusCode::UNAUTHORIZED, "raw, no signature");
}

async fn an_exact_replay_is_refused_on_every_node(b: Backend) {
    let app = spawn(b).await;
    let node2 = another_node(b, &app, &[SECRET]).await;
    let addr = email();
    app.registered_passwordless(&addr, "original").await;

    let first = Signed::new(
        SECRET,
        &json!({"loginId": addr, "ownIdData": "first"}).to_string(),
    );
    send(&app, SET, &first)
        .await
        .assert_empty(StatusCode::NO_CONTENT, "first");
    let second = Signed::new(
        SECRET,
        &json!({"loginId": addr, "ownIdData": "second"}).to_string(),
    );
    send(&node2, SET, &second)
        .await
        .assert_empty(StatusCode::NO_CONTENT, "second, on node 2");
    for (node, name) in [(&app, "node 1"), (&node2, "node 2")] {
        send(node, SET, &first)
            .await
            .assert_empty(StatusCode::UNAUTHORIZED, &format!("replay on {name}"));
    }
    assert_eq!(stored_data(&app, &addr).await.as_deref(), Some("second"));

    // The signature does not cover the path: an accepted lookup cannot be replayed
    // as a session request, on either node.
    let lookup = Signed::new(SECRET, &json!({"loginId": addr}).to_string());
    send(&app, GET, &lookup).await.assert_json(
        StatusCode::OK,
        json!({"ownIdData": "second"}),
        "lookup",
    );
    for node in [&app, &node2] {
        send(node, SESSION, &lookup)
            .await
            .assert_empty(StatusCode::UNAUTHORIZED, "lookup replayed as a session");
    }

    // An unknown call name is refused before the signature is spent.
    let session = Signed::new(SECRET, &json!({"loginId": addr}).to_string());
    let reply = send(&app, "/ownid/deleteOwnIDDataByLoginId", &session).await;
    reply.assert_json(
        StatusCode::NOT_FOUND,
        json!({"message": "No such route."}),
        "unknown name",
    );
    let reply = send(&node2, SESSION, &session).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);

    // Concurrent copies of one request: exactly one is accepted.
    let request = Signed::new(SECRET, &json!({"loginId": addr}).to_string());
    let copies = (0..8).map(|i| {
        let node = if i % 2 == 0 { &app } else { &node2 };
        send(node, SESSION, &request)
    });
    let replies = futures::future::join_all(copies).await;
    let ok = replies
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    assert_eq!(ok, 1);
    for r in replies.iter().filter(|r| r.status != StatusCode::OK) {
        r.assert_empty(StatusCode::UNAUTHORIZED, "concurrent copy");
    }
}

async fn every_configured_secret_is_accepted_while_rotating(b: Backend) {
    let app = TestApp::spawn_with(b, with_secrets(&[NEW_SECRET, SECRET])).await;
    let addr = email();
    app.registered_passwordless(&addr, "device").await;
    let lookup = json!({"loginId": addr}).to_string();
    for secret in [SECRET, NEW_SECRET] {
        send(&app, GET, &Signed::new(secret, &lookup))
            .await
            .assert_json(StatusCode::OK, json!({"ownIdData": "device"}), secret);
    }
    send(&app, GET, &Signed::new(FOREIGN_SECRET, &lookup))
        .await
        .assert_empty(StatusCode::UNAUTHORIZED, "never configured");

    // The old secret removed from the configuration: refused; the new one still works.
    let rotated = another_node(b, &app, &[NEW_SECRET]).await;
    send(&rotated, GET, &Signed::new(SECRET, &lookup))
        .await
        .assert_empty(StatusCode::UNAUTHORIZED, "removed secret");
    send(&rotated, GET, &Signed::new(NEW_SECRET, &lookup))
        .await
        .assert_json(StatusCode::OK, json!({"ownIdData": "device"}), "new secret");
}

async fn legacy_responses_answer_200_with_error_objects(b: Backend) {
    let app = TestApp::spawn_with(b, |s| {
        with_secrets(&[SECRET])(s);
        s.ownid.legacy_responses = true;
    })
    .await;
    let not_found = json!({"errorCode": 404, "errorMessage": "User not found"});
    let unknown = email();
    for (path, body) in [
        (SET, json!({"loginId": unknown, "ownIdData": "device"})),
        (GET, json!({"loginId": unknown})),
        (SESSION, json!({"loginId": unknown})),
        (GET, json!({"loginId": "+15551234567"})),
    ] {
        call(&app, path, body)
            .await
            .assert_json(StatusCode::OK, not_found.clone(), path);
    }
    let addr = email();
    app.registered(&addr, "password123").await;
    call(&app, GET, json!({"loginId": addr})).await.assert_json(
        StatusCode::OK,
        json!({"ownIdData": ""}),
        "no data",
    );
    // Successes and refusals are as in the current protocol.
    call(&app, SET, json!({"loginId": addr, "ownIdData": "device"}))
        .await
        .assert_empty(StatusCode::NO_CONTENT, "set");
    call(&app, GET, json!({"loginId": addr})).await.assert_json(
        StatusCode::OK,
        json!({"ownIdData": "device"}),
        "data",
    );
    let session = call(&app, SESSION, json!({"loginId": addr})).await;
    assert_eq!(session.status, StatusCode::OK);
    assert!(session.json()["token"].is_string());
    send(
        &app,
        GET,
        &Signed::new(FOREIGN_SECRET, &json!({"loginId": addr}).to_string()),
    )
    .await
    .assert_empty(StatusCode::UNAUTHORIZED, "wrong secret");
}

async fn the_routes_are_off_without_a_shared_secret(b: Backend) {
    // The account is made on a node with OwnID on; this node, beside it, has it off.
    let on = spawn(b).await;
    let addr = email();
    on.registered_passwordless(&addr, "device").await;
    let app = on.spawn_beside(|s| s.ownid.shared_secrets = vec![]).await;
    for path in [SET, GET, SESSION] {
        let body = json!({"loginId": addr, "ownIdData": "changed"});
        call(&app, path, body).await.assert_json(
            StatusCode::NOT_FOUND,
            json!({"message": "No such route."}),
            path,
        );
    }
    assert_eq!(stored_data(&app, &addr).await.as_deref(), Some("device"));
    let (status, doc) = crate::helpers::read(app.get("/openapi.json", None).await).await;
    assert_eq!(status, StatusCode::OK);
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.keys().all(|p| !p.contains("ownid")), "{paths:?}");
    assert!(paths.contains_key("/auth/register"));
}

/// OwnID off: `/auth/register` takes no `ownIdData` either. An account made with it
/// could never sign in (OwnID's routes answer 404) and would hold the address.
async fn registration_refuses_ownid_data_while_ownid_is_off(b: Backend) {
    let app = TestApp::spawn(b).await;
    let addr = email();
    let refused = json!({
        "message": "OwnID sign-in is off on this server: the 'ownIdData' field is not accepted."
    });
    for body in [
        json!({"email": addr, "ownIdData": "device"}),
        json!({"email": addr, "password": "password123", "ownIdData": "device"}),
    ] {
        let (status, answer) = app.post_json("/auth/register", &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert_eq!(answer, refused, "{body}");
    }
    // Nothing was made: the address is free for its owner.
    let token = app.registered(&addr, "password123").await;
    let (status, me) = app.me(&token).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["sign_in_methods"], json!([{"method": "password"}]));
}

async fn the_routes_follow_the_base_and_the_openapi_document_shows_them(b: Backend) {
    let app = TestApp::spawn_with(b, |s| {
        with_secrets(&[SECRET])(s);
        s.ownid.base = "/api/ownid".into();
    })
    .await;
    let addr = email();
    app.registered_passwordless(&addr, "device").await;
    let lookup = json!({"loginId": addr});
    for name in [
        "getOwnIDDataByLoginId",
        "getownIDdatabyloginid",
        "GetOwnIdDataByLoginID",
    ] {
        call(&app, &format!("/api/ownid/{name}"), lookup.clone())
            .await
            .assert_json(StatusCode::OK, json!({"ownIdData": "device"}), name);
    }
    for name in ["setownIDdatabyloginid", "SETOWNIDDATABYLOGINID"] {
        call(
            &app,
            &format!("/api/ownid/{name}"),
            json!({"loginId": addr, "ownIdData": name}),
        )
        .await
        .assert_empty(StatusCode::NO_CONTENT, name);
        assert_eq!(stored_data(&app, &addr).await.as_deref(), Some(name));
    }
    let reply = call(&app, "/api/ownid/GETSESSIONBYLOGINID", lookup.clone()).await;
    assert_eq!(reply.status, StatusCode::OK);
    for path in [
        GET,
        "/api/ownid/getOwnIDData",
        "/api/ownid/getOwnIDDataByLoginId/more",
        "/api/ownid",
    ] {
        call(&app, path, lookup.clone()).await.assert_json(
            StatusCode::NOT_FOUND,
            json!({"message": "No such route."}),
            path,
        );
    }
    let (status, body) =
        crate::helpers::read(app.get("/api/ownid/getOwnIDDataByLoginId", None).await).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        body,
        json!({"message": "Method not allowed on this route."})
    );

    let (status, doc) = crate::helpers::read(app.get("/openapi.json", None).await).await;
    assert_eq!(status, StatusCode::OK);
    for (name, request) in [
        ("setOwnIDDataByLoginId", "OwnIdSetDataRequest"),
        ("getOwnIDDataByLoginId", "OwnIdLoginRequest"),
        ("getSessionByLoginId", "OwnIdSessionRequest"),
    ] {
        let op = &doc["paths"][format!("/api/ownid/{name}")]["post"];
        assert!(op.is_object(), "{name} is documented");
        assert_eq!(op["operationId"], name);
        let headers: Vec<(&str, &str, bool)> = op["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["name"].as_str().unwrap(),
                    p["in"].as_str().unwrap(),
                    p["required"].as_bool().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            headers,
            [
                ("ownid-signature", "header", true),
                ("ownid-timestamp", "header", true)
            ],
            "{name}"
        );
        assert_eq!(
            op["requestBody"]["content"]["application/json"]["schema"]["$ref"],
            format!("#/components/schemas/{request}")
        );
        assert!(op["responses"]["401"].is_object(), "{name}");
        assert!(op["responses"]["404"].is_object(), "{name}");
        assert!(
            doc["components"]["schemas"][request].is_object(),
            "{request}"
        );
    }
    assert!(
        doc["paths"]["/api/ownid/getOwnIDDataByLoginId"]["post"]["responses"]["204"].is_object()
    );
}

/// Runs the binary with `--log debug` in the log format `format` (`text` or `json`),
/// lets `work` talk to it at its address once it listens, stops it, and returns
/// everything it logged. In JSON, every line must be one JSON object.
pub(crate) fn log_of_a_run(
    dir: &std::path::Path,
    format: &str,
    secrets: Option<&str>,
    work: impl FnOnce(&str),
) -> String {
    use crate::process::{gatehouse, signal};
    use std::io::BufRead;
    let mut cmd = gatehouse(dir);
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--log", "debug"])
        .env("GATEHOUSE_JWT_SECRET", crate::helpers::JWT_SECRET)
        .env("GATEHOUSE_ARGON2__MEMORY_KIB", "256")
        .env("GATEHOUSE_LOG_FORMAT", format)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(secrets) = secrets {
        cmd.env("GATEHOUSE_OWNID__SHARED_SECRETS", secrets);
    }
    /// Stops the server if `work` panics, so no test leaves one running.
    struct Running(std::process::Child);
    impl Drop for Running {
        fn drop(&mut self) {
            if let Ok(None) = self.0.try_wait() {
                let _ = self.0.kill();
                let _ = self.0.wait();
            }
        }
    }
    let mut child = Running(cmd.spawn().unwrap());
    let mut lines = std::io::BufReader::new(child.0.stderr.take().unwrap()).lines();
    let mut log = String::new();
    // Every start line comes before "listening"; a failed start ends the output.
    let mut address = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        log.push_str(&line);
        log.push('\n');
        if line.contains("listening") {
            let port = line.split("127.0.0.1:").nth(1).unwrap();
            let port: String = port.chars().take_while(char::is_ascii_digit).collect();
            address = Some(format!("127.0.0.1:{port}"));
            break;
        }
    }
    if let Some(address) = address {
        work(&address);
        // An answered request means the server runs and handles SIGTERM (before that,
        // the signal would kill it with no graceful exit).
        let health = raw_exchange(&address, "/health", &[], "");
        assert_eq!(health.status, StatusCode::METHOD_NOT_ALLOWED);
        signal(&child.0, 15);
    }
    for line in lines {
        log.push_str(&line.unwrap());
        log.push('\n');
    }
    assert!(child.0.wait().unwrap().success(), "{log}");
    if format == "json" {
        for line in log.lines() {
            let object: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
            assert!(
                object["level"].is_string() && object["message"].is_string(),
                "{line}"
            );
        }
    }
    log
}

#[test]
fn the_log_says_whether_ownid_is_on_and_never_shows_secrets_data_or_tokens() {
    for format in ["text", "json"] {
        log_shows_no_secrets(format);
    }
}

fn log_shows_no_secrets(format: &str) {
    let dir = tempfile::tempdir().unwrap();
    let off = log_of_a_run(dir.path(), format, None, |address| {
        let req = Signed::new(SECRET, &json!({"loginId": email()}).to_string());
        req.send_raw(address, SESSION).assert_json(
            StatusCode::NOT_FOUND,
            json!({"message": "No such route."}),
            "OwnID off",
        );
    });
    assert!(off.contains("listening"), "{off}");
    assert!(off.contains("OwnID: off"), "{off}");

    let addr = email();
    let registered_data = format!("registered-{}", gatehouse::crypto::random_id());
    let enrolled_data = format!("enrolled-{}", gatehouse::crypto::random_id());
    let mut seen = Vec::new();
    let mut request_id = String::new();
    let on = log_of_a_run(
        dir.path(),
        format,
        Some(&format!("{SECRET}, {NEW_SECRET}")),
        |address| {
            let register = json!({"email": addr, "ownIdData": registered_data}).to_string();
            let reply = raw_exchange(address, "/auth/register", &[], &register);
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
            seen.push(reply.json()["token"].as_str().unwrap().to_string());
            let signed = |path: &str, body: Value| {
                Signed::new(NEW_SECRET, &body.to_string()).send_raw(address, path)
            };
            let set = signed(SET, json!({"loginId": addr, "ownIdData": enrolled_data}));
            set.assert_empty(StatusCode::NO_CONTENT, "set");
            let get = signed(GET, json!({"loginId": addr}));
            get.assert_json(StatusCode::OK, json!({"ownIdData": enrolled_data}), "get");
            let session = signed(SESSION, json!({"loginId": addr}));
            assert_eq!(session.status, StatusCode::OK, "{}", session.body);
            request_id = session.headers["x-request-id"]
                .to_str()
                .unwrap()
                .to_string();
            seen.push(session.json()["token"].as_str().unwrap().to_string());
            let forged = Signed::new(FOREIGN_SECRET, &json!({"loginId": addr}).to_string());
            forged
                .send_raw(address, SESSION)
                .assert_empty(StatusCode::UNAUTHORIZED, "forged");
            seen.push(forged.headers[0].1.clone());
        },
    );
    assert!(on.contains("OwnID: on"), "{on}");
    assert!(on.contains("/ownid"), "{on}");
    // The requests were logged, at debug level even, without what they carried.
    assert!(on.contains("OwnID session issued"), "{on}");
    // With the request's id, as its answer gave it.
    let issued = on
        .lines()
        .find(|l| l.contains("OwnID session issued"))
        .unwrap();
    assert!(issued.contains(&request_id), "{request_id} not in {issued}");
    assert!(on.contains("OwnID request refused"), "{on}");
    for never in [SECRET, NEW_SECRET, &registered_data, &enrolled_data]
        .into_iter()
        .chain(seen.iter().map(String::as_str))
    {
        assert!(!on.contains(never), "{never} is in the log:\n{on}");
    }
}

#[test]
fn a_shared_secret_that_is_not_base64_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = crate::process::gatehouse(dir.path())
        .arg("serve")
        .env(
            "GATEHOUSE_OWNID__SHARED_SECRETS",
            format!("{SECRET},not base64!"),
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("ownid.shared_secrets: secret #2 is not valid base64"),
        "{stderr}"
    );
    assert!(!stderr.contains(SECRET), "{stderr}");
}
