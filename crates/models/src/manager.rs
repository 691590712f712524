//! Downloads as the app and the CLI run them: one per file, each pausable and cancellable by
//! its file name; a finished file is header-checked (a verified download of something that is
//! not a model is deleted) and its sha256 recorded for `verify`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::catalog::Source;
use crate::download::{model_path, DownloadConfig, DownloadControl, DownloadError, DownloadRequest, Downloader, Stage, UnsafeFileName};

/// What a download reports, in order: `Progress`… then one of the others.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(rename = "DownloadEvent"))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    Progress {
        stage: Stage,
        done: u64,
        total: Option<u64>,
        bytes_per_sec: f64,
        eta_s: Option<u64>,
    },
    Done {
        path: PathBuf,
        size: u64,
        sha256: String,
        verified: bool,
        resumed_bytes: u64,
    },
    /// Stopped with the partial kept: the same pull resumes it.
    Paused,
    Cancelled,
    /// Refused before anything was fetched: no sha256 is known for the file (the hub sent no
    /// `X-Linked-Etag`, the catalog pins none). The UI asks the user and, if they agree, pulls
    /// again with [`PullOptions::allow_unverified`]; the CLI has `--allow-unverified`.
    Unverified {
        message: String,
    },
    Failed {
        message: String,
    },
}

/// How a pull may proceed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PullOptions {
    /// Keep a file no sha256 is known for (the user confirmed). Without it such a pull ends in
    /// [`Event::Unverified`].
    pub allow_unverified: bool,
}

#[derive(Debug, Clone)]
pub struct Downloads {
    dir: PathBuf,
    downloader: Arc<Downloader>,
    running: Arc<Mutex<HashMap<String, DownloadControl>>>,
}

impl Downloads {
    pub fn new(dir: impl Into<PathBuf>) -> Result<Downloads, DownloadError> {
        Ok(Downloads { dir: dir.into(), downloader: Arc::new(Downloader::new(DownloadConfig::default())?), running: Arc::default() })
    }

    /// Names of the files downloading now.
    pub fn running(&self) -> Vec<String> {
        self.running.lock().expect("downloads lock").keys().cloned().collect()
    }

    /// Downloads `source` from `endpoint` into the models dir (resuming a partial one), calling
    /// `on` with progress and the outcome, which is also returned.
    pub async fn pull(&self, source: &Source, endpoint: &str, options: PullOptions, on: impl Fn(Event) + Send + Sync) -> Event {
        let dest = match model_path(&self.dir, &source.local_name) {
            Ok(d) => d,
            Err(e) => {
                let e = Event::Failed { message: e.to_string() };
                on(e.clone());
                return e;
            }
        };
        let control = DownloadControl::new();
        {
            let mut running = self.running.lock().expect("downloads lock");
            if running.contains_key(&source.local_name) {
                let e = Event::Failed { message: format!("{} is already downloading", source.local_name) };
                on(e.clone());
                return e;
            }
            running.insert(source.local_name.clone(), control.clone());
        }
        let mut request = DownloadRequest::new(source.url(endpoint), dest.clone());
        request.expected_sha256 = source.entry.as_ref().and_then(|e| e.sha256.clone());
        request.allow_unverified = options.allow_unverified;
        let result = self
            .downloader
            .download(
                request,
                |p| {
                    on(Event::Progress { stage: p.stage, done: p.done, total: p.total, bytes_per_sec: p.bytes_per_sec, eta_s: p.eta.map(|d| d.as_secs()) });
                },
                control,
            )
            .await;
        self.running.lock().expect("downloads lock").remove(&source.local_name);
        let event = match result {
            Ok(d) => match understudy_local::gguf::validate(&d.path) {
                Err(e) => {
                    let _ = std::fs::remove_file(&d.path);
                    Event::Failed { message: format!("the downloaded file is not a usable model, so it was deleted: {e}") }
                }
                Ok(_) => match crate::library::record_hash(&d.path, &d.sha256, d.verified) {
                    Ok(()) => Event::Done { path: d.path, size: d.size, sha256: d.sha256, verified: d.verified, resumed_bytes: d.resumed_bytes },
                    Err(e) => Event::Failed { message: e.to_string() },
                },
            },
            Err(DownloadError::Paused) => Event::Paused,
            Err(DownloadError::Cancelled) => Event::Cancelled,
            Err(e @ DownloadError::Unverified { .. }) => Event::Unverified { message: e.to_string() },
            Err(e) => Event::Failed { message: e.to_string() },
        };
        on(event.clone());
        event
    }

    /// Pauses a running download (its partial is kept). False when none runs under that name;
    /// an error for a name that is not a model file name.
    pub fn pause(&self, local_name: &str) -> Result<bool, UnsafeFileName> {
        crate::download::safe_file_name(local_name)?;
        Ok(self.running.lock().expect("downloads lock").get(local_name).map(DownloadControl::pause).is_some())
    }

    /// Cancels a running download, or discards a paused one's partial file. False when there
    /// was neither; an error (and nothing touched) for a name that would leave the models dir.
    pub fn cancel(&self, local_name: &str) -> Result<bool, UnsafeFileName> {
        let dest = model_path(&self.dir, local_name)?;
        if let Some(c) = self.running.lock().expect("downloads lock").get(local_name) {
            c.cancel();
            return Ok(true);
        }
        let had = crate::download::part_path(&dest).exists();
        let _ = crate::download::discard_partial(&dest);
        Ok(had)
    }
}

/// A paused (or interrupted) download's progress: (bytes on hand, total). The same pull
/// resumes it, after a restart too.
pub fn partial(dest: &std::path::Path) -> Option<(u64, u64)> {
    crate::download::partial_progress(dest)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The window and `understudy models pull --json` read these words.
    #[test]
    fn progress_goes_out_with_its_stage_as_a_word() {
        for (stage, word) in [(Stage::Downloading, "downloading"), (Stage::Verifying, "verifying")] {
            let e = Event::Progress { stage, done: 1, total: Some(2), bytes_per_sec: 0.5, eta_s: None };
            let v = serde_json::to_value(&e).unwrap();
            assert_eq!(v, serde_json::json!({ "type": "progress", "stage": word, "done": 1, "total": 2, "bytes_per_sec": 0.5, "eta_s": null }));
            assert_eq!(stage.as_str(), word);
        }
    }
}
