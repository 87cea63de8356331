//! The `gatehouse` binary itself: zero-config start, the generated secret, config
//! errors, `migrate`, `--help`, and shutdown on SIGTERM.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::read;

const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");

/// The binary with no `GATEHOUSE_*` variables from the test environment.
pub fn gatehouse(dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("GATEHOUSE_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// Spawns `cmd`, a `gatehouse serve` told to listen on port 0 (`127.0.0.1:0`), with its
/// log (stderr) written to `log`, and returns it with its base URL once it answers
/// `/health`. The address is the one this child logs as bound (its `listening` line),
/// never a fixed port: a server already running elsewhere (`cargo run -- serve` on
/// 8080) is neither in the way nor ever talked to.
pub async fn start(cmd: &mut Command, log: &Path) -> (Child, String) {
    match try_start(cmd, log).await {
        Ok(started) => started,
        Err(why) => panic!("{why}"),
    }
}

/// [`start`], or why the child did not come up (its log).
pub async fn try_start(cmd: &mut Command, log: &Path) -> Result<(Child, String), String> {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let address = loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(address) = listening_address(&text) {
            break address;
        }
        if child.try_wait().unwrap().is_some() {
            return Err(format!("the server exited before listening:\n{text}"));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err(format!("the server did not say where it listens:\n{text}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let base = format!("http://{address}");
    wait_healthy(&base, &mut child).await;
    Ok((child, base))
}

/// The address of a log's `listening` line (`address=…` in text, `"address":"…"` in
/// JSON).
pub fn listening_address(log: &str) -> Option<String> {
    let line = log.lines().find(|l| l.contains("listening"))?;
    let (_, rest) = line
        .split_once("address=")
        .or_else(|| line.split_once("\"address\":\""))?;
    let address: String = rest
        .chars()
        .take_while(|c| c.is_ascii_hexdigit() || matches!(c, '.' | ':' | '[' | ']'))
        .collect();
    (!address.is_empty()).then_some(address)
}

/// Waits until `GET {base}/health` answers; `base` is the child's own address.
async fn wait_healthy(base: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(res) = crate::helpers::client()
            .get(format!("{base}/health"))
            .send()
            .await
            && res.status() == StatusCode::OK
        {
            return;
        }
        assert!(child.try_wait().unwrap().is_none(), "server exited early");
        assert!(Instant::now() < deadline, "server did not become healthy");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends a signal (by number) to a child, with kill(1).
pub fn signal(child: &Child, signal: i32) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

pub fn sigterm(child: &Child) {
    signal(child, 15);
}

pub fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "server did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Everything but the port left to the defaults: the port is the system's choice, so
/// the test never meets a server the README's `cargo run --release -- serve` started
/// on the default 8080 (`listen`'s default is checked below, in the reference).
#[tokio::test]
async fn serve_with_no_configuration_but_the_port_uses_the_documented_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log.txt");
    let serve = || {
        let mut cmd = gatehouse(dir.path());
        cmd.args(["serve", "--listen", "127.0.0.1:0"]);
        cmd
    };
    let (mut child, base) = start(&mut serve(), &log).await;
    let client = crate::helpers::client();
    let res = client
        .post(format!("{base}/auth/register"))
        .json(&json!({"email": "first@example.com", "password": "password123"}))
        .send()
        .await
        .unwrap();
    let (status, body) = read(res).await;
    assert_eq!(status, StatusCode::OK);
    let token = body["token"].as_str().unwrap().to_string();

    let data = dir.path().join("gatehouse-data");
    let secret_path = data.join("jwt-secret");
    let secret = std::fs::read_to_string(&secret_path).unwrap();
    assert_eq!(secret.len(), 128, "64 random bytes, hex");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&secret_path)
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    let mode = journal_mode(&data.join("gatehouse.db"));
    assert_eq!(mode, "wal");

    sigterm(&child);
    assert!(wait_exit(&mut child).success());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("jwt-secret"),
        "the log says where the secret is:\n{text}"
    );
    assert!(!text.contains(&secret), "the log never shows the secret");
    assert!(!text.contains(&token), "the log never shows a token");

    // A restart reuses the secret: the first token still works.
    let (mut child, base) = start(&mut serve(), &log).await;
    let res = client
        .get(format!("{base}/auth/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let (status, me) = read(res).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["email"], "first@example.com");
    assert_eq!(std::fs::read_to_string(&secret_path).unwrap(), secret);
    sigterm(&child);
    assert!(wait_exit(&mut child).success());

    let reference = gatehouse(dir.path())
        .args(["config", "--defaults"])
        .output()
        .unwrap();
    assert!(reference.status.success());
    let reference = String::from_utf8(reference.stdout).unwrap();
    assert!(
        reference
            .lines()
            .any(|l| l == "listen = \"127.0.0.1:8080\""),
        "{reference}"
    );
}

/// A plain HTTP server on a free port that answers `200 ok` to every request (`/health`
/// included) and counts the connections it gets: a stand-in for a server the developer
/// left running.
fn decoy() -> (u16, Arc<AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&hits);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            counted.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
        }
    });
    (port, hits)
}

/// With another server answering `/health` on a port, a test server told to take that
/// port fails and is reported as failed (it does not pass for the other one), and one on
/// port 0 comes up beside it; the other server gets no request at all.
#[tokio::test]
async fn another_server_answering_health_is_never_taken_for_the_child() {
    let dir = tempfile::tempdir().unwrap();
    let (port, hits) = decoy();
    let log = dir.path().join("log.txt");
    let mut taken = gatehouse(dir.path());
    taken.args(["serve", "--listen", &format!("127.0.0.1:{port}")]);
    let why = try_start(&mut taken, &log).await.unwrap_err();
    assert!(why.contains("listen: cannot bind"), "{why}");

    let mut free = gatehouse(dir.path());
    free.args(["serve", "--listen", "127.0.0.1:0"])
        .env("GATEHOUSE_ARGON2__MEMORY_KIB", "256");
    let (mut child, base) = start(&mut free, &log).await;
    assert!(!base.ends_with(&format!(":{port}")), "{base}");
    let res = crate::helpers::client()
        .post(format!("{base}/auth/register"))
        .json(&json!({"email": "beside@example.com", "password": "password123"}))
        .send()
        .await
        .unwrap();
    let (status, body) = read(res).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["token"].is_string(), "{body}");
    sigterm(&child);
    assert!(wait_exit(&mut child).success());
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the other server was called"
    );
}

