#![allow(clippy::unwrap_used)]
//! The fault matrix of the failover issue: llmock as the real OpenAI upstream, the tiny GGUF
//! through the real local engine. For each fault: who answered, why, the breaker after, and how
//! long the user waited.

use std::time::{Duration, Instant};

use understudy_core::config::{ApiKeySource, Config, Mode, ProviderConfig};
use understudy_core::{Env, Paths, Role};
use understudy_local::engine::EngineConfig;
use understudy_local::Engine;
use understudy_router::chain::FixedKey;
use understudy_router::{Breaker, Chain, ChatRequest, Event, FinishReason, Health, Router, Turn};
use understudy_testkit::Llmock;

fn router(base_url: &str, local: bool) -> (Router, tempfile::TempDir) {
    router_chain(&[("openai", base_url)], local)
}

fn router_chain(providers: &[(&str, &str)], local: bool) -> (Router, tempfile::TempDir) {
    router_timed(providers, local, Duration::from_secs(1))
}

/// `first_token` is how long a first token may take before the router fails over.
fn router_timed(providers: &[(&str, &str)], local: bool, first_token: Duration) -> (Router, tempfile::TempDir) {
    router_waits(providers, local, first_token, Config::default().failover.reasoning_first_token_timeout)
}

/// [`router_timed`], a model that reasons silently first given `reasoning` for its first token.
fn router_waits(providers: &[(&str, &str)], local: bool, first_token: Duration, reasoning: Duration) -> (Router, tempfile::TempDir) {
    let mut c = Config { mode: Mode::Auto, ..Config::default() };
    c.providers = providers
        .iter()
        .map(|(id, url)| ProviderConfig { id: id.to_string(), base_url: url.to_string(), model: "gpt-4o-mini".into(), api_key: ApiKeySource::Keyring })
        .collect();
    c.local.model = local.then(|| understudy_testkit::tiny_gguf().display().to_string());
    c.local.context = 512;
    c.local.threads = 1;
    c.failover.connect_timeout = Duration::from_secs(2);
    c.failover.first_token_timeout = first_token;
    c.failover.reasoning_first_token_timeout = reasoning;
    c.failover.stall_timeout = Duration::from_secs(1);
    c.failover.status_page = String::new(); // never the internet from tests
    let dir = tempfile::tempdir().unwrap();
    let env =
        Env::from_pairs([("UNDERSTUDY_DATA_DIR", dir.path().display().to_string()), ("UNDERSTUDY_CONFIG", dir.path().join("c.toml").display().to_string())]);
    let paths = Paths::resolve(&env).unwrap();
    let chain = Chain::build(&c, &paths, &FixedKey("sk-test-FAILOVER0123456789".into()));
    (Router::new(chain, Engine::new(EngineConfig::new(understudy_testkit::local_worker(), &[]))), dir)
}

fn request() -> ChatRequest {
    ChatRequest { messages: vec![Turn::new(Role::User, "Say hello")], max_tokens: Some(12), ..ChatRequest::default() }
}

/// What the user got.
#[derive(Debug, Default)]
struct Got {
    started_by: Option<String>,
    reason: Option<String>,
    switched_to: Option<(String, String)>,
    text: String,
    text_before_switch: String,
    /// Token events after the switch (the offline model's pieces).
    pieces_after_switch: usize,
    done: bool,
    finish: Option<FinishReason>,
    /// The last (prompt, completion) token counts told.
    usage: Option<(u32, u32)>,
    error: Option<String>,
    took: Duration,
}

async fn ask(r: &Router) -> Got {
    ask_for(r, request()).await
}

