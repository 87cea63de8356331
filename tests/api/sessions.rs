//! Sessions over HTTP: refresh rotation under races, theft detection, sign-out scopes,
//! the sessions list, timeouts, and revocation that every route taking an account
//! token honours at once — on one node and on two sharing PostgreSQL.

use std::collections::HashSet;
use std::time::Duration;

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, email, jwt_parts, postgres_url, read};

crate::on_every_backend!(
    a_refresh_rotates_the_token_and_keeps_the_session,
    fifty_concurrent_refreshes_of_one_token_land_in_one_session,
    the_previous_token_within_the_grace_gets_the_current_tokens_a_bounded_number_of_times,
    a_replay_after_the_grace_ends_the_session_and_its_successor,
    a_grandparent_replayed_during_a_refresh_leaves_no_live_successor,
    unknown_forged_and_malformed_refresh_tokens_are_refused,
    what_the_database_stores_is_refused_as_a_token,
    logout_local_ends_this_session_only,
    logout_others_ends_every_other_session,
    logout_global_ends_every_session,
    logout_refuses_an_unknown_scope_and_a_missing_token,
    the_sessions_list_shows_each_device_and_marks_the_current_one,
    deleting_a_session_ends_it_and_another_accounts_is_not_found,
    the_wallet_routes_refuse_an_ended_session,
    an_idle_session_ends_and_a_refresh_keeps_it_alive,
    the_absolute_lifetime_ends_a_session_that_keeps_refreshing,
    timed_out_sessions_are_purged,
    a_purge_of_many_rows_goes_in_batches_and_counts_them,
    revoke_all_ends_every_session_of_the_account_in_one_call,
    a_sign_in_over_the_cap_ends_the_least_recently_used_sessions,
    an_account_over_the_cap_keeps_nine_tenths_of_it,
    an_account_that_signed_in_three_thousand_times_lists_at_most_the_cap,
    a_purge_renews_its_lease_each_round_and_stops_when_another_holds_it,
);

const REFUSED: &str = "The refresh token is invalid, expired or revoked.";

fn bearer_refused() -> Value {
    json!({"message": "A valid bearer token is required."})
}

fn token(body: &Value) -> &str {
    body["token"].as_str().unwrap()
}

fn refresh_token(body: &Value) -> &str {
    body["refresh_token"].as_str().unwrap()
}

fn sid(body: &Value) -> String {
    jwt_parts(token(body)).1["sid"].as_str().unwrap().to_owned()
}

async fn assert_refresh_refused(app: &TestApp, what: &str, refresh: &str) {
    let (status, body) = app.refresh(refresh).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
    assert_eq!(body, json!({"message": REFUSED}), "{what}");
}

