//! Who may use the gateway. Any web page the user opens can send requests to loopback: a
//! `POST` with `Content-Type: text/plain` (or an HTML form) needs no CORS preflight, so without
//! these checks a page could spend the user's key. What a browser sends on a page's behalf is
//! refused before anything goes upstream; tools (SDKs, curl) send none of it.

use axum::extract::Request;
use axum::http::{header, Method, StatusCode};
use axum::response::Response;

use crate::error;

/// A refusal, in OpenAI's error shape; `None` lets the request through.
pub(crate) fn refuse(req: &Request, token: Option<&str>) -> Option<Response> {
    let headers = req.headers();
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or_default();
    if !is_loopback_host(host) {
        return Some(error(
            StatusCode::FORBIDDEN,
            "invalid_request_error",
            Some("host_not_allowed"),
            "Understudy's gateway only answers requests addressed to localhost.",
        ));
    }
    // Browsers send Origin on every cross-origin request (and on same-origin POSTs); a page on
    // another port of localhost is another origin too.
    if let Some(origin) = headers.get(header::ORIGIN) {
        if !origin.to_str().is_ok_and(|o| is_own_origin(o, host)) {
            return Some(error(
                StatusCode::FORBIDDEN,
                "invalid_request_error",
                Some("origin_not_allowed"),
                "Understudy's gateway does not answer web pages (the request carries another site's Origin).",
            ));
        }
    }
    // Fetch metadata: sent by browsers even where Origin is not (e.g. a navigation).
    if let Some(site) = headers.get("sec-fetch-site").and_then(|h| h.to_str().ok()) {
        if site.eq_ignore_ascii_case("cross-site") || site.eq_ignore_ascii_case("same-site") {
            return Some(error(
                StatusCode::FORBIDDEN,
                "invalid_request_error",
                Some("cross_site_request"),
                "Understudy's gateway does not answer web pages (Sec-Fetch-Site says another site sent it).",
            ));
        }
    }
    // Only JSON is read, and a page cannot send JSON cross-origin without a preflight, which
    // gets no CORS headers here.
    if req.method() == Method::POST && !headers.get(header::CONTENT_TYPE).and_then(|h| h.to_str().ok()).is_some_and(is_json) {
        return Some(error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid_request_error",
            Some("unsupported_media_type"),
            "The body must be sent as Content-Type: application/json.",
        ));
    }
    // Health is not a secret and `understudy status` has no token; answers and models are.
    if let Some(token) = token.filter(|_| req.uri().path() != "/understudy/status") {
        let given = headers.get(header::AUTHORIZATION).and_then(|h| h.to_str().ok()).and_then(|h| h.strip_prefix("Bearer ")).unwrap_or_default();
        if !same_token(given.trim().as_bytes(), token.as_bytes()) {
            return Some(error(
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                Some("invalid_api_key"),
                "This gateway needs its token as the API key (OPENAI_API_KEY): Settings → Gateway in the app, UNDERSTUDY_GATEWAY_TOKEN for understudy serve.",
            ));
        }
    }
    None
}

pub(crate) fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(h, port)| if port.chars().all(|c| c.is_ascii_digit()) { h } else { host }),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The port of a `Host` (or an origin's authority); None = the scheme's default.
fn port_of(authority: &str) -> Option<&str> {
    let port = match authority.strip_prefix('[') {
        Some(rest) => rest.split_once("]:").map_or("", |(_, p)| p),
        None => authority.rsplit_once(':').map_or("", |(_, p)| p),
    };
    Some(port).filter(|p| !p.is_empty() && *p != "80")
}

/// The gateway's own origin: `http://` + a loopback name + the port this request came to.
/// (`null`, other schemes and other ports are other origins.)
fn is_own_origin(origin: &str, host: &str) -> bool {
    let Some(authority) = origin.strip_prefix("http://") else { return false };
    !authority.contains('/') && is_loopback_host(authority) && port_of(authority) == port_of(host)
}

/// `application/json`, with or without parameters (`; charset=utf-8`).
fn is_json(content_type: &str) -> bool {
    content_type.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
}

/// Compares every byte whatever the first difference, so the time taken says nothing about
/// how much of a guess was right.
fn same_token(given: &[u8], want: &[u8]) -> bool {
    let mut diff = u8::from(given.len() != want.len());
    for (i, w) in want.iter().enumerate() {
        diff |= given.get(i).copied().unwrap_or(0) ^ w;
    }
    std::hint::black_box(diff) == 0
}

/// A fresh per-install token: 32 random bytes from the OS, as hex.
pub fn new_token() -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| std::io::Error::other(format!("the OS gave no random bytes: {e}")))?;
    Ok(format!("understudy-{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_hosts_pass() {
        for ok in ["localhost", "localhost:8321", "LOCALHOST", "127.0.0.1", "127.0.0.1:8321", "127.8.9.1:1", "[::1]", "[::1]:8321"] {
            assert!(is_loopback_host(ok), "{ok}");
        }
        for bad in ["", "evil.example", "evil.example:8321", "localhost.evil.example", "192.168.1.5:8321", "[fe80::1]:80", "127.0.0.1.nip.io"] {
            assert!(!is_loopback_host(bad), "{bad}");
        }
    }

    #[test]
    fn only_the_gateway_s_own_origin_passes() {
        for (origin, host) in [
            ("http://127.0.0.1:8321", "127.0.0.1:8321"),
            ("http://localhost:8321", "127.0.0.1:8321"),
            ("http://[::1]:8321", "localhost:8321"),
            ("http://localhost", "localhost:80"),
        ] {
            assert!(is_own_origin(origin, host), "{origin} {host}");
        }
        for (origin, host) in [
            ("https://evil.example", "127.0.0.1:8321"),
            ("http://evil.example:8321", "127.0.0.1:8321"),
            ("http://localhost:3000", "127.0.0.1:8321"),
            ("http://127.0.0.1", "127.0.0.1:8321"),
            ("https://127.0.0.1:8321", "127.0.0.1:8321"),
            ("null", "127.0.0.1:8321"),
            ("http://127.0.0.1:8321/x", "127.0.0.1:8321"),
            ("http://localhost.evil.example:8321", "127.0.0.1:8321"),
        ] {
            assert!(!is_own_origin(origin, host), "{origin} {host}");
        }
    }

    #[test]
    fn json_with_parameters_is_json() {
        for ok in ["application/json", "application/json; charset=utf-8", "Application/JSON;charset=UTF-8"] {
            assert!(is_json(ok), "{ok}");
        }
        for bad in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/jsonp", "", "text/json"] {
            assert!(!is_json(bad), "{bad}");
        }
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same_token(b"abc", b"abc"));
        for bad in [&b""[..], b"ab", b"abd", b"abcd", b"xbc"] {
            assert!(!same_token(bad, b"abc"));
        }
        let (a, b) = (new_token().unwrap(), new_token().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), "understudy-".len() + 64);
    }
}
