#![allow(clippy::unwrap_used)]
//! Background probes keep health true without traffic: they close a breaker once the upstream
//! is back, open it when the upstream dies while nobody types, and pre-warm the offline model
//! as soon as health turns degraded.

use std::time::{Duration, Instant};

use understudy_core::config::{ApiKeySource, Config, Mode, ProviderConfig};
use understudy_core::{Env, Paths};
use understudy_local::engine::EngineConfig;
use understudy_local::Engine;
use understudy_router::chain::FixedKey;
use understudy_router::{Breaker, Chain, ChatRequest, Event, Health, Router, Turn};
use understudy_testkit::Llmock;

fn router(base_url: &str) -> (Router, tempfile::TempDir) {
    let mut c = Config { mode: Mode::Auto, ..Config::default() };
    c.providers = vec![ProviderConfig { id: "openai".into(), base_url: base_url.into(), model: "gpt-4o-mini".into(), api_key: ApiKeySource::Keyring }];
    c.local.model = Some(understudy_testkit::tiny_gguf().display().to_string());
    c.local.context = 512;
    c.local.threads = 1;
    c.failover.open_for = Duration::from_millis(400);
    c.failover.probe_interval = Duration::from_millis(200);
    c.failover.first_token_timeout = Duration::from_secs(2);
    let dir = tempfile::tempdir().unwrap();
    let env = Env::from_pairs([("UNDERSTUDY_DATA_DIR", dir.path().display().to_string()), ("UNDERSTUDY_CONFIG", dir.path().join("c.toml").display().to_string())]);
    let chain = Chain::build(&c, &Paths::resolve(&env).unwrap(), &FixedKey("sk-test-PROBE0123456789".into()));
    (Router::new(chain, Engine::new(EngineConfig::new(understudy_testkit::local_worker(), &[]))), dir)
}

async fn scenario(mock: &Llmock, behaviors: serde_json::Value) {
    let r = reqwest::Client::new().post(mock.admin_url("scenario")).json(&serde_json::json!({ "behaviors": behaviors })).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
}

async fn answered_by(r: &Router) -> String {
    let mut a = r.chat(ChatRequest { messages: vec![Turn::new("user", "hi")], max_tokens: Some(4), ..ChatRequest::default() });
    while let Some(e) = a.next().await {
        if let Event::Started { provider, .. } = e {
            return provider;
        }
    }
    String::new()
}

async fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < limit, "{what} did not happen within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    t0.elapsed()
}

#[tokio::test]
async fn probes_close_the_breaker_once_the_upstream_is_back() {
    let mock = Llmock::start(&[]);
    let (r, _d) = router(&mock.base_url());
    scenario(&mock, serde_json::json!([{ "type": "fail", "status": 503, "times": 3 }])).await;
    for _ in 0..3 {
        assert_eq!(answered_by(&r).await, "local");
    }
    assert!(matches!(r.monitor().snapshot().providers[0].breaker, Breaker::Open { .. }));
    let _bg = r.start_background();
    // open_for (400 ms ± 10 %), then two passing probes.
    let took = wait_for("closing the breaker", Duration::from_secs(5), || r.monitor().snapshot().providers[0].breaker == Breaker::Closed).await;
    assert!(took >= Duration::from_millis(300), "not before open_for: {took:?}");
    assert_eq!(r.monitor().snapshot().providers[0].health, Health::Healthy);
    assert_eq!(answered_by(&r).await, "openai");
}

#[tokio::test]
async fn probes_notice_an_outage_while_nobody_types_and_pre_warm_the_offline_model() {
    let mock = Llmock::start(&[]);
    let (r, _d) = router(&mock.base_url());
    let mut health = r.health();
    let _bg = r.start_background();
    wait_for("a first healthy probe", Duration::from_secs(5), || health.borrow_and_update().providers.first().is_some_and(|p| p.health == Health::Healthy)).await;
    assert_eq!(r.engine().worker_pid().await, None, "healthy: no model loaded");
    scenario(&mock, serde_json::json!([{ "type": "fail", "status": 503, "times": 50, "match": { "path": "*models*" } }])).await;
    wait_for("an outage seen by probes alone", Duration::from_secs(10), || r.monitor().snapshot().providers[0].health == Health::Outage).await;
    let snap = r.monitor().snapshot();
    assert_eq!(snap.route, "local");
    assert_eq!(snap.providers[0].last_error.as_deref(), Some("OpenAI had a server error (503)"));
    let t0 = Instant::now();
    while r.engine().worker_pid().await.is_none() {
        assert!(t0.elapsed() < Duration::from_secs(10), "the offline model was not pre-warmed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
