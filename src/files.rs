//! The files Gatehouse creates hold password hashes, OwnID data and the signing
//! secret: the data directory is made `0700` and every file in it `0600`, whatever the
//! umask, so no other local account can read them.

use std::io::Write;
use std::path::Path;

/// Creates `dir` (and missing parents) readable by its owner only. A directory that
/// exists already is left as it is: its mode is the operator's choice.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Creates `dir` (and missing parents) as [`create_private_dir`] does, and makes it
/// owner-only if it existed: for a directory that is Gatehouse's alone (the outbox),
/// not one the operator may have made on purpose.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    create_private_dir(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir)?.permissions().mode();
        if mode & 0o077 != 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode & 0o700))?;
        }
    }
    Ok(())
}

/// Creates `path` readable by its owner only; fails if it exists (another node or a
/// concurrent start won the race: better to stop than to overwrite its secret).
pub fn write_private(path: &Path, content: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(content)?;
    file.sync_all()
}

/// Makes the SQLite database at `path` and its `-wal` and `-shm` files owner-only
/// before SQLite opens them: creates the database file `0600` if it is missing (SQLite
/// gives the log files the database file's mode), and takes the group's and others'
/// bits off files an older version created `0644`. Returns the files it tightened.
pub fn private_sqlite_files(path: &Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    drop(options.open(path)?);
    let mut tightened = Vec::new();
    #[cfg(unix)]
    for suffix in ["", "-wal", "-shm"] {
        use std::os::unix::fs::PermissionsExt;
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        let file = std::path::PathBuf::from(file);
        let Ok(meta) = std::fs::metadata(&file) else {
            continue;
        };
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode & 0o700))?;
            tightened.push(file);
        }
    }
    Ok(tightened)
}