async fn assert_ended(app: &TestApp, what: &str, signed_in: &Value) {
    let (status, body) = app.me(token(signed_in)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
    assert_eq!(body, bearer_refused(), "{what}");
    assert_refresh_refused(app, what, refresh_token(signed_in)).await;
}

async fn assert_live(app: &TestApp, what: &str, signed_in: &Value) {
    let (status, body) = app.me(token(signed_in)).await;
    assert_eq!(status, StatusCode::OK, "{what}: {body}");
    assert!(body["id"].is_string(), "{what}: {body}");
}

async fn a_refresh_rotates_the_token_and_keeps_the_session(b: Backend) {
    let app = TestApp::spawn(b).await;
    let first = app.signed_up(&email(), "password123").await;
    let res = app
        .client
        .post(app.url("/auth/refresh"))
        .json(&json!({"refresh_token": refresh_token(&first)}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["cache-control"], "no-store");
    let (status, next) = read(res).await;
    assert_eq!(status, StatusCode::OK, "{next}");
    let mut keys: Vec<&String> = next.as_object().unwrap().keys().collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["expires_in", "refresh_token", "token", "token_type"],
        "{next}"
    );
    assert_eq!(next["token_type"], "Bearer");
    assert_eq!(next["expires_in"], 900);
    assert_ne!(refresh_token(&next), refresh_token(&first));
    assert_ne!(token(&next), token(&first));
    let (before, after) = (jwt_parts(token(&first)).1, jwt_parts(token(&next)).1);
    assert_eq!(after["sid"], before["sid"]);
    assert_eq!(after["sub"], before["sub"]);
    assert_eq!(after["email"], before["email"]);
    assert_eq!(
        after["auth_time"], before["auth_time"],
        "a refresh is no sign-in"
    );
    // Both account tokens of the session work until they expire.
    assert_live(&app, "the new token", &next).await;
    assert_live(&app, "the old token", &first).await;
    let (status, again) = app.refresh(refresh_token(&next)).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(sid(&again), sid(&first));
}

/// `n` refreshes of one token at once, split over `nodes` in turn.
async fn refresh_at_once(nodes: &[&TestApp], refresh: &str, n: usize) -> Vec<(StatusCode, Value)> {
    join_all((0..n).map(|i| nodes[i % nodes.len()].refresh(refresh))).await
}

/// Every answer is a 200 of the same session, and they hold one current token.
fn assert_one_session(answers: &[(StatusCode, Value)], session: &str) -> String {
    for (status, body) in answers {
        assert_eq!(*status, StatusCode::OK, "{body}");
        assert_eq!(sid(body), session);
    }
    let current: HashSet<&str> = answers.iter().map(|(_, b)| refresh_token(b)).collect();
    assert_eq!(
        current.len(),
        1,
        "every answer holds the session's current token"
    );
    current.into_iter().next().unwrap().to_owned()
}

async fn fifty_concurrent_refreshes_of_one_token_land_in_one_session(b: Backend) {
    let app = TestApp::spawn(b).await;
    let signed_in = app.signed_up(&email(), "password123").await;
    let answers = refresh_at_once(&[&app], refresh_token(&signed_in), 50).await;
    let current = assert_one_session(&answers, &sid(&signed_in));
    let (status, list) = read(app.get("/auth/sessions", Some(token(&signed_in))).await).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["sessions"].as_array().unwrap().len(), 1, "{list}");
    for (_, body) in &answers {
        assert_live(&app, "a racer's token", body).await;
    }
    let (status, next) = app.refresh(&current).await;
    assert_eq!(status, StatusCode::OK, "the session goes on: {next}");
}

async fn the_previous_token_within_the_grace_gets_the_current_tokens_a_bounded_number_of_times(
    b: Backend,
) {
    let app = TestApp::spawn_with(b, |s| s.session.refresh_reuse_limit = 2).await;
    let first = app.signed_up(&email(), "password123").await;
    let (_, second) = app.refresh(refresh_token(&first)).await;
    for replay in 1..=2 {
        let (status, body) = app.refresh(refresh_token(&first)).await;
        assert_eq!(status, StatusCode::OK, "replay {replay}: {body}");
        assert_eq!(
            refresh_token(&body),
            refresh_token(&second),
            "the current token"
        );
        assert_eq!(sid(&body), sid(&first));
        assert_live(&app, "a replay's token", &body).await;
    }
    // Past the bound: refused, and the session is left alone for its owner.
    assert_refresh_refused(&app, "a third replay", refresh_token(&first)).await;
    assert_live(&app, "after too many replays", &second).await;
    let (status, third) = app.refresh(refresh_token(&second)).await;
    assert_eq!(status, StatusCode::OK, "{third}");
}

async fn a_replay_after_the_grace_ends_the_session_and_its_successor(b: Backend) {
    let app = TestApp::spawn_with(b, |s| s.session.refresh_reuse_grace_secs = 1).await;
    let first = app.signed_up(&email(), "password123").await;
    let other = app
        .login(first_email(&first).as_str(), "password123")
        .await
        .1;
    let (status, second) = app.refresh(refresh_token(&first)).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_refresh_refused(&app, "the original after the grace", refresh_token(&first)).await;
    assert_ended(&app, "the successor", &second).await;
    assert_ended(&app, "the original", &first).await;
    // Only that session: the account's other sign-in goes on.
    assert_live(&app, "another session of the account", &other).await;
}

