//! What a node counts, for Prometheus: one [`Metrics`] per node, owned by the
//! [`App`](crate::app::App), rendered by `GET /metrics` in the text exposition format.
//!
//! Every label value is a fixed word or a route template (`/auth/me`, never a path
//! that was sent): no email, wallet address, token or account id can reach a label,
//! and the number of series stays bounded whatever clients send.
//!
//! For a new sign-in method: add its word to [`SignInMethod`] and call
//! [`Metrics::sign_in`] once per attempt with its [`Outcome`].

use std::time::{Duration, Instant};

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// A way to sign in, as a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignInMethod {
    Password,
    Selfkey,
    Ownid,
    Passkey,
    Siwe,
    Social,
}

impl SignInMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            SignInMethod::Password => "password",
            SignInMethod::Selfkey => "selfkey",
            SignInMethod::Ownid => "ownid",
            SignInMethod::Passkey => "passkey",
            SignInMethod::Siwe => "siwe",
            SignInMethod::Social => "social",
        }
    }
}

/// How a sign-in attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Signed in: a token was issued.
    Success,
    /// Wrong password, bad signature, unknown or used-up token.
    Failure,
    /// Refused by the failed-login lockout.
    LockedOut,
    /// Refused because the account is disabled.
    Disabled,
    /// Refused for load (hash queue full), not judged.
    Busy,
    /// The server failed (a 5xx).
    Error,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::LockedOut => "locked_out",
            Outcome::Disabled => "disabled",
            Outcome::Busy => "busy",
            Outcome::Error => "error",
        }
    }
}

/// Which limit refused a request (the failed-login lockout is counted on its own,
/// in `login_lockouts_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    /// Requests per client address (`rate_limit.per_address`).
    Address,
}

macro_rules! label_value {
    ($($t:ty),*) => {$(
        impl EncodeLabelValue for $t {
            fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
                std::fmt::Write::write_str(encoder, self.as_str())
            }
        }
    )*};
}
label_value!(SignInMethod, Outcome);

impl Limit {
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::Address => "address",
        }
    }
}
label_value!(Limit);

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    /// The route template that matched, or `unmatched`.
    route: String,
    status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct SignInLabels {
    method: SignInMethod,
    outcome: Outcome,
}

/// A table of the purge: a fixed word from the store's statements.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TableLabels {
    table: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct LimitLabels {
    limit: Limit,
}

/// What kind of database call: how each backend runs its statements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DbCall {
    /// SQLite: a read on a read-only connection.
    Read,
    /// SQLite: a write, from queueing to its group commit being on disk.
    Write,
    /// PostgreSQL: one statement on the pool (a connection taken, the statement run).
    Statement,
    /// PostgreSQL: a transaction, from `BEGIN` to its commit.
    Transaction,
}

impl DbCall {
    pub fn as_str(self) -> &'static str {
        match self {
            DbCall::Read => "read",
            DbCall::Write => "write",
            DbCall::Statement => "statement",
            DbCall::Transaction => "transaction",
        }
    }
}
label_value!(DbCall);

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct DbCallLabels {
    call: DbCall,
}

/// Times database calls where each backend runs them (SQLite's readers and writer
/// queue, PostgreSQL's pool and transactions): one narrow point per backend, not a
/// wrapper around every store method. A timer made with `default()` is not
/// registered anywhere (the admin command line's).
#[derive(Clone, Debug)]
pub struct DatabaseTimer {
    calls: Histograms<DbCallLabels>,
}

impl Default for DatabaseTimer {
    fn default() -> Self {
        DatabaseTimer {
            calls: Histograms::<DbCallLabels>::new_with_constructor(db_latency as fn() -> _),
        }
    }
}

impl DatabaseTimer {
    /// Starts timing one call; it is recorded when the returned value drops.
    pub fn start(&self, call: DbCall) -> DbTiming {
        DbTiming {
            histogram: self.calls.get_or_create(&DbCallLabels { call }).clone(),
            started: Instant::now(),
        }
    }
}

/// One database call being timed.
pub struct DbTiming {
    histogram: Histogram,
    started: Instant,
}