async fn ask_for(r: &Router, request: ChatRequest) -> Got {
    let t0 = Instant::now();
    let mut a = r.chat(request);
    let mut g = Got::default();
    while let Some(e) = a.next().await {
        match e {
            Event::Started { provider, failover, .. } => (g.started_by, g.reason) = (Some(provider), failover),
            Event::Token { text } => {
                g.text.push_str(&text);
                g.pieces_after_switch += usize::from(g.switched_to.is_some());
            }
            Event::Switched { provider, reason, .. } => {
                g.text_before_switch = g.text.clone();
                g.switched_to = Some((provider, reason));
            }
            Event::Done { finish_reason, .. } => (g.done, g.finish) = (true, Some(finish_reason)),
            Event::Usage { prompt_tokens, completion_tokens } => g.usage = Some((prompt_tokens, completion_tokens)),
            Event::Error { error } => g.error = Some(error.to_string()),
            Event::LeftOut { .. } | Event::Reasoning { .. } | Event::Upstream { .. } | Event::Whole { .. } => {}
        }
    }
    g.took = t0.elapsed();
    g
}

async fn scenario(mock: &Llmock, behaviors: serde_json::Value) {
    let r = reqwest::Client::new().post(mock.admin_url("scenario")).json(&serde_json::json!({ "behaviors": behaviors })).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
}

async fn upstream_requests(mock: &Llmock) -> usize {
    let v: serde_json::Value = reqwest::get(mock.admin_url("requests")).await.unwrap().json().await.unwrap();
    v.get("requests").unwrap_or(&v).as_array().map_or(0, Vec::len)
}

fn breaker(r: &Router) -> Breaker {
    r.monitor().snapshot().providers[0].breaker
}

#[tokio::test]
async fn failures_before_the_first_token_fail_over_at_once_with_the_reason() {
    let mock = Llmock::start(&[]);
    // (faults, reason the user is given)
    let table = [
        (serde_json::json!([{ "type": "fail", "status": 503, "message": "overloaded" }]), "OpenAI had a server error (503)"),
        (serde_json::json!([{ "type": "fail", "status": 500 }]), "OpenAI had a server error (500)"),
        (serde_json::json!([{ "type": "fail", "status": 401, "code": "invalid_api_key" }]), "OpenAI rejected the API key (401)"),
        (serde_json::json!([{ "type": "fail", "status": 429, "code": "insufficient_quota" }]), "the OpenAI account has no quota left (429)"),
        (serde_json::json!([{ "type": "fail", "status": 429, "code": "rate_limit_exceeded", "retry_after": 30 }]), "OpenAI is rate-limiting requests (429)"),
        (serde_json::json!([{ "type": "slow_first_token", "seconds": 3 }]), "OpenAI did not answer within 1 s"),
    ];
    for (faults, reason) in table {
        // A fresh breaker per row: each row is judged on its own.
        let (r, _d) = router(&mock.base_url(), true);
        assert_eq!(ask(&r).await.started_by.as_deref(), Some("openai"));
        scenario(&mock, faults).await;
        let g = ask(&r).await;
        assert_eq!(g.started_by.as_deref(), Some("local"), "{reason}: {g:?}");
        assert_eq!(g.reason.as_deref(), Some(reason), "{g:?}");
        assert!(g.done && !g.text.is_empty(), "{reason}: the user got an answer: {g:?}");
        assert!(g.took < Duration::from_secs(3), "{reason}: took {:?}", g.took);
        assert_eq!(breaker(&r), Breaker::Closed, "{reason}: one failure never opens the breaker");
    }
}

#[tokio::test]
async fn a_model_that_reasons_silently_is_given_the_reasoning_wait_for_its_first_token() {
    // o3-mini thinks before its first token and streams nothing meanwhile: 1.5 s of silence is
    // within its wait (2.5 s) though over the plain one (1 s); past its own wait it fails over
    // and says how long it was given.
    let mock = Llmock::start(&[]);
    let (r, _d) = router_waits(&[("openai", &mock.base_url())], true, Duration::from_secs(1), Duration::from_millis(2500));
    let o3 = || ChatRequest { model: Some("o3-mini".into()), ..request() };
    scenario(&mock, serde_json::json!([{ "type": "slow_first_token", "seconds": 1.5 }])).await;
    let g = ask_for(&r, o3()).await;
    assert_eq!((g.started_by.as_deref(), g.reason.as_deref()), (Some("openai"), None), "{g:?}");
    assert!(g.done && g.took >= Duration::from_millis(1500), "{g:?}");
    // Its long first token is how long it thought, not a sign of trouble.
    assert_eq!(r.monitor().snapshot().providers[0].health, Health::Healthy);
    scenario(&mock, serde_json::json!([{ "type": "slow_first_token", "seconds": 1.5 }])).await;
    let g = ask(&r).await;
    assert_eq!((g.started_by.as_deref(), g.reason.as_deref()), (Some("local"), Some("OpenAI did not answer within 1 s")), "gpt-4o-mini: {g:?}");
    scenario(&mock, serde_json::json!([{ "type": "slow_first_token", "seconds": 5 }])).await;
    let g = ask_for(&r, o3()).await;
    assert_eq!((g.started_by.as_deref(), g.reason.as_deref()), (Some("local"), Some("OpenAI did not answer within 2 s")), "{g:?}");
    assert!(g.took < Duration::from_secs(4), "{g:?}");
}

