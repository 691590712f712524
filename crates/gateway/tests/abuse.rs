#![allow(clippy::unwrap_used, clippy::print_stdout)]
//! What a web page or a misbehaving program could do to the gateway: requests a browser sends
//! on a page's behalf are refused before anything reaches the upstream (llmock's journal stays
//! empty), the token is checked, and half-sent requests neither lock out a real client nor
//! stay open past the header-read timeout.

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
    let mock = understudy_testkit::Llmock::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let env = Env::from_pairs([
        ("UNDERSTUDY_DATA_DIR", dir.path().join("data").display().to_string()),
        ("UNDERSTUDY_CONFIG", dir.path().join("c.toml").display().to_string()),
    ]);
    let paths = Paths::resolve(&env).unwrap();
    let mut config = Config {
        providers: vec![ProviderConfig { id: "openai".into(), base_url: mock.base_url(), model: "gpt-4o-mini".into(), api_key: ApiKeySource::Keyring }],
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

        // The real thing: JSON (charset too), the token, and what a same-origin client may send.
        let mut req = http
            .post(&chat)
            .header("content-type", "application/json; charset=utf-8")
            .header("origin", &own)
            .header("sec-fetch-site", "same-origin")
            .body(BODY);
        if token_on {
            req = req.bearer_auth(TOKEN);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 200, "{:?}", r.text().await);
        assert_eq!(r.headers()["x-understudy-provider"], "openai");
        assert!(gw.upstream_requests().await >= 1);
    }
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
    let opened = Instant::now();
    let mut stalled = Vec::with_capacity(1000);
    for _ in 0..1000 {
        let mut s = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
        s.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: appl").await.unwrap();
        stalled.push(s);
    }
    println!("1000 half-sent requests open after {:?}", opened.elapsed());

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
