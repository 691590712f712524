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

mod fsio;
mod http;
mod ranges;
mod sidecar;

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use reqwest::header::{ACCEPT_ENCODING, CONTENT_RANGE, LAST_MODIFIED, LOCATION, RANGE};
use reqwest::{Client, Response, StatusCode, Url};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use fsio::{part_path, sidecar_path};
/// For the library's `verify` and its `<file>.sha256` record.
pub(crate) use fsio::{sha256_file, with_suffix};

use http::display_url;
use ranges::RangeSet;
use sidecar::{Identity, Sidecar};

/// How often the caller's progress callback runs while bytes flow.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);
/// How often the sidecar is saved (if anything changed).
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);
/// A connection writes what it received once it holds this much ...
const WRITE_BUFFER: usize = 256 * 1024;
/// ... or once its oldest unwritten byte is this old.
const WRITE_EVERY: Duration = Duration::from_millis(250);
const MAX_REDIRECTS: usize = 10;
/// Re-probes after the remote file changed or a signed link expired mid-download.
const MAX_RESTARTS: u32 = 3;
/// How long to wait for another download (being torn down) to release the `.part` lock.
const LOCK_WAIT: Duration = Duration::from_secs(1);
const MIB: u64 = 1024 * 1024;

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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Downloading,
    /// Hashing the finished `.part` (`done` counts hashed bytes).
    Verifying,
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

/// Why a download did not produce the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DownloadError {
    /// Stopped by [`DownloadControl::pause`]; the partial state is kept.
    #[error("download paused; it resumes where it stopped")]
    Paused,
    /// Stopped by [`DownloadControl::cancel`]; the partial state is deleted.
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
    fn discards_partial(&self) -> bool {
        matches!(self, Self::SizeMismatch { .. } | Self::HashMismatch { .. } | Self::Cancelled)
    }
}

/// A model file name that is not safe to create inside the models directory.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unsafe model file name {name:?}: {reason}")]
pub struct UnsafeFileName {
    pub name: String,
    pub reason: &'static str,
}

/// Checks that a (remote-provided) file name stays inside the directory it is joined to and is
/// a `.gguf`: no path separators, `..`, NUL or control characters, no leading dot, no
/// characters or device names Windows refuses, at most 255 bytes. Returns it unchanged.
pub fn safe_file_name(name: &str) -> Result<String, UnsafeFileName> {
    let fail = |reason| Err(UnsafeFileName { name: name.to_owned(), reason });
    if name.is_empty() {
        return fail("empty");
    }
    if name.len() > 255 {
        return fail("longer than 255 bytes");
    }
    if name.contains(['/', '\\']) {
        return fail("contains a path separator");
    }
    if name.contains('\0') {
        return fail("contains NUL");
    }
    if name.contains("..") {
        return fail("contains \"..\"");
    }
    if name.starts_with('.') {
        return fail("starts with a dot");
    }
    if name.chars().any(char::is_control) {
        return fail("contains a control character");
    }
    if name.contains([':', '*', '?', '"', '<', '>', '|']) {
        return fail("contains a character Windows does not allow in file names");
    }
    if name.ends_with([' ', '.']) {
        return fail("ends with a space or a dot");
    }
    let lower = name.to_ascii_lowercase();
    let Some(stem) = lower.strip_suffix(".gguf") else {
        return fail("not a .gguf file");
    };
    let base = stem.split('.').next().unwrap_or(stem).trim_end();
    const RESERVED: [&str; 4] = ["con", "prn", "aux", "nul"];
    let numbered = |p: &str| base.strip_prefix(p).is_some_and(|d| d.len() == 1 && d.as_bytes()[0].is_ascii_digit() && d != "0");
    if RESERVED.contains(&base) || numbered("com") || numbered("lpt") {
        return fail("a reserved device name on Windows");
    }
    Ok(name.to_owned())
}

