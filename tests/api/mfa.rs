//! The second factor, and each way around it the peers' trackers recorded, refused:
//! every first factor ends in `mfa_required` (Kratos skipped it after a code login;
//! Authentik's recovery flow did), an `mfa_token` alone gets no tokens, a time step is
//! accepted once even by concurrent requests on two nodes and the enrolment's code does
//! not sign in (Hanko), a refresh keeps `amr` (Supabase), guesses are limited, and a
//! session of the first factor alone can neither enroll nor replace a factor (Keycloak).
//!
//! The codes come from `oathtool` (OATH Toolkit, `scripts/oathtool.sh` installs it), a
//! generator independent of the server's.

use std::process::Command;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use softpasskey::Authenticator;

use crate::helpers::{Backend, TestApp, email, jwt_parts, read};
use crate::mail::{RESET_PAGE, forgot, links, token_of, with_mail};
use crate::ownid::{SECRET, SESSION, call, with_secrets};
use crate::passkeys::ORIGIN;
use crate::selfkey::{MOUNT, TestWallet, login_token, post_login, wallet_token};
use crate::smtp::SmtpServer;

crate::on_every_backend!(
    enrolment_is_confirmed_by_a_code_and_then_a_password_sign_in_owes_it,
    every_first_factor_ends_in_mfa_required,
    an_mfa_token_alone_gets_no_tokens_anywhere,
    a_password_reset_keeps_the_second_factor,
    a_refresh_keeps_amr_and_acr_exactly,
    a_replayed_step_is_refused,
    twenty_concurrent_verifies_of_one_code_on_two_nodes_sign_in_once,
    the_enrolment_code_does_not_sign_in,
    a_recovery_code_signs_in_once_and_mails_the_owner,
    guesses_are_limited_per_pending_sign_in_and_per_account,
    a_used_step_spends_an_attempt_and_a_pending_sign_in_signs_in_once,
    every_sensitive_route_needs_the_second_factor,
    a_first_factor_session_cannot_enroll_or_replace_a_factor,
    a_passkey_sign_in_is_two_factors_by_itself,
    require_mfa_enrols_before_any_session,
    support_resets_the_factors_ends_the_sessions_and_mails_the_owner,
    a_rotated_jwt_secret_still_opens_the_sealed_totp_secrets,
    a_passkey_is_the_second_factor_after_a_password,
);

pub(crate) const PASSWORD: &str = "password123";

/// The code of `secret` (base32) for the time `at` (Unix seconds), from `oathtool`.
pub(crate) fn oath_code(secret: &str, at: i64) -> String {
    let out = Command::new("oathtool")
        .args(["--totp", "-b", "-N", &format!("@{at}"), secret])
        .output()
        .expect("oathtool runs (scripts/oathtool.sh installs it)");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Now, a few seconds clear of a step's end, so that the codes of the step before,
/// this one and the next are all within the server's drift while the test runs.
pub(crate) async fn clear_of_a_step_end() -> i64 {
    let now = gatehouse::domain::unix_now();
    if 30 - now % 30 < 5 {
        tokio::time::sleep(Duration::from_secs((30 - now % 30) as u64 + 1)).await;
    }
    gatehouse::domain::unix_now()
}

async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = app.client.request(method, app.url(path));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    read(req.send().await.unwrap()).await
}

async fn post(app: &TestApp, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
    send(app, Method::POST, path, token, Some(body)).await
}

