use std::collections::HashSet;
use std::sync::Arc;

use super::*;

async fn store(dir: &tempfile::TempDir) -> Arc<SqliteStore> {
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    Arc::new(SqliteStore::connect(&url, 4).await.unwrap())
}

fn account(n: usize, email: &str) -> NewAccount {
    NewAccount {
        id: AccountId(format!("account-{n}")),
        email: Some((email.to_owned(), email.to_lowercase())),
        password_hash: Some("$argon2id$x".into()),
        ownid_data: None,
        created_at: 1,
    }
}

fn wallet(address: &str) -> NewWallet {
    NewWallet {
        address: address.into(),
        public_key: "00".repeat(64),
        attributes: "[]".into(),
        now: 2,
    }
}

#[test]
fn every_placeholder_is_numbered_by_its_position() {
    let mut conn = Connection::open_in_memory().unwrap();
    migrations::run(&mut conn).unwrap();
    let statements = q::ALL
        .iter()
        .chain(crate::store::sessions::sql::ALL)
        .chain(crate::store::signing_keys::sql::ALL)
        .chain(crate::store::mfa::sql::ALL)
        .chain(crate::store::oidc::sql::ALL)
        .chain(crate::store::authorize::sql::ALL)
        .chain(crate::store::social::sql::ALL);
    for sql in statements.chain(crate::store::admin::sql::ALL) {
        let statement = conn.prepare(sql).unwrap();
        for i in 1..=statement.parameter_count() {
            assert_eq!(
                statement.parameter_name(i),
                Some(format!("${i}").as_str()),
                "{sql}"
            );
        }
    }
}

