//! Who may use the gateway. Any web page the user opens can send requests to loopback: a
//! `POST` with `Content-Type: text/plain` (or an HTML form) needs no CORS preflight, so without
//! these checks a page could spend the user's key. What a browser sends on a page's behalf is
//! refused before anything goes upstream; tools (SDKs, curl) send none of it.

use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;

use crate::error;

/// A refusal, in OpenAI's error shape; `None` lets the request through. A header sent twice is
/// judged by every value (no browser sends one twice, but the first must not vouch for the
/// second).
pub(crate) fn refuse(req: &Request, token: Option<&str>) -> Option<Response> {
    let headers = req.headers();
    let Some(host) = loopback_host(req) else {
        return Some(error(
            StatusCode::FORBIDDEN,
            "invalid_request_error",
            Some("host_not_allowed"),
            "Understudy's gateway only answers requests addressed to localhost.",
        ));
    };
    // Browsers send Origin on every cross-origin request (and on same-origin POSTs); a page on
    // another port of localhost is another origin too.
    if !every(headers, header::ORIGIN, |o| is_own_origin(o, host)) {
        return Some(error(
            StatusCode::FORBIDDEN,
            "invalid_request_error",
            Some("origin_not_allowed"),
            "Understudy's gateway does not answer web pages (the request carries another site's Origin).",
        ));
    }
    // Fetch metadata: sent by browsers even where Origin is not (e.g. a navigation); and a
    // Referer from another page where a browser too old for either sent neither.
    let cross_site = |site: &str| site.eq_ignore_ascii_case("cross-site") || site.eq_ignore_ascii_case("same-site");
    if !every(headers, "sec-fetch-site", |s| !cross_site(s)) || !every(headers, header::REFERER, |r| is_own_origin(origin_of(r), host)) {
        return Some(error(
            StatusCode::FORBIDDEN,
            "invalid_request_error",
            Some("cross_site_request"),
            "Understudy's gateway does not answer web pages (Sec-Fetch-Site or Referer says another site sent it).",
        ));
    }
    // Only JSON is read, and a page cannot send JSON cross-origin without a preflight, which
    // gets no CORS headers here.
    if req.method() == Method::POST && (headers.get(header::CONTENT_TYPE).is_none() || !every(headers, header::CONTENT_TYPE, is_json)) {
        return Some(error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid_request_error",
            Some("unsupported_media_type"),
            "The body must be sent as Content-Type: application/json.",
        ));
    }
    // Health is not a secret and `understudy status` has no token; answers and models are.
    if let Some(token) = token.filter(|_| req.uri().path() != "/understudy/status") {
        let given = headers.get(header::AUTHORIZATION).and_then(|h| h.to_str().ok()).and_then(bearer).unwrap_or_default();
        if !same_token(given.trim().as_bytes(), token.as_bytes()) {
            return Some(error(
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                Some("invalid_api_key"),
                "This gateway needs its token as the API key (OPENAI_API_KEY): Settings → Gateway in the app, UNDERSTUDY_GATEWAY_TOKEN for understudy serve.",
            ));
        }
    }
    // A body declared too large is refused at once, not read up to the limit first (or, for a
    // client that sent `Expect: 100-continue`, waited for until the body timeout).
    if declared_length(headers).is_some_and(|n| n > crate::MAX_BODY as u64) {
        return Some(error(StatusCode::PAYLOAD_TOO_LARGE, "invalid_request_error", None, "The request body is too large (50 MiB at most)."));
    }
    None
}

/// The body's length as `Content-Length` declares it.
pub(crate) fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH).and_then(|h| h.to_str().ok()).and_then(|n| n.trim().parse::<u64>().ok())
}

/// Headers every response carries: a browser must not run or embed an answer as a script,
/// image or page of another site (`nosniff`, and `Cross-Origin-Resource-Policy` even where it
/// would sniff JSON as something else), whatever a page manages to send.
pub(crate) async fn harden(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert("cross-origin-resource-policy", HeaderValue::from_static("same-origin"));
    response
}

