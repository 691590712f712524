#![allow(clippy::unwrap_used, clippy::print_stdout)]
//! What a web page or a misbehaving program could do to the gateway: requests a browser sends
//! on a page's behalf are refused before anything reaches the upstream (llmock's journal stays
//! empty), the token is checked, half-sent requests neither lock out a real client nor stay
//! open past the header-read timeout, and a client that stops reading its answer is dropped.

mod common;

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use understudy_core::config::{ApiKeySource, Config, ProviderConfig};
use understudy_core::{Env, Paths};
use understudy_gateway::{GatewayConfig, Limits};
use understudy_local::engine::EngineConfig;
use understudy_local::Engine;
use understudy_router::chain::FixedKey;
use understudy_router::{Chain, Router};

const TOKEN: &str = "gw-test-token-0123456789";

struct Gw {
    mock: understudy_testkit::Llmock,
    addr: std::net::SocketAddr,
    _dir: tempfile::TempDir,
}

impl Gw {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// How many requests llmock has served.
    async fn upstream_requests(&self) -> usize {
        let v: serde_json::Value = reqwest::get(self.mock.admin_url("requests")).await.unwrap().json().await.unwrap();
        v.as_array().or_else(|| v.get("requests").and_then(|r| r.as_array())).map_or_else(|| panic!("llmock journal: {v}"), Vec::len)
    }
}

async fn start(cfg: GatewayConfig) -> Gw {
    start_with(cfg, None).await
}

/// A gateway whose provider is llmock, or the upstream at `base_url`.
async fn start_with(cfg: GatewayConfig, base_url: Option<String>) -> Gw {
    let mock = understudy_testkit::Llmock::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let env = Env::from_pairs([
        ("UNDERSTUDY_DATA_DIR", dir.path().join("data").display().to_string()),
        ("UNDERSTUDY_CONFIG", dir.path().join("c.toml").display().to_string()),
    ]);
    let paths = Paths::resolve(&env).unwrap();
    let mut config = Config {
        providers: vec![ProviderConfig {
            id: "openai".into(),
            base_url: base_url.unwrap_or_else(|| mock.base_url()),
            model: "gpt-4o-mini".into(),
            api_key: ApiKeySource::Keyring,
        }],
        ..Config::default()
    };
    config.failover.status_page = String::new();
    let router = Router::new(
        Chain::build(&config, &paths, &FixedKey("sk-test-ABUSE0123456789".into())),
        Engine::new(EngineConfig::new(std::path::PathBuf::from("/nonexistent"), &[])),
    );
    let running = understudy_gateway::start(router, cfg, "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = running.addr;
    // The gateway lives as long as the test's runtime.
    std::mem::forget(running);
    Gw { mock, addr, _dir: dir }
}

fn with_token() -> GatewayConfig {
    GatewayConfig { token: Some(TOKEN.into()), ..GatewayConfig::default() }
}

/// What is sent, its extra headers, its content type; the status and error code expected.
type Case = (&'static str, Vec<(&'static str, String)>, Option<&'static str>, u16, &'static str);

