#![allow(clippy::unwrap_used)]
//! Background probes keep health true without traffic: they close a breaker once the upstream
//! is back, open it when the upstream dies while nobody types, and pre-warm the offline model
//! as soon as health turns degraded.

use std::time::{Duration, Instant};

use understudy_core::config::{ApiKeySource, Config, Mode, ProviderConfig};
use understudy_core::{Env, Paths, Role};
use understudy_local::engine::EngineConfig;
use understudy_local::Engine;
use understudy_router::chain::FixedKey;
use understudy_router::{Breaker, Chain, ChatRequest, Event, Health, Router, Turn};
use understudy_testkit::Llmock;

fn router(base_url: &str) -> (Router, tempfile::TempDir) {
    router_with(base_url, "")
}

fn router_with(base_url: &str, status_page: &str) -> (Router, tempfile::TempDir) {
    router_cfg(base_url, status_page, |_| {})
}

fn router_cfg(base_url: &str, status_page: &str, tweak: impl FnOnce(&mut Config)) -> (Router, tempfile::TempDir) {
    let mut c = Config { mode: Mode::Auto, ..Config::default() };
    c.providers = vec![ProviderConfig { id: "openai".into(), base_url: base_url.into(), model: "gpt-4o-mini".into(), api_key: ApiKeySource::Keyring }];
    c.local.model = Some(understudy_testkit::tiny_gguf().display().to_string());
    c.local.context = 512;
    c.local.threads = 1;
    c.failover.open_for = Duration::from_millis(400);
    c.failover.probe_interval = Duration::from_millis(200);
    c.failover.first_token_timeout = Duration::from_secs(2);
    c.failover.status_page = status_page.to_string(); // tests never reach the internet
    c.failover.status_poll = Duration::from_millis(200);
    tweak(&mut c);
    let dir = tempfile::tempdir().unwrap();
    let env =
        Env::from_pairs([("UNDERSTUDY_DATA_DIR", dir.path().display().to_string()), ("UNDERSTUDY_CONFIG", dir.path().join("c.toml").display().to_string())]);
    let chain = Chain::build(&c, &Paths::resolve(&env).unwrap(), &FixedKey("sk-test-PROBE0123456789".into()));
    (Router::new(chain, Engine::new(EngineConfig::new(understudy_testkit::local_worker(), &[]))), dir)
}

async fn scenario(mock: &Llmock, behaviors: serde_json::Value) {
    let r = reqwest::Client::new().post(mock.admin_url("scenario")).json(&serde_json::json!({ "behaviors": behaviors })).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
}

async fn answered_by(r: &Router) -> String {
    let mut a = r.chat(ChatRequest { messages: vec![Turn::new(Role::User, "hi")], max_tokens: Some(4), ..ChatRequest::default() });
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
    // Two passing probes (the first may come while still open, at the 200 ms idle cadence).
    let took = wait_for("closing the breaker", Duration::from_secs(5), || r.monitor().snapshot().providers[0].breaker == Breaker::Closed).await;
    assert!(took >= Duration::from_millis(150), "not before a probe: {took:?}");
    assert_eq!(r.monitor().snapshot().providers[0].health, Health::Healthy);
    assert_eq!(answered_by(&r).await, "openai");
}

#[tokio::test]
async fn after_a_long_outage_openai_is_back_within_two_probe_intervals_not_after_open_for() {
    let mock = Llmock::start(&[]);
    // A long outage has doubled the open time up to open_for_max; here it is simply 60 s.
    let (r, _d) = router_cfg(&mock.base_url(), "", |c| c.failover.open_for = Duration::from_secs(60));
    scenario(&mock, serde_json::json!([{ "type": "fail", "status": 503, "times": 3 }])).await;
    for _ in 0..3 {
        assert_eq!(answered_by(&r).await, "local");
    }
    let Breaker::Open { until_ms } = r.monitor().snapshot().providers[0].breaker else { panic!("open") };
    let _bg = r.start_background();
    let took = wait_for("OpenAI back", Duration::from_secs(10), || r.monitor().snapshot().providers[0].breaker == Breaker::Closed).await;
    assert!(took <= Duration::from_millis(2 * 200 + 600), "back after {took:?}, with the breaker open until {until_ms} ms");
    assert_eq!(answered_by(&r).await, "openai");
}

