//! Mail and forgotten passwords, through a real SMTP server on loopback: the tests
//! read what arrives and follow its link as a person would.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, email, read};
use crate::on_every_backend;
use crate::smtp::{Received, SmtpServer};

/// What every emailed link starts with: the configured public URL, never anything a
/// request said.
pub(crate) const PUBLIC_URL: &str = "https://auth.example.test";
pub(crate) const RESET_PAGE: &str = "https://auth.example.test/auth/pages/reset-password?token=";
/// The reset link with the hosted pages on (the default; `with_mail` turns them off).
pub(crate) const UI_RESET_PAGE: &str = "https://auth.example.test/ui/reset-password?token=";
pub(crate) const VERIFY_PAGE: &str = "https://auth.example.test/auth/pages/verify-email?token=";
const FORGOT_MESSAGE: &str =
    "If an account with a password exists for this address, a link to reset it is on its way.";
pub(crate) const INVALID_LINK: &str = "This link is invalid or has expired. Ask for a new one.";
const WAIT: Duration = Duration::from_secs(15);

pub(crate) fn with_mail(
    smtp: &SmtpServer,
) -> impl FnOnce(&mut gatehouse::config::Settings) + use<> {
    let url = smtp.url();
    move |s| {
        s.http.public_url = Some(PUBLIC_URL.into());
        s.mail.enabled = true;
        s.mail.smtp_url = Some(gatehouse::domain::Secret::new(url));
        s.mail.from = "Example <no-reply@example.test>".into();
        s.mail.site_name = "Example".into();
        s.mail.retry_base_secs = 1;
        s.mail.retry_max_secs = 2;
        // The mailed links go to the older pages under /auth/pages (still served);
        // tests/api/ui.rs follows them to /ui/ with the hosted pages on.
        s.ui.enabled = false;
    }
}

pub(crate) async fn forgot(app: &TestApp, address: &str) -> (StatusCode, Value) {
    app.post_json("/auth/password/forgot", &json!({ "email": address }))
        .await
}

/// Waits for `n` mails with a link starting with `prefix`, and returns their links.
pub(crate) async fn links(smtp: &SmtpServer, prefix: &str, n: usize) -> Vec<String> {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let found: Vec<String> = smtp
            .received()
            .iter()
            .filter_map(|m| m.link(prefix))
            .collect();
        if found.len() >= n {
            return found;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} of {n} links to {prefix}",
            found.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The reset mails that arrived, in order.
fn reset_mails(smtp: &SmtpServer) -> Vec<Received> {
    smtp.received()
        .into_iter()
        .filter(|m| m.link(RESET_PAGE).is_some())
        .collect()
}

pub(crate) fn token_of(link: &str) -> String {
    link.strip_prefix(RESET_PAGE)
        .or_else(|| link.strip_prefix(UI_RESET_PAGE))
        .expect("a reset link")
        .to_owned()
}

/// The mails to `to`, in arrival order.
pub(crate) fn to<'a>(messages: &'a [Received], address: &str) -> Vec<&'a Received> {
    messages
        .iter()
        .filter(|m| m.to.iter().any(|t| t == address))
        .collect()
}

/// Follows a link of ours on the test server: its path and query, as the public URL's
/// proxy would.
pub(crate) async fn open(app: &TestApp, link: &str) -> reqwest::Response {
    let path = link
        .strip_prefix(PUBLIC_URL)
        .expect("a link to the public URL");
    app.client.get(app.url(path)).send().await.unwrap()
}

/// The value of the hidden `token` field of a page's form.
pub(crate) fn form_token(html: &str) -> String {
    let marker = "name=\"token\" value=\"";
    let start = html.find(marker).expect("a token field") + marker.len();
    html[start..start + html[start..].find('"').unwrap()].to_owned()
}

async fn submit(app: &TestApp, token: &str, password: &str) -> (StatusCode, String) {
    let res = app
        .client
        .post(app.url("/auth/pages/reset-password"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            url::form_urlencoded::Serializer::new(String::new())
                .append_pair("token", token)
                .append_pair("password", password)
                .finish(),
        )
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.text().await.unwrap())
}

