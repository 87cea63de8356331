//! The binary's messages and what it leaves behind: start-up errors that name what is
//! wrong and create nothing, the operator's commands, `gatehouse config`, and a log at
//! trace level that holds no secret or token. No test here listens on a fixed port.

use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::read;
use crate::mail::{PUBLIC_URL, UI_RESET_PAGE, token_of};
use crate::process::{gatehouse, sigterm, wait_exit};
use crate::smtp::SmtpServer;

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Every entry under `dir`, for "nothing was created".
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_short_jwt_secret_names_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let out = gatehouse(dir.path())
        .arg("serve")
        .env("GATEHOUSE_JWT_SECRET", "too-short")
        .output()
        .unwrap();
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("GATEHOUSE_JWT_SECRET"), "{text}");
    assert!(text.contains("at least 32 bytes long, it has 9"), "{text}");
    assert!(!text.contains("too-short"), "{text}");
    assert_eq!(entries(dir.path()), Vec::<String>::new());
}

/// A start that fails after the configuration was read creates nothing: no database,
/// no generated secret, no data directory.
#[test]
fn a_failed_start_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().to_string();
    let missing = dir.path().join("no-such-secret");
    let templates = dir.path().join("templates");
    std::fs::create_dir(&templates).unwrap();
    std::fs::write(templates.join("password_reset.txt"), "{% if %}").unwrap();
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec![
                "--listen",
                "127.0.0.1:0",
                "--jwt-secret-file",
                missing.to_str().unwrap(),
            ],
            vec![],
            "jwt_secret_file: ",
        ),
        (vec!["--listen", &taken], vec![], "listen: cannot bind"),
        (
            vec!["--listen", "127.0.0.1:0", "--public-url", PUBLIC_URL],
            vec![
                ("GATEHOUSE_MAIL__ENABLED", "true"),
                ("GATEHOUSE_MAIL__TEMPLATES_DIR", templates.to_str().unwrap()),
            ],
            "password_reset",
        ),
    ];
    for (args, env, message) in cases {
        let out = gatehouse(dir.path())
            .arg("serve")
            .args(&args)
            .envs(env)
            .output()
            .unwrap();
        let text = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {text}");
        assert!(text.contains(message), "{args:?}: {text}");
        assert_eq!(
            entries(dir.path()),
            vec!["templates".to_owned()],
            "{args:?}: nothing created: {text}"
        );
    }
}

/// A data directory the server cannot write: the message names the path.
#[test]
fn a_read_only_data_directory_is_named() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o500)).unwrap();
    // root writes anywhere it has a mode for; /sys refuses it too.
    let data = if std::fs::write(data.join("probe"), "x").is_ok() {
        Path::new("/sys").to_path_buf()
    } else {
        data
    };
    let out = gatehouse(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!("{}", data.join("gatehouse.db").display())),
        "{text}"
    );
    assert!(text.contains("Permission denied"), "{text}");
}

