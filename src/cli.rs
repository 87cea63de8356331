//! The command line: `gatehouse serve`, `migrate`, `config`, `backup` and `keys`, and
//! the operator's commands (`users`, `sessions`: [`users`]).

mod clients;
mod keys;
mod users;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::config::{LogFormat, Overrides, Settings};

const CONFIG_HELP: &str = "\
Configuration is layered: built-in defaults, then --config FILE (TOML), then
GATEHOUSE_* environment variables (nested keys joined with __, e.g.
GATEHOUSE_ARGON2__MEMORY_KIB, GATEHOUSE_OWNID__SHARED_SECRETS), then flags.
Every key, its default and what it does: `gatehouse config --defaults` (also at the
end of `gatehouse serve --help`).

Exit status: 0 done (or stopped by SIGTERM/SIGINT); 2 the command line or the
configuration is invalid (the message names the key); 1 anything else failed (the
database, the listening address, the JWT secret file, a backup), said once on stderr.";

#[derive(Parser)]
#[command(
    name = "gatehouse",
    version,
    about = "An authentication server: email/password, passkeys, Sign-In with Ethereum, Login \
             with SelfKey and OwnID on one user store.",
    after_help = CONFIG_HELP
)]
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
    /// Print the configuration as a TOML file, every key with its comment: the values
    /// in force (secrets as [redacted]), or with --defaults the built-in defaults.
    Config(ConfigArgs),
    /// Write a consistent copy of the embedded SQLite database to FILE while the
    /// server runs (VACUUM INTO; never overwrites FILE).
    Backup(BackupArgs),
    /// The signing keys of asymmetric account tokens (jwt.algorithm EdDSA or ES256).
    Keys(KeysArgs),
    /// Accounts, straight in the database: list, show, disable, enable, delete.
    /// Exit status 0 done, 1 no such account, 2 bad usage.
    Users(users::UsersArgs),
    /// Sessions, straight in the database: revoke every session of an account.
    /// Exit status 0 done, 1 no such account, 2 bad usage.
    Sessions(users::SessionsArgs),
    /// OpenID Connect clients, straight in the database: add, list, show, update,
    /// remove, rotate-secret. Exit status 0 done, 1 no such client, 2 bad usage.
    Clients(clients::ClientsArgs),
}

#[derive(Args)]
struct KeysArgs {
    #[command(subcommand)]
    command: keys::KeysCommand,
}

#[derive(Args)]
struct ConfigArgs {
    /// The built-in defaults, ignoring --config and the environment.
    #[arg(long)]
    defaults: bool,
}

#[derive(Args)]
struct BackupArgs {
    /// Where to write the copy; must not exist.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    #[command(flatten)]
    database: DatabaseArgs,
}