fn first_email(signed_in: &Value) -> String {
    jwt_parts(token(signed_in)).1["email"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn a_grandparent_replayed_during_a_refresh_leaves_no_live_successor(b: Backend) {
    let app = TestApp::spawn(b).await;
    for round in 0..5 {
        let first = app.signed_up(&email(), "password123").await;
        let (_, second) = app.refresh(refresh_token(&first)).await;
        let (_, third) = app.refresh(refresh_token(&second)).await;
        assert_eq!(sid(&third), sid(&first));
        // The current token is refreshed while the grandparent is replayed.
        let ((status, fourth), (replayed, body)) = tokio::join!(
            app.refresh(refresh_token(&third)),
            app.refresh(refresh_token(&first)),
        );
        assert_eq!(replayed, StatusCode::UNAUTHORIZED, "round {round}: {body}");
        assert_eq!(body, json!({"message": REFUSED}));
        if status == StatusCode::OK {
            assert_ended(&app, "a successor issued in the race", &fourth).await;
        } else {
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{fourth}");
            assert_eq!(fourth, json!({"message": REFUSED}));
        }
        assert_ended(&app, "the current token", &third).await;
    }
}

async fn unknown_forged_and_malformed_refresh_tokens_are_refused(b: Backend) {
    let app = TestApp::spawn(b).await;
    let signed_in = app.signed_up(&email(), "password123").await;
    let real = refresh_token(&signed_in).to_owned();
    let (session, rest) = real.split_once('.').unwrap();
    let (_, tag) = rest.split_once('.').unwrap();
    let cases = [
        ("another generation, same tag", format!("{session}.1.{tag}")),
        (
            "another session, same tag",
            format!("{}.0.{tag}", gatehouse::crypto::random_id()),
        ),
        ("a truncated tag", real[..real.len() - 2].to_owned()),
        ("the account token", token(&signed_in).to_owned()),
        ("a word", "refresh".to_owned()),
        ("very long", "a".repeat(10_000)),
    ];
    for (what, forged) in cases {
        assert_refresh_refused(&app, what, &forged).await;
    }
    // A well-formed token of another server's secret.
    let foreign =
        gatehouse::crypto::refresh::RefreshKey::new(b"another-secret-another-secret-another")
            .token(session, 0);
    assert_refresh_refused(&app, "another secret", &foreign).await;
    let (status, body) = app.post_json("/auth/refresh", &json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"message": "The 'refresh_token' field is required and was not provided."})
    );
    let (status, body) = app
        .post_json("/auth/refresh", &json!({"refresh_token": 7}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "Unable to parse JSON request");
    // None of this touched the session.
    let (status, next) = app.refresh(&real).await;
    assert_eq!(status, StatusCode::OK, "{next}");
}

/// Every value of every stored session row, as text.
async fn stored_session_values(app: &TestApp) -> Vec<String> {
    let url = app.app.settings.database_url();
    if let Some(path) = url.strip_prefix("sqlite://") {
        let conn = rusqlite::Connection::open(path).unwrap();
        let mut statement = conn.prepare("SELECT * FROM sessions").unwrap();
        let columns = statement.column_count();
        let mut rows = statement.query([]).unwrap();
        let mut values = Vec::new();
        while let Some(row) = rows.next().unwrap() {
            for i in 0..columns {
                match row.get_ref(i).unwrap() {
                    rusqlite::types::ValueRef::Text(t) => {
                        values.push(String::from_utf8(t.to_vec()).unwrap())
                    }
                    rusqlite::types::ValueRef::Integer(n) => values.push(n.to_string()),
                    _ => {}
                }
            }
        }
        values
    } else {
        use sqlx::Row;
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        let rows = sqlx::query(
            "SELECT id, account_id, generation::text, method, auth_time::text FROM sessions",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        pool.close().await;
        rows.iter()
            .flat_map(|r| (0..5).map(move |i| r.get::<String, _>(i)))
            .collect()
    }
}

async fn what_the_database_stores_is_refused_as_a_token(b: Backend) {
    let app = TestApp::spawn(b).await;
    let signed_in = app.signed_up(&email(), "password123").await;
    let values = stored_session_values(&app).await;
    let session = sid(&signed_in);
    assert!(values.contains(&session), "{values:?}");
    let mut candidates = values.clone();
    candidates.push(format!("{session}.0"));
    candidates.push(format!("{session}.0.{session}"));
    candidates.push(values.join("."));
    for candidate in &candidates {
        assert!(
            !candidate.contains(refresh_token(&signed_in).rsplit('.').next().unwrap()),
            "the tag is stored: {candidate}"
        );
        assert_refresh_refused(&app, candidate, candidate).await;
        let (status, body) = app.me(candidate).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{candidate}: {body}");
    }
    assert_live(&app, "the session", &signed_in).await;
}

/// Three sign-ins of one account.
async fn three_sessions(app: &TestApp) -> [Value; 3] {
    let address = email();
    let a = app.signed_up(&address, "password123").await;
    let (_, b) = app.login(&address, "password123").await;
    let (_, c) = app.login(&address, "password123").await;
    [a, b, c]
}

async fn logout_local_ends_this_session_only(b: Backend) {
    let app = TestApp::spawn(b).await;
    let [a, b_, c] = three_sessions(&app).await;
    let res = app
        .client
        .post(app.url("/auth/logout"))
        .bearer_auth(token(&a))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert!(res.headers().get("set-cookie").is_none(), "no cookie mode");
    let (status, body) = read(res).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(body, Value::Null);
    assert_ended(&app, "the session signed out", &a).await;
    assert_live(&app, "another", &b_).await;
    let (status, body) = app.logout(token(&c), Some("local")).await;
    assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));
    assert_ended(&app, "the third, signed out by name", &c).await;
    assert_live(&app, "the second", &b_).await;
}

