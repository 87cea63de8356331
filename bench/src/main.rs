//! Gatehouse's benchmark harness (issue 6). Starts a release server on a fresh
//! database on a free loopback port, drives it with the six scenarios, and prints
//! throughput, latency, errors, and the server's CPU time and peak memory for each,
//! then which speed targets were met. `scripts/bench.sh` builds and runs it.

mod client;
mod codes;
mod load;
mod mfa;
mod mfa_verify;
mod outbox;
mod ownid;
mod scenarios;
mod seed;
mod server;
mod social;
mod stats;
mod wallet;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use base64::Engine;
use clap::Parser;

use scenarios::{Bench, Burst, Driver, Measured, Outcome};
use server::{Server, ServerConfig};

#[derive(Parser)]
#[command(
    name = "gatehouse-bench",
    about = "Benchmarks a release Gatehouse server over loopback (see BENCHMARKS.md)."
)]
struct Args {
    /// The server binary.
    #[arg(long, default_value = "target/release/gatehouse")]
    server: PathBuf,
    /// Scenarios to run: 1 register, 2 login, 3 /auth/me, 4 wallet, 5 OwnID, 6 burst,
    /// 7 passkey sign-in, 8 SIWE sign-in, 9 refresh, 10 outbox delivery to SMTP,
    /// 11 password + TOTP sign-in, 12 GET /ui/sign-in, 13 sign-in through the /ui/sign-in
    /// form, 14 OIDC client_credentials, 15 OIDC introspection, 16 OIDC code exchange
    /// (RS256 and ES256 ID tokens; SQLite only), 17 a whole sign-in through
    /// /oauth/authorize, the password form and the code exchange, 18 /auth/mfa/verify
    /// alone (TOTP; SQLite only), 19 social sign-in callback against an OpenID Connect
    /// upstream in this process.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1,2,3,4,5,6,7,8,10,12,13,14,15,16,17,19"
    )]
    scenarios: Vec<u8>,
    /// Codes seeded per client in scenario 16: each request spends one, so this times
    /// --clients must exceed what a run exchanges (64 x 2,000 = 128,000, for 10,000/s
    /// over a warm-up and a window of 12 s).
    #[arg(long, default_value_t = 2000)]
    codes_per_client: usize,
    /// Measured seconds per scenario.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Warm-up seconds before each measured window.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Concurrent clients (scenarios 1, 2, 4, 5).
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Keep-alive connections for /auth/me (scenario 3).
    #[arg(long, default_value_t = 64)]
    me_connections: usize,
    /// Logins in the burst (scenario 6), each on its own connection.
    #[arg(long, default_value_t = 1000)]
    burst: usize,
    /// Passwordless accounts the OwnID scenario rotates over.
    #[arg(long, default_value_t = 2000)]
    ownid_accounts: usize,
    /// Accounts per client in scenario 11: each account signs in once per 30 s (a time
    /// step is accepted once), so clients times this should be at least the rate times
    /// 30 (64 x 48 = 3,072 accounts, registered and enrolled first, for 100/s).
    #[arg(long, default_value_t = 48)]
    mfa_accounts_per_client: usize,
    /// Accounts seeded for scenario 18, each with an authenticator and
    /// --mfa-verify-pending pending sign-ins: an account gives about three codes in a
    /// measured window (the steps before, at and after now), so this times three should
    /// exceed the rate times the warm-up and window (48,000 x 3 for 10,000/s over 12 s).
    #[arg(long, default_value_t = 48_000)]
    mfa_verify_accounts: usize,
    #[arg(long, default_value_t = 4)]
    mfa_verify_pending: usize,
    /// Mails the outbox delivers in scenario 10 (one registration queues each).
    #[arg(long, default_value_t = 3000)]
    outbox_mails: usize,
    /// The SMTP server of scenario 10 (Debian's python3-aiosmtpd).
    #[arg(long, default_value = "bench/smtp-sink.py")]
    smtp_sink: PathBuf,
    /// Run against this PostgreSQL (a fresh schema is created and dropped) instead of
    /// a fresh SQLite file.
    #[arg(long, value_name = "URL")]
    postgres: Option<String>,
    /// An extra server setting, e.g. GATEHOUSE_DATABASE_MAX_CONNECTIONS=4 (repeatable):
    /// for experiments; the figures in BENCHMARKS.md use none.
    #[arg(long, value_name = "KEY=VALUE")]
    server_env: Vec<String>,
    /// Grow the fresh store to this many accounts (and as many live sessions, a fifth
    /// more expired, every tenth account with a wallet, every twentieth with a
    /// passkey) before the server starts on it, written straight into the database
    /// (issue 28). 0: an empty store.
    #[arg(long, default_value_t = 0)]
    grow: u64,
    /// Of the grown store's live sessions, this many accounts hold --busy-sessions each.
    #[arg(long, default_value_t = 10)]
    busy_accounts: u64,
    #[arg(long, default_value_t = 3000)]
    busy_sessions: u64,
    /// Leave the grown store without statistics (no ANALYZE after the load).
    #[arg(long)]
    no_analyze: bool,
    /// Expired sessions in the grown store (default: a fifth of --grow), which the
    /// server's first purge deletes, at its start, while the scenarios run.
    #[arg(long)]
    expired: Option<u64>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    server::check_binary(&args.server)?;
    // One thread: the load generator's CPU is bounded and measured, and every core it
    // does not use is the server's.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    print_machine(cores);
    let hash = time_one_hash();
    let hash_together = time_hashes_together(cores);
    // The server hashes at most `argon2.max_in_flight` passwords at once, by default
    // one per core: logins cannot go faster than that many hashes in parallel, each
    // at the cost of a hash while the other cores hash too (they share the caches and
    // the memory bus that argon2's 19 MiB working memory runs on).
    let hash_limit = cores as f64 / hash_together.as_secs_f64();
    println!(
        "argon2id m={} t={} p={}: one hash takes {:.1} ms of CPU here alone (best of 3 runs of 5), \
         {:.1} ms each with {cores} threads hashing at once ({} each)",
        server::ARGON2_MEMORY_KIB,
        server::ARGON2_ITERATIONS,
        server::ARGON2_PARALLELISM,
        ms(hash),
        ms(hash_together),
        TOGETHER_HASHES,
    );
    println!(
        "hash-bound limit for logins: {:.1}/s ({:.1} hashes/s x {cores} = argon2.max_in_flight, the default)",
        hash_limit,
        1.0 / hash_together.as_secs_f64()
    );

    let ownid_key = server::random_hex(32).into_bytes();
    let jwt_secret = server::random_hex(32);
    let config = ServerConfig {
        binary: args.server.clone(),
        postgres: args.postgres.clone(),
        jwt_secret: jwt_secret.clone(),
        ownid_secret: base64::engine::general_purpose::STANDARD.encode(&ownid_key),
        extra_env: args
            .server_env
            .iter()
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) => Ok((k.to_string(), v.to_string())),
                None => Err(anyhow::anyhow!("--server-env {kv:?}: expected KEY=VALUE")),
            })
            .collect::<anyhow::Result<_>>()?,
        grow: (args.grow > 0).then_some(seed::Grow {
            accounts: args.grow,
            busy_accounts: args.busy_accounts,
            busy_sessions: args.busy_sessions,
            analyze: !args.no_analyze,
            expired: args.expired.unwrap_or(args.grow / 5),
        }),
    };
    let server = Server::start(&config).await?;
    println!(
        "server: {} pid {} on {}, database {}",
        args.server.display(),
        server.pid(),
        server.addr,
        match (args.postgres.is_some(), args.grow > 0) {
            (true, false) => "PostgreSQL (fresh schema)",
            (true, true) => "PostgreSQL (fresh schema, grown)",
            (false, false) => "SQLite (fresh file)",
            (false, true) => "SQLite (fresh file, grown)",
        }
    );
    println!(
        "start-up: {:.0} ms from the process's start to its first healthy answer",
        server.startup.as_secs_f64() * 1000.0
    );
    println!(
        "RATE LIMITS RAISED for this run: rate_limit.per_address = {} (every request comes \
         from 127.0.0.1); the per-account login lockout stays on (no login here fails)",
        server::RAISED_PER_ADDRESS_LIMIT
    );
    if !args.server_env.is_empty() {
        println!("extra server settings: {}", args.server_env.join(" "));
    }
    println!(
        "load: {} s measured after {} s warm-up per scenario, {} clients, one driver thread",
        args.duration, args.warmup, args.clients
    );

    let window = load::Window {
        warmup: Duration::from_secs(args.warmup),
        duration: Duration::from_secs(args.duration),
        op_timeout: Duration::from_secs(60),
    };
    let mut bench = Bench::new(server, window, ownid_key);
    bench.clients = args.clients.max(1);
    bench.me_connections = args.me_connections.max(1);
    bench.burst = args.burst.max(1);
    bench.ownid_accounts = args.ownid_accounts;
    bench.codes_per_client = args.codes_per_client.max(1);
    let wants = |n: u8| args.scenarios.contains(&n);
    let mut targets = Targets::default();

    if wants(1) {
        let m = bench.register().await;
        heading(
            1,
            "register, a new email each time",
            &format!("{} clients", bench.clients),
        );
        print_measured(&m);
        println!(
            "  hash-bound    {:.1}% of {:.1}/s (each registration hashes once)",
            100.0 * m.throughput() / hash_limit,
            hash_limit
        );
        print_hash_share(&m, hash_together);
    }
    if wants(2) || wants(3) || wants(9) || wants(13) || wants(17) {
        bench.prepare_accounts().await?;
    }
    if wants(2) {
        let hash_before_login = time_hashes_together(cores);
        let m = bench.login().await;
        heading(
            2,
            "password login",
            &format!("{} clients, one account each", bench.clients),
        );
        print_measured(&m);
        // This machine's speed drifts by tens of percent within minutes (its
        // neighbours share the host's caches), so the bound for this scenario is the
        // mean of the hash cost measured just before and just after it.
        let after = time_hashes_together(cores);
        let cost = (hash_before_login + after) / 2;
        let limit = cores as f64 / cost.as_secs_f64();
        let fraction = m.throughput() / limit;
        let p99_hashes = m.tally.quantile_ms(0.99) / ms(hash);
        println!(
            "  hash-bound    {:.1}% of {:.1}/s (a hash with {cores} at once: {:.1} ms before, {:.1} ms after); \
             p99 = {:.1} x one hash",
            100.0 * fraction,
            limit,
            ms(hash_before_login),
            ms(after),
            p99_hashes
        );
        print_hash_share(&m, cost);
        // Little's law: with `clients` in a closed loop and `cores` hashes at a time,
        // the mean latency is clients / cores hash times, whatever the server does.
        let mean_floor = bench.clients as f64 / cores as f64 * ms(cost) / ms(hash);
        targets.login = Some((fraction, p99_hashes, mean_floor, m.tally.failures()));
    }
    if wants(3) {
        heading(
            3,
            "GET /auth/me with a valid token",
            &format!("{} keep-alive connections", bench.me_connections),
        );
        // Twice: with the driver sleeping between answers, as a client does, then
        // polling, which takes the client's own wakeups off the server's bill (see
        // `Driver::Polls`). Each against `/health` on the same connections.
        let mut shares = [0.0; 2];
        for (i, driver) in [Driver::Sleeps, Driver::Polls].into_iter().enumerate() {
            let m = bench.me(driver).await;
            println!(
                "  -- the driver {}",
                match driver {
                    Driver::Sleeps => "sleeps in epoll_wait between answers",
                    Driver::Polls => "polls its sockets on its own core",
                }
            );
            print_measured(&m);
            let bound = bench.health(driver).await;
            println!(
                "  HTTP bound    GET /health on the same connections: {:.1} req/s, {:.0} µs server CPU per request",
                bound.throughput(),
                per_request_us(&bound)
            );
            shares[i] = m.throughput() / bound.throughput();
            println!(
                "  share         /auth/me / /health = {:.2}; server CPU per request {:.1} µs / {:.1} µs",
                shares[i],
                per_request_us(&m),
                per_request_us(&bound)
            );
            if driver == Driver::Sleeps {
                targets.me = Some(m.throughput());
            }
        }
        targets.me_share = Some((shares[1], shares[0]));
    }
    if wants(12) {
        heading(
            12,
            "GET /ui/sign-in, the hosted sign-in page",
            &format!("{} keep-alive connections", bench.me_connections),
        );
        let m = bench.sign_in_page().await;
        print_measured(&m);
        targets.sign_in_page = Some(m.throughput());
    }
    if wants(13) {
        let hash_before = time_hashes_together(cores);
        let m = bench.form_login().await?;
        heading(
            13,
            "password sign-in through the /ui/sign-in form",
            &format!("{} clients, one account each", bench.clients),
        );
        print_measured(&m);
        let cost = (hash_before + time_hashes_together(cores)) / 2;
        let limit = cores as f64 / cost.as_secs_f64();
        println!(
            "  hash-bound    {:.1}% of {:.1}/s",
            100.0 * m.throughput() / limit,
            limit
        );
        targets.form_login = Some(m.throughput() / limit);
    }
    if wants(9) {
        let m = bench.refresh().await?;
        heading(
            9,
            "POST /auth/refresh, a rotation each time",
            &format!("{} clients, a session each", bench.clients),
        );
        print_measured(&m);
        targets.refresh = Some(m.throughput());
    }
    if wants(14) {
        heading(
            14,
            "OIDC client_credentials: POST /oauth/token, client_secret_basic",
            &format!("{} clients, a registered client each", bench.clients),
        );
        match bench.client_credentials().await? {
            Outcome::Done(m) => {
                print_measured(&m);
                targets.client_credentials = Some(m.throughput());
            }
            Outcome::Skipped => println!("  skipped: route not available"),
        }
    }
    if wants(15) {
        heading(
            15,
            "OIDC introspection: POST /oauth/introspect of a live access token",
            &format!("{} clients, a registered client each", bench.clients),
        );
        match bench.introspection().await? {
            Outcome::Done(m) => {
                print_measured(&m);
                targets.introspection = Some(m.throughput());
            }
            Outcome::Skipped => println!("  skipped: route not available"),
        }
    }
    if wants(16) {
        for alg in ["RS256", "ES256"] {
            heading(
                16,
                &format!(
                    "OIDC code exchange: POST /oauth/token, authorization_code + PKCE, {alg} ID token"
                ),
                &format!(
                    "{} clients, a code of its own for every request",
                    bench.clients
                ),
            );
            match bench.code_exchange(alg).await? {
                Outcome::Done(m) => {
                    print_measured(&m);
                    targets.code_exchange.push((alg, m.throughput()));
                }
                Outcome::Skipped => {
                    println!("  skipped: the provider is off, or the store is not SQLite")
                }
            }
        }
    }
    if wants(17) {
        heading(
            17,
            "OIDC sign-in: /oauth/authorize, the sign-in page and form, /authorize again, the code exchange",
            &format!(
                "{} clients, one account each, a first-party public client with PKCE",
                bench.clients
            ),
        );
        // The bound as scenarios 2 and 13 take it: the hash's cost with every core
        // hashing, measured just before and just after the window (this machine's
        // speed drifts within minutes), not the one measured at the run's start.
        let hash_before = time_hashes_together(cores);
        match bench.authorize_sign_in().await? {
            Outcome::Done(m) => {
                print_measured(&m);
                let after = time_hashes_together(cores);
                let cost = (hash_before + after) / 2;
                let limit = cores as f64 / cost.as_secs_f64();
                println!(
                    "  hash-bound    {:.1}% of {:.1}/s (each flow hashes once; a hash with {cores} at once: {:.1} ms before, {:.1} ms after)",
                    100.0 * m.throughput() / limit,
                    limit,
                    ms(hash_before),
                    ms(after),
                );
                print_hash_share(&m, cost);
            }
            Outcome::Skipped => println!("  skipped: route not available"),
        }
    }
    if wants(4) {
        heading(
            4,
            "wallet login: challenge, sign, answer, /auth/token, /login",
            &format!("{} clients, one wallet each", bench.clients),
        );
        match bench.wallet().await? {
            Outcome::Done(m) => {
                print_measured(&m);
                targets.wallet = Some(m.throughput());
            }
            Outcome::Skipped => println!("  skipped: route not available"),
        }
    }
    if wants(5) {
        heading(
            5,
            "OwnID getSessionByLoginId",
            &format!(
                "{} clients over {} accounts",
                bench.clients,
                bench.ownid_accounts.max(bench.clients)
            ),
        );
        match bench.ownid().await? {
            Outcome::Done(m) => {
                print_measured(&m);
                targets.ownid = Some(m.throughput());
            }
            Outcome::Skipped => println!("  skipped: route not available"),
        }
    }
    if wants(7) {
        heading(
            7,
            "passkey sign-in: options, ES256 assertion, finish",
            &format!("{} clients, one passkey-only account each", bench.clients),
        );
        match bench.passkey().await? {
            Outcome::Done(m) => {
                print_measured(&m);
                targets.passkey = Some(m.throughput());
            }
            Outcome::Skipped => println!("  skipped: route not available"),
        }
    }
    if wants(8) {
        heading(
            8,
            "SIWE sign-in: nonce, EIP-4361 message signed, session",
            &format!("{} clients, one address each", bench.clients),
        );
        match bench.siwe().await? {
            Outcome::Done(m) => {
                print_measured(&m);
                targets.siwe = Some(m.throughput());
            }
            Outcome::Skipped => println!("  skipped: route not available"),
        }
    }
    if wants(11) {
        heading(
            11,
            "password + TOTP sign-in: /auth/login (mfa_required), /auth/mfa/verify",
            &format!(
                "{} clients, {} enrolled accounts each",
                bench.clients, args.mfa_accounts_per_client
            ),
        );
        match bench.mfa_sign_in(args.mfa_accounts_per_client).await? {
            Outcome::Done(m) => {
                print_measured(&m);
                let limit = cores as f64 / hash.as_secs_f64();
                println!(
                    "  hash-bound    {:.1}% of {:.1}/s (each sign-in hashes once)",
                    100.0 * m.throughput() / limit,
                    limit
                );
            }
            Outcome::Skipped => println!("  skipped: route not available"),
        }
    }
    if wants(18) {
        heading(
            18,
            "/auth/mfa/verify alone with a TOTP code (seeded pending sign-ins)",
            &format!(
                "{} clients, {} accounts with {} pending sign-ins each",
                bench.clients, args.mfa_verify_accounts, args.mfa_verify_pending
            ),
        );
        match bench
            .mfa_verify(
                &jwt_secret,
                args.mfa_verify_accounts,
                args.mfa_verify_pending,
            )
            .await?
        {
            Outcome::Done(m) => print_measured(&m),
            Outcome::Skipped => println!("  skipped: SQLite only"),
        }
    }
    if wants(6) {
        let b = bench.burst().await?;
        heading(
            6,
            "burst of password logins",
            &format!(
                "{} at once, each on its own connection and account",
                b.requests
            ),
        );
        print_burst(&b);
        targets.burst = Some(b);
    }
    if wants(10) {
        let o = outbox::run(
            &config,
            &args.smtp_sink,
            args.outbox_mails.max(1),
            bench.clients,
            &bench.run_id,
        )
        .await?;
        heading(
            10,
            "outbox: mails queued while SMTP is down, then delivered to aiosmtpd",
            &format!("{} mails", o.mails),
        );
        print_outbox(&o);
        targets.outbox = Some((o.steady_rate(), o.exactly_once()));
    }
    if wants(19) {
        let s = social::run(&config, &bench.window, bench.clients).await?;
        heading(
            19,
            "social sign-in callback: code exchange with an OIDC upstream, ES256 ID token, session",
            &format!("{} clients, a returning person each", bench.clients),
        );
        print_social(&s);
        targets.social = Some(s.callback.rate());
    }
    if args.postgres.is_none() {
        // The write-ahead log should stay near SQLite's checkpoint size (1,000 pages,
        // about 4 MiB) however long the run: a log that grows means checkpoints
        // never let it start over.
        let size = |name: &str| {
            std::fs::metadata(bench.server.data_dir.join(name)).map_or(0, |m| m.len() / 1024)
        };
        println!(
            "\ndatabase files: gatehouse.db {:.1} MiB, gatehouse.db-wal {:.1} MiB",
            mib(size("gatehouse.db")),
            mib(size("gatehouse.db-wal"))
        );
    }
    if args.grow > 0 {
        print_purged(bench.server.addr).await;
    }
    targets.print(args.postgres.is_none());
    bench.server.stop();
    Ok(())
}

