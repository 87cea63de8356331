//! Scenario 10: how fast the outbox delivers to a real SMTP server on loopback.
//!
//! A server of its own, with mail on and `mail.smtp_url` naming a port where nothing
//! listens yet. The driver registers `mails` accounts through the public API (each
//! registration queues its verification mail in the database), so the queueing also
//! shows that requests answer as usual while SMTP is down. Then it starts the SMTP
//! server (Debian's aiosmtpd, `bench/smtp-sink.py`, which prints a line per message it
//! accepted) and times the drain: from the moment the SMTP server listens until it has
//! accepted every mail, each recipient exactly once, and the outbox is empty.
//! Last, the same SMTP server is driven alone by lettre from the driver, so its own
//! capacity shows it is not what the drain measured.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use lettre::message::Mailbox;
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::json;

use crate::client::{self, Link};
use crate::server::{Server, ServerConfig, free_port, usage_of};
use crate::stats::Tally;

/// The cheapest argon2id the server accepts: the scenario times mail, not hashing,
/// and each queued mail costs a registration.
const CHEAP_ARGON2: [(&str, &str); 3] = [
    ("GATEHOUSE_ARGON2__MEMORY_KIB", "8"),
    ("GATEHOUSE_ARGON2__ITERATIONS", "1"),
    ("GATEHOUSE_ARGON2__PARALLELISM", "1"),
];

/// The sender retries a failed mail after a second (the default is 2 s, doubled up
/// to 10 minutes): the mails that failed while SMTP was down are all due again within
/// a second of its start, so the drain measures sending rather than backoff.
const RETRY_SECS: &str = "1";

/// How long the drain may take before the run fails.
const DRAIN_LIMIT: Duration = Duration::from_secs(300);

/// After the last expected mail, how long the SMTP server is watched for one more
/// (a duplicate): longer than a retry.
const WATCH_AFTER: Duration = Duration::from_secs(3);

pub struct OutboxRun {
    pub mails: usize,
    pub queue_clients: usize,
    /// The registrations, answered while SMTP was down.
    pub queueing: Tally,
    pub queue_secs: f64,
    /// From the SMTP server's start to its first and to its last accepted mail.
    pub first_after: Duration,
    pub drained_after: Duration,
    /// Mails received in all; distinct expected recipients among them; others.
    pub received: usize,
    pub distinct: usize,
    pub unexpected: usize,
    /// The outbox's depth after the drain, as `/metrics` reports it.
    pub depth_after: Option<f64>,
    pub mean_size: usize,
    pub server_cpu: f64,
    pub sink_cpu: f64,
    /// The SMTP server alone: mails/s from lettre in the driver.
    pub sink_alone: f64,
    pub sink_alone_concurrency: usize,
    pub sink_alone_cpu: f64,
}

impl OutboxRun {
    /// Mails per second from the SMTP server's start to the last mail.
    pub fn rate(&self) -> f64 {
        self.mails as f64 / self.drained_after.as_secs_f64()
    }

    /// Mails per second from the first mail to the last (without the wait for the
    /// first retry).
    pub fn steady_rate(&self) -> f64 {
        (self.mails.saturating_sub(1)) as f64
            / (self.drained_after - self.first_after).as_secs_f64()
    }

    pub fn exactly_once(&self) -> bool {
        self.received == self.mails && self.distinct == self.mails && self.unexpected == 0
    }
}

/// What the SMTP server accepted: (when, size, recipients), in order.
type Accepted = Arc<Mutex<Vec<(Instant, usize, String)>>>;

struct Sink {
    child: Child,
    accepted: Accepted,
}