async fn logout_others_ends_every_other_session(b: Backend) {
    let app = TestApp::spawn(b).await;
    let [a, b_, c] = three_sessions(&app).await;
    let stranger = app.signed_up(&email(), "password123").await;
    let (status, body) = app.logout(token(&a), Some("others")).await;
    assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));
    assert_live(&app, "the session that asked", &a).await;
    assert_ended(&app, "the second", &b_).await;
    assert_ended(&app, "the third", &c).await;
    assert_live(&app, "another account", &stranger).await;
    let (status, next) = app.refresh(refresh_token(&a)).await;
    assert_eq!(status, StatusCode::OK, "{next}");
}

async fn logout_global_ends_every_session(b: Backend) {
    let app = TestApp::spawn(b).await;
    let [a, b_, c] = three_sessions(&app).await;
    let stranger = app.signed_up(&email(), "password123").await;
    let (status, body) = app.logout(token(&b_), Some("global")).await;
    assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));
    for (what, s) in [("first", &a), ("second", &b_), ("third", &c)] {
        assert_ended(&app, what, s).await;
    }
    assert_live(&app, "another account", &stranger).await;
    let (status, body) = app.logout(token(&a), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "signed out already");
    assert_eq!(body, bearer_refused());
}

async fn logout_refuses_an_unknown_scope_and_a_missing_token(b: Backend) {
    let app = TestApp::spawn(b).await;
    let signed_in = app.signed_up(&email(), "password123").await;
    let (status, body) = app.logout(token(&signed_in), Some("everywhere")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "Unable to parse JSON request");
    assert_live(&app, "after a refused logout", &signed_in).await;
    let res = app
        .client
        .post(app.url("/auth/logout"))
        .json(&json!({"scope": "global"}))
        .send()
        .await
        .unwrap();
    let (status, body) = read(res).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body, bearer_refused());
    assert_live(&app, "after an anonymous logout", &signed_in).await;
}

async fn the_sessions_list_shows_each_device_and_marks_the_current_one(b: Backend) {
    let app = TestApp::spawn(b).await;
    let address = email();
    let laptop = app.signed_up(&address, "password123").await;
    let res = app
        .client
        .post(app.url("/auth/login"))
        .header("user-agent", "Phone/1.0")
        .json(&json!({"email": address, "password": "password123"}))
        .send()
        .await
        .unwrap();
    let (_, phone) = read(res).await;
    let res = app.get("/auth/sessions", Some(token(&phone))).await;
    assert_eq!(res.headers()["cache-control"], "no-store");
    let (status, body) = read(res).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let sessions = body["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2, "{body}");
    // Oldest first, to the second; two sign-ins in one second come in id order.
    let by_id = |id: String| sessions.iter().find(|s| s["id"] == id.as_str()).unwrap();
    let (laptop, phone) = (by_id(sid(&laptop)), by_id(sid(&phone)));
    for s in sessions {
        let mut keys: Vec<&String> = s.as_object().unwrap().keys().collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "created_at",
                "current",
                "id",
                "ip",
                "last_used_at",
                "method",
                "user_agent"
            ]
        );
        assert_eq!(s["method"], "password");
        assert_eq!(s["ip"], "127.0.0.1");
        assert!(s["created_at"].as_str().unwrap().ends_with('Z'), "{s}");
    }
    assert_eq!(laptop["current"], false);
    assert_eq!(laptop["user_agent"], Value::Null);
    assert_eq!(phone["current"], true);
    assert_eq!(phone["user_agent"], "Phone/1.0");
    let (status, body) = read(app.get("/auth/sessions", None).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body, bearer_refused());
}

