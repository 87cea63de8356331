//! The server under test: a release `gatehouse serve` on a free loopback port and a
//! fresh database, configured only by what this harness sets, and its resource use
//! as the kernel accounts it.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::client::{self, Conn};

/// Argon2id parameters given to the server and used to time one hash: the server's
/// defaults, set explicitly so the two can never differ.
pub const ARGON2_MEMORY_KIB: u32 = 19456;
pub const ARGON2_ITERATIONS: u32 = 2;
pub const ARGON2_PARALLELISM: u32 = 1;

/// Requests one address may make per window while benchmarking: every request comes
/// from 127.0.0.1, so the production limit would turn the run into a 429 test.
pub const RAISED_PER_ADDRESS_LIMIT: u64 = 100_000_000;

/// `/proc/<pid>/stat` counts CPU time in USER_HZ ticks, 100 per second on Linux's
/// mainstream architectures (x86, arm).
const TICKS_PER_SEC: f64 = 100.0;

pub struct ServerConfig {
    pub binary: PathBuf,
    /// `postgres://…` (a fresh schema is made in it) or `None` for a fresh SQLite file.
    pub postgres: Option<String>,
    /// A schema of `postgres` to use and keep (seeded only while it holds no account).
    pub keep_schema: Option<String>,
    pub jwt_secret: String,
    pub ownid_secret: String,
    /// Further `GATEHOUSE_*` settings, applied last.
    pub extra_env: Vec<(String, String)>,
    /// Seed the fresh database to this size before the server starts on it.
    pub grow: Option<crate::seed::Grow>,
}

pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    /// The binary, and the database it serves, for the operator's commands
    /// (`gatehouse clients add`).
    pub binary: PathBuf,
    pub database_url: String,
    postgres_schema: Option<(String, String)>,
    /// From the start of the process to its first healthy answer: migrations checked,
    /// keys loaded, listening.
    pub startup: Duration,
}

/// CPU time and memory of a process, as the kernel reports them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// utime + stime, seconds.
    pub cpu_secs: f64,
    /// VmHWM: the peak resident set since the process started, KiB.
    pub peak_kib: u64,
    /// VmRSS: the resident set now, KiB.
    pub rss_kib: u64,
}