#[test]
fn urls_name_a_file() {
    assert_eq!(file_of("sqlite://a/b.db"), Some(PathBuf::from("a/b.db")));
    assert_eq!(
        file_of("sqlite:///abs/b.db"),
        Some(PathBuf::from("/abs/b.db"))
    );
    assert_eq!(file_of("sqlite:b.db"), Some(PathBuf::from("b.db")));
    for bad in [
        "sqlite://",
        "sqlite::memory:",
        "sqlite://a.db?mode=ro",
        "a.db",
    ] {
        assert_eq!(file_of(bad), None, "{bad}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_commit_together_and_a_failed_one_leaves_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    // 100 accounts with distinct emails and 20 racing for one email, all at once.
    let mut tasks = Vec::new();
    for n in 0..120 {
        let store = store.clone();
        let email = if n < 100 {
            format!("user{n}@example.com")
        } else {
            "Same@Example.com".to_owned()
        };
        tasks.push(tokio::spawn(async move {
            store.create_account(&account(n, &email)).await
        }));
    }
    let mut taken = 0;
    let mut created = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => created += 1,
            Err(StoreError::Conflict(Unique::Email)) => taken += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!((created, taken), (101, 19));
    // Acknowledged means readable at once, on any reader.
    for n in 0..100 {
        let found = store
            .account_by_email(&format!("user{n}@example.com"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.id, AccountId(format!("account-{n}")));
    }
    assert!(
        store
            .account_by_email("same@example.com")
            .await
            .unwrap()
            .is_some()
    );
    // Together: every commit appends at least one page (a frame) to the log, so a
    // log of fewer frames than the 101 writes that changed something holds commits
    // of several writes each.
    let log = std::fs::metadata(dir.path().join("t.db-wal"))
        .unwrap()
        .len();
    let frames = log.saturating_sub(WAL_HEADER) / (WAL_FRAME_HEADER + PAGE);
    assert!(frames < 101, "{frames} frames for 101 writes");
}

/// The sizes in SQLite's write-ahead log format, with the default page size.
const WAL_HEADER: u64 = 32;
const WAL_FRAME_HEADER: u64 = 24;
const PAGE: u64 = 4096;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_of_several_statements_is_undone_whole_when_one_fails() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    store
        .create_account_with_wallet(&account(1, "one@example.com"), &wallet("0xaa"))
        .await
        .unwrap();
    // The account insert succeeds, the wallet insert collides: neither stays, while
    // the write queued beside it commits.
    let second = account(2, "two@example.com");
    let third = account(3, "three@example.com");
    let w = wallet("0xaa");
    let (clash, other) = tokio::join!(
        store.create_account_with_wallet(&second, &w),
        store.create_account(&third),
    );
    assert!(matches!(clash, Err(StoreError::Conflict(Unique::Wallet))));
    other.unwrap();
    assert!(
        store
            .account_by_email("two@example.com")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .account_by_email("three@example.com")
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        store.wallet_account("0xaa").await.unwrap(),
        Some(AccountId("account-1".into()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_concurrent_takes_exactly_one_gets_the_value() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    store
        .put_one_time("jti", "challenge", "subject", i64::MAX)
        .await
        .unwrap();
    let takes = (0..16).map(|_| {
        let store = store.clone();
        tokio::spawn(async move { store.take_one_time("jti", "challenge", 10).await })
    });
    let mut got = Vec::new();
    for t in takes {
        if let Some(s) = t.await.unwrap().unwrap() {
            got.push(s);
        }
    }
    assert_eq!(got, ["subject"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_and_replay_keys_count_every_hit_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let hits = (0..50).map(|_| {
        let store = store.clone();
        tokio::spawn(async move { store.hit("k", 100, 60).await.unwrap().count })
    });
    let mut counts = HashSet::new();
    for h in hits {
        counts.insert(h.await.unwrap());
    }
    assert_eq!(counts, (1..=50).collect::<HashSet<i64>>());
    assert_eq!(
        store.count("k", 159, 60).await.unwrap(),
        Some(WindowCount {
            count: 50,
            window_start: 100
        })
    );
    assert_eq!(store.count("k", 160, 60).await.unwrap(), None);
    assert!(store.remember_once("sig", 0, 60).await.unwrap());
    assert!(!store.remember_once("sig", 59, 60).await.unwrap());
    assert!(store.remember_once("sig", 60, 120).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_are_in_the_file_after_close_and_a_closed_store_refuses_work() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    store
        .create_account(&account(1, "kept@example.com"))
        .await
        .unwrap();
    store.close().await;
    assert!(matches!(store.ping().await, Err(StoreError::Closed)));
    assert!(matches!(
        store.create_account(&account(2, "late@example.com")).await,
        Err(StoreError::Closed)
    ));
    assert!(matches!(
        store.account_by_email("kept@example.com").await,
        Err(StoreError::Closed)
    ));
    // Closed cleanly: the WAL was checkpointed into the database file.
    assert!(!dir.path().join("t.db-wal").exists());
    let reopened = super::super::connect(
        &format!("sqlite://{}", dir.path().join("t.db").display()),
        1,
        Default::default(),
    )
    .await
    .unwrap();
    let kept = reopened.account_by_email("kept@example.com").await.unwrap();
    assert_eq!(kept.unwrap().id, AccountId("account-1".into()));
    reopened.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_starts_over_under_steady_writes_and_reads() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let emails: Vec<String> = (0..8).map(|w| format!("big{w}@example.com")).collect();
    for (w, email) in emails.iter().enumerate() {
        store.create_account(&account(w, email)).await.unwrap();
    }
    // Readers never pause, as on a busy server; each write replaces 60 KiB of an
    // account of its writer's, so 1,000 writes put about 60 MiB through the log.
    let reading = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (store, reading) = (store.clone(), reading.clone());
            tokio::spawn(async move {
                while reading.load(std::sync::atomic::Ordering::Relaxed) {
                    store.ownid_data("big0@example.com").await.unwrap();
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    let writers: Vec<_> = emails
        .into_iter()
        .enumerate()
        .map(|(w, email)| {
            let store = store.clone();
            tokio::spawn(async move {
                for n in 0..125 {
                    let data = format!("{w}-{n}-").repeat(20_000)[..60_000].to_owned();
                    assert!(store.set_ownid_data(&email, &data, 1).await.unwrap());
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    reading.store(false, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        r.await.unwrap();
    }
    let wal = std::fs::metadata(dir.path().join("t.db-wal"))
        .unwrap()
        .len();
    assert!(wal < 16 << 20, "the log grew to {wal} bytes");
}

/// A store whose statistics, once gathered, say an account has one session: 20,000
/// accounts with one session each (every fourth timed out, every tenth account with a
/// wallet, every twentieth with a passkey), and one that signed in 1,500 times more.
fn grow(c: &mut Connection) {
    let tx = c.transaction().unwrap();
    {
        let mut account = tx
            .prepare(
                "INSERT INTO accounts (id, email, email_key, created_at) VALUES (?1, ?2, ?2, 0)",
            )
            .unwrap();
        let mut session = tx
            .prepare(
                "INSERT INTO sessions (id, account_id, generation, rotated_at, replays, method,
                 auth_time, created_at, last_used_at, idle_expires_at, expires_at)
                 VALUES (?1, ?2, 0, 0, 0, 'password', 0, 0, 0, ?3, 4000000000)",
            )
            .unwrap();
        let mut wallet = tx
            .prepare(
                "INSERT INTO wallets (address, public_key, account_id, attributes, created_at,
                 updated_at) VALUES (?1, '', ?2, '[]', 0, 0)",
            )
            .unwrap();
        let mut passkey = tx
            .prepare(
                "INSERT INTO passkeys (id, account_id, credential_id, name, credential, format,
                 aaguid, transports, backup_eligible, backup_state, sign_count, created_at)
                 VALUES (?1, ?2, ?1, '', '{}', 1, '', '[]', 0, 0, 0, 0)",
            )
            .unwrap();
        for n in 0..20_000 {
            let id = format!("account-{n}");
            account
                .execute(params![id, format!("{n}@example.com")])
                .unwrap();
            let idle_end = if n % 4 == 3 { 0 } else { 4_000_000_000i64 };
            session
                .execute(params![format!("s-{n}"), id, idle_end])
                .unwrap();
            if n % 10 == 0 {
                wallet.execute(params![format!("0x{n:040}"), id]).unwrap();
            }
            if n % 20 == 0 {
                passkey.execute(params![format!("p-{n}"), id]).unwrap();
            }
        }
        for n in 0..1_500 {
            session
                .execute(params![format!("busy-{n}"), "account-0", 4_000_000_000i64])
                .unwrap();
        }
    }
    tx.commit().unwrap();
}

/// Every hot statement and the index it must read, whatever the statistics: the
/// session by its primary key (never through `sessions_account_id`, which walks every
/// session of the account), the account by its id or email key, the passkey by its
/// credential, the wallet by its address, the counters by their key, the session cap's
/// count in `sessions_account_id` alone, each purge's batch through its expiry index
/// and by rowid, a page of `users list --after` from both columns of
/// `accounts_created_at` (from `created_at` alone it walks every account created in the
/// same second up to the cursor).
fn hot_statements() -> Vec<(&'static str, &'static [&'static str])> {
    use crate::store::admin::sql as admin;
    use crate::store::mail::sql as mail;
    use crate::store::mfa::sql as mfa;
    use crate::store::oidc::sql as oidc;
    use crate::store::sessions::sql;
    let session: &[&str] = &["sqlite_autoindex_sessions_1 (id=?)"];
    vec![
        (sql::IS_LIVE, session),
        (q::LIVE_PROFILE, session),
        (q::HOLD_LIVE_SESSION, session),
        (sql::END_ONE, session),
        (sql::ROTATE, session),
        (sql::REPLAY, session),
        (sql::REVOKE_REUSED, session),
        (
            q::ACCOUNT_BY_EMAIL,
            &["sqlite_autoindex_accounts_2 (email_key=?)"],
        ),
        (q::ACCOUNT_BY_ID, &["sqlite_autoindex_accounts_1 (id=?)"]),
        (q::ACCOUNT_PROFILE, &["sqlite_autoindex_accounts_1 (id=?)"]),
        (
            q::PASSKEY_BY_CREDENTIAL_ID,
            &["sqlite_autoindex_passkeys_2 (credential_id=?)"],
        ),
        (
            q::RECORD_PASSKEY_USE,
            &["sqlite_autoindex_passkeys_1 (id=?)"],
        ),
        (
            q::WALLET_ACCOUNT,
            &["sqlite_autoindex_wallets_1 (address=?)"],
        ),
        (
            q::TAKE_ONE_TIME,
            &["sqlite_autoindex_one_time_tokens_1 (id=?)"],
        ),
        (q::COUNT, &["sqlite_autoindex_rate_counters_1 (key=?)"]),
        (
            mfa::SECOND_STEP,
            &[
                "sqlite_autoindex_pending_signins_1 (id_hash=?)",
                "sqlite_autoindex_totp_factors_1 (account_id=?)",
                "sqlite_autoindex_rate_counters_1 (key=?)",
            ],
        ),
        (q::RELEASE, &["sqlite_autoindex_rate_counters_1 (key=?)"]),
        (q::RESET, &["sqlite_autoindex_rate_counters_1 (key=?)"]),
        (
            sql::COUNT_OF_ACCOUNT,
            &["COVERING INDEX sessions_account_id (account_id=?)"],
        ),
        (
            sql::PURGE,
            &[
                "COVERING INDEX sessions_idle_expires_at (idle_expires_at<?)",
                "sessions USING INTEGER PRIMARY KEY (rowid=?)",
            ],
        ),
        (
            q::PURGE_EXPIRED[2].1,
            &[
                "COVERING INDEX rate_counters_expires_at (expires_at<?)",
                "rate_counters USING INTEGER PRIMARY KEY (rowid=?)",
            ],
        ),
        (
            mail::PURGE[1].1,
            &[
                "COVERING INDEX mail_tokens_expires_at (expires_at<?)",
                "mail_tokens USING INTEGER PRIMARY KEY (rowid=?)",
            ],
        ),
        (
            mfa::PURGE[0].1,
            &[
                "COVERING INDEX pending_signins_expires_at (expires_at<?)",
                "pending_signins USING INTEGER PRIMARY KEY (rowid=?)",
            ],
        ),
        (
            oidc::PURGE[0].1,
            &[
                "COVERING INDEX oidc_codes_expires_at (expires_at<?)",
                "oidc_codes USING INTEGER PRIMARY KEY (rowid=?)",
            ],
        ),
        (
            oidc::PURGE[1].1,
            &[
                "COVERING INDEX oidc_assertions_expires_at (expires_at<?)",
                "oidc_assertions USING INTEGER PRIMARY KEY (rowid=?)",
            ],
        ),
        (
            crate::store::authorize::sql::PURGE[0].1,
            &[
                "COVERING INDEX oidc_requests_expires_at (expires_at<?)",
                "oidc_requests USING INTEGER PRIMARY KEY (rowid=?)",
            ],
        ),
        (
            admin::LIST_AFTER,
            &["USING INDEX accounts_created_at ((created_at,id)>(?,?))"],
        ),
    ]
}

/// The plan of `statement` on `c`, one line per step.
fn plan_of(c: &Connection, statement: &str) -> Vec<String> {
    let mut explain = c
        .prepare(&format!("EXPLAIN QUERY PLAN {statement}"))
        .unwrap();
    let nulls = std::iter::repeat_n(rusqlite::types::Null, explain.parameter_count());
    explain
        .query_map(rusqlite::params_from_iter(nulls), |r| r.get(3))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn assert_hot_plans_hold(c: &Connection) {
    for (statement, indexes) in hot_statements() {
        let plan = plan_of(c, statement);
        for index in indexes {
            assert!(
                plan.iter().any(|step| step.contains(index)),
                "{index} not in the plan of {statement}\n{plan:#?}"
            );
        }
        if indexes.contains(&"sqlite_autoindex_sessions_1 (id=?)") {
            assert!(
                !plan.iter().any(|step| step.contains("sessions_account_id")),
                "{statement}\n{plan:#?}"
            );
        }
    }
}

/// After `ANALYZE` on a store whose statistics say an account has one session (20,000
/// accounts with one each, and one that signed in 1,500 times more), every hot
/// statement keeps its index. With `account_id = $2`, SQLite took
/// `sessions_account_id` for the statements that name a session, and `/auth/me` of the
/// busy account walked all of its sessions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_lookups_keep_the_primary_key_after_analyze() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let mut c = Connection::open(dir.path().join("t.db")).unwrap();
    grow(&mut c);
    assert_hot_plans_hold(&c);
    c.execute_batch("ANALYZE").unwrap();
    let stat: String = c
        .query_row(
            "SELECT stat FROM sqlite_stat1 WHERE idx = 'sessions_account_id'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(stat, "21500 1", "the statistics this test is about");
    assert_hot_plans_hold(&c);
    // And the store still finds the busy account's session, and only with its account.
    let now = 1;
    let sessions = store.sessions();
    assert!(
        sessions
            .session_is_live("busy-7", &AccountId("account-0".into()), now)
            .await
            .unwrap()
    );
    assert!(
        !sessions
            .session_is_live("busy-7", &AccountId("account-1".into()), now)
            .await
            .unwrap()
    );
}

/// The statements about one account's sessions (`GET /auth/sessions`, `users show`,
/// `users list`, `users disable`) never read `sessions_idle_expires_at`, the purge's
/// index (PostgreSQL, without statistics, read all of it for one account at 10 M:
/// `store::postgres::tests`). With the account's index gone, a plan that could use the
/// expiry index would.
#[tokio::test]
async fn an_accounts_sessions_are_never_read_through_the_expiry_index() {
    use crate::store::admin::sql as admin;
    use crate::store::sessions::sql;
    let dir = tempfile::tempdir().unwrap();
    let _store = store(&dir).await;
    let c = Connection::open(dir.path().join("t.db")).unwrap();
    c.execute_batch("DROP INDEX sessions_account_id").unwrap();
    for statement in [
        sql::OF_ACCOUNT,
        admin::LIVE_SESSIONS,
        admin::ONE,
        admin::LIST,
    ] {
        let plan = plan_of(&c, statement);
        assert!(
            plan.iter().any(|step| step.starts_with("SCAN s")),
            "{statement}\n{plan:#?}"
        );
        assert!(
            !plan
                .iter()
                .any(|step| step.contains("sessions_idle_expires_at")),
            "{statement}\n{plan:#?}"
        );
    }
}

#[tokio::test]
async fn a_time_step_is_accepted_once_and_confirms_once() {
    use crate::store::MfaStore;
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let id = AccountId("a1".into());
    store
        .create_account(&NewAccount {
            id: id.clone(),
            email: None,
            password_hash: Some("$argon2id$x".into()),
            ownid_data: None,
            created_at: 1,
        })
        .await
        .unwrap();
    assert!(store.begin_totp(&id, "sealed", 1).await.unwrap());
    assert!(!store.has_second_factor(&id).await.unwrap());
    let codes = vec!["h1".to_owned(), "h2".to_owned()];
    assert!(store.accept_step(&id, 10, Some(&codes), 2).await.unwrap());
    assert!(!store.accept_step(&id, 11, Some(&codes), 2).await.unwrap());
    assert!(store.has_second_factor(&id).await.unwrap());
    assert!(!store.accept_step(&id, 10, None, 3).await.unwrap());
    assert!(store.accept_step(&id, 11, None, 3).await.unwrap());
    assert!(!store.begin_totp(&id, "other", 4).await.unwrap());

    // The second step's write: a recovery code is accepted once, with its session.
    use crate::store::mfa::{Proof, Spent};
    let session = |sid: &str| crate::store::sessions::NewSession {
        id: sid.into(),
        // The pending sign-in's account is the session's, whatever this says.
        account: AccountId("someone-else".into()),
        method: "password".into(),
        amr: "pwd otp mfa".into(),
        user_agent: None,
        ip: None,
        now: 5,
        idle_expires_at: 1_000,
        expires_at: 2_000,
        max_per_account: 10,
        oidc: None,
        keep_per_account: 10,
    };
    for p in ["q1", "q2"] {
        let pending = crate::store::mfa::NewPending {
            id_hash: p.into(),
            account: id.clone(),
            amr: "pwd".into(),
            method: "password".into(),
            enroll_only: false,
            expires_at: 100,
        };
        store.put_pending(&pending).await.unwrap();
    }
    let code = || Proof::RecoveryCode("h1".into());
    let spent = store
        .spend_attempt("q1", 5, 5, code(), Some(&session("s1")))
        .await
        .unwrap();
    assert!(
        matches!(&spent, Spent::Accepted { attempt, ended: 0, codes_left: Some(1) } if attempt.account == id),
        "{spent:?}"
    );
    assert!(store.session_is_live("s1", &id, 6).await.unwrap());
    let spent = store
        .spend_attempt("q2", 5, 5, code(), Some(&session("s2")))
        .await
        .unwrap();
    assert!(matches!(spent, Spent::Counted(_)), "{spent:?}");
    assert!(!store.session_is_live("s2", &id, 6).await.unwrap());
    let spent = store.spend_attempt("q1", 5, 5, Proof::Step(12), None).await;
    assert_eq!(spent.unwrap(), Spent::NotPending, "used");
    let spent = store
        .spend_attempt("q2", 5, 5, Proof::Step(11), Some(&session("s3")))
        .await
        .unwrap();
    assert!(
        matches!(spent, Spent::Counted(_)),
        "step 11 was accepted: {spent:?}"
    );
    let spent = store
        .spend_attempt("q2", 5, 5, Proof::Step(12), Some(&session("s4")))
        .await
        .unwrap();
    assert!(
        matches!(
            spent,
            Spent::Accepted {
                codes_left: None,
                ..
            }
        ),
        "{spent:?}"
    );
    assert!(store.session_is_live("s4", &id, 6).await.unwrap());
    assert!(!store.session_is_live("s3", &id, 6).await.unwrap());
    let summary = store.factor_summary(&id).await.unwrap();
    assert_eq!((summary.totp, summary.recovery_codes_left), (true, 1));

    // A pending sign-in takes `max` attempts, then none; it expires and is purged.
    let pending = crate::store::mfa::NewPending {
        id_hash: "p1".into(),
        account: id.clone(),
        amr: "pwd".into(),
        method: "password".into(),
        enroll_only: false,
        expires_at: 100,
    };
    store.put_pending(&pending).await.unwrap();
    for _ in 0..2 {
        let attempt = store.attempt_pending("p1", 10, 2).await.unwrap().unwrap();
        assert_eq!(
            (attempt.account.0.as_str(), attempt.amr.as_str()),
            ("a1", "pwd")
        );
    }
    assert!(store.attempt_pending("p1", 10, 2).await.unwrap().is_none());
    assert!(
        store.attempt_pending("p1", 100, 5).await.unwrap().is_none(),
        "expired"
    );
    assert_eq!(
        store.purge_pending(99, 1_000).await.unwrap(),
        [("pending_signins", 0)]
    );
    // At their expiry: p1, and q1 and q2, used in place by their second steps above.
    assert_eq!(
        store.purge_pending(100, 1_000).await.unwrap(),
        [("pending_signins", 3)]
    );
    assert!(!store.take_pending("p1").await.unwrap());
}

/// `Store::optimize` (what the server runs at start and every
/// `database_optimize_every_secs`) gathers the statistics a grown store lacks, in
/// SQLite's recommended form, and the hot statements keep their plans under them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optimize_gathers_statistics_and_the_plans_hold() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let mut c = Connection::open(dir.path().join("t.db")).unwrap();
    grow(&mut c);
    let analyzed = |c: &Connection| -> i64 {
        c.query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE name = 'sqlite_stat1'",
            [],
            |r| r.get(0),
        )
        .unwrap()
    };
    assert_eq!(analyzed(&c), 0, "no statistics before");
    store.optimize().await.unwrap();
    let stat: String = c
        .query_row(
            "SELECT stat FROM sqlite_stat1 WHERE idx = 'sessions_account_id'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    // Estimated from 400 rows an index (analysis_limit): a few, not 1,500.
    let per_account: i64 = stat.split(' ').nth(1).unwrap().parse().unwrap();
    assert!(per_account <= 3, "an account has one session or so: {stat}");
    assert_hot_plans_hold(&c);
    // Again at once: nothing changed enough, nothing to do, no error.
    store.optimize().await.unwrap();
}

/// After `ANALYZE` (this SQLite keeps STAT4 samples), the store's connections run a
/// cached statement with new values without compiling it again: with the samples, a
/// parameter that meets an indexed column (`/auth/me`'s `idle_expires_at > $3` and
/// `p.account_id = $2`) made SQLite re-prepare `LIVE_PROFILE` at every new binding,
/// 50-70 µs on each `/auth/me` of a store of a million sessions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_statements_are_not_compiled_again_for_new_values_after_analyze() {
    let dir = tempfile::tempdir().unwrap();
    let _store = store(&dir).await;
    let mut c = Connection::open(dir.path().join("t.db")).unwrap();
    grow(&mut c);
    c.execute_batch("ANALYZE").unwrap();
    let samples: i64 = c
        .query_row("SELECT COUNT(*) FROM sqlite_stat4", [], |r| r.get(0))
        .unwrap();
    assert!(samples > 0, "STAT4 samples, the case this test is about");
    drop(c);
    let reader = open(&dir.path().join("t.db"), true).unwrap();
    let mut live = reader.prepare_cached(q::LIVE_PROFILE).unwrap();
    let mut rows = 0;
    for n in 0..50 {
        let session = format!("s-{}", n * 4);
        let account = format!("account-{}", n * 4);
        rows += live
            .query_map(params![session, account, 1_000 + n], |_| Ok(()))
            .unwrap()
            .count();
    }
    assert_eq!(rows, 60, "50 accounts, and a passkey row for every fifth");
    assert_eq!(
        live.get_status(rusqlite::StatementStatus::RePrepare),
        0,
        "compiled again for new values"
    );
}