async fn deleting_a_session_ends_it_and_another_accounts_is_not_found(b: Backend) {
    let app = TestApp::spawn(b).await;
    let [a, b_, _] = three_sessions(&app).await;
    let stranger = app.signed_up(&email(), "password123").await;
    let delete = |bearer: String, id: String| {
        let req = app
            .client
            .delete(app.url(&format!("/auth/sessions/{id}")))
            .bearer_auth(bearer);
        async move { read(req.send().await.unwrap()).await }
    };
    let (status, body) = delete(token(&a).into(), sid(&b_)).await;
    assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));
    assert_ended(&app, "the deleted session", &b_).await;
    assert_live(&app, "the session that deleted it", &a).await;
    let not_found = json!({"message": "No such session."});
    let (status, body) = delete(token(&a).into(), sid(&b_)).await;
    assert_eq!((status, body), (StatusCode::NOT_FOUND, not_found.clone()));
    let (status, body) = delete(token(&a).into(), sid(&stranger)).await;
    assert_eq!((status, body), (StatusCode::NOT_FOUND, not_found.clone()));
    assert_live(&app, "the other account's session", &stranger).await;
    let (status, body) = delete(token(&a).into(), "no-such-id".into()).await;
    assert_eq!((status, body), (StatusCode::NOT_FOUND, not_found));
    let (status, body) = delete(token(&b_).into(), sid(&a)).await;
    assert_eq!((status, body), (StatusCode::UNAUTHORIZED, bearer_refused()));
}

async fn the_wallet_routes_refuse_an_ended_session(b: Backend) {
    let app = TestApp::spawn(b).await;
    let signed_in = app.signed_up(&email(), "password123").await;
    let wallets = "/api/v1/selfkey/wallets";
    let (status, body) = read(app.get(wallets, Some(token(&signed_in))).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"wallets": []}));
    let (status, _) = app.logout(token(&signed_in), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = read(app.get(wallets, Some(token(&signed_in))).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["code"], "invalid_token");
    let res = app
        .client
        .post(app.url("/api/v1/selfkey/link-token"))
        .bearer_auth(token(&signed_in))
        .send()
        .await
        .unwrap();
    let (status, body) = read(res).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["code"], "invalid_token");
}

async fn an_idle_session_ends_and_a_refresh_keeps_it_alive(b: Backend) {
    // Times are whole seconds in the store, so each check keeps a second or more
    // between it and the edge it tests, whatever the machine's load.
    let app = TestApp::spawn_with(b, |s| s.session.idle_timeout_secs = 4).await;
    let kept = app.signed_up(&email(), "password123").await;
    let left = app.signed_up(&email(), "password123").await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (status, kept) = app.refresh(refresh_token(&kept)).await;
    assert_eq!(status, StatusCode::OK, "{kept}");
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_ended(&app, "idle for 4.5 s", &left).await;
    assert_live(&app, "refreshed 2 s ago", &kept).await;
    tokio::time::sleep(Duration::from_millis(4500)).await;
    assert_ended(&app, "idle since its refresh", &kept).await;
}

async fn the_absolute_lifetime_ends_a_session_that_keeps_refreshing(b: Backend) {
    let app = TestApp::spawn_with(b, |s| {
        s.session.idle_timeout_secs = 3;
        s.session.absolute_lifetime_secs = 3;
    })
    .await;
    let first = app.signed_up(&email(), "password123").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, second) = app.refresh(refresh_token(&first)).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    tokio::time::sleep(Duration::from_millis(2000)).await;
    // Refreshed 2 s ago, under the idle timeout, but signed in 3.5 s ago.
    assert_ended(&app, "past its absolute lifetime", &second).await;
}

async fn timed_out_sessions_are_purged(b: Backend) {
    // Two seconds of idle timeout: room for a slow machine between the young session's
    // sign-up and its check.
    let app = TestApp::spawn_with(b, |s| s.session.idle_timeout_secs = 2).await;
    let old = app.signed_up(&email(), "password123").await;
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let young = app.signed_up(&email(), "password123").await;
    let now = gatehouse::domain::unix_now();
    let store = app.app.store.sessions();
    assert_eq!(store.purge_sessions(now, 1_000).await.unwrap(), 1);
    let values = stored_session_values(&app).await;
    assert!(!values.contains(&sid(&old)), "{values:?}");
    assert!(values.contains(&sid(&young)), "{values:?}");
    assert_live(&app, "the young session", &young).await;
}

