#![allow(clippy::unwrap_used)]
//! The client against real HTTP upstreams: llmock (PyPI) for answers and every fault it can
//! script, and a raw TCP server of our own for what llmock cannot produce.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use understudy_core::Role;
use understudy_openai::{ChatMessage, ChatRequest, Client, ClientConfig, ErrorKind, FailureClass, StreamEvent, Usage};
use understudy_testkit::Llmock;

const KEY: &str = "sk-test-SECRETKEY0123456789";

fn client(base_url: &str) -> Client {
    Client::new(ClientConfig {
        base_url: base_url.into(),
        api_key: Some(KEY.into()),
        provider: "OpenAI".into(),
        connect_timeout: Duration::from_secs(2),
        first_token_timeout: Duration::from_millis(1500),
        reasoning_first_token_timeout: Duration::from_millis(1500),
        stall_timeout: Duration::from_millis(1500),
    })
    .unwrap()
}

fn request() -> ChatRequest {
    ChatRequest { model: "gpt-4o-mini".into(), messages: vec![ChatMessage::new(Role::User, "hi")], max_tokens: None, temperature: None }
}

async fn scenario(mock: &Llmock, behaviors: serde_json::Value) {
    let r = reqwest::Client::new().post(mock.admin_url("scenario")).json(&serde_json::json!({ "behaviors": behaviors })).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
}

/// Streams to the end: (text, finish, usage seen, done seen) or the error.
async fn stream(c: &Client) -> Result<(String, Option<String>, bool), understudy_openai::Error> {
    let mut s = c.chat_stream(&request()).await?;
    let (mut text, mut finish, mut usage) = (String::new(), None, false);
    while let Some(ev) = s.next().await {
        match ev? {
            StreamEvent::Delta { content, model } => {
                assert_eq!(model, "gpt-4o-mini");
                text.push_str(&content)
            }
            StreamEvent::Finish { reason } => finish = Some(reason),
            StreamEvent::Usage(u) => usage = u.completion_tokens > 0,
            StreamEvent::Done => return Ok((text, finish, usage)),
            StreamEvent::Part { .. } | StreamEvent::Chunk { .. } => panic!("a text answer has no parts and chat_stream no raw chunks"),
        }
    }
    unreachable!("a stream ends with Done or an error")
}

fn no_key(e: &understudy_openai::Error) {
    let all = format!("{e} {e:?} {}", serde_json::to_string(e).unwrap());
    assert!(!all.contains("SECRETKEY"), "key leaked: {all}");
}

#[tokio::test]
async fn streams_and_completes_answers_with_usage_and_lists_models() {
    let mock = Llmock::start(&[]);
    let c = client(&mock.base_url());
    let (text, finish, usage) = stream(&c).await.unwrap();
    assert!(text.contains("gpt-4o-mini"), "{text}");
    assert_eq!(finish.as_deref(), Some("stop"));
    assert!(usage, "include_usage gave a usage chunk");
    let full = c.chat(&request()).await.unwrap();
    assert!(!full.content.is_empty());
    assert_eq!(full.finish_reason.as_deref(), Some("stop"));
    let models = c.models().await.unwrap();
    assert!(models.iter().any(|m| m.id == "gpt-4o-mini"));
    // the key went upstream as a bearer token
    let journal: serde_json::Value = reqwest::get(mock.admin_url("requests")).await.unwrap().json().await.unwrap();
    assert!(journal["count"].as_u64().unwrap() >= 3);
}

