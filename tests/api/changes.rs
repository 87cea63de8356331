//! What a reset, a password change and an email change do to the account's sessions
//! and tokens, and `accounts.require_verified_email`, through a real SMTP server: the
//! tests read the delivered mail and follow its links as a person would.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, email, read};
use crate::mail::{
    INVALID_LINK, PUBLIC_URL, RESET_PAGE, VERIFY_PAGE, forgot, links, open, to, token_of, with_mail,
};
use crate::on_every_backend;
use crate::smtp::SmtpServer;

pub(crate) const CONFIRM_PAGE: &str = "https://auth.example.test/auth/pages/confirm-email?token=";
pub(crate) const REVERT_PAGE: &str = "https://auth.example.test/auth/pages/revert-email?token=";
const REFUSED_REFRESH: &str = "The refresh token is invalid, expired or revoked.";

on_every_backend!(
    a_reset_ends_every_session,
    a_password_change_ends_the_other_sessions_and_voids_reset_links,
    a_passwordless_account_sets_a_first_password_after_a_recent_sign_in,
    an_email_change_is_confirmed_by_the_new_address_and_reverted_by_the_old,
    an_email_change_to_a_taken_address_answers_alike_and_fails_at_confirmation,
    concurrent_confirmations_of_one_link_change_the_email_once,
    registration_requiring_verified_email_answers_alike,
);

async fn post_bearer(app: &TestApp, path: &str, token: &str, body: &Value) -> (StatusCode, Value) {
    let res = app
        .client
        .post(app.url(path))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap();
    read(res).await
}

/// POSTs a page's form with the token of its link.
async fn press(app: &TestApp, link: &str) -> (StatusCode, String) {
    let (page, token) = link.split_once("?token=").unwrap();
    let path = page.strip_prefix(PUBLIC_URL).unwrap();
    let res = app
        .client
        .post(app.url(path))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={token}"))
        .send()
        .await
        .unwrap();
    (res.status(), res.text().await.unwrap())
}