async fn reset_password_by_mail_as_a_person_would(backend: Backend) {
    let smtp = SmtpServer::start().await;
    let app = TestApp::spawn_with(backend, with_mail(&smtp)).await;
    let address = email();
    app.registered(&address, "old-password-1").await;

    // Poisoned Host and X-Forwarded-Host: the link still names the public URL.
    let res = app
        .client
        .post(app.url("/auth/password/forgot"))
        .header("Host", "evil.example")
        .header("X-Forwarded-Host", "evil.example")
        .json(&json!({ "email": address }))
        .send()
        .await
        .unwrap();
    let (status, body) = read(res).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body, json!({ "message": FORGOT_MESSAGE }));

    links(&smtp, RESET_PAGE, 1).await;
    let mail = reset_mails(&smtp).remove(0);
    assert_eq!(mail.to, std::slice::from_ref(&address));
    assert_eq!(mail.from, "no-reply@example.test");
    assert_eq!(mail.subject(), "Reset your Example password");
    assert!(
        !mail.decoded().contains("evil.example"),
        "{}",
        mail.decoded()
    );
    let link = mail.link(RESET_PAGE).expect("a reset link in the mail");
    let token = token_of(&link);
    assert_eq!(token.len(), 43, "{link}");
    assert!(mail.decoded().contains("text/html"), "an HTML part too");

    // A scanner opens the link three times, and HEADs it: nothing changes.
    for _ in 0..3 {
        let res = open(&app, &link).await;
        assert_eq!(res.status(), StatusCode::OK);
        let h = res.headers().clone();
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert_eq!(h["cache-control"], "no-store");
        assert!(h["content-type"].to_str().unwrap().starts_with("text/html"));
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.starts_with("default-src 'none';"), "{csp}");
        let html = res.text().await.unwrap();
        assert!(
            html.contains("<form method=\"post\" action=\"reset-password\">"),
            "{html}"
        );
        assert!(html.contains("history.replaceState(null, \"\", location.pathname);"));
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "no outside resource: {html}"
        );
        assert_eq!(form_token(&html), token);
    }
    let path = link.strip_prefix(PUBLIC_URL).unwrap();
    let head = app.client.head(app.url(path)).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::OK);

    // A password the rules refuse leaves the link usable (better-auth #10632).
    let (status, html) = submit(&app, &token, "short").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{html}");
    assert!(html.contains("role=\"alert\""), "{html}");
    assert_eq!(form_token(&html), token, "the form keeps the token");

    let (status, html) = submit(&app, &token, "new-password-2").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("Your password has been changed."), "{html}");

    // Once only.
    let (status, html) = submit(&app, &token, "new-password-3").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{html}");
    assert!(html.contains(INVALID_LINK), "{html}");

    let (status, body) = app.login(&address, "new-password-2").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app.login(&address, "old-password-1").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    // The owner is told.
    smtp.wait_for(3, WAIT).await;
    let messages = smtp.received();
    let notice = *to(&messages, &address)
        .iter()
        .find(|m| m.subject() == "Your Example password was changed")
        .expect("a notice");
    assert_eq!(notice.subject(), "Your Example password was changed");
    assert!(
        notice.link(PUBLIC_URL).is_none(),
        "a notice carries no link"
    );
}

