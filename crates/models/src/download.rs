//! Resumable, verified downloads of model files.
//!
//! A download writes `<dest>.part` and keeps `<dest>.part.json` (the sidecar) beside it: the
//! URL, the server's ETag (Hugging Face: `X-Linked-Etag`, the LFS sha256), the total size and
//! the byte ranges already on disk. Nothing ever appears at `dest` until the whole file has been
//! fetched, its size checked, its sha256 verified (when one is known), synced and renamed.
//!
//! One run:
//! 1. `GET` with `Range: bytes=0-0`, following redirects by hand so Hugging Face's
//!    `X-Linked-Etag` / `X-Linked-Size` on the redirecting response are seen: this gives the
//!    size, the ETag, and whether ranges work (206).
//! 2. If the sidecar describes the same remote file (URL, size, ETag), only the missing ranges
//!    are fetched; otherwise the `.part` is emptied and the download starts from zero.
//! 3. Free space is checked against the bytes still to come.
//! 4. The missing ranges are split into chunks fetched by several connections, each writing
//!    at its offset with positioned writes. A connection that delivers nothing for
//!    `stall_timeout` is dropped and its range re-requested from where it stopped; connection
//!    errors, 408, 429 and 5xx are retried with exponential backoff and jitter; other 4xx fail
//!    at once. A server that ignores `Range` (200 instead of 206) gets one connection from zero.
//! 5. The sidecar is saved at least every 500 ms, after the `.part` was synced, listing only
//!    ranges whose bytes had been written: a kill leaves a consistent, resumable state.
//! 6. The `.part` is hashed (streamed), compared, synced and renamed to `dest`.
//!
//! Stopping: [`DownloadControl::pause`] keeps the partial state ([`DownloadError::Paused`]),
//! [`DownloadControl::cancel`] deletes it ([`DownloadError::Cancelled`]); dropping the future is
//! a pause without the last checkpoint. A network failure that outlives the retries keeps the
//! partial state too; a size or hash mismatch deletes it.
//!
//! The parts: [`Downloader`] opens the `.part` and hands one call to a `job` (probe, resume or
//! start afresh, verify, rename or clean up, restarts); `probe` is the first request; `pool`
//! runs the connections of one run and saves the sidecar; `connection` is one connection's
//! requests and writes; `retry` classifies failures and backs off; `meter` turns byte counts
//! into progress; `sidecar`, `ranges`, `http` and `fsio` are the formats and system calls they
//! share; `names` guards file names from outside, `error` says why a download failed.

mod connection;
mod error;
mod fsio;
mod http;
mod job;
mod meter;
mod names;
mod pool;
mod probe;
mod ranges;
mod retry;
mod sidecar;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use reqwest::{Client, Url};
use tokio_util::sync::CancellationToken;

pub use error::DownloadError;
pub use fsio::{part_path, sidecar_path};
/// For the library's `verify` and its `<file>.sha256` record.
pub(crate) use fsio::{sha256_file, with_suffix};
pub use names::{model_path, safe_file_name, UnsafeFileName};

use error::io_error;
use http::display_url;
use job::Job;
use sidecar::Sidecar;

/// How often the caller's progress callback runs while bytes flow.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);
/// How long to wait for another download (being torn down) to release the `.part` lock.
const LOCK_WAIT: Duration = Duration::from_secs(1);

/// Settings of a [`Downloader`].
#[derive(Clone, Debug)]
pub struct DownloadConfig {
    /// Parallel ranged connections per download (at least 1). Default 4.
    pub connections: usize,
    /// A connection that delivers no byte for this long is dropped and its range re-requested.
    /// Also the limit for connecting and for the response headers. Default 30 s.
    pub stall_timeout: Duration,
    /// Retries per request after a connection error, stall, 408, 429 or 5xx (reset whenever
    /// bytes arrive). Default 5.
    pub retries: u32,
    /// First retry delay; doubled per retry, capped at 30 s, with ±50 % jitter. Default 500 ms.
    pub backoff: Duration,
    pub user_agent: String,
    /// Size of the pieces the missing bytes are split into. `None`: a quarter of a
    /// connection's share, between 1 MiB and 64 MiB.
    pub chunk_size: Option<u64>,
}