impl Drop for DbTiming {
    fn drop(&mut self) {
        self.histogram.observe(self.started.elapsed().as_secs_f64());
    }
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// 0.5 ms to about 16 s, doubling: a token check to a request timeout.
fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// 50 µs to about 1.6 s, doubling: a point lookup to a slow commit.
fn db_latency() -> Histogram {
    Histogram::new(exponential_buckets(0.00005, 2.0, 16))
}

/// The password-hash queue's instruments, handed to the hasher.
#[derive(Clone, Debug)]
pub struct HashQueueMetrics {
    /// Seconds from joining the queue to the hash starting.
    pub wait: Histogram,
    /// Hashes refused because the queue was too long.
    pub refused: Counter,
}

pub struct Metrics {
    registry: Registry,
    requests: Histograms<RequestLabels>,
    sign_ins: Family<SignInLabels, Counter>,
    refusals: Family<LimitLabels, Counter>,
    lockouts: Counter,
    hash_queue: HashQueueMetrics,
    hash_queue_depth: Gauge,
    database: DatabaseTimer,
    mail_outbox_depth: Gauge,
    purged: Family<TableLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("gatehouse");
        let requests = Histograms::<RequestLabels>::new_with_constructor(latency as fn() -> _);
        registry.register(
            "http_request_duration_seconds",
            "HTTP requests by method, route template and status, and how long they took",
            requests.clone(),
        );
        let sign_ins = Family::<SignInLabels, Counter>::default();
        registry.register(
            "sign_ins",
            "Sign-in attempts by method and outcome",
            sign_ins.clone(),
        );
        let refusals = Family::<LimitLabels, Counter>::default();
        registry.register(
            "rate_limit_refusals",
            "Requests refused with 429 by a rate limit (address: per client address)",
            refusals.clone(),
        );
        let lockouts = Counter::default();
        registry.register(
            "login_lockouts",
            "Password checks (logins, password changes) refused (429) by the failed-login lockout",
            lockouts.clone(),
        );
        let hash_queue = HashQueueMetrics {
            wait: Histogram::new(exponential_buckets(0.001, 2.0, 15)),
            refused: Counter::default(),
        };
        registry.register(
            "password_hash_wait_seconds",
            "How long password hashes waited for a hashing slot",
            hash_queue.wait.clone(),
        );
        registry.register(
            "password_hash_refusals",
            "Password hashes refused (429) because the queue would take too long",
            hash_queue.refused.clone(),
        );
        let hash_queue_depth = Gauge::default();
        registry.register(
            "password_hash_queue_depth",
            "Password hashes waiting or running",
            hash_queue_depth.clone(),
        );
        let database = DatabaseTimer::default();
        registry.register(
            "database_call_duration_seconds",
            "Calls to the database (read, write: SQLite; statement, transaction: PostgreSQL), and how long they took",
            database.calls.clone(),
        );
        let mail_outbox_depth = Gauge::default();
        registry.register(
            "mail_outbox_depth",
            "Mails queued and not yet sent",
            mail_outbox_depth.clone(),
        );
        let purged = Family::<TableLabels, Counter>::default();
        registry.register(
            "purged_rows",
            "Expired rows the purge deleted, by table (it deletes in bounded batches: this moves as it goes)",
            purged.clone(),
        );
        Metrics {
            registry,
            requests,
            sign_ins,
            refusals,
            lockouts,
            hash_queue,
            hash_queue_depth,
            database,
            mail_outbox_depth,
            purged,
        }
    }

    /// One HTTP request answered. `route` is the matched template, `None` when no
    /// route matched.
    pub fn request(&self, method: &'static str, route: Option<&str>, status: u16, took: Duration) {
        let labels = RequestLabels {
            method,
            route: route.unwrap_or("unmatched").to_owned(),
            status,
        };
        self.requests
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }

    /// One sign-in attempt and how it ended.
    pub fn sign_in(&self, method: SignInMethod, outcome: Outcome) {
        self.sign_ins
            .get_or_create(&SignInLabels { method, outcome })
            .inc();
    }

    /// A request refused by a rate limit.
    pub fn refused(&self, limit: Limit) {
        self.refusals.get_or_create(&LimitLabels { limit }).inc();
    }

    /// A password check (a login, a password change) refused by the lockout.
    pub fn locked_out(&self) {
        self.lockouts.inc();
    }

    pub fn hash_queue(&self) -> HashQueueMetrics {
        self.hash_queue.clone()
    }

    /// `rows` expired rows of `table` deleted by one batch of the purge.
    pub fn purged(&self, table: &'static str, rows: u64) {
        self.purged
            .get_or_create(&TableLabels { table })
            .inc_by(rows);
    }

    /// The timer the store backends record their calls with.
    pub fn database(&self) -> DatabaseTimer {
        self.database.clone()
    }

    /// The mail outbox's depth, set from the database before each render.
    pub fn mail_outbox_depth(&self) -> &Gauge {
        &self.mail_outbox_depth
    }

    /// Everything, in the Prometheus text exposition format; gauges read at this
    /// moment are passed in.
    pub fn render(&self, hash_queue_depth: usize) -> String {
        self.hash_queue_depth
            .set(i64::try_from(hash_queue_depth).unwrap_or(i64::MAX));
        let mut out = String::with_capacity(16 * 1024);
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// The content type of [`Metrics::render`]'s output (OpenMetrics text, which
/// Prometheus reads, and which is a superset of its older text format).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_with_fixed_labels() {
        let m = Metrics::new();
        m.request("GET", Some("/auth/me"), 200, Duration::from_millis(2));
        m.request("GET", None, 404, Duration::from_millis(1));
        m.sign_in(SignInMethod::Password, Outcome::LockedOut);
        m.refused(Limit::Address);
        m.locked_out();
        drop(m.database().start(DbCall::Read));
        m.mail_outbox_depth().set(3);
        m.purged("sessions", 1000);
        m.purged("sessions", 24);
        let text = m.render(2);
        for line in [
            "gatehouse_http_request_duration_seconds_count{method=\"GET\",route=\"/auth/me\",status=\"200\"} 1",
            "gatehouse_http_request_duration_seconds_count{method=\"GET\",route=\"unmatched\",status=\"404\"} 1",
            "gatehouse_sign_ins_total{method=\"password\",outcome=\"locked_out\"} 1",
            "gatehouse_rate_limit_refusals_total{limit=\"address\"} 1",
            "gatehouse_login_lockouts_total 1",
            "gatehouse_password_hash_queue_depth 2",
            "gatehouse_database_call_duration_seconds_count{call=\"read\"} 1",
            "gatehouse_mail_outbox_depth 3",
            "gatehouse_password_hash_refusals_total 0",
            "gatehouse_purged_rows_total{table=\"sessions\"} 1024",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from:\n{text}"
            );
        }
    }
}