const BODY: &str = r#"{"model":"gpt-4o-mini","max_tokens":4,"messages":[{"role":"user","content":"hi"}]}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_a_browser_could_send_never_reach_the_upstream() {
    for cfg in [with_token(), GatewayConfig::default()] {
        let token_on = cfg.token.is_some();
        let gw = start(cfg).await;
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let chat = gw.url("/v1/chat/completions");
        let own = format!("http://127.0.0.1:{}", gw.addr.port());
        let cases: Vec<Case> = vec![
            ("Origin of another site", vec![("origin", "https://evil.example".into())], Some("application/json"), 403, "origin_not_allowed"),
            ("Origin of another port on localhost", vec![("origin", "http://localhost:3000".into())], Some("application/json"), 403, "origin_not_allowed"),
            ("Origin null (sandboxed frame, file:)", vec![("origin", "null".into())], Some("application/json"), 403, "origin_not_allowed"),
            (
                "Origin https on our port",
                vec![("origin", format!("https://127.0.0.1:{}", gw.addr.port()))],
                Some("application/json"),
                403,
                "origin_not_allowed",
            ),
            ("Sec-Fetch-Site cross-site", vec![("sec-fetch-site", "cross-site".into())], Some("application/json"), 403, "cross_site_request"),
            ("Sec-Fetch-Site same-site", vec![("sec-fetch-site", "same-site".into())], Some("application/json"), 403, "cross_site_request"),
            ("text/plain (no preflight)", vec![], Some("text/plain"), 415, "unsupported_media_type"),
            ("text/plain with charset", vec![], Some("text/plain;charset=UTF-8"), 415, "unsupported_media_type"),
            ("form-urlencoded", vec![], Some("application/x-www-form-urlencoded"), 415, "unsupported_media_type"),
            ("multipart form", vec![], Some("multipart/form-data; boundary=xyz"), 415, "unsupported_media_type"),
            ("no content type", vec![], None, 415, "unsupported_media_type"),
            (
                "Origin of another loopback address on our port",
                vec![("origin", format!("http://127.0.0.2:{}", gw.addr.port()))],
                Some("application/json"),
                403,
                "origin_not_allowed",
            ),
            ("Origin 0.0.0.0 on our port", vec![("origin", format!("http://0.0.0.0:{}", gw.addr.port()))], Some("application/json"), 403, "origin_not_allowed"),
            ("Origin with a path", vec![("origin", format!("{own}/"))], Some("application/json"), 403, "origin_not_allowed"),
            (
                "two Origins, ours first",
                vec![("origin", own.clone()), ("origin", "https://evil.example".into())],
                Some("application/json"),
                403,
                "origin_not_allowed",
            ),
            (
                "two Sec-Fetch-Site, same-origin first",
                vec![("sec-fetch-site", "same-origin".into()), ("sec-fetch-site", "cross-site".into())],
                Some("application/json"),
                403,
                "cross_site_request",
            ),
            ("Referer of another site, no Origin", vec![("referer", "https://evil.example/page".into())], Some("application/json"), 403, "cross_site_request"),
            ("text/plain with a JSON parameter", vec![], Some("text/plain; application/json"), 415, "unsupported_media_type"),
            ("a JSON list of types", vec![], Some("application/json, text/plain"), 415, "unsupported_media_type"),
            ("two Content-Types, JSON first", vec![("content-type", "text/plain".into())], Some("application/json"), 415, "unsupported_media_type"),
            (
                "a cross-site text/plain form post",
                vec![("origin", "https://evil.example".into()), ("sec-fetch-site", "cross-site".into())],
                Some("text/plain"),
                403,
                "origin_not_allowed",
            ),
        ];
        for (what, headers, content_type, status, code) in cases {
            let mut req = http.post(&chat).bearer_auth(TOKEN).body(BODY);
            if let Some(ct) = content_type {
                req = req.header("content-type", ct);
            }
            for (k, v) in headers {
                req = req.header(k, v);
            }
            let r = req.send().await.unwrap();
            assert_eq!(r.status().as_u16(), status, "{what}");
            hardened(r.headers(), what);
            let v: serde_json::Value = r.json().await.unwrap();
            assert_eq!(v["error"]["code"], code, "{what}: {v}");
            assert_eq!(v["error"]["type"], "invalid_request_error", "{what}: {v}");
        }
        // GET /v1/models would ask the upstream too.
        let r = http.get(gw.url("/v1/models")).bearer_auth(TOKEN).header("origin", "https://evil.example").send().await.unwrap();
        assert_eq!(r.status(), 403);
        let r = http.get(gw.url("/v1/models")).bearer_auth(TOKEN).header("sec-fetch-site", "cross-site").send().await.unwrap();
        assert_eq!(r.status(), 403);
        assert_eq!(gw.upstream_requests().await, 0, "a refused request reached the upstream (token {token_on})");

        if token_on {
            for (what, auth) in [("wrong token", Some("gw-test-token-0123456788")), ("a prefix of it", Some("gw-test-token")), ("no token", None)] {
                let mut req = http.post(&chat).header("content-type", "application/json").body(BODY);
                if let Some(a) = auth {
                    req = req.bearer_auth(a);
                }
                let r = req.send().await.unwrap();
                assert_eq!(r.status(), 401, "{what}");
                let v: serde_json::Value = r.json().await.unwrap();
                assert_eq!(v["error"]["code"], "invalid_api_key", "{what}: {v}");
            }
            assert_eq!(gw.upstream_requests().await, 0, "a request without the token reached the upstream");
        }

        // The real thing: JSON (charset too, any case), the token (the scheme in any case), and
        // what a same-origin client or a typed-in address may send.
        for (content_type, headers, auth) in [
            ("application/json; charset=utf-8", vec![("origin", own.clone()), ("sec-fetch-site", "same-origin".into())], "Bearer"),
            ("APPLICATION/JSON", vec![("origin", format!("http://localhost:{}", gw.addr.port())), ("referer", format!("{own}/page"))], "bearer"),
            ("application/json", vec![("sec-fetch-site", "none".into())], "Bearer"),
        ] {
            let mut req = http.post(&chat).header("content-type", content_type).body(BODY);
            for (k, v) in &headers {
                req = req.header(*k, v);
            }
            if token_on {
                req = req.header("authorization", format!("{auth} {TOKEN}"));
            }
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), 200, "{content_type} {headers:?}");
            assert_eq!(r.headers()["x-understudy-provider"], "openai");
            hardened(r.headers(), content_type);
        }
        assert_eq!(gw.upstream_requests().await, 3);
    }
}

