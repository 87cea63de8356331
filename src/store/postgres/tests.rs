//! PostgreSQL's plans of the hot statements on a grown store with statistics (run with
//! `GATEHOUSE_TEST_POSTGRES_URL`; skipped without it).

use sqlx::{Connection, PgConnection, Row};

use super::PostgresStore;
use crate::store::queries as q;
use crate::store::sessions::sql;

/// A schema of its own in the test database, migrated by the store.
async fn schema() -> Option<(String, String)> {
    let base = std::env::var("GATEHOUSE_TEST_POSTGRES_URL").ok()?;
    let schema = format!("plans_{}", crate::crypto::random_id());
    let mut admin = PgConnection::connect(&base).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut admin)
        .await
        .unwrap();
    let sep = if base.contains('?') { '&' } else { '?' };
    Some((
        format!("{base}{sep}options=-c%20search_path%3D{schema}"),
        schema,
    ))
}

/// Each statement, its parameters' types, and the index its plan must read: as
/// SQLite's (`store::sqlite::tests`), the session by its primary key, never through
/// `sessions_account_id`.
const HOT: &[(&str, &str, &str)] = &[
    (sql::IS_LIVE, "text, text, bigint", "sessions_pkey"),
    (q::LIVE_PROFILE, "text, text, bigint", "sessions_pkey"),
    (q::HOLD_LIVE_SESSION, "text, text, bigint", "sessions_pkey"),
    (sql::END_ONE, "text, text", "sessions_pkey"),
    (sql::ROTATE, "bigint, bigint, text, bigint", "sessions_pkey"),
    (
        sql::REPLAY,
        "text, bigint, bigint, bigint, bigint",
        "sessions_pkey",
    ),
    (
        sql::REVOKE_REUSED,
        "text, bigint, bigint, bigint",
        "sessions_pkey",
    ),
    (q::ACCOUNT_BY_EMAIL, "text", "accounts_email_key_key"),
    (q::ACCOUNT_BY_ID, "text", "accounts_pkey"),
    (
        q::PASSKEY_BY_CREDENTIAL_ID,
        "text",
        "passkeys_credential_id_key",
    ),
    (
        q::RECORD_PASSKEY_USE,
        "bigint, boolean, bigint, text",
        "passkeys_pkey",
    ),
    (q::WALLET_ACCOUNT, "text", "wallets_pkey"),
    (
        q::TAKE_ONE_TIME,
        "text, text, bigint",
        "one_time_tokens_pkey",
    ),
    (q::COUNT, "text, bigint, bigint", "rate_counters_pkey"),
    (sql::COUNT_OF_ACCOUNT, "text", "sessions_account_id"),
    // `users list --after`: the page from both columns of the index (every account
    // here was created at 0).
    (
        crate::store::admin::sql::LIST_AFTER,
        "bigint, text, text, bigint",
        "Index Cond: (ROW(created_at, id) > ROW(",
    ),
];

