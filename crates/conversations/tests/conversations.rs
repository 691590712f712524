#![allow(clippy::unwrap_used)]
//! Conversations end to end: llmock as the real OpenAI upstream, the tiny GGUF through the real
//! local engine, a real SQLite file. What a user would notice: the answer streams and is kept,
//! Stop is fast and keeps the text, errors say what happened and what to do, history survives.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use understudy_conversations::{ConversationError, Conversations, TurnEvent};
use understudy_core::config::{ApiKeySource, Config, Mode, ProviderConfig};
use understudy_core::{Env, Paths, Role};
use understudy_local::engine::EngineConfig;
use understudy_local::Engine;
use understudy_router::chain::{FixedKey, Keys, NoKeys};
use understudy_router::{Chain, Router, Turn};
use understudy_store::{Status, Store};
use understudy_testkit::Llmock;

struct Setup {
    conversations: Conversations,
    db: PathBuf,
    _dir: tempfile::TempDir,
}

fn config(base_url: &str, mode: Mode, local_model: Option<PathBuf>) -> Config {
    let mut c = Config { mode, ..Config::default() };
    c.providers = vec![ProviderConfig { id: "openai".into(), base_url: base_url.into(), model: "gpt-4o-mini".into(), api_key: ApiKeySource::Keyring }];
    c.local.model = local_model.map(|p| p.display().to_string());
    c.local.context = 512;
    c.local.threads = 1;
    c.failover.first_token_timeout = Duration::from_secs(5);
    c.failover.stall_timeout = Duration::from_secs(5);
    c
}

fn setup(config: &Config, keys: &dyn Keys) -> Setup {
    setup_with(config, keys, EngineConfig::new(understudy_testkit::local_worker(), &[]))
}

fn setup_with(config: &Config, keys: &dyn Keys, engine: EngineConfig) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let env = Env::from_pairs([
        ("UNDERSTUDY_DATA_DIR", dir.path().join("data").display().to_string()),
        ("UNDERSTUDY_CONFIG", dir.path().join("c.toml").display().to_string()),
    ]);
    let paths = Paths::resolve(&env).unwrap();
    let db = dir.path().join("u.db");
    let router = Router::new(Chain::build(config, &paths, keys), Engine::new(engine));
    Setup { conversations: Conversations::new(Store::open(&db).unwrap(), router), db, _dir: dir }
}

fn key() -> FixedKey {
    FixedKey("sk-test-ROUTERKEY0123456789".into())
}

async fn scenario(mock: &Llmock, behaviors: serde_json::Value) {
    let r = reqwest::Client::new().post(mock.admin_url("scenario")).json(&serde_json::json!({ "behaviors": behaviors })).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
}

async fn journal(mock: &Llmock) -> Vec<serde_json::Value> {
    let v: serde_json::Value = reqwest::get(mock.admin_url("requests")).await.unwrap().json().await.unwrap();
    let list = v.get("requests").cloned().unwrap_or(v);
    list.as_array().cloned().unwrap_or_default()
}

/// Collects what the window would receive.
fn recorder() -> (Arc<Mutex<Vec<TurnEvent>>>, impl FnMut(TurnEvent) + Send + 'static) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let e = events.clone();
    (events, move |ev| e.lock().unwrap().push(ev))
}

fn streamed_text(events: &[TurnEvent]) -> String {
    events.iter().filter_map(|e| if let TurnEvent::Token { text } = e { Some(text.as_str()) } else { None }).collect()
}

