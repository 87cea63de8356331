//! Brute force and flooding: the per-account login lockout and the per-address limit
//! on the auth routes, both counted in the database.

use gatehouse::domain::{Email, unix_now};
use gatehouse::lockout::{Client, failures_key};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, email, read};

crate::on_every_backend!(
    five_failures_lock_an_account_until_its_window_ends,
    unknown_and_passwordless_emails_lock_exactly_like_known_ones,
    a_success_resets_the_failure_count,
    a_lockout_ends_with_its_window,
    a_burst_of_concurrent_guesses_gets_no_extra_tries,
    per_address_limit_covers_the_auth_routes_and_the_selfkey_mount,
    per_address_limit_leaves_token_checks_and_operations_alone,
    per_address_limit_counts_account_deletion,
    forwarded_for_is_believed_only_from_trusted_proxies,
    rate_limits_can_be_switched_off,
);

const WINDOW: i64 = 15 * 60;

fn too_many() -> Value {
    json!({"message": "Too many requests; try again later."})
}

async fn login(app: &TestApp, addr: &str, password: &str) -> (StatusCode, HeaderMap, Value) {
    let res = app
        .client
        .post(app.url("/auth/login"))
        .json(&json!({"email": addr, "password": password}))
        .send()
        .await
        .unwrap();
    let headers = res.headers().clone();
    let (status, body) = read(res).await;
    (status, headers, body)
}

/// A 429 with the JSON body and a `Retry-After` of at most `max` seconds; returns it.
fn assert_too_many((status, headers, body): &(StatusCode, HeaderMap, Value), max: i64) -> i64 {
    assert_eq!(*status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(*body, too_many());
    let retry: i64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=max).contains(&retry), "Retry-After {retry}");
    retry
}

fn assert_invalid((status, _, body): &(StatusCode, HeaderMap, Value)) {
    assert_eq!(*status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(*body, json!({"message": "Invalid credentials"}));
}

async fn five_failures_lock_an_account_until_its_window_ends(b: Backend) {
    let app = TestApp::spawn(b).await;
    let addr = email();
    app.registered(&addr, "password123").await;
    for _ in 0..5 {
        assert_invalid(&login(&app, &addr, "wrong-password").await);
    }
    assert_too_many(&login(&app, &addr, "wrong-password").await, WINDOW);
    // Locked means locked: the right password waits for the window too, whatever the
    // case of the address.
    assert_too_many(&login(&app, &addr, "password123").await, WINDOW);
    assert_too_many(
        &login(&app, &addr.to_uppercase(), "password123").await,
        WINDOW,
    );
    // Other accounts are not affected.
    let other = email();
    app.registered(&other, "password123").await;
    assert_eq!(login(&app, &other, "password123").await.0, StatusCode::OK);
}

async fn unknown_and_passwordless_emails_lock_exactly_like_known_ones(b: Backend) {
    let app = crate::ownid::spawn(b).await;
    let known = email();
    app.registered(&known, "password123").await;
    let passwordless = email();
    app.registered_passwordless(&passwordless, "device-credential")
        .await;
    let unknown = email();
    let mut answers = Vec::new();
    for addr in [&known, &passwordless, &unknown] {
        for _ in 0..5 {
            assert_invalid(&login(&app, addr, "wrong-password").await);
        }
        let locked = login(&app, addr, "wrong-password").await;
        assert_too_many(&locked, WINDOW);
        let header_names: Vec<String> = locked.1.keys().map(|k| k.to_string()).collect();
        answers.push((locked.0, locked.2, header_names));
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0], answers[2]);
}

async fn a_success_resets_the_failure_count(b: Backend) {
    let app = TestApp::spawn(b).await;
    let addr = email();
    app.registered(&addr, "password123").await;
    for _ in 0..4 {
        assert_invalid(&login(&app, &addr, "wrong-password").await);
    }
    let (status, _, body) = login(&app, &addr, "password123").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["token"].is_string(), "{body}");
    // A fresh count: five more failures before the lock.
    for _ in 0..5 {
        assert_invalid(&login(&app, &addr, "wrong-password").await);
    }
    assert_too_many(&login(&app, &addr, "password123").await, WINDOW);
}

/// The lockout's client for the tests' own requests (no device token, no proxy).
fn localhost() -> Client {
    Client::Address("address:127.0.0.1".into())
}

/// The counter's window is moved, not the clock: attempts recorded at a past time
/// stand for failures made that long ago.
async fn a_lockout_ends_with_its_window(b: Backend) {
    let app = TestApp::spawn(b).await;
    let store = &app.app.store;

    // Ten failures that started 13 minutes ago: locked for the 2 minutes left.
    let recent = email();
    app.registered(&recent, "password123").await;
    let key = failures_key(&Email::parse(&recent, "email").unwrap(), &localhost());
    for _ in 0..10 {
        store
            .hit(&key, unix_now() - WINDOW + 120, WINDOW)
            .await
            .unwrap();
    }
    assert_too_many(&login(&app, &recent, "password123").await, 120);

    // Ten failures in a window that has ended: no lock, and the count starts over.
    let old = email();
    app.registered(&old, "password123").await;
    let key = failures_key(&Email::parse(&old, "email").unwrap(), &localhost());
    for _ in 0..10 {
        store.hit(&key, unix_now() - WINDOW, WINDOW).await.unwrap();
    }
    assert_invalid(&login(&app, &old, "wrong-password").await);
    let (status, _, body) = login(&app, &old, "password123").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["token"].is_string());
}

