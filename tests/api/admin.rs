//! The operator's command line (`gatehouse users …`, `gatehouse sessions revoke`), run
//! as the real binary against the test server's database while it serves, and a
//! disabled account refused by every way in, on two nodes, from the next request.

use reqwest::StatusCode;
use serde_json::{Value, json};
use softpasskey::Authenticator;

use crate::helpers::{Backend, TestApp, email, jwt_parts, read};
use crate::ownid::{SECRET, SESSION, call, with_secrets};
use crate::process::gatehouse;
use crate::selfkey::{
    MOUNT, TestWallet, login_token, post_login, sign_in, signed_up, wallet_token,
};

crate::on_every_backend!(
    every_command_answers_with_its_exit_status,
    a_disabled_account_is_refused_everywhere_on_every_node,
    users_list_pages_with_limit_and_after,
);

/// What a run of the binary gave: exit status, stdout, stderr.
pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }
}

/// `gatehouse ARGS` on the database of `app` (given as `GATEHOUSE_DATABASE_URL`, as an
/// operator's shell would), from a directory of its own.
pub(crate) async fn cli(app: &TestApp, args: &[&str]) -> Run {
    cli_with(app, args, &[]).await
}

/// [`cli`] with more `GATEHOUSE_*` variables.
pub(crate) async fn cli_with(app: &TestApp, args: &[&str], env: &[(&str, &str)]) -> Run {
    let url = app.app.settings.database_url();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().unwrap();
        let out = gatehouse(dir.path())
            .env("GATEHOUSE_DATABASE_URL", url)
            .envs(env)
            .args(&args)
            .output()
            .unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    })
    .await
    .unwrap()
}

/// The one answer to a disabled account on the account routes.
fn disabled() -> Value {
    json!({"message": "This account is disabled.", "error": "account_disabled"})
}