/// What the server's purge has deleted so far (`gatehouse_purged_rows_total`): on a
/// grown store, its first purge removes the expired sessions while the scenarios run.
async fn print_purged(addr: std::net::SocketAddr) {
    let metrics = match client::Conn::connect(addr).await {
        Ok(mut conn) => conn.call(&client::get("/metrics", None)).await.ok(),
        Err(_) => None,
    };
    let Some(metrics) = metrics.filter(|r| r.status == 200) else {
        println!("\npurged so far: /metrics did not answer");
        return;
    };
    let text = String::from_utf8_lossy(&metrics.body);
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("gatehouse_purged_rows_total"))
        .collect();
    println!(
        "\npurged so far: {}",
        if lines.is_empty() {
            "nothing".to_owned()
        } else {
            lines.join(", ")
        }
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The CPU time of one argon2id hash at the server's parameters, alone on the
/// machine: the fastest of three runs of five hashes, after one to warm up. The unit
/// of the p99 target. (Runs rather than single hashes: this kernel accounts CPU time
/// in 4 ms ticks, an eighth of a hash.)
fn time_one_hash() -> Duration {
    (0..3).map(|_| hashes_cpu(5) / 5).min().expect("three runs")
}

/// Hashes each of `cores` threads runs at once (after one to warm up).
const TOGETHER_HASHES: u32 = 40;

/// The CPU time of one hash while `cores` threads hash at once, as the server's hash
/// slots do under load: all the threads' CPU time over all their hashes.
fn time_hashes_together(cores: usize) -> Duration {
    let total: Duration = std::thread::scope(|s| {
        let threads: Vec<_> = (0..cores)
            .map(|_| s.spawn(|| hashes_cpu(TOGETHER_HASHES)))
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().expect("a hashing thread"))
            .sum()
    });
    total / (TOGETHER_HASHES * cores as u32)
}