/// The one way a file name from outside (IPC, the CLI, the catalog, the hub) becomes a path in
/// the models dir `dir`: checked by [`safe_file_name`], then joined.
pub fn model_path(dir: &Path, name: &str) -> Result<PathBuf, UnsafeFileName> {
    Ok(dir.join(safe_file_name(name)?))
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
        let sidecar = sidecar_path(&req.dest);
        let dir = match req.dest.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if control.is_cancelled() {
            let dest = req.dest.clone();
            blocking(move || discard_partial(&dest)).await.map_err(|e| io_error("delete", &part, e))?;
            return Err(DownloadError::Cancelled);
        }
        let file = {
            let (dir, part_) = (dir.clone(), part.clone());
            blocking(move || {
                // A models dir made here is owner-only (0700) whatever the umask.
                let mut dirs = std::fs::DirBuilder::new();
                dirs.recursive(true);
                #[cfg(unix)]
                std::os::unix::fs::DirBuilderExt::mode(&mut dirs, 0o700);
                dirs.create(&dir)?;
                fsio::open_locked(&part_, LOCK_WAIT)
            })
            .await
            .map_err(|e| io_error("open", &part, e))?
            .ok_or_else(|| DownloadError::Busy { path: req.dest.clone() })?
        };
        tracing::info!(url = %display_url(&url), dest = %req.dest.display(), "download starting");

        let job = Job {
            dl: self,
            req: &req,
            url,
            expected_sha,
            part: part.clone(),
            sidecar: sidecar.clone(),
            dir: dir.clone(),
            file: Arc::new(file),
            control: control.clone(),
            progress: &progress,
        };
        let mut restarts = 0;
        let outcome = loop {
            match job.attempt().await {
                Err(Flow::Restart(why)) if restarts < MAX_RESTARTS => {
                    restarts += 1;
                    tracing::warn!(url = %display_url(&job.url), why, "restarting the download");
                }
                Err(Flow::Restart(why)) => {
                    break Err(DownloadError::BadResponse { url: display_url(&job.url), reason: format!("{why} (gave up after {MAX_RESTARTS} restarts)") })
                }
                Err(Flow::RangeIgnored) => {
                    break Err(DownloadError::BadResponse { url: display_url(&job.url), reason: "the server stopped honouring Range requests".into() })
                }
                Err(Flow::Stopped) if control.is_cancelled() => break Err(DownloadError::Cancelled),
                Err(Flow::Stopped) => break Err(DownloadError::Paused),
                Err(Flow::Fatal(e)) => break Err(e),
                Ok(done) => break Ok(done),
            }
        };
        let Job { file, .. } = job;

        match outcome {
            Ok(done) => {
                let dest = req.dest.clone();
                blocking(move || {
                    // Unix: rename while still holding the lock, so a download waiting for it
                    // finds the path gone rather than writing into the finished file. Windows
                    // cannot rename an open file; close it first.
                    #[cfg(not(unix))]
                    drop(file);
                    std::fs::rename(&part, &dest)?;
                    #[cfg(unix)]
                    drop(file);
                    fsio::sync_dir(&dir)?;
                    match std::fs::remove_file(&sidecar) {
                        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                        _ => Ok(()),
                    }
                })
                .await
                .map_err(|e| io_error("move the finished download to", &req.dest, e))?;
                tracing::info!(dest = %req.dest.display(), size = done.size, sha256 = %done.sha256, "download complete");
                Ok(Downloaded { path: req.dest, size: done.size, sha256: done.sha256, verified: done.verified, resumed_bytes: done.resumed_bytes })
            }
            Err(e) if e.discards_partial() => {
                let dest = req.dest.clone();
                let deleted = blocking(move || {
                    #[cfg(not(unix))]
                    drop(file);
                    let deleted = discard_partial(&dest);
                    #[cfg(unix)]
                    drop(file);
                    deleted
                });
                if let Err(del) = deleted.await {
                    tracing::warn!(path = %part.display(), error = %del, "cannot delete the partial download");
                }
                tracing::info!(dest = %req.dest.display(), error = %e, "download failed; partial file deleted");
                Err(e)
            }
            Err(e @ DownloadError::Unverified { .. }) => {
                // Refused before any byte came: drop the empty `.part` this run opened, but keep
                // an earlier (allowed) run's partial for when the user says yes.
                drop(file);
                if std::fs::metadata(&part).is_ok_and(|m| m.len() == 0) && !sidecar.exists() {
                    let _ = std::fs::remove_file(&part);
                }
                tracing::info!(dest = %req.dest.display(), error = %e, "download refused");
                Err(e)
            }
            Err(e) => {
                tracing::info!(dest = %req.dest.display(), error = %e, "download stopped; partial file kept");
                Err(e)
            }
        }
    }
}

fn parse_url(raw: &str) -> Result<Url, DownloadError> {
    let invalid = |reason: String| DownloadError::InvalidUrl { url: raw.to_owned(), reason };
    let url = Url::parse(raw).map_err(|e| invalid(e.to_string()))?;
    match url.scheme() {
        "http" | "https" => Ok(url),
        other => Err(invalid(format!("unsupported scheme {other:?}"))),
    }
}

fn io_error(action: &'static str, path: &Path, source: io::Error) -> DownloadError {
    DownloadError::Io { action, path: path.to_path_buf(), source }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> io::Result<T> + Send + 'static) -> io::Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(io::Error::other)?
}

/// How a step ended, when not with its result.
#[derive(Debug)]
enum Flow {
    /// Paused or cancelled (or halted because a sibling connection failed).
    Stopped,
    /// The remote file changed or its signed link expired: probe again, resume if the sidecar
    /// still matches.
    Restart(&'static str),
    /// A 200 to a ranged request: only one connection from zero can work.
    RangeIgnored,
    Fatal(DownloadError),
}

/// A request's failure: worth retrying (`Retry`) or not.
#[derive(Debug)]
enum Failure {
    Retry { message: String, retry_after: Option<Duration> },
    Flow(Flow),
}

impl Failure {
    fn retry(message: impl Into<String>) -> Self {
        Self::Retry { message: message.into(), retry_after: None }
    }
}

impl From<Flow> for Failure {
    fn from(f: Flow) -> Self {
        Self::Flow(f)
    }
}

impl From<DownloadError> for Failure {
    fn from(e: DownloadError) -> Self {
        Self::Flow(Flow::Fatal(e))
    }
}

/// Classifies a status that is not the one wanted.
fn status_failure(url: &Url, resp: &Response) -> Failure {
    let status = resp.status();
    if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT || status == StatusCode::TOO_MANY_REQUESTS {
        Failure::Retry { message: format!("HTTP {status}"), retry_after: http::retry_after(resp.headers()) }
    } else {
        DownloadError::Http { url: display_url(url), status: status.as_u16() }.into()
    }
}

/// Sends `req`, giving up after `stall` without response headers or when `halt` fires.
async fn send(req: reqwest::RequestBuilder, stall: Duration, halt: &CancellationToken) -> Result<Response, Failure> {
    let sent = tokio::select! {
        biased;
        _ = halt.cancelled() => return Err(Flow::Stopped.into()),
        r = tokio::time::timeout(stall, req.header(ACCEPT_ENCODING, "identity").send()) => r,
    };
    match sent {
        Err(_) => Err(Failure::retry(format!("no response within {}", secs(stall)))),
        Ok(Err(e)) if e.is_builder() => {
            Err(DownloadError::BadResponse { url: e.url().map(display_url).unwrap_or_default(), reason: http::error_chain(&e) }.into())
        }
        Ok(Err(e)) => Err(Failure::retry(http::error_chain(&e))),
        Ok(Ok(resp)) => Ok(resp),
    }
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// Counts a request's retries and sleeps the backoff between them.
struct Retrier<'a> {
    config: &'a DownloadConfig,
    url: &'a Url,
    halt: &'a CancellationToken,
    attempt: u32,
}

impl<'a> Retrier<'a> {
    fn new(config: &'a DownloadConfig, url: &'a Url, halt: &'a CancellationToken) -> Self {
        Self { config, url, halt, attempt: 0 }
    }

