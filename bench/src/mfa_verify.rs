//! Scenario 18: `POST /auth/mfa/verify` alone, with a TOTP code. Each success uses a
//! pending sign-in (single use) and an (account, time step) pair (a step is accepted
//! once per account), so both are written straight into the SQLite file before the
//! measured window, as the server would have written them: accounts with a confirmed
//! authenticator whose secret the bench knows (sealed as the server seals it: AES-256-
//! GCM under a key derived by HKDF-SHA256 from the JWT secret, the account's row as
//! associated data), and pending sign-ins whose random tokens the bench keeps (only
//! their SHA-256 digests are stored, as `SignInFlow` stores them).
//!
//! Each account gives the codes of the steps at and after now, then one per new step
//! ([`crate::mfa::usable_step`]): clients rotate over accounts of their own, as in
//! scenario 11. The accounts' ids and emails carry the run's id and this scenario's
//! number, so they meet no other scenario's rows in one file (scenario 16 seeds
//! accounts too).

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hkdf::Hkdf;
use serde_json::json;
use sha2::{Digest, Sha256};
use totp_rs::{Algorithm, Builder, Totp};

use crate::client::{self, Failure, Link};
use crate::load::Flow;

const STEP: i64 = 30;

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64
}

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("the system's random source");
    bytes
}

/// The server's sealing of TOTP secrets (`SecondFactor`'s `Sealer`, purpose
/// "gatehouse totp secrets"): `v1.<nonce>.<ciphertext>`, base64url.
struct Sealer(Aes256Gcm);

impl Sealer {
    fn new(jwt_secret: &str) -> Sealer {
        let mut okm = [0u8; 32];
        Hkdf::<Sha256>::new(Some(b"gatehouse totp secrets"), jwt_secret.as_bytes())
            .expand(b"aes-256-gcm v1", &mut okm)
            .expect("32 bytes");
        Sealer(Aes256Gcm::new(&okm.into()))
    }

    fn seal(&self, account: &str, plain: &[u8]) -> String {
        let nonce = random::<12>();
        let aad = format!("totp.{account}");
        let sealed = self
            .0
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plain,
                    aad: aad.as_bytes(),
                },
            )
            .expect("a 32-byte key encrypts");
        format!("v1.{}.{}", B64.encode(nonce), B64.encode(sealed))
    }
}

/// Account `n` of run `run_id` (8 hex digits) in scenario 18: a UUID no other
/// scenario's seed writes.
fn account_id(run_id: &str, n: usize) -> String {
    format!("{run_id}-0018-4000-9000-{n:012x}")
}

/// An account seeded with an authenticator and pending sign-ins.
pub struct Seeded {
    totp: Totp,
    /// `mfa_token`s of its pending sign-ins, each usable once.
    tokens: Vec<String>,
    last_step: i64,
}

/// Writes `accounts` accounts, each with a confirmed authenticator and `pending`
/// pending sign-ins (living 15 minutes), into the server's SQLite file.
pub fn seed_sqlite(
    db: &Path,
    jwt_secret: &str,
    accounts: usize,
    pending: usize,
    run_id: &str,
) -> anyhow::Result<Vec<Seeded>> {
    let sealer = Sealer::new(jwt_secret);
    let mut conn = rusqlite::Connection::open(db)?;
    conn.busy_timeout(Duration::from_secs(30))?;
    let tx = conn.transaction()?;
    let t = now();
    let mut seeded = Vec::with_capacity(accounts);
    {
        let mut account = tx.prepare(
            "INSERT INTO accounts (id, email, email_key, password_hash, created_at, email_verified, last_sign_in_at)
             VALUES (?1, ?2, ?2, NULL, ?3, 1, NULL)",
        )?;
        let mut factor = tx.prepare(
            "INSERT INTO totp_factors (account_id, secret, created_at, confirmed_at, last_step)
             VALUES (?1, ?2, ?3, ?3, -1)",
        )?;
        let mut signin = tx.prepare(
            "INSERT INTO pending_signins (id_hash, account_id, amr, method, enroll_only, attempts, expires_at)
             VALUES (?1, ?2, 'pwd', 'password', 0, 0, ?3)",
        )?;
        for n in 0..accounts {
            let id = account_id(run_id, n);
            account.execute(rusqlite::params![
                id,
                format!("mfa-{run_id}-{n}@bench.example"),
                t
            ])?;
            let secret = random::<20>();
            factor.execute(rusqlite::params![id, sealer.seal(&id, &secret), t])?;
            let mut tokens = Vec::with_capacity(pending);
            for _ in 0..pending {
                let token = hex::encode(random::<16>());
                let digest = hex::encode(Sha256::digest(token.as_bytes()));
                signin.execute(rusqlite::params![digest, id, t + 900])?;
                tokens.push(token);
            }
            let totp = Builder::new()
                .with_algorithm(Algorithm::SHA1)
                .with_digits(6)
                .with_step_duration(STEP as u64)
                .with_secret(secret.to_vec())
                .build_noncompliant();
            seeded.push(Seeded {
                totp,
                tokens,
                last_step: -1,
            });
        }
    }
    tx.commit()?;
    Ok(seeded)
}

pub struct VerifyFlow {
    link: Link,
    accounts: Vec<Seeded>,
    next: usize,
}

impl VerifyFlow {
    pub fn new(addr: SocketAddr, accounts: Vec<Seeded>) -> Self {
        VerifyFlow {
            link: Link::new(addr),
            accounts,
            next: 0,
        }
    }

    /// The next account with a pending sign-in left and a step it has not used within
    /// the server's drift; waits for the clock when none has a step left.
    async fn pick(&mut self) -> Option<(usize, i64)> {
        loop {
            let current = now() / STEP;
            let mut any_token = false;
            for k in 0..self.accounts.len() {
                let i = (self.next + k) % self.accounts.len();
                let a = &self.accounts[i];
                if a.tokens.is_empty() {
                    continue;
                }
                any_token = true;
                if let Some(step) = crate::mfa::usable_step(a.last_step, current) {
                    self.next = i + 1;
                    return Some((i, step));
                }
            }
            if !any_token {
                return None;
            }
            let wait = STEP - now() % STEP;
            tokio::time::sleep(Duration::from_secs(wait as u64)).await;
        }
    }
}

impl Flow for VerifyFlow {
    async fn run(&mut self) -> Result<(), Failure> {
        let Some((i, step)) = self.pick().await else {
            return Err(Failure::Body("the seeded pending sign-ins ran out"));
        };
        let account = &mut self.accounts[i];
        account.last_step = step;
        let token = account.tokens.pop().expect("picked with a token left");
        let code = account.totp.generate((step * STEP) as u64).to_string();
        let verify = client::post_json(
            "/auth/mfa/verify",
            &[],
            &json!({"mfa_token": token, "code": code}),
        );
        self.link.call(&verify).await?.field(200, "token").map(drop)
    }
}