/// The CPU time of `count` argon2id hashes in a row at the server's parameters, after
/// one to warm up, in a working memory allocated once, as the server hashes. CPU time
/// rather than wall time, because on a machine shared with other work the wall clock
/// also counts time spent waiting for a core.
fn hashes_cpu(count: u32) -> Duration {
    let params = argon2::Params::new(
        server::ARGON2_MEMORY_KIB,
        server::ARGON2_ITERATIONS,
        server::ARGON2_PARALLELISM,
        None,
    )
    .expect("the server's parameters are valid");
    let argon2 = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = [0u8; 32];
    let mut memory = vec![argon2::Block::new(); argon2.params().block_count()];
    let mut hash = || {
        argon2
            .hash_password_into_with_memory(
                b"bench-password-0123",
                b"sixteen-byte-salt",
                &mut out,
                &mut memory[..],
            )
            .expect("hashing works")
    };
    hash();
    let (wall, cpu) = (Instant::now(), thread_cpu());
    for _ in 0..count {
        hash();
    }
    match (cpu, thread_cpu()) {
        (Some(before), Some(after)) => after.saturating_sub(before),
        _ => wall.elapsed(),
    }
}

/// This thread's CPU time so far, from `/proc/thread-self/schedstat` (nanoseconds).
fn thread_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos = stat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(nanos))
}