    /// Bytes arrived: the next failure starts a fresh series of retries.
    fn progressed(&mut self) {
        self.attempt = 0;
    }

    /// `Ok` after the backoff when `failure` is worth another try; the flow to end with
    /// otherwise.
    async fn failed(&mut self, failure: Failure) -> Result<(), Flow> {
        let (message, retry_after) = match failure {
            Failure::Flow(f) => return Err(f),
            Failure::Retry { message, retry_after } => (message, retry_after),
        };
        self.attempt += 1;
        if self.attempt > self.config.retries {
            return Err(Flow::Fatal(DownloadError::Network { url: display_url(self.url), attempts: self.attempt, message }));
        }
        let delay = retry_after.unwrap_or_else(|| http::backoff(self.config.backoff, self.attempt - 1, fastrand::f64()));
        tracing::warn!(
            url = %display_url(self.url),
            attempt = self.attempt,
            error = %message,
            delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            "retrying"
        );
        tokio::select! {
            _ = self.halt.cancelled() => Err(Flow::Stopped),
            _ = tokio::time::sleep(delay) => Ok(()),
        }
    }
}

/// What the first request learned.
#[derive(Debug)]
struct Probe {
    final_url: Url,
    redirected: bool,
    linked_etag: Option<String>,
    linked_size: Option<u64>,
    etag: Option<String>,
    last_modified: Option<String>,
    kind: ProbeKind,
}

#[derive(Debug)]
enum ProbeKind {
    /// 206: ranges work.
    Ranged { total: Option<u64> },
    /// 200: the server ignores `Range`; this response is the whole file.
    Full { resp: Response, total: Option<u64> },
    /// 416 with `bytes */0`: an empty file.
    Empty,
}

/// Finished and verified, not yet renamed.
#[derive(Debug)]
struct Finished {
    size: u64,
    sha256: String,
    verified: bool,
    resumed_bytes: u64,
}

/// One call of [`Downloader::download`].
struct Job<'a, P> {
    dl: &'a Downloader,
    req: &'a DownloadRequest,
    url: Url,
    expected_sha: Option<String>,
    part: PathBuf,
    sidecar: PathBuf,
    dir: PathBuf,
    file: Arc<File>,
    control: DownloadControl,
    progress: &'a P,
}

