//! The command line: `gatehouse serve` and `gatehouse migrate`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::{Overrides, Settings};

const CONFIG_HELP: &str = "\
Configuration is layered: built-in defaults, then --config FILE (TOML), then
GATEHOUSE_* environment variables (nested keys joined with __, e.g.
GATEHOUSE_ARGON2__MEMORY_KIB, GATEHOUSE_OWNID__SHARED_SECRETS), then flags.

Keys (environment variable in brackets):
  listen                     address to listen on [GATEHOUSE_LISTEN] (127.0.0.1:8080)
  data_dir                   embedded database and generated secret [GATEHOUSE_DATA_DIR] (gatehouse-data)
  database_url               sqlite://PATH or postgres://USER:PASS@HOST/DB [GATEHOUSE_DATABASE_URL]
  database_max_connections   PostgreSQL pool size; SQLite read connections [GATEHOUSE_DATABASE_MAX_CONNECTIONS] (16)
  jwt_secret                 HS512 secret, >= 32 bytes [GATEHOUSE_JWT_SECRET]
  jwt_secret_file            file holding the secret [GATEHOUSE_JWT_SECRET_FILE]
                             (neither: DATA_DIR/jwt-secret, generated on first start)
  token_lifetime_secs        account token lifetime [GATEHOUSE_TOKEN_LIFETIME_SECS] (3600)
  issuer                     the tokens' iss claim [GATEHOUSE_ISSUER] (gatehouse)
  log                        log filter [GATEHOUSE_LOG] (info)
  argon2.memory_kib / .iterations / .parallelism   (19456 / 2 / 1)
  argon2.max_in_flight       hashes at once (number of cores)
  http.body_limit_bytes (1048576)  http.request_timeout_secs (30)  http.shutdown_grace_secs (10)
  http.header_read_timeout_secs (10)  http.max_header_bytes (32768)
  http.trusted_proxies       addresses/CIDRs whose X-Forwarded-* are trusted (none)
  http.public_url            public base URL for absolute links and cookies
  http.cors_origins          browser origins allowed to call every route (CORS)
  selfkey.*                  Login with SelfKey: enabled, mount, *_ttl_secs, redirect_to,
                             error_redirect_to, multipart_limit_bytes, trust_wallet_email,
                             cookie_name, website.{name,url,terms_url,policy_url},
                             attributes (list of {key,label,schema,required})
  ownid.*                    OwnID: base, shared_secrets (comma-separated base64),
                             timestamp_tolerance_secs, legacy_responses, max_data_bytes
  rate_limit.*               enabled, login_failures, login_window_secs, per_address,
                             per_address_window_secs

See README.md for a full example file.";

#[derive(Parser)]
#[command(name = "gatehouse", version, about = "An authentication server: email/password, Login with SelfKey and OwnID on one user store.", after_help = CONFIG_HELP)]
pub struct Cli {
    /// A TOML configuration file.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (runs pending migrations first).
    #[command(after_help = CONFIG_HELP)]
    Serve(ServeArgs),
    /// Run the database migrations and exit.
    Migrate(DatabaseArgs),
}

#[derive(Args)]
struct DatabaseArgs {
    /// Database URL: sqlite://PATH or postgres://USER:PASS@HOST/DB.
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
    /// Directory for the embedded database and the generated JWT secret.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on, e.g. 127.0.0.1:8080.
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    #[command(flatten)]
    database: DatabaseArgs,
    /// A file holding the HS512 signing secret.
    #[arg(long, value_name = "FILE")]
    jwt_secret_file: Option<PathBuf>,
    /// Account token lifetime, seconds.
    #[arg(long, value_name = "SECS")]
    token_lifetime_secs: Option<i64>,
    /// The tokens' `iss` claim.
    #[arg(long)]
    issuer: Option<String>,
    /// argon2id memory cost, KiB.
    #[arg(long, value_name = "KIB")]
    argon2_memory_kib: Option<u32>,
    /// argon2id iterations.
    #[arg(long, value_name = "N")]
    argon2_iterations: Option<u32>,
    /// argon2id lanes.
    #[arg(long, value_name = "N")]
    argon2_parallelism: Option<u32>,
    /// Password hashes allowed in flight at once.
    #[arg(long, value_name = "N")]
    argon2_max_in_flight: Option<usize>,
    /// Public base URL, e.g. https://example.com.
    #[arg(long, value_name = "URL")]
    public_url: Option<String>,
    /// Log filter, e.g. info or gatehouse=debug.
    #[arg(long, value_name = "FILTER")]
    log: Option<String>,
}

impl From<&DatabaseArgs> for Overrides {
    fn from(a: &DatabaseArgs) -> Self {
        Overrides {
            database_url: a.database_url.clone(),
            data_dir: a.data_dir.clone(),
            ..Default::default()
        }
    }
}

impl From<&ServeArgs> for Overrides {
    fn from(a: &ServeArgs) -> Self {
        let mut argon2 = serde_json::Map::new();
        let mut put = |key: &str, v: Option<serde_json::Value>| {
            if let Some(v) = v {
                argon2.insert(key.into(), v);
            }
        };
        put("memory_kib", a.argon2_memory_kib.map(Into::into));
        put("iterations", a.argon2_iterations.map(Into::into));
        put("parallelism", a.argon2_parallelism.map(Into::into));
        put("max_in_flight", a.argon2_max_in_flight.map(Into::into));
        let mut http = serde_json::Map::new();
        if let Some(url) = &a.public_url {
            http.insert("public_url".into(), url.clone().into());
        }
        Overrides {
            listen: a.listen,
            jwt_secret_file: a.jwt_secret_file.clone(),
            token_lifetime_secs: a.token_lifetime_secs,
            issuer: a.issuer.clone(),
            log: a.log.clone(),
            argon2,
            http,
            ..Overrides::from(&a.database)
        }
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let overrides = match &cli.command {
        Command::Serve(a) => Overrides::from(a),
        Command::Migrate(a) => Overrides::from(a),
    };
    let settings = match Settings::load(cli.config.as_deref(), &overrides) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("gatehouse: {e:#}");
            return ExitCode::from(2);
        }
    };
    init_logging(&settings.log);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(async_workers())
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(_) => serve(settings).await,
            Command::Migrate(_) => migrate(settings).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("gatehouse: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// One async worker per core but one (at least one); `TOKIO_WORKER_THREADS` overrides.
/// The spare core runs what the async workers hand work to and wait for: SQLite's
/// connection threads and the password hashes. With a worker on every core, each
/// handoff woke a thread across cores, and /auth/me cost a third more CPU.
fn async_workers() -> usize {
    if let Some(n) = std::env::var("TOKIO_WORKER_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
    {
        return n;
    }
    std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1))
}

fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let server = crate::http::Server::build(settings).await?;
    tracing::info!(address = %server.local_addr(), "listening");
    server.run(shutdown_signal()).await
}

async fn migrate(settings: Settings) -> anyhow::Result<()> {
    let url = settings.database_url();
    let store = crate::store::connect(&url, 1).await?;
    store.close().await;
    tracing::info!("migrations are up to date");
    Ok(())
}

/// SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