/// With the default `probe_interval` (60 s), a breaker that real requests opened is probed
/// when its open time ends: OpenAI is used again within `open_for` of coming back, not at the
/// next idle probe a minute later.
#[tokio::test]
async fn with_the_default_probe_interval_a_breaker_opened_by_requests_is_probed_when_its_open_time_ends() {
    let mock = Llmock::start(&[]);
    let (r, _d) = router_cfg(&mock.base_url(), "", |c| {
        c.failover.probe_interval = Config::default().failover.probe_interval;
        c.failover.open_for = Duration::from_secs(1);
        c.failover.open_for_max = Duration::from_secs(2);
    });
    let _bg = r.start_background();
    // The first probe runs at once; then the loop sleeps its idle minute.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(r.monitor().snapshot().providers[0].health, Health::Healthy);
    // The outage is three failed requests; OpenAI is back right after them.
    scenario(&mock, serde_json::json!([{ "type": "fail", "status": 503, "times": 3 }])).await;
    for _ in 0..3 {
        assert_eq!(answered_by(&r).await, "local");
    }
    assert!(matches!(r.monitor().snapshot().providers[0].breaker, Breaker::Open { .. }));
    let took = wait_for("closing the breaker", Duration::from_secs(10), || r.monitor().snapshot().providers[0].breaker == Breaker::Closed).await;
    assert!(took <= Duration::from_millis(1000 + 500), "back after {took:?} with open_for = 1 s");
    assert_eq!(answered_by(&r).await, "openai");
}

#[tokio::test]
async fn probes_notice_an_outage_while_nobody_types_and_pre_warm_the_offline_model() {
    let mock = Llmock::start(&[]);
    let (r, _d) = router(&mock.base_url());
    let mut health = r.health();
    let _bg = r.start_background();
    wait_for("a first healthy probe", Duration::from_secs(5), || health.borrow_and_update().providers.first().is_some_and(|p| p.health == Health::Healthy))
        .await;
    assert_eq!(r.engine().worker_pid().await, None, "healthy: no model loaded");
    scenario(&mock, serde_json::json!([{ "type": "fail", "status": 503, "times": 50, "match": { "path": "*models*" } }])).await;
    wait_for("an outage seen by probes alone", Duration::from_secs(10), || r.monitor().snapshot().providers[0].health == Health::Outage).await;
    let snap = r.monitor().snapshot();
    assert_eq!(snap.route, understudy_router::Route::Local);
    assert_eq!(snap.providers[0].last_error.as_deref(), Some("OpenAI had a server error (503)"));
    let t0 = Instant::now();
    while r.engine().worker_pid().await.is_none() {
        assert!(t0.elapsed() < Duration::from_secs(10), "the offline model was not pre-warmed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// When OpenAI turns degraded, the conversation that will continue is evaluated into the offline
/// model's cache: the failover's first answer then evaluates only the new message, not the
/// history (which, with a real model and a long conversation, takes seconds).
#[tokio::test]
async fn a_degraded_openai_pre_warms_the_conversation_so_a_failover_evaluates_only_the_new_message() {
    let mock = Llmock::start(&[]);
    let (r, _d) = router(&mock.base_url());
    let story = "The printing press spread from Mainz to every major city of Europe within fifty years. ".repeat(6);
    let history = vec![Turn::new(Role::System, "You are terse."), Turn::new(Role::User, "Tell me how printing spread."), Turn::new(Role::Assistant, &story)];
    r.remember_context(history.clone());
    let _bg = r.start_background();
    wait_for("a first healthy probe", Duration::from_secs(5), || r.monitor().snapshot().providers.first().is_some_and(|p| p.health == Health::Healthy)).await;
    assert_eq!(r.engine().tally().finished, 0, "healthy: nothing pre-warmed");
    scenario(&mock, serde_json::json!([{ "type": "fail", "status": 503, "times": 50, "match": { "path": "*models*" } }])).await;
    wait_for("the pre-warm of the conversation", Duration::from_secs(20), || r.engine().tally().finished >= 1).await;

    // The first local answer: the same conversation plus the user's new message.
    let mut messages: Vec<understudy_local::Message> = history.iter().map(understudy_local::Message::from).collect();
    messages.push(understudy_local::Message::new(Role::User, "And in Asia?"));
    let params = understudy_local::SamplingParams { max_tokens: Some(2), ..understudy_local::SamplingParams::default() };
    let mut g = r.engine().generate(messages, params, None).await.unwrap();
    let usage = loop {
        match g.next().await.unwrap() {
            understudy_local::Event::Done { usage, .. } => break usage,
            understudy_local::Event::Error { message, .. } => panic!("{message}"),
            _ => {}
        }
    };
    assert!(usage.prompt_reused > 100, "the history came from the cache: {usage:?}");
    assert!(usage.prompt_evaluated < 30, "only the new message was evaluated: {usage:?}");
}

/// A status page of our own: serves whatever `body` holds at `at`, 404 elsewhere.
async fn status_page(body: std::sync::Arc<std::sync::Mutex<String>>, at: &'static str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else { return };
            let body = body.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let n = sock.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]);
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                let (status, text) = if path == at { ("200 OK", body.lock().unwrap().clone()) } else { ("404 Not Found", "{}".to_string()) };
                let reply = format!("HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}", text.len());
                let _ = sock.write_all(reply.as_bytes()).await;
            });
        }
    });
    url
}