/// Both tokens of a sign-in are refused.
async fn assert_signed_out(app: &TestApp, signed_in: &Value) {
    let (status, body) = app.me(signed_in["token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, body) = app
        .refresh(signed_in["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["message"], REFUSED_REFRESH);
}

async fn a_reset_ends_every_session(backend: Backend) {
    let smtp = SmtpServer::start().await;
    let app = TestApp::spawn_with(backend, with_mail(&smtp)).await;
    let address = email();
    let first = app.signed_up(&address, "old-password-1").await;
    let (status, second) = app.login(&address, "old-password-1").await;
    assert_eq!(status, StatusCode::OK, "{second}");
    // A refreshed pair too: the rotation's successor dies with its session.
    let (status, third) = app.refresh(second["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{third}");

    forgot(&app, &address).await;
    let token = token_of(&links(&smtp, RESET_PAGE, 1).await[0]);
    let (status, reset) = app
        .post_json(
            "/auth/password/reset",
            &json!({ "token": token, "password": "new-password-2" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{reset}");

    for old in [&first, &second, &third] {
        assert_signed_out(&app, old).await;
    }
    let (status, me) = app.me(reset["token"].as_str().unwrap()).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the reset's own session lives: {me}"
    );
    let (status, body) = app.refresh(reset["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app.login(&address, "old-password-1").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, body) = app.login(&address, "new-password-2").await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn a_password_change_ends_the_other_sessions_and_voids_reset_links(backend: Backend) {
    let smtp = SmtpServer::start().await;
    let app = TestApp::spawn_with(backend, with_mail(&smtp)).await;
    let address = email();
    let first = app.signed_up(&address, "old-password-1").await;
    let (_, other) = app.login(&address, "old-password-1").await;
    forgot(&app, &address).await;
    let stale = token_of(&links(&smtp, RESET_PAGE, 1).await[0]);
    let token = first["token"].as_str().unwrap();

    for (body, status, message) in [
        (
            json!({ "new_password": "new-password-2" }),
            StatusCode::FORBIDDEN,
            "The current password is wrong.",
        ),
        (
            json!({ "current_password": "wrong-password", "new_password": "new-password-2" }),
            StatusCode::FORBIDDEN,
            "The current password is wrong.",
        ),
        (
            json!({ "current_password": "old-password-1" }),
            StatusCode::BAD_REQUEST,
            "The 'new_password' field is required and was not provided.",
        ),
    ] {
        let (got, reply) = post_bearer(&app, "/auth/password/change", token, &body).await;
        assert_eq!(got, status, "{body}: {reply}");
        assert_eq!(reply["message"], message, "{body}");
    }
    let (status, body) = post_bearer(
        &app,
        "/auth/password/change",
        token,
        &json!({ "current_password": "old-password-1", "new_password": "short" }),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    let (status, body) = post_bearer(
        &app,
        "/auth/password/change",
        token,
        &json!({ "current_password": "old-password-1", "new_password": "new-password-2" }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["message"],
        "Your password is changed; every other session is signed out."
    );
    let (status, me) = app.me(token).await;
    assert_eq!(status, StatusCode::OK, "this session lives on: {me}");
    assert_signed_out(&app, &other).await;

    // The reset link mailed before the change is void (Keycloak #26815).
    let (status, body) = app
        .post_json(
            "/auth/password/reset",
            &json!({ "token": stale, "password": "new-password-3" }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["message"], INVALID_LINK);
    let (status, _) = app.login(&address, "old-password-1").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = app.login(&address, "new-password-2").await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // The owner is told.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let received = smtp.received();
        let notices: Vec<_> = to(&received, &address)
            .into_iter()
            .filter(|m| m.subject().contains("password was changed"))
            .collect();
        if !notices.is_empty() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no notice mail");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn a_passwordless_account_sets_a_first_password_after_a_recent_sign_in(backend: Backend) {
    // OwnID on: the passwordless accounts are registered with OwnID data.
    let app = TestApp::spawn_with(backend, |s| {
        crate::ownid::with_secrets(&[crate::ownid::SECRET])(s);
        s.accounts.reauth_window_secs = 2;
    })
    .await;
    let address = email();
    let token = app.registered_passwordless(&address, "ownid-data").await;
    let old = app.registered_passwordless(&email(), "ownid-data").await;
    let (status, body) = post_bearer(
        &app,
        "/auth/password/change",
        &token,
        &json!({ "new_password": "first-password-1" }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app.login(&address, "first-password-1").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Now it has one, the next change needs it.
    let (status, body) = post_bearer(
        &app,
        "/auth/password/change",
        &token,
        &json!({ "new_password": "second-password-2" }),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["message"], "The current password is wrong.");

    tokio::time::sleep(Duration::from_millis(3100)).await;
    let (status, body) = post_bearer(
        &app,
        "/auth/password/change",
        &old,
        &json!({ "new_password": "first-password-1" }),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(
        body["message"],
        "Sign in again to do this: your last sign-in is too long ago."
    );
}

async fn an_email_change_is_confirmed_by_the_new_address_and_reverted_by_the_old(backend: Backend) {
    let smtp = SmtpServer::start().await;
    let app = TestApp::spawn_with(backend, with_mail(&smtp)).await;
    let (old, new) = (email(), email());
    let signed_up = app.signed_up(&old, "password-1234").await;
    let token = signed_up["token"].as_str().unwrap();

    let (status, body) = post_bearer(
        &app,
        "/auth/email/change",
        token,
        &json!({ "new_email": old }),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["message"], "That is the account's address already.");
    let (status, body) = post_bearer(
        &app,
        "/auth/email/change",
        token,
        &json!({ "new_email": new }),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(
        body["message"],
        "A link to confirm the new address is on its way to it. Nothing changes until it is followed."
    );
    let confirm = links(&smtp, CONFIRM_PAGE, 1).await.remove(0);
    let received = smtp.received();
    let mail = to(&received, &new)
        .into_iter()
        .find(|m| m.link(CONFIRM_PAGE).is_some())
        .expect("the confirmation goes to the new address");
    assert!(
        !mail.decoded().contains(&old),
        "the old address is not shown to the new one"
    );

    // Scanners open the page: nothing changes until the form is sent.
    for _ in 0..3 {
        let res = open(&app, &confirm).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["referrer-policy"], "no-referrer");
        assert_eq!(res.headers()["cache-control"], "no-store");
        let html = res.text().await.unwrap();
        assert!(html.contains("action=\"confirm-email\""), "{html}");
    }
    let (_, me) = app.me(token).await;
    assert_eq!(me["email"], old, "{me}");
    let (status, html) = press(&app, &confirm).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(
        html.contains("Your new email address is confirmed"),
        "{html}"
    );
    let (status, me) = app.me(token).await;
    assert_eq!(status, StatusCode::OK, "the session lives on: {me}");
    assert_eq!(me["email"], new, "{me}");
    assert_eq!(me["email_verified"], true, "{me}");
    let (status, _) = press(&app, &confirm).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "single use");
    let (status, body) = app.login(&new, "password-1234").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = app.login(&old, "password-1234").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // The old address is told, with a link that undoes it and ends every session.
    let revert = links(&smtp, REVERT_PAGE, 1).await.remove(0);
    let received = smtp.received();
    let notice = to(&received, &old)
        .into_iter()
        .find(|m| m.link(REVERT_PAGE).is_some())
        .expect("the revert link goes to the old address");
    assert!(notice.decoded().contains(&new), "{}", notice.decoded());
    let (status, body) = app
        .post_json("/auth/email/revert", &json!({ "token": "x".repeat(43) }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["message"], INVALID_LINK);
    let revert_token = revert.split_once("?token=").unwrap().1;
    let (status, body) = app
        .post_json("/auth/email/revert", &json!({ "token": revert_token }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_signed_out(&app, &signed_up).await;
    let (status, body) = app.login(&old, "password-1234").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, me) = app.me(body["token"].as_str().unwrap()).await;
    assert_eq!(me["email"], old, "{me}");
    // Back with the verification it had: this address was never verified.
    assert_eq!(me["email_verified"], false, "{me}");
    let (status, _) = press(&app, &revert).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "single use");
}

async fn an_email_change_to_a_taken_address_answers_alike_and_fails_at_confirmation(
    backend: Backend,
) {
    let smtp = SmtpServer::start().await;
    let app = TestApp::spawn_with(backend, |s| {
        with_mail(&smtp)(s);
        s.mail.per_minute = 10;
    })
    .await;
    let (mine, taken, free) = (email(), email(), email());
    let token = app.registered(&mine, "password-1234").await;
    app.registered(&taken, "password-5678").await;
    let mut answers = Vec::new();
    for address in [&taken, &free] {
        answers.push(
            post_bearer(
                &app,
                "/auth/email/change",
                &token,
                &json!({ "new_email": address }),
            )
            .await,
        );
    }
    assert_eq!(
        answers[0], answers[1],
        "the same answer for a taken and a free address"
    );
    assert_eq!(answers[0].0, StatusCode::ACCEPTED);
    links(&smtp, CONFIRM_PAGE, 2).await;
    let received = smtp.received();
    let link_to = |address: &str| {
        to(&received, address)
            .iter()
            .find_map(|m| m.link(CONFIRM_PAGE))
            .expect("a confirmation link")
    };
    let (to_taken, to_free) = (link_to(&taken), link_to(&free));
    // The second request voided the first link.
    let (status, _) = press(&app, &to_taken).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = press(&app, &to_free).await;
    assert_eq!(status, StatusCode::OK);

    // A link to an address another account has fails when followed, and stays unused.
    let (status, _) = post_bearer(
        &app,
        "/auth/email/change",
        &token,
        &json!({ "new_email": taken }),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let link = links(&smtp, CONFIRM_PAGE, 3).await.remove(2);
    let confirm_token = link.split_once("?token=").unwrap().1;
    for _ in 0..2 {
        let (status, body) = app
            .post_json("/auth/email/confirm", &json!({ "token": confirm_token }))
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(body["message"], "Another account has this address now.");
    }
    let (_, me) = app.me(&token).await;
    assert_eq!(me["email"], free, "{me}");
}

async fn concurrent_confirmations_of_one_link_change_the_email_once(backend: Backend) {
    let smtp = SmtpServer::start().await;
    let app = TestApp::spawn_with(backend, with_mail(&smtp)).await;
    let (old, new) = (email(), email());
    let token = app.registered(&old, "password-1234").await;
    let (status, _) = post_bearer(
        &app,
        "/auth/email/change",
        &token,
        &json!({ "new_email": new }),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let link = links(&smtp, CONFIRM_PAGE, 1).await.remove(0);
    let confirm_token = link.split_once("?token=").unwrap().1.to_owned();
    let body = json!({ "token": confirm_token });
    let attempts = (0..20).map(|_| app.post_json("/auth/email/confirm", &body));
    let results = futures::future::join_all(attempts).await;
    let won = results.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    assert_eq!(won, 1, "{results:?}");
    for (status, body) in results.iter().filter(|(s, _)| *s != StatusCode::OK) {
        assert_eq!(*status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["message"], INVALID_LINK);
    }
    // One revert link went out, for the one change.
    links(&smtp, REVERT_PAGE, 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let reverts = smtp
        .received()
        .iter()
        .filter(|m| m.link(REVERT_PAGE).is_some())
        .count();
    assert_eq!(reverts, 1);
}

async fn registration_requiring_verified_email_answers_alike(backend: Backend) {
    let smtp = SmtpServer::start().await;
    let app = TestApp::spawn_with(backend, |s| {
        with_mail(&smtp)(s);
        s.accounts.require_verified_email = true;
    })
    .await;
    let address = email();
    let first = app.register(&address, "password-1234").await;
    let again = app.register(&address, "another-password").await;
    assert_eq!(first.0, StatusCode::ACCEPTED, "{}", first.1);
    assert_eq!(
        first, again,
        "the same answer for a new and a registered address"
    );
    assert_eq!(
        first.1,
        json!({"message": "Check your mailbox: we sent a mail to this address. Follow its link to go on."})
    );
    let link = links(&smtp, VERIFY_PAGE, 1).await.remove(0);
    // The owner of the registered address learns that someone tried.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !smtp
        .received()
        .iter()
        .any(|m| m.to == [address.clone()] && m.subject().contains("Someone tried to register"))
    {
        assert!(std::time::Instant::now() < deadline, "no attempt notice");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let (status, body) = app.login(&address, "password-1234").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(
        body["message"],
        "Verify your email address first: follow the link mailed to it."
    );
    let (status, body) = app.login(&address, "another-password").await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the second registration changed nothing: {body}"
    );
    let (status, _) = press(&app, &link).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app.login(&address, "password-1234").await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
