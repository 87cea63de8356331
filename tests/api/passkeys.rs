//! Passkeys over HTTP with a software authenticator: registration on a new and on a
//! signed-in account, usernameless sign-in, the list, and every refusal.

use reqwest::StatusCode;
use serde_json::{Value, json};
use softpasskey::Authenticator;

use crate::helpers::{Backend, TestApp, email, jwt_parts, read};

/// The embedded default's origin: passkeys work there without configuration.
pub(crate) const ORIGIN: &str = "http://localhost:8080";

crate::on_every_backend!(
    a_new_account_registers_and_signs_in_usernameless,
    a_finish_is_single_use,
    user_verification_is_required,
    another_origin_is_refused,
    a_password_account_adds_a_passkey,
    a_ceremony_begun_signed_in_needs_that_account,
    adding_a_passkey_needs_a_recent_sign_in,
    the_last_way_in_cannot_be_removed,
    passkeys_are_renamed_and_listed_per_account,
    a_counter_that_goes_back_is_refused,
    concurrent_sign_ins_with_one_counter_accept_exactly_one,
    a_credential_belongs_to_one_account,
    a_ceremony_finishes_on_another_node,
    concurrent_finishes_of_one_ceremony_sign_in_once,
    bad_requests_get_clear_errors,
    with_no_origins_the_origin_is_localhost_on_the_listening_port,
    while_off_no_passkey_route_answers,
);

impl TestApp {
    /// POSTs JSON with an optional Bearer token.
    async fn post_as(&self, path: &str, token: Option<&str>, body: &Value) -> (StatusCode, Value) {
        let mut req = self.client.post(self.url(path)).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        read(req.send().await.unwrap()).await
    }

    async fn send_as(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .client
            .request(method, self.url(path))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(b);
        }
        read(req.send().await.unwrap()).await
    }

    /// Begins a registration; returns the ceremony and the `publicKey` options.
    async fn register_options(&self, token: Option<&str>) -> (String, Value) {
        let (status, body) = self
            .post_as("/auth/passkeys/register/options", token, &json!({}))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        (
            body["ceremony"].as_str().unwrap().to_string(),
            body["publicKey"].clone(),
        )
    }

    /// A whole registration; returns the status and body of the finish.
    pub(crate) async fn register_passkey(
        &self,
        authenticator: &mut Authenticator,
        token: Option<&str>,
        name: Option<&str>,
    ) -> (StatusCode, Value) {
        let (ceremony, options) = self.register_options(token).await;
        let credential = authenticator.create(&options);
        let mut body = json!({"ceremony": ceremony, "credential": credential});
        if let Some(n) = name {
            body["name"] = json!(n);
        }
        self.post_as("/auth/passkeys/register", token, &body).await
    }

    /// A new passkey-only account: its token and its passkey's id.
    pub(crate) async fn passkey_account(
        &self,
        authenticator: &mut Authenticator,
    ) -> (String, String) {
        let (status, body) = self.register_passkey(authenticator, None, None).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        (
            body["session"]["token"].as_str().unwrap().to_string(),
            body["id"].as_str().unwrap().to_string(),
        )
    }

    async fn login_options(&self) -> (String, Value) {
        let (status, body) = self
            .post_json("/auth/passkeys/login/options", &json!({}))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        (
            body["ceremony"].as_str().unwrap().to_string(),
            body["publicKey"].clone(),
        )
    }

    /// A whole usernameless sign-in with the authenticator's newest credential.
    pub(crate) async fn passkey_login(
        &self,
        authenticator: &mut Authenticator,
    ) -> (StatusCode, Value) {
        let (ceremony, options) = self.login_options().await;
        let credential = authenticator.get(&options);
        self.post_json(
            "/auth/passkeys/login",
            &json!({"ceremony": ceremony, "credential": credential}),
        )
        .await
    }

    async fn passkeys_of(&self, token: &str) -> Vec<Value> {
        let (status, body) = read(self.get("/auth/passkeys", Some(token)).await).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["passkeys"].as_array().unwrap().clone()
    }
}

