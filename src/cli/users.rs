//! `gatehouse users …` and `gatehouse sessions revoke`: an operator's commands, run
//! straight against the database the configuration names (the same `--config` and
//! `GATEHOUSE_*` layering as `serve`), on any node, while the servers run.
//!
//! Exit status: 0 done, 1 no such account (or the database failed), 2 bad usage.
//! `--json` prints one JSON document on stdout for scripts, its times in RFC 3339 (UTC)
//! as the HTTP API gives them; the text form is for people.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::domain::{AccountId, Email, unix_now};
use crate::http::reply::rfc3339;
use crate::store::{AccountOverview, DynStore, contains_pattern};

#[derive(Args)]
pub(super) struct UsersArgs {
    #[command(subcommand)]
    command: UsersCommand,
    #[command(flatten)]
    pub(super) database: super::DatabaseArgs,
}

#[derive(Subcommand)]
enum UsersCommand {
    /// List accounts, oldest first (at most --limit), printed as they are read; the
    /// next page starts --after the last one shown.
    List {
        /// Only accounts whose email, id or a wallet address contains TEXT.
        #[arg(long, value_name = "TEXT")]
        search: Option<String>,
        #[arg(long, default_value_t = 1000)]
        limit: i64,
        /// Start after this account (the last id of the previous page).
        #[arg(long, value_name = "ID")]
        after: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// One account: its sign-in methods, wallets, passkeys and live sessions.
    Show(Target),
    /// Refuse every sign-in, refresh and token of the account, on every node, and end
    /// its sessions. Its data is kept; `enable` lets it sign in again.
    Disable(Target),
    /// Let a disabled account sign in again (the sessions it had stay ended: they
    /// are deleted now).
    Enable(Target),
    /// Delete the account with its wallets, passkeys, sessions and pending mail.
    Delete(Target),
    /// The account's second factor.
    Mfa {
        #[command(subcommand)]
        command: MfaCommand,
    },
}

#[derive(Subcommand)]
enum MfaCommand {
    /// Remove the account's TOTP authenticator and recovery codes (its owner lost
    /// them), end its sessions, and mail its owner (with mail on). Its next sign-in
    /// owes no second factor until it enrolls one again.
    Reset(Target),
}

#[derive(Args)]
pub(super) struct SessionsArgs {
    #[command(subcommand)]
    command: SessionsCommand,
    #[command(flatten)]
    pub(super) database: super::DatabaseArgs,
}

#[derive(Subcommand)]
enum SessionsCommand {
    /// End every session of the account: its refresh tokens and account tokens are
    /// refused from now on, on every node. It can sign in again.
    Revoke(Target),
}

#[derive(Args)]
struct Target {
    /// The account's email or id.
    #[arg(value_name = "EMAIL|ID")]
    account: String,
    #[arg(long)]
    json: bool,
}

/// What a command did, for its exit status.
enum Done {
    Ok,
    NotFound,
}

/// `mail`: `mail.enabled`, so that a notice is queued only where a node sends it.
pub(super) async fn users(
    store: &DynStore,
    args: UsersArgs,
    mail: bool,
) -> anyhow::Result<ExitCode> {
    let done = match args.command {
        UsersCommand::List {
            search,
            limit,
            after,
            json,
        } => {
            let page = Page {
                search: search.as_deref(),
                after: after.map(AccountId),
                limit,
            };
            list(store, page, json).await?
        }
        UsersCommand::Show(t) => show(store, &t).await?,
        UsersCommand::Disable(t) => disable(store, &t).await?,
        UsersCommand::Enable(t) => enable(store, &t).await?,
        UsersCommand::Delete(t) => delete(store, &t).await?,
        UsersCommand::Mfa {
            command: MfaCommand::Reset(t),
        } => reset_mfa(store, &t, mail).await?,
    };
    Ok(exit(done))
}

pub(super) async fn sessions(store: &DynStore, args: SessionsArgs) -> anyhow::Result<ExitCode> {
    let done = match args.command {
        SessionsCommand::Revoke(t) => revoke(store, &t).await?,
    };
    Ok(exit(done))
}

fn exit(done: Done) -> ExitCode {
    match done {
        Done::Ok => ExitCode::SUCCESS,
        Done::NotFound => ExitCode::from(1),
    }
}

/// The account an argument names: an email (it has an `@`) or an id.
async fn find(store: &DynStore, target: &Target) -> anyhow::Result<Option<AccountOverview>> {
    let id = if target.account.contains('@') {
        let email = Email::parse(&target.account, "email").map_err(|e| anyhow::anyhow!(e.0))?;
        match store.account_by_email(email.key()).await? {
            Some(account) => account.id,
            None => return Ok(None),
        }
    } else {
        AccountId(target.account.trim().to_owned())
    };
    Ok(store.admin().account_overview(&id, unix_now()).await?)
}

/// Says that nothing was found, on stderr (and as JSON on stdout with `--json`).
fn not_found(target: &Target) -> Done {
    eprintln!("gatehouse: no account {}", target.account);
    if target.json {
        println!(
            "{}",
            json!({"error": "not_found", "account": target.account})
        );
    }
    Done::NotFound
}

/// Which accounts `users list` shows.
struct Page<'a> {
    search: Option<&'a str>,
    after: Option<AccountId>,
    limit: i64,
}

