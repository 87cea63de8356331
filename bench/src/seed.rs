//! The grown store (issue 28): rows written straight into the server's database
//! before it starts, so the scenarios run on a store the size of a public site's
//! rather than on an empty one. Accounts with passwords (one argon2id hash, computed
//! once and stored on every row: seeding is a matter of seconds, not of hashing), a
//! share with a wallet and a passkey, one live session per account on average, a few
//! accounts with thousands of sessions each (the accounts whose statistics mislead a
//! planner: see `store::sqlite::tests`), and a share of expired sessions the purge has
//! not reached yet. The store then settles (SQLite: a `wal_checkpoint(TRUNCATE)`;
//! PostgreSQL: `VACUUM`, `CHECKPOINT`) and, unless told not to, gets its statistics
//! (`ANALYZE`), so a measurement does not pay for the load's background work.

use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};

/// What to seed.
#[derive(Debug, Clone, Copy)]
pub struct Grow {
    /// Accounts; as many live sessions.
    pub accounts: u64,
    /// Accounts that hold `busy_sessions` live sessions each (of the live ones).
    pub busy_accounts: u64,
    pub busy_sessions: u64,
    /// Run `ANALYZE` after the load: the planner knows the store's shape.
    pub analyze: bool,
    /// Sessions past their idle end that the purge has not removed yet (the server's
    /// first purge, at its start, deletes them while the scenarios run).
    pub expired: u64,
}

impl Grow {
    /// Live sessions: one per account, of which the busy accounts hold their share.
    fn live_sessions(&self) -> u64 {
        self.accounts
    }

    fn expired_sessions(&self) -> u64 {
        self.expired
    }

    fn busy_total(&self) -> u64 {
        (self.busy_accounts * self.busy_sessions).min(self.live_sessions())
    }

    /// The account of live session `n`: the busy accounts (the first ones) hold the
    /// first `busy_total` sessions, the rest go round every account.
    fn owner_of_live(&self, n: u64) -> u64 {
        if n < self.busy_total() {
            n / self.busy_sessions.max(1)
        } else {
            n % self.accounts
        }
    }
}

/// One row of each table, as text columns; `None` is NULL.
type Row = Vec<Option<String>>;

struct Rows {
    grow: Grow,
    now: i64,
    hash: String,
}

fn account_id(n: u64) -> String {
    format!("00000000-0000-4000-8000-{n:012x}")
}

impl Rows {
    fn account(&self, n: u64) -> Row {
        let email = format!("grown{n:010}@bench.example");
        vec![
            Some(account_id(n)),
            Some(email.clone()),
            Some(email),
            Some(self.hash.clone()),
            Some((self.now - 86_400 * 30).to_string()),
            Some("1".into()),
            Some((self.now - 3_600).to_string()),
        ]
    }

    /// Every tenth account has a wallet.
    fn wallet(&self, n: u64) -> Option<Row> {
        (n % 10 == 3).then(|| {
            let t = (self.now - 86_400).to_string();
            vec![
                Some(format!("0x{n:040x}")),
                Some(format!("{n:0128x}")),
                Some(account_id(n)),
                Some("[]".into()),
                Some(t.clone()),
                Some(t),
            ]
        })
    }

    /// Every twentieth account has a passkey (a stored form no sign-in reads: the
    /// scenarios sign in with passkeys of their own).
    fn passkey(&self, n: u64) -> Option<Row> {
        (n % 20 == 7).then(|| {
            vec![
                Some(format!("00000000-0000-4000-9000-{n:012x}")),
                Some(account_id(n)),
                Some(format!("grown-credential-{n}")),
                Some("grown".into()),
                Some("{}".into()),
                Some("1".into()),
                Some("00000000-0000-0000-0000-000000000000".into()),
                Some("[]".into()),
                Some("0".into()),
                Some("0".into()),
                Some("0".into()),
                Some((self.now - 86_400).to_string()),
                None,
            ]
        })
    }

    /// Session `n`: live ones first, then the expired.
    fn session(&self, n: u64) -> Row {
        let live = n < self.grow.live_sessions();
        let owner = if live {
            self.grow.owner_of_live(n)
        } else {
            n.wrapping_mul(7919) % self.grow.accounts
        };
        let start = self.now - if live { 600 } else { 86_400 * 40 };
        let idle_end = if live {
            self.now + 86_400 * 30
        } else {
            self.now - 86_400 * 10
        };
        vec![
            Some(format!("{:016x}{n:016x}", 0x6772_6f77_6e00_0000_u64)),
            Some(account_id(owner)),
            Some("0".into()),
            Some(start.to_string()),
            Some("0".into()),
            Some("password".into()),
            Some("gatehouse-bench".into()),
            Some("127.0.0.1".into()),
            Some(start.to_string()),
            Some(start.to_string()),
            Some(start.to_string()),
            Some(idle_end.to_string()),
            Some((start + 86_400 * 90).to_string()),
        ]
    }
}

const ACCOUNT_COLUMNS: &str =
    "id, email, email_key, password_hash, created_at, email_verified, last_sign_in_at";
