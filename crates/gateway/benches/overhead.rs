//! What the gateway adds to a request: the same client calls llmock directly and through the
//! gateway (in this process, on its own runtime, release build), alternating in blocks, and the
//! per-request latencies are compared at p50 and p99; then the official openai Python SDK does
//! the same against the same llmock and gateway (benches/overhead_sdk.py), so the figure is what a
//! real client sees. Target: at most 1 ms added at p50.
//! Run with `cargo xtask bench gateway` (or `cargo bench -p understudy-gateway --bench overhead`).

#![allow(clippy::print_stdout)] // a benchmark: the table is its output

use std::time::{Duration, Instant};

use understudy_core::config::{ApiKeySource, Config, ProviderConfig};
use understudy_core::{Env, Paths};
use understudy_local::engine::EngineConfig;
use understudy_local::Engine;
use understudy_router::chain::FixedKey;
use understudy_router::{Chain, Router};

const BLOCKS: usize = 10;
const PER_BLOCK: usize = 200;

fn main() {
    let requests: usize = std::env::var("OVERHEAD_REQUESTS").ok().and_then(|v| v.parse().ok()).unwrap_or(BLOCKS * PER_BLOCK);
    let mock = understudy_testkit::Llmock::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let env = Env::from_pairs([
        ("UNDERSTUDY_DATA_DIR", dir.path().join("data").display().to_string()),
        ("UNDERSTUDY_CONFIG", dir.path().join("c.toml").display().to_string()),
    ]);
    let paths = Paths::resolve(&env).expect("paths");
    let config = Config {
        providers: vec![ProviderConfig { id: "openai".into(), base_url: mock.base_url(), model: "gpt-4o-mini".into(), api_key: ApiKeySource::Keyring }],
        ..Config::default()
    };
    let router = Router::new(
        Chain::build(&config, &paths, &FixedKey("sk-bench-0123456789".into())),
        Engine::new(EngineConfig::new(std::path::PathBuf::from("/nonexistent"), &[])),
    );
    let addr = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port");

    // The gateway on its own runtime and threads, as in `understudy serve`.
    let server = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    server.spawn(understudy_gateway::serve(router, understudy_gateway::GatewayConfig::default(), addr, std::future::pending()));
    let client_rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    client_rt.block_on(async {
        let http = reqwest::Client::builder().no_proxy().build().expect("client");
        let direct = format!("{}/chat/completions", mock.base_url());
        let gateway = format!("http://{addr}/v1/chat/completions");
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        println!("gateway overhead: {requests} requests per path and mode, llmock upstream, alternating blocks of {PER_BLOCK}\n");
        println!("reqwest as the client (this process)\n");
        header();
        let mut p50 = [(0.0, 0.0); 2];
        for stream in [false, true] {
            let body = serde_json::json!({ "model": "gpt-4o-mini", "stream": stream, "messages": [{ "role": "user", "content": "hello" }] });
            // Warm both paths (connections, the router's client) before measuring.
            for url in [&direct, &gateway] {
                for _ in 0..20 {
                    once(&http, url, &body).await;
                }
            }
            let (mut d, mut g) = (Vec::with_capacity(requests), Vec::with_capacity(requests));
            while d.len() < requests {
                let n = PER_BLOCK.min(requests - d.len());
                for _ in 0..n {
                    d.push(once(&http, &direct, &body).await);
                }
                for _ in 0..n {
                    g.push(once(&http, &gateway, &body).await);
                }
            }
            p50[usize::from(stream)] = row(if stream { "stream" } else { "non-stream" }, &mut d, &mut g);
        }
        // The gateway streams from upstream even for a non-streamed client (to see a first token
        // that never comes, a stall, a cut it can continue); llmock streams slower than it sends
        // a whole answer (Starlette hands each chunk of a sync iterator to a thread), and that
        // difference is in the non-stream figure whatever the client.
        let stream_cost = p50[1].0 - p50[0].0;
        split(stream_cost, p50[0]);
        println!("\nthe official openai Python SDK as the client (benches/overhead_sdk.py), same llmock and gateway\n");
        if let Some(non_stream) = sdk(&mock.base_url(), &format!("http://{addr}/v1"), requests) {
            split(stream_cost, non_stream);
        }
        println!("\ntarget: added p50 <= 1 ms with either client");
    });
}

/// The same comparison with the Python SDK as the client, in its own process: what a real
/// client sees (its own headers, httpx's connection handling, the answer parsed into objects).
fn sdk(direct: &str, gateway: &str, requests: usize) -> Option<(f64, f64)> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/overhead_sdk.py");
    let out = std::process::Command::new(understudy_testkit::venv_python())
        .args([script, direct, gateway, &requests.to_string(), &PER_BLOCK.to_string()])
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("the venv's python (cargo xtask setup)");
    assert!(out.status.success(), "overhead_sdk.py failed");
    header();
    let mut non_stream = None;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        let series = |k: &str| -> Vec<Duration> {
            v[k].as_array().expect("timings").iter().filter_map(serde_json::Value::as_f64).map(|ms| Duration::from_secs_f64(ms / 1000.0)).collect()
        };
        let (mut d, mut g) = (series("direct"), series("gateway"));
        let mode = v["mode"].as_str().unwrap_or("?");
        let p50 = row(mode, &mut d, &mut g);
        if mode == "non-stream" {
            non_stream = Some(p50);
        }
    }
    non_stream
}

/// The non-stream figure taken apart: llmock's own cost of streaming instead of answering whole
/// (reqwest direct, stream p50 − non-stream p50) and what is left, the gateway's share.
fn split(stream_cost: f64, (d50, g50): (f64, f64)) {
    println!(
        "  non-stream added p50 {:.3} ms = llmock streaming instead of answering whole {stream_cost:.3} ms + the gateway's own {:.3} ms",
        g50 - d50,
        g50 - d50 - stream_cost
    );
}

fn header() {
    println!("{:<11} {:>11} {:>11} {:>11} {:>11} {:>11} {:>11}", "mode", "direct p50", "gw p50", "added p50", "direct p99", "gw p99", "added p99");
}

/// Prints one mode's line; returns the p50s (direct, gateway) in ms.
fn row(mode: &str, d: &mut [Duration], g: &mut [Duration]) -> (f64, f64) {
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
    (ms(d50), ms(g50))
}

/// One whole request: until the last byte of the body (for a stream, `[DONE]`).
async fn once(http: &reqwest::Client, url: &str, body: &serde_json::Value) -> Duration {
    let t0 = Instant::now();
    let r = http.post(url).bearer_auth("sk-bench-0123456789").json(body).send().await.expect("request");
    assert!(r.status().is_success(), "{url}: {}", r.status());
    let bytes = r.bytes().await.expect("body");
    let elapsed = t0.elapsed();
    assert!(!bytes.is_empty());
    elapsed
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort_unstable();
    v[((v.len() as f64 - 1.0) * p / 100.0).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
