//! Seeing a node: `/metrics` after traffic of every kind, the request id, and the
//! separate metrics listener.

use std::collections::HashMap;

use openmetrics_parser::OpenMetricsValue;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Backend, TestApp, email, jwt_parts, read};
use crate::ownid::{SECRET, SESSION, call, with_secrets};
use crate::selfkey::{TestWallet, login_token, post_login, sign_in, signed_up};

crate::on_every_backend!(
    metrics_count_what_was_sent,
    the_rate_limit_refusals_are_counted,
    metrics_can_have_a_listener_of_their_own,
    every_answer_carries_a_request_id,
);

/// `/metrics`, read by a strict parser of the OpenMetrics text format (Prometheus'
/// text format as Prometheus scrapes it when the content type says so): a line it
/// cannot read fails the parse. Values by family name and labels; a histogram's value
/// is its count.
struct Metrics {
    text: String,
    samples: HashMap<String, f64>,
}

fn key<'a>(name: &str, labels: impl Iterator<Item = (&'a String, &'a String)>) -> String {
    let mut labels: Vec<_> = labels.map(|(k, v)| format!("{k}={v}")).collect();
    labels.sort();
    format!("{name}{{{}}}", labels.join(","))
}

impl Metrics {
    async fn scrape(app: &TestApp, base: &str) -> Metrics {
        let res = app
            .client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let content_type = res.headers()["content-type"].to_str().unwrap().to_string();
        assert!(
            content_type.starts_with("application/openmetrics-text; version=1.0.0"),
            "{content_type}"
        );
        let text = res.text().await.unwrap();
        let exposition = openmetrics_parser::openmetrics::parse_openmetrics(&text)
            .unwrap_or_else(|e| panic!("not OpenMetrics: {e:?}\n{text}"));
        let mut samples = HashMap::new();
        for (name, family) in &exposition.families {
            for sample in family.iter_samples() {
                let labels = sample.get_labelset().unwrap();
                let value = match &sample.value {
                    OpenMetricsValue::Counter(c) => c.value.as_f64(),
                    OpenMetricsValue::Gauge(n) => n.as_f64(),
                    OpenMetricsValue::Histogram(h) => h.count.unwrap() as f64,
                    other => panic!("{name}: unexpected {other:?}"),
                };
                samples.insert(key(name, labels.iter()), value);
            }
        }
        Metrics { text, samples }
    }

    /// The sample's value; 0 for a series not there (a counter never touched).
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let labels: Vec<_> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let key = key(name, labels.iter().map(|(k, v)| (k, v)));
        self.samples.get(&key).copied().unwrap_or(0.0)
    }

    fn requests(&self, method: &str, route: &str, status: &str) -> f64 {
        self.get(
            "gatehouse_http_request_duration_seconds",
            &[("method", method), ("route", route), ("status", status)],
        )
    }

    fn sign_ins(&self, method: &str, outcome: &str) -> f64 {
        self.get(
            "gatehouse_sign_ins",
            &[("method", method), ("outcome", outcome)],
        )
    }
}