/// Whether every value of `name` is text that passes `ok` (true when there is none).
fn every(headers: &HeaderMap, name: impl header::AsHeaderName, ok: impl Fn(&str) -> bool) -> bool {
    headers.get_all(name).iter().all(|v| v.to_str().is_ok_and(&ok))
}

/// The token of `Authorization: Bearer <token>` (the scheme in any case, as RFC 9110 has it).
fn bearer(value: &str) -> Option<&str> {
    value.get(..7).filter(|s| s.eq_ignore_ascii_case("bearer ")).map(|_| &value[7..])
}

/// The loopback host the request is addressed to: its one `Host`, which an absolute-form
/// target (`POST http://evil.example/…`, which RFC 9112 says wins over Host) must agree with.
fn loopback_host(req: &Request) -> Option<&str> {
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let host = match (hosts.next(), hosts.next()) {
        (Some(h), None) => h.to_str().ok()?,
        (None, _) => req.uri().authority()?.as_str(),
        (Some(_), Some(_)) => return None,
    };
    let target_ok = req.uri().authority().is_none_or(|a| is_loopback_host(a.as_str()));
    (target_ok && is_loopback_host(host)).then_some(host)
}

/// The host name of a `Host` or an origin's authority, without port or brackets.
fn name_of(host: &str) -> &str {
    match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(h, port)| if port.chars().all(|c| c.is_ascii_digit()) { h } else { host }),
    }
}

pub(crate) fn is_loopback_host(host: &str) -> bool {
    let name = name_of(host);
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

/// The gateway's own origin: `http://` + `localhost`, `127.0.0.1`, `[::1]` or the name the
/// request is addressed to, + the port it came to. (`null`, other schemes, other ports and
/// other loopback addresses, where another program may listen, are other origins.)
fn is_own_origin(origin: &str, host: &str) -> bool {
    let Some(authority) = origin.strip_prefix("http://") else { return false };
    let name = name_of(authority);
    let own_name = ["localhost", "127.0.0.1", "::1", name_of(host)].iter().any(|n| n.eq_ignore_ascii_case(name));
    !authority.contains('/') && own_name && is_loopback_host(authority) && port_of(authority) == port_of(host)
}

/// A URL's origin (`http://host:port` of `http://host:port/path?query`).
fn origin_of(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let end = url[after_scheme..].find(['/', '?', '#']).map_or(url.len(), |i| after_scheme + i);
    &url[..end]
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
            ("http://127.0.0.5:8321", "127.0.0.5:8321"),
            ("http://127.0.0.1:8321", "[::1]:8321"),
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
            // Another loopback address: another program may listen there on the same port.
            ("http://127.0.0.2:8321", "127.0.0.1:8321"),
            ("http://0.0.0.0:8321", "127.0.0.1:8321"),
            ("http://[::ffff:127.0.0.1]:8321", "127.0.0.1:8321"),
            ("http://localhost:8321/", "127.0.0.1:8321"),
        ] {
            assert!(!is_own_origin(origin, host), "{origin} {host}");
        }
    }

    #[test]
    fn a_referer_is_judged_by_its_origin() {
        assert_eq!(origin_of("http://127.0.0.1:8321/v1/x?y#z"), "http://127.0.0.1:8321");
        assert_eq!(origin_of("https://evil.example?x=http://127.0.0.1:8321/"), "https://evil.example");
        assert_eq!(origin_of("http://localhost:8321"), "http://localhost:8321");
        assert!(is_own_origin(origin_of("http://localhost:8321/page"), "127.0.0.1:8321"));
        assert!(!is_own_origin(origin_of("https://evil.example/http://127.0.0.1:8321"), "127.0.0.1:8321"));
    }

    #[test]
    fn the_bearer_scheme_is_read_in_any_case() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer abc"), Some("abc"));
        assert_eq!(bearer("BEARER abc"), Some("abc"));
        for bad in ["Basic abc", "Bearerabc", "abc", "", "Bear"] {
            assert_eq!(bearer(bad), None, "{bad}");
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