/// 250 timed-out sessions, 120 expired one-time values, 150 pending sign-ins, 130 used
/// client assertions and 110 OIDC codes an hour past their end, purged 100 rows a
/// statement: three rounds (100, 100, 50 sessions), each counted in the metric as it
/// goes, and the live session and the code not yet an hour past its end left.
async fn a_purge_of_many_rows_goes_in_batches_and_counts_them(b: Backend) {
    use gatehouse::purge::{Batches, expired};
    use gatehouse::store::StoredCode;
    use gatehouse::store::mfa::NewPending;
    use gatehouse::store::sessions::NewSession;
    let app = TestApp::spawn(b).await;
    let live = app.signed_up(&email(), "password123").await;
    let account =
        gatehouse::domain::AccountId(jwt_parts(token(&live)).1["sub"].as_str().unwrap().into());
    // The rows end in an hour and the purge runs as of an hour and a second from now:
    // the server's own purge (at its start, then every minute) leaves them to this one.
    let now = gatehouse::domain::unix_now();
    let later = now + 3_601;
    let store = &app.app.store;
    for n in 0..250 {
        let ended = store
            .sessions()
            .create_session(&NewSession {
                id: format!("timed-out-{n}"),
                account: account.clone(),
                method: "password".into(),
                amr: "pwd".into(),
                user_agent: None,
                ip: None,
                now,
                idle_expires_at: now + 3_600,
                expires_at: now + 3_600,
                max_per_account: 1_000,
                oidc: None,
                keep_per_account: 900,
            })
            .await
            .unwrap();
        assert_eq!(ended, 0);
    }
    for n in 0..120 {
        store
            .put_one_time(&format!("expired-{n}"), "test", "subject", now + 3_600)
            .await
            .unwrap();
    }
    for n in 0..150 {
        store
            .mfa()
            .put_pending(&NewPending {
                id_hash: format!("pending-{n}"),
                account: account.clone(),
                amr: "pwd".into(),
                method: "password".into(),
                enroll_only: false,
                expires_at: now + 3_600,
            })
            .await
            .unwrap();
    }
    for n in 0..130 {
        let jti = format!("jti-{n}");
        assert!(
            store
                .oidc()
                .use_assertion("a-client", &jti, now + 3_600, now)
                .await
                .unwrap()
        );
    }
    let client = gatehouse::oidc::clients::Registration {
        name: "Purged".into(),
        redirect_uris: vec!["https://rp.example/cb".into()],
        ..Default::default()
    }
    .check(gatehouse::crypto::random_id(), now)
    .unwrap();
    store.oidc().add_client(&client).await.unwrap();
    // A code is kept an hour past its end (to recognise a late replay): those that
    // ended at `now` go at `later`, the one that ends a minute after stays.
    for (n, ends) in (0..111).map(|n| (n, if n < 110 { now } else { now + 60 })) {
        store
            .oidc()
            .add_code(&StoredCode {
                code_hash: format!("code-{n}"),
                client_id: client.id.clone(),
                account_id: account.0.clone(),
                session_id: "a-session".into(),
                redirect_uri: "https://rp.example/cb".into(),
                scopes: "openid".into(),
                nonce: None,
                code_challenge: None,
                auth_time: now,
                amr: "pwd".into(),
                expires_at: ends,
            })
            .await
            .unwrap();
    }
    let batches = Batches {
        rows: 100,
        pause: Duration::from_millis(1),
    };
    let metrics = &app.app.metrics;
    let purge = expired(store.as_ref(), metrics, later, batches, None)
        .await
        .unwrap();
    assert_eq!(purge.rounds, 3, "{purge:?}");
    assert!(purge.rows >= 760, "{purge:?}");
    let text = metrics.render(0);
    for line in [
        "gatehouse_purged_rows_total{table=\"sessions\"} 250",
        "gatehouse_purged_rows_total{table=\"one_time_tokens\"} 120",
        "gatehouse_purged_rows_total{table=\"pending_signins\"} 150",
        "gatehouse_purged_rows_total{table=\"oidc_assertions\"} 130",
        "gatehouse_purged_rows_total{table=\"oidc_codes\"} 110",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
    }
    assert_live(&app, "the live session", &live).await;
    let again = expired(store.as_ref(), metrics, later, batches, None)
        .await
        .unwrap();
    assert_eq!(again.rows, 0, "{again:?}");
    assert_eq!(again.rounds, 1, "{again:?}");
    let late = store.oidc().use_code("code-110", now).await.unwrap();
    assert!(
        matches!(late, gatehouse::store::CodeUse::Fresh(_)),
        "{late:?}"
    );
}

