//! Who may change how an account is reached, and what a recovery takes back: every
//! route that adds or removes a way in needs a recent sign-in (one rule, one code); a
//! wallet link token dies with the session that asked for it; a reset or a revert
//! removes every way in added since the address was last proven, and tells the owner;
//! nothing lands on a disabled account.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use softpasskey::Authenticator;

use crate::changes::{CONFIRM_PAGE, REVERT_PAGE};
use crate::helpers::{Backend, TestApp, email, jwt_parts, read};
use crate::mail::{RESET_PAGE, VERIFY_PAGE, forgot, links, token_of, with_mail};
use crate::ownid::{SECRET, SET, call, with_secrets};
use crate::passkeys::ORIGIN;
use crate::selfkey::{
    MOUNT, TestWallet, email_attributes, link_token, login_token, sign_up, wallet_token,
};
use crate::smtp::SmtpServer;

crate::on_every_backend!(
    every_change_to_how_an_account_is_reached_needs_a_recent_sign_in,
    a_link_token_dies_with_its_session,
    nothing_lands_on_a_disabled_account,
    a_reset_takes_back_what_the_registrant_of_an_unproven_address_added,
    a_reset_keeps_what_came_before_the_address_was_proven,
    a_revert_restores_the_verification_and_takes_back_what_came_since,
);

const RECENT: &str = "recent_sign_in_required";
const SIGN_IN_AGAIN: &str = "Sign in again to do this: your last sign-in is too long ago.";
const WALLET_GONE: &str = "User with provided public key does not exist";

/// A token of the same live session as `token` whose sign-in was `age` seconds ago: what
/// a stolen session refreshed for a while carries.
fn stale(app: &TestApp, token: &str, age: i64) -> String {
    let claims = jwt_parts(token).1;
    let signed_in = gatehouse::domain::unix_now() - age;
    app.app
        .tokens
        .issue(
            gatehouse::crypto::jwt::TokenKind::Account,
            claims["sub"].as_str().unwrap(),
            signed_in,
            3600,
            gatehouse::sessions::AccountClaims {
                email: None,
                email_verified: None,
                sid: claims["sid"].as_str().unwrap().to_string(),
                auth_time: signed_in,
                ..Default::default()
            },
        )
        .0
}

async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = app.client.request(method, app.url(path)).bearer_auth(token);
    if let Some(body) = body {
        req = req.json(&body);
    }
    read(req.send().await.unwrap()).await
}

/// Links `wallet` to the account of `account_token` with a link token; the answer.
async fn link_wallet(app: &TestApp, wallet: &TestWallet, link: &str) -> (StatusCode, Value) {
    let token = wallet_token(app, wallet).await;
    let mut body = email_attributes(&email());
    body["meta"] = json!({ "linkToken": link });
    sign_up(app, &token, &body).await
}

/// Links an address through SIWE with a link token; the answer.
async fn link_siwe(app: &TestApp, wallet: &TestWallet, link: &str) -> (StatusCode, Value) {
    let text = crate::siwe::message(wallet, &crate::siwe::nonce(app).await, |t| t);
    app.post_json(
        "/auth/siwe",
        &json!({"message": text, "signature": wallet.sign(&text, false), "linkToken": link}),
    )
    .await
}

