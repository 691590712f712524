//! What the gateway adds to a request: the same client calls llmock directly and through the
//! gateway (in this process, on its own runtime, release build), interleaved, and the
//! per-request latencies are compared at p50 and p99; then the official openai Python SDK does
//! the same against the same llmock and gateway (benches/overhead_sdk.py), so the figure is what a
//! real client sees. Target: at most 1 ms added at p50.
//!
//! A non-streamed client's request goes upstream unstreamed, as the client sent it, so both
//! paths ask llmock the same and the difference is the gateway's own work; a streamed one is
//! timed until `[DONE]` too, where the SDK stops reading.
//! The gateway's thread's CPU time and context switches per request are printed as well: its own
//! work, which llmock's speed and the machine's load hardly move.
//! Run with `cargo xtask bench gateway` (or `cargo bench -p understudy-gateway --bench overhead`).

#![allow(clippy::print_stdout)] // a benchmark: the table is its output

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use understudy_core::config::{ApiKeySource, Config, ProviderConfig};
use understudy_core::{Env, Paths};
use understudy_local::engine::EngineConfig;
use understudy_local::Engine;
use understudy_router::chain::FixedKey;
use understudy_router::{Chain, Router};

const REQUESTS: usize = 2000;
const KEY: &str = "sk-bench-0123456789";

fn main() {
    let requests: usize = std::env::var("OVERHEAD_REQUESTS").ok().and_then(|v| v.parse().ok()).unwrap_or(REQUESTS);
    let mock = understudy_testkit::Llmock::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port");
    // The gateway on a runtime and thread of its own, as in `understudy serve`.
    let gateway_router = router(&mock, dir.path());
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // /proc/thread-self is /proc/PID/task/TID: this thread's own entry.
        let _ = tid_tx.send(std::fs::read_link("/proc/thread-self").ok().and_then(|p| p.file_name()?.to_str()?.parse::<i32>().ok()).unwrap_or(0));
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        if let Err(e) = rt.block_on(understudy_gateway::serve(gateway_router, understudy_gateway::GatewayConfig::default(), addr, std::future::pending())) {
            eprintln!("the gateway stopped: {e}");
            std::process::exit(1);
        }
    });
    let gateway_thread = tid_rx.recv().expect("the gateway's thread");
    let client_rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    client_rt.block_on(async {
        let bench = Bench {
            http: reqwest::Client::builder().no_proxy().build().expect("client"),
            direct: format!("{}/chat/completions", mock.base_url()),
            gateway: format!("http://{addr}/v1/chat/completions"),
            requests,
        };
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        println!("gateway overhead: {requests} requests per path and mode, llmock upstream, the paths interleaved request by request\n");
        println!("reqwest as the client (this process)\n");
        let before = ThreadUse::of(gateway_thread);
        bench.reqwest().await;
        ThreadUse::of(gateway_thread).since(before, 2 * (requests + 20));
        println!("\nthe official openai Python SDK as the client (benches/overhead_sdk.py), same llmock and gateway\n");
        // On a thread of its own: this runtime keeps serving its connections meanwhile (a
        // pooled connection llmock closes while idle is then seen closed, not reused).
        let (direct, gateway) = (mock.base_url(), format!("http://{addr}/v1"));
        tokio::task::spawn_blocking(move || sdk(&direct, &gateway, requests)).await.expect("the SDK's run");
        println!("\ntarget: added p50 <= 1 ms with either client");
    });
}

/// A router whose only provider is `mock`, as `understudy serve` builds it.
fn router(mock: &understudy_testkit::Llmock, dir: &std::path::Path) -> Router {
    let env =
        Env::from_pairs([("UNDERSTUDY_DATA_DIR", dir.join("data").display().to_string()), ("UNDERSTUDY_CONFIG", dir.join("c.toml").display().to_string())]);
    let paths = Paths::resolve(&env).expect("paths");
    let config = Config {
        providers: vec![ProviderConfig { id: "openai".into(), base_url: mock.base_url(), model: "gpt-4o-mini".into(), api_key: ApiKeySource::Keyring }],
        ..Config::default()
    };
    Router::new(Chain::build(&config, &paths, &FixedKey(KEY.into())), Engine::new(EngineConfig::new(std::path::PathBuf::from("/nonexistent"), &[])))
}

/// A client's request body, streamed or not.
fn body(stream: bool) -> Value {
    json!({ "model": "gpt-4o-mini", "stream": stream, "messages": [{ "role": "user", "content": "hello" }] })
}

struct Bench {
    http: reqwest::Client,
    direct: String,
    gateway: String,
    requests: usize,
}

/// One request's latency: until `[DONE]` (where the openai SDK stops reading) and until the
/// body's end; a non-streamed answer's `[DONE]` is its end.
#[derive(Debug, Clone, Copy)]
struct Timing {
    done: Duration,
    end: Duration,
}

impl Bench {
    /// Both modes with reqwest as the client.
    async fn reqwest(&self) {
        header();
        let whole = body(false);
        let [d, g] = self.measure([(&self.direct, &whole), (&self.gateway, &whole)]).await;
        row("non-stream", &mut ends(&d), &mut ends(&g));
        let streamed = body(true);
        let [d, g] = self.measure([(&self.direct, &streamed), (&self.gateway, &streamed)]).await;
        row("stream", &mut ends(&d), &mut ends(&g));
        // llmock sends its body's end a moment after [DONE]; a client that stops at [DONE]
        // (the SDK) does not wait for it, and the gateway sends [DONE] with the end.
        row("to [DONE]", &mut dones(&d), &mut dones(&g));
    }

