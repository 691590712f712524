//! Soak: 2000 requests through `understudy serve` while llmock injects a random fault into most
//! of them. Every request must be answered (by OpenAI or the offline model) or get the right
//! OpenAI-shaped error; the gateway's RSS may grow < 10 % after warm-up and its open file
//! descriptors must not grow. Run with `cargo xtask soak` (release build).

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn proc_status(pid: u32, key: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines().find(|l| l.starts_with(key)).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

fn main() {
    let total: usize = std::env::var("SOAK_REQUESTS").ok().and_then(|v| v.parse().ok()).unwrap_or(2000);
    let warmup = total / 10;
    let mock = understudy_testkit::Llmock::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let (mut serve, port) = start_gateway(&mock, dir.path());
    let pid = serve.id();
    let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let faults = faults();
    let mut rng = 0x9E37_79B9_7F4A_7C15_u64;
    let mut outcomes = Outcomes::default();
    let (mut rss0, mut fd0) = (0, 0);
    let t0 = Instant::now();
    for i in 0..total {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        // Not the bit the fault is drawn by (30 faults: an even count), so every fault meets
        // both modes.
        let stream = (rng >> 32) & 1 == 1;
        let fault = faults[(rng % faults.len() as u64) as usize].clone().map(|f| unstreamed(f, stream));
        http.post(mock.admin_url("reset")).send().unwrap();
        if let Some(mut f) = fault.clone() {
            f["match"] = serde_json::json!({ "stream": stream });
            http.post(mock.admin_url("scenario")).json(&serde_json::json!({ "behaviors": [f] })).send().unwrap();
        }
        let body = serde_json::json!({ "model": "gpt-4o-mini", "stream": stream, "max_tokens": 8, "messages": [{ "role": "user", "content": format!("request {i}") }] });
        let r = http.post(format!("http://127.0.0.1:{port}/v1/chat/completions")).json(&body).send().unwrap();
        let (status, provider) = (r.status().as_u16(), r.headers().get("x-understudy-provider").map(|v| v.to_str().unwrap().to_string()));
        let text = r.text().unwrap_or_default();
        outcomes.record(i, fault.as_ref(), stream, status, provider.as_deref(), &text);
        // Paced like a busy tool rather than a tight loop, so that the breaker's short open
        // spells (100 ms here) do not swallow most of the injected faults.
        std::thread::sleep(Duration::from_millis(25));
        if i + 1 == warmup {
            (rss0, fd0) = (proc_status(pid, "VmRSS:"), fds(pid));
        }
    }
    let (rss1, fd1) = (proc_status(pid, "VmRSS:"), fds(pid));
    Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
    let code = serve.wait().unwrap().code();
    let growth = (rss1 as f64 - rss0 as f64) / rss0 as f64 * 100.0;
    outcomes.report(total, t0.elapsed());
    println!(
        "gateway RSS after warm-up {} MB, at the end {} MB ({growth:+.1} %, target < 10 %); open fds {fd0} → {fd1}; exit on SIGTERM {code:?}",
        rss0 / 1024,
        rss1 / 1024
    );
    outcomes.report_kinds();
    assert!(outcomes.wrong.is_empty(), "{} requests got a wrong outcome", outcomes.wrong.len());
    assert!(growth < 10.0, "RSS grew {growth:.1} %");
    assert!(fd1 <= fd0 + 4, "fds {fd0} → {fd1}");
    assert_eq!(code, Some(0));
}

/// `understudy serve` on a free port with short failover timings, OpenAI at `mock` and the tiny
/// model offline; returns once it accepts connections.
fn start_gateway(mock: &understudy_testkit::Llmock, dir: &std::path::Path) -> (std::process::Child, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    std::fs::write(
        dir.join("config.toml"),
        format!("[failover]\nstatus_page = \"\"\nfirst_token_timeout = \"1s\"\nstall_timeout = \"1s\"\nopen_for = \"100ms\"\nopen_for_max = \"500ms\"\nprobe_interval = \"200ms\"\n[local]\ncontext = 1024\nthreads = 1\n[gateway]\nlisten = \"127.0.0.1:{port}\"\nrequire_token = false\n"),
    )
    .unwrap();
    let serve = Command::new(env!("CARGO_BIN_EXE_understudy"))
        .arg("serve")
        .env("UNDERSTUDY_CONFIG", dir.join("config.toml"))
        .env("UNDERSTUDY_DATA_DIR", dir.join("data"))
        .env("OPENAI_BASE_URL", mock.base_url())
        .env("OPENAI_API_KEY", "sk-soak-0123456789")
        .env("UNDERSTUDY_LOCAL_MODEL", understudy_testkit::tiny_gguf())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(50));
    }
    (serve, port)
}