/// Every answer tells a browser not to run or embed it elsewhere, whatever a page sent.
fn hardened(headers: &reqwest::header::HeaderMap, what: &str) {
    assert_eq!(headers.get("x-content-type-options").map(|v| v.as_bytes()), Some(&b"nosniff"[..]), "{what}");
    assert_eq!(headers.get("cross-origin-resource-policy").map(|v| v.as_bytes()), Some(&b"same-origin"[..]), "{what}");
    assert!(!headers.keys().any(|k| k.as_str().starts_with("access-control-")), "{what}: {headers:?}");
}

/// Sends `bytes` on a new connection and reads what comes back until the gateway closes it or
/// `wait` passes.
async fn exchange(addr: std::net::SocketAddr, bytes: &[u8], wait: Duration) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(wait, s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// How many responses a connection's bytes hold.
fn responses(text: &str) -> usize {
    text.matches("HTTP/1.").count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_http_tricks_never_reach_the_upstream() {
    let gw = start(with_token()).await;
    let port = gw.addr.port();
    let auth = format!("Authorization: Bearer {TOKEN}\r\n");
    let json = |extra: &str, host: &str| {
        format!("POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\n{auth}Content-Type: application/json\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{BODY}", BODY.len())
    };
    let ours = format!("127.0.0.1:{port}");
    let cases: Vec<(&str, String, &str)> = vec![
        // DNS rebinding: the page's own name, or names that merely look local.
        ("Host of another site", json("", "evil.example"), "403"),
        ("Host under nip.io", json("", &format!("127.0.0.1.nip.io:{port}")), "403"),
        ("Host localhost.evil", json("", "localhost.evil.example"), "403"),
        ("Host 127.1", json("", &format!("127.1:{port}")), "403"),
        ("Host 0x7f.1", json("", "0x7f.1"), "403"),
        ("Host 0.0.0.0", json("", &format!("0.0.0.0:{port}")), "403"),
        ("Host ::ffff:127.0.0.1", json("", &format!("[::ffff:127.0.0.1]:{port}")), "403"),
        ("two Hosts, ours first", json("Host: evil.example\r\n", &ours), "403"),
        (
            "an absolute-form target of another site",
            format!("POST http://evil.example/v1/chat/completions HTTP/1.1\r\nHost: {ours}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{BODY}", BODY.len()),
            "403",
        ),
        ("CONNECT", format!("CONNECT evil.example:443 HTTP/1.1\r\nHost: {ours}\r\n{auth}Connection: close\r\n\r\n"), "403"),
        ("a request with no Host", format!("POST /v1/chat/completions HTTP/1.0\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{BODY}", BODY.len()), "403"),
        // A preflight gets no CORS headers (checked by `hardened`), so the browser sends nothing.
        (
            "a CORS preflight",
            format!("OPTIONS /v1/chat/completions HTTP/1.1\r\nHost: {ours}\r\nOrigin: https://evil.example\r\nAccess-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: authorization, content-type\r\nConnection: close\r\n\r\n"),
            "403",
        ),
        (
            "a WebSocket from a page",
            format!("GET /v1/chat/completions HTTP/1.1\r\nHost: {ours}\r\nOrigin: https://evil.example\r\nUpgrade: websocket\r\nConnection: Upgrade, close\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"),
            "403",
        ),
        ("a <script src> of the status", format!("GET /understudy/status HTTP/1.1\r\nHost: {ours}\r\nReferer: https://evil.example/\r\nConnection: close\r\n\r\n"), "403"),
        // Smuggling: Transfer-Encoding wins over Content-Length (an empty body here: 400) and the
        // connection is closed after it, so the request hidden in the "body" is never read.
        (
            "Content-Length with Transfer-Encoding",
            format!("POST /v1/chat/completions HTTP/1.1\r\nHost: {ours}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{}", 7 + json("", &ours).len(), json("", &ours)),
            "400",
        ),
        ("two Content-Lengths", json(&format!("Content-Length: {}\r\n", BODY.len() + 1), &ours), "400"),
        ("a 1 MB header", format!("GET /v1/models HTTP/1.1\r\nHost: {ours}\r\n{auth}X-Big: {}\r\nConnection: close\r\n\r\n", "a".repeat(1 << 20)), "431"),
        ("the token in the query", format!("GET /v1/models?api_key={TOKEN} HTTP/1.1\r\nHost: {ours}\r\nConnection: close\r\n\r\n"), "401"),
        ("the token as api-key", format!("GET /v1/models HTTP/1.1\r\nHost: {ours}\r\napi-key: {TOKEN}\r\nConnection: close\r\n\r\n"), "401"),
        ("the token as Basic", format!("GET /v1/models HTTP/1.1\r\nHost: {ours}\r\nAuthorization: Basic {TOKEN}\r\nConnection: close\r\n\r\n"), "401"),
        // Pipelined: each request is judged on its own.
        ("a request pipelined behind a refused one", format!("{}{}", json("Origin: https://evil.example\r\n", &ours).replace("Connection: close\r\n", ""), json("", "evil.example")), "403"),
    ];
    for (what, request, status) in cases {
        let text = exchange(gw.addr, request.as_bytes(), Duration::from_secs(5)).await;
        assert!(text.starts_with(&format!("HTTP/1.1 {status}")) || text.starts_with(&format!("HTTP/1.0 {status}")), "{what}: {text}");
        assert_eq!(responses(&text), 1 + usize::from(what.contains("pipelined")), "{what}: {text}");
        assert!(!text.contains(" 101 ") && !text.contains(" 200 "), "{what}: {text}");
        if status != "400" && status != "431" {
            assert!(text.contains("x-content-type-options: nosniff"), "{what}: {text}");
        }
    }
    assert_eq!(gw.upstream_requests().await, 0, "a raw trick reached the upstream");

    // A body declared over the limit is refused at once, not waited for (curl sends large bodies
    // after `Expect: 100-continue`, and would wait for the body timeout).
    let t0 = Instant::now();
    let head = format!("POST /v1/chat/completions HTTP/1.1\r\nHost: {ours}\r\n{auth}Content-Type: application/json\r\nContent-Length: 100000000\r\nExpect: 100-continue\r\n\r\n");
    let text = exchange(gw.addr, head.as_bytes(), Duration::from_secs(5)).await;
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains(r#""type":"invalid_request_error""#), "{text}");
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    assert_eq!(gw.upstream_requests().await, 0);
}

/// Open file descriptors: 1000 client sockets (and the gateway's side) need more than some
/// systems' default soft limit of 1024.
fn raise_fd_limit() {
    #[cfg(unix)]
    {
        use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
        let l = getrlimit(Resource::Nofile);
        if l.current.is_some_and(|c| c < 4096) {
            let _ = setrlimit(Resource::Nofile, Rlimit { current: l.maximum.map(|m| m.min(65536)), maximum: l.maximum });
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_half_sent_requests_neither_slow_a_client_nor_stay_open() {
    raise_fd_limit();
    let header_read = Duration::from_secs(2);
    let limits = Limits { header_read, ..Limits::default() };
    let gw = start(GatewayConfig { token: Some(TOKEN.into()), limits }).await;
    let (opened, gw_addr) = (Instant::now(), gw.addr);
    // All at once, as a flood would.
    let connects: Vec<_> = (0..1000)
        .map(|_| {
            tokio::spawn(async move {
                let t = Instant::now();
                let mut s = tokio::net::TcpStream::connect(gw_addr).await.unwrap();
                let took = t.elapsed();
                s.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: appl").await.unwrap();
                (s, took)
            })
        })
        .collect();
    let mut stalled = Vec::with_capacity(1000);
    let mut slowest_connect = Duration::ZERO;
    for c in connects {
        let (s, took) = c.await.unwrap();
        slowest_connect = slowest_connect.max(took);
        stalled.push(s);
    }
    println!("1000 half-sent requests open after {:?}; the slowest connect took {slowest_connect:?}", opened.elapsed());
    // The kernel queues them all until accepted (the listen backlog, as far as the system's own
    // maximum allows): none waits for its SYN to be sent again, a second later.
    let somaxconn: u32 = std::fs::read_to_string("/proc/sys/net/core/somaxconn").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0);
    if somaxconn >= 1000 {
        assert!(slowest_connect < Duration::from_millis(900), "a connect waited {slowest_connect:?}: the accept queue overflowed");
    }

    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let t0 = Instant::now();
    let r = http
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(BODY)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.bytes().await.unwrap();
    let latency = t0.elapsed();
    println!("a real request with 1000 half-sent ones open: {latency:?}");
    assert!(latency < Duration::from_secs(5));

    // Every stalled connection is closed by the gateway: at the cap the oldest idle ones make
    // room, the rest by the header-read timeout.
    let mut closed_at = Vec::with_capacity(stalled.len());
    let deadline = opened + header_read + Duration::from_secs(5);
    for mut s in stalled {
        let mut buf = [0u8; 512];
        let left = deadline.saturating_duration_since(Instant::now());
        // EOF, a reset or hyper's 408: anything but silence.
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Ok(_) => closed_at.push(opened.elapsed()),
            Err(_) => panic!("a half-sent request was still open {:?} after it was sent", opened.elapsed()),
        }
    }
    closed_at.sort();
    println!("all 1000 closed; last after {:?} (header-read timeout {header_read:?})", closed_at.last().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_and_stalled_bodies_are_dropped() {
    let limits = Limits { header_read: Duration::from_secs(1), body_read: Duration::from_secs(1), ..Limits::default() };
    let gw = start(GatewayConfig { token: None, limits }).await;
    // A connection that never sends anything.
    let mut silent = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    // A body that stops half-way.
    let mut half_body = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    half_body
        .write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"model\":")
        .await
        .unwrap();
    let t0 = Instant::now();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buf)).await.expect("a silent connection stayed open").unwrap_or(0);
    assert!(n == 0 || String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 408"), "{}", String::from_utf8_lossy(&buf[..n]));
    let n = tokio::time::timeout(Duration::from_secs(5), half_body.read(&mut buf)).await.expect("a stalled body stayed open").unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    // Keep-alive: a connection idle after its answer is closed too.
    let mut keep = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    keep.write_all(b"GET /understudy/status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await.unwrap();
    let n = keep.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), keep.read_to_end(&mut rest)).await.expect("an idle keep-alive connection stayed open").ok();
    println!("silent, stalled-body and idle connections closed within {:?}", t0.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_half_sent_requests_leaves_a_real_client_s_keep_alive_connection_open() {
    let limits = Limits { max_connections: 8, ..Limits::default() };
    let gw = start(GatewayConfig { token: Some(TOKEN.into()), limits }).await;
    let ask = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{BODY}",
        BODY.len()
    );
    // A client that keeps its connection between requests, as SDKs do.
    let mut client = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let mut buf = vec![0u8; 8192];
    for round in 0..3 {
        client.write_all(ask.as_bytes()).await.unwrap();
        let n = tokio::time::timeout(Duration::from_secs(5), client.read(&mut buf)).await.expect("no answer").unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"), "round {round}: {}", String::from_utf8_lossy(&buf[..n]));
        // Meanwhile five times the cap of half-sent requests: at the cap each new one closes a
        // connection that never sent a whole request, not the client's idle one.
        let mut stalled = Vec::new();
        for _ in 0..40 {
            let mut s = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
            s.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty").await.unwrap();
            stalled.push(s);
        }
        // The last of them has been accepted (and so the older ones closed) once it answers.
        let mut last = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
        last.write_all(b"GET /understudy/status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await.unwrap();
        let n = tokio::time::timeout(Duration::from_secs(5), last.read(&mut buf)).await.expect("a new connection got no answer").unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    }
    assert_eq!(gw.upstream_requests().await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_or_body_sent_a_byte_at_a_time_is_cut_at_its_timeout() {
    let limits = Limits { header_read: Duration::from_secs(1), body_read: Duration::from_secs(1), ..Limits::default() };
    let gw = start(GatewayConfig { token: None, limits }).await;
    // Each byte comes well within any per-read timeout; the header as a whole does not.
    let drip = |head: &'static [u8], then: &'static [u8]| async move {
        let mut s = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
        s.write_all(head).await.unwrap();
        let t0 = Instant::now();
        let mut buf = vec![0u8; 4096];
        for b in then.iter().cycle() {
            tokio::select! {
                r = s.read(&mut buf) => return (t0.elapsed(), String::from_utf8_lossy(&buf[..r.unwrap_or(0)]).into_owned()),
                () = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
            if s.write_all(&[*b]).await.is_err() || t0.elapsed() > Duration::from_secs(10) {
                return (t0.elapsed(), String::new());
            }
        }
        unreachable!()
    };
    let (took, _) = drip(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n", b"X-Pad: aaaaaaaa\r\n").await;
    println!("a header dripped a byte per 100 ms was cut after {took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    let (took, text) =
        drip(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n[", b" ").await;
    println!("a body dripped a byte per 100 ms was cut after {took:?}");
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert_eq!(gw.upstream_requests().await, 0);
}

/// An upstream whose every chat completion is a stream without end, sent as fast as it is read;
/// it reports the number of each one (from 0) and when its connection was closed under it (the
/// gateway cancelled the answer).
async fn endless_upstream() -> (String, tokio::sync::mpsc::UnboundedReceiver<(usize, Instant)>) {
    let (closed_tx, closed_rx) = tokio::sync::mpsc::unbounded_channel();
    let chats = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let url = common::upstream(move |head, _, mut s| {
        let (closed, chats) = (closed_tx.clone(), chats.clone());
        async move {
            if !head.starts_with("post /v1/chat/completions ") {
                let _ = s.write_all(common::NOT_FOUND).await;
                return;
            }
            let n = chats.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let chunk = |delta: serde_json::Value| {
                let c = serde_json::json!({"id": "chatcmpl-endless", "object": "chat.completion.chunk", "created": 0, "model": "gpt-4o-mini",
                    "choices": [{"index": 0, "delta": delta, "finish_reason": null}]});
                format!("data: {c}\n\n")
            };
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n{}",
                chunk(serde_json::json!({"role": "assistant", "content": ""}))
            );
            let text = chunk(serde_json::json!({ "content": "lorem ipsum ".repeat(80) }));
            let mut out = s.write_all(head.as_bytes()).await;
            while out.is_ok() {
                out = s.write_all(text.as_bytes()).await;
            }
            let _ = closed.send((n, Instant::now()));
        }
    })
    .await;
    (url, closed_rx)
}

/// A streamed chat request; returns once the answer's status line has come.
async fn streamed_request(addr: std::net::SocketAddr) -> tokio::net::TcpStream {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let body = r#"{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"write forever"}]}"#;
    let req =
        format!("POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len());
    s.write_all(req.as_bytes()).await.unwrap();
    let mut status = [0u8; 12];
    tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut status)).await.expect("no answer").unwrap();
    assert_eq!(&status, b"HTTP/1.1 200");
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_dropped_and_a_slow_reader_is_not() {
    let write_stall = Duration::from_secs(2);
    let (url, mut upstream_closed) = endless_upstream().await;
    let gw = start_with(GatewayConfig { token: None, limits: Limits { write_stall, ..Limits::default() } }, Some(url)).await;

    // A slow but steady reader, far slower than the upstream sends: 16 KiB every 100 ms, for
    // three times the limit while the other client below stops. (On loopback its kernel reopens
    // a full receive window in steps of about 128 KiB, so a write to it resumes once per 128 KiB
    // it reads: here every 0.8 s. With the default 30 s limit a client must read about 4 KiB/s
    // to count as reading.)
    let mut slow = streamed_request(gw.addr).await;
    let slow = tokio::spawn(async move {
        let mut buf = vec![0u8; 16 * 1024];
        let (t0, mut got) = (Instant::now(), 0);
        while t0.elapsed() < write_stall * 3 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            match tokio::time::timeout(Duration::from_secs(5), slow.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => got += n,
                r => panic!("a slow reader was cut after {:?} and {got} bytes: {r:?}", t0.elapsed()),
            }
        }
        (slow, got)
    });

    // A client that reads the status line and then nothing.
    let mut stopped = streamed_request(gw.addr).await;
    let t0 = Instant::now();
    let (n, at) = tokio::time::timeout(write_stall + Duration::from_secs(10), upstream_closed.recv())
        .await
        .expect("the answer to a client that stopped reading was never cancelled")
        .unwrap();
    assert_eq!(n, 1, "the slow reader's answer was cancelled");
    let cancelled = at - t0;
    println!("a client that stopped reading: its answer cancelled after {cancelled:?} (write_stall {write_stall:?})");
    // Filling the buffers on the way takes a moment; then the limit runs.
    assert!(cancelled < write_stall + Duration::from_secs(3), "{cancelled:?}");
    // Its connection is closed: what it holds reads out to an end (EOF or a reset).
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stopped.read_to_end(&mut rest)).await.expect("the stopped client's connection stayed open").ok();

    let (slow, got) = slow.await.unwrap();
    println!("a slow reader read {got} bytes over {:?} and was not cut", write_stall * 3);
    assert!(upstream_closed.try_recv().is_err(), "the slow reader's answer was cancelled");
    // Once it goes away, its answer is cancelled too.
    drop(slow);
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), upstream_closed.recv()).await.expect("a closed client's answer was not cancelled").unwrap();
    assert_eq!(n, 0);
}