async fn revoke_all_ends_every_session_of_the_account_in_one_call(b: Backend) {
    let app = TestApp::spawn(b).await;
    let [a, b_, c] = three_sessions(&app).await;
    let stranger = app.signed_up(&email(), "password123").await;
    let account =
        gatehouse::domain::AccountId(jwt_parts(token(&a)).1["sub"].as_str().unwrap().into());
    assert_eq!(app.app.sessions.revoke_all(&account).await.unwrap(), 3);
    for (what, s) in [("first", &a), ("second", &b_), ("third", &c)] {
        assert_ended(&app, what, s).await;
    }
    assert_live(&app, "another account", &stranger).await;
    assert_eq!(app.app.sessions.revoke_all(&account).await.unwrap(), 0);
}

// Two nodes on one PostgreSQL: the races and the revocations hold across nodes.

async fn two_nodes() -> Option<(TestApp, TestApp)> {
    if postgres_url().is_none() {
        eprintln!("skipped: GATEHOUSE_TEST_POSTGRES_URL is not set");
        return None;
    }
    let first = TestApp::spawn(Backend::Postgres).await;
    let second = first.spawn_beside(|_| {}).await;
    Some((first, second))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_refreshes_split_across_two_nodes_land_in_one_session() {
    let Some((a, b)) = two_nodes().await else {
        return;
    };
    let signed_in = a.signed_up(&email(), "password123").await;
    let answers = refresh_at_once(&[&a, &b], refresh_token(&signed_in), 50).await;
    let current = assert_one_session(&answers, &sid(&signed_in));
    for (i, (_, body)) in answers.iter().enumerate() {
        let node = if i % 2 == 0 { &b } else { &a };
        assert_live(node, "a racer's token on the other node", body).await;
    }
    let (status, next) = b.refresh(&current).await;
    assert_eq!(status, StatusCode::OK, "{next}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_on_one_node_takes_effect_on_the_other_at_once() {
    let Some((a, b)) = two_nodes().await else {
        return;
    };
    let address = email();
    let first = a.signed_up(&address, "password123").await;
    let (_, second) = b.login(&address, "password123").await;
    assert_live(&b, "on the other node", &first).await;
    let (status, _) = b.logout(token(&second), Some("others")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_ended(&a, "signed out from the other node", &first).await;
    assert_live(&a, "the session that asked", &second).await;
    // Theft detected on one node ends the session for the other.
    let (_, next) = a.refresh(refresh_token(&second)).await;
    let (_, after) = b.refresh(refresh_token(&next)).await;
    let (status, body) = a.refresh(refresh_token(&second)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a grandparent: {body}");
    assert_ended(&b, "the successor, on the other node", &after).await;
}

async fn a_sign_in_over_the_cap_ends_the_least_recently_used_sessions(b: Backend) {
    let app = TestApp::spawn_with(b, |s| s.session.max_per_account = 3).await;
    let address = email();
    // Times are kept to the second: a pause between sign-ins orders them.
    let pause = || tokio::time::sleep(Duration::from_millis(1100));
    let first = app.signed_up(&address, "password123").await;
    let mut later = Vec::new();
    for _ in 0..2 {
        pause().await;
        let (status, body) = app.login(&address, "password123").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        later.push(body);
    }
    let (second, third) = (later[0].clone(), later[1].clone());
    // The first session is used again: now the second is the least recently used.
    pause().await;
    let (status, first) = app.refresh(refresh_token(&first)).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    pause().await;
    let (status, fourth) = app.login(&address, "password123").await;
    assert_eq!(status, StatusCode::OK, "{fourth}");
    assert_ended(&app, "the least recently used", &second).await;
    for (what, s) in [("refreshed", &first), ("third", &third), ("new", &fourth)] {
        assert_live(&app, what, s).await;
    }
    pause().await;
    let (status, fifth) = app.login(&address, "password123").await;
    assert_eq!(status, StatusCode::OK, "{fifth}");
    assert_ended(&app, "the next least recently used", &third).await;

    let (status, body) = read(app.get("/auth/sessions", Some(token(&fifth))).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let listed: HashSet<String> = body["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        listed,
        HashSet::from([sid(&first), sid(&fourth), sid(&fifth)]),
        "{body}"
    );
}

/// Over a cap of 10, a sign-in ends sessions down to 9 (a tenth fewer, so the sort that
/// picks them runs once in several sign-ins); the next sign-in ends none.
async fn an_account_over_the_cap_keeps_nine_tenths_of_it(b: Backend) {
    let app = TestApp::spawn_with(b, |s| s.session.max_per_account = 10).await;
    let address = email();
    let mut last = app.signed_up(&address, "password123").await;
    let listed = |body: &Value| body["sessions"].as_array().map(Vec::len);
    for n in 2..=12 {
        let (status, body) = app.login(&address, "password123").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        last = body;
        let (status, body) = read(app.get("/auth/sessions", Some(token(&last))).await).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let expected = match n {
            ..=10 => n,
            11 => 9,
            _ => 10,
        };
        assert_eq!(listed(&body), Some(expected), "after sign-in {n}: {body}");
    }
    // All signed in within a second or two: which ended is the other test's matter
    // (it orders them a second apart); the new session always stays.
    assert_live(&app, "the last", &last).await;
}

/// 3,000 sign-ins of one account (each a session written as a sign-in writes it, under
/// the default cap of 100): the account keeps at most 100 sessions, so its
/// `/auth/sessions` answer stays a few KiB (uncapped it would list 3,000, ~600 KB), and
/// `/auth/me` still answers for the newest.
async fn an_account_that_signed_in_three_thousand_times_lists_at_most_the_cap(b: Backend) {
    use gatehouse::store::sessions::NewSession;
    let app = TestApp::spawn(b).await;
    let cap = app.app.settings.session.max_per_account;
    assert_eq!(cap, 100, "the default this test is about");
    let keep = gatehouse::sessions::keep_per_account(cap);
    let address = email();
    let first = app.signed_up(&address, "password123").await;
    let account =
        gatehouse::domain::AccountId(jwt_parts(token(&first)).1["sub"].as_str().unwrap().into());
    let now = gatehouse::domain::unix_now();
    let store = app.app.store.sessions();
    for wave in 0..60 {
        let sessions: Vec<NewSession> = (0..50)
            .map(|n| NewSession {
                id: format!("sign-in-{wave}-{n}"),
                account: account.clone(),
                method: "password".into(),
                amr: "pwd".into(),
                user_agent: Some("Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0".into()),
                ip: Some("203.0.113.7".into()),
                now,
                idle_expires_at: now + 3_600,
                expires_at: now + 3_600,
                max_per_account: cap,
                keep_per_account: keep,
                oidc: None,
            })
            .collect();
        for ended in join_all(sessions.iter().map(|s| store.create_session(s))).await {
            ended.unwrap();
        }
    }
    let (status, newest) = app.login(&address, "password123").await;
    assert_eq!(status, StatusCode::OK, "{newest}");
    let res = app.get("/auth/sessions", Some(token(&newest))).await;
    assert_eq!(res.status(), StatusCode::OK);
    let bytes = res.bytes().await.unwrap();
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    let listed = body["sessions"].as_array().unwrap();
    assert!(
        (1..=cap as usize).contains(&listed.len()),
        "{} sessions listed",
        listed.len()
    );
    assert!(
        listed.iter().any(|s| s["id"] == sid(&newest)),
        "the newest is listed: {body}"
    );
    assert!(bytes.len() < 40_000, "{} bytes", bytes.len());
    assert_live(&app, "the newest", &newest).await;
}

/// 150 expired one-time values, purged 100 a round under a lease: when another node
/// has taken the lease after the first round, the purge stops there (100 purged); under
/// a lease it holds, it renews it and finishes.
async fn a_purge_renews_its_lease_each_round_and_stops_when_another_holds_it(b: Backend) {
    use gatehouse::purge::{Batches, Lease, expired};
    let app = TestApp::spawn(b).await;
    let store = &app.app.store;
    let now = gatehouse::domain::unix_now();
    let later = now + 3_601;
    for n in 0..150 {
        store
            .put_one_time(&format!("leased-{n}"), "test", "subject", now + 3_600)
            .await
            .unwrap();
    }
    let batches = Batches {
        rows: 100,
        pause: Duration::from_millis(1),
    };
    let lease = |holder| Lease {
        name: "purge-test",
        holder,
        secs: 150,
    };
    assert!(
        store
            .take_lease("purge-test", "other", now, now + 150)
            .await
            .unwrap()
    );
    let metrics = &app.app.metrics;
    let stopped = expired(store.as_ref(), metrics, later, batches, Some(lease("this")))
        .await
        .unwrap();
    assert_eq!((stopped.rows, stopped.rounds), (100, 1), "{stopped:?}");
    let finished = expired(
        store.as_ref(),
        metrics,
        later,
        batches,
        Some(lease("other")),
    )
    .await
    .unwrap();
    assert_eq!((finished.rows, finished.rounds), (50, 1), "{finished:?}");
}