#[tokio::test]
async fn http_errors_are_classified_with_status_code_and_retry_after() {
    let mock = Llmock::start(&[]);
    let c = client(&mock.base_url());
    let cases = [
        (serde_json::json!({"type": "fail", "status": 503}), 503, FailureClass::Outage),
        (serde_json::json!({"type": "fail", "status": 500}), 500, FailureClass::Outage),
        (serde_json::json!({"type": "fail", "status": 408}), 408, FailureClass::Outage),
        (serde_json::json!({"type": "fail", "status": 429, "retry_after": 1.5}), 429, FailureClass::RateLimit),
        (
            serde_json::json!({"type": "fail", "status": 429, "code": "insufficient_quota", "message": "You exceeded your current quota"}),
            429,
            FailureClass::Account,
        ),
        (serde_json::json!({"type": "fail", "status": 401}), 401, FailureClass::Account),
        (serde_json::json!({"type": "fail", "status": 403}), 403, FailureClass::Account),
        (serde_json::json!({"type": "fail", "status": 404}), 404, FailureClass::Account),
        (serde_json::json!({"type": "fail", "status": 400, "code": "context_length_exceeded"}), 400, FailureClass::Request),
        (serde_json::json!({"type": "fail", "status": 422}), 422, FailureClass::Request),
    ];
    for (behavior, status, class) in cases {
        scenario(&mock, serde_json::json!([behavior])).await;
        let e = c.chat_stream(&request()).await.unwrap_err();
        assert_eq!((e.kind.clone(), e.status, e.class), (ErrorKind::Status, Some(status), class), "{behavior}: {e}");
        no_key(&e);
        if status == 429 && class == FailureClass::RateLimit {
            assert_eq!(e.retry_after, Some(Duration::from_millis(1500)), "retry-after-ms is read");
            assert_eq!(e.code.as_deref(), Some("rate_limit_exceeded"));
        }
        if status == 401 {
            assert!(e.to_string().starts_with("OpenAI rejected the API key (401)"), "{e}");
        }
    }
    // the same classification on the non-streamed path and the model list
    scenario(&mock, serde_json::json!([{"type": "fail", "status": 502}, {"type": "fail", "status": 401}])).await;
    assert_eq!(c.chat(&request()).await.unwrap_err().class, FailureClass::Outage);
    assert_eq!(c.models().await.unwrap_err().class, FailureClass::Account);
}

#[tokio::test]
async fn stream_faults_are_errors_never_a_short_answer() {
    let mock = Llmock::start(&[]);
    let c = client(&mock.base_url());
    for (fault, kind) in [("disconnect", ErrorKind::Cut), ("truncate", ErrorKind::Truncated), ("malformed", ErrorKind::Malformed), ("stall", ErrorKind::Stall)]
    {
        scenario(&mock, serde_json::json!([{"type": "stream_fault", "kind": fault, "after_chunks": 2, "stall_seconds": 5}])).await;
        let started = Instant::now();
        let e = stream(&c).await.unwrap_err();
        assert_eq!(e.kind, kind, "{fault}: {e}");
        assert_eq!(e.class, FailureClass::Outage, "{fault}");
        no_key(&e);
        if fault == "stall" {
            let took = started.elapsed();
            assert!(took >= Duration::from_millis(1400) && took < Duration::from_secs(4), "stall noticed after the stall timeout: {took:?}");
        }
    }
}

#[tokio::test]
async fn a_first_token_that_never_comes_times_out() {
    let mock = Llmock::start(&[]);
    let c = client(&mock.base_url());
    scenario(&mock, serde_json::json!([{"type": "slow_first_token", "seconds": 5}])).await;
    let started = Instant::now();
    let e = stream(&c).await.unwrap_err();
    assert_eq!((e.kind.clone(), e.class), (ErrorKind::FirstToken, FailureClass::Outage), "{e}");
    assert!(started.elapsed() < Duration::from_secs(3));
    // and a whole response held back (no headers at all)
    scenario(&mock, serde_json::json!([{"type": "delay", "seconds": 5}])).await;
    let e = c.chat_stream(&request()).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::FirstToken, "{e}");
}

#[tokio::test]
async fn connection_refused_and_dns_failures_are_outages() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let e = client(&format!("http://127.0.0.1:{port}/v1")).chat_stream(&request()).await.unwrap_err();
    assert_eq!((e.kind.clone(), e.class), (ErrorKind::Connect, FailureClass::Outage), "{e}");
    let e = client("http://no-such-host.invalid/v1").chat_stream(&request()).await.unwrap_err();
    assert_eq!((e.kind.clone(), e.class), (ErrorKind::Dns, FailureClass::Outage), "{e}");
    no_key(&e);
}

