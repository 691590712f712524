//! Opening the history when the disk is not kind: a damaged file, one written by a newer
//! Understudy, one another program holds locked, or one that cannot be opened at all. The app
//! opens anyway; a bad file is moved aside under a dated name (with its `-wal` / `-shm`), never
//! deleted, and a [`StoreNotice`] says what happened and where the old file is.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::ErrorCode;
use serde::Serialize;

use crate::{Store, StoreError};

/// What opening the database found wrong and what was done about it. Typed, so the window
/// words it; serialised with a `kind` tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StoreNotice {
    /// The file was not a sound database (garbage, truncated, malformed pages): it was moved to
    /// `kept_as` and a fresh, empty history started at `path`.
    Damaged { path: PathBuf, kept_as: PathBuf, detail: String },
    /// A newer Understudy wrote the file (schema `found`; this version knows up to
    /// `supported`): moved to `kept_as` for that version, and a fresh history started.
    Newer { path: PathBuf, kept_as: PathBuf, found: i64, supported: i64 },
    /// Another program held the database locked for all of `waited_secs`: nothing was moved;
    /// this session keeps its chats in memory only (lost at quit).
    Locked { path: PathBuf, waited_secs: u64 },
    /// The database could not be opened or a bad file could not be moved aside (permissions, a
    /// read-only or full disk): nothing was moved; this session keeps its chats in memory only.
    Unavailable { path: PathBuf, detail: String },
}

impl std::fmt::Display for StoreNotice {
    /// For the CLI's stderr and the log; the window words the typed value itself.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreNotice::Damaged { path, kept_as, detail } => {
                write!(f, "the history {} was damaged ({detail}); it was kept as {} and a new one started", path.display(), kept_as.display())
            }
            StoreNotice::Newer { path, kept_as, found, supported } => write!(
                f,
                "the history {} was written by a newer Understudy (schema {found}, this version reads up to {supported}); it was kept as {} and a new one started",
                path.display(),
                kept_as.display()
            ),
            StoreNotice::Locked { path, waited_secs } => write!(
                f,
                "the history {} is locked by another program (waited {waited_secs} s); chats of this session are not saved",
                path.display()
            ),
            StoreNotice::Unavailable { path, detail } => {
                write!(f, "the history {} cannot be opened ({detail}); chats of this session are not saved", path.display())
            }
        }
    }
}

/// A store and what it took to open it.
#[derive(Debug)]
pub struct Opened {
    pub store: Store,
    /// None when the file opened as it was.
    pub notice: Option<StoreNotice>,
}

/// Why one attempt to open failed.
pub(crate) enum Problem {
    Damaged(String),
    Newer(i64),
    Locked,
    Other(String),
}

impl From<StoreError> for Problem {
    fn from(e: StoreError) -> Problem {
        let sqlite = match &e {
            StoreError::Open { source, .. } | StoreError::Sql(source) => source.sqlite_error_code(),
            StoreError::Migrate(rusqlite_migration::Error::RusqliteError { err, .. }) => err.sqlite_error_code(),
            _ => None,
        };
        match sqlite {
            Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => Problem::Damaged(e.to_string()),
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Problem::Locked,
            _ => Problem::Other(e.to_string()),
        }
    }
}