fn print_machine(cores: usize) {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    println!(
        "machine: {cpu}, {cores} cores; load average before the run {}",
        load.join(" ")
    );
}

fn heading(n: u8, what: &str, load: &str) {
    println!("\n== {n}. {what} ({load})");
}

/// The server's CPU time per successful operation, µs.
fn per_request_us(m: &Measured) -> f64 {
    1e6 * m.server_cpu / m.tally.successes().max(1) as f64
}

fn print_measured(m: &Measured) {
    println!("  throughput    {:.1} {}", m.throughput(), m.unit);
    println!(
        "  latency       p50 {:.2} ms   p99 {:.2} ms   max {:.2} ms",
        m.tally.quantile_ms(0.5),
        m.tally.quantile_ms(0.99),
        m.tally.max_ms()
    );
    println!("  errors        {}", m.tally.describe_errors());
    println!(
        "  server        cpu {:.2} s ({:.2} cores, {:.0} µs per {})   peak memory so far (VmHWM) {:.1} MiB",
        m.server_cpu,
        m.server_cpu / m.seconds,
        1e6 * m.server_cpu / m.tally.successes().max(1) as f64,
        if m.unit == "flows/s" {
            "flow"
        } else {
            "request"
        },
        mib(m.server_peak_kib)
    );
    println!(
        "  load driver   cpu {:.2} s ({:.2} cores)",
        m.driver_cpu,
        m.driver_cpu / m.seconds
    );
}

