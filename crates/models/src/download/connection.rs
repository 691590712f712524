//! One connection's requests: a ranged request or the whole file, its body streamed into the
//! `.part` in batches, each batch recorded once written.

use std::io;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use reqwest::header::{CONTENT_RANGE, RANGE};
use reqwest::{Response, StatusCode};

use super::error::io_error;
use super::fsio;
use super::http::{self, display_url};
use super::lock;
use super::pool::Shared;
use super::retry::{secs, send, status_failure, Failure, Flow};
use super::DownloadError;

/// A connection writes what it received once it holds this much ...
pub(super) const WRITE_BUFFER: usize = 256 * 1024;
/// ... or once its oldest unwritten byte is this old.
const WRITE_EVERY: Duration = Duration::from_millis(250);

impl Shared {
    /// One request for `[*pos, end)`; advances `*pos` past what was written.
    pub(super) async fn fetch_range(&self, pos: &mut u64, end: u64, buf: &mut Vec<u8>) -> Result<(), Failure> {
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

    pub(super) async fn fetch_whole(&self, first: Option<Response>, buf: &mut Vec<u8>) -> Result<(), Failure> {
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
    pub(super) async fn write(&self, pos: &mut u64, buf: &mut Vec<u8>) -> Result<(), DownloadError> {
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