/// A client's body that asks for no stream (as a gateway client's), offering a tool when
/// `tools` (which lets a scenario tell it from the 1-token checks).
fn unstreamed(tools: bool) -> ChatRequest {
    let mut body = serde_json::json!({ "model": "gpt-4o-mini", "messages": [{ "role": "user", "content": "Say hello" }], "max_tokens": 12 });
    if tools {
        body["tools"] = serde_json::json!([{ "type": "function", "function": { "name": "f", "parameters": { "type": "object" } } }]);
    }
    ChatRequest { raw: body.as_object().cloned(), ..request() }
}

#[tokio::test]
async fn a_whole_answer_is_waited_for_as_long_as_the_provider_answers_checks() {
    // Nothing of an unstreamed answer comes before it is whole: 3 s of it is no failure while
    // the provider answers the 1-token checks sent meanwhile (first token 1 s, stall 1 s).
    let mock = Llmock::start(&[]);
    let (r, _d) = router(&mock.base_url(), true);
    scenario(&mock, serde_json::json!([{ "type": "delay", "seconds": 3, "match": { "tools": true } }])).await;
    let g = ask_for(&r, unstreamed(true)).await;
    assert_eq!((g.started_by.as_deref(), g.reason.as_deref()), (Some("openai"), None), "{g:?}");
    assert!(g.done && g.took >= Duration::from_secs(3), "{g:?}");
    let asked = upstream_requests(&mock).await;
    assert!((4..=8).contains(&asked), "the answer and a check every half second or so: {asked}");
    assert_eq!(r.monitor().snapshot().providers[0].health, Health::Healthy);
}

#[tokio::test]
async fn a_whole_answer_from_a_provider_that_answers_nothing_fails_over_when_a_first_token_would_have() {
    let mock = Llmock::start(&[]);
    let (r, _d) = router(&mock.base_url(), true);
    scenario(&mock, serde_json::json!([{ "type": "delay", "seconds": 30, "times": null }])).await;
    let g = ask_for(&r, unstreamed(false)).await;
    assert_eq!((g.started_by.as_deref(), g.reason.as_deref()), (Some("local"), Some("OpenAI did not answer within 1 s")), "{g:?}");
    assert!(g.done && !g.text.is_empty(), "the user got an answer: {g:?}");
    assert!(g.took < Duration::from_secs(3), "{g:?}");
}

#[tokio::test]
async fn a_check_that_meets_an_outage_fails_a_whole_answer_over_at_once() {
    // First token 4 s: the check goes at 2 s and gets a 503, which is the reason given.
    let mock = Llmock::start(&[]);
    let (r, _d) = router_timed(&[("openai", &mock.base_url())], true, Duration::from_secs(4));
    let faults = serde_json::json!([
        { "type": "delay", "seconds": 30, "match": { "tools": true } },
        { "type": "fail", "status": 503, "times": null, "match": { "tools": false } },
    ]);
    scenario(&mock, faults).await;
    let g = ask_for(&r, unstreamed(true)).await;
    assert_eq!((g.started_by.as_deref(), g.reason.as_deref()), (Some("local"), Some("OpenAI had a server error (503)")), "{g:?}");
    assert!(g.took >= Duration::from_secs(2) && g.took < Duration::from_secs(4), "at the check, not at the first-token time: {g:?}");
}