impl<P: Fn(Progress) + Send + Sync> Job<'_, P> {
    fn config(&self) -> &DownloadConfig {
        &self.dl.config
    }

    async fn attempt(&self) -> Result<Finished, Flow> {
        let probe = self.probe().await?;
        let linked_sha = probe.linked_etag.as_deref().and_then(http::linked_sha256);
        if let (Some(want), Some(upstream)) = (&self.expected_sha, &linked_sha) {
            if want != upstream {
                return Err(Flow::Fatal(DownloadError::HashMismatch { url: display_url(&self.url), expected: want.clone(), actual: upstream.clone() }));
            }
        }
        let expected_sha = self.expected_sha.clone().or(linked_sha);
        if expected_sha.is_none() && !self.req.allow_unverified {
            return Err(Flow::Fatal(DownloadError::Unverified { url: display_url(&self.url) }));
        }
        let total = match &probe.kind {
            ProbeKind::Ranged { total } | ProbeKind::Full { total, .. } => total.or(probe.linked_size),
            ProbeKind::Empty => Some(0),
        };
        if let (Some(expected), Some(actual)) = (self.req.expected_size, total) {
            if expected != actual {
                return Err(Flow::Fatal(DownloadError::SizeMismatch { url: display_url(&self.url), expected, actual }));
            }
        }
        let identity = total.map(|total| Identity {
            url: self.req.url.clone(),
            etag: probe.linked_etag.clone().or_else(|| probe.etag.clone()),
            last_modified: probe.last_modified.clone(),
            total,
        });
        let Probe { final_url, redirected, etag, kind, .. } = probe;
        let target = Target { url: final_url, redirected, etag };

        let (size, resumed_bytes) = match (kind, identity) {
            (ProbeKind::Ranged { .. }, Some(identity)) => {
                let resumed = self.resume_state(&identity).await?;
                let covered = resumed.covered();
                match self.run_ranged(&target, identity.clone(), resumed).await {
                    Ok(()) => (identity.total, covered),
                    Err(Flow::RangeIgnored) => {
                        tracing::warn!(url = %display_url(&target.url), "server ignored Range; one connection from zero");
                        (self.run_single(&target, None, Some(identity)).await?, 0)
                    }
                    Err(f) => return Err(f),
                }
            }
            (ProbeKind::Full { resp, .. }, identity) => {
                tracing::info!(url = %display_url(&target.url), "server does not support ranges; one connection");
                (self.run_single(&target, Some(resp), identity).await?, 0)
            }
            (ProbeKind::Ranged { .. }, None) => (self.run_single(&target, None, None).await?, 0),
            (ProbeKind::Empty, _) => {
                let file = self.file.clone();
                blocking(move || file.set_len(0)).await.map_err(|e| Flow::Fatal(io_error("truncate", &self.part, e)))?;
                (0, 0)
            }
        };
        if let Some(expected) = self.req.expected_size {
            if expected != size {
                return Err(Flow::Fatal(DownloadError::SizeMismatch { url: display_url(&self.url), expected, actual: size }));
            }
        }
        self.verify(size, expected_sha, resumed_bytes).await
    }

    /// The first request: `GET` with `Range: bytes=0-0`, redirects followed by hand.
    async fn probe(&self) -> Result<Probe, Flow> {
        let halt = CancellationToken::new();
        let probe = async {
            let mut retry = Retrier::new(self.config(), &self.url, &halt);
            loop {
                match self.probe_once(&halt).await {
                    Ok(p) => break Ok(p),
                    Err(f) => retry.failed(f).await?,
                }
            }
        };
        let result = tokio::select! {
            r = probe => r,
            _ = self.control.stopped() => Err(Flow::Stopped),
        };
        if let Ok(p) = &result {
            tracing::debug!(
                url = %display_url(&p.final_url),
                linked_etag = ?p.linked_etag,
                etag = ?p.etag,
                ranged = matches!(p.kind, ProbeKind::Ranged { .. }),
                "probed"
            );
        }
        result
    }

    async fn probe_once(&self, halt: &CancellationToken) -> Result<Probe, Failure> {
        let mut url = self.url.clone();
        let mut linked_etag = None;
        let mut linked_size = None;
        for hop in 0..=MAX_REDIRECTS {
            let req = self.dl.client.get(url.clone()).header(RANGE, "bytes=0-0");
            let resp = send(req, self.config().stall_timeout, halt).await?;
            let headers = resp.headers();
            if linked_etag.is_none() {
                linked_etag = http::header_str(headers, "x-linked-etag").map(str::to_owned);
            }
            if linked_size.is_none() {
                linked_size = http::header_str(headers, "x-linked-size").and_then(|v| v.parse().ok());
            }
            let status = resp.status();
            if matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308) {
                let location = http::header_str(headers, LOCATION.as_str())
                    .ok_or_else(|| DownloadError::BadResponse { url: display_url(&url), reason: format!("HTTP {status} without a Location") })?;
                let next = url
                    .join(location)
                    .map_err(|e| DownloadError::BadResponse { url: display_url(&url), reason: format!("bad redirect Location {location:?}: {e}") })?;
                if !matches!(next.scheme(), "http" | "https") {
                    return Err(DownloadError::BadResponse { url: display_url(&url), reason: format!("redirect to {}", next.scheme()) }.into());
                }
                // An https download stays https: a hop over http could swap the file (and, with
                // no sha256 known, nothing would notice).
                if self.url.scheme() == "https" && next.scheme() == "http" {
                    return Err(DownloadError::InsecureRedirect { from: display_url(&url), to: display_url(&next) }.into());
                }
                tracing::debug!(from = %display_url(&url), to = %display_url(&next), hop, "redirect");
                url = next;
                continue;
            }
            let etag = http::etag(headers);
            let last_modified = http::header_str(headers, LAST_MODIFIED.as_str()).map(str::to_owned);
            let content_range = http::header_str(headers, CONTENT_RANGE.as_str()).map(str::to_owned);
            let kind = match status {
                StatusCode::PARTIAL_CONTENT => {
                    let cr = content_range
                        .as_deref()
                        .and_then(http::parse_content_range)
                        .ok_or_else(|| DownloadError::BadResponse { url: display_url(&url), reason: "206 without a valid Content-Range".into() })?;
                    ProbeKind::Ranged { total: cr.total }
                }
                StatusCode::OK => {
                    let total = resp.content_length();
                    ProbeKind::Full { resp, total }
                }
                StatusCode::RANGE_NOT_SATISFIABLE => match content_range.as_deref().and_then(http::parse_unsatisfied_range) {
                    Some(0) => ProbeKind::Empty,
                    _ => {
                        return Err(DownloadError::BadResponse { url: display_url(&url), reason: "416 Range Not Satisfiable for the first byte".into() }.into())
                    }
                },
                _ => return Err(status_failure(&url, &resp)),
            };
            return Ok(Probe { redirected: url != self.url, final_url: url, linked_etag, linked_size, etag, last_modified, kind });
        }
        Err(DownloadError::BadResponse { url: display_url(&self.url), reason: format!("more than {MAX_REDIRECTS} redirects") }.into())
    }

    /// The ranges of the `.part` to keep: those of a sidecar describing the same remote file;
    /// otherwise none (and the `.part` is emptied).
    async fn resume_state(&self, identity: &Identity) -> Result<RangeSet, Flow> {
        let sidecar_path = self.sidecar.clone();
        let file = self.file.clone();
        let (saved, len) =
            blocking(move || Ok((Sidecar::load(&sidecar_path), file.metadata()?.len()))).await.map_err(|e| Flow::Fatal(io_error("read", &self.part, e)))?;
        match saved {
            Some(s) if s.identity.same_file(identity) && len == identity.total => {
                tracing::info!(
                    dest = %self.req.dest.display(),
                    have = s.done.covered(),
                    total = identity.total,
                    "resuming a partial download"
                );
                Ok(s.done)
            }
            saved => {
                if let Some(s) = saved {
                    tracing::info!(
                        dest = %self.req.dest.display(),
                        was = ?s.identity,
                        now = ?identity,
                        "the remote file changed since the partial download; starting from zero"
                    );
                } else if len > 0 {
                    tracing::info!(dest = %self.req.dest.display(), "partial file without usable state; starting from zero");
                }
                let file = self.file.clone();
                blocking(move || file.set_len(0)).await.map_err(|e| Flow::Fatal(io_error("truncate", &self.part, e)))?;
                Ok(RangeSet::new())
            }
        }
    }

    async fn check_space(&self, needed: u64) -> Result<(), Flow> {
        let dir = self.dir.clone();
        match blocking(move || fsio::available_space(&dir)).await {
            Ok(available) if available < needed => Err(Flow::Fatal(DownloadError::NoSpace { dir: self.dir.clone(), needed, available })),
            Ok(_) => Ok(()),
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "cannot tell the free disk space");
                Ok(())
            }
        }
    }

    fn shared(&self, target: &Target, identity: Option<Identity>, done: RangeSet, queue: VecDeque<(u64, u64)>) -> Arc<Shared> {
        let covered = done.covered();
        Arc::new(Shared {
            client: self.dl.client.clone(),
            config: self.dl.config.clone(),
            target: target.clone(),
            identity,
            file: self.file.clone(),
            part: self.part.clone(),
            dir: self.dir.clone(),
            done: Mutex::new(done),
            dirty: AtomicBool::new(true),
            have: AtomicU64::new(covered),
            received: AtomicU64::new(0),
            queue: Mutex::new(queue),
            halt: CancellationToken::new(),
        })
    }

    /// Fetches the gaps of `done` over parallel ranged connections.
    async fn run_ranged(&self, target: &Target, identity: Identity, done: RangeSet) -> Result<(), Flow> {
        let total = identity.total;
        let gaps = done.missing(total);
        let remaining: u64 = gaps.iter().map(|&(s, e)| e - s).sum();
        self.check_space(remaining).await?;
        let connections = self.config().connections.max(1);
        let chunk = self.config().chunk_size.unwrap_or_else(|| (remaining / (connections as u64 * 4)).clamp(MIB, 64 * MIB));
        let queue: VecDeque<_> = ranges::split(&gaps, chunk).into();
        let workers = connections.min(queue.len()).max(1);
        let file = self.file.clone();
        blocking(move || file.set_len(total)).await.map_err(|e| Flow::Fatal(io_error("allocate", &self.part, e)))?;
        tracing::debug!(total, remaining, chunks = queue.len(), workers, "fetching ranges");
        let shared = self.shared(target, Some(identity), done, queue);
        shared.checkpoint(&self.sidecar).await.map_err(|e| Flow::Fatal(io_error("save", &self.sidecar, e)))?;
        let kinds = (0..workers).map(|_| WorkerKind::Ranged).collect();
        self.drive(&shared, kinds).await?;
        let complete = lock(&shared.done).is_complete(total);
        if complete {
            Ok(())
        } else {
            Err(Flow::Fatal(DownloadError::BadResponse { url: display_url(&target.url), reason: "ranges missing after the download".into() }))
        }
    }

    /// One connection from zero (the server ignores `Range`, or does not state the size).
    /// Returns the size.
    async fn run_single(&self, target: &Target, first: Option<Response>, identity: Option<Identity>) -> Result<u64, Flow> {
        let file = self.file.clone();
        blocking(move || file.set_len(0)).await.map_err(|e| Flow::Fatal(io_error("truncate", &self.part, e)))?;
        if let Some(id) = &identity {
            self.check_space(id.total).await?;
        }
        let shared = self.shared(target, identity, RangeSet::new(), VecDeque::new());
        if shared.identity.is_some() {
            shared.checkpoint(&self.sidecar).await.map_err(|e| Flow::Fatal(io_error("save", &self.sidecar, e)))?;
        } else {
            let sidecar = self.sidecar.clone();
            let _ = blocking(move || std::fs::remove_file(sidecar)).await;
        }
        self.drive(&shared, vec![WorkerKind::Single(first)]).await?;
        let size = lock(&shared.done).covered();
        Ok(size)
    }

    /// Runs the workers to completion while reporting progress and saving the sidecar;
    /// stops them all at a pause, a cancel or the first failure.
    async fn drive(&self, shared: &Arc<Shared>, kinds: Vec<WorkerKind>) -> Result<(), Flow> {
        let mut workers = JoinSet::new();
        for kind in kinds {
            let shared = shared.clone();
            workers.spawn(async move {
                match kind {
                    WorkerKind::Ranged => shared.ranged_worker().await,
                    WorkerKind::Single(first) => shared.single_worker(first).await,
                }
            });
        }
        let persist_stop = CancellationToken::new();
        // In a JoinSet so that dropping this future (a kill, in effect) aborts it too.
        let mut persister = JoinSet::new();
        persister.spawn(shared.clone().persist_loop(self.sidecar.clone(), persist_stop.clone()));

        let mut meter = Meter::new(Instant::now(), shared.received.load(Ordering::Relaxed));
        let mut tick = tokio::time::interval(PROGRESS_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut outcome: Result<(), Flow> = Ok(());
        loop {
            tokio::select! {
                joined = workers.join_next() => match joined {
                    None => break,
                    Some(Ok(Ok(()))) => {}
                    Some(Ok(Err(flow))) => {
                        merge(&mut outcome, flow);
                        shared.halt.cancel();
                    }
                    Some(Err(e)) => {
                        merge(&mut outcome, Flow::Fatal(io_error("write", &self.part, io::Error::other(e))));
                        shared.halt.cancel();
                    }
                },
                _ = self.control.stopped(), if !shared.halt.is_cancelled() => {
                    merge(&mut outcome, Flow::Stopped);
                    shared.halt.cancel();
                }
                _ = tick.tick() => {
                    (self.progress)(meter.progress(Stage::Downloading, shared.have(), shared.total(), shared.received.load(Ordering::Relaxed)));
                }
            }
        }
        persist_stop.cancel();
        while persister.join_next().await.is_some() {}
        shared.dirty.store(true, Ordering::Relaxed);
        if let Err(e) = shared.checkpoint(&self.sidecar).await {
            merge(&mut outcome, Flow::Fatal(io_error("save", &self.sidecar, e)));
        }
        (self.progress)(meter.progress(Stage::Downloading, shared.have(), shared.total(), shared.received.load(Ordering::Relaxed)));
        outcome
    }

    /// Hashes the `.part`, compares, and syncs it.
    async fn verify(&self, size: u64, expected: Option<String>, resumed_bytes: u64) -> Result<Finished, Flow> {
        let actual_len = self.file.metadata().map_err(|e| Flow::Fatal(io_error("read", &self.part, e)))?.len();
        if actual_len != size {
            return Err(Flow::Fatal(DownloadError::SizeMismatch { url: display_url(&self.url), expected: size, actual: actual_len }));
        }
        let hashed = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let _stop_on_drop = StopOnDrop(stop.clone());
        let mut task = {
            let (file, hashed, stop) = (self.file.clone(), hashed.clone(), stop.clone());
            tokio::task::spawn_blocking(move || {
                let sum = fsio::sha256_file(&file, &hashed, &stop)?;
                if sum.is_some() {
                    file.sync_all()?;
                }
                Ok::<_, io::Error>(sum)
            })
        };
        let mut meter = Meter::new(Instant::now(), 0);
        let mut tick = tokio::time::interval(PROGRESS_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let result = loop {
            tokio::select! {
                r = &mut task => break r,
                _ = self.control.stopped(), if !stop.load(Ordering::Relaxed) => stop.store(true, Ordering::Relaxed),
                _ = tick.tick() => {
                    let n = hashed.load(Ordering::Relaxed);
                    (self.progress)(meter.progress(Stage::Verifying, n, Some(size), n));
                }
            }
        };
        let sum = match result.map_err(io::Error::other).and_then(|r| r) {
            Ok(Some(sum)) => sum,
            Ok(None) => return Err(Flow::Stopped),
            Err(e) => return Err(Flow::Fatal(io_error("read", &self.part, e))),
        };
        (self.progress)(meter.progress(Stage::Verifying, size, Some(size), size));
        if let Some(expected) = &expected {
            if *expected != sum {
                return Err(Flow::Fatal(DownloadError::HashMismatch { url: display_url(&self.url), expected: expected.clone(), actual: sum }));
            }
        }
        Ok(Finished { size, sha256: sum, verified: expected.is_some(), resumed_bytes })
    }
}

/// Raises the flag when dropped: a dropped download future stops its hashing thread.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Keeps the first real failure; a stop only replaces success.
fn merge(outcome: &mut Result<(), Flow>, new: Flow) {
    let replace = match outcome {
        Ok(()) => true,
        Err(Flow::Stopped) => !matches!(new, Flow::Stopped),
        Err(_) => false,
    };
    if replace {
        *outcome = Err(new);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Where the bytes come from after the probe.
#[derive(Clone, Debug)]
struct Target {
    /// After redirects.
    url: Url,
    /// Whether `url` came from a redirect (a signed link that may expire).
    redirected: bool,
    /// The final response's ETag: a ranged response with another one means the file changed.
    etag: Option<String>,
}

enum WorkerKind {
    Ranged,
    Single(Option<Response>),
}

/// State the connections of one run share.
#[derive(Debug)]
struct Shared {
    client: Client,
    config: DownloadConfig,
    target: Target,
    /// `None`: the size is unknown, so there is no sidecar (and no resume).
    identity: Option<Identity>,
    file: Arc<File>,
    part: PathBuf,
    dir: PathBuf,
    /// Written ranges.
    done: Mutex<RangeSet>,
    /// `done` changed since the last checkpoint.
    dirty: AtomicBool,
    /// Bytes on hand, counted on arrival (for progress).
    have: AtomicU64,
    /// Bytes received this run, never decreasing (for the rate).
    received: AtomicU64,
    /// Chunks not yet taken by a connection.
    queue: Mutex<VecDeque<(u64, u64)>>,
    /// Stops every connection of this run.
    halt: CancellationToken,
}

impl Shared {
    fn total(&self) -> Option<u64> {
        self.identity.as_ref().map(|i| i.total)
    }

    fn have(&self) -> u64 {
        self.have.load(Ordering::Relaxed)
    }

    /// Saves the sidecar if anything changed: the `.part` is synced first, so every range the
    /// sidecar lists is on disk.
    async fn checkpoint(&self, path: &Path) -> io::Result<()> {
        let Some(identity) = &self.identity else { return Ok(()) };
        if !self.dirty.swap(false, Ordering::Relaxed) {
            return Ok(());
        }
        let sidecar = Sidecar::new(identity.clone(), lock(&self.done).clone());
        let (file, path) = (self.file.clone(), path.to_path_buf());
        let result = blocking(move || {
            file.sync_data()?;
            sidecar.save(&path)
        })
        .await;
        if result.is_err() {
            self.dirty.store(true, Ordering::Relaxed);
        }
        result
    }

    async fn persist_loop(self: Arc<Self>, path: PathBuf, stop: CancellationToken) {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(CHECKPOINT_EVERY) => {}
            }
            if let Err(e) = self.checkpoint(&path).await {
                tracing::warn!(path = %path.display(), error = %e, "cannot save the download state");
            }
        }
    }

    fn next_chunk(&self) -> Option<(u64, u64)> {
        lock(&self.queue).pop_front()
    }

    async fn ranged_worker(self: Arc<Self>) -> Result<(), Flow> {
        let mut buf = Vec::with_capacity(WRITE_BUFFER);
        while let Some((start, end)) = self.next_chunk() {
            let mut retry = Retrier::new(&self.config, &self.target.url, &self.halt);
            let mut pos = start;
            // Each request continues from what the previous one wrote; a server may also
            // answer with less than asked.
            while pos < end {
                let before = pos;
                let result = self.fetch_range(&mut pos, end, &mut buf).await;
                if pos > before {
                    retry.progressed();
                }
                if let Err(f) = result {
                    retry.failed(f).await?;
                }
            }
        }
        Ok(())
    }

    /// One request for `[*pos, end)`; advances `*pos` past what was written.
    async fn fetch_range(&self, pos: &mut u64, end: u64, buf: &mut Vec<u8>) -> Result<(), Failure> {
        let url = &self.target.url;
        let req = self.client.get(url.clone()).header(RANGE, format!("bytes={}-{}", *pos, end - 1));
        let resp = send(req, self.config.stall_timeout, &self.halt).await?;
        match resp.status() {
            StatusCode::PARTIAL_CONTENT => {}
            StatusCode::OK => return Err(Flow::RangeIgnored.into()),
            StatusCode::RANGE_NOT_SATISFIABLE => return Err(Flow::Restart("the file on the server got shorter").into()),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::GONE if self.target.redirected => {
                return Err(Flow::Restart("the download link expired").into())
            }
            _ => return Err(status_failure(url, &resp)),
        }
        let headers = resp.headers();
        let cr = http::header_str(headers, CONTENT_RANGE.as_str())
            .and_then(http::parse_content_range)
            .ok_or_else(|| DownloadError::BadResponse { url: display_url(url), reason: "206 without a valid Content-Range".into() })?;
        if cr.total != self.total() {
            return Err(Flow::Restart("the file on the server changed size").into());
        }
        if let (Some(was), Some(now)) = (&self.target.etag, http::etag(headers)) {
            if *was != now {
                return Err(Flow::Restart("the file on the server changed (ETag)").into());
            }
        }
        if cr.first != *pos {
            return Err(
                DownloadError::BadResponse { url: display_url(url), reason: format!("asked for bytes from {}, got {}-{}", *pos, cr.first, cr.last) }.into()
            );
        }
        let limit = end.min(cr.last + 1);
        self.stream_body(resp, pos, Some(limit), buf).await?;
        if *pos < limit {
            return Err(Failure::retry(format!("connection closed at byte {} of {}-{}", *pos, cr.first, cr.last)));
        }
        Ok(())
    }

    /// The whole file over one connection; any failure starts over from zero.
    async fn single_worker(self: Arc<Self>, mut first: Option<Response>) -> Result<(), Flow> {
        let mut buf = Vec::with_capacity(WRITE_BUFFER);
        let mut retry = Retrier::new(&self.config, &self.target.url, &self.halt);
        let mut fresh = true;
        loop {
            if !fresh {
                self.reset().await?;
            }
            fresh = false;
            match self.fetch_whole(first.take(), &mut buf).await {
                Ok(()) => return Ok(()),
                Err(f) => retry.failed(f).await?,
            }
        }
    }

    async fn fetch_whole(&self, first: Option<Response>, buf: &mut Vec<u8>) -> Result<(), Failure> {
        let resp = match first {
            Some(r) => r,
            None => {
                let url = &self.target.url;
                let resp = send(self.client.get(url.clone()), self.config.stall_timeout, &self.halt).await?;
                if resp.status() != StatusCode::OK {
                    return Err(status_failure(url, &resp));
                }
                resp
            }
        };
        let mut pos = 0;
        self.stream_body(resp, &mut pos, self.total(), buf).await?;
        match self.total() {
            Some(total) if pos < total => Err(Failure::retry(format!("connection closed at byte {pos} of {total}"))),
            _ => Ok(()),
        }
    }

    /// Empties the `.part` before a from-zero retry.
    async fn reset(&self) -> Result<(), Flow> {
        let file = self.file.clone();
        blocking(move || file.set_len(0)).await.map_err(|e| Flow::Fatal(io_error("truncate", &self.part, e)))?;
        *lock(&self.done) = RangeSet::new();
        self.have.store(0, Ordering::Relaxed);
        self.dirty.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Reads `resp` into the `.part` from `*pos` (stopping at `limit`), writing in batches and
    /// recording each batch once written. On any exit what arrived is written first, so `*pos`
    /// is where a retry continues.
    async fn stream_body(&self, mut resp: Response, pos: &mut u64, limit: Option<u64>, buf: &mut Vec<u8>) -> Result<(), Failure> {
        let stall = self.config.stall_timeout;
        let mut last_write = Instant::now();
        buf.clear();
        let result = loop {
            let next = tokio::select! {
                biased;
                _ = self.halt.cancelled() => break Err(Flow::Stopped.into()),
                r = tokio::time::timeout(stall, resp.chunk()) => r,
            };
            let bytes = match next {
                Err(_) => break Err(Failure::retry(format!("no data for {}", secs(stall)))),
                Ok(Err(e)) => break Err(Failure::retry(http::error_chain(&e))),
                Ok(Ok(None)) => break Ok(()),
                Ok(Ok(Some(bytes))) => bytes,
            };
            let at = *pos + buf.len() as u64;
            let room = limit.map_or(usize::MAX, |l| usize::try_from(l.saturating_sub(at)).unwrap_or(usize::MAX));
            let take = bytes.len().min(room);
            buf.extend_from_slice(&bytes[..take]);
            self.have.fetch_add(take as u64, Ordering::Relaxed);
            self.received.fetch_add(take as u64, Ordering::Relaxed);
            if take < bytes.len() {
                // More than asked for: ignore the surplus.
                break Ok(());
            }
            if buf.len() >= WRITE_BUFFER || last_write.elapsed() >= WRITE_EVERY {
                if let Err(e) = self.write(pos, buf).await {
                    break Err(e.into());
                }
                last_write = Instant::now();
            }
        };
        let written = self.write(pos, buf).await;
        written?;
        result
    }

    /// Writes `buf` at `*pos`, records the range, advances `*pos` and empties `buf`.
    async fn write(&self, pos: &mut u64, buf: &mut Vec<u8>) -> Result<(), DownloadError> {
        if buf.is_empty() {
            return Ok(());
        }
        let data = std::mem::take(buf);
        let (file, offset) = (self.file.clone(), *pos);
        let (result, mut data) = tokio::task::spawn_blocking(move || (fsio::write_all_at(&file, &data, offset), data))
            .await
            .map_err(|e| io_error("write", &self.part, io::Error::other(e)))?;
        if let Err(e) = result {
            self.have.fetch_sub(data.len() as u64, Ordering::Relaxed);
            return Err(if fsio::is_no_space(&e) {
                let done = lock(&self.done).covered();
                let needed = self.total().map_or(data.len() as u64, |t| t.saturating_sub(done));
                let available = fsio::available_space(&self.dir).unwrap_or(0);
                DownloadError::NoSpace { dir: self.dir.clone(), needed, available }
            } else {
                io_error("write", &self.part, e)
            });
        }
        let end = offset + data.len() as u64;
        lock(&self.done).insert(offset, end);
        self.dirty.store(true, Ordering::Relaxed);
        *pos = end;
        data.clear();
        *buf = data;
        Ok(())
    }
}

/// Smoothed transfer rate and the progress record.
#[derive(Debug)]
struct Meter {
    at: Instant,
    bytes: u64,
    rate: Option<f64>,
}

impl Meter {
    /// Time constant of the exponential smoothing.
    const TAU: f64 = 3.0;

    fn new(now: Instant, bytes: u64) -> Self {
        Self { at: now, bytes, rate: None }
    }

    /// Folds in the byte counter's value at `now`; returns the smoothed rate.
    fn sample(&mut self, now: Instant, bytes: u64) -> f64 {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        if dt < 0.05 {
            return self.rate.unwrap_or(0.0);
        }
        let instant = bytes.saturating_sub(self.bytes) as f64 / dt;
        let rate = match self.rate {
            None => instant,
            Some(r) => r + (1.0 - (-dt / Self::TAU).exp()) * (instant - r),
        };
        self.at = now;
        self.bytes = bytes;
        self.rate = Some(rate);
        rate
    }

    fn progress(&mut self, stage: Stage, done: u64, total: Option<u64>, counter: u64) -> Progress {
        let rate = self.sample(Instant::now(), counter);
        let eta = match total {
            Some(t) if rate >= 1.0 => Some(Duration::from_secs_f64(t.saturating_sub(done) as f64 / rate)),
            _ => None,
        };
        Progress { stage, done, total, bytes_per_sec: rate, eta }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_file_names() {
        for ok in ["qwen2.5-0.5b-instruct-q4_k_m.gguf", "Model-00001-of-00003.gguf", "a.GGUF", "con-model.gguf", "com0.gguf"] {
            assert_eq!(safe_file_name(ok).as_deref(), Ok(ok), "{ok}");
        }
        for bad in [
            "",
            "../x.gguf",
            "a/b.gguf",
            "a\\b.gguf",
            "..gguf",
            "a..b.gguf",
            ".hidden.gguf",
            ".gguf",
            "x.gguf\0",
            "x\n.gguf",
            "model.bin",
            "model.gguf.part",
            "model",
            "c:x.gguf",
            "what?.gguf",
            "CON.gguf",
            "nul.q4.gguf",
            "com1.gguf",
            "LPT9.gguf",
        ] {
            assert!(safe_file_name(bad).is_err(), "{bad:?} accepted");
        }
        let long = format!("{}.gguf", "a".repeat(251));
        assert!(safe_file_name(&long).is_err());
        assert!(safe_file_name(&long[1..]).is_ok());
        let e = safe_file_name("../evil.gguf").expect_err("rejected");
        assert_eq!(e.to_string(), "unsafe model file name \"../evil.gguf\": contains a path separator");
    }

    #[test]
    fn meter_smooths_and_estimates() {
        let t0 = Instant::now();
        let mut m = Meter::new(t0, 0);
        assert_eq!(m.sample(t0 + Duration::from_millis(10), 100), 0.0);
        assert!((m.sample(t0 + Duration::from_secs(1), 1000) - 1000.0).abs() < 1e-9);
        // A burst moves the smoothed rate only part of the way.
        let r = m.sample(t0 + Duration::from_secs(2), 11_000);
        assert!(r > 1000.0 && r < 10_000.0, "{r}");
        // A stall decays it.
        let r2 = m.sample(t0 + Duration::from_secs(3), 11_000);
        assert!(r2 < r, "{r2} < {r}");
    }

    #[test]
    fn errors_read_well() {
        let e = DownloadError::Http { url: "https://huggingface.co/x/y/resolve/main/z.gguf".into(), status: 404 };
        assert_eq!(e.to_string(), "https://huggingface.co/x/y/resolve/main/z.gguf answered HTTP 404 Not Found");
        let e = DownloadError::HashMismatch { url: "u".into(), expected: "b".repeat(4), actual: "a".repeat(4) };
        assert_eq!(e.to_string(), "the file's sha256 is aaaa, expected bbbb (u)");
        let e = DownloadError::NoSpace { dir: "/m".into(), needed: 10, available: 3 };
        assert_eq!(e.to_string(), "not enough disk space in /m: 10 more bytes needed, 3 available");
    }

    #[test]
    fn first_failure_wins() {
        let mut o = Ok(());
        merge(&mut o, Flow::Stopped);
        assert!(matches!(o, Err(Flow::Stopped)));
        merge(&mut o, Flow::RangeIgnored);
        assert!(matches!(o, Err(Flow::RangeIgnored)));
        merge(&mut o, Flow::Stopped);
        merge(&mut o, Flow::Restart("x"));
        assert!(matches!(o, Err(Flow::RangeIgnored)));
    }
}