/// The journal mode recorded in the database file header (bytes 18-19 are 2 in WAL).
fn journal_mode(path: &Path) -> &'static str {
    let header = std::fs::read(path).unwrap();
    if header[18] == 2 && header[19] == 2 {
        "wal"
    } else {
        "rollback"
    }
}

#[test]
fn a_bad_value_stops_the_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    type Case<'a> = (Vec<(&'a str, &'a str)>, Vec<&'a str>, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec![("GATEHOUSE_ARGON2__MEMORY_KIB", "lots")],
            vec![],
            "argon2.memory_kib",
        ),
        (
            vec![("GATEHOUSE_ARGON2__MEMORY_KIB", "1")],
            vec![],
            "argon2",
        ),
        (
            vec![("GATEHOUSE_JWT_SECRET", "too-short")],
            vec![],
            "jwt_secret",
        ),
        (
            vec![("GATEHOUSE_OWNID__SHARED_SECRETS", "not base64!")],
            vec![],
            "ownid.shared_secrets",
        ),
        (
            vec![("GATEHOUSE_TOKEN_LIFETIME_SECS", "0")],
            vec![],
            "token_lifetime_secs",
        ),
        (vec![("GATEHOUSE_NO_SUCH_KEY", "1")], vec![], "no_such_key"),
        (vec![], vec!["--database-url", "mysql://x"], "database_url"),
        (
            vec![],
            vec!["--database-url", "sqlite://x.db?mode=ro"],
            "database_url: SQLite needs a file",
        ),
        (vec![], vec!["--listen", "nowhere"], "--listen"),
    ];
    for (env, args, key) in cases {
        let out = gatehouse(dir.path())
            .arg("serve")
            .args(&args)
            .envs(env.clone())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{env:?} {args:?}: {stderr}");
        assert!(stderr.contains(key), "{env:?} {args:?}: {stderr}");
    }
    // A config file is read, and a bad value in it is named too.
    let file = dir.path().join("gatehouse.toml");
    std::fs::write(&file, "[http]\nrequest_timeout_secs = \"soon\"\n").unwrap();
    let out = gatehouse(dir.path())
        .args(["--config", file.to_str().unwrap(), "serve"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("http.request_timeout_secs"), "{stderr}");
    assert!(
        stderr.contains("gatehouse.toml"),
        "names the file: {stderr}"
    );
}

