#![allow(clippy::unwrap_used)]
//! A damaged database never stops the app: `Store::open_or_recover` keeps the bad file (and its
//! `-wal` / `-shm`) aside under a dated name with its bytes intact, starts a fresh one, and says
//! where the old one is; a lock held by another connection is waited for, then reported.

use std::path::{Path, PathBuf};
use std::time::Duration;

use understudy_store::{schema_version, Opened, Role, Store, StoreNotice};

const WAIT: Duration = Duration::from_secs(1);

/// A database with a conversation of `n` messages of 1 KB each.
fn history(db: &Path, n: usize) {
    let s = Store::open(db).unwrap();
    let c = s.create_conversation("Kept").unwrap();
    for i in 0..n {
        s.add_message(c.id, Role::User, &format!("{i} {}", "x".repeat(1000))).unwrap();
    }
}

/// The fresh store works and is the file at `db` (written, then read back by a new open).
fn assert_fresh_and_usable(opened: Opened, db: &Path) {
    assert!(opened.store.conversations().unwrap().is_empty(), "a fresh history");
    let c = opened.store.create_conversation("after").unwrap();
    opened.store.add_message(c.id, Role::User, "still works").unwrap();
    drop(opened);
    let again = Store::open(db).unwrap();
    assert_eq!(again.conversations().unwrap()[0].title, "after");
    assert_eq!(again.integrity_check().unwrap(), "ok");
}

/// The files in `dir` other than the database and its companions.
fn kept_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<_> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with("understudy.db")).collect();
    v.sort();
    v
}

fn damaged(opened: &Opened) -> PathBuf {
    match &opened.notice {
        Some(StoreNotice::Damaged { kept_as, detail, .. }) => {
            assert!(!detail.is_empty());
            kept_as.clone()
        }
        other => panic!("expected Damaged, got {other:?}"),
    }
}

/// `understudy-damaged-YYYYMMDD-HHMMSS.db` beside the database.
fn assert_dated(kept: &Path, label: &str, dir: &Path) {
    assert_eq!(kept.parent().unwrap(), dir);
    let name = kept.file_name().unwrap().to_string_lossy().into_owned();
    let date = name.strip_prefix(&format!("understudy-{label}-")).and_then(|r| r.strip_suffix(".db")).unwrap_or_else(|| panic!("{name}"));
    let ok = date.len() == 15 && date.chars().enumerate().all(|(i, c)| if i == 8 { c == '-' } else { c.is_ascii_digit() });
    assert!(ok, "{name}");
}

#[test]
fn a_garbage_file_is_kept_aside_with_its_wal_and_a_fresh_history_starts() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("understudy.db");
    let garbage: Vec<u8> = (0..64 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(&db, &garbage).unwrap();
    std::fs::write(dir.path().join("understudy.db-wal"), b"wal bytes").unwrap();
    std::fs::write(dir.path().join("understudy.db-shm"), b"shm bytes").unwrap();

    let opened = Store::open_or_recover(&db, WAIT);
    let kept = damaged(&opened);
    assert_dated(&kept, "damaged", dir.path());
    assert_eq!(std::fs::read(&kept).unwrap(), garbage, "the old file's bytes are intact");
    let companion = |s: &str| std::fs::read(format!("{}{s}", kept.display())).unwrap();
    assert_eq!((companion("-wal"), companion("-shm")), (b"wal bytes".to_vec(), b"shm bytes".to_vec()));
    assert!(opened.notice.as_ref().unwrap().to_string().contains(&kept.display().to_string()), "it says where");
    #[cfg(unix)]
    for f in [kept.clone(), PathBuf::from(format!("{}-wal", kept.display()))] {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&f).unwrap().permissions().mode() & 0o777, 0o600, "{}", f.display());
    }
    assert_fresh_and_usable(opened, &db);
    // Opening again finds the fresh file sound: nothing more is moved.
    let third = Store::open_or_recover(&db, WAIT);
    assert_eq!(third.notice, None);
    assert_eq!(kept_files(dir.path()).iter().filter(|p| p.extension().is_some_and(|e| e == "db")).count(), 1);
}

#[test]
fn a_truncated_file_is_kept_aside() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("understudy.db");
    history(&db, 200);
    let whole = std::fs::read(&db).unwrap();
    assert!(whole.len() > 100 * 1024, "{}", whole.len());
    let half = &whole[..whole.len() / 2];
    std::fs::write(&db, half).unwrap();

    let opened = Store::open_or_recover(&db, WAIT);
    let kept = damaged(&opened);
    assert_dated(&kept, "damaged", dir.path());
    assert_eq!(std::fs::read(&kept).unwrap(), half);
    assert_fresh_and_usable(opened, &db);
}

