//! The login lockout that strangers cannot trigger: failures count per account and
//! client (address, or device token), the account's ceiling for clients without a
//! device token is a rate, and concurrent correct logins are never refused. Client
//! addresses come through a trusted proxy's `X-Forwarded-For`.

use std::time::Instant;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, email, read};

crate::on_every_backend!(
    a_guesser_at_one_address_locks_only_itself_out,
    guessers_spread_over_twenty_addresses_stay_under_the_accounts_ceiling,
    a_device_token_is_counted_alone_and_only_for_its_own_account,
    six_concurrent_correct_logins_all_succeed,
    a_stolen_session_guesses_the_current_password_no_more_than_a_login,
);

/// The defaults (`rate_limit.*`): 5 per account and client in 15 minutes; for the
/// account, a burst of 20, then one per 45 s.
const PER_CLIENT: usize = 5;
const ACCOUNT_BURST: usize = 20;
const ACCOUNT_INTERVAL_SECS: u64 = 45;

async fn behind_proxy(b: Backend) -> TestApp {
    TestApp::spawn_with(b, |s| s.http.trusted_proxies = vec!["127.0.0.1".into()]).await
}

/// A login from `address`, with a device token or none.
async fn login(
    app: &TestApp,
    address: &str,
    email: &str,
    password: &str,
    device_token: Option<&str>,
) -> (StatusCode, Value) {
    let mut body = json!({"email": email, "password": password});
    if let Some(token) = device_token {
        body["device_token"] = json!(token);
    }
    let res = app
        .client
        .post(app.url("/auth/login"))
        .header("x-forwarded-for", address)
        .json(&body)
        .send()
        .await
        .unwrap();
    if res.status() == StatusCode::TOO_MANY_REQUESTS {
        let retry: u64 = res.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(retry >= 1, "Retry-After {retry}");
    }
    read(res).await
}

fn assert_signed_in((status, body): &(StatusCode, Value)) -> String {
    assert_eq!(*status, StatusCode::OK, "{body}");
    assert!(body["token"].is_string(), "{body}");
    body["device_token"]
        .as_str()
        .expect("a device token")
        .to_string()
}