#[tokio::test]
async fn connection_refused_fails_over_in_milliseconds_and_three_open_the_breaker() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (r, _d) = router(&format!("http://127.0.0.1:{port}/v1"), true);
    let mut health = r.health();
    for i in 0..3 {
        let g = ask(&r).await;
        assert_eq!((g.started_by.as_deref(), g.reason.as_deref()), (Some("local"), Some("OpenAI could not be reached")), "{i}");
        assert!(g.done);
    }
    assert!(matches!(breaker(&r), Breaker::Open { .. }));
    assert!(health.has_changed().unwrap());
    let snap = health.borrow_and_update().clone();
    assert_eq!((snap.providers[0].health, snap.route.as_str()), (Health::Outage, "local"));
    // While open: straight to local, the reason says why, no connection attempt.
    let g = ask(&r).await;
    assert_eq!(g.started_by.as_deref(), Some("local"));
    assert!(g.reason.as_deref().unwrap().starts_with("OpenAI is failing (OpenAI could not be reached)"), "{g:?}");
}

#[tokio::test]
async fn an_open_breaker_costs_no_wait_and_sends_nothing_upstream() {
    let mock = Llmock::start(&[]);
    let (r, _d) = router(&mock.base_url(), true);
    scenario(&mock, serde_json::json!([{ "type": "fail", "status": 503, "times": 3 }])).await;
    for _ in 0..3 {
        assert_eq!(ask(&r).await.started_by.as_deref(), Some("local"));
    }
    assert!(matches!(breaker(&r), Breaker::Open { .. }));
    let before = upstream_requests(&mock).await;
    let g = ask(&r).await;
    assert_eq!(g.started_by.as_deref(), Some("local"));
    assert_eq!(upstream_requests(&mock).await, before, "no request while the breaker is open");
}

#[tokio::test]
async fn a_short_retry_after_is_honoured_once() {
    let mock = Llmock::start(&[]);
    let (r, _d) = router(&mock.base_url(), true);
    scenario(&mock, serde_json::json!([{ "type": "fail", "status": 429, "retry_after": 0.5 }])).await;
    let g = ask(&r).await;
    assert_eq!((g.started_by.as_deref(), g.reason.as_deref()), (Some("openai"), None), "{g:?}");
    assert!(g.took >= Duration::from_millis(450), "waited for Retry-After: {:?}", g.took);
}

#[tokio::test]
async fn a_bad_request_is_shown_not_failed_over() {
    let mock = Llmock::start(&[]);
    let (r, _d) = router(&mock.base_url(), true);
    scenario(&mock, serde_json::json!([{ "type": "fail", "status": 400, "code": "context_length_exceeded", "message": "maximum context length is 8 tokens" }]))
        .await;
    let g = ask(&r).await;
    assert_eq!(g.started_by, None);
    assert!(g.error.unwrap().starts_with("OpenAI rejected the request (400)"));
}

#[tokio::test]
async fn failures_mid_stream_are_continued_by_the_local_model() {
    let mock = Llmock::start(&[]);
    let text = "One two three four five six seven eight nine ten.";
    for (fault, reason) in [
        (serde_json::json!({ "type": "stream_fault", "kind": "stall", "after_chunks": 3, "stall_seconds": 5 }), "OpenAI stopped sending for 1 s"),
        (serde_json::json!({ "type": "stream_fault", "kind": "disconnect", "after_chunks": 3 }), "the connection to OpenAI broke in the middle of the answer"),
        (serde_json::json!({ "type": "stream_fault", "kind": "malformed", "after_chunks": 3 }), "OpenAI sent a response that could not be read"),
        (serde_json::json!({ "type": "stream_fault", "kind": "truncate", "after_chunks": 3 }), "OpenAI's answer ended early, without its end marker"),
    ] {
        let (r, _d) = router(&mock.base_url(), true);
        scenario(&mock, serde_json::json!([{ "type": "reply", "text": text }, fault])).await;
        let g = ask(&r).await;
        assert_eq!(g.started_by.as_deref(), Some("openai"), "{reason}: {g:?}");
        assert_eq!(g.switched_to.as_ref().map(|(p, r)| (p.as_str(), r.as_str())), Some(("local", reason)), "{g:?}");
        assert!(g.text_before_switch.starts_with("One"), "{g:?}");
        assert!(text.starts_with(g.text_before_switch.as_str()), "the cut part is kept as sent: {g:?}");
        assert!(g.text.len() > g.text_before_switch.len() && g.done, "the local model continued: {g:?}");
        assert!(g.took < Duration::from_secs(4), "{reason}: {:?}", g.took);
    }
}