/// Enrolls and confirms a TOTP authenticator with the session `token`, confirming with
/// the code of the step before now (so that now's and the next step's codes are left
/// for sign-ins). The secret (base32) and the recovery codes.
pub(crate) async fn enrolled(app: &TestApp, token: &str) -> (String, Vec<String>) {
    let (status, body) = send(app, Method::POST, "/auth/mfa/totp", Some(token), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let secret = body["secret"].as_str().unwrap().to_owned();
    let now = clear_of_a_step_end().await;
    let (status, body) = post(
        app,
        "/auth/mfa/totp/confirm",
        Some(token),
        json!({"code": oath_code(&secret, now - 30)}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let codes = body["recovery_codes"].as_array().unwrap();
    let codes = codes.iter().map(|c| c.as_str().unwrap().to_owned());
    (secret, codes.collect())
}

/// An account with a password and a confirmed authenticator: its email and secret.
pub(crate) async fn enrolled_account(app: &TestApp) -> (String, String) {
    let address = email();
    let token = app.registered(&address, PASSWORD).await;
    let (secret, _) = enrolled(app, &token).await;
    (address, secret)
}

/// Asserts `body` is the `mfa_required` answer (no token of any kind); its `mfa_token`.
fn assert_mfa_required(status: StatusCode, body: &Value, what: &str) -> String {
    assert_eq!(status, StatusCode::OK, "{what}: {body}");
    assert_eq!(body["mfa_required"], json!(true), "{what}: {body}");
    assert_eq!(
        body["methods"],
        json!(["totp", "recovery_code"]),
        "{what}: {body}"
    );
    for field in ["token", "refresh_token", "access_token", "id_token"] {
        assert!(body.get(field).is_none(), "{what} answered {field}: {body}");
    }
    body["mfa_token"].as_str().unwrap().to_owned()
}

async fn password_pending(app: &TestApp, address: &str) -> String {
    let (status, body) = app.login(address, PASSWORD).await;
    assert_mfa_required(status, &body, "password")
}

async fn verify(app: &TestApp, mfa_token: &str, code: &str) -> (StatusCode, Value) {
    post(
        app,
        "/auth/mfa/verify",
        None,
        json!({"mfa_token": mfa_token, "code": code}),
    )
    .await
}

fn amr(token: &str) -> Value {
    jwt_parts(token).1["amr"].clone()
}

fn assert_refused(status: StatusCode, body: &Value, code: &str, what: &str) {
    let expected = match code {
        "enrollment_required" | "second_factor_required" => StatusCode::FORBIDDEN,
        // "invalid_code", "invalid_mfa_token", "passkey_refused": 401.
        "not_enrolled" => StatusCode::NOT_FOUND,
        "already_enrolled" => StatusCode::CONFLICT,
        _ => StatusCode::UNAUTHORIZED,
    };
    assert_eq!(status, expected, "{what}: {body}");
    assert_eq!(body["error"], code, "{what}: {body}");
}

async fn enrolment_is_confirmed_by_a_code_and_then_a_password_sign_in_owes_it(b: Backend) {
    let app = TestApp::spawn(b).await;
    let address = email();
    let token = app.registered(&address, PASSWORD).await;
    let (status, body) = send(&app, Method::POST, "/auth/mfa/totp", Some(&token), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let uri = body["otpauth_uri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/gatehouse:"), "{uri}");
    assert!(uri.contains("issuer=gatehouse"), "{uri}");
    // SHA-1, 6 digits, 30 s: the URI's defaults, so none is named.
    for part in ["algorithm=", "digits=", "period="] {
        assert!(!uri.contains(part), "{part}: {uri}");
    }
    assert!(uri.contains(&format!("secret={}", body["secret"].as_str().unwrap())));
    assert!(body["qr_svg"].as_str().unwrap().contains("<svg"), "{body}");
    // Not a factor before it is confirmed: a sign-in still gets its tokens.
    let (status, body_login) = app.login(&address, PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body_login}");
    assert!(body_login["token"].is_string(), "{body_login}");
    let (status, factors) = read(app.get("/auth/mfa", Some(&token)).await).await;
    assert_eq!(status, StatusCode::OK, "{factors}");
    assert_eq!(
        factors,
        json!({"totp": false, "recovery_codes_left": 0, "passkeys": 0})
    );
    // A wrong code does not confirm it.
    let (status, wrong) = post(
        &app,
        "/auth/mfa/totp/confirm",
        Some(&token),
        json!({"code": "000000"}),
    )
    .await;
    assert_refused(status, &wrong, "invalid_code", "a wrong confirmation");
    // A new enrolment replaces the unconfirmed one: the first secret's codes stop.
    let first = body["secret"].as_str().unwrap().to_owned();
    let (secret, codes) = enrolled(&app, &token).await;
    assert_ne!(secret, first);
    assert_eq!(codes.len(), 10);
    let (status, factors) = read(app.get("/auth/mfa", Some(&token)).await).await;
    assert_eq!(status, StatusCode::OK, "{factors}");
    assert_eq!(
        factors,
        json!({"totp": true, "recovery_codes_left": 10, "passkeys": 0})
    );
    let (status, me) = app.me(&token).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(
        me["second_factors"],
        json!({"totp": true, "recovery_codes_left": 10})
    );
    assert!(!me.to_string().contains(&secret), "{me}");

    let mfa_token = password_pending(&app, &address).await;
    let now = clear_of_a_step_end().await;
    let (status, body) = verify(&app, &mfa_token, &oath_code(&secret, now)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["token"].as_str().unwrap();
    assert_eq!(amr(token), json!(["pwd", "otp", "mfa"]));
    assert_eq!(jwt_parts(token).1["acr"], "aal2");
    assert_eq!(app.me(token).await.0, StatusCode::OK);
}

async fn every_first_factor_ends_in_mfa_required(b: Backend) {
    let smtp = SmtpServer::start().await;
    let mail = with_mail(&smtp);
    let app = TestApp::spawn_with(b, |s| {
        mail(s);
        with_secrets(&[SECRET])(s);
    })
    .await;

    // Password.
    let (address, _) = enrolled_account(&app).await;
    password_pending(&app, &address).await;

    // OwnID: its cloud asks for a session of a passwordless account.
    let ownid_address = email();
    let ownid_token = app
        .registered_passwordless(&ownid_address, "credential")
        .await;
    enrolled(&app, &ownid_token).await;
    let reply = call(&app, SESSION, json!({"loginId": ownid_address})).await;
    assert_mfa_required(reply.status, &reply.json(), "OwnID");

    // Sign-In with Ethereum.
    let wallet = TestWallet::random();
    let (status, body) = crate::siwe::signed_in_as(&app, &wallet).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    enrolled(&app, body["token"].as_str().unwrap()).await;
    let (status, body) = crate::siwe::signed_in_as(&app, &wallet).await;
    assert_mfa_required(status, &body, "SIWE");

    // Login with SelfKey: the login token is redeemed, but no session and no cookie.
    let selfkey_wallet = TestWallet::random();
    crate::selfkey::signed_up(&app, &selfkey_wallet, &email()).await;
    let (session, _) = crate::selfkey::sign_in(&app, &selfkey_wallet).await;
    enrolled(&app, &session).await;
    let wallet_bearer = wallet_token(&app, &selfkey_wallet).await;
    let (status, body) = login_token(&app, &wallet_bearer, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let res = app
        .client
        .post(app.url(&format!("{MOUNT}/login")))
        .json(&json!({"token": body["token"]}))
        .send()
        .await
        .unwrap();
    assert!(res.headers().get("set-cookie").is_none(), "{res:?}");
    let (status, body) = read(res).await;
    assert_mfa_required(status, &body, "SelfKey");
    // The login token was used: it does not start a session a second time.
    let (status, again) = post_login(&app, &json!({"token": body["token"]})).await;
    assert_ne!(status, StatusCode::CREATED, "{again}");
    assert!(again.get("token").is_none(), "{again}");

    // Each pending sign-in completes with a code, as the password's does.
    let (status, body) = crate::siwe::signed_in_as(&app, &wallet).await;
    let mfa_token = assert_mfa_required(status, &body, "SIWE");
    let (status, body) = verify(&app, &mfa_token, "999999").await;
    assert_refused(status, &body, "invalid_code", "a wrong code after SIWE");
}

async fn an_mfa_token_alone_gets_no_tokens_anywhere(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (address, _) = enrolled_account(&app).await;
    let mfa_token = password_pending(&app, &address).await;
    // Not an account token, not a refresh token, not a code.
    let (status, _) = app.me(&mfa_token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = app.refresh(&mfa_token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body.get("token").is_none(), "{body}");
    let (status, body) = send(&app, Method::POST, "/auth/mfa/totp", Some(&mfa_token), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    // As an enrolment's token: only a sign-in that must enroll may.
    let (status, body) = post(
        &app,
        "/auth/mfa/totp",
        None,
        json!({"mfa_token": mfa_token}),
    )
    .await;
    assert_refused(status, &body, "invalid_mfa_token", "enrolling");
    for code in ["", "12345", "abcdef", "1234567"] {
        let (status, body) = verify(&app, &mfa_token, code).await;
        assert_refused(status, &body, "invalid_code", code);
    }
    // No code at all.
    let (status, body) = post(
        &app,
        "/auth/mfa/verify",
        None,
        json!({"mfa_token": mfa_token}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.get("token").is_none(), "{body}");
    // An unknown token.
    let (status, body) = verify(&app, &"0".repeat(32), "123456").await;
    assert_refused(status, &body, "invalid_mfa_token", "an unknown mfa_token");
}

async fn a_password_reset_keeps_the_second_factor(b: Backend) {
    let smtp = SmtpServer::start().await;
    let app = TestApp::spawn_with(b, with_mail(&smtp)).await;
    let (address, secret) = enrolled_account(&app).await;
    let (status, body) = forgot(&app, &address).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let link = links(&smtp, RESET_PAGE, 1).await.remove(0);
    let (status, body) = post(
        &app,
        "/auth/password/reset",
        None,
        json!({"token": token_of(&link), "password": "a-new-password"}),
    )
    .await;
    let mfa_token = assert_mfa_required(status, &body, "reset");
    // The factor is still there: the new password alone does not sign in either.
    let (status, body) = app.login(&address, "a-new-password").await;
    assert_mfa_required(status, &body, "password after the reset");
    let now = clear_of_a_step_end().await;
    let (status, body) = verify(&app, &mfa_token, &oath_code(&secret, now)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, factors) = read(
        app.get("/auth/mfa", Some(body["token"].as_str().unwrap()))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{factors}");
    assert_eq!(factors["totp"], json!(true));
}

async fn a_refresh_keeps_amr_and_acr_exactly(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (address, secret) = enrolled_account(&app).await;
    let mfa_token = password_pending(&app, &address).await;
    let now = clear_of_a_step_end().await;
    let (status, body) = verify(&app, &mfa_token, &oath_code(&secret, now)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let first = jwt_parts(body["token"].as_str().unwrap()).1;
    let (status, refreshed) = app.refresh(body["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    let second = jwt_parts(refreshed["token"].as_str().unwrap()).1;
    assert_eq!(second["amr"], json!(["pwd", "otp", "mfa"]));
    assert_eq!(
        (&second["amr"], &second["acr"]),
        (&first["amr"], &first["acr"])
    );
    assert_eq!(second["auth_time"], first["auth_time"]);
    // A session of one factor is refreshed as one factor: never raised.
    let other = email();
    let token = app.signed_up(&other, PASSWORD).await;
    assert_eq!(amr(token["token"].as_str().unwrap()), json!(["pwd"]));
    let (status, refreshed) = app.refresh(token["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    let claims = jwt_parts(refreshed["token"].as_str().unwrap()).1;
    assert_eq!(
        (&claims["amr"], &claims["acr"]),
        (&json!(["pwd"]), &json!("aal1"))
    );
}

async fn a_replayed_step_is_refused(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (address, secret) = enrolled_account(&app).await;
    let now = clear_of_a_step_end().await;
    let code = oath_code(&secret, now);
    let first = password_pending(&app, &address).await;
    let (status, body) = verify(&app, &first, &code).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The same code on a new sign-in: its step was used.
    let second = password_pending(&app, &address).await;
    let (status, body) = verify(&app, &second, &code).await;
    assert_refused(status, &body, "invalid_code", "a replayed code");
    // An older step (still within the drift) is refused too; a newer one is not.
    let (status, body) = verify(&app, &second, &oath_code(&secret, now - 30)).await;
    assert_refused(status, &body, "invalid_code", "an older step");
    let (status, body) = verify(&app, &second, &oath_code(&secret, now + 30)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The first sign-in's token was used: it does not sign in again.
    let (status, body) = verify(&app, &first, &oath_code(&secret, now + 30)).await;
    assert_refused(status, &body, "invalid_mfa_token", "a used mfa_token");
}

async fn twenty_concurrent_verifies_of_one_code_on_two_nodes_sign_in_once(b: Backend) {
    let app = TestApp::spawn(b).await;
    let other = app.another_node().await;
    let (address, secret) = enrolled_account(&app).await;
    let mut pending = Vec::new();
    for _ in 0..20 {
        pending.push(password_pending(&app, &address).await);
    }
    let now = clear_of_a_step_end().await;
    let code = oath_code(&secret, now);
    let answers = futures::future::join_all(pending.iter().enumerate().map(|(i, t)| {
        let node = if i % 2 == 0 { &app } else { &other };
        verify(node, t, &code)
    }))
    .await;
    let signed_in = answers
        .iter()
        .filter(|(status, body)| *status == StatusCode::OK && body["token"].is_string())
        .count();
    assert_eq!(signed_in, 1, "{answers:?}");
    for (status, body) in answers.iter().filter(|(s, _)| *s != StatusCode::OK) {
        assert_refused(*status, body, "invalid_code", "a concurrent replay");
    }
}

async fn the_enrolment_code_does_not_sign_in(b: Backend) {
    let app = TestApp::spawn(b).await;
    let address = email();
    let token = app.registered(&address, PASSWORD).await;
    let (status, body) = send(&app, Method::POST, "/auth/mfa/totp", Some(&token), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let secret = body["secret"].as_str().unwrap().to_owned();
    let now = clear_of_a_step_end().await;
    let code = oath_code(&secret, now);
    let (status, body) = post(
        &app,
        "/auth/mfa/totp/confirm",
        Some(&token),
        json!({"code": code}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mfa_token = password_pending(&app, &address).await;
    let (status, body) = verify(&app, &mfa_token, &code).await;
    assert_refused(status, &body, "invalid_code", "the enrolment's code");
}

async fn a_recovery_code_signs_in_once_and_mails_the_owner(b: Backend) {
    let smtp = SmtpServer::start().await;
    let app = TestApp::spawn_with(b, with_mail(&smtp)).await;
    let address = email();
    let token = app.registered(&address, PASSWORD).await;
    let (_, codes) = enrolled(&app, &token).await;
    let before = smtp.received().len();
    let mfa_token = password_pending(&app, &address).await;
    // As shown, or typed in upper case with spaces.
    let typed = codes[0].to_uppercase().replace('-', " ");
    let (status, body) = verify(&app, &mfa_token, &typed).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        amr(body["token"].as_str().unwrap()),
        json!(["pwd", "otp", "mfa"])
    );
    let (status, factors) = read(
        app.get("/auth/mfa", Some(body["token"].as_str().unwrap()))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{factors}");
    assert_eq!(factors["recovery_codes_left"], 9);
    let mails = smtp.wait_for(before + 1, Duration::from_secs(15)).await;
    let notice = mails.last().unwrap();
    assert!(notice.to.contains(&address), "{:?}", notice.to);
    assert!(
        notice.decoded().contains("recovery code was just used"),
        "{}",
        notice.decoded()
    );
    // Used once: the same code again is refused.
    let again = password_pending(&app, &address).await;
    let (status, body) = verify(&app, &again, &codes[0]).await;
    assert_refused(status, &body, "invalid_code", "a used recovery code");
    // Another code of the set still works.
    let (status, body) = verify(&app, &again, &codes[1]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn guesses_are_limited_per_pending_sign_in_and_per_account(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (address, secret) = enrolled_account(&app).await;
    let mfa_token = password_pending(&app, &address).await;
    for i in 0..5 {
        let (status, body) = verify(&app, &mfa_token, &format!("00000{i}")).await;
        assert_refused(status, &body, "invalid_code", "a wrong code");
    }
    // Five codes taken: the right one is refused, the sign-in is void.
    let now = clear_of_a_step_end().await;
    let (status, body) = verify(&app, &mfa_token, &oath_code(&secret, now)).await;
    assert_refused(status, &body, "invalid_mfa_token", "the sixth code");
    // Over many pending sign-ins the account takes twenty wrong codes, then none.
    for _ in 0..3 {
        let t = password_pending(&app, &address).await;
        for _ in 0..5 {
            let (status, body) = verify(&app, &t, "000000").await;
            assert_refused(status, &body, "invalid_code", "a wrong code");
        }
    }
    let t = password_pending(&app, &address).await;
    let (status, body) = verify(&app, &t, &oath_code(&secret, now)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(body.get("token").is_none(), "{body}");
}

/// The second step's one write counts the attempt whatever becomes of the code: a
/// right code of a used step spends one of the five like a wrong one. And a pending
/// sign-in signs in once, even offered a newer step than the one that signed it in.
async fn a_used_step_spends_an_attempt_and_a_pending_sign_in_signs_in_once(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (address, secret) = enrolled_account(&app).await;
    let now = clear_of_a_step_end().await;
    let used = oath_code(&secret, now);
    let first = password_pending(&app, &address).await;
    let (status, body) = verify(&app, &first, &used).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = verify(&app, &first, &oath_code(&secret, now + 30)).await;
    assert_refused(status, &body, "invalid_mfa_token", "a pending sign-in used");
    let second = password_pending(&app, &address).await;
    for _ in 0..5 {
        let (status, body) = verify(&app, &second, &used).await;
        assert_refused(status, &body, "invalid_code", "a used step");
    }
    let (status, body) = verify(&app, &second, &oath_code(&secret, now + 30)).await;
    assert_refused(
        status,
        &body,
        "invalid_mfa_token",
        "the sixth code, a good one",
    );
}

/// A fresh, recent session of the first factor alone, from before the account's factor
/// was enrolled; and one that gave the second factor.
pub(crate) async fn sessions_with_and_without_the_factor(
    app: &TestApp,
) -> (String, String, String) {
    let address = email();
    let first_only = app.registered(&address, PASSWORD).await;
    let (secret, _) = enrolled(app, &first_only).await;
    let mfa_token = password_pending(app, &address).await;
    let now = clear_of_a_step_end().await;
    let (status, body) = verify(app, &mfa_token, &oath_code(&secret, now)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (
        first_only,
        body["token"].as_str().unwrap().to_owned(),
        secret,
    )
}

async fn every_sensitive_route_needs_the_second_factor(b: Backend) {
    let smtp = SmtpServer::start().await;
    let app = TestApp::spawn_with(b, with_mail(&smtp)).await;
    let (first_only, both, _) = sessions_with_and_without_the_factor(&app).await;
    let link_token = format!("{MOUNT}/link-token");
    let routes: Vec<(Method, &str, Option<Value>)> = vec![
        (
            Method::POST,
            "/auth/email/change",
            Some(json!({"new_email": email()})),
        ),
        (
            Method::POST,
            "/auth/password/change",
            Some(json!({"current_password": PASSWORD, "new_password": "another-one-1"})),
        ),
        (Method::DELETE, "/auth/mfa/totp", None),
        (Method::POST, "/auth/mfa/totp", None),
        (Method::POST, "/auth/mfa/recovery-codes", None),
        (
            Method::POST,
            "/auth/passkeys/register/options",
            Some(json!({})),
        ),
        (Method::POST, &link_token, None),
        (Method::DELETE, "/auth/me", None),
    ];
    for (method, path, body) in routes {
        let (status, answer) = send(&app, method.clone(), path, Some(&first_only), body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {answer}");
        let code = answer.get("code").or(answer.get("error"));
        assert_eq!(
            code,
            Some(&json!("second_factor_required")),
            "{method} {path}: {answer}"
        );
    }
    // Nothing changed; a session that gave the factor passes the same rule.
    let (status, factors) = read(app.get("/auth/mfa", Some(&both)).await).await;
    assert_eq!(status, StatusCode::OK, "{factors}");
    assert_eq!(factors["totp"], json!(true));
    assert_eq!(factors["recovery_codes_left"], 10);
    let (status, body) = send(
        &app,
        Method::POST,
        "/auth/mfa/recovery-codes",
        Some(&both),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["recovery_codes"].as_array().unwrap().len(), 10);
    let (status, body) = send(
        &app,
        Method::POST,
        &format!("{MOUNT}/link-token"),
        Some(&both),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

async fn a_first_factor_session_cannot_enroll_or_replace_a_factor(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (first_only, both, secret) = sessions_with_and_without_the_factor(&app).await;
    // The attacker's session (a stolen password, from before the factor) can neither
    // start a new enrolment, confirm one, nor remove the factor.
    let (status, body) = send(
        &app,
        Method::POST,
        "/auth/mfa/totp",
        Some(&first_only),
        None,
    )
    .await;
    assert_refused(status, &body, "second_factor_required", "enrolling");
    let (status, body) = post(
        &app,
        "/auth/mfa/totp/confirm",
        Some(&first_only),
        json!({"code": "123456"}),
    )
    .await;
    assert_refused(status, &body, "second_factor_required", "confirming");
    let (status, body) = send(
        &app,
        Method::DELETE,
        "/auth/mfa/totp",
        Some(&first_only),
        None,
    )
    .await;
    assert_refused(status, &body, "second_factor_required", "removing");
    // The owner's session with the factor must remove it before enrolling another.
    let (status, body) = send(&app, Method::POST, "/auth/mfa/totp", Some(&both), None).await;
    assert_refused(status, &body, "already_enrolled", "enrolling over a factor");
    let (status, body) = send(&app, Method::DELETE, "/auth/mfa/totp", Some(&both), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, factors) = read(app.get("/auth/mfa", Some(&both)).await).await;
    assert_eq!(status, StatusCode::OK, "{factors}");
    assert_eq!(
        factors,
        json!({"totp": false, "recovery_codes_left": 0, "passkeys": 0})
    );
    // The old secret's codes no longer count: a password sign-in gets its tokens.
    let me = jwt_parts(&both).1;
    assert!(me["email"].is_string(), "{me}");
    let (status, body) = app.login(me["email"].as_str().unwrap(), PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["token"].is_string(), "{body}");
    let _ = secret;
}

async fn a_passkey_sign_in_is_two_factors_by_itself(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (_, both, _) = sessions_with_and_without_the_factor(&app).await;
    let mut authenticator = Authenticator::new(ORIGIN);
    let (status, body) = app
        .register_passkey(&mut authenticator, Some(&both), Some("Laptop"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = app.passkey_login(&mut authenticator).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["token"].as_str().unwrap();
    assert_eq!(amr(token), json!(["hwk", "mfa"]));
    assert_eq!(jwt_parts(token).1["acr"], "aal2");
    let (status, factors) = read(app.get("/auth/mfa", Some(token)).await).await;
    assert_eq!(status, StatusCode::OK, "{factors}");
    assert_eq!(factors["passkeys"], 1);
}

async fn require_mfa_enrols_before_any_session(b: Backend) {
    let app = TestApp::spawn_with(b, |s| s.accounts.require_mfa = true).await;
    let address = email();
    let (status, body) = app.register(&address, PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["methods"], json!(["enroll_totp"]), "{body}");
    assert!(body.get("token").is_none(), "{body}");
    let mfa_token = body["mfa_token"].as_str().unwrap().to_owned();
    // The pending sign-in can only enroll.
    let (status, body) = verify(&app, &mfa_token, "123456").await;
    assert_refused(status, &body, "enrollment_required", "verifying");
    let (status, body) = post(
        &app,
        "/auth/mfa/totp",
        None,
        json!({"mfa_token": mfa_token}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let secret = body["secret"].as_str().unwrap().to_owned();
    let now = clear_of_a_step_end().await;
    let (status, body) = post(
        &app,
        "/auth/mfa/totp/confirm",
        None,
        json!({"mfa_token": mfa_token, "code": oath_code(&secret, now)}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["recovery_codes"].as_array().unwrap().len(), 10);
    assert_eq!(
        amr(body["token"].as_str().unwrap()),
        json!(["pwd", "otp", "mfa"])
    );
    // Used once.
    let (status, body) = post(
        &app,
        "/auth/mfa/totp",
        None,
        json!({"mfa_token": mfa_token}),
    )
    .await;
    assert_refused(status, &body, "invalid_mfa_token", "a used enrolment token");
    // From then on, the account owes its factor like any other.
    let (status, body) = app.login(&address, PASSWORD).await;
    assert_mfa_required(status, &body, "password");
}

async fn support_resets_the_factors_ends_the_sessions_and_mails_the_owner(b: Backend) {
    let smtp = SmtpServer::start().await;
    let app = TestApp::spawn_with(b, with_mail(&smtp)).await;
    let (_, both, _) = sessions_with_and_without_the_factor(&app).await;
    let address = jwt_parts(&both).1["email"].as_str().unwrap().to_owned();
    let run = crate::admin::cli_with(&app, &["users", "show", &address, "--json"], &[]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.json()["second_factors"],
        json!({"totp": true, "recovery_codes_left": 10})
    );
    let before = smtp.received().len();
    let mail = [
        ("GATEHOUSE_MAIL__ENABLED", "true"),
        ("GATEHOUSE_HTTP__PUBLIC_URL", crate::mail::PUBLIC_URL),
    ];
    let run =
        crate::admin::cli_with(&app, &["users", "mfa", "reset", &address, "--json"], &mail).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let done = run.json();
    assert_eq!(done["done"], "mfa_reset", "{done}");
    assert_eq!(done["factor_removed"], true, "{done}");
    assert!(done["sessions_ended"].as_u64().unwrap() >= 2, "{done}");
    // Its sessions ended; its next sign-in owes no factor; its owner was told.
    assert_eq!(app.me(&both).await.0, StatusCode::UNAUTHORIZED);
    let (status, body) = app.login(&address, PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["token"].is_string(), "{body}");
    let mails = smtp.wait_for(before + 1, Duration::from_secs(15)).await;
    let notice = mails.last().unwrap();
    assert!(notice.to.contains(&address), "{:?}", notice.to);
    assert!(
        notice
            .decoded()
            .contains("Support removed the second factor"),
        "{}",
        notice.decoded()
    );
    let run = crate::admin::cli_with(&app, &["users", "show", &address], &[]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("second factor:   -"), "{}", run.stdout);
}

async fn a_rotated_jwt_secret_still_opens_the_sealed_totp_secrets(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (address, secret) = enrolled_account(&app).await;
    let rotated = app
        .spawn_beside(|s| {
            s.jwt.previous_secrets = s.jwt_secret.take().into_iter().collect();
            s.jwt_secret = Some(gatehouse::domain::Secret::new(
                "a-new-secret-0123456789-0123456789-0123456789".into(),
            ));
        })
        .await;
    let mfa_token = password_pending(&rotated, &address).await;
    let now = clear_of_a_step_end().await;
    let (status, body) = verify(&rotated, &mfa_token, &oath_code(&secret, now)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        amr(body["token"].as_str().unwrap()),
        json!(["pwd", "otp", "mfa"])
    );
}

/// A passkey ceremony's assertion by `authenticator`, for `POST /auth/mfa/passkey`.
pub(crate) async fn passkey_assertion(
    app: &TestApp,
    authenticator: &mut Authenticator,
) -> (Value, Value) {
    let (status, body) = post(app, "/auth/passkeys/login/options", None, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let credential = authenticator.get(&body["publicKey"]);
    (body["ceremony"].clone(), credential)
}

async fn a_passkey_is_the_second_factor_after_a_password(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (_, both, _) = sessions_with_and_without_the_factor(&app).await;
    let address = jwt_parts(&both).1["email"].as_str().unwrap().to_owned();
    let mut authenticator = Authenticator::new(ORIGIN);
    let (status, body) = app
        .register_passkey(&mut authenticator, Some(&both), Some("Laptop"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // Another account's passkey is refused, and counts as an attempt.
    let mut stranger = Authenticator::new(ORIGIN);
    app.passkey_account(&mut stranger).await;
    let (status, body) = app.login(&address, PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["methods"], json!(["totp", "recovery_code", "passkey"]));
    let mfa_token = body["mfa_token"].as_str().unwrap().to_owned();
    let (ceremony, credential) = passkey_assertion(&app, &mut stranger).await;
    let (status, body) = post(
        &app,
        "/auth/mfa/passkey",
        None,
        json!({"mfa_token": mfa_token, "ceremony": ceremony, "credential": credential}),
    )
    .await;
    assert_refused(
        status,
        &body,
        "passkey_refused",
        "another account's passkey",
    );
    // The account's own passkey completes the sign-in: two factors.
    let (ceremony, credential) = passkey_assertion(&app, &mut authenticator).await;
    let (status, body) = post(
        &app,
        "/auth/mfa/passkey",
        None,
        json!({"mfa_token": mfa_token, "ceremony": ceremony, "credential": credential}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["token"].as_str().unwrap();
    assert_eq!(amr(token), json!(["pwd", "hwk", "mfa"]));
    assert_eq!(jwt_parts(token).1["acr"], "aal2");
    // Used once.
    let (ceremony, credential) = passkey_assertion(&app, &mut authenticator).await;
    let (status, body) = post(
        &app,
        "/auth/mfa/passkey",
        None,
        json!({"mfa_token": mfa_token, "ceremony": ceremony, "credential": credential}),
    )
    .await;
    assert_refused(status, &body, "invalid_mfa_token", "a used mfa_token");
}