fn assert_invalid((status, body): &(StatusCode, Value)) {
    assert_eq!(*status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(*body, json!({"message": "Invalid credentials"}));
}

fn assert_too_many((status, body): &(StatusCode, Value)) {
    assert_eq!(*status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(
        *body,
        json!({"message": "Too many requests; try again later."})
    );
}

async fn a_guesser_at_one_address_locks_only_itself_out(b: Backend) {
    let app = behind_proxy(b).await;
    let owner = email();
    app.registered(&owner, "password123").await;
    // The owner signed in from A once before and kept the device token.
    let device = assert_signed_in(&login(&app, "198.51.100.1", &owner, "password123", None).await);

    let mut answers = Vec::new();
    for i in 0..100 {
        answers.push(
            login(
                &app,
                "198.51.100.1",
                &owner,
                &format!("wrong-guess-{i}"),
                None,
            )
            .await,
        );
    }
    for answer in &answers[..PER_CLIENT] {
        assert_invalid(answer);
    }
    for answer in &answers[PER_CLIENT..] {
        assert_too_many(answer);
    }
    // A is refused, the right password too; a forged device token changes nothing.
    assert_too_many(&login(&app, "198.51.100.1", &owner, "password123", None).await);
    assert_too_many(
        &login(
            &app,
            "198.51.100.1",
            &owner,
            "password123",
            Some("forged.token.x"),
        )
        .await,
    );

    // The owner, at once: from another address, and from A with the device token.
    assert_signed_in(&login(&app, "203.0.113.7", &owner, "password123", None).await);
    let fresh =
        assert_signed_in(&login(&app, "198.51.100.1", &owner, "password123", Some(&device)).await);
    // Each login hands out a fresh device token, which works the same.
    assert_ne!(fresh, device);
    assert_signed_in(&login(&app, "198.51.100.1", &owner, "password123", Some(&fresh)).await);
}

async fn guessers_spread_over_twenty_addresses_stay_under_the_accounts_ceiling(b: Backend) {
    let app = behind_proxy(b).await;
    let owner = email();
    app.registered(&owner, "password123").await;
    let device = assert_signed_in(&login(&app, "192.0.2.250", &owner, "password123", None).await);

    let start = Instant::now();
    let mut checked = 0;
    let mut refused = 0;
    for guess in 0..10 {
        for address in 0..20 {
            let answer = login(
                &app,
                &format!("192.0.2.{address}"),
                &owner,
                &format!("wrong-guess-{guess}"),
                None,
            )
            .await;
            if answer.0 == StatusCode::UNAUTHORIZED {
                assert_invalid(&answer);
                checked += 1;
            } else {
                assert_too_many(&answer);
                refused += 1;
            }
        }
    }
    // The stated ceiling: a burst of 20, then one per 45 s.
    let ceiling = ACCOUNT_BURST + (start.elapsed().as_secs() / ACCOUNT_INTERVAL_SECS) as usize;
    assert!(
        checked <= ceiling,
        "{checked} guesses checked, ceiling {ceiling}"
    );
    assert!(
        checked >= ACCOUNT_BURST,
        "only {checked} checked: the ceiling is not the limit"
    );
    assert_eq!(checked + refused, 200);

    // Slowed, not locked: a new address waits at most one interval.
    let res = app
        .client
        .post(app.url("/auth/login"))
        .header("x-forwarded-for", "192.0.2.100")
        .json(&json!({"email": owner, "password": "password123"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=ACCOUNT_INTERVAL_SECS).contains(&retry),
        "Retry-After {retry}"
    );
    assert_too_many(&read(res).await);
    // The owner's device is not held back by any of it.
    assert_signed_in(&login(&app, "192.0.2.0", &owner, "password123", Some(&device)).await);
}

async fn a_device_token_is_counted_alone_and_only_for_its_own_account(b: Backend) {
    let app = behind_proxy(b).await;
    let (ada, bob) = (email(), email());
    app.registered(&ada, "password123").await;
    app.registered(&bob, "password456").await;
    let ada_device =
        assert_signed_in(&login(&app, "198.51.100.2", &ada, "password123", None).await);

    // Ada's token is no device token for Bob: those guesses count by address.
    for i in 0..PER_CLIENT {
        assert_invalid(
            &login(
                &app,
                "198.51.100.2",
                &bob,
                &format!("wrong-guess-{i}"),
                Some(&ada_device),
            )
            .await,
        );
    }
    assert_too_many(&login(&app, "198.51.100.2", &bob, "password456", Some(&ada_device)).await);

    // Failures with a device token lock that token, not the address.
    for i in 0..PER_CLIENT {
        assert_invalid(
            &login(
                &app,
                "198.51.100.3",
                &ada,
                &format!("typo-number-{i}"),
                Some(&ada_device),
            )
            .await,
        );
    }
    assert_too_many(&login(&app, "198.51.100.3", &ada, "password123", Some(&ada_device)).await);
    assert_signed_in(&login(&app, "198.51.100.3", &ada, "password123", None).await);
}

async fn six_concurrent_correct_logins_all_succeed(b: Backend) {
    let app = behind_proxy(b).await;
    let owner = email();
    app.registered(&owner, "password123").await;
    for round in 0..3 {
        let tabs = (0..6).map(|_| login(&app, "198.51.100.9", &owner, "password123", None));
        for answer in futures::future::join_all(tabs).await {
            assert_signed_in(&answer);
        }
        // And after four typos, with one try left, still all six.
        if round == 0 {
            for i in 0..PER_CLIENT - 1 {
                assert_invalid(
                    &login(
                        &app,
                        "198.51.100.9",
                        &owner,
                        &format!("typo-number-{i}"),
                        None,
                    )
                    .await,
                );
            }
        }
    }
}

/// `POST /auth/password/change` from `address` with a session's token.
async fn change_password(
    app: &TestApp,
    address: &str,
    token: &str,
    current: &str,
) -> (StatusCode, Value) {
    let res = app
        .client
        .post(app.url("/auth/password/change"))
        .header("x-forwarded-for", address)
        .bearer_auth(token)
        .json(&json!({"current_password": current, "new_password": "the-thiefs-own-1"}))
        .send()
        .await
        .unwrap();
    if res.status() == StatusCode::TOO_MANY_REQUESTS {
        let retry: u64 = res.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(retry >= 1, "Retry-After {retry}");
    }
    read(res).await
}

async fn a_stolen_session_guesses_the_current_password_no_more_than_a_login(b: Backend) {
    let app = behind_proxy(b).await;
    let owner = email();
    app.registered(&owner, "password123").await;
    let (status, stolen) = login(&app, "198.51.100.1", &owner, "password123", None).await;
    assert_eq!(status, StatusCode::OK, "{stolen}");
    let stolen = stolen["token"].as_str().unwrap();

    // The thief, from A, guesses the current password: as many tries as a login has.
    for i in 0..PER_CLIENT {
        let (status, body) =
            change_password(&app, "198.51.100.7", stolen, &format!("wrong-guess-{i}")).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(body, json!({"message": "The current password is wrong."}));
    }
    // Then refused as /auth/login refuses, the right password too, and nothing changes.
    for _ in 0..3 {
        assert_too_many(&change_password(&app, "198.51.100.7", stolen, "password123").await);
    }
    // The same counters as a login's: A's logins are refused as well.
    assert_too_many(&login(&app, "198.51.100.7", &owner, "password123", None).await);
    // The owner, elsewhere, still signs in with the unchanged password.
    assert_signed_in(&login(&app, "203.0.113.9", &owner, "password123", None).await);
    let (status, body) = login(&app, "203.0.113.9", &owner, "the-thiefs-own-1", None).await;
    assert_invalid(&(status, body));
}