/// The faults drawn from, `None` for a healthy answer. About a third of the requests get a
/// fault: enough to open the breaker now and then (and recover through probes), not so many
/// that it stays open and no request meets a fault.
fn faults() -> Vec<Option<serde_json::Value>> {
    let mut faults = vec![None; 20];
    faults.extend([
        Some(serde_json::json!({ "type": "fail", "status": 503 })),
        Some(serde_json::json!({ "type": "fail", "status": 500 })),
        Some(serde_json::json!({ "type": "fail", "status": 429, "retry_after": 30 })),
        Some(serde_json::json!({ "type": "fail", "status": 401, "code": "invalid_api_key" })),
        Some(serde_json::json!({ "type": "fail", "status": 400, "code": "context_length_exceeded", "message": "too long" })),
        Some(serde_json::json!({ "type": "slow_first_token", "seconds": 2 })),
        Some(serde_json::json!({ "type": "stream_fault", "kind": "truncate", "after_chunks": 2 })),
        Some(serde_json::json!({ "type": "stream_fault", "kind": "disconnect", "after_chunks": 2 })),
        Some(serde_json::json!({ "type": "stream_fault", "kind": "malformed", "after_chunks": 2 })),
        Some(serde_json::json!({ "type": "stream_fault", "kind": "stall", "after_chunks": 2, "stall_seconds": 3 })),
    ]);
    faults
}

/// `fault` as an unstreamed request meets it: one of a first token or of a stream's chunks
/// becomes a whole response held back 3 s (first token 1 s here), which the gateway's
/// 1-token checks watch. A late first token: the answer alone is held, the checks pass and the
/// answer is waited for. A stream fault: what comes next is held too (the first check, and a
/// background probe that may come before it), and the provider is given up when a first token
/// would have been.
fn unstreamed(fault: serde_json::Value, stream: bool) -> serde_json::Value {
    match fault["type"].as_str() {
        _ if stream => fault,
        Some("slow_first_token") => serde_json::json!({ "type": "delay", "seconds": 3, "times": 1 }),
        Some("stream_fault") => serde_json::json!({ "type": "delay", "seconds": 3, "times": 4 }),
        _ => fault,
    }
}

/// How the requests came out.
#[derive(Default)]
struct Outcomes {
    answered: usize,
    /// Of those, answered by the offline model.
    local: usize,
    /// The right OpenAI-shaped error.
    errors: usize,
    wrong: Vec<String>,
    /// Per fault kind: (requests, answered by the offline model).
    by_kind: std::collections::BTreeMap<String, (usize, usize)>,
}

impl Outcomes {
    /// Judges request `i`'s response (`provider`: its `x-understudy-provider`).
    fn record(&mut self, i: usize, fault: Option<&serde_json::Value>, stream: bool, status: u16, provider: Option<&str>, text: &str) {
        let is_400 = fault.is_some_and(|f| f["status"] == 400);
        let ok = if is_400 && provider.is_none() {
            // A bad request is the caller's to fix: OpenAI's error, not a failover.
            status == 400 && text.contains("\"error\"")
        } else {
            status == 200 && (if stream { text.contains("[DONE]") } else { text.contains("\"content\"") })
        };
        let kind = fault.map_or("none".to_string(), |f| match f["type"].as_str().unwrap_or("") {
            // The request held alone (x1), or with what follows it (x4).
            "delay" => format!("delay (unstreamed) x{}", f["times"]),
            t => format!("{t} {}", f.get("status").or(f.get("kind")).map(|v| v.to_string()).unwrap_or_default()),
        });
        let e = self.by_kind.entry(kind).or_default();
        e.0 += 1;
        e.1 += usize::from(provider == Some("local"));
        if ok {
            if status == 200 {
                self.answered += 1;
                self.local += usize::from(provider == Some("local"));
            } else {
                self.errors += 1;
            }
        } else {
            self.wrong.push(format!("#{i} fault {fault:?} stream {stream}: {status} {}", text.chars().take(200).collect::<String>()));
        }
    }

    fn report(&self, total: usize, took: Duration) {
        println!(
            "soak: {total} requests in {:.0} s; answered {} ({} by the offline model), correct errors {}, wrong {}",
            took.as_secs_f64(),
            self.answered,
            self.local,
            self.errors,
            self.wrong.len()
        );
    }

    fn report_kinds(&self) {
        for (k, (n, l)) in &self.by_kind {
            println!("  {k:<28} {n:>5} requests, {l:>5} answered locally");
        }
        for w in self.wrong.iter().take(10) {
            println!("  {w}");
        }
    }
}