#[test]
fn migrate_creates_the_schema_and_says_what_it_did() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    let migrate = || {
        let out = gatehouse(dir.path())
            .args([
                "migrate",
                "--database-url",
                &format!("sqlite://{}", db.display()),
            ])
            // The test suite's own variables are not configuration.
            .env("GATEHOUSE_TEST_POSTGRES_URL", "postgres://not-read")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{stderr}");
        stderr
    };
    let first = migrate();
    assert!(
        first.contains("database schema: created (version "),
        "{first}"
    );
    let bytes = std::fs::read(&db).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    for table in [
        "accounts",
        "wallets",
        "one_time_tokens",
        "seen_requests",
        "rate_counters",
    ] {
        assert!(text.contains(&format!("CREATE TABLE {table}")), "{table}");
    }
    let second = migrate();
    assert!(second.contains(", up to date"), "{second}");
    assert!(!second.contains("created"), "{second}");
}

/// Start-up failures after the configuration is read: exit 1, the reason said once.
#[test]
fn a_failed_start_says_once_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap().to_string();
    let secret = dir.path().join("secret-with-newline");
    std::fs::write(&secret, format!("{}\n", "s".repeat(40))).unwrap();
    let missing = dir.path().join("no-such-secret");
    let cases = [
        (
            vec![
                "--listen",
                "127.0.0.1:0",
                "--jwt-secret-file",
                missing.to_str().unwrap(),
            ],
            "jwt_secret_file: ",
        ),
        (
            vec![
                "--listen",
                "127.0.0.1:0",
                "--jwt-secret-file",
                secret.to_str().unwrap(),
            ],
            "begins or ends with whitespace",
        ),
        (vec!["--listen", &taken_addr], "listen: cannot bind"),
    ];
    for (args, message) in cases {
        let out = gatehouse(dir.path())
            .arg("serve")
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert_eq!(stderr.matches(message).count(), 1, "{args:?}: {stderr}");
        // Written to a pipe: no colour codes.
        assert!(!stderr.contains('\u{1b}'), "{args:?}: {stderr}");
    }
}

#[test]
fn help_describes_the_commands_and_options() {
    let dir = tempfile::tempdir().unwrap();
    let out = gatehouse(dir.path()).arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for word in [
        "serve",
        "migrate",
        "config",
        "backup",
        "--config",
        "GATEHOUSE_",
        "gatehouse config --defaults",
        "Exit status",
    ] {
        assert!(text.contains(word), "{word}: {text}");
    }
    let out = gatehouse(dir.path())
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for word in [
        "--listen",
        "--database-url",
        "--jwt-secret-file",
        "--token-lifetime-secs",
        "--issuer",
        "--argon2-memory-kib",
        "GATEHOUSE_HTTP__PUBLIC_URL",
    ] {
        assert!(text.contains(word), "{word}: {text}");
    }
    // `--help` ends with the whole reference: every key and its default.
    let reference = gatehouse(dir.path())
        .args(["config", "--defaults"])
        .output()
        .unwrap();
    assert!(reference.status.success());
    let reference = String::from_utf8(reference.stdout).unwrap();
    assert!(reference.contains("[selfkey.website]"), "{reference}");
    assert!(text.contains(reference.trim_end()), "{text}");
}