async fn reset_through_the_api_signs_in_and_spends_the_token(backend: Backend) {
    let smtp = SmtpServer::start().await;
    let app = TestApp::spawn_with(backend, with_mail(&smtp)).await;
    let address = email();
    app.registered(&address, "old-password-1").await;
    forgot(&app, &address).await;
    let token = token_of(&links(&smtp, RESET_PAGE, 1).await[0]);

    for (body, message) in [
        (
            json!({ "password": "new-password-2" }),
            "The 'token' field is required and was not provided.",
        ),
        (
            json!({ "token": token }),
            "The 'password' field is required and was not provided.",
        ),
        (
            json!({ "token": "x".repeat(43), "password": "new-password-2" }),
            INVALID_LINK,
        ),
        (
            json!({ "token": format!("{token}x"), "password": "new-password-2" }),
            INVALID_LINK,
        ),
    ] {
        let (status, reply) = app.post_json("/auth/password/reset", &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(reply["message"], message, "{body}");
    }
    let (status, body) = app
        .post_json(
            "/auth/password/reset",
            &json!({ "token": token, "password": "short" }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    let (status, body) = app
        .post_json(
            "/auth/password/reset",
            &json!({ "token": token, "password": "new-password-2" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let session = body["token"].as_str().unwrap();
    let (status, me) = app.me(session).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["email"], address);

    let (status, body) = app
        .post_json(
            "/auth/password/reset",
            &json!({ "token": token, "password": "new-password-3" }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["message"], INVALID_LINK);
}

async fn fifty_concurrent_resets_with_one_token_exactly_one_succeeds(backend: Backend) {
    let smtp = SmtpServer::start().await;
    let app = TestApp::spawn_with(backend, with_mail(&smtp)).await;
    let address = email();
    app.registered(&address, "old-password-1").await;
    forgot(&app, &address).await;
    let token = token_of(&links(&smtp, RESET_PAGE, 1).await[0]);

    let attempts = (0..50).map(|i| {
        let body = json!({ "token": token, "password": format!("racing-password-{i}") });
        let app = &app;
        async move { (i, app.post_json("/auth/password/reset", &body).await) }
    });
    let results = futures::future::join_all(attempts).await;
    let winners: Vec<usize> = results
        .iter()
        .filter(|(_, (status, _))| *status == StatusCode::OK)
        .map(|(i, _)| *i)
        .collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    for (_, (status, body)) in results.iter().filter(|(i, _)| *i != winners[0]) {
        assert_eq!(*status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["message"], INVALID_LINK);
    }
    let (status, body) = app
        .login(&address, &format!("racing-password-{}", winners[0]))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn a_new_request_voids_the_older_link(backend: Backend) {
    let smtp = SmtpServer::start().await;
    let app = TestApp::spawn_with(backend, |s| {
        with_mail(&smtp)(s);
        s.mail.per_minute = 10;
    })
    .await;
    let address = email();
    app.registered(&address, "old-password-1").await;
    forgot(&app, &address).await;
    let first = token_of(&links(&smtp, RESET_PAGE, 1).await[0]);
    forgot(&app, &address).await;
    let second = token_of(&links(&smtp, RESET_PAGE, 2).await[1]);
    assert_ne!(first, second);

    let (status, body) = app
        .post_json(
            "/auth/password/reset",
            &json!({ "token": first, "password": "new-password-2" }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["message"], INVALID_LINK);
    let (status, body) = app
        .post_json(
            "/auth/password/reset",
            &json!({ "token": second, "password": "new-password-2" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn forgot_answers_alike_for_every_address_and_mails_only_the_owner(backend: Backend) {
    let smtp = SmtpServer::start().await;
    let app = TestApp::spawn_with(backend, |s| {
        with_mail(&smtp)(s);
        crate::ownid::with_secrets(&[crate::ownid::SECRET])(s);
    })
    .await;
    let known = email();
    app.registered(&known, "old-password-1").await;
    let passwordless = email();
    app.registered_passwordless(&passwordless, "ownid-data")
        .await;
    let unknown = email();

    let mut answers = Vec::new();
    // The known address twice: the second is over its limit of one a minute.
    for address in [
        &known,
        &unknown,
        &passwordless,
        &known,
        &known.to_uppercase(),
    ] {
        let started = std::time::Instant::now();
        let answer = forgot(&app, address).await;
        assert!(
            started.elapsed() >= Duration::from_millis(250),
            "the floor holds"
        );
        answers.push(answer);
    }
    for answer in &answers {
        assert_eq!(
            *answer,
            (StatusCode::ACCEPTED, json!({ "message": FORGOT_MESSAGE }))
        );
    }
    links(&smtp, RESET_PAGE, 1).await;
    // Give the outbox time to send anything else it (wrongly) had.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let delivered: Vec<_> = reset_mails(&smtp)
        .iter()
        .flat_map(|m| m.to.clone())
        .collect();
    assert_eq!(delivered, std::slice::from_ref(&known));

    let (status, body) = forgot(&app, "not an address").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        body["message"],
        "The 'email' field must be a valid email address."
    );
}

async fn mail_waits_out_an_smtp_outage(backend: Backend) {
    let mut smtp = SmtpServer::stopped().await;
    let app = TestApp::spawn_with(backend, with_mail(&smtp)).await;
    let address = email();
    app.registered(&address, "old-password-1").await;
    let started = std::time::Instant::now();
    let (status, body) = forgot(&app, &address).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the request does not wait for SMTP"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(smtp.received().is_empty());

    smtp.resume().await;
    links(&smtp, RESET_PAGE, 1).await;
    assert_eq!(reset_mails(&smtp)[0].to, [address]);
}

async fn verify_an_address_by_mail(backend: Backend) {
    let smtp = SmtpServer::start().await;
    let app = TestApp::spawn_with(backend, |s| {
        with_mail(&smtp)(s);
        s.mail.per_minute = 10;
    })
    .await;
    let address = email();
    let session = app.registered(&address, "old-password-1").await;
    let (status, me) = app.me(&session).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["email_verified"], false, "{me}");

    // Registration mailed a link; asking again voids it.
    let first = links(&smtp, VERIFY_PAGE, 1).await.remove(0);
    let res = app
        .client
        .post(app.url("/auth/verify-email/send"))
        .bearer_auth(&session)
        .send()
        .await
        .unwrap();
    let (status, body) = read(res).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(
        body["message"],
        "If the account's address is not verified yet, a link to verify it is on its way."
    );
    let second = links(&smtp, VERIFY_PAGE, 2).await.remove(1);
    let stale = first.strip_prefix(VERIFY_PAGE).unwrap();
    let (status, body) = app
        .post_json("/auth/verify-email", &json!({ "token": stale }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["message"], INVALID_LINK);

    // Scanners open the page: nothing happens until the form is sent.
    for _ in 0..3 {
        let res = open(&app, &second).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["referrer-policy"], "no-referrer");
        assert_eq!(res.headers()["cache-control"], "no-store");
        let html = res.text().await.unwrap();
        assert!(html.contains("action=\"verify-email\""), "{html}");
    }
    let (_, me) = app.me(&session).await;
    assert_eq!(me["email_verified"], false, "{me}");
    let token = second.strip_prefix(VERIFY_PAGE).unwrap();
    let res = app
        .client
        .post(app.url("/auth/pages/verify-email"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("Your email address is verified.")
    );
    let (_, me) = app.me(&session).await;
    assert_eq!(me["email_verified"], true, "{me}");
    let (status, body) = app.login(&address, "old-password-1").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, claims) = crate::helpers::jwt_parts(body["token"].as_str().unwrap());
    assert_eq!(claims["email_verified"], true, "{claims}");

    let (status, body) = app
        .post_json("/auth/verify-email", &json!({ "token": token }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["message"], INVALID_LINK);
}

/// A verification mail speaks the language the registration asked for
/// (`Accept-Language`), rendered by the sender later; without a header, the default.
async fn the_verification_mail_speaks_the_registration_language(backend: Backend) {
    let smtp = SmtpServer::start().await;
    let app = TestApp::spawn_with(backend, with_mail(&smtp)).await;
    let german = email();
    let res = app
        .client
        .post(app.url("/auth/register"))
        .header("accept-language", "de-DE,de;q=0.9,en;q=0.5")
        .json(&json!({ "email": german, "password": "old-password-1" }))
        .send()
        .await
        .unwrap();
    let (status, body) = read(res).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let english = email();
    let (status, body) = app.register(&english, "old-password-1").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    links(&smtp, VERIFY_PAGE, 2).await;
    let received = smtp.received();

    let de = to(&received, &german)[0];
    assert_eq!(
        de.decoded_subject(),
        "Bestätigen Sie Ihre E-Mail-Adresse für Example"
    );
    let text = de.decoded();
    assert!(text.contains("Hallo,"), "{text}");
    assert!(
        text.contains(&format!(
            "Um zu bestätigen, dass {german} die Adresse Ihres Example-Kontos ist, öffnen \
             Sie diesen Link innerhalb von 24 Stunden:"
        )),
        "{text}"
    );
    assert!(text.contains("<html lang=\"de\">"), "{text}");
    assert!(text.contains(">Meine Adresse bestätigen</a>"), "{text}");
    assert!(!text.contains("Hello"), "{text}");

    let en = to(&received, &english)[0];
    assert_eq!(
        en.decoded_subject(),
        "Confirm your email address for Example"
    );
    let text = en.decoded();
    assert!(
        text.contains(&format!(
            "To confirm that {english} is the address of your Example account, open this \
             link within 24 hours:"
        )),
        "{text}"
    );
    assert!(text.contains("<html lang=\"en\">"), "{text}");
    assert!(!text.contains("Hallo"), "{text}");
}

/// Every row of every table of the test's database, as (table, row count).
pub(crate) async fn row_counts(app: &TestApp) -> Vec<(String, i64)> {
    let url = app.app.settings.database_url();
    if let Some(file) = gatehouse::store::sqlite_file(&url) {
        let conn = rusqlite::Connection::open(file).unwrap();
        let tables: Vec<String> = conn
            // Not SQLite's own tables: `sqlite_stat1` holds the planner's statistics,
            // which the scheduled `PRAGMA optimize` gathers at start, of no account.
            .prepare(
                "SELECT name FROM sqlite_master WHERE type = 'table'
                 AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
            )
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        return tables
            .into_iter()
            .map(|t| {
                let n = conn
                    .query_row(&format!("SELECT COUNT(*) FROM {t}"), [], |r| r.get(0))
                    .unwrap();
                (t, n)
            })
            .collect();
    }
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let tables: Vec<(String,)> = sqlx::query_as(
        "SELECT table_name::text FROM information_schema.tables
         WHERE table_schema = current_schema() ORDER BY table_name",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut counts = Vec::new();
    for (t,) in tables {
        let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {t}")))
            .fetch_one(&pool)
            .await
            .unwrap();
        counts.push((t, n));
    }
    pool.close().await;
    counts
}

/// The keys of the rate-limit counters.
pub(crate) async fn counter_keys(app: &TestApp) -> Vec<String> {
    let url = app.app.settings.database_url();
    if let Some(file) = gatehouse::store::sqlite_file(&url) {
        let conn = rusqlite::Connection::open(file).unwrap();
        let mut statement = conn.prepare("SELECT key FROM rate_counters").unwrap();
        return statement
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
    }
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let keys: Vec<(String,)> = sqlx::query_as("SELECT key FROM rate_counters")
        .fetch_all(&pool)
        .await
        .unwrap();
    pool.close().await;
    keys.into_iter().map(|(k,)| k).collect()
}

async fn deleting_an_account_leaves_no_row_of_it(backend: Backend) {
    use crate::selfkey::{TestWallet, email_attributes, link_token, sign_up, wallet_token};
    let smtp = SmtpServer::start().await;
    let app = TestApp::spawn_with(backend, with_mail(&smtp)).await;
    let address = email();
    let first = app.signed_up(&address, "old-password-1").await;
    let first_token = first["token"].as_str().unwrap().to_owned();
    // Leave traces: a failed login, a reset link and its mail, a verification link,
    // a pending email change (its link and the new address's mail counters), a
    // linked wallet, a passkey, and two sessions.
    let (status, _) = app.login(&address, "wrong-password").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    forgot(&app, &address).await;
    links(&smtp, RESET_PAGE, 1).await;
    let wallet = TestWallet::random();
    let wallet_jwt = wallet_token(&app, &wallet).await;
    let mut body = email_attributes(&address);
    body["meta"] = json!({ "linkToken": link_token(&app, &first_token).await });
    let (status, res) = sign_up(&app, &wallet_jwt, &body).await;
    assert_eq!(status, StatusCode::CREATED, "{res}");
    let mut authenticator = softpasskey::Authenticator::new("http://localhost:8080");
    let res = app
        .client
        .post(app.url("/auth/passkeys/register/options"))
        .bearer_auth(&first_token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let (status, options) = read(res).await;
    assert_eq!(status, StatusCode::OK, "{options}");
    let credential = authenticator.create(&options["publicKey"]);
    let res = app
        .client
        .post(app.url("/auth/passkeys/register"))
        .bearer_auth(&first_token)
        .json(&json!({"ceremony": options["ceremony"], "credential": credential}))
        .send()
        .await
        .unwrap();
    let (status, body) = read(res).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let res = app
        .client
        .post(app.url("/auth/email/change"))
        .bearer_auth(&first_token)
        .json(&json!({ "new_email": email() }))
        .send()
        .await
        .unwrap();
    let (status, body) = read(res).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(
        body["message"],
        "A link to confirm the new address is on its way to it. Nothing changes until it is followed."
    );
    links(
        &smtp,
        "https://auth.example.test/auth/pages/confirm-email?token=",
        1,
    )
    .await;
    let (_, body) = app.login(&address, "old-password-1").await;
    let session = body["token"].as_str().unwrap().to_owned();

    let res = app
        .client
        .delete(app.url("/auth/me"))
        .bearer_auth(&session)
        .send()
        .await
        .unwrap();
    let (status, body) = read(res).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(body, Value::Null);

    // Left are counters of addresses, none of the account: the rate limit's of the
    // test's own client address, and the mail limits of the addresses mailed (under a
    // keyed hash), which outlive any account that named them.
    for (table, rows) in row_counts(&app).await {
        match table.as_str() {
            "rate_counters" => {
                let keys = counter_keys(&app).await;
                assert!(
                    keys.iter().all(|k| k.starts_with("address:")
                        || (k.starts_with("mail:") && k.contains(":address:"))),
                    "{keys:?}"
                );
                let id = crate::helpers::jwt_parts(&first_token).1["sub"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                assert!(
                    keys.iter()
                        .all(|k| !k.contains(&id) && !k.contains(&address)),
                    "{keys:?}"
                );
            }
            // The purge's lease names a node, no account.
            "_sqlx_migrations" | "leases" => {}
            _ => assert_eq!(rows, 0, "{table}"),
        }
    }
    // (A failed login counts against the address again, known or not: after the look.)
    let (status, body) = app.me(&session).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, body) = app.me(&first_token).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the other session ended too: {body}"
    );
    let (status, body) = app.refresh(first["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(
        body["message"],
        "The refresh token is invalid, expired or revoked."
    );
    let (status, body) = app.passkey_login(&mut authenticator).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the passkey is gone: {body}"
    );
    assert_eq!(body["error"], "unknown_credential", "{body}");
    let (status, body) = app.login(&address, "old-password-1").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    let (status, body) = app.register(&address, "new-password-2").await;
    assert_eq!(status, StatusCode::OK, "the address is free again: {body}");
}

/// Register, ask to change the address to the victim's, delete, again and again: each
/// new account would be within its own limits, but the victim's address is mailed
/// within its limit only (`mail.per_minute`, 1), whatever accounts came and went.
async fn deleting_accounts_does_not_reset_another_address_mail_limit(backend: Backend) {
    use crate::changes::CONFIRM_PAGE;
    let smtp = SmtpServer::start().await;
    let app = TestApp::spawn_with(backend, with_mail(&smtp)).await;
    let victim = email();
    for round in 1..=4 {
        let attacker = email();
        let signed_up = app.signed_up(&attacker, "attacker-password-1").await;
        let token = signed_up["token"].as_str().unwrap();
        let res = app
            .client
            .post(app.url("/auth/email/change"))
            .bearer_auth(token)
            .json(&json!({ "new_email": victim }))
            .send()
            .await
            .unwrap();
        let (status, body) = read(res).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert_eq!(
            body["message"],
            "A link to confirm the new address is on its way to it. Nothing changes until it is followed."
        );
        // A reset mail to the attacker's own address, queued after the change's: once
        // it arrived, the change's mail (had there been one) went out before the
        // account, and its queued mail, were deleted.
        let (status, body) = forgot(&app, &attacker).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        links(&smtp, RESET_PAGE, round).await;
        let res = app
            .client
            .delete(app.url("/auth/me"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let (status, body) = read(res).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
        assert_eq!(body, Value::Null);
    }
    let received = smtp.received();
    let to_victim = to(&received, &victim);
    assert_eq!(to_victim.len(), 1, "one a minute");
    assert!(to_victim[0].link(CONFIRM_PAGE).is_some());
}

async fn deleting_needs_a_recent_sign_in(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.accounts.reauth_window_secs = 1).await;
    let address = email();
    let signed_up = app.signed_up(&address, "old-password-1").await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    // A refresh is no sign-in: its token carries the session's auth_time.
    let (status, refreshed) = app
        .refresh(signed_up["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    for token in [&signed_up["token"], &refreshed["token"]] {
        let token = token.as_str().unwrap();
        let res = app
            .client
            .delete(app.url("/auth/me"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let (status, body) = read(res).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(
            body["message"],
            "Sign in again to do this: your last sign-in is too long ago."
        );
        let (status, me) = app.me(token).await;
        assert_eq!(status, StatusCode::OK, "still there: {me}");
    }
}

on_every_backend!(
    verify_an_address_by_mail,
    the_verification_mail_speaks_the_registration_language,
    deleting_an_account_leaves_no_row_of_it,
    deleting_accounts_does_not_reset_another_address_mail_limit,
    deleting_needs_a_recent_sign_in,
    reset_password_by_mail_as_a_person_would,
    reset_through_the_api_signs_in_and_spends_the_token,
    fifty_concurrent_resets_with_one_token_exactly_one_succeeds,
    a_new_request_voids_the_older_link,
    forgot_answers_alike_for_every_address_and_mails_only_the_owner,
    mail_waits_out_an_smtp_outage,
);

/// Two nodes on one PostgreSQL, the SMTP server down while mail queues, then up: every
/// mail arrives exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_send_each_mail_exactly_once() {
    if crate::helpers::postgres_url().is_none() {
        eprintln!("skipped: GATEHOUSE_TEST_POSTGRES_URL is not set");
        return;
    }
    let mut smtp = SmtpServer::stopped().await;
    let database = crate::helpers::fresh_postgres_schema().await;
    let one = TestApp::spawn_on(&database, with_mail(&smtp)).await;
    let two = TestApp::spawn_on(&database, with_mail(&smtp)).await;
    let mut addresses = Vec::new();
    for i in 0..30 {
        let address = email();
        let node = if i % 2 == 0 { &one } else { &two };
        node.registered(&address, "old-password-1").await;
        let (status, _) = forgot(node, &address).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        addresses.push(address);
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    smtp.resume().await;
    // A verification mail (at registration) and a reset mail for each.
    smtp.wait_for(2 * addresses.len(), Duration::from_secs(30))
        .await;
    // Both nodes poll twice a second: room for a duplicate to show up.
    tokio::time::sleep(Duration::from_secs(3)).await;
    addresses.sort();
    for prefix in [RESET_PAGE, VERIFY_PAGE] {
        let mut delivered: Vec<String> = smtp
            .received()
            .iter()
            .filter(|m| m.link(prefix).is_some())
            .flat_map(|m| m.to.clone())
            .collect();
        delivered.sort();
        assert_eq!(delivered, addresses, "{prefix}");
    }
    assert_eq!(smtp.received().len(), 2 * addresses.len());
}

/// With no SMTP server, mail is written as .eml files in DATA_DIR/outbox.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_smtp_mail_is_written_to_the_outbox_directory() {
    let app = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.http.public_url = Some(PUBLIC_URL.into());
        s.mail.enabled = true;
    })
    .await;
    let address = email();
    app.registered(&address, "old-password-1").await;
    forgot(&app, &address).await;
    let dir = app.app.settings.data_dir.join("outbox");
    let deadline = std::time::Instant::now() + WAIT;
    let message = loop {
        let found = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .map(|p| Received {
                from: String::new(),
                to: Vec::new(),
                data: std::fs::read_to_string(&p).unwrap(),
            })
            .find(|m| m.link(UI_RESET_PAGE).is_some());
        if let Some(message) = found {
            break message;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no reset .eml file in {}",
            dir.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        message.data.contains(&format!("To: {address}")),
        "{}",
        message.data
    );
    let link = message.link(UI_RESET_PAGE).expect("a reset link");
    let (status, body) = app
        .post_json(
            "/auth/password/reset",
            &json!({ "token": token_of(&link), "password": "new-password-2" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// Mail on without a public URL: the start fails, naming the key.
#[tokio::test]
async fn mail_without_a_public_url_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = crate::helpers::test_settings(dir.path());
    settings.mail.enabled = true;
    let err = gatehouse::http::Server::build(settings)
        .await
        .err()
        .expect("refused");
    assert!(format!("{err:#}").contains("http.public_url"), "{err:#}");
}

/// Mail off (the default): the routes are not there.
#[tokio::test]
async fn with_mail_off_the_routes_answer_404() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (status, body) = forgot(&app, &email()).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["message"], "No such route.");
}
