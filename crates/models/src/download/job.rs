//! One call of [`Downloader::download`](super::Downloader::download): probe, resume or start
//! afresh, fetch, verify; restarted when the remote file changes; then the file renamed into
//! place or the partial state kept or deleted.

use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use reqwest::Url;

use super::error::io_error;
use super::fsio;
use super::http::{self, display_url};
use super::meter::Meter;
use super::pool::Target;
use super::probe::{Probe, ProbeKind};
use super::ranges::RangeSet;
use super::retry::Flow;
use super::sidecar::{Identity, Sidecar};
use super::{
    blocking, discard_partial, DownloadConfig, DownloadControl, DownloadError, DownloadRequest, Downloaded, Downloader, Progress, Stage, PROGRESS_EVERY,
};

/// Re-probes after the remote file changed or a signed link expired mid-download.
const MAX_RESTARTS: u32 = 3;

/// Finished and verified, not yet renamed.
#[derive(Debug)]
pub(super) struct Finished {
    pub(super) size: u64,
    pub(super) sha256: String,
    pub(super) verified: bool,
    pub(super) resumed_bytes: u64,
}

/// One call of [`Downloader::download`].
pub(super) struct Job<'a, P> {
    pub(super) dl: &'a Downloader,
    pub(super) req: &'a DownloadRequest,
    pub(super) url: Url,
    pub(super) expected_sha: Option<String>,
    pub(super) part: PathBuf,
    pub(super) sidecar: PathBuf,
    pub(super) dir: PathBuf,
    pub(super) file: Arc<File>,
    pub(super) control: DownloadControl,
    pub(super) progress: &'a P,
}

impl<P: Fn(Progress) + Send + Sync> Job<'_, P> {
    /// Attempts until one ends other than by a restart (at most [`MAX_RESTARTS`] of them).
    pub(super) async fn run(&self) -> Result<Finished, DownloadError> {
        let mut restarts = 0;
        loop {
            match self.attempt().await {
                Err(Flow::Restart(why)) if restarts < MAX_RESTARTS => {
                    restarts += 1;
                    tracing::warn!(url = %display_url(&self.url), why, "restarting the download");
                }
                Err(Flow::Restart(why)) => {
                    let reason = format!("{why} (gave up after {MAX_RESTARTS} restarts)");
                    return Err(DownloadError::BadResponse { url: display_url(&self.url), reason });
                }
                Err(Flow::RangeIgnored) => {
                    let reason = "the server stopped honouring Range requests".into();
                    return Err(DownloadError::BadResponse { url: display_url(&self.url), reason });
                }
                Err(Flow::Stopped) if self.control.is_cancelled() => return Err(DownloadError::Cancelled),
                Err(Flow::Stopped) => return Err(DownloadError::Paused),
                Err(Flow::Fatal(e)) => return Err(e),
                Ok(done) => return Ok(done),
            }
        }
    }

    /// After the last attempt: the finished `.part` renamed to `dest`, or the partial state
    /// deleted (when worthless) or kept for a resume. Closes the `.part`.
    pub(super) async fn finish(self, outcome: Result<Finished, DownloadError>) -> Result<Downloaded, DownloadError> {
        let Job { req, part, sidecar, dir, file, .. } = self;
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
                let Finished { size, sha256, verified, resumed_bytes } = done;
                Ok(Downloaded { path: req.dest.clone(), size, sha256, verified, resumed_bytes })
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

    pub(super) fn config(&self) -> &DownloadConfig {
        &self.dl.config
    }

    pub(super) async fn attempt(&self) -> Result<Finished, Flow> {
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

    pub(super) async fn check_space(&self, needed: u64) -> Result<(), Flow> {
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
    /// Hashes the `.part`, compares, and syncs it.
    pub(super) async fn verify(&self, size: u64, expected: Option<String>, resumed_bytes: u64) -> Result<Finished, Flow> {
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
