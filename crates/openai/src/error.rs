//! Every upstream failure, typed and classified as in design.md section 3, so the router can
//! decide without parsing text: fail over now (outage), maybe wait (rate limit), answer locally
//! but tell the user to fix their account (account), or show the error (request).

use std::time::Duration;

/// What the router does with a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureClass {
    /// Connect/DNS/TLS errors, 408, 5xx, no first token, a stall, a cut or malformed stream.
    Outage,
    /// 429 `rate_limit_exceeded`.
    RateLimit,
    /// 401, 403, 404 (model), 429 `insufficient_quota`: a configuration problem.
    Account,
    /// 400, 422, context too long: the request itself is wrong; failing over would not help.
    Request,
}

/// Where the failure happened.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// No connection: refused, unreachable, connect timeout.
    Connect,
    /// The host name did not resolve.
    Dns,
    /// The TLS handshake failed.
    Tls,
    /// An HTTP error status.
    Status,
    /// No first token within the first-token timeout.
    FirstToken,
    /// No chunk for the stall timeout in the middle of a stream.
    Stall,
    /// The connection broke mid-answer.
    Cut,
    /// The stream ended without `[DONE]` (or a finish reason): the answer is incomplete.
    Truncated,
    /// A chunk or body that is not the expected JSON.
    Malformed,
    /// The stream carried an `{"error": ...}` chunk.
    StreamError,
    /// The client could not be built or the request could not be sent for a local reason.
    Client,
}

/// A failed call to an OpenAI-compatible API. Never contains the API key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize)]
#[error("{}", self.describe())]
pub struct Error {
    pub kind: ErrorKind,
    pub class: FailureClass,
    /// The HTTP status, when the server answered with one.
    pub status: Option<u16>,
    /// OpenAI's `error.code` (or `error.type` when there is no code).
    pub code: Option<String>,
    /// OpenAI's `error.param`: the request field the error is about, where it says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub param: Option<Box<String>>,
    pub message: String,
    /// `x-request-id`, to quote to the provider's support. (`request_id` and `param` are boxed
    /// so that `Error` stays small enough to return by value.)
    pub request_id: Option<Box<str>>,
    /// From `retry-after-ms` or `retry-after`.
    #[serde(with = "humantime_serde")]
    pub retry_after: Option<Duration>,
    /// The provider's display name in messages ("OpenAI", or the base URL's host).
    pub provider: String,
}

impl Error {
    pub fn new(kind: ErrorKind, provider: &str, message: impl Into<String>) -> Error {
        let class = match kind {
            ErrorKind::Client => FailureClass::Request,
            _ => FailureClass::Outage,
        };
        Error {
            kind,
            class,
            status: None,
            code: None,
            param: None,
            message: message.into(),
            request_id: None,
            retry_after: None,
            provider: provider.to_string(),
        }
    }

    /// An HTTP error status with the body's OpenAI error object, if any.
    pub(crate) fn from_status(status: u16, code: Option<String>, message: Option<String>, provider: &str) -> Error {
        let class = classify(status, code.as_deref(), message.as_deref());
        let message = message.unwrap_or_else(|| default_message(status).to_string());
        Error {
            kind: ErrorKind::Status,
            class,
            status: Some(status),
            code,
            param: None,
            message,
            request_id: None,
            retry_after: None,
            provider: provider.to_string(),
        }
    }

    /// One line for people: what failed, in their words, with the status or the code.
    pub fn describe(&self) -> String {
        format!("{}: {}", self.summary(), self.message)
    }