impl Default for DownloadConfig {
    fn default() -> Self {
        Self {
            connections: 4,
            stall_timeout: Duration::from_secs(30),
            retries: 5,
            backoff: Duration::from_millis(500),
            user_agent: concat!("understudy/", env!("CARGO_PKG_VERSION")).to_owned(),
            chunk_size: None,
        }
    }
}

/// One file to fetch.
#[derive(Clone, Debug)]
pub struct DownloadRequest {
    pub url: String,
    /// The final path of the file; `<dest>.part` and `<dest>.part.json` live beside it. Its
    /// directory is created if missing.
    pub dest: PathBuf,
    /// When known, a server size that differs is an error before anything is fetched.
    pub expected_size: Option<u64>,
    /// 64 hex digits. When absent, a Hugging Face `X-Linked-Etag` that is a sha256 is used.
    pub expected_sha256: Option<String>,
    /// Keep a file no sha256 is known for (neither `expected_sha256` nor `X-Linked-Etag`).
    /// Off by default: such a download fails with [`DownloadError::Unverified`] before any byte
    /// is fetched, so the user can be asked first.
    pub allow_unverified: bool,
}

impl DownloadRequest {
    pub fn new(url: impl Into<String>, dest: impl Into<PathBuf>) -> Self {
        Self { url: url.into(), dest: dest.into(), expected_size: None, expected_sha256: None, allow_unverified: false }
    }
}

/// What the download is doing when a [`Progress`] is reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(rename = "DownloadStage"))]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Downloading,
    /// Hashing the finished `.part` (`done` counts hashed bytes).
    Verifying,
}

impl Stage {
    /// The wire word, also the CLI's progress bar message.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Downloading => "downloading",
            Stage::Verifying => "verifying",
        }
    }
}

/// A progress report, at most every 200 ms and once at the end of each stage.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Progress {
    pub stage: Stage,
    /// Bytes on hand (including those from earlier runs), or hashed while verifying.
    pub done: u64,
    pub total: Option<u64>,
    /// Exponentially smoothed rate (time constant about 3 s) of this run.
    pub bytes_per_sec: f64,
    /// Remaining bytes at the smoothed rate; `None` while the total or the rate is unknown.
    pub eta: Option<Duration>,
}

/// The file is at `path`, complete and verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Downloaded {
    pub path: PathBuf,
    pub size: u64,
    /// Lower-case hex sha256 of the file.
    pub sha256: String,
    /// Whether `sha256` was checked against an expected value (given, or `X-Linked-Etag`).
    pub verified: bool,
    /// Bytes that were already in the `.part` from an earlier run and were kept.
    pub resumed_bytes: u64,
}

/// Pause or cancel a running download. Clones share the same state.
///
/// A [`CancellationToken`] converts into a control whose cancellation *pauses*.
#[derive(Clone, Debug, Default)]
pub struct DownloadControl {
    pause: CancellationToken,
    cancel: CancellationToken,
}

impl DownloadControl {
    pub fn new() -> Self {
        Self::default()
    }

    /// Stop, keeping `<dest>.part` and its sidecar for a later resume.
    pub fn pause(&self) {
        self.pause.cancel();
    }

    /// Stop and delete the partial state. Wins over a pause.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    pub fn is_paused(&self) -> bool {
        self.pause.is_cancelled()
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    async fn stopped(&self) {
        tokio::select! {
            _ = self.pause.cancelled() => {}
            _ = self.cancel.cancelled() => {}
        }
    }
}

impl From<CancellationToken> for DownloadControl {
    /// Cancelling `token` pauses the download.
    fn from(token: CancellationToken) -> Self {
        Self { pause: token, cancel: CancellationToken::new() }
    }
}