const WALLET_COLUMNS: &str = "address, public_key, account_id, attributes, created_at, updated_at";
const PASSKEY_COLUMNS: &str = "id, account_id, credential_id, name, credential, format, aaguid, \
     transports, backup_eligible, backup_state, sign_count, created_at, last_used_at";
const SESSION_COLUMNS: &str = "id, account_id, generation, rotated_at, replays, method, \
     user_agent, ip, auth_time, created_at, last_used_at, idle_expires_at, expires_at";

/// An argon2id hash at the server's parameters, of a password no scenario uses.
fn one_hash() -> anyhow::Result<String> {
    use argon2::password_hash::PasswordHasher as _;
    let params = argon2::Params::new(
        crate::server::ARGON2_MEMORY_KIB,
        crate::server::ARGON2_ITERATIONS,
        crate::server::ARGON2_PARALLELISM,
        None,
    )
    .map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?;
    let argon2 = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    Ok(argon2
        .hash_password(b"grown-store password")
        .map_err(|e| anyhow::anyhow!("argon2: {e}"))?
        .to_string())
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn rows(grow: Grow) -> anyhow::Result<Rows> {
    if grow.accounts == 0 {
        bail!("a grown store needs at least one account");
    }
    Ok(Rows {
        grow,
        now: now(),
        hash: one_hash()?,
    })
}

/// Rows written per SQLite transaction.
const SQLITE_BATCH: u64 = 200_000;

/// Seeds the SQLite file at `path` (migrated, no server on it), lets it settle and,
/// if asked, analyzes it.
pub fn sqlite(path: &Path, grow: Grow) -> anyhow::Result<()> {
    let rows = rows(grow)?;
    let started = Instant::now();
    let mut db = rusqlite::Connection::open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    db.execute_batch("PRAGMA synchronous = OFF; PRAGMA cache_size = -262144;")?;
    // The trigger that keeps an account's last sign-in would update an account per
    // session: the accounts get that time in their own rows instead.
    let trigger: String = db.query_row(
        "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = 'sessions_last_sign_in'",
        [],
        |r| r.get(0),
    )?;
    db.execute_batch("DROP TRIGGER sessions_last_sign_in")?;
    let insert = |table: &str, columns: &str| {
        let n = columns.split(',').count();
        let marks: Vec<String> = (1..=n).map(|i| format!("?{i}")).collect();
        format!(
            "INSERT INTO {table} ({columns}) VALUES ({})",
            marks.join(", ")
        )
    };
    let mut batches =
        |count: u64, sql: &str, row: &dyn Fn(u64) -> Option<Row>| -> anyhow::Result<u64> {
            let mut written = 0;
            let mut start = 0;
            while start < count {
                let tx = db.transaction()?;
                {
                    let mut statement = tx.prepare(sql)?;
                    for n in start..(start + SQLITE_BATCH).min(count) {
                        if let Some(row) = row(n) {
                            statement.execute(rusqlite::params_from_iter(row))?;
                            written += 1;
                        }
                    }
                }
                tx.commit()?;
                start += SQLITE_BATCH;
            }
            Ok(written)
        };
    batches(grow.accounts, &insert("accounts", ACCOUNT_COLUMNS), &|n| {
        Some(rows.account(n))
    })?;
    let wallets = batches(grow.accounts, &insert("wallets", WALLET_COLUMNS), &|n| {
        rows.wallet(n)
    })?;
    let passkeys = batches(grow.accounts, &insert("passkeys", PASSKEY_COLUMNS), &|n| {
        rows.passkey(n)
    })?;
    let sessions = batches(
        grow.live_sessions() + grow.expired_sessions(),
        &insert("sessions", SESSION_COLUMNS),
        &|n| Some(rows.session(n)),
    )?;
    db.execute_batch(&trigger)?;
    let seeded = started.elapsed();
    let settle = Instant::now();
    db.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    if grow.analyze {
        db.execute_batch("ANALYZE")?;
        db.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    }
    drop(db);
    print_seeded(grow, wallets, passkeys, sessions, seeded, settle.elapsed());
    println!(
        "grown store: {} MiB on disk",
        std::fs::metadata(path).map_or(0, |m| m.len()) / (1024 * 1024)
    );
    Ok(())
}

fn print_seeded(
    grow: Grow,
    wallets: u64,
    passkeys: u64,
    sessions: u64,
    seeded: std::time::Duration,
    settled: std::time::Duration,
) {
    println!(
        "grown store: {} accounts ({wallets} with a wallet, {passkeys} with a passkey), \
         {sessions} sessions ({} live, {} of them on {} accounts of {} each; {} expired) \
         written in {:.1} s; settled{} in {:.1} s",
        grow.accounts,
        grow.live_sessions(),
        grow.busy_total(),
        grow.busy_accounts,
        grow.busy_sessions,
        grow.expired_sessions(),
        seeded.as_secs_f64(),
        if grow.analyze {
            " and analyzed"
        } else {
            " (no ANALYZE)"
        },
        settled.as_secs_f64()
    );
}

/// Seeds schema `schema` of the PostgreSQL at `url` (migrated, no server on it) with
/// `COPY`, through `psql`, then `VACUUM` (or `VACUUM ANALYZE`) and `CHECKPOINT`.
pub fn postgres(url: &str, schema: &str, grow: Grow) -> anyhow::Result<()> {
    let rows = rows(grow)?;
    let started = Instant::now();
    let mut psql = Command::new("psql")
        .args([url, "-q", "-v", "ON_ERROR_STOP=1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .context("--postgres needs the psql client on the PATH")?;
    let mut out = BufWriter::with_capacity(1 << 20, psql.stdin.take().expect("piped"));
    writeln!(out, "SET search_path TO {schema};")?;
    writeln!(out, "BEGIN;")?;
    if !grow.analyze {
        // Autovacuum would analyze the loaded tables within a minute or two; without
        // statistics is to be measured as long as it takes. `ALTER TABLE … RESET
        // (autovacuum_enabled)` gives it back.
        for table in ["accounts", "wallets", "passkeys", "sessions"] {
            writeln!(out, "ALTER TABLE {table} SET (autovacuum_enabled = off);")?;
        }
    }
    // As on SQLite: the accounts carry their last sign-in themselves.
    writeln!(
        out,
        "ALTER TABLE sessions DISABLE TRIGGER sessions_last_sign_in;"
    )?;
    let mut copy = |table: &str,
                    columns: &str,
                    count: u64,
                    row: &dyn Fn(u64) -> Option<Row>|
     -> anyhow::Result<u64> {
        writeln!(out, "COPY {table} ({columns}) FROM STDIN;")?;
        let mut written = 0;
        for n in 0..count {
            if let Some(row) = row(n) {
                let fields: Vec<&str> = row.iter().map(|f| f.as_deref().unwrap_or("\\N")).collect();
                writeln!(out, "{}", fields.join("\t"))?;
                written += 1;
            }
        }
        writeln!(out, "\\.")?;
        Ok(written)
    };
    // email_verified is a boolean there.
    copy("accounts", ACCOUNT_COLUMNS, grow.accounts, &|n| {
        let mut row = rows.account(n);
        row[5] = Some("t".into());
        Some(row)
    })?;
    let wallets = copy("wallets", WALLET_COLUMNS, grow.accounts, &|n| {
        rows.wallet(n)
    })?;
    let passkeys = copy("passkeys", PASSKEY_COLUMNS, grow.accounts, &|n| {
        rows.passkey(n).map(|mut row| {
            row[8] = Some("f".into());
            row[9] = Some("f".into());
            row
        })
    })?;
    let sessions = copy(
        "sessions",
        SESSION_COLUMNS,
        grow.live_sessions() + grow.expired_sessions(),
        &|n| Some(rows.session(n)),
    )?;
    writeln!(
        out,
        "ALTER TABLE sessions ENABLE TRIGGER sessions_last_sign_in;"
    )?;
    writeln!(out, "COMMIT;")?;
    out.flush()?;
    drop(out);
    let status = psql.wait()?;
    if !status.success() {
        bail!("psql could not seed the grown store ({status})");
    }
    let seeded = started.elapsed();
    let settle = Instant::now();
    // The seeded tables only: a bare VACUUM would visit every schema of the database.
    let vacuum = if grow.analyze {
        "VACUUM ANALYZE accounts, wallets, passkeys, sessions"
    } else {
        "VACUUM accounts, wallets, passkeys, sessions"
    };
    run_psql(url, &[&format!("SET search_path TO {schema}"), vacuum])?;
    // CHECKPOINT needs a superuser or pg_checkpoint (PostgreSQL 15): without it the
    // next timed checkpoint writes the load out, during the measurement.
    if let Err(e) = run_psql(url, &["CHECKPOINT"]) {
        println!("grown store: no CHECKPOINT ({e:#}): the first scenario may pay for one");
    }
    print_seeded(grow, wallets, passkeys, sessions, seeded, settle.elapsed());
    Ok(())
}

/// Runs `commands` in one session, each in a transaction of its own (`VACUUM` cannot
/// run inside one).
fn run_psql(url: &str, commands: &[&str]) -> anyhow::Result<()> {
    let mut psql = Command::new("psql");
    psql.args([url, "-qtA", "-v", "ON_ERROR_STOP=1"]);
    for command in commands {
        psql.args(["-c", command]);
    }
    let out = psql.output()?;
    if !out.status.success() {
        bail!("psql: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_accounts_hold_their_sessions_and_the_rest_go_round() {
        let grow = Grow {
            accounts: 1_000,
            busy_accounts: 2,
            busy_sessions: 300,
            analyze: true,
            expired: 0,
        };
        let mut per_account = vec![0u64; 1_000];
        for n in 0..grow.live_sessions() {
            per_account[grow.owner_of_live(n) as usize] += 1;
        }
        assert_eq!(per_account[0], 300);
        assert_eq!(per_account[1], 300);
        assert_eq!(per_account.iter().sum::<u64>(), 1_000);
        // 600..999 one each; 2..599 none.
        assert_eq!(per_account.iter().filter(|&&c| c == 1).count(), 400);
    }
}
