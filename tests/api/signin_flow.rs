//! The sign-in flow: every route that answers a person's tokens ends in it, so an
//! account the flow refuses gets no token from any of them. Here the refusal is a
//! disabled account's (the second factor of this round will be one more).

use reqwest::StatusCode;
use serde_json::{Value, json};
use softpasskey::Authenticator;

use crate::helpers::{Backend, TestApp, email, jwt_parts};
use crate::mail::{RESET_PAGE, forgot, links, token_of, with_mail};
use crate::ownid::{SECRET, SESSION, call, with_secrets};
use crate::selfkey::{TestWallet, login_token, post_login, sign_in, signed_up, wallet_token};
use crate::smtp::SmtpServer;

crate::on_every_backend!(every_door_refuses_an_account_the_flow_refuses);

/// The account routes' answer to a disabled account.
fn disabled() -> Value {
    json!({"message": "This account is disabled.", "error": "account_disabled"})
}

/// A refusal carries no token of any kind.
fn assert_no_token(body: &Value) {
    for key in ["token", "refresh_token", "device_token"] {
        assert!(body.get(key).is_none(), "{key} in {body}");
    }
}

async fn disable(app: &TestApp, account: &str) {
    let id = gatehouse::domain::AccountId(account.to_owned());
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let ended = app
        .app
        .store
        .admin()
        .disable_account(&id, now)
        .await
        .unwrap();
    assert!(ended.is_some(), "no account {account}");
}

fn sub(token: &str) -> String {
    jwt_parts(token).1["sub"].as_str().unwrap().to_owned()
}

async fn every_door_refuses_an_account_the_flow_refuses(b: Backend) {
    let smtp = SmtpServer::start().await;
    let with_mail = with_mail(&smtp);
    let app = TestApp::spawn_with(b, |s| {
        with_secrets(&[SECRET])(s);
        with_mail(s);
        // SIWE messages of the tests are for the local origin, not the mailed links'.
        s.siwe.domains = vec!["http://localhost:8080".into()];
    })
    .await;
    // A password account (OwnID signs it in too, by its email), with a reset link
    // mailed before it was disabled.
    let alice = email();
    let account = app.signed_up(&alice, "password123").await;
    forgot(&app, &alice).await;
    let reset = token_of(&links(&smtp, RESET_PAGE, 1).await[0]);
    // A wallet's account (SelfKey and SIWE sign the same address in).
    let wallet = TestWallet::random();
    signed_up(&app, &wallet, &email()).await;
    let (wallet_session, _) = sign_in(&app, &wallet).await;
    // A passkey's account.
    let mut authenticator = Authenticator::new(crate::passkeys::ORIGIN);
    let (passkey_token, _) = app.passkey_account(&mut authenticator).await;
    for token in [
        &account["token"].as_str().unwrap().to_owned(),
        &wallet_session,
        &passkey_token,
    ] {
        disable(&app, &sub(token)).await;
    }

    // Password login.
    let (status, body) = app.login(&alice, "password123").await;
    assert_eq!((status, &body), (StatusCode::FORBIDDEN, &disabled()));
    // Password reset: the link works, the sign-in it ends in is refused.
    let (status, body) = app
        .post_json(
            "/auth/password/reset",
            &json!({"token": reset, "password": "new-password-2"}),
        )
        .await;
    assert_eq!((status, &body), (StatusCode::FORBIDDEN, &disabled()));
    // OwnID.
    let reply = call(&app, SESSION, json!({"loginId": alice})).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);
    let body: Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(body, disabled());
    // Login with SelfKey: the wallet proves its key; its login token gets no session.
    let wallet_token = wallet_token(&app, &wallet).await;
    let (status, body) = login_token(&app, &wallet_token, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = post_login(&app, &json!({"token": body["token"]})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["code"], "account_disabled", "{body}");
    assert_no_token(&body);
    // SIWE, the same address.
    let (status, body) = crate::siwe::signed_in_as(&app, &wallet).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["code"], "account_disabled", "{body}");
    assert_no_token(&body);
    // Passkeys.
    let (status, body) = app.passkey_login(&mut authenticator).await;
    assert_eq!((status, &body), (StatusCode::FORBIDDEN, &disabled()));
}