    /// Each (url, body) `requests` times after a warm-up of each, interleaved request by request
    /// (each round in a rotated order), so a change in the machine's load reaches every series
    /// alike.
    async fn measure<const N: usize>(&self, series: [(&String, &Value); N]) -> [Vec<Timing>; N] {
        for (url, body) in series {
            for _ in 0..20 {
                self.once(url, body).await;
            }
        }
        let mut out: [Vec<Timing>; N] = std::array::from_fn(|_| Vec::with_capacity(self.requests));
        for round in 0..self.requests {
            for k in 0..N {
                let i = (round + k) % N;
                let (url, body) = series[i];
                out[i].push(self.once(url, body).await);
            }
        }
        out
    }

    /// One whole request, read to the body's end (so the connection is kept).
    async fn once(&self, url: &str, body: &Value) -> Timing {
        let t0 = Instant::now();
        let mut r = self.http.post(url).bearer_auth(KEY).json(body).send().await.expect("request");
        assert!(r.status().is_success(), "{url}: {}", r.status());
        let (mut seen, mut done) = (Vec::new(), None);
        let stream = r.headers().get("content-type").is_some_and(|t| t.as_bytes().starts_with(b"text/event-stream"));
        while let Some(chunk) = r.chunk().await.expect("body") {
            seen.extend_from_slice(&chunk);
            if stream && done.is_none() && contains(&seen, b"[DONE]") {
                done = Some(t0.elapsed());
            }
        }
        let end = t0.elapsed();
        assert!(!seen.is_empty());
        Timing { done: done.unwrap_or(end), end }
    }
}

/// What the gateway's thread has used: CPU time and context switches (from /proc), a measure
/// of its own work that llmock's speed and the machine's load hardly move.
#[derive(Debug, Clone, Copy)]
struct ThreadUse {
    cpu: Duration,
    switches: u64,
}

impl ThreadUse {
    fn of(tid: i32) -> ThreadUse {
        let dir = format!("/proc/self/task/{tid}");
        let stat = std::fs::read_to_string(format!("{dir}/stat")).unwrap_or_default();
        // utime and stime: fields 14 and 15, counted after the parenthesised name.
        let fields: Vec<u64> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().filter_map(|f| f.parse().ok()).collect();
        let ticks = fields.get(10).zip(fields.get(11)).map_or(0, |(u, s)| u + s);
        // Linux counts them in USER_HZ, 100 per second on every architecture it runs on.
        let tck = 100;
        let status = std::fs::read_to_string(format!("{dir}/status")).unwrap_or_default();
        let switches = status.lines().filter(|l| l.contains("ctxt_switches")).filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok()).sum();
        ThreadUse { cpu: Duration::from_secs_f64(ticks as f64 / tck as f64), switches }
    }

    fn since(self, before: ThreadUse, requests: usize) {
        let n = requests.max(1) as f64;
        println!(
            "  the gateway's thread: {:.0} µs CPU and {:.1} context switches per request (reqwest's {requests} requests through it)",
            (self.cpu - before.cpu).as_secs_f64() * 1e6 / n,
            (self.switches - before.switches) as f64 / n
        );
    }
}

fn ends(t: &[Timing]) -> Vec<Duration> {
    t.iter().map(|t| t.end).collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn dones(t: &[Timing]) -> Vec<Duration> {
    t.iter().map(|t| t.done).collect()
}

/// The same comparison with the Python SDK as the client, in its own process: what a real
/// client sees (its own headers, httpx's connection handling, the answer parsed into objects).
fn sdk(direct: &str, gateway: &str, requests: usize) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/overhead_sdk.py");
    let out = std::process::Command::new(understudy_testkit::venv_python())
        .args([script, direct, gateway, &requests.to_string()])
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("the venv's python (cargo xtask setup)");
    assert!(out.status.success(), "overhead_sdk.py failed");
    header();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: Value = serde_json::from_str(line).expect("a JSON line");
        let series = |k: &str| -> Vec<Duration> {
            v[k].as_array().expect("timings").iter().filter_map(Value::as_f64).map(|ms| Duration::from_secs_f64(ms / 1000.0)).collect()
        };
        let (mut d, mut g) = (series("direct"), series("gateway"));
        row(v["mode"].as_str().unwrap_or("?"), &mut d, &mut g);
    }
}

fn header() {
    println!("{:<11} {:>11} {:>11} {:>11} {:>11} {:>11} {:>11}", "mode", "direct p50", "gw p50", "added p50", "direct p99", "gw p99", "added p99");
}

/// Prints one mode's line.
fn row(mode: &str, d: &mut [Duration], g: &mut [Duration]) {
    let (d50, d99, g50, g99) = (pct(d, 50.0), pct(d, 99.0), pct(g, 50.0), pct(g, 99.0));
    println!(
        "{:<11} {:>9.3}ms {:>9.3}ms {:>9.3}ms {:>9.3}ms {:>9.3}ms {:>9.3}ms",
        mode,
        ms(d50),
        ms(g50),
        ms(g50) - ms(d50),
        ms(d99),
        ms(g99),
        ms(g99) - ms(d99)
    );
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort_unstable();
    v[((v.len() as f64 - 1.0) * p / 100.0).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
