//! How a step or a request ends when not with its result, and the retries with backoff that
//! a failure worth retrying gets.

use std::time::Duration;

use reqwest::header::ACCEPT_ENCODING;
use reqwest::{Response, StatusCode, Url};
use tokio_util::sync::CancellationToken;

use super::http::{self, display_url};
use super::{DownloadConfig, DownloadError};

/// How a step ended, when not with its result.
#[derive(Debug)]
pub(super) enum Flow {
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
pub(super) enum Failure {
    Retry { message: String, retry_after: Option<Duration> },
    Flow(Flow),
}

impl Failure {
    pub(super) fn retry(message: impl Into<String>) -> Self {
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
pub(super) fn status_failure(url: &Url, resp: &Response) -> Failure {
    let status = resp.status();
    if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT || status == StatusCode::TOO_MANY_REQUESTS {
        Failure::Retry { message: format!("HTTP {status}"), retry_after: http::retry_after(resp.headers()) }
    } else {
        DownloadError::Http { url: display_url(url), status: status.as_u16() }.into()
    }
}

/// Sends `req`, giving up after `stall` without response headers or when `halt` fires.
pub(super) async fn send(req: reqwest::RequestBuilder, stall: Duration, halt: &CancellationToken) -> Result<Response, Failure> {
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

pub(super) fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// Counts a request's retries and sleeps the backoff between them.
pub(super) struct Retrier<'a> {
    config: &'a DownloadConfig,
    url: &'a Url,
    halt: &'a CancellationToken,
    attempt: u32,
}

impl<'a> Retrier<'a> {
    pub(super) fn new(config: &'a DownloadConfig, url: &'a Url, halt: &'a CancellationToken) -> Self {
        Self { config, url, halt, attempt: 0 }
    }

    /// Bytes arrived: the next failure starts a fresh series of retries.
    pub(super) fn progressed(&mut self) {
        self.attempt = 0;
    }

    /// `Ok` after the backoff when `failure` is worth another try; the flow to end with
    /// otherwise.
    pub(super) async fn failed(&mut self, failure: Failure) -> Result<(), Flow> {
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

/// Keeps the first real failure; a stop only replaces success.
pub(super) fn merge(outcome: &mut Result<(), Flow>, new: Flow) {
    let replace = match outcome {
        Ok(()) => true,
        Err(Flow::Stopped) => !matches!(new, Flow::Stopped),
        Err(_) => false,
    };
    if replace {
        *outcome = Err(new);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
