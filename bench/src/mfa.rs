//! Scenario 11: a password + TOTP sign-in (`/auth/login` answers `mfa_required`, then
//! `/auth/mfa/verify` with the authenticator's code), on accounts enrolled beforehand.
//!
//! A time step is accepted once per account, so an account signs in with at most the
//! codes of now's step and the next one, then once per new step (30 s): each client
//! rotates over accounts of its own, and a flow that finds none with a step left waits
//! for the next step (that wait is in its latency). Enough accounts (clients times
//! `--mfa-accounts-per-client`, at least the expected rate times 30 s) keep that from
//! happening.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use totp_rs::{Algorithm, Builder, Secret, Totp};

use crate::client::{self, Failure, Link};
use crate::load::Flow;

const STEP: i64 = 30;

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64
}

/// The server's parameters: SHA-1, 6 digits, 30 s.
fn generator(secret_b32: &str) -> anyhow::Result<Totp> {
    let secret = Secret::try_from_base32(secret_b32)
        .map_err(|e| anyhow::anyhow!("the enrolment's secret: {e:?}"))?;
    Ok(Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_step_duration(STEP as u64)
        .with_secret(secret)
        .build_noncompliant())
}

/// The oldest step above `last_step` that the server accepts both at `current` and at
/// the step after it: `current` or `current + 1` (never `current - 1`, which a request
/// sent just before a step boundary and read just after it finds two steps old, out of
/// the server's one step of drift). `None` when both are used already.
pub fn usable_step(last_step: i64, current: i64) -> Option<i64> {
    let step = (last_step + 1).max(current);
    (step <= current + 1).then_some(step)
}

/// An enrolled account: its email, its authenticator and the newest step it used.
pub struct Enrolled {
    email: String,
    totp: Totp,
    last_step: i64,
}

/// Enrolls the account of `token` (`email`): a new authenticator, confirmed with the
/// code of the current step (the first sign-in then uses the next one).
pub async fn enroll(link: &mut Link, email: String, token: &str) -> anyhow::Result<Enrolled> {
    let auth = format!("Bearer {token}");
    let headers = [("authorization", auth.as_str())];
    let req = client::request("POST", "/auth/mfa/totp", &headers, b"");
    let secret = link
        .call(&req)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .field(200, "secret")
        .map_err(|e| anyhow::anyhow!("POST /auth/mfa/totp: {e}"))?;
    let totp = generator(&secret)?;
    let step = now() / STEP;
    let code = totp.generate((step * STEP) as u64).to_string();
    let req = client::post_json("/auth/mfa/totp/confirm", &headers, &json!({ "code": code }));
    link.call(&req)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .json(200)
        .map_err(|e| anyhow::anyhow!("POST /auth/mfa/totp/confirm: {e}"))?;
    Ok(Enrolled {
        email,
        totp,
        last_step: step,
    })
}

pub struct MfaSignInFlow {
    link: Link,
    accounts: Vec<Enrolled>,
    next: usize,
    password: &'static str,
}

impl MfaSignInFlow {
    pub fn new(addr: SocketAddr, accounts: Vec<Enrolled>, password: &'static str) -> Self {
        MfaSignInFlow {
            link: Link::new(addr),
            accounts,
            next: 0,
            password,
        }
    }

    /// The next account with a step it has not used within the server's drift, and
    /// that step; waits for the clock when every account used its steps.
    async fn pick(&mut self) -> (usize, i64) {
        loop {
            let current = now() / STEP;
            for k in 0..self.accounts.len() {
                let i = (self.next + k) % self.accounts.len();
                if let Some(step) = usable_step(self.accounts[i].last_step, current) {
                    self.next = i + 1;
                    return (i, step);
                }
            }
            let wait = STEP - now() % STEP;
            tokio::time::sleep(Duration::from_secs(wait as u64)).await;
        }
    }
}

impl Flow for MfaSignInFlow {
    async fn run(&mut self) -> Result<(), Failure> {
        let (i, step) = self.pick().await;
        let account = &mut self.accounts[i];
        account.last_step = step;
        let login = client::post_json(
            "/auth/login",
            &[],
            &json!({"email": account.email, "password": self.password}),
        );
        let mfa_token = self.link.call(&login).await?.field(200, "mfa_token")?;
        let code = account.totp.generate((step * STEP) as u64).to_string();
        let verify = client::post_json(
            "/auth/mfa/verify",
            &[],
            &json!({"mfa_token": mfa_token, "code": code}),
        );
        self.link.call(&verify).await?.field(200, "token").map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every step picked is within the server's drift at the step it was picked in and
    /// at the next (a request crossing a boundary), and none is picked twice.
    #[test]
    fn a_picked_step_is_accepted_across_a_boundary_and_used_once() {
        let within = |step: i64, server: i64| (server - 1..=server + 1).contains(&step);
        let current = 1_000;
        let mut last = -1;
        let mut picked = Vec::new();
        while let Some(step) = usable_step(last, current) {
            assert!(within(step, current) && within(step, current + 1), "{step}");
            picked.push(step);
            last = step;
        }
        assert_eq!(picked, [current, current + 1]);
        assert_eq!(usable_step(last, current + 1), Some(current + 2));
        assert_eq!(usable_step(current - 1, current), Some(current));
    }
}
