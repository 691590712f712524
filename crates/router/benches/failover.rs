//! How long a user waits for the first token when OpenAI fails, per fault kind, with the local
//! model warm (loaded) and cold (worker not running); and what an open breaker adds over
//! local-only mode. llmock is the upstream, Gemma 3 270M the local model, release build.
//! Run with `cargo xtask bench failover`. Timeouts: connect 2 s, first token 2 s, stall 2 s.

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use understudy_core::config::{ApiKeySource, Config, Mode, ProviderConfig};
use understudy_core::{Env, Paths, Role};
use understudy_local::engine::EngineConfig;
use understudy_local::Engine;
use understudy_router::chain::FixedKey;
use understudy_router::{Chain, ChatRequest, Event, Router, Turn};
use understudy_testkit::Llmock;

const TIMEOUT: Duration = Duration::from_secs(2);

struct Bench {
    engine: Engine,
    paths: Paths,
    model: String,
    /// An address nothing listens on: connection refused.
    dead: String,
    warm_runs: usize,
    cold_runs: usize,
    _dir: tempfile::TempDir,
}

impl Bench {
    fn router(&self, base_url: &str, mode: Mode) -> Router {
        let mut c = Config { mode, ..Config::default() };
        c.providers = vec![ProviderConfig { id: "openai".into(), base_url: base_url.into(), model: "gpt-4o-mini".into(), api_key: ApiKeySource::Keyring }];
        c.local.model = Some(self.model.clone());
        c.local.context = 2048;
        c.failover.connect_timeout = TIMEOUT;
        c.failover.first_token_timeout = TIMEOUT;
        c.failover.stall_timeout = TIMEOUT;
        c.failover.status_page = String::new();
        Router::new(Chain::build(&c, &self.paths, &FixedKey("sk-bench-0123456789".into())), self.engine.clone())
    }
}

/// (time to the first token, longest gap between tokens, who answered last)
async fn ask(r: &Router) -> (Duration, Duration, String) {
    let t0 = Instant::now();
    let mut a = r.chat(ChatRequest { messages: vec![Turn::new(Role::User, "Say hello")], max_tokens: Some(8), ..ChatRequest::default() });
    let (mut first, mut last, mut gap, mut by) = (None, t0, Duration::ZERO, String::new());
    while let Some(e) = a.next().await {
        match e {
            Event::Token { .. } => {
                let now = Instant::now();
                first.get_or_insert(now - t0);
                gap = gap.max(now - last);
                last = now;
            }
            Event::Started { provider, .. } | Event::Switched { provider, .. } => by = provider,
            Event::Error { error } => panic!("no answer: {error}"),
            _ => {}
        }
    }
    (first.unwrap_or(t0.elapsed()), gap, by)
}

async fn scenario(mock: &Llmock, behaviors: serde_json::Value) {
    reqwest::Client::new().post(mock.admin_url("reset")).send().await.unwrap();
    let r = reqwest::Client::new().post(mock.admin_url("scenario")).json(&serde_json::json!({ "behaviors": behaviors })).send().await.unwrap();
    assert!(r.status().is_success());
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort_unstable();
    v[((v.len() as f64 - 1.0) * p / 100.0).round() as usize]
}

fn main() {
    let warm_runs: usize = std::env::var("FAILOVER_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    let mock = Llmock::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let env =
        Env::from_pairs([("UNDERSTUDY_DATA_DIR", dir.path().display().to_string()), ("UNDERSTUDY_CONFIG", dir.path().join("c.toml").display().to_string())]);
    let bench = Bench {
        engine: Engine::new(EngineConfig::new(understudy_testkit::local_worker(), &[])),
        paths: Paths::resolve(&env).unwrap(),
        model: understudy_testkit::ensure_gemma_gguf().unwrap().display().to_string(),
        dead: format!("http://127.0.0.1:{}/v1", std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()),
        warm_runs,
        cold_runs: warm_runs.div_ceil(2),
        _dir: dir,
    };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        println!("failover bench: llmock upstream, Gemma 3 270M local, timeouts connect/first token/stall {} s", TIMEOUT.as_secs());
        println!("time to first token (pre-token faults) or longest wait between tokens (mid-stream faults); p50 / p95\n");
        println!("{:<26} {:>10} {:>10} {:>10} {:>10}   target (p95 warm)", "fault", "warm p50", "warm p95", "cold p50", "cold p95");
        for (name, faults, mid_stream) in fault_kinds() {
            let (mut warm, mut cold) = bench.measure(&mock, name, faults.as_ref(), mid_stream).await;
            let target = if name.starts_with("slow") || name.starts_with("stall") {
                format!("≤ {:.1} s", TIMEOUT.as_secs_f64() + 1.5)
            } else {
                "≤ 1.5 s".to_string()
            };
            println!(
                "{:<26} {:>9.0}ms {:>9.0}ms {:>9.0}ms {:>9.0}ms   {target}",
                name,
                pct(&mut warm, 50.0).as_secs_f64() * 1e3,
                pct(&mut warm, 95.0).as_secs_f64() * 1e3,
                pct(&mut cold, 50.0).as_secs_f64() * 1e3,
                pct(&mut cold, 95.0).as_secs_f64() * 1e3
            );
        }
        bench.breaker_open_cost().await;
    });
}