async fn metrics_count_what_was_sent(b: Backend) {
    let app = TestApp::spawn_with(b, |s| {
        with_secrets(&[SECRET])(s);
        s.rate_limit.login_failures = 3;
    })
    .await;
    let before = Metrics::scrape(&app, &app.base).await;
    assert_eq!(before.sign_ins("password", "success"), 0.0);

    // Password: two registrations, a good login, three bad ones, then a locked one.
    let (alice, bob) = (email(), email());
    let token = app.registered(&alice, "password123").await;
    app.registered(&bob, "password123").await;
    assert_eq!(app.login(&alice, "password123").await.0, StatusCode::OK);
    for _ in 0..3 {
        assert_eq!(
            app.login(&bob, "wrong-password").await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    let (status, body) = app.login(&bob, "password123").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    // Token checks, good and bad, and a path no route has (with a secret in it).
    for _ in 0..5 {
        assert_eq!(app.me(&token).await.0, StatusCode::OK);
    }
    assert_eq!(app.me("not-a-token").await.0, StatusCode::UNAUTHORIZED);
    let (status, _) = read(app.get("/nope/sk_live_0123456789", None).await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // SelfKey: a wallet signs up and in; its login token replayed fails.
    let wallet = TestWallet::random();
    let wallet_email = email();
    let wallet_token = signed_up(&app, &wallet, &wallet_email).await;
    let (session, claims) = sign_in(&app, &wallet).await;
    let (_, body) = login_token(&app, &wallet_token, None).await;
    let login = json!({"token": body["token"]});
    assert_eq!(post_login(&app, &login).await.0, StatusCode::CREATED);
    assert_eq!(post_login(&app, &login).await.0, StatusCode::UNAUTHORIZED);
    // OwnID: a session for a passwordless account, and for nobody.
    let carol = email();
    app.registered_passwordless(&carol, "ownid-data-of-carol")
        .await;
    let reply = call(&app, SESSION, json!({"loginId": carol})).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let reply = call(&app, SESSION, json!({"loginId": email()})).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);

    let m = Metrics::scrape(&app, &app.base).await;
    assert_eq!(m.sign_ins("password", "success"), 1.0);
    assert_eq!(m.sign_ins("password", "failure"), 3.0);
    assert_eq!(m.sign_ins("password", "locked_out"), 1.0);
    assert_eq!(m.sign_ins("selfkey", "success"), 2.0);
    assert_eq!(m.sign_ins("selfkey", "failure"), 1.0);
    assert_eq!(m.sign_ins("ownid", "success"), 1.0);
    assert_eq!(m.sign_ins("ownid", "failure"), 1.0);
    assert_eq!(m.get("gatehouse_login_lockouts", &[]), 1.0);
    assert_eq!(m.requests("POST", "/auth/register", "200"), 3.0);
    assert_eq!(m.requests("POST", "/auth/login", "200"), 1.0);
    assert_eq!(m.requests("POST", "/auth/login", "401"), 3.0);
    assert_eq!(m.requests("POST", "/auth/login", "429"), 1.0);
    assert_eq!(m.requests("GET", "/auth/me", "200"), 5.0);
    assert_eq!(m.requests("GET", "/auth/me", "401"), 1.0);
    assert_eq!(m.requests("GET", "unmatched", "404"), 1.0);
    assert_eq!(m.requests("POST", "/api/v1/selfkey/login", "201"), 2.0);
    assert_eq!(m.requests("POST", "/api/v1/selfkey/login", "401"), 1.0);
    assert_eq!(
        m.requests("POST", "/api/v1/selfkey/auth/challenge/{key}", "201")
            + m.requests("POST", "/api/v1/selfkey/auth/challenge", "201"),
        2.0
    );
    assert_eq!(m.requests("POST", "/ownid/{name}", "200"), 1.0);
    assert_eq!(m.requests("POST", "/ownid/{name}", "404"), 1.0);
    assert_eq!(
        m.requests("GET", "/metrics", "200"),
        1.0,
        "the first scrape"
    );
    // Hashes: two registrations and four checked logins (the locked one is not).
    assert_eq!(m.get("gatehouse_password_hash_wait_seconds", &[]), 6.0);
    assert_eq!(m.get("gatehouse_password_hash_refusals", &[]), 0.0);
    assert_eq!(m.get("gatehouse_password_hash_queue_depth", &[]), 0.0);
    assert_eq!(m.get("gatehouse_mail_outbox_depth", &[]), 0.0);
    // Database calls, timed where each backend runs them.
    let db = |call| {
        m.get(
            "gatehouse_database_call_duration_seconds",
            &[("call", call)],
        )
    };
    match b {
        Backend::Sqlite => {
            // Three accounts made, sessions started, tokens taken: all writes.
            assert!(db("write") >= 3.0 + 5.0, "{}", m.text);
            // Five /auth/me read a session and a profile each.
            assert!(db("read") >= 10.0, "{}", m.text);
            assert_eq!(db("statement") + db("transaction"), 0.0);
        }
        Backend::Postgres => {
            assert!(db("statement") >= 3.0 + 5.0 + 10.0, "{}", m.text);
            assert_eq!(db("read") + db("write"), 0.0);
        }
    }

    // Nothing a client sent or was given is in a label.
    let account_id = jwt_parts(&token).1["sub"].as_str().unwrap().to_string();
    let wallet_account = claims["sub"].as_str().unwrap().to_string();
    for secret in [
        alice.as_str(),
        bob.as_str(),
        carol.as_str(),
        wallet_email.as_str(),
        &wallet.address(),
        &token,
        &session,
        &account_id,
        &wallet_account,
        "sk_live_0123456789",
        "password123",
        "ownid-data-of-carol",
    ] {
        assert!(!m.text.contains(secret), "{secret} is in /metrics");
    }
}

async fn the_rate_limit_refusals_are_counted(b: Backend) {
    let app = TestApp::spawn_with(b, |s| s.rate_limit.per_address = 2).await;
    let addr = email();
    for expected in [
        StatusCode::UNAUTHORIZED,
        StatusCode::UNAUTHORIZED,
        StatusCode::TOO_MANY_REQUESTS,
        StatusCode::TOO_MANY_REQUESTS,
    ] {
        let (status, body) = app.login(&addr, "password123").await;
        assert_eq!(status, expected, "{body}");
    }
    let m = Metrics::scrape(&app, &app.base).await;
    assert_eq!(
        m.get("gatehouse_rate_limit_refusals", &[("limit", "address")]),
        2.0
    );
    assert_eq!(m.sign_ins("password", "failure"), 2.0);
    assert_eq!(m.requests("POST", "/auth/login", "429"), 2.0);
}

async fn metrics_can_have_a_listener_of_their_own(b: Backend) {
    let app = TestApp::spawn_with(b, |s| {
        s.metrics.listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let (status, body) = read(app.get("/metrics", None).await).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "not on the main listener");
    assert_eq!(body, json!({"message": "No such route."}));
    app.registered(&email(), "password123").await;
    let base = app.metrics_base.clone().expect("a metrics listener");
    assert_ne!(base, app.base);
    let m = Metrics::scrape(&app, &base).await;
    assert_eq!(m.requests("POST", "/auth/register", "200"), 1.0);
    assert_eq!(m.requests("GET", "unmatched", "404"), 1.0);

    let off = TestApp::spawn_with(b, |s| s.metrics.enabled = false).await;
    let (status, _) = read(off.get("/metrics", None).await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(off.metrics_base.is_none());
}

async fn every_answer_carries_a_request_id(b: Backend) {
    let app = TestApp::spawn(b).await;
    let mut seen = std::collections::HashSet::new();
    for path in ["/health", "/auth/me", "/nope"] {
        let res = app
            .client
            .get(app.url(path))
            .header("x-request-id", "from-the-client")
            .send()
            .await
            .unwrap();
        let id = res.headers()["x-request-id"].to_str().unwrap().to_string();
        assert_eq!(id.len(), 32, "{path}: {id}");
        assert!(id.bytes().all(|c| c.is_ascii_hexdigit()), "{id}");
        assert!(seen.insert(id), "a new id for each request");
        let (status, _) = read(res).await;
        assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR);
    }
    // From a trusted proxy, its id is kept; a malformed one is replaced.
    let proxied =
        TestApp::spawn_with(b, |s| s.http.trusted_proxies = vec!["127.0.0.1".into()]).await;
    for (sent, kept) in [("lb-7f3a.42", true), ("bad id", false), ("", false)] {
        let res = proxied
            .client
            .get(proxied.url("/health"))
            .header("x-request-id", sent)
            .send()
            .await
            .unwrap();
        let id = res.headers()["x-request-id"].to_str().unwrap().to_string();
        assert_eq!(id == sent, kept, "{sent:?} -> {id:?}");
        assert!(!id.is_empty());
        let (status, body) = read(res).await;
        assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));
    }
}
