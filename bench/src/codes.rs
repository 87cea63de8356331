//! Scenario 16's authorization codes. A code is single use and lives 60 s, and
//! `/oauth/authorize` (a browser's sign-in and consent) is not what this scenario
//! measures, so the codes are written straight into the running server's database,
//! as `/authorize` writes them: the code's SHA-256, bound to the client, the redirect
//! URI, the scopes, the nonce and the PKCE challenge, for accounts written there too
//! (passwordless rows: nobody signs in to them). The server then sees only the token
//! requests a relying party sends. SQLite only (the store the targets are set on).

use std::path::Path;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use sha2::{Digest, Sha256};

/// The redirect URI the scenario's clients register.
pub const REDIRECT_URI: &str = "https://rp.bench.example/callback";

/// The PKCE verifier of every code (its challenge is stored with each).
pub const VERIFIER: &str = "bench-pkce-verifier-0123456789-abcdefghijklmnopqrstuvwxyz";

/// Accounts the codes go round: enough that none reaches `session.max_per_account`
/// (100) in a run, so no sign-in pays for ending old sessions.
pub const ACCOUNTS: u64 = 4_000;

/// Account `n` of run `run_id` (8 hex digits) in scenario 16: a UUID no other
/// scenario's seed writes (scenario 18 seeds accounts into the same file).
fn account_id(run_id: &str, n: u64) -> String {
    format!("{run_id}-0016-4000-9000-{n:012x}")
}

/// The path of a `sqlite://PATH?…` URL.
pub fn sqlite_path(database_url: &str) -> Option<&Path> {
    let rest = database_url.strip_prefix("sqlite://")?;
    Some(Path::new(rest.split('?').next().unwrap_or(rest)))
}

/// Writes the accounts the codes belong to (once a run: a second call finds them).
pub fn seed_accounts(path: &Path, run_id: &str) -> anyhow::Result<()> {
    let mut db = rusqlite::Connection::open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    db.busy_timeout(std::time::Duration::from_secs(30))?;
    let now = unix_now();
    let tx = db.transaction()?;
    {
        let mut insert = tx.prepare(
            "INSERT OR IGNORE INTO accounts (id, email, email_key, created_at, email_verified)
             VALUES (?1, ?2, ?2, ?3, 1)",
        )?;
        for n in 0..ACCOUNTS {
            let email = format!("rp-{run_id}-{n:06}@bench.example");
            insert.execute(rusqlite::params![account_id(run_id, n), email, now])?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// Writes `count` fresh codes for `client_id` (scopes `openid email`, a nonce, the
/// S256 challenge of [`VERIFIER`]), round the accounts; returns the codes.
pub fn seed_codes(
    path: &Path,
    run_id: &str,
    client_id: &str,
    count: usize,
) -> anyhow::Result<Vec<String>> {
    let mut db = rusqlite::Connection::open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    db.busy_timeout(std::time::Duration::from_secs(30))?;
    let now = unix_now();
    let challenge = B64.encode(Sha256::digest(VERIFIER.as_bytes()));
    let mut codes = Vec::with_capacity(count);
    let tx = db.transaction()?;
    {
        let mut insert = tx.prepare(
            "INSERT INTO oidc_codes (code_hash, client_id, account_id, session_id,
                redirect_uri, scopes, nonce, code_challenge, auth_time, expires_at, amr)
             VALUES (?1, ?2, ?3, ?4, ?5, 'openid email', 'bench-nonce', ?6, ?7, ?8, 'pwd')",
        )?;
        for n in 0..count {
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("getrandom: {e}"))?;
            let code = B64.encode(bytes);
            let hash = hex::encode(Sha256::digest(code.as_bytes()));
            let session = hex::encode(&bytes[..16]);
            insert.execute(rusqlite::params![
                hash,
                client_id,
                account_id(run_id, n as u64 % ACCOUNTS),
                session,
                REDIRECT_URI,
                challenge,
                now - 5,
                now + 60,
            ])?;
            codes.push(code);
        }
    }
    tx.commit()?;
    Ok(codes)
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