/// (name, llmock behaviours (`None`: connection refused), whether the fault comes mid-stream).
fn fault_kinds() -> Vec<(&'static str, Option<serde_json::Value>, bool)> {
    vec![
        ("connection refused", None, false),
        ("503", Some(serde_json::json!([{ "type": "fail", "status": 503, "match": { "stream": true } }])), false),
        ("500", Some(serde_json::json!([{ "type": "fail", "status": 500, "match": { "stream": true } }])), false),
        ("429, Retry-After 30 s", Some(serde_json::json!([{ "type": "fail", "status": 429, "retry_after": 30, "match": { "stream": true } }])), false),
        ("slow first token (5 s)", Some(serde_json::json!([{ "type": "slow_first_token", "seconds": 5, "match": { "stream": true } }])), false),
        (
            "stall mid-stream",
            Some(serde_json::json!([{ "type": "stream_fault", "kind": "stall", "after_chunks": 3, "stall_seconds": 10, "match": { "stream": true } }])),
            true,
        ),
        (
            "disconnect mid-stream",
            Some(serde_json::json!([{ "type": "stream_fault", "kind": "disconnect", "after_chunks": 3, "match": { "stream": true } }])),
            true,
        ),
        (
            "truncated (no [DONE])",
            Some(serde_json::json!([{ "type": "stream_fault", "kind": "truncate", "after_chunks": 3, "match": { "stream": true } }])),
            true,
        ),
        ("malformed chunk", Some(serde_json::json!([{ "type": "stream_fault", "kind": "malformed", "after_chunks": 3, "match": { "stream": true } }])), true),
    ]
}

impl Bench {
    /// One fault kind's delays (first token, or the longest gap mid-stream), warm then cold.
    async fn measure(&self, mock: &Llmock, name: &str, faults: Option<&serde_json::Value>, mid_stream: bool) -> (Vec<Duration>, Vec<Duration>) {
        let (mut warm, mut cold) = (Vec::new(), Vec::new());
        for i in 0..self.warm_runs + self.cold_runs {
            let is_cold = i >= self.warm_runs;
            if is_cold {
                self.engine.kill().await; // the next answer starts the worker and loads the model
            } else if i == 0 {
                self.engine.ensure_loaded(std::path::Path::new(&self.model), 2048, 0).await.unwrap();
            }
            let url = match faults {
                None => self.dead.clone(),
                Some(f) => {
                    scenario(mock, f.clone()).await;
                    mock.base_url()
                }
            };
            // A fresh router each time: one failure never opens the breaker for the next run.
            let r = self.router(&url, Mode::Auto);
            let (first, gap, by) = ask(&r).await;
            assert_eq!(by, "local", "{name}: the local model answered");
            let d = if mid_stream { gap } else { first };
            if is_cold {
                cold.push(d)
            } else {
                warm.push(d)
            }
        }
        (warm, cold)
    }

    /// While the breaker is open: what does skipping OpenAI cost over local-only mode?
    async fn breaker_open_cost(&self) {
        let open = self.router(&self.dead, Mode::Auto);
        for _ in 0..3 {
            ask(&open).await;
        }
        assert!(open.monitor().snapshot().providers[0].breaker != understudy_router::Breaker::Closed, "the breaker opened");
        let local_only = self.router(&self.dead, Mode::LocalOnly);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for _ in 0..self.warm_runs * 2 {
            a.push(ask(&open).await.0);
            b.push(ask(&local_only).await.0);
        }
        let (ap, bp) = (pct(&mut a, 50.0), pct(&mut b, 50.0));
        let (a95, b95) = (pct(&mut a, 95.0), pct(&mut b, 95.0));
        println!(
            "\nbreaker open vs local-only: first token p50 {:.1} ms vs {:.1} ms (added {:.1} ms), p95 {:.1} vs {:.1} ms; target ≤ 50 ms added",
            ap.as_secs_f64() * 1e3,
            bp.as_secs_f64() * 1e3,
            (ap.as_secs_f64() - bp.as_secs_f64()) * 1e3,
            a95.as_secs_f64() * 1e3,
            b95.as_secs_f64() * 1e3
        );
    }
}