/// Accounts read from the store at a time: what `users list` holds in memory, however
/// long the list.
const READ_AT_ONCE: i64 = 500;

/// Prints the page as it reads it, [`READ_AT_ONCE`] accounts at a time (a JSON array
/// written element by element with `--json`); for people, says on stderr where the
/// next page starts when this one is full.
async fn list(store: &DynStore, page: Page<'_>, as_json: bool) -> anyhow::Result<Done> {
    use std::io::Write as _;
    let pattern = contains_pattern(&page.search.unwrap_or("").trim().to_lowercase());
    let now = unix_now();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if as_json {
        write!(out, "[")?;
    } else {
        writeln!(
            out,
            "{:<36}  {:<8}  {:<20}  {:<20}  email",
            "id", "status", "created", "last sign-in"
        )?;
    }
    let mut after = page.after;
    let mut left = page.limit.max(0);
    let mut shown = 0u64;
    while left > 0 {
        let want = left.min(READ_AT_ONCE);
        let accounts = store
            .admin()
            .list_accounts(&pattern, now, after.as_ref(), want)
            .await?;
        for a in &accounts {
            if as_json {
                let comma = if shown > 0 { "," } else { "" };
                write!(out, "{comma}{}", overview_json(a))?;
            } else {
                writeln!(
                    out,
                    "{:<36}  {:<8}  {:<20}  {:<20}  {}",
                    a.id.0,
                    status(a),
                    time(Some(a.created_at)),
                    time(a.last_sign_in_at),
                    a.email.as_deref().unwrap_or("-")
                )?;
            }
            shown += 1;
        }
        out.flush()?;
        let read = accounts.len() as i64;
        left -= read;
        if let Some(last) = accounts.last() {
            after = Some(last.id.clone());
        }
        if read < want {
            break;
        }
    }
    if as_json {
        writeln!(out, "]")?;
    } else if left == 0
        && let Some(last) = &after
    {
        eprintln!("next page: --after {}", last.0);
    }
    out.flush()?;
    Ok(Done::Ok)
}

async fn show(store: &DynStore, target: &Target) -> anyhow::Result<Done> {
    let Some(a) = find(store, target).await? else {
        return Ok(not_found(target));
    };
    let wallets = store.wallets(&a.id).await?;
    let passkeys = store.passkeys(&a.id).await?;
    // A disabled account's sessions are refused by every check: none is live.
    let sessions = match a.disabled_at {
        Some(_) => Vec::new(),
        None => store.sessions().sessions_of(&a.id, unix_now()).await?,
    };
    let factors = store.mfa().factor_summary(&a.id).await?;
    if target.json {
        let mut v = overview_json(&a);
        v["second_factors"] = json!({"totp": factors.totp,
            "recovery_codes_left": factors.recovery_codes_left});
        v["wallets"] = wallets
            .iter()
            .map(|w| json!({"address": w.address, "linked_at": rfc3339(w.linked_at)}))
            .collect();
        v["passkeys"] = passkeys
            .iter()
            .map(|p| {
                json!({"id": p.id, "name": p.name, "created_at": rfc3339(p.created_at),
                "last_used_at": p.last_used_at.map(rfc3339)})
            })
            .collect();
        v["sessions"] = sessions
            .iter()
            .map(|s| {
                json!({"id": s.id, "method": s.method, "auth_time": rfc3339(s.auth_time),
                "last_used_at": rfc3339(s.last_used_at), "ip": s.ip, "user_agent": s.user_agent})
            })
            .collect();
        println!("{v}");
        return Ok(Done::Ok);
    }
    println!("id:              {}", a.id.0);
    println!(
        "email:           {}{}",
        a.email.as_deref().unwrap_or("-"),
        if a.email_verified { " (verified)" } else { "" }
    );
    println!("status:          {}", status(&a));
    println!("created:         {}", time(Some(a.created_at)));
    println!("last sign-in:    {}", time(a.last_sign_in_at));
    println!("sign-in methods: {}", methods(&a).join(", "));
    println!(
        "second factor:   {}",
        if factors.totp {
            format!("totp ({} recovery codes left)", factors.recovery_codes_left)
        } else {
            "-".to_owned()
        }
    );
    for w in &wallets {
        println!(
            "wallet:          {} (linked {})",
            w.address,
            time(Some(w.linked_at))
        );
    }
    for p in &passkeys {
        println!(
            "passkey:         {} {:?} (created {})",
            p.id,
            p.name,
            time(Some(p.created_at))
        );
    }
    for s in &sessions {
        println!(
            "session:         {} {} signed in {}, last used {}, from {}",
            s.id,
            s.method,
            time(Some(s.auth_time)),
            time(Some(s.last_used_at)),
            s.ip.as_deref().unwrap_or("-")
        );
    }
    Ok(Done::Ok)
}

