//! The connections of one run: a queue of chunks shared by parallel ranged workers (or one
//! worker from zero), the sidecar saved while they write, progress reported while they run.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Client, Response, Url};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::connection::WRITE_BUFFER;
use super::error::io_error;
use super::http::display_url;
use super::job::Job;
use super::meter::Meter;
use super::ranges::{self, RangeSet};
use super::retry::{merge, Flow, Retrier};
use super::sidecar::{Identity, Sidecar};
use super::{blocking, lock, DownloadConfig, DownloadError, Progress, Stage, PROGRESS_EVERY};

/// How often the sidecar is saved (if anything changed).
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);
const MIB: u64 = 1024 * 1024;

/// Where the bytes come from after the probe.
#[derive(Clone, Debug)]
pub(super) struct Target {
    /// After redirects.
    pub(super) url: Url,
    /// Whether `url` came from a redirect (a signed link that may expire).
    pub(super) redirected: bool,
    /// The final response's ETag: a ranged response with another one means the file changed.
    pub(super) etag: Option<String>,
}

enum WorkerKind {
    Ranged,
    Single(Option<Response>),
}

/// State the connections of one run share.
#[derive(Debug)]
pub(super) struct Shared {
    pub(super) client: Client,
    pub(super) config: DownloadConfig,
    pub(super) target: Target,
    /// `None`: the size is unknown, so there is no sidecar (and no resume).
    pub(super) identity: Option<Identity>,
    pub(super) file: Arc<File>,
    pub(super) part: PathBuf,
    pub(super) dir: PathBuf,
    /// Written ranges.
    pub(super) done: Mutex<RangeSet>,
    /// `done` changed since the last checkpoint.
    pub(super) dirty: AtomicBool,
    /// Bytes on hand, counted on arrival (for progress).
    pub(super) have: AtomicU64,
    /// Bytes received this run, never decreasing (for the rate).
    pub(super) received: AtomicU64,
    /// Chunks not yet taken by a connection.
    pub(super) queue: Mutex<VecDeque<(u64, u64)>>,
    /// Stops every connection of this run.
    pub(super) halt: CancellationToken,
}

impl Shared {
    pub(super) fn total(&self) -> Option<u64> {
        self.identity.as_ref().map(|i| i.total)
    }

    pub(super) fn have(&self) -> u64 {
        self.have.load(Ordering::Relaxed)
    }

    /// Saves the sidecar if anything changed: the `.part` is synced first, so every range the
    /// sidecar lists is on disk.
    pub(super) async fn checkpoint(&self, path: &Path) -> io::Result<()> {
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

    /// Empties the `.part` before a from-zero retry.
    pub(super) async fn reset(&self) -> Result<(), Flow> {
        let file = self.file.clone();
        blocking(move || file.set_len(0)).await.map_err(|e| Flow::Fatal(io_error("truncate", &self.part, e)))?;
        *lock(&self.done) = RangeSet::new();
        self.have.store(0, Ordering::Relaxed);
        self.dirty.store(true, Ordering::Relaxed);
        Ok(())
    }
}

impl<P: Fn(Progress) + Send + Sync> Job<'_, P> {
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
    pub(super) async fn run_ranged(&self, target: &Target, identity: Identity, done: RangeSet) -> Result<(), Flow> {
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
    pub(super) async fn run_single(&self, target: &Target, first: Option<Response>, identity: Option<Identity>) -> Result<u64, Flow> {
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
}
