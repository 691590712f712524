//! Blocking file-system helpers (called through `spawn_blocking`): positioned writes, free
//! space, directory sync, the `.part` lock, streamed sha256.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// `<dest>.part`: where the bytes go until they are verified.
pub fn part_path(dest: &Path) -> PathBuf {
    with_suffix(dest, ".part")
}

/// `<dest>.part.json`: the resume state of `<dest>.part`.
pub fn sidecar_path(dest: &Path) -> PathBuf {
    with_suffix(dest, ".part.json")
}

pub(crate) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Writes all of `buf` at `offset`, whatever the file position (several connections share
/// one handle).
#[cfg(unix)]
pub(crate) fn write_all_at(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    file.write_all_at(buf, offset)
}

/// Writes all of `buf` at `offset`, whatever the file position (several connections share
/// one handle).
#[cfg(windows)]
pub(crate) fn write_all_at(file: &File, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_write(buf, offset) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "failed to write whole buffer")),
            Ok(n) => {
                buf = &buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// ENOSPC / EDQUOT (and their Windows equivalents).
pub(crate) fn is_no_space(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded)
}

/// Bytes available to this user on the file system holding `dir`.
pub(crate) fn available_space(dir: &Path) -> io::Result<u64> {
    fs4::available_space(dir)
}

/// Makes a rename inside `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Opens (creating, never truncating) the `.part` file and takes an exclusive advisory lock on
/// it, waiting up to `wait` for another holder (a download being torn down) to let go.
/// `Ok(None)` means another download holds it.
pub(crate) fn open_locked(path: &Path, wait: Duration) -> io::Result<Option<File>> {
    let deadline = Instant::now().checked_add(wait);
    loop {
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        // Owner-only whatever the umask, like the rest of the data dir.
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(path)?;
        match file.try_lock() {
            // The holder may have renamed the finished file away (to dest!) or deleted it
            // while this handle waited: only a lock on the file still at `path` counts.
            Ok(()) if is_at(&file, path)? => return Ok(Some(file)),
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {}
            Err(std::fs::TryLockError::Error(e)) if e.kind() == io::ErrorKind::Unsupported => {
                tracing::warn!(path = %path.display(), "file locks unsupported here; not guarding against a second download");
                return Ok(Some(file));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
        drop(file);
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Whether `file` is the file currently at `path`.
#[cfg(unix)]
fn is_at(file: &File, path: &Path) -> io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let open = file.metadata()?;
    match std::fs::metadata(path) {
        Ok(now) => Ok(open.dev() == now.dev() && open.ino() == now.ino()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Whether `file` is the file currently at `path` (Windows does not rename or delete a file
/// that is open without sharing it; std shares it, so this is best effort).
#[cfg(not(unix))]
fn is_at(_file: &File, path: &Path) -> io::Result<bool> {
    Ok(path.exists())
}

/// Streams `file` from the start through sha256, counting bytes into `hashed`. `Ok(None)` when
/// `stop` was raised part-way.
pub(crate) fn sha256_file(file: &File, hashed: &AtomicU64, stop: &AtomicBool) -> io::Result<Option<String>> {
    let mut reader: &File = file;
    reader.seek(SeekFrom::Start(0))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        hashed.fetch_add(n as u64, Ordering::Relaxed);
    }
    Ok(Some(hex(&hasher.finalize())))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_append_suffixes() {
        let dest = Path::new("/m/qwen.Q4_K_M.gguf");
        assert_eq!(part_path(dest), Path::new("/m/qwen.Q4_K_M.gguf.part"));
        assert_eq!(sidecar_path(dest), Path::new("/m/qwen.Q4_K_M.gguf.part.json"));
    }

    #[test]
    fn positioned_writes_and_hash() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        let f = open_locked(&path, Duration::ZERO).expect("open").expect("lock");
        write_all_at(&f, b"world", 6).expect("write");
        write_all_at(&f, b"hello ", 0).expect("write");
        assert_eq!(std::fs::read(&path).expect("read"), b"hello world");
        // A second handle cannot take the lock while the first holds it.
        assert!(open_locked(&path, Duration::from_millis(50)).expect("open").is_none());
        let hashed = AtomicU64::new(0);
        let sum = sha256_file(&f, &hashed, &AtomicBool::new(false)).expect("hash");
        assert_eq!(sum.as_deref(), Some("b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"));
        assert_eq!(hashed.load(Ordering::Relaxed), 11);
        assert_eq!(sha256_file(&f, &hashed, &AtomicBool::new(true)).expect("hash"), None);
        drop(f);
        assert!(open_locked(&path, Duration::ZERO).expect("open").is_some());
    }

    #[test]
    fn a_lock_on_a_file_renamed_away_does_not_count() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f.part");
        let holder = open_locked(&path, Duration::ZERO).expect("open").expect("lock");
        let waiter = std::thread::spawn({
            let path = path.clone();
            move || open_locked(&path, Duration::from_secs(5)).expect("open").expect("lock")
        });
        std::thread::sleep(Duration::from_millis(100));
        std::fs::rename(&path, dir.path().join("f")).expect("rename");
        drop(holder);
        let got = waiter.join().expect("thread");
        // The waiter locked a fresh, empty .part, not the renamed file.
        write_all_at(&got, b"x", 0).expect("write");
        assert_eq!(std::fs::read(&path).expect("read"), b"x");
        assert_eq!(std::fs::read(dir.path().join("f")).expect("read"), b"");
    }

    #[test]
    fn no_space_kinds() {
        assert!(is_no_space(&io::Error::from(io::ErrorKind::StorageFull)));
        assert!(is_no_space(&io::Error::from(io::ErrorKind::QuotaExceeded)));
        assert!(!is_no_space(&io::Error::from(io::ErrorKind::PermissionDenied)));
        #[cfg(target_os = "linux")]
        assert!(is_no_space(&io::Error::from_raw_os_error(28)));
        assert!(available_space(Path::new(".")).expect("statvfs") > 0);
    }
}
