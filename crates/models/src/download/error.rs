//! Why a download did not produce the file.

use std::io;
use std::path::{Path, PathBuf};

use reqwest::StatusCode;

/// Why a download did not produce the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DownloadError {
    /// Stopped by [`DownloadControl::pause`](super::DownloadControl::pause); the partial state is kept.
    #[error("download paused; it resumes where it stopped")]
    Paused,
    /// Stopped by [`DownloadControl::cancel`](super::DownloadControl::cancel); the partial state is deleted.
    #[error("download cancelled")]
    Cancelled,
    #[error("invalid download URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("invalid expected sha256 {0:?}: want 64 hex digits")]
    InvalidSha256(String),
    /// A status that retrying cannot fix (404, 401, 403, ...).
    #[error("{url} answered HTTP {status}{}", reason_suffix(*status))]
    Http { url: String, status: u16 },
    /// Connection errors, stalls or 5xx that outlived the retries. The partial state is kept.
    #[error("downloading {url} failed after {attempts} attempts: {message}")]
    Network { url: String, attempts: u32, message: String },
    /// The server said something that makes no sense for a download.
    #[error("{url}: {reason}")]
    BadResponse { url: String, reason: String },
    /// Not enough free space in `dir` for the bytes still to come (checked before starting),
    /// or the disk filled up while writing (the partial state is kept).
    #[error("not enough disk space in {}: {needed} more bytes needed, {available} available", dir.display())]
    NoSpace { dir: PathBuf, needed: u64, available: u64 },
    #[error("{url} is {actual} bytes, expected {expected}")]
    SizeMismatch { url: String, expected: u64, actual: u64 },
    #[error("the file's sha256 is {actual}, expected {expected} ({url})")]
    HashMismatch { url: String, expected: String, actual: String },
    /// No sha256 to check the file against (no `X-Linked-Etag`, none given) and the request
    /// did not allow that. Nothing was fetched.
    #[error("{url} cannot be verified: the server gives no sha256 for it and none is known; download it only if you trust the source")]
    Unverified { url: String },
    /// An https download was redirected to plain http, where the file could be altered in
    /// transit. An http endpoint (a local mirror) may redirect to http.
    #[error("{from} redirected to the unencrypted {to}; refused")]
    InsecureRedirect { from: String, to: String },
    /// The HTTP client could not be set up (TLS backend, proxy settings).
    #[error("cannot start the HTTP client: {0}")]
    Client(String),
    /// Another download (in this or another process) is writing the same `.part`.
    #[error("{} is already being downloaded", path.display())]
    Busy { path: PathBuf },
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn reason_suffix(status: u16) -> String {
    StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).map(|r| format!(" {r}")).unwrap_or_default()
}

impl DownloadError {
    /// Errors after which the partial state is worthless and deleted.
    pub(super) fn discards_partial(&self) -> bool {
        matches!(self, Self::SizeMismatch { .. } | Self::HashMismatch { .. } | Self::Cancelled)
    }
}

pub(super) fn io_error(action: &'static str, path: &Path, source: io::Error) -> DownloadError {
    DownloadError::Io { action, path: path.to_path_buf(), source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_read_well() {
        let e = DownloadError::Http { url: "https://huggingface.co/x/y/resolve/main/z.gguf".into(), status: 404 };
        assert_eq!(e.to_string(), "https://huggingface.co/x/y/resolve/main/z.gguf answered HTTP 404 Not Found");
        let e = DownloadError::HashMismatch { url: "u".into(), expected: "b".repeat(4), actual: "a".repeat(4) };
        assert_eq!(e.to_string(), "the file's sha256 is aaaa, expected bbbb (u)");
        let e = DownloadError::NoSpace { dir: "/m".into(), needed: 10, available: 3 };
        assert_eq!(e.to_string(), "not enough disk space in /m: 10 more bytes needed, 3 available");
    }
}