#[test]
fn a_file_cut_inside_its_first_page_is_kept_aside() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("understudy.db");
    history(&db, 3);
    let whole = std::fs::read(&db).unwrap();
    std::fs::write(&db, &whole[..1000]).unwrap();
    let opened = Store::open_or_recover(&db, WAIT);
    let kept = damaged(&opened);
    assert_eq!(std::fs::read(&kept).unwrap(), &whole[..1000]);
    assert_fresh_and_usable(opened, &db);
}

#[test]
fn a_directory_where_the_database_belongs_is_moved_aside() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("understudy.db");
    std::fs::create_dir(&db).unwrap();
    std::fs::write(db.join("inside"), b"x").unwrap();
    let opened = Store::open_or_recover(&db, WAIT);
    let kept = damaged(&opened);
    assert_eq!(std::fs::read(kept.join("inside")).unwrap(), b"x");
    assert_fresh_and_usable(opened, &db);
}

#[test]
fn a_database_from_a_newer_understudy_is_kept_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("understudy.db");
    history(&db, 2);
    rusqlite::Connection::open(&db).unwrap().pragma_update(None, "user_version", 99).unwrap();
    let before = std::fs::read(&db).unwrap();

    let opened = Store::open_or_recover(&db, WAIT);
    let kept = match &opened.notice {
        Some(StoreNotice::Newer { kept_as, found: 99, supported, .. }) if *supported == schema_version() => kept_as.clone(),
        other => panic!("expected Newer, got {other:?}"),
    };
    assert_dated(&kept, "newer", dir.path());
    assert_eq!(std::fs::read(&kept).unwrap(), before);
    // The newer version's data is all there for it.
    let old = rusqlite::Connection::open(&kept).unwrap();
    assert_eq!(old.query_row("SELECT COUNT(*) FROM messages", [], |r| r.get::<_, i64>(0)).unwrap(), 2);
    assert_fresh_and_usable(opened, &db);
}

/// A second connection holding the write lock (`BEGIN EXCLUSIVE`) with a write pending.
fn hold_lock(db: &Path) -> rusqlite::Connection {
    let holder = rusqlite::Connection::open(db).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE; INSERT INTO settings (key, value) VALUES ('held', '1');").unwrap();
    holder
}

#[test]
fn a_lock_held_past_the_wait_is_reported_and_nothing_is_moved() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("understudy.db");
    history(&db, 2);
    let holder = hold_lock(&db);

    let opened = Store::open_or_recover(&db, WAIT);
    match &opened.notice {
        Some(StoreNotice::Locked { path, waited_secs: 1 }) => assert_eq!(path, &db),
        other => panic!("expected Locked, got {other:?}"),
    }
    assert!(opened.notice.as_ref().unwrap().to_string().contains("locked"));
    // This session still works (in memory), and the history was not touched.
    let c = opened.store.create_conversation("meanwhile").unwrap();
    opened.store.add_message(c.id, Role::User, "hi").unwrap();
    assert!(kept_files(dir.path()).is_empty(), "{:?}", kept_files(dir.path()));
    holder.execute_batch("COMMIT").unwrap();
    drop(holder);
    let again = Store::open_or_recover(&db, WAIT);
    assert_eq!(again.notice, None);
    assert_eq!(again.store.conversations().unwrap()[0].title, "Kept");
    assert_eq!(again.store.setting("held").unwrap().as_deref(), Some("1"));
}

#[test]
fn a_lock_released_within_the_wait_opens_the_history() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("understudy.db");
    history(&db, 2);
    let holder = hold_lock(&db);
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let release = std::thread::spawn(move || {
        locked_tx.send(()).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        holder.execute_batch("COMMIT").unwrap();
    });
    locked_rx.recv().unwrap();
    let opened = Store::open_or_recover(&db, Duration::from_secs(60));
    release.join().unwrap();
    assert_eq!(opened.notice, None);
    assert_eq!(opened.store.conversations().unwrap()[0].title, "Kept");
    assert_eq!(opened.store.messages(opened.store.conversations().unwrap()[0].id).unwrap().len(), 2);
}

#[test]
#[cfg(unix)]
fn a_bad_file_that_cannot_be_moved_leaves_everything_in_place() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let db = data.join("understudy.db");
    std::fs::write(&db, b"not a database, not at all; just some words here").unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o500)).unwrap();
    // Root ignores directory permissions: then there is nothing to test here.
    let writable = std::fs::write(data.join("probe"), b"").is_ok();
    let opened = (!writable).then(|| Store::open_or_recover(&db, WAIT));
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
    let Some(opened) = opened else {
        eprintln!("skipped: running as root, the directory stays writable");
        return;
    };
    assert!(matches!(opened.notice, Some(StoreNotice::Unavailable { .. })), "{:?}", opened.notice);
    opened.store.create_conversation("in memory").unwrap();
    assert_eq!(std::fs::read(&db).unwrap(), b"not a database, not at all; just some words here");
}
