//! The first request of a run: `GET` with `Range: bytes=0-0`, redirects followed by hand so
//! Hugging Face's `X-Linked-Etag` / `X-Linked-Size` on the redirecting response are seen.

use reqwest::header::{CONTENT_RANGE, LAST_MODIFIED, LOCATION, RANGE};
use reqwest::{Response, StatusCode, Url};
use tokio_util::sync::CancellationToken;

use super::http::{self, display_url};
use super::job::Job;
use super::retry::{send, status_failure, Failure, Flow, Retrier};
use super::{DownloadError, Progress};

const MAX_REDIRECTS: usize = 10;

/// What the first request learned.
#[derive(Debug)]
pub(super) struct Probe {
    pub(super) final_url: Url,
    pub(super) redirected: bool,
    pub(super) linked_etag: Option<String>,
    pub(super) linked_size: Option<u64>,
    pub(super) etag: Option<String>,
    pub(super) last_modified: Option<String>,
    pub(super) kind: ProbeKind,
}

#[derive(Debug)]
pub(super) enum ProbeKind {
    /// 206: ranges work.
    Ranged { total: Option<u64> },
    /// 200: the server ignores `Range`; this response is the whole file.
    Full { resp: Response, total: Option<u64> },
    /// 416 with `bytes */0`: an empty file.
    Empty,
}

impl<P: Fn(Progress) + Send + Sync> Job<'_, P> {
    /// The first request: `GET` with `Range: bytes=0-0`, redirects followed by hand.
    pub(super) async fn probe(&self) -> Result<Probe, Flow> {
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
}
