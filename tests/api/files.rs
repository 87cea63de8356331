//! The data directory and the SQLite files are readable by their owner only.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use reqwest::StatusCode;

use crate::helpers::{Backend, TestApp, email};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// A server on the default SQLite file in a data directory it creates itself, with
/// the signing secret it generates; one registration, so the WAL has been written.
async fn started_in(data_dir: &Path) -> TestApp {
    let data_dir = data_dir.to_path_buf();
    let app = TestApp::spawn_with(Backend::Sqlite, move |s| {
        s.data_dir = data_dir;
        s.database_url = None;
        s.jwt_secret = None;
    })
    .await;
    let (status, body) = app.register(&email(), "password123").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["token"].is_string(), "{body}");
    app
}

#[tokio::test]
async fn the_data_directory_is_0700_and_its_files_0600() {
    let root = tempfile::tempdir().unwrap();
    // Whatever the umask would allow.
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = root.path().join("gatehouse-data");
    let _app = started_in(&data).await;
    assert_eq!(mode(&data), 0o700);
    for file in [
        "gatehouse.db",
        "gatehouse.db-wal",
        "gatehouse.db-shm",
        "jwt-secret",
    ] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }
}

#[tokio::test]
async fn database_files_of_an_older_version_are_tightened() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    drop(started_in(&data).await);
    for file in ["gatehouse.db", "gatehouse.db-wal", "gatehouse.db-shm"] {
        let path = data.join(file);
        if path.exists() {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
    let _app = started_in(&data).await;
    for file in ["gatehouse.db", "gatehouse.db-wal", "gatehouse.db-shm"] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }
}

/// The outbox holds live reset links: private even in a data directory the operator
/// made 0755 (as `mkdir` or systemd's `StateDirectory` do), and even if an older
/// version left the outbox itself 0755.
#[tokio::test]
async fn outbox_mail_is_private_in_a_data_directory_that_is_not() {
    use crate::mail::{PUBLIC_URL, UI_RESET_PAGE, forgot};
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let outbox = data.join("outbox");
    std::fs::create_dir(&outbox).unwrap();
    std::fs::set_permissions(&outbox, std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = data.clone();
    let app = TestApp::spawn_with(Backend::Sqlite, move |s| {
        s.data_dir = dir;
        s.http.public_url = Some(PUBLIC_URL.into());
        s.mail.enabled = true;
    })
    .await;
    let address = email();
    app.registered(&address, "password123").await;
    let (status, body) = forgot(&app, &address).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert!(body["message"].is_string(), "{body}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    // The verification mail, then the reset mail.
    let files = loop {
        let files: Vec<_> = std::fs::read_dir(&outbox)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .collect();
        let reset = files.iter().any(|p| {
            let mail = crate::smtp::Received {
                from: String::new(),
                to: Vec::new(),
                data: std::fs::read_to_string(p).unwrap(),
            };
            mail.data.contains(&format!("To: {address}")) && mail.link(UI_RESET_PAGE).is_some()
        });
        if reset {
            break files;
        }
        assert!(std::time::Instant::now() < deadline, "no reset .eml file");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(
        mode(&data),
        0o755,
        "the operator's directory is left as it is"
    );
    assert_eq!(mode(&outbox), 0o700);
    for file in files {
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
}