async fn disable(store: &DynStore, target: &Target) -> anyhow::Result<Done> {
    let Some(a) = find(store, target).await? else {
        return Ok(not_found(target));
    };
    let Some(ended) = store.admin().disable_account(&a.id, unix_now()).await? else {
        return Ok(not_found(target));
    };
    tracing::info!(account = %a.id.0, sessions_ended = ended, "account disabled: its sessions are refused");
    report(target, &a.id, "disabled", json!({"sessions_ended": ended}));
    Ok(Done::Ok)
}

async fn enable(store: &DynStore, target: &Target) -> anyhow::Result<Done> {
    let Some(a) = find(store, target).await? else {
        return Ok(not_found(target));
    };
    if !store.admin().enable_account(&a.id).await? {
        return Ok(not_found(target));
    }
    tracing::info!(account = %a.id.0, "account enabled");
    report(target, &a.id, "enabled", json!({}));
    Ok(Done::Ok)
}

async fn delete(store: &DynStore, target: &Target) -> anyhow::Result<Done> {
    let Some(a) = find(store, target).await? else {
        return Ok(not_found(target));
    };
    // The same deletion as DELETE /auth/me (without mail on, its mail counters are
    // left to expire).
    let profile = store.account_profile(&a.id).await?;
    let deleted = match profile {
        Some(p) => crate::lifecycle::delete_account(store, None, &p.account).await?,
        None => false,
    };
    if !deleted {
        return Ok(not_found(target));
    }
    report(target, &a.id, "deleted", json!({}));
    Ok(Done::Ok)
}

async fn reset_mfa(store: &DynStore, target: &Target, mail: bool) -> anyhow::Result<Done> {
    let Some(a) = find(store, target).await? else {
        return Ok(not_found(target));
    };
    let removed = store.mfa().remove_factors(&a.id).await?;
    let ended = store.sessions().end_sessions(&a.id, None).await?;
    if mail {
        let notice = crate::lifecycle::second_factor_notice(&a.id, "factors_reset", 0);
        store.mail().queue_mail(&notice).await?;
    }
    tracing::info!(account = %a.id.0, removed, sessions_ended = ended, "second factor reset by an operator");
    report(
        target,
        &a.id,
        "mfa_reset",
        json!({"sessions_ended": ended, "factor_removed": removed}),
    );
    Ok(Done::Ok)
}

async fn revoke(store: &DynStore, target: &Target) -> anyhow::Result<Done> {
    let Some(a) = find(store, target).await? else {
        return Ok(not_found(target));
    };
    let ended = store.sessions().end_sessions(&a.id, None).await?;
    tracing::info!(account = %a.id.0, sessions_ended = ended, "every session of the account ended");
    report(
        target,
        &a.id,
        "sessions_revoked",
        json!({"sessions_ended": ended}),
    );
    Ok(Done::Ok)
}

/// What a change did: a line for people, or a JSON object with `--json`.
fn report(target: &Target, id: &AccountId, done: &str, mut extra: Value) {
    if target.json {
        extra["account"] = id.0.clone().into();
        extra["done"] = done.into();
        println!("{extra}");
    } else {
        let ended = extra["sessions_ended"]
            .as_u64()
            .map(|n| format!(" ({n} sessions ended)"))
            .unwrap_or_default();
        println!("{}: {done}{ended}", id.0);
    }
}

fn overview_json(a: &AccountOverview) -> Value {
    json!({
        "id": a.id.0,
        "email": a.email,
        "email_verified": a.email_verified,
        "disabled": a.disabled_at.is_some(),
        "disabled_at": a.disabled_at.map(rfc3339),
        "created_at": rfc3339(a.created_at),
        "last_sign_in_at": a.last_sign_in_at.map(rfc3339),
        "sign_in_methods": methods(a),
        "sessions": a.sessions,
    })
}

fn status(a: &AccountOverview) -> &'static str {
    if a.disabled_at.is_some() {
        "disabled"
    } else {
        "active"
    }
}

/// The kinds of sign-in the account has, as `/auth/me` names them.
fn methods(a: &AccountOverview) -> Vec<&'static str> {
    let mut m = Vec::new();
    if a.has_password {
        m.push("password");
    }
    if a.wallets > 0 {
        m.push("wallet");
    }
    if a.has_ownid {
        m.push("ownid");
    }
    if a.passkeys > 0 {
        m.push("passkey");
    }
    m
}

/// A Unix time as RFC 3339 (UTC), `-` for none.
fn time(t: Option<i64>) -> String {
    t.map_or_else(|| "-".to_owned(), rfc3339)
}