#[tokio::test]
async fn a_status_page_incident_degrades_and_pre_warms_but_never_opens() {
    let mock = Llmock::start(&[]);
    let operational = r#"{"status":{"indicator":"none"},"components":[{"name":"API","status":"operational"}],"incidents":[]}"#;
    let body = std::sync::Arc::new(std::sync::Mutex::new(operational.to_string()));
    let page = status_page(body.clone(), "/api/v2/summary.json").await;
    let (r, _d) = router_with(&mock.base_url(), &page);
    let _bg = r.start_background();
    wait_for("a first healthy look", Duration::from_secs(5), || r.monitor().snapshot().providers.first().is_some_and(|p| p.health == Health::Healthy)).await;
    *body.lock().unwrap() = r#"{"status":{"indicator":"minor"},"components":[{"name":"API","status":"degraded_performance"}],"incidents":[]}"#.into();
    wait_for("degraded by the status page", Duration::from_secs(5), || r.monitor().snapshot().providers[0].health == Health::Degraded).await;
    assert_eq!(r.monitor().snapshot().providers[0].last_error.as_deref(), Some("status page: API: degraded performance"));
    let t0 = Instant::now();
    while r.engine().worker_pid().await.is_none() {
        assert!(t0.elapsed() < Duration::from_secs(10), "an incident pre-warms the offline model");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The hint never diverts traffic: OpenAI still answers, the breaker stays closed.
    assert_eq!(answered_by(&r).await, "openai");
    // A broken page changes nothing; the page recovering clears the hint.
    *body.lock().unwrap() = "<html>502 Bad Gateway</html>".into();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(r.monitor().snapshot().providers[0].health, Health::Degraded);
    assert_eq!(r.monitor().snapshot().providers[0].breaker, Breaker::Closed);
    *body.lock().unwrap() = operational.into();
    wait_for("the hint clears", Duration::from_secs(5), || r.monitor().snapshot().providers[0].health == Health::Healthy).await;
}

/// status.openai.com runs on incident.io: its widget API is read the same way.
#[tokio::test]
async fn an_incident_io_page_is_read_from_its_widget_api() {
    let mock = Llmock::start(&[]);
    let page_with = |incidents: &str| {
        format!(
            r#"{{"page_title":"OpenAI","page_url":"https://status.openai.com","ongoing_incidents":[{incidents}],"in_progress_maintenances":[],"scheduled_maintenances":[]}}"#
        )
    };
    let body = std::sync::Arc::new(std::sync::Mutex::new(page_with("")));
    let page = status_page(body.clone(), "/api/v1/summary").await;
    let (r, _d) = router_with(&mock.base_url(), &page);
    let _bg = r.start_background();
    wait_for("a first healthy look", Duration::from_secs(5), || r.monitor().snapshot().providers.first().is_some_and(|p| p.health == Health::Healthy)).await;
    *body.lock().unwrap() = page_with(
        r#"{"id":"01J","name":"Increased error rates for Chat Completions","status":"investigating","current_worst_impact":"partial_outage","affected_components":[{"id":"c1","name":"Chat Completions","group_name":"APIs","current_status":"partial_outage"}]}"#,
    );
    wait_for("degraded by the status page", Duration::from_secs(5), || r.monitor().snapshot().providers[0].health == Health::Degraded).await;
    assert_eq!(r.monitor().snapshot().providers[0].last_error.as_deref(), Some("status page: Increased error rates for Chat Completions"));
    assert_eq!(r.monitor().snapshot().providers[0].breaker, Breaker::Closed);
    *body.lock().unwrap() = page_with("");
    wait_for("the hint clears", Duration::from_secs(5), || r.monitor().snapshot().providers[0].health == Health::Healthy).await;
}

/// The fuzz corpus (fuzz/corpus/status_page): both parsers give a verdict or an error, never a
/// panic.
#[test]
fn status_page_parsers_replay_the_fuzz_corpus() {
    let corpus = understudy_testkit::fuzz_corpus("status_page");
    for (_, bytes) in &corpus {
        let text = String::from_utf8_lossy(bytes);
        let _ = understudy_router::status_page::parse_statuspage(&text);
        let _ = understudy_router::status_page::parse_incident_io(&text);
    }
    assert!(corpus.len() >= 2);
}

/// A status page speaks only for its own provider: an incident on OpenAI's page marks OpenAI
/// degraded and leaves the backup (a provider with no known page, skipped quietly) healthy.
#[tokio::test]
async fn a_status_page_marks_only_its_own_provider() {
    let (mock, backup) = (Llmock::start(&[]), Llmock::start(&[]));
    let operational = r#"{"status":{"indicator":"none"},"components":[{"name":"API","status":"operational"}],"incidents":[]}"#;
    let body = std::sync::Arc::new(std::sync::Mutex::new(operational.to_string()));
    let page = status_page(body.clone(), "/api/v2/summary.json").await;
    let backup_url = backup.base_url();
    let (r, _d) = router_cfg(&mock.base_url(), &page, |c| {
        c.providers.push(ProviderConfig { id: "groq".into(), base_url: backup_url, model: "llama".into(), api_key: ApiKeySource::Keyring });
    });
    assert!(r.chain().cloud("groq").unwrap().status_page.is_none(), "a host with no known page has none");
    let _bg = r.start_background();
    wait_for("a first healthy look", Duration::from_secs(5), || r.monitor().snapshot().providers.first().is_some_and(|p| p.health == Health::Healthy)).await;
    *body.lock().unwrap() = r#"{"status":{"indicator":"minor"},"components":[{"name":"API","status":"major_outage"}],"incidents":[]}"#.into();
    wait_for("degraded by the status page", Duration::from_secs(5), || r.monitor().snapshot().providers[0].health == Health::Degraded).await;
    let snap = r.monitor().snapshot();
    assert_eq!((snap.providers[1].id.as_str(), snap.providers[1].health, snap.providers[1].last_error.as_deref()), ("groq", Health::Healthy, None));
}
