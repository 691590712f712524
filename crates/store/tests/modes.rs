#![allow(clippy::unwrap_used)]
#![cfg(unix)]
//! The database (with its `-wal` and `-shm`) and exports are owner-only (0600) even for a user
//! whose umask is 000: the writer helper runs under `sh -c 'umask 000; exec …'`.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).permissions().mode() & 0o777
}

/// The store writer with `args`, under umask 000.
fn writer(args: &[&Path]) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c").arg("umask 000; exec \"$@\"").arg("sh").arg(env!("CARGO_BIN_EXE_understudy-store-writer")).args(args);
    c
}

#[test]
fn the_database_and_its_wal_and_shm_are_0600_under_umask_000() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("understudy.db");
    let mut child = writer(&[&db]).stdout(Stdio::null()).spawn().unwrap();
    let (wal, shm) = (dir.path().join("understudy.db-wal"), dir.path().join("understudy.db-shm"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(wal.exists() && shm.exists()) {
        assert!(Instant::now() < deadline, "the writer made no WAL");
        std::thread::sleep(Duration::from_millis(50));
    }
    // A file of the same umask beside it shows the test really runs under 000.
    let control = dir.path().join("control");
    assert!(Command::new("sh").arg("-c").arg(format!("umask 000; touch '{}'", control.display())).status().unwrap().success());
    assert_eq!(mode(&control), 0o666);
    let modes = [mode(&db), mode(&wal), mode(&shm)];
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(modes, [0o600; 3], "db, -wal, -shm");
}

#[test]
fn an_existing_world_readable_database_is_tightened() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("understudy.db");
    drop(understudy_store::Store::open(&db).unwrap());
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    drop(understudy_store::Store::open(&db).unwrap());
    assert_eq!(mode(&db), 0o600);
}

#[test]
fn exports_are_0600_under_umask_000() {
    let dir = tempfile::tempdir().unwrap();
    let exports = dir.path().join("Downloads");
    std::fs::create_dir_all(&exports).unwrap();
    let out = writer(&[&dir.path().join("understudy.db"), &exports]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let files: Vec<_> = std::fs::read_dir(&exports).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 2, "{files:?}");
    for f in files {
        assert_eq!(mode(&f), 0o600, "{}", f.display());
    }
}