#[tokio::test]
async fn an_answer_streams_from_openai_and_is_kept_with_who_wrote_it() {
    let mock = Llmock::start(&[]);
    let s = setup(&config(&mock.base_url(), Mode::Auto, None), &key());
    let c = s.conversations.create().unwrap();
    s.conversations.with_store(|st| st.set_system_prompt(c.id, Some("You are terse."))).unwrap();
    s.conversations.with_store(|st| st.set_conversation_model(c.id, Some("gpt-4.1-mini"))).unwrap();
    let (events, sink) = recorder();
    let answer = s.conversations.send(c.id, "  What is the capital of France?\nThanks ", sink).await.unwrap();

    let events = events.lock().unwrap().clone();
    assert!(matches!(&events[0], TurnEvent::UserMessage { message } if message.content == "What is the capital of France?\nThanks"));
    assert!(
        matches!(&events[1], TurnEvent::AnswerStarted { provider, label, model, failover: None, .. } if provider == "openai" && label == "OpenAI" && model == "gpt-4.1-mini")
    );
    assert!(matches!(events.last(), Some(TurnEvent::Finished { .. })));
    assert_eq!(answer.status, Status::Complete);
    assert!(answer.content.contains("from gpt-4.1-mini"), "llmock names the model it was asked for: {:?}", answer.content);
    assert_eq!(streamed_text(&events), answer.content, "the window saw exactly what was stored");
    assert_eq!((answer.provider.as_deref(), answer.model.as_deref()), (Some("openai"), Some("gpt-4.1-mini")));
    assert!(answer.completion_tokens.unwrap() > 0 && answer.first_token_ms.is_some() && answer.total_ms.is_some());
    // This conversation is what the offline model pre-warms should OpenAI turn degraded now.
    let (_, warm) = s.conversations.router().warm_context();
    assert_eq!(
        warm,
        [
            Turn::new(Role::System, "You are terse."),
            Turn::new(Role::User, "What is the capital of France?\nThanks"),
            Turn::new(Role::Assistant, &answer.content)
        ]
    );

    // What went upstream: the system prompt, the conversation's model, streaming.
    let sent = journal(&mock).await;
    let body = &sent.last().unwrap()["body"];
    assert_eq!(body["model"], "gpt-4.1-mini");
    assert_eq!(body["stream"], true);
    assert_eq!(body["messages"][0], serde_json::json!({ "role": "system", "content": "You are terse." }));

    // History after a restart: a fresh store on the same file.
    drop(s.conversations);
    let store = Store::open(&s.db).unwrap();
    let conv = store.conversations().unwrap().remove(0);
    assert_eq!(conv.title, "What is the capital of France?");
    let msgs = store.messages(conv.id).unwrap();
    assert_eq!(msgs.iter().map(|m| m.role.as_str()).collect::<Vec<_>>(), ["user", "assistant"]);
    assert_eq!(msgs[1].content, answer.content);
}

