//! The password-login lockout: guessing is stopped without giving strangers a switch
//! that locks an account's owner out. Knows nothing of HTTP; counts in the store, so
//! every node sees the same counts. Every place a password is checked goes through it
//! with the same counters: a login, and the current password of a password change
//! (where a stolen session would otherwise guess without limit).
//!
//! Failures are counted per account *and* client (OWASP's device-cookie pattern):
//! - a client that signed in to the account before presents the device token it was
//!   given then, and is counted by that token alone;
//! - any other client is counted by its address, and also against the account's
//!   ceiling for such clients, a rate (GCRA) that bounds a guesser spread over many
//!   addresses: a burst of `account_burst` failures, then one per
//!   `account_interval_secs`. It slows them down; it never locks for long.
//!
//! Every attempt holds a place in its gates' `pending` counts while its password is
//! checked, and a failure is recorded before its place is given back, so failures
//! plus attempts in flight never exceed a gate's limit: a burst of concurrent
//! guesses gets no more tries than a sequence. An attempt that finds the gate full of
//! attempts still in flight waits for them rather than being refused, so concurrent
//! correct logins (several tabs) all succeed.

use std::time::Duration;

use crate::domain::{Account, Email, unix_now};
use crate::store::{DynStore, StoreError};

/// The lockout's figures (`rate_limit.*`).
#[derive(Debug, Clone, Copy)]
pub struct LoginLimit {
    /// Failures per account and client before that client is refused for the window.
    pub max_failures: i64,
    pub window_secs: i64,
    /// The account's ceiling for clients without a device token: this many failures
    /// at once, then one per `account_interval_secs`.
    pub account_burst: i64,
    pub account_interval_secs: i64,
    /// The longest an attempt can be in flight (the request timeout): a place held by
    /// an attempt that never gave it back (a crash) is free again after this.
    pub in_flight_secs: i64,
}

/// Who is signing in, as far as the lockout is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Client {
    /// A device token issued to this account (its `jti`).
    Device(String),
    /// A client address key (an IPv6 client's /64).
    Address(String),
}

impl Client {
    fn key(&self) -> String {
        match self {
            Client::Device(jti) => format!("device:{jti}"),
            Client::Address(address) => address.clone(),
        }
    }
}

/// Whose password an attempt checks, as the counters name it: an email (whether or
/// not an account has it), or an account without one (a wallet's that set a password).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject(String);

impl Subject {
    pub fn email(email: &Email) -> Subject {
        Subject(email.key().to_owned())
    }

    /// An account's: its email's when it has one, so that every place its password is
    /// checked (a login, a password change) counts against the same limits.
    pub fn account(account: &Account) -> Subject {
        match account
            .email
            .as_deref()
            .and_then(|e| Email::parse(e, "email").ok())
        {
            Some(email) => Subject::email(&email),
            None => Subject(format!("account:{}", account.id.0)),
        }
    }

    /// The failure counter of this subject and one client.
    pub fn failures_key(&self, client: &Client) -> String {
        format!("login-failures:{}|{}", self.0, client.key())
    }

    /// The subject's ceiling for clients without a device token; the per-client
    /// counters are named by this and `|`.
    pub fn ceiling_key(&self) -> String {
        format!("login-failures:{}", self.0)
    }
}

/// The failure counter of one account and client.
pub fn failures_key(email: &Email, client: &Client) -> String {
    Subject::email(email).failures_key(client)
}

/// The account's ceiling for clients without a device token.
pub fn account_key(email: &Email) -> String {
    Subject::email(email).ceiling_key()
}

#[derive(Debug, Clone, Copy)]
enum Budget {
    /// `max` failures in a fixed window.
    Window { max: i64, window_secs: i64 },
    /// `burst` failures at once, then one per `interval_secs` (GCRA).
    Rate { burst: i64, interval_secs: i64 },
}

#[derive(Debug, Clone)]
struct Gate {
    failures: String,
    pending: String,
    budget: Budget,
}

impl Gate {
    fn new(failures: String, budget: Budget) -> Gate {
        let pending = format!("pending:{failures}");
        Gate {
            failures,
            pending,
            budget,
        }
    }

    fn limit(&self) -> i64 {
        match self.budget {
            Budget::Window { max, .. } => max,
            Budget::Rate { burst, .. } => burst,
        }
    }

    /// Failures that count now, and when one more would be allowed (seconds).
    async fn level(&self, store: &DynStore, now: i64) -> Result<(i64, i64), StoreError> {
        match self.budget {
            Budget::Window { window_secs, .. } => Ok(store
                .count(&self.failures, now, window_secs)
                .await?
                .map_or((0, 0), |c| (c.count, c.window_start + window_secs - now))),
            Budget::Rate {
                burst,
                interval_secs,
            } => {
                let owed = store
                    .count(&self.failures, now, 0)
                    .await?
                    .map_or(0, |c| c.window_start - now);
                let level = (owed + interval_secs - 1) / interval_secs;
                Ok((level, owed - (burst - 1) * interval_secs))
            }
        }
    }