async fn register(app: &TestApp, address: &str) -> Value {
    let (status, body) = app
        .post_json(
            "/auth/register",
            &json!({"email": address, "password": "password123"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn refresh(app: &TestApp, refresh_token: &Value) -> (StatusCode, Value) {
    app.post_json("/auth/refresh", &json!({"refresh_token": refresh_token}))
        .await
}

/// `users list --limit N --after ID` pages through the accounts oldest first: the
/// pages, each after the last id of the one before, are the whole list once, in its
/// order; for people the next page's start is said on stderr.
async fn users_list_pages_with_limit_and_after(b: Backend) {
    let app = TestApp::spawn(b).await;
    for _ in 0..5 {
        register(&app, &email()).await;
    }
    let ids = |run: &Run| -> Vec<String> {
        assert_eq!(run.code, 0, "{}", run.stderr);
        let listed = run.json();
        listed
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let all = ids(&cli(&app, &["users", "list", "--json"]).await);
    assert_eq!(all.len(), 5, "{all:?}");
    let mut paged = ids(&cli(&app, &["users", "list", "--json", "--limit", "2"]).await);
    assert_eq!(paged, all[..2], "the first page");
    for expected in [2, 1, 0] {
        let after = paged.last().unwrap().clone();
        let page = ids(&cli(
            &app,
            &["users", "list", "--json", "--limit", "2", "--after", &after],
        )
        .await);
        assert_eq!(page.len(), expected, "after {after}: {page:?}");
        paged.extend(page);
    }
    assert_eq!(paged, all);

    let run = cli(&app, &["users", "list", "--limit", "2"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout.lines().count(),
        3,
        "a header, two accounts: {}",
        run.stdout
    );
    assert!(
        run.stderr
            .contains(&format!("next page: --after {}", all[1])),
        "{}",
        run.stderr
    );
    let run = cli(
        &app,
        &["users", "list", "--json", "--after", "no-such-account"],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json(), json!([]));
}

async fn every_command_answers_with_its_exit_status(b: Backend) {
    let app = crate::ownid::spawn(b).await;
    let (alice, bob) = (email(), email());
    let account = register(&app, &alice).await;
    let token = account["token"].as_str().unwrap();
    let alice_id = jwt_parts(token).1["sub"].as_str().unwrap().to_string();
    app.registered_passwordless(&bob, "ownid-data-of-bob").await;

    let run = cli(&app, &["users", "list", "--json"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let all = run.json();
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), 2, "{all:?}");
    let of = |address: &str| all.iter().find(|a| a["email"] == address).unwrap().clone();
    let (a, b) = (of(&alice), of(&bob));
    assert_eq!(a["id"], alice_id.as_str());
    assert_eq!(a["sign_in_methods"], json!(["password"]));
    assert_eq!(b["sign_in_methods"], json!(["ownid"]));
    assert_eq!(a["disabled"], false);
    assert_eq!(a["sessions"], 1, "the registration's session");

    // --search: case-insensitive, on the email (or id, or a wallet).
    let local = alice.split('@').next().unwrap().to_uppercase();
    let run = cli(&app, &["users", "list", "--search", &local, "--json"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json().as_array().unwrap().len(), 1);
    assert_eq!(run.json()[0]["email"], alice.as_str());
    let run = cli(&app, &["users", "list", "--search", "%"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout.lines().count(),
        1,
        "a header, no account: {}",
        run.stdout
    );
    let run = cli(&app, &["users", "list"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains(&alice) && run.stdout.contains("active"),
        "{}",
        run.stdout
    );

    let run = cli(&app, &["users", "show", &alice.to_uppercase(), "--json"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let shown = run.json();
    assert_eq!(shown["id"], alice_id.as_str());
    assert_eq!(shown["sessions"].as_array().unwrap().len(), 1);
    assert_eq!(shown["sessions"][0]["method"], "password");
    // Times in RFC 3339, as the HTTP API gives them.
    for time in [
        &shown["last_sign_in_at"],
        &shown["created_at"],
        &shown["sessions"][0]["auth_time"],
        &shown["sessions"][0]["last_used_at"],
        &a["created_at"],
    ] {
        let text = time.as_str().unwrap_or_else(|| panic!("{time} in {shown}"));
        let parsed =
            time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                .unwrap_or_else(|e| panic!("{text}: {e}"));
        assert!(parsed.unix_timestamp() > 1_700_000_000, "{text}");
    }
    let run = cli(&app, &["users", "show", &alice_id]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("sign-in methods: password"),
        "{}",
        run.stdout
    );

    // Not found: 1, and said; bad usage: 2.
    let run = cli(&app, &["users", "show", "nobody@example.com", "--json"]).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(
        run.json(),
        json!({"error": "not_found", "account": "nobody@example.com"})
    );
    for args in [
        &["users", "disable", "no-such-id"][..],
        &["users", "enable", "nobody@example.com"],
        &["users", "delete", "no-such-id"],
        &["sessions", "revoke", "nobody@example.com"],
    ] {
        let run = cli(&app, args).await;
        assert_eq!(run.code, 1, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains("no account"), "{}", run.stderr);
    }
    for args in [
        &["users", "show"][..],
        &["users", "frobnicate", "x"],
        &["sessions", "revoke"],
        &["users", "list", "--limit", "many"],
    ] {
        let run = cli(&app, args).await;
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
    }

    // sessions revoke: every token of the account refused at once.
    assert_eq!(app.me(token).await.0, StatusCode::OK);
    let run = cli(&app, &["sessions", "revoke", &alice, "--json"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.json(),
        json!({"account": alice_id, "done": "sessions_revoked", "sessions_ended": 1})
    );
    assert_eq!(app.me(token).await.0, StatusCode::UNAUTHORIZED);
    let (status, _) = refresh(&app, &account["refresh_token"]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.login(&alice, "password123").await.0, StatusCode::OK);

    // delete: gone, and its email free again.
    let run = cli(&app, &["users", "delete", &bob]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.ends_with(": deleted\n"), "{}", run.stdout);
    assert_eq!(cli(&app, &["users", "show", &bob]).await.code, 1);
    assert_eq!(cli(&app, &["users", "delete", &bob]).await.code, 1);
    app.registered(&bob, "password123").await;
}

async fn a_disabled_account_is_refused_everywhere_on_every_node(b: Backend) {
    let app = TestApp::spawn_with(b, with_secrets(&[SECRET])).await;
    let other = app.another_node().await;
    // A password account (which OwnID also signs in, by its email).
    let alice = email();
    let account = register(&app, &alice).await;
    let token = account["token"].as_str().unwrap().to_string();
    // A wallet's account (SelfKey and SIWE sign the same address in).
    let wallet = TestWallet::random();
    signed_up(&app, &wallet, &email()).await;
    let (wallet_session, claims) = sign_in(&app, &wallet).await;
    let wallet_account = claims["sub"].as_str().unwrap().to_string();
    // A passkey's account.
    let mut authenticator = Authenticator::new(crate::passkeys::ORIGIN);
    let (passkey_token, _) = app.passkey_account(&mut authenticator).await;
    let passkey_account = jwt_parts(&passkey_token).1["sub"]
        .as_str()
        .unwrap()
        .to_string();

    for target in [alice.as_str(), &wallet_account, &passkey_account] {
        let run = cli(&app, &["users", "disable", target, "--json"]).await;
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert_eq!(run.json()["done"], "disabled");
    }
    let run = cli(&app, &["users", "show", &alice, "--json"]).await;
    assert_eq!(run.json()["disabled"], true);
    assert_eq!(run.json()["sessions"], json!([]), "its sessions are over");

    for node in [&app, &other] {
        // Every token check and refresh, at once, on both nodes.
        assert_eq!(node.me(&token).await, (StatusCode::FORBIDDEN, disabled()));
        let (status, body) = read(node.get("/auth/sessions", Some(&passkey_token)).await).await;
        assert_eq!((status, body), (StatusCode::FORBIDDEN, disabled()));
        assert_eq!(
            refresh(node, &account["refresh_token"]).await,
            (StatusCode::FORBIDDEN, disabled())
        );
        // The wallet routes of a signed-in person say it the same way, in their format.
        let wallet_path = format!("{MOUNT}/wallets/{}", wallet.address());
        for (method, path) in [
            (reqwest::Method::GET, format!("{MOUNT}/wallets")),
            (reqwest::Method::GET, wallet_path.clone()),
            (reqwest::Method::DELETE, wallet_path),
            (reqwest::Method::POST, format!("{MOUNT}/link-token")),
        ] {
            let res = node
                .client
                .request(method.clone(), node.url(&path))
                .bearer_auth(&wallet_session)
                .send()
                .await
                .unwrap();
            assert_eq!(
                read(res).await,
                (
                    StatusCode::FORBIDDEN,
                    json!({"code": "account_disabled", "message": "This account is disabled."})
                ),
                "{method} {path}"
            );
        }
        // Password: the right password learns it; a wrong one learns nothing.
        assert_eq!(
            node.login(&alice, "password123").await,
            (StatusCode::FORBIDDEN, disabled())
        );
        assert_eq!(
            node.login(&alice, "wrong-password").await,
            (
                StatusCode::UNAUTHORIZED,
                json!({"message": "Invalid credentials"})
            )
        );
        // OwnID.
        let reply = call(node, SESSION, json!({"loginId": alice})).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);
        let body: Value = serde_json::from_str(&reply.body).unwrap();
        assert_eq!(body, disabled());
        // SelfKey: the wallet proves its key, its login token is refused.
        let wallet_token = wallet_token(node, &wallet).await;
        let (status, body) = login_token(node, &wallet_token, None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, body) = post_login(node, &json!({"token": body["token"]})).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(body["code"], "account_disabled", "{body}");
        // SIWE, the same address.
        let (status, body) = crate::siwe::signed_in_as(node, &wallet).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(body["code"], "account_disabled", "{body}");
        // Passkeys.
        let (status, body) = node.passkey_login(&mut authenticator).await;
        assert_eq!((status, body), (StatusCode::FORBIDDEN, disabled()));
    }

    // Enabled again: it signs in; what it had stays ended.
    let run = cli(&app, &["users", "enable", &alice, "--json"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json()["done"], "enabled");
    let (status, body) = other.login(&alice, "password123").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(app.me(&token).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        refresh(&app, &account["refresh_token"]).await.0,
        StatusCode::UNAUTHORIZED
    );
    let fresh = body["token"].as_str().unwrap();
    assert_eq!(app.me(fresh).await.0, StatusCode::OK);
}

/// Every operation `/openapi.json` secures with an account token (`bearer`) documents
/// `403 account_disabled` in its surface's format, and answers it: the walk sends each
/// one a disabled account's token.
#[tokio::test]
async fn every_account_token_route_documents_and_answers_account_disabled() {
    // With mail, so the routes that mail are served (and walked) too.
    let smtp = crate::smtp::SmtpServer::start().await;
    let with_mail = crate::mail::with_mail(&smtp);
    let app = TestApp::spawn_with(Backend::Sqlite, |s| {
        with_secrets(&[SECRET])(s);
        with_mail(s);
    })
    .await;
    let account = register(&app, &email()).await;
    let token = account["token"].as_str().unwrap();
    let id = gatehouse::domain::AccountId(jwt_parts(token).1["sub"].as_str().unwrap().into());
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let ended = app
        .app
        .store
        .admin()
        .disable_account(&id, now)
        .await
        .unwrap();
    assert_eq!(ended, Some(1));

    let (status, doc) = read(app.get("/openapi.json", None).await).await;
    assert_eq!(status, StatusCode::OK);
    let mut walked = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let secured = operation["security"]
                .as_array()
                .is_some_and(|s| s.iter().any(|r| r.get("bearer").is_some()));
            if !secured {
                continue;
            }
            let declared = &operation["responses"]["403"];
            assert!(
                declared["description"]
                    .as_str()
                    .is_some_and(|d| d.contains("`account_disabled`")),
                "{method} {path} does not document 403 account_disabled: {declared}"
            );
            let selfkey = path.starts_with(MOUNT);
            let (schema, answer) = if selfkey {
                (
                    "#/components/schemas/SelfKeyErrorBody",
                    json!({"code": "account_disabled", "message": "This account is disabled."}),
                )
            } else {
                ("#/components/schemas/ErrorBody", disabled())
            };
            assert_eq!(
                declared["content"]["application/json"]["schema"]["$ref"], schema,
                "{method} {path}"
            );
            // Path parameters get a well-formed value: the token check comes first.
            let concrete = path
                .replace("{address}", "0x00000000000000000000000000000000000000aa")
                .replace("{id}", "0123456789abcdef");
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let mut req = app
                .client
                .request(method.clone(), app.url(&concrete))
                .bearer_auth(token);
            if method != reqwest::Method::GET && method != reqwest::Method::DELETE {
                req = req.json(&json!({}));
            }
            let got = read(req.send().await.unwrap()).await;
            assert_eq!(got, (StatusCode::FORBIDDEN, answer), "{method} {path}");
            walked.push(format!("{method} {path}"));
        }
    }
    // Every route of a signed-in person, across the surfaces (not a vacuous walk).
    for expected in [
        "GET /auth/me",
        "DELETE /auth/me",
        "POST /auth/logout",
        "GET /auth/sessions",
        "POST /auth/password/change",
        "POST /auth/email/change",
        "POST /auth/verify-email/send",
        "GET /auth/passkeys",
        "POST /auth/passkeys/register/options",
        "GET /api/v1/selfkey/wallets/{address}",
        "POST /api/v1/selfkey/link-token",
    ] {
        assert!(
            walked.iter().any(|w| w == expected),
            "{expected} not walked: {walked:?}"
        );
    }
    assert!(walked.len() >= 17, "{walked:?}");
}
