//! The response headers that describe an answer (its request id, timing, API version, account
//! and rate-limit state), kept from the provider's response so a proxy can pass them on.

/// The headers kept, by name (lowercase): an allow-list, so hop-by-hop and body headers
/// (`content-length`, `transfer-encoding`, `content-type`, `connection`), cookies and the
/// server's own (`server`, `date`, `set-cookie`, `cf-ray`…) never are. OpenAI's names; Groq,
/// Together, Mistral and most compatible providers send the rate-limit ones the same way.
pub const ANSWER_HEADERS: &[&str] = &[
    "x-request-id",
    "openai-processing-ms",
    "openai-version",
    "openai-organization",
    "openai-project",
    "x-ratelimit-limit-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-requests",
    "x-ratelimit-reset-tokens",
];

/// A provider's [`ANSWER_HEADERS`] as it sent them, in the list's order; a value that is not
/// visible ASCII is left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnswerHeaders(Vec<(&'static str, String)>);

impl AnswerHeaders {
    /// Those of `headers` on the list (the first value of a repeated one).
    pub fn of(headers: &reqwest::header::HeaderMap) -> AnswerHeaders {
        AnswerHeaders(ANSWER_HEADERS.iter().filter_map(|&name| Some((name, headers.get(name)?.to_str().ok()?.to_string()))).collect())
    }

    /// (name, value) pairs; every name is one of [`ANSWER_HEADERS`].
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.0.iter().map(|(n, v)| (*n, v.as_str()))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    #[test]
    fn only_the_listed_headers_are_kept() {
        let mut h = HeaderMap::new();
        for (n, v) in [
            ("x-request-id", "req_1"),
            ("x-ratelimit-remaining-tokens", "149984"),
            ("openai-processing-ms", "12"),
            ("content-length", "10"),
            ("transfer-encoding", "chunked"),
            ("content-type", "text/event-stream"),
            ("set-cookie", "__cf_bm=x"),
            ("server", "cloudflare"),
            ("date", "Tue, 01 Dec 2026 15:00:00 GMT"),
            ("x-ratelimit-limit-tokens-day", "1"),
        ] {
            h.insert(n, HeaderValue::from_static(v));
        }
        h.insert("openai-version", HeaderValue::from_bytes(b"2020-10-01\xff").unwrap());
        let kept = AnswerHeaders::of(&h);
        assert_eq!(kept.iter().collect::<Vec<_>>(), [("x-request-id", "req_1"), ("openai-processing-ms", "12"), ("x-ratelimit-remaining-tokens", "149984")]);
        assert_eq!(kept.get("X-Request-Id"), Some("req_1"));
        assert!(AnswerHeaders::of(&HeaderMap::new()).is_empty());
    }
}