#[derive(Args)]
pub(crate) struct DatabaseArgs {
    /// Database URL: sqlite://PATH or postgres://USER:PASS@HOST/DB.
    // Global: `users list --data-dir D` and `users --data-dir D list` alike.
    #[arg(long, value_name = "URL", global = true)]
    database_url: Option<String>,
    /// Directory for the embedded database and the generated JWT secret.
    #[arg(long, value_name = "DIR", global = true)]
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
    let reference = crate::config::reference::render(&Settings::default());
    let command = Cli::command().mut_subcommand("serve", |serve| {
        serve.after_long_help(format!("{CONFIG_HELP}\n\n{reference}"))
    });
    let cli = match Cli::from_arg_matches(&command.get_matches()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let overrides = match &cli.command {
        Command::Serve(a) => Overrides::from(a),
        Command::Migrate(a) => Overrides::from(a),
        Command::Backup(a) => Overrides::from(&a.database),
        Command::Keys(a) => Overrides::from(a.command.database()),
        Command::Users(a) => Overrides::from(&a.database),
        Command::Sessions(a) => Overrides::from(&a.database),
        Command::Clients(a) => Overrides::from(&a.database),
        Command::Config(a) if a.defaults => {
            print!("{reference}");
            return ExitCode::SUCCESS;
        }
        Command::Config(_) => Overrides::default(),
    };
    let loaded = Settings::load(cli.config.as_deref(), &overrides)
        .and_then(|s| crate::app::check_parts(&s).map(|()| s));
    let settings = match loaded {
        Ok(s) => s,
        Err(e) => {
            eprintln!("gatehouse: {e:#}");
            return ExitCode::from(2);
        }
    };
    if let Command::Config(_) = cli.command {
        print!("{}", crate::config::reference::render(&settings));
        return ExitCode::SUCCESS;
    }
    // Only the server and `migrate` say that the schema is up to date (or at debug).
    let quiet_schema = !matches!(cli.command, Command::Serve(_) | Command::Migrate(_));
    init_logging(&settings.log, settings.log_format, quiet_schema);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(async_workers())
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = runtime.block_on(async {
        let done = |r: anyhow::Result<()>| r.map(|()| ExitCode::SUCCESS);
        match cli.command {
            Command::Serve(_) => done(serve(settings).await),
            Command::Migrate(_) => done(migrate(settings).await),
            Command::Backup(a) => done(backup(settings, a.file).await),
            Command::Keys(a) => done(keys::run(settings, a.command).await),
            Command::Users(a) => {
                let store = open_store(&settings).await?;
                let code = users::users(&store, a, settings.mail.enabled).await;
                store.close().await;
                code
            }
            Command::Sessions(a) => {
                let store = open_store(&settings).await?;
                let code = users::sessions(&store, a).await;
                store.close().await;
                code
            }
            Command::Clients(a) => {
                let store = open_store(&settings).await?;
                let code = clients::run(&store, a).await;
                store.close().await;
                code
            }
            Command::Config(_) => unreachable!("answered above"),
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            // Once, in the log (on stderr): not also by hand beside it.
            tracing::error!("{e:#}");
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

/// Logs to stderr, as text or as one JSON object a line. In JSON each line carries
/// the fields of the request it belongs to (`span`: id, method, path) at the top.
fn init_logging(filter: &str, format: LogFormat, quiet_schema: bool) {
    let mut filter =
        tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| "info".into());
    if quiet_schema
        && filter
            .max_level_hint()
            .is_none_or(|max| max < tracing::level_filters::LevelFilter::DEBUG)
    {
        let directive = format!("{}=warn", crate::store::SCHEMA_LOG);
        filter = filter.add_directive(directive.parse().expect("a valid directive"));
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour(
            std::io::stderr().is_terminal(),
            std::env::var_os("NO_COLOR"),
        ));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
}

/// Colour codes only on a terminal, and never when `NO_COLOR` is set to anything but
/// the empty string (no-color.org): in a file or a log collector they are noise.
fn colour(terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let server = crate::http::Server::build(settings).await?;
    tracing::info!(address = %server.local_addr(), "listening");
    server.run(shutdown_signal()).await
}

/// Opening the store migrates it and logs what it did to the schema.
async fn migrate(settings: Settings) -> anyhow::Result<()> {
    open_store(&settings).await?.close().await;
    Ok(())
}

/// The database of the configuration, with one connection: for the commands that are
/// not the server.
async fn open_store(settings: &Settings) -> anyhow::Result<crate::store::DynStore> {
    crate::store::connect(&settings.database_url(), 1, Default::default())
        .await
        .context("database_url: could not open the database")
}

async fn backup(settings: Settings, file: PathBuf) -> anyhow::Result<()> {
    let url = settings.database_url();
    let to = file.clone();
    let summary =
        tokio::task::spawn_blocking(move || crate::store::backup_sqlite(&url, &to)).await??;
    tracing::info!(
        file = %file.display(),
        accounts = summary.accounts,
        schema_version = summary.schema_version,
        bytes = summary.bytes,
        "backup written and checked"
    );
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

#[cfg(test)]
mod tests {
    use super::colour;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour(true, None));
        assert!(colour(true, Some("".into())));
        assert!(!colour(true, Some("1".into())));
        assert!(!colour(false, None));
    }
}
