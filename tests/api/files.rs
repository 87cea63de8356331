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