/// `users … --data-dir` works after the subcommand, as `keys … --data-dir` does; the
/// operator's commands do not say the schema is up to date (unless at debug).
#[test]
fn users_take_data_dir_after_the_subcommand_and_say_only_what_they_did() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = gatehouse(dir.path())
        .arg("migrate")
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("database schema: created"),
        "{}",
        stderr(&out)
    );
    for args in [
        vec!["users", "list", "--json", "--data-dir"],
        vec!["users", "--data-dir"],
    ] {
        let mut cmd = gatehouse(dir.path());
        cmd.args(&args).arg(&data);
        if args.len() == 2 {
            cmd.args(["list", "--json"]);
        }
        let out = cmd.output().unwrap();
        let text = stderr(&out);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {text}");
        let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(listed, json!([]), "{args:?}");
        assert!(!text.contains("database schema"), "{args:?}: {text}");
    }
    let out = gatehouse(dir.path())
        .args(["sessions", "revoke", "nobody@example.com", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no account nobody@example.com"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        entries(dir.path()),
        vec!["data".to_owned()],
        "the given data dir only"
    );
    // At debug it is said.
    let out = gatehouse(dir.path())
        .args(["users", "list", "--data-dir"])
        .arg(&data)
        .env("GATEHOUSE_LOG", "debug")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("database schema: at version"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn config_hides_the_database_password() {
    let dir = tempfile::tempdir().unwrap();
    let password = "pg-Secret-0f-the-database";
    let out = gatehouse(dir.path())
        .arg("config")
        .env(
            "GATEHOUSE_DATABASE_URL",
            format!("postgres://gatehouse:{password}@db.internal:5432/auth?sslmode=require"),
        )
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    let line =
        "database_url = \"postgres://gatehouse:[redacted]@db.internal:5432/auth?sslmode=require\"";
    assert!(text.lines().any(|l| l == line), "{text}");
    assert!(!text.contains(password), "{text}");
}

/// The server's address, from its `listening` log line.
fn listening_address(log: &Path, child: &mut Child) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains("listening")) {
            let address = line.rsplit("address=").next().unwrap();
            return address.split_whitespace().next().unwrap().to_owned();
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "server exited early: {text}"
        );
        assert!(Instant::now() < deadline, "server did not start: {text}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A password reset mailed through an SMTP server that takes a password, with the log
/// at trace: neither the password, nor the AUTH line, nor the reset token is logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_at_trace_holds_no_smtp_password_and_no_token() {
    let smtp = SmtpServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log.txt");
    let (user, password) = ("mailer", "smtp-Pa55word-not-for-logs");
    let mut child = gatehouse(dir.path())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--public-url",
            PUBLIC_URL,
        ])
        .env("GATEHOUSE_LOG", "trace")
        .env("GATEHOUSE_MAIL__ENABLED", "true")
        .env(
            "GATEHOUSE_MAIL__SMTP_URL",
            format!("smtp://{user}:{password}@{}?tls=none", smtp.addr),
        )
        .env("GATEHOUSE_ARGON2__MEMORY_KIB", "256")
        .env("GATEHOUSE_ARGON2__ITERATIONS", "1")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let base = format!("http://{}", listening_address(&log, &mut child));
    let client = crate::helpers::client();
    let address = crate::helpers::email();
    let res = client
        .post(format!("{base}/auth/register"))
        .json(&json!({"email": address, "password": "password123"}))
        .send()
        .await
        .unwrap();
    let (status, body) = read(res).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let account_token = body["token"].as_str().unwrap().to_owned();
    let res = client
        .post(format!("{base}/auth/password/forgot"))
        .json(&json!({"email": address}))
        .send()
        .await
        .unwrap();
    let (status, body) = read(res).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert!(body["message"].is_string(), "{body}");
    let mails = smtp.wait_for(1, Duration::from_secs(20)).await;
    let link = mails
        .iter()
        .find_map(|m| m.link(UI_RESET_PAGE))
        .expect("a reset mail");
    let token = token_of(&link);
    let plain = base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
    assert_eq!(
        smtp.auths(),
        vec![plain.clone()],
        "the mail went through AUTH PLAIN"
    );
    sigterm(&child);
    assert!(wait_exit(&mut child).success());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("TRACE") || text.contains("DEBUG"),
        "at trace: {text}"
    );
    for (what, secret) in [
        ("the SMTP password", password),
        ("the AUTH PLAIN line", plain.as_str()),
        ("the reset token", token.as_str()),
        ("the account token", account_token.as_str()),
    ] {
        assert!(!text.contains(secret), "{what} is in the log:\n{text}");
    }
}

/// `gatehouse --help` names every way to sign in, as the README's first lines do.
#[test]
fn help_names_every_sign_in_method() {
    let dir = tempfile::tempdir().unwrap();
    let out = gatehouse(dir.path()).arg("--help").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let help = String::from_utf8(out.stdout).unwrap();
    let readme = include_str!("../../README.md");
    let intro: String = readme.lines().take(10).collect::<Vec<_>>().join(" ");
    for method in [
        "email/password",
        "passkeys",
        "Sign-In with Ethereum",
        "Login with SelfKey",
        "OwnID",
    ] {
        assert!(help.contains(method), "{method}: {help}");
        assert!(
            intro.to_lowercase().contains(&method.to_lowercase()),
            "{method}: {intro}"
        );
    }
}