impl Server {
    pub async fn start(config: &ServerConfig) -> anyhow::Result<Server> {
        let data_dir = fresh_dir()?;
        let port = free_port()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut grow = config.grow;
        let (database, postgres_schema) = match (&config.postgres, &config.keep_schema) {
            (Some(url), Some(schema)) => {
                if !schema
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                {
                    bail!("--keep-schema {schema:?}: lower-case letters, digits and _ only");
                }
                psql(url, &format!("CREATE SCHEMA IF NOT EXISTS {schema}"))?;
                let seeded = psql_value(
                    url,
                    &format!("SELECT to_regclass('{schema}.accounts') IS NOT NULL AND EXISTS (SELECT 1 FROM {schema}.accounts)"),
                )
                .unwrap_or_default();
                if seeded == "t" {
                    println!(
                        "kept schema {schema}: holds accounts already, used as it is (not seeded)"
                    );
                    grow = None;
                }
                let sep = if url.contains('?') { '&' } else { '?' };
                (
                    format!("{url}{sep}options=-c%20search_path%3D{schema}"),
                    None,
                )
            }
            (Some(url), None) => {
                let schema = format!("bench_{}", random_hex(6));
                psql(url, &format!("CREATE SCHEMA {schema}"))?;
                let sep = if url.contains('?') { '&' } else { '?' };
                let with_schema = format!("{url}{sep}options=-c%20search_path%3D{schema}");
                (with_schema, Some((url.clone(), schema)))
            }
            (None, _) => (
                format!("sqlite://{}", data_dir.join("gatehouse.db").display()),
                None,
            ),
        };
        // Dropped (schema and directory removed) if anything below fails.
        let mut cleanup = Cleanup {
            data_dir: Some(data_dir.clone()),
            postgres_schema: postgres_schema.clone(),
        };
        if let Some(grow) = grow {
            let status = command(config, &database)
                .arg("migrate")
                .arg("--data-dir")
                .arg(&data_dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .status()?;
            if !status.success() {
                bail!("gatehouse migrate failed ({status}) before seeding");
            }
            match (&config.postgres, &config.keep_schema, &postgres_schema) {
                (Some(url), Some(schema), _) | (Some(url), None, Some((_, schema))) => {
                    crate::seed::postgres(url, schema, grow)?
                }
                _ => crate::seed::sqlite(&data_dir.join("gatehouse.db"), grow)?,
            }
        }
        let log = std::fs::File::create(data_dir.join("server.log"))?;
        let mut command = command(config, &database);
        command
            .args(["serve", "--listen", &addr.to_string()])
            .arg("--data-dir")
            .arg(&data_dir)
            // The OpenID Connect provider (scenarios 14 and 15); its issuer is this
            // server.
            .env("GATEHOUSE_OIDC__ENABLED", "true")
            .env("GATEHOUSE_HTTP__PUBLIC_URL", format!("http://{addr}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let started = Instant::now();
        let child = command
            .spawn()
            .with_context(|| format!("cannot start {}", config.binary.display()))?;
        cleanup.data_dir = None;
        cleanup.postgres_schema = None;
        let mut server = Server {
            child,
            addr,
            data_dir,
            binary: config.binary.clone(),
            database_url: database,
            postgres_schema,
            startup: Duration::ZERO,
        };
        server.wait_until_healthy().await?;
        server.startup = started.elapsed();
        Ok(server)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    async fn wait_until_healthy(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let health = client::get("/health", None);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                bail!("the server exited ({status}):\n{}", self.log_tail());
            }
            // Only once this child says it listens there: another process that took the
            // port in between must not be measured.
            if self.log_says_listening()
                && let Ok(mut conn) = Conn::connect(self.addr).await
                && let Ok(res) = conn.call(&health).await
                && res.status == 200
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!(
            "the server did not answer /health within 60 s:\n{}",
            self.log_tail()
        )
    }

    /// The server's log has its `listening` line for `addr` (text or JSON).
    fn log_says_listening(&self) -> bool {
        let log = std::fs::read_to_string(self.data_dir.join("server.log")).unwrap_or_default();
        let addr = self.addr.to_string();
        log.lines()
            .any(|l| l.contains("listening") && l.contains(&addr))
    }

    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.data_dir.join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    pub fn usage(&self) -> Usage {
        usage_of(self.pid()).unwrap_or_default()
    }

    /// SIGTERM, then SIGKILL if it has not stopped after its shutdown grace.
    pub fn stop(mut self) {
        self.terminate();
    }

    fn terminate(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.terminate();
        if let Some((url, schema)) = &self.postgres_schema
            && let Err(e) = psql(url, &format!("DROP SCHEMA {schema} CASCADE"))
        {
            eprintln!("could not drop the benchmark schema {schema}: {e:#}");
        }
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// The server binary with this run's settings only (no `GATEHOUSE_*` of the caller's
/// changes the figures).
fn command(config: &ServerConfig, database: &str) -> Command {
    let mut command = Command::new(&config.binary);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("GATEHOUSE_") {
            command.env_remove(&key);
        }
    }
    command
        .env("GATEHOUSE_DATABASE_URL", database)
        .env("GATEHOUSE_JWT_SECRET", &config.jwt_secret)
        .env("GATEHOUSE_OWNID__SHARED_SECRETS", &config.ownid_secret)
        .env(
            "GATEHOUSE_RATE_LIMIT__PER_ADDRESS",
            RAISED_PER_ADDRESS_LIMIT.to_string(),
        )
        .env(
            "GATEHOUSE_ARGON2__MEMORY_KIB",
            ARGON2_MEMORY_KIB.to_string(),
        )
        .env(
            "GATEHOUSE_ARGON2__ITERATIONS",
            ARGON2_ITERATIONS.to_string(),
        )
        .env(
            "GATEHOUSE_ARGON2__PARALLELISM",
            ARGON2_PARALLELISM.to_string(),
        )
        // The scenarios sign passkeys and SIWE messages for the site of a server on
        // 8080 (the defaults would follow the port this one listens on).
        .env("GATEHOUSE_PASSKEYS__ORIGINS", "http://localhost:8080")
        .env("GATEHOUSE_SIWE__DOMAINS", "http://localhost:8080")
        .envs(config.extra_env.iter().map(|(k, v)| (k, v)));
    command
}

/// What a start that failed half-way leaves behind, removed when dropped.
struct Cleanup {
    data_dir: Option<PathBuf>,
    postgres_schema: Option<(String, String)>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some((url, schema)) = &self.postgres_schema {
            let _ = psql(url, &format!("DROP SCHEMA {schema} CASCADE"));
        }
        if let Some(dir) = &self.data_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// CPU time and memory of process `pid`.
pub fn usage_of(pid: u32) -> anyhow::Result<Usage> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    Ok(Usage {
        cpu_secs: cpu_secs(&stat).context("unreadable /proc/<pid>/stat")?,
        peak_kib: status_kib(&status, "VmHWM:").unwrap_or(0),
        rss_kib: status_kib(&status, "VmRSS:").unwrap_or(0),
    })
}

/// utime + stime from a `/proc/<pid>/stat` line. The command name (field 2) may hold
/// spaces and parentheses, so fields are counted from its closing parenthesis.
fn cpu_secs(stat: &str) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3, utime field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / TICKS_PER_SEC)
}

fn status_kib(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

pub fn free_port() -> anyhow::Result<u16> {
    // Bound and released at once: the server binds it a moment later. Another process
    // could take it in between; the start then fails loudly rather than measure it.
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn fresh_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("gatehouse-bench-{}", random_hex(6)));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the operating system's random source failed");
    hex::encode(buf)
}

fn psql(url: &str, sql: &str) -> anyhow::Result<()> {
    let out = Command::new("psql")
        .args([url, "-qtAc", sql])
        .output()
        .context("--postgres needs the psql client on the PATH")?;
    if !out.status.success() {
        bail!("psql: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// The one value `sql` answers (`psql -tA`).
fn psql_value(url: &str, sql: &str) -> anyhow::Result<String> {
    let out = Command::new("psql")
        .args([url, "-qtAc", sql])
        .output()
        .context("--postgres needs the psql client on the PATH")?;
    if !out.status.success() {
        bail!("psql: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The configured binary, or a message that says how to build it.
pub fn check_binary(path: &Path) -> anyhow::Result<()> {
    if !path.is_file() {
        bail!(
            "no server binary at {}: build it with `cargo build --release --bin gatehouse` \
             (scripts/bench.sh does)",
            path.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_read_past_a_name_with_spaces() {
        let stat = "4242 (tokio (x) y) S 1 4242 4242 0 -1 4194560 900 0 0 0 \
                    1234 56 0 0 20 0 3 0 100 1000000 500 18446744073709551615";
        assert_eq!(cpu_secs(stat), Some(12.90));
        assert_eq!(cpu_secs("garbage"), None);
    }

    #[test]
    fn memory_is_read_from_status() {
        let status =
            "Name:\tgatehouse\nVmPeak:\t  900 kB\nVmHWM:\t   61234 kB\nVmRSS:\t   51000 kB\n";
        assert_eq!(status_kib(status, "VmHWM:"), Some(61234));
        assert_eq!(status_kib(status, "VmRSS:"), Some(51000));
        assert_eq!(status_kib(status, "VmSwap:"), None);
    }

    #[test]
    fn this_process_has_usage() {
        let usage = usage_of(std::process::id()).unwrap();
        assert!(
            usage.peak_kib >= usage.rss_kib && usage.rss_kib > 0,
            "{usage:?}"
        );
    }
}