/// How much of the CPU the server got went into hashing: on a machine shared with
/// other work the server may get fewer cores than the limit assumes, and this tells
/// that apart from time lost elsewhere in the server.
fn print_hash_share(m: &Measured, hash: Duration) {
    let hashing = m.throughput() * hash.as_secs_f64();
    println!(
        "  hash share    {:.2} cores of hashing in the {:.2} the server used ({:.0}%)",
        hashing,
        m.server_cpu / m.seconds,
        100.0 * hashing * m.seconds / m.server_cpu.max(f64::EPSILON)
    );
}

fn print_outbox(o: &outbox::OutboxRun) {
    println!(
        "  SETTINGS for this scenario only: argon2 m=8 KiB t=1 (each queued mail costs a \
         registration), mail.retry_base_secs = mail.retry_max_secs = 1; a server of its own"
    );
    println!(
        "  queueing      {} registrations by {} clients with SMTP down: {:.1} req/s, p50 {:.2} ms \
         p99 {:.2} ms, errors {}",
        o.queueing.successes(),
        o.queue_clients,
        o.queueing.successes() as f64 / o.queue_secs,
        o.queueing.quantile_ms(0.5),
        o.queueing.quantile_ms(0.99),
        o.queueing.describe_errors()
    );
    println!(
        "  drain         first mail {:.2} s after SMTP started, all {} after {:.2} s: \
         {:.1} mails/s from the first to the last ({:.1}/s counting the wait for the retry)",
        o.first_after.as_secs_f64(),
        o.mails,
        o.drained_after.as_secs_f64(),
        o.steady_rate(),
        o.rate()
    );
    println!(
        "  delivered     {} mails, {} recipients exactly once, {} unexpected; outbox depth \
         afterwards {} (mean size {} bytes)",
        o.received,
        o.distinct,
        o.unexpected,
        o.depth_after
            .map_or_else(|| "unknown".into(), |d| format!("{d}")),
        o.mean_size
    );
    let drain = o.drained_after.as_secs_f64();
    println!(
        "  cpu           server {:.2} s ({:.2} cores, {:.0} µs per mail), SMTP server {:.2} s \
         ({:.2} cores)",
        o.server_cpu,
        o.server_cpu / drain,
        1e6 * o.server_cpu / o.mails as f64,
        o.sink_cpu,
        o.sink_cpu / drain
    );
    println!(
        "  SMTP alone    {:.1} mails/s from lettre in the driver, {} at a time ({:.2} cores of the \
         SMTP server)",
        o.sink_alone,
        o.sink_alone_concurrency,
        o.sink_alone_cpu * o.sink_alone / o.mails as f64
    );
}