/// After `ANALYZE` on a store where accounts average one session (20,000 accounts,
/// one with 1,500 more, 5,000 timed out), the generic plan of every hot statement (the
/// one a prepared statement settles on) reads its index; the purge's batch deletes its
/// rows by their keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_statements_keep_their_index_after_analyze() {
    let Some((url, schema)) = schema().await else {
        eprintln!("skipped: GATEHOUSE_TEST_POSTGRES_URL is not set");
        return;
    };
    let store = PostgresStore::connect(&url, 2).await.unwrap();
    let mut c = PgConnection::connect(&url).await.unwrap();
    sqlx::raw_sql(
        "INSERT INTO accounts (id, email, email_key, created_at)
            SELECT 'account-' || n, n || '@example.com', n || '@example.com', 0
            FROM generate_series(0, 19999) n;
         INSERT INTO sessions (id, account_id, generation, rotated_at, replays, method,
                auth_time, created_at, last_used_at, idle_expires_at, expires_at)
            SELECT 's-' || n, 'account-' || n, 0, 0, 0, 'password', 0, 0, 0, 4000000000,
                4000000000 FROM generate_series(0, 19999) n
            UNION ALL SELECT 'busy-' || n, 'account-0', 0, 0, 0, 'password', 0, 0, 0,
                4000000000, 4000000000 FROM generate_series(0, 1499) n
            UNION ALL SELECT 'old-' || n, 'account-' || (n * 3), 0, 0, 0, 'password', 0, 0,
                0, 0, 4000000000 FROM generate_series(0, 4999) n;
         INSERT INTO wallets (address, public_key, account_id, attributes, created_at,
                updated_at)
            SELECT 'w-' || n, '', 'account-' || n, '[]', 0, 0
            FROM generate_series(0, 19999, 10) n;
         INSERT INTO passkeys (id, account_id, credential_id, name, credential, format,
                aaguid, transports, backup_eligible, backup_state, sign_count, created_at)
            SELECT 'p-' || n, 'account-' || n, 'p-' || n, '', '{}', 1, '', '[]', FALSE,
                FALSE, 0, 0 FROM generate_series(0, 19999, 20) n;
         INSERT INTO oidc_assertions (client_id, jti, expires_at)
            SELECT 'client', 'jti-' || n, n FROM generate_series(0, 4999) n;
         ANALYZE accounts, sessions, wallets, passkeys, oidc_assertions;",
    )
    .execute(&mut c)
    .await
    .unwrap();
    for (i, (statement, types, index)) in HOT.iter().enumerate() {
        let nulls = vec!["NULL"; types.split(',').count()].join(", ");
        let text = plan(
            &mut c,
            format!(
                "SET plan_cache_mode = force_generic_plan;
             PREPARE hot{i} ({types}) AS {statement};
             EXPLAIN EXECUTE hot{i} ({nulls})"
            ),
        )
        .await;
        assert!(text.contains(index), "{index}: {statement}\n{text}");
        if *index == "sessions_pkey" {
            assert!(!text.contains("sessions_account_id"), "{statement}\n{text}");
        }
    }
    let text = plan(
        &mut c,
        format!(
            "SET plan_cache_mode = auto;
         PREPARE purge (bigint, bigint) AS {};
         EXPLAIN EXECUTE purge (1, 1000)",
            sql::PURGE_POSTGRES
        ),
    )
    .await;
    // The batch's rows by their keys; how it finds them (the expiry index, or a scan
    // that stops at the batch's end) is the planner's, by the share that expired.
    for index in ["Index Scan using sessions_pkey", "id = ANY"] {
        assert!(
            text.contains(index),
            "{index}: {}\n{text}",
            sql::PURGE_POSTGRES
        );
    }
    // The other tables' batches likewise (by their primary key, whether an index or a
    // bitmap scan reads it); the assertions' two-column key by `ctid`.
    let batches = [
        (
            crate::store::mfa::sql::PURGE_POSTGRES[0].1,
            ["pending_signins_pkey", "id_hash = ANY"],
        ),
        (
            crate::store::oidc::sql::PURGE_POSTGRES[0].1,
            ["oidc_codes_pkey", "code_hash = ANY"],
        ),
        (
            crate::store::oidc::sql::PURGE_POSTGRES[1].1,
            ["Tid Scan on oidc_assertions", "ctid = ANY"],
        ),
        (
            crate::store::authorize::sql::PURGE_POSTGRES[0].1,
            ["oidc_requests_pkey", "id = ANY"],
        ),
    ];
    for (i, (statement, steps)) in batches.iter().enumerate() {
        let text = plan(
            &mut c,
            format!(
                "PREPARE batch{i} (bigint, bigint) AS {statement};
                 EXPLAIN EXECUTE batch{i} (1, 1000)"
            ),
        )
        .await;
        for step in steps {
            assert!(text.contains(step), "{step}: {statement}\n{text}");
        }
    }
    drop(c);
    crate::store::Store::close(&store).await;
    let base = std::env::var("GATEHOUSE_TEST_POSTGRES_URL").unwrap();
    let mut admin = PgConnection::connect(&base).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&mut admin)
        .await
        .unwrap();
}

/// What `statements` (ending in an `EXPLAIN`) print, a line per plan step.
async fn plan(c: &mut PgConnection, statements: String) -> String {
    sqlx::raw_sql(sqlx::AssertSqlSafe(statements))
        .fetch_all(c)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<String, _>(0))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The statements about one account's sessions (`GET /auth/sessions`, `users show`,
/// `users list`, `users disable`) never read `sessions_idle_expires_at`: without
/// statistics, on 10 M sessions, PostgreSQL `BitmapAnd`ed it with
/// `sessions_account_id` and read ten million index entries for one account (1–1.4 s a
/// statement). Here the account's index is gone and sequential scans are priced out, so
/// a plan that could use the expiry index would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accounts_sessions_are_never_read_through_the_expiry_index() {
    use crate::store::admin::sql as admin;
    let Some((url, schema)) = schema().await else {
        eprintln!("skipped: GATEHOUSE_TEST_POSTGRES_URL is not set");
        return;
    };
    let store = PostgresStore::connect(&url, 2).await.unwrap();
    // Nor are they JIT-compiled (20–250 ms a statement at that size): off on the
    // store's connections.
    let jit: String = sqlx::query_scalar("SHOW jit")
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert_eq!(jit, "off");
    let mut c = PgConnection::connect(&url).await.unwrap();
    sqlx::raw_sql("DROP INDEX sessions_account_id")
        .execute(&mut c)
        .await
        .unwrap();
    let statements = [
        (sql::OF_ACCOUNT, "text, bigint"),
        (admin::LIVE_SESSIONS, "text, bigint"),
        (admin::ONE, "bigint, text"),
        (admin::LIST, "bigint, text, bigint"),
    ];
    for (i, (statement, types)) in statements.iter().enumerate() {
        let nulls = vec!["NULL"; types.split(',').count()].join(", ");
        let text = plan(
            &mut c,
            format!(
                "SET enable_seqscan = off; SET plan_cache_mode = force_generic_plan;
                 PREPARE of_account{i} ({types}) AS {statement};
                 EXPLAIN EXECUTE of_account{i} ({nulls})"
            ),
        )
        .await;
        assert!(text.contains("Seq Scan on sessions"), "{statement}\n{text}");
        assert!(
            !text.contains("sessions_idle_expires_at"),
            "{statement}\n{text}"
        );
    }
    drop(c);
    crate::store::Store::close(&store).await;
    let base = std::env::var("GATEHOUSE_TEST_POSTGRES_URL").unwrap();
    let mut admin = PgConnection::connect(&base).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&mut admin)
        .await
        .unwrap();
}