impl Store {
    /// Opens the database at `path` whatever state it is in; never fails. A lock held by another
    /// program is waited for up to `lock_wait`. See [`StoreNotice`] for what else can happen; in
    /// the worst case the store is in memory for this session.
    pub fn open_or_recover(path: &Path, lock_wait: Duration) -> Opened {
        let memory = |notice: StoreNotice| {
            tracing::warn!("{notice}");
            Opened { store: Store::open_in_memory().expect("an in-memory database opens"), notice: Some(notice) }
        };
        let unavailable = |detail: String| memory(StoreNotice::Unavailable { path: path.to_path_buf(), detail });
        let (label, notice): (&str, Box<dyn Fn(PathBuf) -> StoreNotice>) = match Store::open_checked(path, lock_wait) {
            Ok(store) => return Opened { store, notice: None },
            Err(Problem::Locked) => return memory(StoreNotice::Locked { path: path.to_path_buf(), waited_secs: lock_wait.as_secs() }),
            Err(Problem::Other(detail)) => return unavailable(detail),
            Err(Problem::Damaged(detail)) => {
                ("damaged", Box::new(move |kept_as| StoreNotice::Damaged { path: path.to_path_buf(), kept_as, detail: detail.clone() }))
            }
            Err(Problem::Newer(found)) => {
                ("newer", Box::new(move |kept_as| StoreNotice::Newer { path: path.to_path_buf(), kept_as, found, supported: crate::schema_version() }))
            }
        };
        let kept_as = match set_aside(path, label) {
            Ok(p) => p,
            Err(e) => return unavailable(format!("it is unreadable and could not be moved aside: {e}")),
        };
        let notice = notice(kept_as);
        tracing::warn!("{notice}");
        match Store::open_checked(path, lock_wait) {
            Ok(store) => Opened { store, notice: Some(notice) },
            Err(Problem::Other(detail) | Problem::Damaged(detail)) => unavailable(detail),
            Err(Problem::Locked) => unavailable("a new database could not be started: it is locked".into()),
            Err(Problem::Newer(_)) => unavailable("a new database could not be started".into()),
        }
    }
}

/// Why the file at `path` cannot be an SQLite database, judged from its header and length
/// alone; None when it may be one (or is empty or missing: then SQLite starts a new one).
pub(crate) fn bad_header(path: &Path) -> Option<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    if len == 0 {
        return None;
    }
    let mut header = [0u8; 100];
    if len < 100 || f.read_exact(&mut header).is_err() {
        return Some(format!("{len} bytes, shorter than a database header"));
    }
    if &header[..16] != b"SQLite format 3\0" {
        return Some("not an SQLite database".into());
    }
    // The page size, stored big-endian; 1 means 65536.
    let page = match u16::from_be_bytes([header[16], header[17]]) {
        1 => 65536,
        n => u64::from(n),
    };
    if !(512..=65536).contains(&page) || !page.is_power_of_two() {
        return Some("the header is damaged".into());
    }
    (len % page != 0).then(|| format!("cut short: {len} bytes is not a whole number of {page}-byte pages"))
}

/// SQLite's companions of a database file, moved with it: a `-wal` left beside a fresh
/// database would be replayed into it.
const COMPANIONS: [&str; 3] = ["-wal", "-shm", "-journal"];

fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Moves `db` and its companions to `<stem>-<label>-<local date-time>.db` beside it (a
/// counter added if that is taken); returns the new path of the database file.
fn set_aside(db: &Path, label: &str) -> std::io::Result<PathBuf> {
    let dir = db.parent().unwrap_or(Path::new("."));
    let stem = db.file_stem().map_or("understudy".into(), |s| s.to_string_lossy().into_owned());
    let ext = db.extension().map_or("db".into(), |s| s.to_string_lossy().into_owned());
    let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S");
    let target = (1..)
        .map(|n| dir.join(if n == 1 { format!("{stem}-{label}-{stamp}.{ext}") } else { format!("{stem}-{label}-{stamp}-{n}.{ext}") }))
        .find(|p| COMPANIONS.iter().chain([&""]).all(|s| std::fs::symlink_metadata(with_suffix(p, s)).is_err()))
        .expect("some counter is free");
    let mut moved = Vec::new();
    for suffix in COMPANIONS {
        let from = with_suffix(db, suffix);
        if std::fs::symlink_metadata(&from).is_err() {
            continue;
        }
        if let Err(e) = std::fs::rename(&from, with_suffix(&target, suffix)) {
            undo(db, &target, &moved);
            return Err(e);
        }
        moved.push(suffix);
    }
    if let Err(e) = std::fs::rename(db, &target) {
        undo(db, &target, &moved);
        return Err(e);
    }
    // The kept files hold the user's chats: owner-only, like the database was meant to be.
    #[cfg(unix)]
    for suffix in moved.iter().chain([&""]) {
        use std::os::unix::fs::PermissionsExt;
        let p = with_suffix(&target, suffix);
        let mode = if p.is_dir() { 0o700 } else { 0o600 };
        let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode));
    }
    Ok(target)
}

/// Puts companions back beside the database when it could not follow them.
fn undo(db: &Path, target: &Path, moved: &[&str]) {
    for suffix in moved {
        let _ = std::fs::rename(with_suffix(target, suffix), with_suffix(db, suffix));
    }
}