fn sub(token: &str) -> String {
    jwt_parts(token).1["sub"].as_str().unwrap().to_string()
}

fn error_code(body: &Value) -> &str {
    body["error"].as_str().unwrap_or_default()
}

async fn a_new_account_registers_and_signs_in_usernameless(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut authenticator = Authenticator::new(ORIGIN);

    let (ceremony, options) = app.register_options(None).await;
    assert_eq!(ceremony.len(), 32);
    assert_eq!(options["rp"]["id"], "localhost");
    assert_eq!(options["rp"]["name"], "Gatehouse");
    assert_eq!(options["authenticatorSelection"]["residentKey"], "required");
    assert_eq!(
        options["authenticatorSelection"]["userVerification"],
        "required"
    );
    assert!(
        options["pubKeyCredParams"]
            .as_array()
            .unwrap()
            .contains(&json!({"type": "public-key", "alg": -7}))
    );
    let credential = authenticator.create(&options);
    let (status, body) = app
        .post_json(
            "/auth/passkeys/register",
            &json!({"ceremony": ceremony, "credential": credential, "name": "Laptop"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["name"], "Laptop");
    assert!(
        body["created_at"].as_str().unwrap().ends_with('Z'),
        "{body}"
    );
    let token = body["session"]["token"].as_str().unwrap().to_string();
    let account = sub(&token);

    let (status, me) = app.me(&token).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["id"], account.as_str());
    assert_eq!(me["email"], Value::Null);
    let methods = me["sign_in_methods"].as_array().unwrap();
    assert_eq!(methods.len(), 1, "{me}");
    assert_eq!(methods[0]["method"], "passkey");
    assert_eq!(methods[0]["name"], "Laptop");
    assert_eq!(methods[0]["id"], body["id"]);

    let (ceremony, options) = app.login_options().await;
    assert_eq!(options["rpId"], "localhost");
    assert_eq!(options["userVerification"], "required");
    assert!(
        options["allowCredentials"]
            .as_array()
            .is_none_or(|a| a.is_empty()),
        "usernameless: no credentials named, {options}"
    );
    let assertion = authenticator.get(&options);
    let (status, body) = app
        .post_json(
            "/auth/passkeys/login",
            &json!({"ceremony": ceremony, "credential": assertion}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let signed_in = body["token"].as_str().unwrap();
    assert_eq!(sub(signed_in), account);

    let list = app.passkeys_of(signed_in).await;
    assert_eq!(list.len(), 1, "{list:?}");
    let p = &list[0];
    assert_eq!(p["name"], "Laptop");
    assert_eq!(
        p["aaguid"],
        uuid_of(&softpasskey::AAGUID),
        "the AAGUID is stored"
    );
    assert_eq!(p["transports"], json!(["internal", "hybrid"]));
    assert_eq!(p["backup_eligible"], true);
    assert_eq!(p["backup_state"], true);
    assert!(p["last_used_at"].is_string(), "{p}");
    assert_eq!(
        p["credential_id"].as_str().unwrap(),
        credential["id"].as_str().unwrap()
    );
}

fn uuid_of(bytes: &[u8; 16]) -> String {
    let h = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

async fn a_finish_is_single_use(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut authenticator = Authenticator::new(ORIGIN);
    let (ceremony, options) = app.register_options(None).await;
    let body = json!({"ceremony": ceremony, "credential": authenticator.create(&options)});
    let (status, first) = app.post_json("/auth/passkeys/register", &body).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (status, again) = app.post_json("/auth/passkeys/register", &body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{again}");
    assert_eq!(error_code(&again), "ceremony_unknown");

    let (ceremony, options) = app.login_options().await;
    let body = json!({"ceremony": ceremony, "credential": authenticator.get(&options)});
    let (status, first) = app.post_json("/auth/passkeys/login", &body).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let (status, again) = app.post_json("/auth/passkeys/login", &body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{again}");
    assert_eq!(error_code(&again), "ceremony_unknown");
    assert!(again.get("token").is_none());

    // A sign-in ceremony does not finish a registration, nor the other way round.
    let (ceremony, options) = app.login_options().await;
    let body = json!({"ceremony": ceremony, "credential": authenticator.create(&options_for_create(&options))});
    let (status, wrong) = app.post_json("/auth/passkeys/register", &body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{wrong}");
    assert_eq!(error_code(&wrong), "ceremony_unknown");
}

/// Creation options built around a sign-in challenge (a client mixing ceremonies).
fn options_for_create(request: &Value) -> Value {
    json!({
        "rp": {"id": request["rpId"], "name": "x"},
        "user": {"id": "AAAAAAAAAAAAAAAAAAAAAA", "name": "x", "displayName": "x"},
        "challenge": request["challenge"],
    })
}

async fn user_verification_is_required(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut unverified = Authenticator::new(ORIGIN);
    unverified.user_verified = false;
    let (status, body) = app.register_passkey(&mut unverified, None, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(error_code(&body), "user_not_verified");
    assert!(
        body["message"].as_str().unwrap().contains("verif"),
        "{body}"
    );

    let mut authenticator = Authenticator::new(ORIGIN);
    app.passkey_account(&mut authenticator).await;
    authenticator.user_verified = false;
    let (status, body) = app.passkey_login(&mut authenticator).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(error_code(&body), "user_not_verified");
}

async fn another_origin_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for origin in [
        "http://localhost:8081",
        "https://localhost:8080",
        "http://evil.localhost:8080",
    ] {
        let mut elsewhere = Authenticator::new(origin);
        let (status, body) = app.register_passkey(&mut elsewhere, None, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{origin}: {body}");
        assert_eq!(body, wrong_origin(origin, ORIGIN), "{origin}");
    }
    let mut authenticator = Authenticator::new(ORIGIN);
    app.passkey_account(&mut authenticator).await;
    authenticator.origin = "http://localhost:9999".into();
    let (status, body) = app.passkey_login(&mut authenticator).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body, wrong_origin("http://localhost:9999", ORIGIN));

    // The RP is the configuration's, whatever Host the request names.
    let res = app
        .client
        .post(app.url("/auth/passkeys/register/options"))
        .header("host", "attacker.example")
        .header("x-forwarded-host", "attacker.example")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let (status, body) = read(res).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["publicKey"]["rp"]["id"], "localhost");
}

/// The answer to a credential made on `seen` by a server that allows `allowed`: both
/// named, so whoever integrates sees what to set.
fn wrong_origin(seen: &str, allowed: &str) -> Value {
    json!({
        "message": format!("The credential was made on {seen}, which is not one of this server's passkeys.origins ({allowed})."),
        "error": "wrong_origin",
    })
}

/// No `passkeys.origins`: passkeys work on `localhost` at the port the server listens
/// on (here one the system chose), and not on 8080.
async fn with_no_origins_the_origin_is_localhost_on_the_listening_port(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.passkeys.origins = vec![]).await;
    let port = app.base.rsplit(':').next().unwrap();
    assert_ne!(port, "8080");
    let here = format!("http://localhost:{port}");
    let mut authenticator = Authenticator::new(&here);
    let (token, _) = app.passkey_account(&mut authenticator).await;
    let (status, body) = app.passkey_login(&mut authenticator).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(sub(body["token"].as_str().unwrap()), sub(&token));
    let mut on_8080 = Authenticator::new(ORIGIN);
    let (status, body) = app.register_passkey(&mut on_8080, None, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body, wrong_origin(ORIGIN, &here));
}

/// With `passkeys.enabled = false` every passkey route answers 404, as documented:
/// a node with passkeys off neither lists, renames nor removes the passkeys another
/// node registered.
async fn while_off_no_passkey_route_answers(backend: Backend) {
    let on = TestApp::spawn(backend).await;
    let mut authenticator = Authenticator::new(ORIGIN);
    let (token, id) = on.passkey_account(&mut authenticator).await;
    let off = on.spawn_beside(|s| s.passkeys.enabled = false).await;
    let path = format!("/auth/passkeys/{id}");
    let rename = json!({"name": "renamed"});
    let empty = json!({});
    let calls: [(reqwest::Method, &str, Option<&Value>); 5] = [
        (reqwest::Method::GET, "/auth/passkeys", None),
        (reqwest::Method::PATCH, &path, Some(&rename)),
        (reqwest::Method::DELETE, &path, None),
        (
            reqwest::Method::POST,
            "/auth/passkeys/register/options",
            Some(&empty),
        ),
        (
            reqwest::Method::POST,
            "/auth/passkeys/login/options",
            Some(&empty),
        ),
    ];
    for (method, path, body) in calls {
        let (status, answer) = off.send_as(method.clone(), path, &token, body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {answer}");
        assert_eq!(
            answer,
            json!({"message": "No such route."}),
            "{method} {path}"
        );
    }
    // Nothing changed: the node with passkeys on still has it, under its name.
    let passkeys = on.passkeys_of(&token).await;
    assert_eq!(passkeys.len(), 1);
    assert_ne!(passkeys[0]["name"], "renamed");
}

async fn a_password_account_adds_a_passkey(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let address = email();
    let token = app.registered(&address, "correct horse").await;
    let mut authenticator = Authenticator::new(ORIGIN);

    let (_, options) = app.register_options(Some(&token)).await;
    assert_eq!(options["user"]["name"], address.as_str());
    let (status, body) = app
        .register_passkey(&mut authenticator, Some(&token), Some("Phone"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(
        body.get("session").is_none(),
        "no new account, no new session: {body}"
    );

    // The second registration excludes the first credential.
    let (_, options) = app.register_options(Some(&token)).await;
    let excluded = options["excludeCredentials"].as_array().unwrap();
    assert_eq!(excluded.len(), 1, "{options}");
    let (status, body) = app
        .register_passkey(&mut authenticator, Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["name"], "Passkey");
    assert_eq!(app.passkeys_of(&token).await.len(), 2);

    let (status, body) = app.passkey_login(&mut authenticator).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(sub(body["token"].as_str().unwrap()), sub(&token));
    // The password still works too.
    let (status, body) = app.login(&address, "correct horse").await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn a_ceremony_begun_signed_in_needs_that_account(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.registered(&email(), "correct horse").await;
    let other = app.registered(&email(), "correct horse").await;
    let mut authenticator = Authenticator::new(ORIGIN);

    for (token, status, code) in [
        (None, StatusCode::UNAUTHORIZED, ""),
        (
            Some(other.as_str()),
            StatusCode::FORBIDDEN,
            "ceremony_of_another_account",
        ),
    ] {
        let (ceremony, options) = app.register_options(Some(&owner)).await;
        let body = json!({"ceremony": ceremony, "credential": authenticator.create(&options)});
        let (got, body) = app.post_as("/auth/passkeys/register", token, &body).await;
        assert_eq!(got, status, "{body}");
        assert_eq!(error_code(&body), code, "{body}");
    }
    // A signed-out ceremony cannot be finished into an account either.
    let (ceremony, options) = app.register_options(None).await;
    let body = json!({"ceremony": ceremony, "credential": authenticator.create(&options)});
    let (status, body) = app
        .post_as("/auth/passkeys/register", Some(&owner), &body)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(app.passkeys_of(&owner).await.is_empty());
    assert!(app.passkeys_of(&other).await.is_empty());

    // A bad token is refused, never taken for "signed out" (which would make a new
    // account).
    let (status, body) = app
        .post_as(
            "/auth/passkeys/register/options",
            Some("not-a-token"),
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
}

async fn adding_a_passkey_needs_a_recent_sign_in(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.passkeys.recent_sign_in_secs = Some(60)).await;
    let token = app.registered(&email(), "correct horse").await;
    let account = sub(&token);
    // A token of the same live session whose sign-in was two minutes ago.
    let sid = jwt_parts(&token).1["sid"].as_str().unwrap().to_string();
    let signed_in = gatehouse::domain::unix_now() - 120;
    let stale = app
        .app
        .tokens
        .issue(
            gatehouse::crypto::jwt::TokenKind::Account,
            &account,
            signed_in,
            3600,
            gatehouse::sessions::AccountClaims {
                email: None,
                email_verified: None,
                sid,
                auth_time: signed_in,
                ..Default::default()
            },
        )
        .0;
    let (status, me) = app.me(&stale).await;
    assert_eq!(status, StatusCode::OK, "the stale token is valid: {me}");
    let (status, body) = app
        .post_as("/auth/passkeys/register/options", Some(&stale), &json!({}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(error_code(&body), "recent_sign_in_required");

    // Begun with a fresh token, finished with the stale one: refused as well.
    let mut authenticator = Authenticator::new(ORIGIN);
    let (ceremony, options) = app.register_options(Some(&token)).await;
    let body = json!({"ceremony": ceremony, "credential": authenticator.create(&options)});
    let (status, body) = app
        .post_as("/auth/passkeys/register", Some(&stale), &body)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(error_code(&body), "recent_sign_in_required");
    assert!(app.passkeys_of(&token).await.is_empty());
}

async fn the_last_way_in_cannot_be_removed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut authenticator = Authenticator::new(ORIGIN);
    let (token, first) = app.passkey_account(&mut authenticator).await;
    let path = format!("/auth/passkeys/{first}");

    let (status, body) = app
        .send_as(reqwest::Method::DELETE, &path, &token, None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(error_code(&body), "last_sign_in_method");
    assert_eq!(app.passkeys_of(&token).await.len(), 1);

    let (status, second) = app
        .register_passkey(&mut authenticator, Some(&token), Some("Second"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    // The first credential is the older one in the authenticator; sign in with it to
    // show it works until removed.
    let (status, body) = app
        .send_as(reqwest::Method::DELETE, &path, &token, None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(body, Value::Null);
    let left = app.passkeys_of(&token).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["id"], second["id"]);
    let (status, body) = app
        .send_as(reqwest::Method::DELETE, &path, &token, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    // The removed credential no longer signs in.
    let (ceremony, options) = app.login_options().await;
    let assertion = authenticator.assert_with(0, options["challenge"].as_str().unwrap());
    let (status, body) = app
        .post_json(
            "/auth/passkeys/login",
            &json!({"ceremony": ceremony, "credential": assertion}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(error_code(&body), "unknown_credential");

    // A password account may remove its only passkey: the password is left.
    let password_account = app.registered(&email(), "correct horse").await;
    let (status, body) = app
        .register_passkey(&mut authenticator, Some(&password_account), None)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let path = format!("/auth/passkeys/{}", body["id"].as_str().unwrap());
    let (status, body) = app
        .send_as(reqwest::Method::DELETE, &path, &password_account, None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
}

async fn passkeys_are_renamed_and_listed_per_account(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut a = Authenticator::new(ORIGIN);
    let mut b = Authenticator::new(ORIGIN);
    let (token_a, id_a) = app.passkey_account(&mut a).await;
    let (token_b, _) = app.passkey_account(&mut b).await;

    let path = format!("/auth/passkeys/{id_a}");
    let (status, body) = app
        .send_as(
            reqwest::Method::PATCH,
            &path,
            &token_a,
            Some(&json!({"name": "  Work laptop  "})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["name"], "Work laptop");
    assert_eq!(app.passkeys_of(&token_a).await[0]["name"], "Work laptop");

    for name in [json!(""), json!("x".repeat(65)), json!("bad\u{7}name")] {
        let (status, body) = app
            .send_as(
                reqwest::Method::PATCH,
                &path,
                &token_a,
                Some(&json!({ "name": name })),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}: {body}");
        assert_eq!(error_code(&body), "invalid_name");
    }
    // Another account's passkey is not found, for renaming or removal.
    let (status, body) = app
        .send_as(
            reqwest::Method::PATCH,
            &path,
            &token_b,
            Some(&json!({"name": "mine"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = app
        .send_as(reqwest::Method::DELETE, &path, &token_b, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(app.passkeys_of(&token_a).await[0]["name"], "Work laptop");
    assert_eq!(app.passkeys_of(&token_b).await.len(), 1);

    let (status, body) = read(app.get("/auth/passkeys", None).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
}

async fn a_counter_that_goes_back_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // 0 after 0, again and again: synced passkeys keep no counter.
    let mut synced = Authenticator::new(ORIGIN);
    app.passkey_account(&mut synced).await;
    for _ in 0..3 {
        let (status, body) = app.passkey_login(&mut synced).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    let mut counting = Authenticator::new(ORIGIN);
    counting.counts = true;
    app.passkey_account(&mut counting).await;
    for _ in 0..3 {
        let (status, body) = app.passkey_login(&mut counting).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    // A clone that kept an older counter.
    let mut clone = counting.clone();
    clone.credentials[0].counter = 1;
    let (status, body) = app.passkey_login(&mut clone).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(error_code(&body), "counter_regressed");
    // The same counter again is refused too; the genuine authenticator goes on.
    let mut same = counting.clone();
    same.credentials[0].counter -= 1;
    let (status, body) = app.passkey_login(&mut same).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, body) = app.passkey_login(&mut counting).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// `n` sign-ins sent at once, each by a copy of `authenticator` as it is now (so with
/// the same counter), each over a ceremony of its own.
async fn concurrent_sign_ins(
    app: &TestApp,
    authenticator: &Authenticator,
    n: usize,
) -> Vec<(StatusCode, Value)> {
    let mut bodies = Vec::new();
    for _ in 0..n {
        let (ceremony, options) = app.login_options().await;
        let credential = authenticator.clone().get(&options);
        bodies.push(json!({"ceremony": ceremony, "credential": credential}));
    }
    let attempts = bodies
        .iter()
        .map(|body| app.post_json("/auth/passkeys/login", body));
    futures::future::join_all(attempts).await
}

async fn concurrent_sign_ins_with_one_counter_accept_exactly_one(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut counting = Authenticator::new(ORIGIN);
    counting.counts = true;
    app.passkey_account(&mut counting).await;
    let (status, body) = app.passkey_login(&mut counting).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Eight assertions with counter 2, at once: one is the genuine one, the others
    // can only be clones, and are refused as the sequential case is.
    let results = concurrent_sign_ins(&app, &counting, 8).await;
    let won = results.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    assert_eq!(won, 1, "{results:?}");
    for (status, body) in results.iter().filter(|(s, _)| *s != StatusCode::OK) {
        assert_eq!(*status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(error_code(body), "counter_regressed", "{body}");
    }
    // The counter stands at 2: the authenticator, at 3 next, goes on.
    counting.credentials[0].counter = 2;
    let (status, body) = app.passkey_login(&mut counting).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["token"].is_string(), "{body}");

    // An authenticator that keeps no counter (always 0) signs in concurrently too.
    let mut synced = Authenticator::new(ORIGIN);
    app.passkey_account(&mut synced).await;
    let results = concurrent_sign_ins(&app, &synced, 8).await;
    for (status, body) in &results {
        assert_eq!(*status, StatusCode::OK, "{body}");
        assert!(body["token"].is_string(), "{body}");
    }
}

async fn a_credential_belongs_to_one_account(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut authenticator = Authenticator::new(ORIGIN);
    let (first, _) = app.passkey_account(&mut authenticator).await;

    // The same credential, registered again on a new account and on another one.
    let (ceremony, options) = app.register_options(None).await;
    let credential = authenticator.create_again(&options, 0);
    let (status, body) = app
        .post_json(
            "/auth/passkeys/register",
            &json!({"ceremony": ceremony, "credential": credential}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(error_code(&body), "credential_taken");

    let other = app.registered(&email(), "correct horse").await;
    let (ceremony, options) = app.register_options(Some(&other)).await;
    let credential = authenticator.create_again(&options, 0);
    let (status, body) = app
        .post_as(
            "/auth/passkeys/register",
            Some(&other),
            &json!({"ceremony": ceremony, "credential": credential}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(app.passkeys_of(&other).await.is_empty());
    assert_eq!(app.passkeys_of(&first).await.len(), 1);
}

async fn a_ceremony_finishes_on_another_node(backend: Backend) {
    let a = TestApp::spawn(backend).await;
    let b = a.another_node().await;
    let mut authenticator = Authenticator::new(ORIGIN);

    let (ceremony, options) = a.register_options(None).await;
    let body = json!({"ceremony": ceremony, "credential": authenticator.create(&options)});
    let (status, registered) = b.post_json("/auth/passkeys/register", &body).await;
    assert_eq!(status, StatusCode::CREATED, "{registered}");
    let (status, again) = a.post_json("/auth/passkeys/register", &body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{again}");

    let (ceremony, options) = b.login_options().await;
    let body = json!({"ceremony": ceremony, "credential": authenticator.get(&options)});
    let (status, signed_in) = a.post_json("/auth/passkeys/login", &body).await;
    assert_eq!(status, StatusCode::OK, "{signed_in}");
    assert_eq!(
        sub(signed_in["token"].as_str().unwrap()),
        sub(registered["session"]["token"].as_str().unwrap())
    );
    let (status, again) = b.post_json("/auth/passkeys/login", &body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{again}");
}

async fn concurrent_finishes_of_one_ceremony_sign_in_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut authenticator = Authenticator::new(ORIGIN);
    app.passkey_account(&mut authenticator).await;
    let (ceremony, options) = app.login_options().await;
    let body = json!({"ceremony": ceremony, "credential": authenticator.get(&options)});
    let attempts = (0..20).map(|_| app.post_json("/auth/passkeys/login", &body));
    let results = futures::future::join_all(attempts).await;
    let won: Vec<_> = results
        .iter()
        .filter(|(s, _)| *s == StatusCode::OK)
        .collect();
    assert_eq!(won.len(), 1, "{results:?}");
    for (status, body) in results.iter().filter(|(s, _)| *s != StatusCode::OK) {
        assert_eq!(*status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(error_code(body), "ceremony_unknown");
    }
}

async fn bad_requests_get_clear_errors(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (ceremony, _) = app.login_options().await;
    for (body, expect) in [
        (json!({}), "missing field"),
        (json!({"ceremony": ceremony}), "missing field `credential`"),
        (
            json!({"ceremony": ceremony, "credential": {"id": 1}}),
            "invalid value",
        ),
        (
            json!({"ceremony": "x".repeat(100), "credential": {}}),
            "invalid value",
        ),
    ] {
        let (status, res) = app.post_json("/auth/passkeys/login", &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {res}");
        assert!(
            res["message"].as_str().unwrap().contains(expect),
            "{body}: {res}"
        );
    }
    // An unknown ceremony with a well-formed credential.
    let mut authenticator = Authenticator::new(ORIGIN);
    app.passkey_account(&mut authenticator).await;
    let (_, options) = app.login_options().await;
    let body = json!({"ceremony": "0".repeat(32), "credential": authenticator.get(&options)});
    let (status, res) = app.post_json("/auth/passkeys/login", &body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{res}");
    assert_eq!(error_code(&res), "ceremony_unknown");

    let (status, res) = app
        .post_raw("/auth/passkeys/register/options", "application/json", "[1]")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{res}");
    let (status, res) = app
        .post_as(
            "/auth/passkeys/register/options",
            None,
            &json!({"user_name": ""}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{res}");
    assert_eq!(error_code(&res), "invalid_request");

    let off = TestApp::spawn_with(Backend::Sqlite, |s| s.passkeys.enabled = false).await;
    let (status, res) = off
        .post_json("/auth/passkeys/login/options", &json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{res}");
}