/// The account a wallet signs in to through SelfKey, if any.
async fn selfkey_account(app: &TestApp, wallet: &TestWallet) -> Option<String> {
    let token = wallet_token(app, wallet).await;
    let (status, body) = login_token(app, &token, None).await;
    if status == StatusCode::NOT_FOUND {
        assert_eq!(body["message"], WALLET_GONE);
        return None;
    }
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = crate::selfkey::post_login(app, &json!({"token": body["token"]})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    Some(
        jwt_parts(body["token"].as_str().unwrap()).1["sub"]
            .as_str()
            .unwrap()
            .into(),
    )
}

/// The account a SIWE sign-in of `wallet` lands in.
async fn siwe_account(app: &TestApp, wallet: &TestWallet) -> String {
    let (status, body) = crate::siwe::signed_in_as(app, wallet).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    jwt_parts(body["token"].as_str().unwrap()).1["sub"]
        .as_str()
        .unwrap()
        .into()
}

async fn me(app: &TestApp, token: &str) -> Value {
    let (status, body) = app.me(token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// The sign-in methods `/auth/me` lists, as `method` or `method:address`.
async fn methods(app: &TestApp, token: &str) -> Vec<String> {
    me(app, token).await["sign_in_methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| match m["address"].as_str() {
            Some(a) => format!("{}:{a}", m["method"].as_str().unwrap()),
            None => m["method"].as_str().unwrap().to_string(),
        })
        .collect()
}

async fn every_change_to_how_an_account_is_reached_needs_a_recent_sign_in(b: Backend) {
    let smtp = SmtpServer::start().await;
    let app = TestApp::spawn_with(b, with_mail(&smtp)).await;
    let address = email();
    let fresh = app.registered(&address, "password123").await;
    let wallet = TestWallet::random();
    let (status, body) = link_wallet(&app, &wallet, &link_token(&app, &fresh).await).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let mut authenticator = Authenticator::new(ORIGIN);
    let (status, passkey) = app
        .register_passkey(&mut authenticator, Some(&fresh), Some("Laptop"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{passkey}");
    // A wallet's account has no password: its first one needs a recent sign-in too.
    let lone = TestWallet::random();
    crate::selfkey::signed_up(&app, &lone, &email()).await;
    let (lone_token, _) = crate::selfkey::sign_in(&app, &lone).await;

    // Ten minutes and a second past the sign-in: the session lives, the sign-in is old.
    let old = stale(&app, &fresh, 601);
    let old_lone = stale(&app, &lone_token, 601);
    let before = me(&app, &fresh).await;
    let (ceremony, options) = {
        let (status, body) = app
            .post_json("/auth/passkeys/register/options", &json!({}))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        (body["ceremony"].clone(), body["publicKey"].clone())
    };
    let credential = Authenticator::new(ORIGIN).create(&options);
    let wallets = format!("{MOUNT}/wallets/{}", wallet.address());
    let passkey_path = format!("/auth/passkeys/{}", passkey["id"].as_str().unwrap());
    let routes: Vec<(Method, String, &str, Option<Value>)> = vec![
        (Method::POST, format!("{MOUNT}/link-token"), &old, None),
        (Method::DELETE, wallets, &old, None),
        (
            Method::POST,
            "/auth/passkeys/register/options".into(),
            &old,
            Some(json!({})),
        ),
        (
            Method::POST,
            "/auth/passkeys/register".into(),
            &old,
            Some(json!({"ceremony": ceremony, "credential": credential})),
        ),
        (Method::DELETE, passkey_path, &old, None),
        (
            Method::POST,
            "/auth/email/change".into(),
            &old,
            Some(json!({"new_email": email()})),
        ),
        (Method::DELETE, "/auth/me".into(), &old, None),
        (
            Method::POST,
            "/auth/password/change".into(),
            &old_lone,
            Some(json!({"new_password": "a-first-password"})),
        ),
    ];
    for (method, path, token, body) in routes {
        let (status, answer) = send(&app, method.clone(), &path, token, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {answer}");
        // The same code on every surface: `error` here, `code` on the SelfKey routes.
        let code = answer.get("code").or(answer.get("error"));
        assert_eq!(code, Some(&json!(RECENT)), "{method} {path}: {answer}");
        assert_eq!(answer["message"], SIGN_IN_AGAIN, "{method} {path}");
    }
    // Nothing changed: the same address, wallet and passkey; no email-change mail; the
    // wallet account still without a password.
    let after = me(&app, &fresh).await;
    assert_eq!(after["sign_in_methods"], before["sign_in_methods"]);
    assert_eq!(after["email"], json!(address));
    assert_eq!(
        methods(&app, &lone_token).await,
        [format!("wallet:{}", lone.address())]
    );
    assert!(
        smtp.received()
            .iter()
            .all(|m| !m.decoded().contains("confirm-email"))
    );

    // A fresh sign-in passes the same rule.
    let (status, body) = send(
        &app,
        Method::POST,
        &format!("{MOUNT}/link-token"),
        &fresh,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

async fn a_link_token_dies_with_its_session(b: Backend) {
    let app = TestApp::spawn(b).await;
    let address = email();
    let first = app.registered(&address, "password123").await;
    let (status, second) = app.login(&address, "password123").await;
    assert_eq!(status, StatusCode::OK, "{second}");
    let second = second["token"].as_str().unwrap().to_string();
    let by_first = link_token(&app, &first).await;
    let by_second = link_token(&app, &second).await;
    let kept = link_token(&app, &second).await;
    let (status, body) = app.logout(&first, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");

    // Its session ended: the token links nothing, by SelfKey or by SIWE.
    let wallet = TestWallet::random();
    let (status, body) = link_wallet(&app, &wallet, &by_first).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "invalid_link_token");
    assert_eq!(selfkey_account(&app, &wallet).await, None);
    // A session revoked from another ends its tokens too.
    let sid = jwt_parts(&second).1["sid"].as_str().unwrap().to_string();
    let third = app.login(&address, "password123").await.1["token"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, body) = send(
        &app,
        Method::DELETE,
        &format!("/auth/sessions/{sid}"),
        &third,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body) = link_siwe(&app, &wallet, &by_second).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["code"], "invalid_link_token");
    assert_eq!(
        app.app
            .store
            .wallet_account(&wallet.address())
            .await
            .unwrap(),
        None
    );
    let (status, body) = link_wallet(&app, &wallet, &kept).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "invalid_link_token");
    assert_eq!(selfkey_account(&app, &wallet).await, None);
    // A live session's token links.
    let (status, body) = link_wallet(&app, &wallet, &link_token(&app, &third).await).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

async fn nothing_lands_on_a_disabled_account(b: Backend) {
    let smtp = SmtpServer::start().await;
    let app = TestApp::spawn_with(b, with_mail(&smtp)).await;
    let address = email();
    let token = app.registered(&address, "password123").await;
    let account = gatehouse::domain::AccountId(jwt_parts(&token).1["sub"].as_str().unwrap().into());
    let link = link_token(&app, &token).await;
    forgot(&app, &address).await;
    let reset = token_of(&links(&smtp, RESET_PAGE, 1).await[0]);
    let admin = app.app.store.admin();
    assert!(
        admin
            .disable_account(&account, gatehouse::domain::unix_now())
            .await
            .unwrap()
            .is_some()
    );

    // The link token of a session the disable ended links no wallet.
    let wallet = TestWallet::random();
    let (status, body) = link_wallet(&app, &wallet, &link).await;
    assert!(
        status == StatusCode::FORBIDDEN || status == StatusCode::BAD_REQUEST,
        "{status} {body}"
    );
    assert!(
        body["code"] == "account_disabled" || body["code"] == "invalid_link_token",
        "{body}"
    );
    assert_eq!(
        app.app
            .store
            .wallet_account(&wallet.address())
            .await
            .unwrap(),
        None
    );
    // The reset link is refused and the password stays.
    let (status, body) = app
        .post_json(
            "/auth/password/reset",
            &json!({"token": reset, "password": "new-password-1"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(
        body,
        json!({"message": "This account is disabled.", "error": "account_disabled"})
    );

    assert!(admin.enable_account(&account).await.unwrap());
    let (status, body) = app.login(&address, "new-password-1").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, body) = app.login(&address, "password123").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The link was left as it was: once enabled, it works.
    let (status, body) = app
        .post_json(
            "/auth/password/reset",
            &json!({"token": reset, "password": "new-password-1"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// The attacker registers the victim's address (unverified) and adds every kind of way
/// in; the victim recovers the account by a reset, which takes them all back.
async fn a_reset_takes_back_what_the_registrant_of_an_unproven_address_added(b: Backend) {
    let smtp = SmtpServer::start().await;
    let app = TestApp::spawn_with(b, |s| {
        with_mail(&smtp)(s);
        with_secrets(&[SECRET])(s);
        // The SIWE messages of the tests are for the local site, not the public URL.
        s.siwe.domains = vec!["http://localhost:8080".into()];
    })
    .await;
    let victim = email();
    let token = app.registered(&victim, "attackers-password").await;
    let account = jwt_parts(&token).1["sub"].as_str().unwrap().to_string();
    let selfkey_wallet = TestWallet::random();
    let (status, body) = link_wallet(&app, &selfkey_wallet, &link_token(&app, &token).await).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let siwe_wallet = TestWallet::random();
    let (status, body) = link_siwe(&app, &siwe_wallet, &link_token(&app, &token).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut authenticator = Authenticator::new(ORIGIN);
    let (status, body) = app
        .register_passkey(&mut authenticator, Some(&token), Some("Attacker's key"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    call(
        &app,
        SET,
        json!({"loginId": victim, "ownIdData": "attacker-device"}),
    )
    .await
    .assert_empty(StatusCode::NO_CONTENT, "set");
    let pending_link = link_token(&app, &token).await;
    assert_eq!(
        selfkey_account(&app, &selfkey_wallet).await,
        Some(account.clone())
    );

    forgot(&app, &victim).await;
    let reset = token_of(&links(&smtp, RESET_PAGE, 1).await[0]);
    let (status, signed_in) = app
        .post_json(
            "/auth/password/reset",
            &json!({"token": reset, "password": "victims-password"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{signed_in}");
    let owner = signed_in["token"].as_str().unwrap();

    // Only the new password is left, and the address counts as proven now.
    assert_eq!(methods(&app, owner).await, ["password"]);
    assert_eq!(me(&app, owner).await["email_verified"], true);
    assert_eq!(selfkey_account(&app, &selfkey_wallet).await, None);
    assert_ne!(
        siwe_account(&app, &siwe_wallet).await,
        account,
        "a new account, not the victim's"
    );
    let (status, body) = app.passkey_login(&mut authenticator).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "unknown_credential");
    assert_eq!(
        app.app
            .store
            .ownid_data(&victim.to_lowercase())
            .await
            .unwrap(),
        gatehouse::store::OwnIdLookup::NoData
    );
    // The link token minted before the reset is void.
    let (status, body) = link_wallet(&app, &TestWallet::random(), &pending_link).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "invalid_link_token");

    // The owner is told what went.
    let notice = links_notice(&smtp, &victim).await;
    for what in [
        selfkey_wallet.address(),
        siwe_wallet.address(),
        "Attacker's key".to_string(),
        "sign-in with OwnID".to_string(),
    ] {
        assert!(notice.contains(&what), "{what} in {notice}");
    }
}

/// The text of the removal notice to `to`, once it arrives.
async fn links_notice(smtp: &SmtpServer, to: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        if let Some(m) = smtp
            .received()
            .into_iter()
            .find(|m| m.to.iter().any(|t| t == to) && m.decoded().contains("were removed"))
        {
            return m.decoded();
        }
        assert!(std::time::Instant::now() < deadline, "no removal notice");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn a_reset_keeps_what_came_before_the_address_was_proven(b: Backend) {
    let smtp = SmtpServer::start().await;
    let app = TestApp::spawn_with(b, with_mail(&smtp)).await;
    let address = email();
    let signed_up = app.signed_up(&address, "password123").await;
    let token = signed_up["token"].as_str().unwrap().to_string();
    let owners = TestWallet::random();
    let (status, body) = link_wallet(&app, &owners, &link_token(&app, &token).await).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // The proof comes a second later than the owner's wallet.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let verify = &links(&smtp, VERIFY_PAGE, 1).await[0];
    let token_param = verify.strip_prefix(VERIFY_PAGE).unwrap();
    let (status, body) = app
        .post_json("/auth/verify-email", &json!({"token": token_param}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Then someone with the session adds their own.
    let intruders = TestWallet::random();
    let (status, body) = link_wallet(&app, &intruders, &link_token(&app, &token).await).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    forgot(&app, &address).await;
    let reset = token_of(&links(&smtp, RESET_PAGE, 1).await[0]);
    let (status, signed_in) = app
        .post_json(
            "/auth/password/reset",
            &json!({"token": reset, "password": "new-password-1"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{signed_in}");
    let owner = signed_in["token"].as_str().unwrap();
    assert_eq!(
        methods(&app, owner).await,
        [
            "password".to_string(),
            format!("wallet:{}", owners.address())
        ]
    );
    assert_eq!(selfkey_account(&app, &intruders).await, None);
    let notice = links_notice(&smtp, &address).await;
    assert!(notice.contains(&intruders.address()), "{notice}");
    assert!(!notice.contains(&owners.address()), "{notice}");
}

async fn a_revert_restores_the_verification_and_takes_back_what_came_since(b: Backend) {
    let smtp = SmtpServer::start().await;
    let app = TestApp::spawn_with(b, with_mail(&smtp)).await;
    let old = email();
    // Registered, never verified.
    let token = app.registered(&old, "password123").await;
    let new = email();
    let (status, body) = send(
        &app,
        Method::POST,
        "/auth/email/change",
        &token,
        Some(json!({"new_email": new})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let confirm = links(&smtp, CONFIRM_PAGE, 1).await[0].replace(CONFIRM_PAGE, "");
    let (status, body) = app
        .post_json("/auth/email/confirm", &json!({"token": confirm}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The session that changed it adds a wallet.
    let wallet = TestWallet::random();
    let (status, body) = link_wallet(&app, &wallet, &link_token(&app, &token).await).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let revert = links(&smtp, REVERT_PAGE, 1).await[0].replace(REVERT_PAGE, "");
    let (status, body) = app
        .post_json("/auth/email/revert", &json!({"token": revert}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, signed_in) = app.login(&old, "password123").await;
    assert_eq!(status, StatusCode::OK, "{signed_in}");
    let owner = signed_in["token"].as_str().unwrap();
    let me = me(&app, owner).await;
    assert_eq!(me["email"], json!(old));
    assert_eq!(me["email_verified"], false, "it never was: {me}");
    assert_eq!(methods(&app, owner).await, ["password"]);
    assert_eq!(selfkey_account(&app, &wallet).await, None);
    let notice = links_notice(&smtp, &old).await;
    assert!(notice.contains(&wallet.address()), "{notice}");
}