fn print_social(s: &social::SocialRun) {
    println!(
        "  SETTINGS for this scenario only: a server of its own with [[social.providers]] \
         `bench` (kind oidc) at the upstream, a thread of this process"
    );
    let line = |label: &str, p: &social::Part, each: &str| {
        println!(
            "  {label:<14} {:.1} {each}s/s   p50 {:.2} ms   p99 {:.2} ms   errors {}",
            p.rate(),
            p.tally.quantile_ms(0.5),
            p.tally.quantile_ms(0.99),
            p.tally.describe_errors()
        );
        println!(
            "  {:<14} server cpu {:.2} cores, {:.0} µs per {each}; upstream {:.2} cores, {:.0} µs; driver {:.2} cores",
            "",
            p.server_cpu / p.seconds,
            p.per_op_us(p.server_cpu),
            p.upstream_cpu / p.seconds,
            p.per_op_us(p.upstream_cpu),
            p.driver_cpu / p.seconds
        );
    };
    line("callback", &s.callback, "callback");
    println!(
        "  {:<14} ({} begins and authorizations made before the window, not timed)",
        "", s.prepared
    );
    line("whole flow", &s.whole, "flow");
    line("upstream alone", &s.upstream_alone, "token");
}

fn print_burst(b: &Burst) {
    let each: Vec<String> = b
        .outcomes
        .iter()
        .map(|(k, n)| format!("{k}: {n}"))
        .collect();
    println!("  outcomes      {}", each.join(", "));
    println!(
        "  latency       p50 {:.0} ms   p99 {:.0} ms   max {:.0} ms; all answered after {:.1} s",
        b.answered.quantile_ms(0.5),
        b.answered.quantile_ms(0.99),
        b.answered.max_ms(),
        b.wall.as_secs_f64()
    );
    println!(
        "  server        cpu {:.2} s   resident peak during the burst {:.1} MiB (sampled every 10 ms); VmHWM {:.1} MiB",
        b.server_cpu,
        mib(b.sampled_peak_kib),
        mib(b.server_peak_kib)
    );
}