    async fn record_failure(&self, store: &DynStore, now: i64) -> Result<(), StoreError> {
        match self.budget {
            Budget::Window { window_secs, .. } => {
                store.hit(&self.failures, now, window_secs).await?;
            }
            Budget::Rate { interval_secs, .. } => {
                store.spend(&self.failures, now, interval_secs).await?;
            }
        }
        Ok(())
    }
}

/// Why an attempt may not check its password now.
#[derive(Debug)]
pub enum Refusal {
    TooMany { retry_after_secs: i64 },
    Store(StoreError),
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        Refusal::Store(e)
    }
}

/// An admitted attempt: holds its places until [`Attempt::finish`] (or its drop,
/// when the request is cancelled).
pub struct Attempt {
    store: DynStore,
    gates: Vec<Gate>,
    released: bool,
}

impl Attempt {
    /// Records the outcome, then gives back the places.
    pub async fn finish(mut self, succeeded: bool) -> Result<(), StoreError> {
        let now = unix_now();
        let result = async {
            if succeeded {
                // The client proved itself: its own count starts over. The account's
                // ceiling does not, or the owner's sign-ins would refill a guesser's.
                self.store.reset(&self.gates[0].failures).await
            } else {
                for gate in &self.gates {
                    gate.record_failure(&self.store, now).await?;
                }
                Ok(())
            }
        }
        .await;
        self.released = true;
        release(&self.store, &self.gates).await;
        result
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        let (store, gates) = (self.store.clone(), std::mem::take(&mut self.gates));
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { release(&store, &gates).await });
        }
    }
}

async fn release(store: &DynStore, gates: &[Gate]) {
    for gate in gates {
        if let Err(e) = store.release(&gate.pending).await {
            tracing::warn!(error = %e, "giving back a login attempt's place failed");
        }
    }
}

pub struct Lockout {
    store: DynStore,
    limit: LoginLimit,
}

impl Lockout {
    pub fn new(store: DynStore, limit: LoginLimit) -> Lockout {
        Lockout { store, limit }
    }

    fn gates(&self, subject: &Subject, client: &Client) -> Vec<Gate> {
        let l = self.limit;
        let own = Gate::new(
            subject.failures_key(client),
            Budget::Window {
                max: l.max_failures,
                window_secs: l.window_secs,
            },
        );
        match client {
            Client::Device(_) => vec![own],
            Client::Address(_) => vec![
                own,
                Gate::new(
                    subject.ceiling_key(),
                    Budget::Rate {
                        burst: l.account_burst,
                        interval_secs: l.account_interval_secs,
                    },
                ),
            ],
        }
    }

    /// Admits an attempt to check a password, or refuses it while its client (or
    /// the account's ceiling) is over the limit. Waits, at most half the in-flight
    /// bound, while the limit is taken up by attempts still in flight.
    pub async fn admit(&self, subject: &Subject, client: &Client) -> Result<Attempt, Refusal> {
        let gates = self.gates(subject, client);
        let store = &self.store;
        let patience = Duration::from_secs(self.limit.in_flight_secs.max(2) as u64 / 2);
        let deadline = tokio::time::Instant::now() + patience;
        let mut pause = Duration::from_millis(10);
        loop {
            let now = unix_now();
            // Refused without a write while locked: a locked-out guesser costs reads.
            self.refuse_if_over(&gates, now).await?;
            let mut held = Vec::new();
            let mut room = true;
            for gate in &gates {
                let pending = store
                    .hit(&gate.pending, now, self.limit.in_flight_secs)
                    .await?;
                held.push(gate.clone());
                // Read after taking the place: failures recorded since were in flight
                // (counted in `pending`) when it was taken, so this errs on the safe side.
                let (failures, _) = gate.level(store, now).await?;
                if failures + pending.count > gate.limit() {
                    room = false;
                    break;
                }
            }
            if room {
                return Ok(Attempt {
                    store: store.clone(),
                    gates: held,
                    released: false,
                });
            }
            release(store, &held).await;
            if tokio::time::Instant::now() + pause > deadline {
                return Err(Refusal::TooMany {
                    retry_after_secs: 1,
                });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(200));
        }
    }

    async fn refuse_if_over(&self, gates: &[Gate], now: i64) -> Result<(), Refusal> {
        for gate in gates {
            let (failures, retry_after_secs) = gate.level(&self.store, now).await?;
            if failures >= gate.limit() {
                return Err(Refusal::TooMany { retry_after_secs });
            }
        }
        Ok(())
    }
}