/// A one-connection raw HTTP server: reads the first request, hands the connection to
/// `answer`, then closes the connection `answer` gives back.
async fn serve_once<F, Fut>(answer: F) -> String
where
    F: FnOnce(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = tokio::net::TcpStream> + Send,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        if let Ok((mut sock, _)) = listener.accept().await {
            let mut buf = vec![0u8; 65536];
            let _ = sock.read(&mut buf).await;
            let _ = answer(sock).await.shutdown().await;
        }
    });
    format!("http://{addr}/v1")
}

/// A one-shot raw HTTP server: answers the first request with `response` bytes, then closes.
async fn raw_server(response: &'static str) -> String {
    serve_once(move |mut sock| async move {
        let _ = sock.write_all(response.as_bytes()).await;
        sock
    })
    .await
}

#[tokio::test]
async fn an_error_chunk_mid_stream_is_an_error_with_its_code() {
    let body = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nx-request-id: req_123\r\nconnection: close\r\n\r\n\
data: {\"model\":\"gpt-4o-mini\",\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n\
data: {\"error\":{\"message\":\"The server had an error while processing your request.\",\"type\":\"server_error\",\"code\":null}}\n\n";
    let c = client(&raw_server(body).await);
    let mut s = c.chat_stream(&request()).await.unwrap();
    assert!(matches!(s.next().await, Some(Ok(StreamEvent::Delta { .. }))));
    let e = s.next().await.unwrap().unwrap_err();
    assert_eq!((e.kind.clone(), e.class), (ErrorKind::StreamError, FailureClass::Outage));
    assert_eq!(e.code.as_deref(), Some("server_error"));
    assert_eq!(e.request_id.as_deref(), Some("req_123"));
    assert!(s.next().await.is_none());
}

#[tokio::test]
async fn a_server_echoing_the_key_never_puts_it_in_an_error() {
    let body = "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n\
{\"error\":{\"message\":\"Incorrect API key provided: sk-test-SECRETKEY0123456789\",\"type\":\"invalid_request_error\",\"code\":\"invalid_api_key\"}}";
    let e = client(&raw_server(body).await).chat_stream(&request()).await.unwrap_err();
    assert_eq!((e.status, e.class, e.code.as_deref()), (Some(401), FailureClass::Account, Some("invalid_api_key")));
    no_key(&e);
    assert!(e.message.contains("<redacted>"), "{e}");
}

#[tokio::test]
async fn content_and_finish_in_one_chunk_both_arrive() {
    let body = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n\
data: {\"model\":\"m\",\"choices\":[{\"delta\":{\"content\":\"All\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n";
    let mut s = client(&raw_server(body).await).chat_stream(&request()).await.unwrap();
    assert!(matches!(s.next().await, Some(Ok(StreamEvent::Delta { ref content, .. })) if content == "All"));
    assert!(matches!(s.next().await, Some(Ok(StreamEvent::Finish { ref reason })) if reason == "stop"));
    assert!(matches!(s.next().await, Some(Ok(StreamEvent::Done))));
}

#[tokio::test]
async fn usage_on_a_chunk_with_text_keeps_the_text_and_the_finish_reason() {
    // vLLM, Together and Mistral put usage on the last chunk with choices, not on one of its own.
    let body = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n\
data: {\"model\":\"m\",\"choices\":[{\"delta\":{\"content\":\"Bye\"},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1,\"total_tokens\":4}}\n\ndata: [DONE]\n\n";
    let mut s = client(&raw_server(body).await).chat_stream(&request()).await.unwrap();
    let mut seen = Vec::new();
    while let Some(ev) = s.next().await {
        seen.push(ev.unwrap());
    }
    assert_eq!(
        seen,
        [
            StreamEvent::Delta { model: "m".into(), content: "Bye".into() },
            StreamEvent::Finish { reason: "stop".into() },
            StreamEvent::Usage(Usage { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 }),
            StreamEvent::Done
        ]
    );
}

/// Serves one streamed answer: `events`, then `[DONE]` only once `release` is notified.
async fn held_done_server(events: &'static str, release: std::sync::Arc<tokio::sync::Notify>) -> String {
    serve_once(move |mut sock| async move {
        let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n";
        let _ = sock.write_all(format!("{head}{events}").as_bytes()).await;
        release.notified().await;
        let _ = sock.write_all(b"data: [DONE]\n\n").await;
        sock
    })
    .await
}

#[tokio::test]
async fn the_usage_chunk_after_the_finish_ends_the_answer_before_done() {
    // OpenAI's usage chunk is the last before [DONE]: the answer is whole once it has come,
    // whenever the server gets round to [DONE] (here: only after the client has seen Done; a
    // client waiting for it would time out as stalled).
    let release = std::sync::Arc::new(tokio::sync::Notify::new());
    let events = "data: {\"model\":\"gpt-4o-mini\",\"choices\":[{\"delta\":{\"content\":\"Hi\"},\"finish_reason\":null}],\"usage\":null}\n\n\
data: {\"model\":\"gpt-4o-mini\",\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n\
data: {\"model\":\"gpt-4o-mini\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1,\"total_tokens\":4}}\n\n";
    let c = client(&held_done_server(events, release.clone()).await);
    let (text, finish, usage) = stream(&c).await.expect("whole at the usage chunk");
    assert_eq!((text.as_str(), finish.as_deref(), usage), ("Hi", Some("stop"), true));
    release.notify_one();

    // A usage chunk before the answer has finished is not its end.
    let release = std::sync::Arc::new(tokio::sync::Notify::new());
    let events = "data: {\"model\":\"gpt-4o-mini\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":0,\"total_tokens\":3}}\n\n\
data: {\"model\":\"gpt-4o-mini\",\"choices\":[{\"delta\":{\"content\":\"Late\"},\"finish_reason\":\"stop\"}]}\n\n";
    release.notify_one();
    let c = client(&held_done_server(events, release).await);
    let (text, finish, _) = stream(&c).await.unwrap();
    assert_eq!((text.as_str(), finish.as_deref()), ("Late", Some("stop")));
}

/// The fuzz corpus (fuzz/corpus/sse_chunks): each `data:` payload decodes to an event, a skip
/// or an error, never a panic; and the decoder reads what OpenAI sends.
#[test]
fn chunk_decoding_handles_the_fuzz_corpus_and_real_chunks() {
    use understudy_openai::{decode_chunk, ChunkError, Decoded};
    let corpus = understudy_testkit::fuzz_corpus("sse_chunks");
    for (_, bytes) in &corpus {
        for line in String::from_utf8_lossy(bytes).lines().filter_map(|l| l.strip_prefix("data:")) {
            let _ = decode_chunk(line.trim());
        }
    }
    assert!(corpus.len() >= 3);
    assert!(
        matches!(decode_chunk(r#"{"model":"m","choices":[{"delta":{"content":"Hi"},"finish_reason":"stop"}]}"#), Ok(Decoded::Delta { content, finish: Some(f), .. }) if content == "Hi" && f == "stop")
    );
    assert_eq!(decode_chunk(r#"{"choices":[{"delta":{"role":"assistant","content":""}}]}"#), Ok(Decoded::Skip));
    // Usage on a chunk with choices does not hide its text; alone, it is the usage.
    let both = r#"{"model":"m","choices":[{"delta":{"content":"end"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1}}"#;
    assert_eq!(decode_chunk(both), Ok(Decoded::Delta { model: "m".into(), content: "end".into(), tool_call: false, finish: Some("stop".into()) }));
    assert!(matches!(decode_chunk(r#"{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1}}"#), Ok(Decoded::Usage(_))));
    assert!(matches!(decode_chunk(r#"{"error":{"message":"overloaded","code":"x"}}"#), Err(ChunkError::Upstream { code: Some(c), .. }) if c == "x"));
    assert!(matches!(decode_chunk("{nope"), Err(ChunkError::NotJson(_))));
    // A tool call or a refusal is an answer, not an empty chunk (a tool-call-only stream must
    // not look like "no first token").
    let call = r#"{"model":"m","choices":[{"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":""}}]}}]}"#;
    assert_eq!(decode_chunk(call), Ok(Decoded::Part { model: "m".into(), tool_call: true, finish: None }));
    // Text and a call's start in one chunk: both are told, so a cut after it restarts the answer.
    let both = r#"{"model":"m","choices":[{"delta":{"content":"Let me check.","tool_calls":[{"index":0,"id":"c","type":"function","function":{"name":"f","arguments":""}}]}}]}"#;
    assert_eq!(decode_chunk(both), Ok(Decoded::Delta { model: "m".into(), content: "Let me check.".into(), tool_call: true, finish: None }));
    let refusal = r#"{"model":"m","choices":[{"delta":{"refusal":"I can't"},"finish_reason":"stop"}]}"#;
    assert_eq!(decode_chunk(refusal), Ok(Decoded::Part { model: "m".into(), tool_call: false, finish: Some("stop".into()) }));
    assert_eq!(decode_chunk(r#"{"choices":[{"delta":{"content":"","refusal":null}}]}"#), Ok(Decoded::Skip));
    // Reasoning shown apart from the answer (DeepSeek / vLLM, OpenRouter): at work, no answer yet.
    for thinking in [
        r#"{"choices":[{"delta":{"reasoning_content":"Let me think"}}]}"#,
        r#"{"choices":[{"delta":{"content":null,"reasoning":"Hmm"}}]}"#,
        r#"{"choices":[{"delta":{"reasoning_details":[{"type":"reasoning.text","text":"a"}]}}]}"#,
    ] {
        assert_eq!(decode_chunk(thinking), Ok(Decoded::Thinking), "{thinking}");
    }
    assert_eq!(decode_chunk(r#"{"choices":[{"delta":{"reasoning_content":"","reasoning_details":[]}}]}"#), Ok(Decoded::Skip));
    // Thinking and text in one chunk: the answer has begun.
    let both = r#"{"model":"m","choices":[{"delta":{"reasoning_content":"done","content":"Hi"}}]}"#;
    assert!(matches!(decode_chunk(both), Ok(Decoded::Delta { content, .. }) if content == "Hi"));
}

#[test]
fn models_that_reason_silently_before_they_answer_are_known_by_name_or_effort() {
    use understudy_openai::reasons_silently;
    for (model, effort, silent) in [
        ("o1", None, true),
        ("o1-mini", None, true),
        ("o3-mini-2025-01-31", None, true),
        ("o4-mini", None, true),
        ("openai/o3", None, true),
        ("gpt-5", None, true),
        ("gpt-5-mini", None, true),
        ("GPT-5.2", None, true),
        ("gpt-5.1-codex", None, true),
        ("gpt-5-chat-latest", None, false),
        ("gpt-5.1-chat-latest", None, false),
        ("gpt-4o-mini", None, false),
        ("gpt-4.1", None, false),
        ("o10-nonsense", None, false),
        ("gpt-50", None, false),
        ("llama-3.3-70b-versatile", None, false),
        ("gpt-4o-mini", Some("high"), true),
        ("gpt-5", Some("none"), false),
        ("o3", Some("minimal"), true),
    ] {
        assert_eq!(reasons_silently(model, effort), silent, "{model} {effort:?}");
    }
    let c = Client::new(ClientConfig {
        base_url: "http://127.0.0.1:1/v1".into(),
        api_key: None,
        provider: "OpenAI".into(),
        connect_timeout: Duration::from_secs(1),
        first_token_timeout: Duration::from_secs(20),
        reasoning_first_token_timeout: Duration::from_secs(180),
        stall_timeout: Duration::from_secs(30),
    })
    .unwrap();
    assert_eq!(c.first_token_wait("gpt-5", None), Duration::from_secs(180));
    assert_eq!(c.first_token_wait("gpt-4o", None), Duration::from_secs(20));
}

#[test]
fn a_reasoning_model_is_asked_its_limit_as_max_completion_tokens() {
    // OpenAI answers `max_tokens` for its o-series and GPT-5 with 400 unsupported_parameter:
    // a 1-token health probe of such a model would fail while OpenAI is fine.
    use understudy_openai::request_body;
    let probe = |model: &str| ChatRequest { model: model.into(), max_tokens: Some(1), ..request() };
    let body = request_body(&probe("gpt-5-mini"), false);
    assert_eq!((body.get("max_completion_tokens"), body.get("max_tokens")), (Some(&serde_json::json!(1)), None), "{body}");
    let body = request_body(&probe("gpt-4o-mini"), true);
    assert_eq!((body.get("max_tokens"), body.get("max_completion_tokens")), (Some(&serde_json::json!(1)), None), "{body}");
    assert_eq!(body["stream_options"]["include_usage"], true);
    // Unset fields are left out rather than sent as null.
    let body = request_body(&request(), false);
    assert!(body.get("max_tokens").is_none() && body.get("temperature").is_none(), "{body}");
}

/// A one-connection server that sends its stream's head at once, then each event after its
/// delay.
async fn paced_server(events: Vec<(u64, &'static str)>) -> String {
    serve_once(move |mut sock| async move {
        let _ = sock.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n").await;
        for (ms, event) in events {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            let _ = sock.write_all(event.as_bytes()).await;
        }
        sock
    })
    .await
}

/// The answer's text, or the error that ended it.
async fn answer_of(c: &Client, model: &str) -> Result<String, understudy_openai::Error> {
    let mut s = c.chat_stream(&ChatRequest { model: model.into(), ..request() }).await?;
    let mut text = String::new();
    while let Some(ev) = s.next().await {
        match ev? {
            StreamEvent::Delta { content, .. } => text.push_str(&content),
            StreamEvent::Done => return Ok(text),
            _ => {}
        }
    }
    unreachable!("a stream ends with Done or an error")
}

const ROLE: &str = "data: {\"model\":\"m\",\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n";
const HI: &str = "data: {\"model\":\"m\",\"choices\":[{\"delta\":{\"content\":\"Hi\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n";
const THINK: &str = "data: {\"model\":\"m\",\"choices\":[{\"delta\":{\"reasoning_content\":\"hmm \"}}]}\n\n";

#[tokio::test]
async fn a_model_that_reasons_silently_gets_the_longer_first_token_wait() {
    // OpenAI's o-series and GPT-5 send their role chunk (or nothing) and then nothing while they
    // think: 2.5 s of silence is within the reasoning wait (4 s), not the plain one (1.5 s).
    let with_base =
        |base: String| Client::new(ClientConfig { reasoning_first_token_timeout: Duration::from_secs(4), ..client(&base).config().clone() }).unwrap();
    let silent = vec![(0, ROLE), (2500, HI)];
    assert_eq!(answer_of(&with_base(paced_server(silent.clone()).await), "o3-mini").await.unwrap(), "Hi");
    let started = Instant::now();
    let e = answer_of(&with_base(paced_server(silent).await), "gpt-4o-mini").await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::FirstToken, "{e}");
    assert!(started.elapsed() < Duration::from_millis(2400), "{:?}", started.elapsed());
}

#[tokio::test]
async fn reasoning_streamed_before_the_answer_keeps_the_provider_alive_until_it_stalls() {
    // Reasoning every 0.5 s for 3 s, twice the first-token wait, then the answer.
    let thinking: Vec<(u64, &str)> = std::iter::once((0, ROLE)).chain(std::iter::repeat_n((500, THINK), 6)).chain([(500, HI)]).collect();
    assert_eq!(answer_of(&client(&paced_server(thinking).await), "deepseek-reasoner").await.unwrap(), "Hi");
    // Reasoning that stops is a stall after the stall wait, though no answer had begun.
    let started = Instant::now();
    let stops = vec![(0, ROLE), (500, THINK), (5000, HI)];
    let e = answer_of(&client(&paced_server(stops).await), "deepseek-reasoner").await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Stall, "{e}");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(1900) && waited < Duration::from_millis(3500), "{waited:?}");
}

/// A gateway client's body goes upstream as it is (every field, unknown ones too) except for
/// `stream` and `stream_options.include_usage`; each chunk comes back raw before its meaning.
#[tokio::test]
async fn a_raw_body_goes_upstream_unchanged_and_chunks_come_back_raw() {
    let mock = Llmock::start(&[]);
    let c = client(&mock.base_url());
    let body = serde_json::json!({
        "model": "gpt-4o-mini", "messages": [{ "role": "user", "content": "What is the weather in Paris?" }],
        "temperature": 0.2, "seed": 7, "stream_options": { "include_obfuscation": false }, "future_field": { "x": [1, 2] },
        "tools": [{ "type": "function", "function": { "name": "get_weather", "parameters": { "type": "object", "properties": { "city": { "type": "string" } }, "required": ["city"] } } }],
    });
    let mut s = c.chat_stream_body(body.as_object().unwrap().clone()).await.unwrap();
    let (mut raw, mut parts, mut finish) = (0, 0, None);
    while let Some(ev) = s.next().await {
        match ev.unwrap() {
            StreamEvent::Chunk { value, data } => raw += usize::from(value["object"] == "chat.completion.chunk" && data.starts_with('{')),
            StreamEvent::Part { tool_call, .. } => parts += usize::from(tool_call),
            StreamEvent::Finish { reason } => finish = Some(reason),
            StreamEvent::Done => break,
            _ => {}
        }
    }
    assert!(raw >= 3 && parts >= 2, "raw {raw}, tool-call parts {parts}");
    assert_eq!(finish.as_deref(), Some("tool_calls"));
    let v: serde_json::Value = reqwest::get(mock.admin_url("requests")).await.unwrap().json().await.unwrap();
    let list = v.get("requests").unwrap_or(&v).as_array().unwrap().clone();
    let sent = &list.last().unwrap()["body"];
    let mut expected = body.clone();
    expected["stream"] = true.into();
    expected["stream_options"]["include_usage"] = true.into();
    assert_eq!(sent, &expected);
}

#[tokio::test]
async fn a_body_asked_unstreamed_goes_as_it_is_and_its_completion_comes_back_as_it_came() {
    let mock = Llmock::start(&[]);
    let c = client(&mock.base_url());
    let body = serde_json::json!({ "model": "gpt-4o-mini", "messages": [{ "role": "user", "content": "hi" }], "seed": 7, "future_field": [1] });
    let whole = c.chat_whole_body(body.as_object().unwrap().clone()).await.unwrap();
    let v: serde_json::Value = reqwest::get(mock.admin_url("requests")).await.unwrap().json().await.unwrap();
    let list = v.get("requests").unwrap_or(&v).as_array().unwrap().clone();
    assert_eq!(list.last().unwrap()["body"], body, "no stream forced on");
    let completion: serde_json::Value = serde_json::from_str(&whole.data).unwrap();
    assert_eq!(completion["object"], "chat.completion");
    assert_eq!(completion["choices"][0]["message"]["content"].as_str(), Some(whole.response.content.as_str()));
    assert!(!whole.response.content.is_empty() && whole.response.usage.is_some(), "{whole:?}");

    // Its bytes as they came, key order and spacing kept; the request id names it.
    let answer = r#"{"id":"c1", "object":"chat.completion","created":1,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}]}"#;
    let head =
        format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-request-id: req_w\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", answer.len());
    let url = serve_once(move |mut sock| async move {
        let _ = sock.write_all(format!("{head}{answer}").as_bytes()).await;
        sock
    })
    .await;
    let whole = client(&url).chat_whole_body(body.as_object().unwrap().clone()).await.unwrap();
    assert_eq!((whole.data.as_str(), whole.headers.get("x-request-id")), (answer, Some("req_w")));
    assert_eq!((whole.response.model.as_str(), whole.response.finish_reason.as_deref()), ("gpt-4o-2024-08-06", Some("stop")));
}

#[tokio::test]
async fn an_unstreamed_answer_cut_short_or_carrying_an_error_is_an_outage() {
    let body = serde_json::json!({ "model": "gpt-4o-mini", "messages": [{ "role": "user", "content": "hi" }] });
    let cut =
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-request-id: req_c\r\ncontent-length: 400\r\nconnection: close\r\n\r\n{\"id\":\"c1\",\"choi";
    let e = client(&raw_server(cut).await).chat_whole_body(body.as_object().unwrap().clone()).await.unwrap_err();
    assert_eq!((&e.kind, e.class, e.request_id.as_deref()), (&ErrorKind::Cut, FailureClass::Outage, Some("req_c")), "{e:?}");
    let error = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 70\r\nconnection: close\r\n\r\n{\"error\":{\"message\":\"The server had an error.\",\"type\":\"server_error\"}}";
    let e = client(&raw_server(error).await).chat_whole_body(body.as_object().unwrap().clone()).await.unwrap_err();
    assert_eq!((&e.kind, e.class, e.code.as_deref()), (&ErrorKind::StreamError, FailureClass::Outage, Some("server_error")), "{e:?}");
    assert!(e.describe().contains("The server had an error."), "{}", e.describe());
    let junk = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 9\r\nconnection: close\r\n\r\nnot json!";
    let e = client(&raw_server(junk).await).chat_whole_body(body.as_object().unwrap().clone()).await.unwrap_err();
    assert_eq!((&e.kind, e.class), (&ErrorKind::Malformed, FailureClass::Outage), "{e:?}");
}

/// A keep-alive server that answers every request with a short stream whose body ends
/// (HTTP/1.1's last chunk) a moment after `[DONE]`, as Starlette does; counts connections.
/// With `idle_close`, a request that comes on a connection idle longer than that is not
/// answered: the connection is closed, as when a server's keep-alive timer (uvicorn's: 5 s)
/// fires just as a request arrives.
async fn late_end_server(connections: std::sync::Arc<std::sync::atomic::AtomicUsize>, idle_close: Option<Duration>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            connections.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut answered: Option<Instant> = None;
                loop {
                    // One whole request: its head, then content-length bytes of body.
                    let mut chunk = [0u8; 4096];
                    let head_end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
                    let length: usize = head.lines().find_map(|l| l.strip_prefix("content-length:")).map_or(0, |v| v.trim().parse().unwrap());
                    while buf.len() < head_end + length {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    buf.drain(..head_end + length);
                    if idle_close.zip(answered).is_some_and(|(limit, at)| at.elapsed() > limit) {
                        return;
                    }
                    let events =
                        "data: {\"model\":\"gpt-4o-mini\",\"choices\":[{\"delta\":{\"content\":\"Hi\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n";
                    let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
                    let _ = sock.write_all(format!("{head}{:x}\r\n{events}\r\n", events.len()).as_bytes()).await;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    let _ = sock.write_all(b"0\r\n\r\n").await;
                    answered = Some(Instant::now());
                }
            });
        }
    });
    format!("http://{addr}/v1")
}

#[tokio::test]
async fn a_finished_stream_leaves_its_connection_for_the_next_request() {
    // Dropped at [DONE], before the body's end, the connection would be closed and every
    // request would pay a new connection (a TLS handshake, against a real provider).
    let connections = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = client(&late_end_server(connections.clone(), None).await);
    for _ in 0..3 {
        let (text, finish, _) = stream(&c).await.unwrap();
        assert_eq!((text.as_str(), finish.as_deref()), ("Hi", Some("stop")));
        // The body's end comes 50 ms after [DONE]; the next request finds the connection idle.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 1, "one connection for three streamed answers");
}

/// A connection idle for 4 s is not reused: servers commonly close idle ones after 5 s
/// (uvicorn, Node, Apache), and a request sent on one just as the server closes it fails with
/// no answer, which would count as the provider failing and fail over.
#[tokio::test]
async fn a_connection_idle_for_a_server_s_keep_alive_time_is_not_reused() {
    let connections = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = client(&late_end_server(connections.clone(), Some(Duration::from_millis(4_500))).await);
    for _ in 0..2 {
        let (text, _, _) = stream(&c).await.expect("answered, not a closed connection");
        assert_eq!(text, "Hi");
        tokio::time::sleep(Duration::from_millis(4_700)).await;
    }
    assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 2, "a new connection after the idle time");
}