impl Sink {
    /// Starts `script` on `port` and waits until it listens.
    fn start(script: &Path, port: u16) -> anyhow::Result<(Sink, Instant)> {
        // Debian's python3-aiosmtpd is for Debian's Python, which need not be the first
        // python3 on the PATH.
        let mut child = Command::new("/usr/bin/python3")
            .arg(script)
            .args(["127.0.0.1", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting the SMTP server (python3)")?;
        let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        match lines.next() {
            Some(Ok(line)) if line == "ready" => {}
            other => {
                let _ = child.kill();
                bail!(
                    "the SMTP server did not start ({other:?}); scripts/bench.sh installs \
                     python3-aiosmtpd"
                );
            }
        }
        let listening = Instant::now();
        let accepted: Accepted = Arc::default();
        let record = Arc::clone(&accepted);
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let now = Instant::now();
                let (size, to) = line.split_once(' ').unwrap_or(("0", ""));
                let size = size.parse().unwrap_or(0);
                record
                    .lock()
                    .expect("the recorder")
                    .push((now, size, to.to_owned()));
            }
        });
        Ok((Sink { child, accepted }, listening))
    }

    fn count(&self) -> usize {
        self.accepted.lock().expect("the recorder").len()
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn run(
    base: &ServerConfig,
    sink_script: &Path,
    mails: usize,
    clients: usize,
    run_id: &str,
) -> anyhow::Result<OutboxRun> {
    let smtp_port = free_port()?;
    let mut env: Vec<(String, String)> = vec![
        ("GATEHOUSE_MAIL__ENABLED".into(), "true".into()),
        (
            "GATEHOUSE_MAIL__SMTP_URL".into(),
            format!("smtp://127.0.0.1:{smtp_port}?tls=none"),
        ),
        (
            "GATEHOUSE_HTTP__PUBLIC_URL".into(),
            "https://auth.bench.test".into(),
        ),
        (
            "GATEHOUSE_MAIL__FROM".into(),
            "Bench <no-reply@bench.test>".into(),
        ),
        ("GATEHOUSE_MAIL__RETRY_BASE_SECS".into(), RETRY_SECS.into()),
        ("GATEHOUSE_MAIL__RETRY_MAX_SECS".into(), RETRY_SECS.into()),
        ("GATEHOUSE_METRICS__ENABLED".into(), "true".into()),
    ];
    env.extend(CHEAP_ARGON2.map(|(k, v)| (k.to_owned(), v.to_owned())));
    env.extend(base.extra_env.iter().cloned());
    let config = ServerConfig {
        binary: base.binary.clone(),
        postgres: base.postgres.clone(),
        keep_schema: None,
        jwt_secret: base.jwt_secret.clone(),
        ownid_secret: base.ownid_secret.clone(),
        extra_env: env,
        grow: None,
    };
    let server = Server::start(&config).await?;

    // Queue: one registration per mail, SMTP down.
    let emails: Vec<String> = (0..mails)
        .map(|i| format!("bench-{run_id}-mail-{i}@example.com"))
        .collect();
    let queue_clients = clients.clamp(1, mails.max(1));
    let started = Instant::now();
    let queueing = register_all(server.addr, &emails, queue_clients).await;
    let queue_secs = started.elapsed().as_secs_f64();
    if queueing.failures() > 0 {
        bail!(
            "registering the accounts while SMTP is down: {}",
            queueing.describe_errors()
        );
    }

    // Drain: the SMTP server starts; every mail must arrive.
    let server_before = server.usage();
    let (sink, listening) = Sink::start(sink_script, smtp_port)?;
    let sink_before = usage_of(sink.pid()).unwrap_or_default();
    while sink.count() < mails {
        if listening.elapsed() > DRAIN_LIMIT {
            bail!(
                "{} of {mails} mails after {} s; the server's log:\n{}",
                sink.count(),
                DRAIN_LIMIT.as_secs(),
                server.log_tail()
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let server_cpu = server.usage().cpu_secs - server_before.cpu_secs;
    let sink_cpu = usage_of(sink.pid()).unwrap_or_default().cpu_secs - sink_before.cpu_secs;
    tokio::time::sleep(WATCH_AFTER).await;
    let depth_after = outbox_depth(server.addr).await;

    let accepted = sink.accepted.lock().expect("the recorder").clone();
    let first_after = accepted[0].0 - listening;
    let drained_after = accepted[mails - 1].0 - listening;
    let expected: HashMap<&str, usize> = emails.iter().map(|e| (e.as_str(), 0)).collect();
    let mut seen = expected;
    let mut unexpected = 0;
    for (_, _, to) in &accepted {
        match seen.get_mut(to.as_str()) {
            Some(n) => *n += 1,
            None => unexpected += 1,
        }
    }
    let distinct = seen.values().filter(|&&n| n == 1).count();
    let mean_size = accepted.iter().map(|(_, s, _)| s).sum::<usize>() / accepted.len().max(1);
    server.stop();

    // The SMTP server alone, at the sender's concurrency (mail.send_concurrency).
    let concurrency = 8;
    let probe_before = usage_of(sink.pid()).unwrap_or_default();
    let sink_alone = sink_capacity(smtp_port, mails, concurrency, mean_size, &sink).await?;
    let sink_alone_cpu = usage_of(sink.pid()).unwrap_or_default().cpu_secs - probe_before.cpu_secs;

    Ok(OutboxRun {
        mails,
        queue_clients,
        queueing,
        queue_secs,
        first_after,
        drained_after,
        received: accepted.len(),
        distinct,
        unexpected,
        depth_after,
        mean_size,
        server_cpu,
        sink_cpu,
        sink_alone,
        sink_alone_concurrency: concurrency,
        sink_alone_cpu,
    })
}

/// Registers every address, `clients` at a time; the latency of each answer.
async fn register_all(addr: SocketAddr, emails: &[String], clients: usize) -> Tally {
    let emails = Arc::new(emails.to_vec());
    let tasks: Vec<_> = (0..clients)
        .map(|lane| {
            let emails = Arc::clone(&emails);
            tokio::spawn(async move {
                let mut link = Link::new(addr);
                let mut tally = Tally::default();
                for email in emails.iter().skip(lane).step_by(clients) {
                    let request = client::post_json(
                        "/auth/register",
                        &[],
                        &json!({"email": email, "password": "bench-password-0123"}),
                    );
                    let began = Instant::now();
                    match link
                        .call(&request)
                        .await
                        .and_then(|r| r.field(200, "token"))
                    {
                        Ok(_) => tally.ok(began.elapsed()),
                        Err(e) => tally.failed(&e),
                    }
                }
                tally
            })
        })
        .collect();
    let mut all = Tally::default();
    for task in tasks {
        match task.await {
            Ok(t) => all.merge(&t),
            Err(_) => all.failed(&client::Failure::Body("a client task panicked")),
        }
    }
    all
}

/// `gatehouse_mail_outbox_depth` from `GET /metrics`.
async fn outbox_depth(addr: SocketAddr) -> Option<f64> {
    let res = Link::new(addr)
        .call(&client::get("/metrics", None))
        .await
        .ok()?;
    let text = String::from_utf8(res.body).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("gatehouse_mail_outbox_depth "))
        .and_then(|v| v.trim().parse().ok())
}

/// Mails per second the SMTP server accepts from lettre in the driver: `count` mails
/// of about `size` bytes, `concurrency` at a time on a pool of as many connections.
async fn sink_capacity(
    port: u16,
    count: usize,
    concurrency: usize,
    size: usize,
    sink: &Sink,
) -> anyhow::Result<f64> {
    // builder_dangerous: no TLS, the server is on loopback.
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(port)
        .pool_config(PoolConfig::new().max_size(concurrency as u32))
        .build();
    let from: Mailbox = "Bench <no-reply@bench.test>".parse()?;
    let body = "x".repeat(size.saturating_sub(400).max(1));
    let already = sink.count();
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let lanes: Vec<_> = (0..concurrency)
        .map(|_| {
            let (transport, from, body, next) = (
                transport.clone(),
                from.clone(),
                body.clone(),
                Arc::clone(&next),
            );
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= count {
                        return Ok::<_, anyhow::Error>(());
                    }
                    let message = Message::builder()
                        .from(from.clone())
                        .to(format!("probe-{i}@example.com").parse()?)
                        .subject("The SMTP server's own capacity")
                        .body(body.clone())?;
                    transport.send(message).await?;
                }
            })
        })
        .collect();
    for lane in lanes {
        lane.await?.context("sending to the SMTP server directly")?;
    }
    while sink.count() < already + count {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(count as f64 / started.elapsed().as_secs_f64())
}