/// Deletes the partial state of a download to `dest` (`<dest>.part` and its sidecar), e.g.
/// to cancel a paused download. Missing files are fine.
pub fn discard_partial(dest: &Path) -> io::Result<()> {
    for path in [part_path(dest), sidecar_path(dest)] {
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// What a paused or interrupted download to `dest` has kept, from its sidecar: `(bytes on
/// disk, total size)`. `None` when there is no usable partial state. Use this rather than
/// reading the sidecar, whose format is private.
pub fn partial_progress(dest: &Path) -> Option<(u64, u64)> {
    if !part_path(dest).exists() {
        return None;
    }
    let sidecar = Sidecar::load(&sidecar_path(dest))?;
    Some((sidecar.done.covered(), sidecar.identity.total))
}

/// Downloads files over HTTP(S) with parallel ranged connections, resume and verification.
/// Honours `HTTPS_PROXY` / `HTTP_PROXY` / `NO_PROXY`.
#[derive(Clone, Debug)]
pub struct Downloader {
    client: Client,
    config: DownloadConfig,
}

impl Downloader {
    pub fn new(config: DownloadConfig) -> Result<Self, DownloadError> {
        let client = Client::builder()
            .user_agent(config.user_agent.clone())
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(config.stall_timeout)
            .tcp_keepalive(Duration::from_secs(30))
            .build()
            .map_err(|e| DownloadError::Client(http::error_chain(&e)))?;
        Ok(Self { client, config })
    }

    pub fn config(&self) -> &DownloadConfig {
        &self.config
    }

    /// Fetches `req.url` to `req.dest`, resuming a previous partial download of the same
    /// remote file. `progress` is called from this future. See the module docs.
    pub async fn download<P>(&self, req: DownloadRequest, progress: P, control: impl Into<DownloadControl>) -> Result<Downloaded, DownloadError>
    where
        P: Fn(Progress) + Send + Sync,
    {
        let control = control.into();
        let url = parse_url(&req.url)?;
        let expected_sha = match &req.expected_sha256 {
            Some(s) => Some(http::normalize_sha256(s).ok_or_else(|| DownloadError::InvalidSha256(s.clone()))?),
            None => None,
        };
        let part = part_path(&req.dest);
        let dir = match req.dest.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if control.is_cancelled() {
            let dest = req.dest.clone();
            blocking(move || discard_partial(&dest)).await.map_err(|e| io_error("delete", &part, e))?;
            return Err(DownloadError::Cancelled);
        }
        let file = open_part(&dir, &part, &req.dest).await?;
        tracing::info!(url = %display_url(&url), dest = %req.dest.display(), "download starting");
        let job =
            Job { dl: self, req: &req, url, expected_sha, sidecar: sidecar_path(&req.dest), part, dir, file: Arc::new(file), control, progress: &progress };
        let outcome = job.run().await;
        job.finish(outcome).await
    }
}

/// Creates the models dir (owner-only, 0700, whatever the umask) and opens `part` locked, so
/// no other download writes it at the same time.
async fn open_part(dir: &Path, part: &Path, dest: &Path) -> Result<std::fs::File, DownloadError> {
    let (dir, part_) = (dir.to_path_buf(), part.to_path_buf());
    blocking(move || {
        let mut dirs = std::fs::DirBuilder::new();
        dirs.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut dirs, 0o700);
        dirs.create(&dir)?;
        fsio::open_locked(&part_, LOCK_WAIT)
    })
    .await
    .map_err(|e| io_error("open", part, e))?
    .ok_or_else(|| DownloadError::Busy { path: dest.to_path_buf() })
}

fn parse_url(raw: &str) -> Result<Url, DownloadError> {
    let invalid = |reason: String| DownloadError::InvalidUrl { url: raw.to_owned(), reason };
    let url = Url::parse(raw).map_err(|e| invalid(e.to_string()))?;
    match url.scheme() {
        "http" | "https" => Ok(url),
        other => Err(invalid(format!("unsupported scheme {other:?}"))),
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> io::Result<T> + Send + 'static) -> io::Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(io::Error::other)?
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
