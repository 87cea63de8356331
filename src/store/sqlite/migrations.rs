//! The SQLite schema, versioned by SQLite's own `user_version` header field: each
//! migration runs once, in order, in one transaction with the version it reaches.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use crate::store::Migrated;

/// Every migration, in order; the version of `MIGRATIONS[i]` is `i + 1`.
const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_init.sql",
        include_str!("../../../migrations/sqlite/0001_init.sql"),
    ),
    (
        "0002_email_verified.sql",
        include_str!("../../../migrations/sqlite/0002_email_verified.sql"),
    ),
    (
        "0003_mail.sql",
        include_str!("../../../migrations/sqlite/0003_mail.sql"),
    ),
    (
        "0004_passkeys.sql",
        include_str!("../../../migrations/sqlite/0004_passkeys.sql"),
    ),
    (
        "0005_sessions.sql",
        include_str!("../../../migrations/sqlite/0005_sessions.sql"),
    ),
    (
        "0006_signing_keys.sql",
        include_str!("../../../migrations/sqlite/0006_signing_keys.sql"),
    ),
    (
        "0007_accounts_disabled.sql",
        include_str!("../../../migrations/sqlite/0007_accounts_disabled.sql"),
    ),
    (
        "0008_ways_in_proven.sql",
        include_str!("../../../migrations/sqlite/0008_ways_in_proven.sql"),
    ),
    (
        "0009_second_factor.sql",
        include_str!("../../../migrations/sqlite/0009_second_factor.sql"),
    ),
    (
        "0010_oidc.sql",
        include_str!("../../../migrations/sqlite/0010_oidc.sql"),
    ),
    (
        "0011_accounts_created_at.sql",
        include_str!("../../../migrations/sqlite/0011_accounts_created_at.sql"),
    ),
    (
        "0012_oidc_authorize.sql",
        include_str!("../../../migrations/sqlite/0012_oidc_authorize.sql"),
    ),
    (
        "0013_oidc_backchannel_logout.sql",
        include_str!("../../../migrations/sqlite/0013_oidc_backchannel_logout.sql"),
    ),
    (
        "0014_social.sql",
        include_str!("../../../migrations/sqlite/0014_social.sql"),
    ),
    (
        "0015_social_display_name.sql",
        include_str!("../../../migrations/sqlite/0015_social_display_name.sql"),
    ),
];

/// Brings the database to the newest schema; refuses one newer than this build.
pub fn run(conn: &mut Connection) -> anyhow::Result<Migrated> {
    let latest = MIGRATIONS.len() as i64;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let stored: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let version = if stored == 0 {
        sqlx_version(&tx)?
    } else {
        stored
    };
    anyhow::ensure!(
        (0..=latest).contains(&version),
        "the database's schema is at version {version}, newer than this build of gatehouse \
         knows ({latest}); run the newer build"
    );
    for (_, sql) in &MIGRATIONS[version as usize..] {
        tx.execute_batch(sql)?;
    }
    if stored != latest {
        tx.pragma_update(None, "user_version", latest)?;
    }
    tx.commit()?;
    Ok(Migrated {
        from: version,
        to: latest,
    })
}

/// Databases made by Gatehouse 0.1 recorded their migrations in sqlx's table, not in
/// `user_version`: the newest version applied there.
fn sqlx_version(conn: &Connection) -> rusqlite::Result<i64> {
    let recorded = conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
            [],
            |_| Ok(()),
        )
        .optional()?;
    if recorded.is_none() {
        return Ok(0);
    }
    conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations WHERE success",
        [],
        |r| r.get(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(conn: &Connection) -> i64 {
        conn.pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap()
    }

    fn tables(conn: &Connection) -> Vec<String> {
        let mut s = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .unwrap();
        s.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn every_file_in_the_directory_is_listed_in_order() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        files.sort();
        let listed: Vec<String> = MIGRATIONS.iter().map(|(n, _)| n.to_string()).collect();
        assert_eq!(files, listed);
        for (i, name) in listed.iter().enumerate() {
            assert!(name.starts_with(&format!("{:04}_", i + 1)), "{name}");
        }
    }

    #[test]
    fn a_new_database_gets_every_table_once() {
        let mut conn = Connection::open_in_memory().unwrap();
        let latest = MIGRATIONS.len() as i64;
        let first = run(&mut conn).unwrap();
        assert_eq!((first.from, first.to), (0, latest));
        let second = run(&mut conn).unwrap();
        assert_eq!((second.from, second.to), (latest, latest));
        assert_eq!(version(&conn), MIGRATIONS.len() as i64);
        assert_eq!(
            tables(&conn),
            [
                "accounts",
                "leases",
                "mail_outbox",
                "mail_tokens",
                "oidc_assertions",
                "oidc_clients",
                "oidc_codes",
                "oidc_consents",
                "oidc_logouts",
                "oidc_requests",
                "one_time_tokens",
                "passkeys",
                "pending_signins",
                "rate_counters",
                "recovery_codes",
                "seen_requests",
                "sessions",
                "signing_keys",
                "social_codes",
                "social_identities",
                "social_pending",
                "totp_factors",
                "wallets"
            ]
        );
    }

    #[test]
    fn a_database_migrated_by_sqlx_is_taken_as_it_is() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(MIGRATIONS[0].1).unwrap();
        conn.execute_batch(
            "CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, success BOOLEAN NOT NULL);
             INSERT INTO _sqlx_migrations VALUES (1, TRUE);
             INSERT INTO accounts (id, created_at) VALUES ('kept', 1);",
        )
        .unwrap();
        run(&mut conn).unwrap();
        assert_eq!(version(&conn), MIGRATIONS.len() as i64);
        assert!(tables(&conn).contains(&"sessions".to_string()));
        let kept: String = conn
            .query_row("SELECT id FROM accounts", [], |r| r.get(0))
            .unwrap();
        assert_eq!(kept, "kept");
    }

    #[test]
    fn a_newer_schema_is_refused_and_left_alone() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        let err = run(&mut conn).unwrap_err().to_string();
        assert!(err.contains("version 99, newer than this build"), "{err}");
        assert_eq!(version(&conn), 99);
        assert!(tables(&conn).is_empty());
    }
}