    /// What failed, in words, without the server's message ("OpenAI could not be reached").
    pub fn summary(&self) -> String {
        let p = &self.provider;
        let status = self.status.map(|s| format!(" ({s})")).unwrap_or_default();
        let what = match (&self.kind, self.class) {
            (ErrorKind::Connect, _) => format!("{p} could not be reached"),
            (ErrorKind::Dns, _) => format!("{p}'s address could not be resolved"),
            (ErrorKind::Tls, _) => format!("a secure connection to {p} could not be made"),
            (ErrorKind::FirstToken, _) => format!("{p} did not start answering in time"),
            (ErrorKind::Stall, _) => format!("{p} stopped sending in the middle of the answer"),
            (ErrorKind::Cut, _) => format!("the connection to {p} broke in the middle of the answer"),
            (ErrorKind::Truncated, _) => format!("{p}'s answer ended early, without its end marker"),
            (ErrorKind::Malformed, _) => format!("{p} sent a response that could not be read"),
            (ErrorKind::StreamError, _) => format!("{p} reported an error in the middle of the answer"),
            (ErrorKind::Client, _) => "the request could not be sent".to_string(),
            (ErrorKind::Status, _) => match (self.status, self.code.as_deref()) {
                (Some(401), _) => format!("{p} rejected the API key{status}"),
                (Some(403), _) => format!("{p} refused access{status}"),
                (Some(404), _) => format!("{p} does not know the model or endpoint{status}"),
                (Some(429), Some("insufficient_quota")) => format!("the {p} account has no quota left{status}"),
                (Some(429), _) => format!("{p} is rate-limiting requests{status}"),
                (Some(s), _) if s >= 500 => format!("{p} had a server error{status}"),
                _ => format!("{p} rejected the request{status}"),
            },
        };
        what
    }
}

/// design.md section 3, by status and OpenAI error code.
pub fn classify(status: u16, code: Option<&str>, message: Option<&str>) -> FailureClass {
    let context_too_long = code == Some("context_length_exceeded") || message.is_some_and(|m| m.contains("maximum context length"));
    match status {
        429 if code == Some("insufficient_quota") => FailureClass::Account,
        429 => FailureClass::RateLimit,
        401 | 403 | 404 => FailureClass::Account,
        408 => FailureClass::Outage,
        s if s >= 500 => FailureClass::Outage,
        400 | 422 if context_too_long => FailureClass::Request,
        _ => FailureClass::Request,
    }
}

fn default_message(status: u16) -> &'static str {
    match status {
        401 => "check the API key in Settings",
        403 => "the key may not have access to this model or region",
        404 => "check the model name and base URL in Settings",
        429 => "too many requests",
        s if s >= 500 => "the service is having trouble",
        _ => "the request was not accepted",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_table() {
        let check = |status, code, class| assert_eq!(classify(status, code, None), class, "{status} {code:?}");
        check(500, None, FailureClass::Outage);
        check(502, None, FailureClass::Outage);
        check(503, Some("service_unavailable"), FailureClass::Outage);
        check(504, None, FailureClass::Outage);
        check(529, None, FailureClass::Outage);
        check(408, None, FailureClass::Outage);
        check(429, Some("rate_limit_exceeded"), FailureClass::RateLimit);
        check(429, None, FailureClass::RateLimit);
        check(429, Some("insufficient_quota"), FailureClass::Account);
        check(401, Some("invalid_api_key"), FailureClass::Account);
        check(403, None, FailureClass::Account);
        check(404, Some("model_not_found"), FailureClass::Account);
        check(400, Some("context_length_exceeded"), FailureClass::Request);
        check(400, None, FailureClass::Request);
        check(422, None, FailureClass::Request);
        check(413, None, FailureClass::Request);
        assert_eq!(classify(400, None, Some("This model's maximum context length is 128000 tokens")), FailureClass::Request);
    }

    #[test]
    fn messages_say_what_happened_in_words() {
        let e = Error::from_status(401, Some("invalid_api_key".into()), Some("Incorrect API key provided".into()), "OpenAI");
        assert_eq!(e.to_string(), "OpenAI rejected the API key (401): Incorrect API key provided");
        let e = Error::from_status(429, Some("insufficient_quota".into()), None, "OpenAI");
        assert!(e.to_string().starts_with("the OpenAI account has no quota left (429)"), "{e}");
        assert_eq!(
            Error::new(ErrorKind::FirstToken, "OpenAI", "no token within 20s").to_string(),
            "OpenAI did not start answering in time: no token within 20s"
        );
    }
}