async fn a_burst_of_concurrent_guesses_gets_no_extra_tries(b: Backend) {
    let app = TestApp::spawn(b).await;
    let addr = email();
    app.registered(&addr, "password123").await;
    let guesses = (0..30).map(|i| {
        let app = &app;
        let addr = addr.clone();
        async move { login(app, &addr, &format!("guess-number-{i}")).await }
    });
    let answers = futures::future::join_all(guesses).await;
    let mut refused = 0;
    let mut locked = 0;
    for answer in &answers {
        if answer.0 == StatusCode::UNAUTHORIZED {
            assert_invalid(answer);
            refused += 1;
        } else {
            assert_too_many(answer, WINDOW);
            locked += 1;
        }
    }
    assert_eq!((refused, locked), (5, 25));
}

fn per_address(limit: i64) -> impl FnOnce(&mut gatehouse::config::Settings) {
    move |s| {
        s.rate_limit.per_address = limit;
        s.rate_limit.per_address_window_secs = 60;
    }
}

async fn per_address_limit_covers_the_auth_routes_and_the_selfkey_mount(b: Backend) {
    let app = TestApp::spawn_with(b, per_address(4)).await;
    let addr = email();
    let token = app.registered(&addr, "password123").await;
    assert_invalid(&login(&app, &addr, "wrong-password").await);
    assert_eq!(login(&app, &addr, "password123").await.0, StatusCode::OK);
    let selfkey = app.url("/api/v1/selfkey/auth/challenge");
    let res = app.client.get(&selfkey).send().await.unwrap();
    assert_ne!(res.status(), StatusCode::TOO_MANY_REQUESTS);

    // The fifth request from this address, whichever limited route it goes to.
    let res = app
        .client
        .post(app.url("/auth/login"))
        .json(&json!({"email": addr, "password": "password123"}))
        .send()
        .await
        .unwrap();
    let headers = res.headers().clone();
    let (status, body) = read(res).await;
    assert_too_many(&(status, headers, body), 60);
    // Under the SelfKey mount, in SelfKey's error format (with a `code`).
    let res = app.client.get(&selfkey).send().await.unwrap();
    let retry: i64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    let (status, body) = read(res).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        body,
        json!({"code": "too_many_requests", "message": "Too many requests; try again later."})
    );
    let late = email();
    let (status, body) = app.register(&late, "password123").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body, too_many());
    // A refused registration changed nothing; token checks still answer.
    assert!(
        app.app
            .store
            .account_by_email(&late)
            .await
            .unwrap()
            .is_none()
    );
    let (status, me) = app.me(&token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["email"], addr);
}

async fn per_address_limit_leaves_token_checks_and_operations_alone(b: Backend) {
    let app = TestApp::spawn_with(b, per_address(2)).await;
    let claims = gatehouse::sessions::AccountClaims {
        email: None,
        email_verified: None,
        sid: gatehouse::crypto::random_id(),
        auth_time: gatehouse::domain::unix_now(),
        ..Default::default()
    };
    let (token, _) = app.app.tokens.issue(
        gatehouse::crypto::jwt::TokenKind::Account,
        &gatehouse::domain::AccountId::generate().0,
        gatehouse::domain::unix_now(),
        60,
        claims,
    );
    for _ in 0..5 {
        // An account that does not exist: a token check all the same.
        let (status, body) = app.me(&token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            body,
            json!({"message": "A valid bearer token is required."})
        );
        for path in ["/health", "/ready"] {
            let (status, body) = read(app.get(path, None).await).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(body, json!({"status": "ok"}));
        }
        let (status, doc) = read(app.get("/openapi.json", None).await).await;
        assert_eq!(status, StatusCode::OK);
        assert!(doc["paths"].is_object());
        let (status, body) = app
            .post_json("/ownid/getSessionByLoginId", &json!({"loginId": "a@b.io"}))
            .await;
        assert_ne!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    }
    // The auth routes still have their full allowance.
    let addr = email();
    assert_invalid(&login(&app, &addr, "wrong-password").await);
    assert_invalid(&login(&app, &addr, "wrong-password").await);
    assert_too_many(&login(&app, &addr, "wrong-password").await, 60);
}