/// Issue 6's targets, for the scenarios that ran.
#[derive(Default)]
struct Targets {
    /// (fraction of the hash-bound limit, p99 in hashes, errors)
    /// Share of the hash bound, p99 and the floor of the mean latency (both in hashes
    /// alone), errors.
    login: Option<(f64, f64, f64, u64)>,
    burst: Option<Burst>,
    me: Option<f64>,
    ownid: Option<f64>,
    wallet: Option<f64>,
    passkey: Option<f64>,
    siwe: Option<f64>,
    /// `/auth/me`'s rate over `/health`'s in the same run: the driver polling, and
    /// sleeping.
    me_share: Option<(f64, f64)>,
    refresh: Option<f64>,
    /// `GET /ui/sign-in`'s rate.
    sign_in_page: Option<f64>,
    /// The form sign-in's share of the hash-bound limit.
    form_login: Option<f64>,
    client_credentials: Option<f64>,
    introspection: Option<f64>,
    /// Scenario 16's rate for each ID token algorithm.
    code_exchange: Vec<(&'static str, f64)>,
    /// Social sign-in callbacks per second.
    social: Option<f64>,
    /// The outbox's delivery rate, and whether every mail arrived exactly once.
    outbox: Option<(f64, bool)>,
}

impl Targets {
    fn print(&self, sqlite: bool) {
        println!("\n== targets");
        let verdict = |met: bool| if met { "met   " } else { "MISSED" };
        if let Some(rate) = self.sign_in_page {
            println!(
                "  {} GET /ui/sign-in >= 20,000 pages/s: {rate:.0}",
                verdict(rate >= 20_000.0)
            );
        }
        if let Some(fraction) = self.form_login {
            println!(
                "  {} form sign-in >= 90% of the hash-bound limit: {:.1}%",
                verdict(fraction >= 0.9),
                100.0 * fraction
            );
        }
        if let Some((fraction, p99, floor, errors)) = self.login {
            println!(
                "  {} login >= 90% of the hash-bound limit: {:.1}%",
                verdict(fraction >= 0.9),
                100.0 * fraction
            );
            println!(
                "  {} login p99 <= 20 x one hash: {:.1} x (the mean latency cannot be under \
                 {:.1} x here: clients / hashes at a time, see BENCHMARKS.md)",
                verdict(p99 <= 20.0),
                p99,
                floor
            );
            println!("  {} login without errors: {errors}", verdict(errors == 0));
        }
        if let Some(b) = &self.burst {
            let unanswered: u64 = b
                .outcomes
                .iter()
                .filter(|(k, _)| !matches!(k.as_str(), "200" | "401" | "429"))
                .map(|(_, n)| n)
                .sum();
            println!(
                "  {} burst: every login answered 200/401/429: {unanswered} not",
                verdict(unanswered == 0)
            );
            let peak = b.sampled_peak_kib.max(b.server_peak_kib);
            println!(
                "  {} burst: server peak memory <= 256 MiB: {:.1} MiB",
                verdict(peak <= 256 * 1024),
                mib(peak)
            );
        }
        if let Some(rate) = self.me {
            println!(
                "  {} /auth/me >= 30,000 req/s: {rate:.0} (the driver sleeping)",
                verdict(rate >= 30_000.0)
            );
        }
        if let Some((polling, sleeping)) = self.me_share {
            println!(
                "  {} /auth/me >= 0.6 of /health: {sleeping:.2} with the driver sleeping \
                 ({polling:.2} with it polling, which takes the driver's wakeups off the \
                 server: BENCHMARKS.md)",
                verdict(sleeping >= 0.6)
            );
        }
        if let Some(rate) = self.refresh {
            let (target, db) = if sqlite {
                (5_000.0, "SQLite")
            } else {
                (1_500.0, "PostgreSQL")
            };
            println!(
                "  {} refresh >= {target:.0}/s on {db}: {rate:.0}",
                verdict(rate >= target)
            );
        }
        if let Some(rate) = self.client_credentials {
            let scope = if sqlite {
                ""
            } else {
                " (the target is for SQLite)"
            };
            println!(
                "  {} client_credentials >= 10,000 req/s: {rate:.0}{scope}",
                verdict(rate >= 10_000.0)
            );
        }
        if let Some(rate) = self.introspection {
            let target = if sqlite { 30_000.0 } else { 10_000.0 };
            println!(
                "  {} introspection >= {target:.0} req/s: {rate:.0}",
                verdict(rate >= target)
            );
        }
        for (alg, rate) in &self.code_exchange {
            println!(
                "  {} code exchange ({alg} ID token) >= 5,000 req/s: {rate:.0}",
                verdict(*rate >= 5_000.0)
            );
        }
        if let Some(rate) = self.social {
            let scope = if sqlite {
                ""
            } else {
                " (the target is for SQLite)"
            };
            println!(
                "  {} social sign-in callback >= 1,500/s: {rate:.0}{scope}",
                verdict(rate >= 1_500.0)
            );
        }
        if let Some((rate, once)) = self.outbox {
            println!(
                "  {} outbox >= 200 mails/s to a local SMTP server: {rate:.0}",
                verdict(rate >= 200.0)
            );
            println!(
                "  {} outbox: every mail delivered exactly once",
                verdict(once)
            );
        }
        if let Some(rate) = self.ownid {
            println!(
                "  {} OwnID >= 5,000 req/s: {rate:.0}",
                verdict(rate >= 5_000.0)
            );
        }
        if let Some(rate) = self.wallet {
            let scope = if sqlite {
                ""
            } else {
                " (the target is for SQLite)"
            };
            println!(
                "  {} wallet >= 1,000 flows/s: {rate:.0}{scope}",
                verdict(rate >= 1_000.0)
            );
        }
        if let Some(rate) = self.passkey {
            let scope = if sqlite {
                ""
            } else {
                " (the target is for SQLite)"
            };
            println!(
                "  {} passkey sign-in >= 1,500 ceremonies/s: {rate:.0}{scope}",
                verdict(rate >= 1_500.0)
            );
        }
        if let Some(rate) = self.siwe {
            let scope = if sqlite {
                ""
            } else {
                " (the target is for SQLite)"
            };
            println!(
                "  {} SIWE sign-in >= 2,700 flows/s: {rate:.0}{scope}",
                verdict(rate >= 2_700.0)
            );
        }
    }
}