#[tokio::test]
async fn stop_ends_the_answer_within_200_ms_and_keeps_the_partial_text() {
    let mock = Llmock::start(&[]);
    let s = setup(&config(&mock.base_url(), Mode::Auto, None), &key());
    scenario(
        &mock,
        serde_json::json!([
            { "type": "reply", "text": "One two three four five six seven eight nine ten eleven twelve." },
            { "type": "stream_fault", "kind": "stall", "after_chunks": 3, "stall_seconds": 4 }
        ]),
    )
    .await;
    let c = s.conversations.create().unwrap();
    let convs = s.conversations.clone();
    let (events, sink) = recorder();
    let turn = tokio::spawn(async move { convs.send(c.id, "count", sink).await });
    // Wait for the stall: some text arrived, then nothing.
    let deadline = Instant::now() + Duration::from_secs(10);
    while streamed_text(&events.lock().unwrap()).is_empty() {
        assert!(Instant::now() < deadline, "no tokens");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(s.conversations.is_running(c.id), "the answer ended during the stall: {:?}", events.lock().unwrap());
    // What arrived before the stall is already stored (a crash now would keep it).
    let stored = s.conversations.with_store(|st| st.messages(c.id)).unwrap();
    assert_eq!(stored[1].content, streamed_text(&events.lock().unwrap()), "text is saved within 500 ms even when nothing follows it");
    let err = s.conversations.send(c.id, "another", |_| {}).await.unwrap_err();
    assert!(matches!(err, ConversationError::Busy), "{err}");

    let t0 = Instant::now();
    assert!(s.conversations.stop(c.id));
    let answer = turn.await.unwrap().unwrap();
    let took = t0.elapsed();
    assert!(took < Duration::from_millis(200), "stop took {took:?}");
    assert_eq!(answer.status, Status::Interrupted);
    assert!(answer.content.starts_with("One two"), "{:?}", answer.content);
    assert_eq!(answer.content, streamed_text(&events.lock().unwrap()));
    assert_eq!(answer.error.as_deref(), Some("Stopped by you."));
    assert!(!s.conversations.is_running(c.id), "the conversation is free again");
    // A stopped answer's text is part of the next request's context.
    let next = s.conversations.send(c.id, "go on", |_| {}).await.unwrap();
    assert_eq!(next.status, Status::Complete);
    let sent = journal(&mock).await;
    let msgs = sent.last().unwrap()["body"]["messages"].as_array().unwrap().clone();
    assert_eq!(msgs.len(), 3);
    assert_eq!(msgs[1]["content"], serde_json::Value::String(answer.content.clone()));
}

#[tokio::test]
async fn errors_are_stored_in_words_with_the_next_step_and_regenerate_replaces_them() {
    let mock = Llmock::start(&[]);
    let s = setup(&config(&mock.base_url(), Mode::Auto, None), &key());
    let c = s.conversations.create().unwrap();
    use understudy_router::{ErrorClass as C, NextAction as A};
    for (behaviour, words, next, typed) in [
        (
            serde_json::json!({ "type": "fail", "status": 401, "code": "invalid_api_key", "message": "Incorrect API key provided" }),
            "OpenAI rejected the API key (401)",
            "Check the API key in Settings.",
            (C::Account, A::AddKey),
        ),
        (
            serde_json::json!({ "type": "fail", "status": 429, "code": "insufficient_quota", "message": "You exceeded your current quota" }),
            "the OpenAI account has no quota left (429)",
            "Add credit",
            (C::Account, A::OpenSettings),
        ),
        (
            serde_json::json!({ "type": "fail", "status": 400, "code": "context_length_exceeded", "message": "maximum context length is 128000 tokens" }),
            "OpenAI rejected the request (400)",
            "Start a new conversation",
            (C::Request, A::None),
        ),
        (
            serde_json::json!({ "type": "fail", "status": 503, "message": "overloaded" }),
            "OpenAI had a server error (503)",
            "No offline model is installed",
            (C::Outage, A::DownloadModel),
        ),
        (
            serde_json::json!({ "type": "stream_fault", "kind": "disconnect", "after_chunks": 2 }),
            "the connection to OpenAI broke in the middle of the answer",
            "Try again",
            (C::Outage, A::Retry),
        ),
    ] {
        scenario(&mock, serde_json::json!([behaviour])).await;
        let (events, sink) = recorder();
        // The first question is sent; the next faults answer it again.
        let answer = if s.conversations.messages(c.id).unwrap().is_empty() {
            s.conversations.send(c.id, "Hello?", sink).await.unwrap()
        } else {
            s.conversations.regenerate(c.id, None, sink).await.unwrap()
        };
        assert_eq!(answer.status, Status::Error, "{words}");
        let error = answer.error.clone().unwrap();
        assert!(error.contains(words) && error.contains(next), "{error:?}");
        // What the window branches on is stored as data next to the words, and survives a reload.
        assert_eq!((answer.error_class, answer.next_action), (Some(typed.0), Some(typed.1)), "{error:?}");
        let stored = s.conversations.messages(c.id).unwrap().pop().unwrap();
        assert_eq!((stored.error_class, stored.next_action), (Some(typed.0), Some(typed.1)));
        assert!(!error.contains("ROUTERKEY"), "the key never shows");
        let events = events.lock().unwrap();
        assert!(matches!(events.last(), Some(TurnEvent::Finished { message }) if message.status == Status::Error));
    }
    // The upstream is fine again: regenerate answers the same question and the errors are gone.
    let answer = s.conversations.regenerate(c.id, None, |_| {}).await.unwrap();
    assert_eq!(answer.status, Status::Complete);
    let msgs = s.conversations.messages(c.id).unwrap();
    assert_eq!(msgs.iter().map(|m| (m.role.as_str(), m.status)).collect::<Vec<_>>(), [("user", Status::Complete), ("assistant", Status::Complete)]);
}

#[tokio::test]
async fn edit_and_resend_replaces_the_question_and_what_followed() {
    let mock = Llmock::start(&[]);
    let s = setup(&config(&mock.base_url(), Mode::Auto, None), &key());
    let c = s.conversations.create().unwrap();
    let first = s.conversations.send(c.id, "first question", |_| {}).await.unwrap();
    s.conversations.send(c.id, "second question", |_| {}).await.unwrap();
    let q1 = s.conversations.messages(c.id).unwrap()[0].id;
    assert!(matches!(s.conversations.edit_and_resend(first.id, "x", |_| {}).await, Err(ConversationError::NotEditable)), "answers are not editable");
    assert!(matches!(s.conversations.edit_and_resend(q1, "   ", |_| {}).await, Err(ConversationError::Empty)));
    scenario(&mock, serde_json::json!([{ "type": "reply", "text": "A better answer." }])).await;
    let answer = s.conversations.edit_and_resend(q1, "a better first question", |_| {}).await.unwrap();
    assert_eq!(answer.content, "A better answer.");
    let msgs = s.conversations.messages(c.id).unwrap();
    assert_eq!(msgs.iter().map(|m| m.content.as_str()).collect::<Vec<_>>(), ["a better first question", "A better answer."]);
    let sent = journal(&mock).await;
    assert_eq!(sent.last().unwrap()["body"]["messages"], serde_json::json!([{ "role": "user", "content": "a better first question" }]));
}

#[tokio::test]
async fn without_a_key_or_model_the_error_says_what_to_set_up() {
    let s = setup(&config("http://127.0.0.1:9/v1", Mode::Auto, None), &NoKeys);
    let c = s.conversations.create().unwrap();
    let answer = s.conversations.send(c.id, "hi", |_| {}).await.unwrap();
    assert_eq!(answer.status, Status::Error);
    assert_eq!(answer.error.as_deref(), Some("No API key is set for OpenAI. Add the key in Settings."));
    assert_eq!((answer.error_class, answer.next_action), (Some(understudy_router::ErrorClass::Setup), Some(understudy_router::NextAction::AddKey)));
    let s = setup(&config("http://127.0.0.1:9/v1", Mode::LocalOnly, Some("/nowhere/m.gguf".into())), &NoKeys);
    let c = s.conversations.create().unwrap();
    let answer = s.conversations.send(c.id, "hi", |_| {}).await.unwrap();
    assert!(answer.error.as_deref().unwrap().starts_with("The offline model \"/nowhere/m.gguf\" is not on this computer."), "{:?}", answer.error);
    assert_eq!(answer.next_action, Some(understudy_router::NextAction::DownloadModel));
}

#[tokio::test]
async fn the_local_model_answers_in_local_only_mode_and_when_no_key_is_set() {
    let model = understudy_testkit::tiny_gguf();
    // Connection refused would be an outage; local-only never calls the cloud at all.
    let s = setup(&config("http://127.0.0.1:9/v1", Mode::LocalOnly, Some(model.clone())), &key());
    let c = s.conversations.create().unwrap();
    let (events, sink) = recorder();
    let answer = s.conversations.send(c.id, "hello", sink).await.unwrap();
    assert_eq!(answer.status, Status::Complete, "{:?}", answer.error);
    assert_eq!(answer.provider.as_deref(), Some("local"));
    assert!(!answer.content.is_empty());
    assert_eq!(streamed_text(&events.lock().unwrap()), answer.content);

    let s = setup(&config("http://127.0.0.1:9/v1", Mode::Auto, Some(model)), &NoKeys);
    let c = s.conversations.create().unwrap();
    let answer = s.conversations.send(c.id, "hello", |_| {}).await.unwrap();
    assert_eq!((answer.status, answer.provider.as_deref()), (Status::Complete, Some("local")));
    assert_eq!(answer.failover_reason.as_deref(), Some("no API key is set for OpenAI"));
}

/// A conversation longer than the offline model's context: the oldest turns are left out of
/// its prompt, and the stored answer says how many, so the window can tell the user.
#[tokio::test]
async fn an_offline_answer_records_how_many_older_messages_it_left_out() {
    let s = setup(&config("http://127.0.0.1:9/v1", Mode::LocalOnly, Some(understudy_testkit::tiny_gguf())), &key());
    let c = s.conversations.create().unwrap();
    let first = s.conversations.send(c.id, "hello", |_| {}).await.unwrap();
    assert_eq!((first.status, first.left_out), (Status::Complete, None), "{:?}", first.error);
    let long = "Tell me everything about the history of printing in Europe and Asia. ".repeat(5);
    let mut last = first;
    for _ in 0..4 {
        last = s.conversations.send(c.id, &long, |_| {}).await.unwrap();
        assert_eq!(last.status, Status::Complete, "{:?}", last.error);
    }
    let left_out = last.left_out.expect("older messages were left out of a 512-token context");
    assert!(left_out >= 2, "{left_out}");
    let stored = s.conversations.messages(c.id).unwrap();
    assert_eq!(stored.last().unwrap().left_out, Some(left_out), "kept in the store for the window");
}

/// A reasoning model's thinking streams to the window apart from the answer and is not stored
/// with it (a stand-in worker answers as a reasoning model's worker does).
#[tokio::test]
async fn thinking_streams_to_the_window_but_is_not_stored_with_the_answer() {
    let script = r#"read l; echo '{"type":"loaded","path":"m","architecture":"qwen3","load_ms":1,"context":512,"threads":1,"template":"model (jinja)"}'
while read l; do
  id=$(echo "$l" | sed 's/.*"id":"\([^"]*\)".*/\1/')
  echo "{\"type\":\"reasoning\",\"id\":\"$id\",\"text\":\"They said hello.\"}"
  echo "{\"type\":\"token\",\"id\":\"$id\",\"text\":\"Hi!\"}"
  echo "{\"type\":\"done\",\"id\":\"$id\",\"finish_reason\":\"stop\",\"usage\":{\"prompt_tokens\":9,\"prompt_evaluated\":9,\"prompt_reused\":0,\"completion_tokens\":5,\"dropped_messages\":0,\"prompt_ms\":1,\"generation_ms\":1}}"
done"#;
    let config = config("http://127.0.0.1:9/v1", Mode::LocalOnly, Some(understudy_testkit::tiny_gguf()));
    let s = setup_with(&config, &key(), EngineConfig::new("bash", &["-c", script]));
    let c = s.conversations.create().unwrap();
    let (events, sink) = recorder();
    let answer = s.conversations.send(c.id, "hello", sink).await.unwrap();
    assert_eq!((answer.status, answer.content.as_str()), (Status::Complete, "Hi!"), "{:?}", answer.error);
    let events = events.lock().unwrap();
    assert!(events.iter().any(|e| matches!(e, TurnEvent::Reasoning { text } if text == "They said hello.")), "{events:?}");
    assert_eq!(streamed_text(&events), "Hi!");
    assert_eq!(s.conversations.messages(c.id).unwrap().last().unwrap().content, "Hi!");
}

#[tokio::test]
async fn test_connection_reports_the_classified_result() {
    let mock = Llmock::start(&[]);
    let s = setup(&config(&mock.base_url(), Mode::Auto, None), &key());
    let ok = s.conversations.router().test_connection(None).await.unwrap();
    assert_eq!((ok.provider.as_str(), ok.model.as_str()), ("openai", "gpt-4o-mini"));
    assert!(ok.models > 0, "{ok:?}");
    scenario(&mock, serde_json::json!([{ "type": "fail", "status": 401, "code": "invalid_api_key", "match": { "path": "*models*" } }])).await;
    let err = s.conversations.router().test_connection(None).await.unwrap_err();
    assert_eq!((err.class, err.status), (understudy_router::ErrorClass::Account, Some(401)));
    assert_eq!((err.next_step.as_str(), err.next_action), ("Check the API key in Settings.", understudy_router::NextAction::AddKey));
    let refused = setup(&config("http://127.0.0.1:9/v1", Mode::Auto, None), &key());
    let err = refused.conversations.router().test_connection(None).await.unwrap_err();
    assert_eq!(err.class, understudy_router::ErrorClass::Outage);
    assert!(err.message.starts_with("OpenAI could not be reached"), "{}", err.message);
}

#[tokio::test]
async fn the_key_is_never_stored_with_the_history_nor_exported() {
    const KEY: &str = "sk-test-ROUTERKEY0123456789";
    let mock = Llmock::start(&[]);
    let s = setup(&config(&mock.base_url(), Mode::Auto, None), &key());
    let c = s.conversations.create().unwrap();
    s.conversations.send(c.id, "hello", |_| {}).await.unwrap();
    // The upstream echoes part of the key in its error, as OpenAI does ("sk-test-…6789").
    scenario(
        &mock,
        serde_json::json!([{ "type": "fail", "status": 401, "message": "Incorrect API key provided: sk-test-*****6789", "match": { "stream": true } }]),
    )
    .await;
    let failed = s.conversations.send(c.id, "again", |_| {}).await.unwrap();
    assert_eq!(failed.status, Status::Error);
    let error = failed.error.clone().unwrap();
    assert!(error.contains("rejected the API key (401)") && !error.contains(KEY), "{error}");

    let conv = s.conversations.with_store(|st| st.conversation(c.id)).unwrap();
    let msgs = s.conversations.messages(c.id).unwrap();
    let out = tempfile::tempdir().unwrap();
    let md = understudy_store::export::save(out.path(), &conv, &msgs, understudy_store::export::Format::Markdown).unwrap();
    let json = understudy_store::export::save(out.path(), &conv, &msgs, understudy_store::export::Format::Json).unwrap();
    drop(s.conversations);
    let mut files = vec![md, json, s.db.clone()];
    for ext in ["db-wal", "db-shm"] {
        let p = s.db.with_extension(ext);
        if p.exists() {
            files.push(p);
        }
    }
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains(KEY), "the key is in {}", f.display());
    }
}