#[tokio::test]
async fn a_continued_answer_keeps_to_the_client_s_max_tokens_for_the_whole_answer() {
    // Cut after three words (the role chunk, then a word a chunk): the offline model has the
    // rest of the budget, and the usage told is the whole answer's.
    let mock = Llmock::start(&[]);
    let text = "One two three four five six seven eight nine ten.";
    let cut = serde_json::json!({ "type": "stream_fault", "kind": "disconnect", "after_chunks": 4 });
    let (r, _d) = router(&mock.base_url(), true);
    scenario(&mock, serde_json::json!([{ "type": "reply", "text": text }, cut.clone()])).await;
    let g = ask_for(&r, ChatRequest { max_tokens: Some(5), ..request() }).await;
    assert_eq!(g.text_before_switch, "One two three ", "{g:?}");
    assert!(g.switched_to.is_some() && g.done, "{g:?}");
    // The tiny random-weight model never stops on its own: it uses the budget left, 2 tokens
    // (a piece is a token, or several held back together).
    assert!((1..=2).contains(&g.pieces_after_switch), "{g:?}");
    assert_eq!((g.finish.clone(), g.usage.map(|u| u.1)), (Some(FinishReason::Length), Some(5)), "{g:?}");
    // The cut came with the budget spent: the answer ends there, at its length.
    scenario(&mock, serde_json::json!([{ "type": "reply", "text": text }, cut])).await;
    let g = ask_for(&r, ChatRequest { max_tokens: Some(3), ..request() }).await;
    assert_eq!((g.text.as_str(), g.finish.clone()), ("One two three ", Some(FinishReason::Length)), "{g:?}");
}

#[tokio::test]
async fn without_an_offline_model_an_outage_says_so() {
    let mock = Llmock::start(&[]);
    let (r, _d) = router(&mock.base_url(), false);
    scenario(&mock, serde_json::json!([{ "type": "fail", "status": 503 }])).await;
    let g = ask(&r).await;
    let e = g.error.unwrap();
    assert!(e.starts_with("OpenAI had a server error (503)") && e.contains("No offline model is installed"), "{e}");
}

#[tokio::test]
async fn a_thousand_healthy_requests_never_fail_over() {
    let mock = Llmock::start(&[]);
    // A healthy llmock answers in milliseconds; the slack is for a loaded CI machine, where one
    // request in a thousand waiting over a second for a core would count as a failover.
    let (r, _d) = router_timed(&[("openai", &mock.base_url())], true, Duration::from_secs(10));
    let mut health = r.health();
    health.borrow_and_update();
    let mut local = 0;
    for _ in 0..1000 {
        let g = ask(&r).await;
        assert!(g.done, "{g:?}");
        local += usize::from(g.started_by.as_deref() != Some("openai") || g.switched_to.is_some());
    }
    assert_eq!(local, 0, "failovers in 1000 healthy requests");
    assert_eq!(r.monitor().snapshot().providers[0].health, Health::Healthy);
    assert!(!health.has_changed().unwrap(), "a healthy run publishes no health change");
}

#[tokio::test]
async fn the_next_cloud_provider_answers_before_the_local_model() {
    let mock = Llmock::start(&[]);
    let refused = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (r, _d) = router_chain(&[("openai", &format!("http://127.0.0.1:{refused}/v1")), ("groq", &mock.base_url())], true);
    let g = ask(&r).await;
    assert_eq!((g.started_by.as_deref(), g.reason.as_deref()), (Some("groq"), Some("OpenAI could not be reached")), "{g:?}");
    assert!(g.done);
    let snap = r.monitor().snapshot();
    // The failure is OpenAI's alone. (Groq's health is not compared: on a loaded machine a slow
    // first token can mark it degraded for latency, which is not what this test is about.)
    let (openai, groq) = (&snap.providers[0], &snap.providers[1]);
    assert_eq!((openai.id.as_str(), openai.health), ("openai", Health::Degraded));
    assert!(openai.last_error.is_some());
    assert_eq!((groq.id.as_str(), groq.last_error.as_deref(), groq.breaker), ("groq", None, understudy_router::Breaker::Closed), "{groq:?}");
}

