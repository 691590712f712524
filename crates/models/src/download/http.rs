//! Header parsing and retry arithmetic, free of I/O.

use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::Url;

/// `Content-Range: bytes <first>-<last>/<total|*>` of a 206.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ContentRange {
    pub first: u64,
    /// Inclusive.
    pub last: u64,
    pub total: Option<u64>,
}

pub(crate) fn parse_content_range(value: &str) -> Option<ContentRange> {
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let (first, last) = range.trim().split_once('-')?;
    let first = first.trim().parse().ok()?;
    let last = last.trim().parse().ok()?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    if last < first || total.is_some_and(|t| last >= t) {
        return None;
    }
    Some(ContentRange { first, last, total })
}

/// The `N` of `Content-Range: bytes */N` (a 416's statement of the size).
pub(crate) fn parse_unsatisfied_range(value: &str) -> Option<u64> {
    value.trim().strip_prefix("bytes")?.trim_start().strip_prefix("*/")?.trim().parse().ok()
}

pub(crate) fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name)?.to_str().ok().map(str::trim).filter(|v| !v.is_empty())
}

/// An ETag as sent (kept verbatim, including quotes and `W/`, for identity comparison).
pub(crate) fn etag(headers: &HeaderMap) -> Option<String> {
    header_str(headers, "etag").map(str::to_owned)
}

/// The sha256 a Hugging Face `X-Linked-Etag` carries for LFS files: `"<64 hex>"` (possibly
/// weak). `None` for git-blob ETags (40 hex) and anything else.
pub(crate) fn linked_sha256(linked_etag: &str) -> Option<String> {
    let v = linked_etag.trim();
    let v = v.strip_prefix("W/").unwrap_or(v);
    let v = v.trim_matches('"');
    normalize_sha256(v)
}

/// Lower-case 64-hex-digit sha256, or `None`.
pub(crate) fn normalize_sha256(v: &str) -> Option<String> {
    let v = v.trim();
    (v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit())).then(|| v.to_ascii_lowercase())
}

/// `Retry-After` in seconds (the HTTP-date form is ignored), capped at a minute.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let secs: u64 = header_str(headers, "retry-after")?.parse().ok()?;
    Some(Duration::from_secs(secs.min(60)))
}

/// Delay before retry number `attempt` (0-based): `base · 2^attempt`, capped at 30 s, times a
/// uniformly random factor in [0.5, 1.5) so parallel connections do not retry in lockstep.
pub(crate) fn backoff(base: Duration, attempt: u32, unit_random: f64) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.min(16));
    let capped = exp.min(Duration::from_secs(30));
    capped.mul_f64(0.5 + unit_random.clamp(0.0, 1.0))
}

/// A URL for messages and logs: no query or fragment (signed CDN URLs carry credentials
/// there) and no user info.
pub(crate) fn display_url(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.to_string()
}

/// An error with its sources, `a: b: c`, without repeating a source already in the text.
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range() {
        let cr = |first, last, total| Some(ContentRange { first, last, total });
        assert_eq!(parse_content_range("bytes 0-0/100"), cr(0, 0, Some(100)));
        assert_eq!(parse_content_range("bytes 10-19/*"), cr(10, 19, None));
        assert_eq!(parse_content_range(" bytes  5-9/10 "), cr(5, 9, Some(10)));
        assert_eq!(parse_content_range("bytes 5-10/10"), None);
        assert_eq!(parse_content_range("bytes 9-5/10"), None);
        assert_eq!(parse_content_range("bytes */10"), None);
        assert_eq!(parse_content_range("items 0-1/2"), None);
        assert_eq!(parse_content_range("bytes 0-x/2"), None);
        assert_eq!(parse_unsatisfied_range("bytes */0"), Some(0));
        assert_eq!(parse_unsatisfied_range("bytes */1234"), Some(1234));
        assert_eq!(parse_unsatisfied_range("bytes 0-1/2"), None);
    }

    #[test]
    fn linked_etag_sha() {
        let sha = "1f0d63e8c8f4a59a4bcd1b5ee6e1e38d4f7c3e6b9b4ab1d6c3a5e0c2d8e7f6a5";
        assert_eq!(linked_sha256(&format!("\"{sha}\"")).as_deref(), Some(sha));
        assert_eq!(linked_sha256(&format!("W/\"{sha}\"")).as_deref(), Some(sha));
        assert_eq!(linked_sha256(&sha.to_uppercase()).as_deref(), Some(sha));
        assert_eq!(linked_sha256("\"0123456789abcdef0123456789abcdef01234567\""), None);
        assert_eq!(linked_sha256(&format!("\"{}\"", &sha[..63])), None);
        assert_eq!(linked_sha256(&format!("\"{}g\"", &sha[..63])), None);
    }

    #[test]
    fn backoff_doubles_with_jitter_and_cap() {
        let base = Duration::from_millis(500);
        assert_eq!(backoff(base, 0, 0.5), Duration::from_millis(500));
        assert_eq!(backoff(base, 1, 0.5), Duration::from_millis(1000));
        assert_eq!(backoff(base, 2, 0.0), Duration::from_millis(1000));
        assert!(backoff(base, 2, 0.999) < Duration::from_millis(3000));
        assert_eq!(backoff(base, 10, 0.5), Duration::from_secs(30));
        assert_eq!(backoff(base, 40, 0.5), Duration::from_secs(30));
    }

    #[test]
    fn urls_for_messages_hide_credentials() {
        let u = Url::parse("https://user:pw@cdn.example/f.gguf?X-Amz-Signature=abc#x").expect("url");
        assert_eq!(display_url(&u), "https://cdn.example/f.gguf");
    }

    #[test]
    fn retry_after_seconds() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert("retry-after", "3".parse().expect("value"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        h.insert("retry-after", "3600".parse().expect("value"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(60)));
        h.insert("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT".parse().expect("value"));
        assert_eq!(retry_after(&h), None);
    }
}
