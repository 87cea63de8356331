//! `gatehouse backup FILE`: a consistent copy of the embedded database, taken while
//! the server runs. A plain copy of a WAL database can miss the writes still in the
//! log or catch a page mid-write; `VACUUM INTO` reads one snapshot in a read
//! transaction (the server's writer goes on meanwhile) and writes it out compacted.

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::{file_of, open};

/// What a backup holds, read back from the finished file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackupSummary {
    pub accounts: i64,
    pub schema_version: i64,
    pub bytes: u64,
}

/// Writes a snapshot of the database `url` names to `dest`, which must not exist.
/// The snapshot goes to a temporary file beside `dest`, is flushed to disk (SQLite does
/// not sync what `VACUUM INTO` writes), checked, and only then linked as `dest`: a
/// crash or a failure never leaves a partial backup under the name asked for.
pub fn backup(url: &str, dest: &Path) -> anyhow::Result<BackupSummary> {
    let source = file_of(url).context(
        "backup copies the embedded SQLite database; for PostgreSQL use pg_dump (see README.md)",
    )?;
    anyhow::ensure!(
        source.is_file(),
        "no database at {} (database_url / data_dir)",
        source.display()
    );
    anyhow::ensure!(
        !dest.exists(),
        "{} exists; a backup never overwrites a file",
        dest.display()
    );
    let partial = partial_name(dest);
    let _ = std::fs::remove_file(&partial);
    let result = write_snapshot(&source, &partial, dest);
    let _ = std::fs::remove_file(&partial);
    result
}

fn write_snapshot(source: &Path, partial: &Path, dest: &Path) -> anyhow::Result<BackupSummary> {
    let conn = open(source, true)
        .with_context(|| format!("cannot open the database {}", source.display()))?;
    let target = partial
        .to_str()
        .context("the backup's path must be valid UTF-8")?;
    // It holds password hashes: readable by its owner only, as the database is. SQLite
    // writes into an empty file that exists, keeping its mode.
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(partial)
        .with_context(|| format!("cannot create {}", partial.display()))?;
    conn.execute("VACUUM INTO ?1", [target])
        .with_context(|| format!("VACUUM INTO {}", partial.display()))?;
    drop(conn);
    std::fs::File::open(partial)?.sync_all()?;
    let summary = check(partial)?;
    // A hard link, not a rename: it fails rather than replace a file made meanwhile.
    std::fs::hard_link(partial, dest)
        .with_context(|| format!("cannot create {}", dest.display()))?;
    if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(summary)
}

/// Opens the copy on its own and checks it whole.
fn check(path: &Path) -> anyhow::Result<BackupSummary> {
    let conn = open(path, true)?;
    let integrity: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    anyhow::ensure!(
        integrity == "ok",
        "the copy failed its integrity check: {integrity}"
    );
    let schema_version = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let accounts = conn.query_row("SELECT COUNT(*) FROM accounts", [], |r| r.get(0))?;
    Ok(BackupSummary {
        accounts,
        schema_version,
        bytes: std::fs::metadata(path)?.len(),
    })
}

fn partial_name(dest: &Path) -> PathBuf {
    let name = dest
        .file_name()
        .map_or_else(|| "backup".into(), |n| n.to_string_lossy().into_owned());
    dest.with_file_name(format!(".{name}.partial-{}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::AccountId;
    use crate::store::{NewAccount, SqliteStore, Store};

    fn account(n: usize) -> NewAccount {
        let email = format!("b{n}@example.com");
        NewAccount {
            id: AccountId(format!("id-{n}")),
            email: Some((email.clone(), email)),
            password_hash: Some("x".into()),
            ownid_data: None,
            created_at: 1,
        }
    }

    #[tokio::test]
    async fn a_backup_holds_every_committed_account_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("g.db").display());
        let store = SqliteStore::connect(&url, 1).await.unwrap();
        for n in 0..25 {
            store.create_account(&account(n)).await.unwrap();
        }
        let dest = dir.path().join("copy.db");
        let summary = backup(&url, &dest).unwrap();
        assert_eq!(summary.accounts, 25);
        assert!(summary.schema_version >= 1);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&dest).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        // Written while the store is open, with every write still in the WAL.
        let copy = SqliteStore::connect(&format!("sqlite://{}", dest.display()), 1)
            .await
            .unwrap();
        assert!(
            copy.account_by_email("b24@example.com")
                .await
                .unwrap()
                .is_some()
        );
        let err = backup(&url, &dest).unwrap_err().to_string();
        assert!(err.contains("never overwrites"), "{err}");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.contains("partial"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        let err = backup("postgres://x/y", &dir.path().join("pg.db"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("pg_dump"), "{err}");
    }
}