#[test]
fn config_prints_the_values_in_force_with_secrets_hidden() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gatehouse.toml");
    std::fs::write(
        &file,
        "issuer = \"from-file\"\n[http]\npublic_url = \"https://shop.example\"\n",
    )
    .unwrap();
    let secret = "a-secret-that-must-not-be-printed-0123456789";
    let out = gatehouse(dir.path())
        .args(["--config", file.to_str().unwrap(), "config"])
        .env("GATEHOUSE_JWT_SECRET", secret)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for line in [
        "issuer = \"from-file\"",
        "public_url = \"https://shop.example\"",
        "jwt_secret = \"[redacted]\"",
    ] {
        assert!(text.lines().any(|l| l == line), "{line}: {text}");
    }
    assert!(!text.contains(secret), "{text}");
}

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn flags_beat_environment_beats_file_beats_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let (file_port, env_port, flag_port) = (free_port(), free_port(), free_port());
    let file = dir.path().join("gatehouse.toml");
    std::fs::write(
        &file,
        format!("listen = \"127.0.0.1:{file_port}\"\nissuer = \"from-file\"\ntoken_lifetime_secs = 120\n"),
    )
    .unwrap();
    let log = dir.path().join("log.txt");
    let serve = |with_flag: bool| {
        let mut cmd = gatehouse(dir.path());
        cmd.args(["--config", file.to_str().unwrap(), "serve"])
            .env("GATEHOUSE_LISTEN", format!("127.0.0.1:{env_port}"))
            .env("GATEHOUSE_ISSUER", "from-env");
        if with_flag {
            cmd.args([
                "--listen",
                &format!("127.0.0.1:{flag_port}"),
                "--issuer",
                "from-flag",
            ]);
        }
        cmd
    };
    for (with_flag, port, issuer) in [
        (false, env_port, "from-env"),
        (true, flag_port, "from-flag"),
    ] {
        let (mut child, base) = start(&mut serve(with_flag), &log).await;
        // The child itself says it bound the port of the layer that wins.
        assert_eq!(base, format!("http://127.0.0.1:{port}"));
        let res = crate::helpers::client()
            .post(format!("{base}/auth/register"))
            .json(
                &json!({"email": format!("layers-{port}@example.com"), "password": "password123"}),
            )
            .send()
            .await
            .unwrap();
        let (status, body) = read(res).await;
        assert_eq!(status, StatusCode::OK);
        let (_, claims) = crate::helpers::jwt_parts(body["token"].as_str().unwrap());
        assert_eq!(claims["iss"], issuer);
        // The file's lifetime holds where nothing above it says otherwise.
        assert_eq!(
            claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
            120
        );
        sigterm(&child);
        assert!(wait_exit(&mut child).success());
    }
}

#[tokio::test]
async fn sigterm_lets_requests_in_flight_finish() {
    let dir = tempfile::tempdir().unwrap();
    // Expensive hashing, so a registration is still in flight when the signal lands.
    let mut cmd = gatehouse(dir.path());
    cmd.args(["serve", "--listen", "127.0.0.1:0"]).args([
        "--argon2-memory-kib",
        "65536",
        "--argon2-iterations",
        "8",
    ]);
    let (mut child, base) = start(&mut cmd, &dir.path().join("log.txt")).await;
    let client = crate::helpers::client();
    let in_flight = tokio::spawn({
        let client = client.clone();
        let url = format!("{base}/auth/register");
        async move {
            let res = client
                .post(url)
                .json(&json!({"email": "slow@example.com", "password": "password123"}))
                .send()
                .await
                .unwrap();
            read(res).await
        }
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    sigterm(&child);
    let (status, body) = in_flight.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["token"].is_string());
    assert!(wait_exit(&mut child).success());
    // Stopped accepting: nothing listens any more.
    assert!(client.get(format!("{base}/health")).send().await.is_err());
}