#[tokio::test]
async fn an_error_chunk_mid_stream_is_continued_locally() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 65536];
        let _ = sock.read(&mut buf).await;
        let body = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n\
data: {\"model\":\"gpt-4o-mini\",\"choices\":[{\"delta\":{\"content\":\"The answer \"}}]}\n\n\
data: {\"error\":{\"message\":\"The server had an error while processing your request.\",\"type\":\"server_error\"}}\n\n";
        let _ = sock.write_all(body.as_bytes()).await;
        let _ = sock.shutdown().await;
    });
    let (r, _d) = router(&url, true);
    let g = ask(&r).await;
    assert_eq!(g.text_before_switch, "The answer ");
    assert_eq!(g.switched_to.as_ref().map(|(p, why)| (p.as_str(), why.as_str())), Some(("local", "OpenAI reported an error in the middle of the answer")));
    assert!(g.done && g.text.len() > "The answer ".len(), "{g:?}");
}

/// Two cloud providers (two llmock upstreams) and the offline model: each provider has its own
/// breaker, an open one is skipped without a request, the next cloud answers before the offline
/// model, and every answer says who wrote it and why, as data.
#[tokio::test]
async fn the_chain_is_walked_in_order_each_provider_with_its_own_breaker() {
    use understudy_router::{Because, FailoverReason};
    let (primary, backup) = (Llmock::start(&[]), Llmock::start(&[]));
    let (r, _d) = router_chain(&[("openai", &primary.base_url()), ("groq", &backup.base_url())], true);
    let because = |provider: &str, label: &str, reason| Some(Because { provider: provider.into(), label: label.into(), reason });
    let asked = |r: &Router| {
        let r = r.clone();
        async move {
            let mut a = r.chat(request());
            let (mut by, mut why, mut done) = (None, None, false);
            while let Some(e) = a.next().await {
                match e {
                    Event::Started { provider, because, .. } => (by, why) = (Some(provider), because),
                    Event::Done { .. } => done = true,
                    _ => {}
                }
            }
            assert!(done, "an answer every time");
            (by, why)
        }
    };
    assert_eq!(asked(&r).await, (Some("openai".into()), None));

    // The primary fails: the backup cloud answers at once, naming why.
    scenario(&primary, serde_json::json!([{ "type": "fail", "status": 503, "times": 3 }])).await;
    for _ in 0..3 {
        assert_eq!(asked(&r).await, (Some("groq".into()), because("openai", "OpenAI", FailoverReason::ServerError)));
    }
    let health = |r: &Router| r.monitor().snapshot().providers.iter().map(|p| (p.id.clone(), matches!(p.breaker, Breaker::Open { .. }))).collect::<Vec<_>>();
    assert_eq!(health(&r), [("openai".to_string(), true), ("groq".to_string(), false)], "only the primary's breaker opened");

    // Open: skipped without a request to it.
    let before = upstream_requests(&primary).await;
    assert_eq!(asked(&r).await, (Some("groq".into()), because("openai", "OpenAI", FailoverReason::Down)));
    assert_eq!(upstream_requests(&primary).await, before, "an open breaker costs nothing");

    // Both fail: the offline model answers, naming the last cloud that failed.
    scenario(&backup, serde_json::json!([{ "type": "fail", "status": 500, "times": 1 }])).await;
    assert_eq!(asked(&r).await, (Some("local".into()), because("groq", "Groq", FailoverReason::ServerError)));
    assert_eq!(health(&r), [("openai".to_string(), true), ("groq".to_string(), false)], "one failure does not open the backup's breaker");
    // The backup recovered: it answers again while the primary is still open.
    assert_eq!(asked(&r).await, (Some("groq".into()), because("openai", "OpenAI", FailoverReason::Down)));
}