/// `DELETE /auth/me` wipes an account: it is counted like the other lifecycle routes,
/// and a refused deletion deletes nothing. `GET /auth/me` stays uncounted.
async fn per_address_limit_counts_account_deletion(b: Backend) {
    let app = TestApp::spawn_with(b, per_address(2)).await;
    let addr = email();
    let token = app.registered(&addr, "password123").await;
    let delete = |token: String| {
        let request = app.client.delete(app.url("/auth/me")).bearer_auth(token);
        async move {
            let res = request.send().await.unwrap();
            let headers = res.headers().clone();
            let (status, body) = read(res).await;
            (status, headers, body)
        }
    };
    // The second request from this address: a token of no account, refused but counted.
    let claims = gatehouse::sessions::AccountClaims {
        email: None,
        email_verified: None,
        sid: gatehouse::crypto::random_id(),
        auth_time: unix_now(),
        ..Default::default()
    };
    let (stranger, _) = app.app.tokens.issue(
        gatehouse::crypto::jwt::TokenKind::Account,
        &gatehouse::domain::AccountId::generate().0,
        unix_now(),
        60,
        claims,
    );
    let (status, _, body) = delete(stranger).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(
        body,
        json!({"message": "A valid bearer token is required."})
    );
    for _ in 0..3 {
        let (status, body) = app.me(&token).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["email"], addr);
    }
    // The third: refused before it reaches the account.
    assert_too_many(&delete(token.clone()).await, 60);
    let (status, body) = app.me(&token).await;
    assert_eq!(status, StatusCode::OK, "the account is still there: {body}");
    assert_eq!(body["email"], addr);
    assert!(
        app.app
            .store
            .account_by_email(&addr)
            .await
            .unwrap()
            .is_some()
    );
}

async fn login_from(app: &TestApp, forwarded_for: &str) -> (StatusCode, HeaderMap, Value) {
    let res = app
        .client
        .post(app.url("/auth/login"))
        .header("x-forwarded-for", forwarded_for)
        .json(&json!({"email": email(), "password": "password123"}))
        .send()
        .await
        .unwrap();
    let headers = res.headers().clone();
    let (status, body) = read(res).await;
    (status, headers, body)
}

async fn forwarded_for_is_believed_only_from_trusted_proxies(b: Backend) {
    let app = TestApp::spawn_with(b, |s| {
        per_address(2)(s);
        s.http.trusted_proxies = vec!["127.0.0.1".into()];
    })
    .await;
    for client in ["198.51.100.7", "2001:db8:5:6::1"] {
        assert_invalid(&login_from(&app, client).await);
    }
    // Each client address has its own count; an IPv6 client counts per /64.
    assert_invalid(&login_from(&app, "198.51.100.7").await);
    assert_too_many(&login_from(&app, "198.51.100.7").await, 60);
    assert_invalid(&login_from(&app, "2001:db8:5:6::ffff").await);
    assert_too_many(&login_from(&app, "2001:db8:5:6:1:2:3:4").await, 60);
    assert_invalid(&login_from(&app, "198.51.100.8").await);

    // Without a trusted proxy, a forged header changes nothing: one count per peer.
    let direct = TestApp::spawn_with(b, per_address(2)).await;
    assert_invalid(&login_from(&direct, "203.0.113.1").await);
    assert_invalid(&login_from(&direct, "203.0.113.2").await);
    assert_too_many(&login_from(&direct, "203.0.113.3").await, 60);
}

async fn rate_limits_can_be_switched_off(b: Backend) {
    let app = TestApp::spawn_with(b, |s| {
        s.rate_limit.enabled = false;
        s.rate_limit.per_address = 1;
        s.rate_limit.login_failures = 1;
    })
    .await;
    let addr = email();
    app.registered(&addr, "password123").await;
    for _ in 0..8 {
        assert_invalid(&login(&app, &addr, "wrong-password").await);
    }
    let (status, _, body) = login(&app, &addr, "password123").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["token"].is_string());
}

/// The documented switch, `GATEHOUSE_RATE_LIMIT__ENABLED=false`, on the real binary.
#[tokio::test]
async fn the_environment_switch_turns_the_limits_off() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = crate::crash::Server::start(
        dir.path(),
        &format!("sqlite://{}", dir.path().join("db.sqlite").display()),
        &[
            ("GATEHOUSE_RATE_LIMIT__ENABLED", "false"),
            ("GATEHOUSE_RATE_LIMIT__LOGIN_FAILURES", "1"),
            ("GATEHOUSE_RATE_LIMIT__PER_ADDRESS", "1"),
            // The test harness's own variables (as CI sets them) are not configuration.
            ("GATEHOUSE_TEST_REQUIRE_POSTGRES", "1"),
        ],
    )
    .await;
    let client = crate::helpers::client();
    for _ in 0..4 {
        let res = client
            .post(format!("{}/auth/login", server.base))
            .json(&json!({"email": "nobody@example.com", "password": "password123"}))
            .send()
            .await
            .unwrap();
        let (status, body) = read(res).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body, json!({"message": "Invalid credentials"}));
    }
    server.kill();
}
