//! The offline answer through the real engine and worker, as `cargo xtask bench local` compares
//! it with llama.cpp's own program (xtask/bench/llama_ref.cpp) in the same run: prompt
//! processing on a ~2,000-token conversation, and the first local token after a failover from
//! nothing loaded (no pre-warm) and with the conversation pre-warmed (the router pre-warms the
//! conversation last answered while OpenAI is degraded, and the failover request adds the user's
//! new message to it). Prints one JSON object.
//!
//! usage: offline_bench WORKER MODEL.gguf THREADS CONTEXT
#![allow(clippy::print_stdout)] // its report is its output

use std::path::Path;
use std::time::Instant;

use understudy_core::Role;
use understudy_local::engine::EngineConfig;
use understudy_local::{Engine, Event, Message, SamplingParams, Usage};

/// A conversation of about 2,000 tokens: a system prompt, thirteen answered turns, and (`with_last`)
/// the new question a failover brings. `system` varies it, so two of them share no cached prefix.
fn conversation(system: &str, with_last: bool) -> Vec<Message> {
    let mut m = vec![Message::new(Role::System, system)];
    let topics = [
        "the printing press",
        "the steam engine",
        "the telegraph",
        "vaccination",
        "the electric light",
        "radio",
        "the transistor",
        "the railway",
        "refrigeration",
        "the bicycle",
        "the telephone",
        "television",
        "the personal computer",
    ];
    for (i, topic) in topics.iter().enumerate() {
        m.push(Message::new(Role::User, &format!("Question {}: how did {topic} change everyday life, and who felt it first?", i + 1)));
        m.push(Message::new(
            Role::Assistant,
            &format!(
                "{topic} changed everyday life in several steps. At first only a few workshops and wealthy households used it, and prices were high. \
                 Within a generation, cheaper designs spread to towns, then to villages, and ordinary people began to rely on it without noticing. \
                 Merchants and officials felt it first, because their work depended on speed and records; families felt it later, through prices, \
                 schooling and news. Historians still argue about how fast the change was, but they agree that it reshaped work, leisure and the way \
                 people thought about distance and time. In short, {topic} moved from a curiosity to an everyday necessity within about fifty years."
            ),
        ));
    }
    if with_last {
        m.push(Message::new(Role::User, "Which of these inventions changed daily life the fastest? Answer in one sentence."));
    }
    m
}

fn greedy() -> SamplingParams {
    SamplingParams { temperature: 0.0, max_tokens: Some(1), ..SamplingParams::default() }
}

/// Milliseconds from now until the answer's first token, and the answer's usage.
async fn first_token(e: &Engine, messages: Vec<Message>, t0: Instant) -> (f64, Usage) {
    let mut g = e.generate(messages, greedy(), None).await.expect("generation starts");
    let mut first = None;
    while let Some(ev) = g.next().await {
        match ev {
            Event::Token { .. } | Event::Reasoning { .. } => {
                first.get_or_insert_with(|| t0.elapsed().as_secs_f64() * 1000.0);
            }
            Event::Done { usage, .. } => return (first.unwrap_or_else(|| t0.elapsed().as_secs_f64() * 1000.0), usage),
            Event::Error { message, .. } => panic!("{message}"),
            _ => {}
        }
    }
    panic!("the answer ended without done")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, worker, model, threads, context] = args.as_slice() else {
        eprintln!("usage: offline_bench WORKER MODEL.gguf THREADS CONTEXT");
        std::process::exit(2);
    };
    let (model, threads, context): (&Path, u32, u32) = (Path::new(model), threads.parse().expect("THREADS"), context.parse().expect("CONTEXT"));
    let full = conversation("You are a helpful assistant.", true);

    // No pre-warm: a failover finds nothing loaded (worker start, load, whole prompt, first token).
    let e = Engine::new(EngineConfig::new(worker, &[]));
    let t0 = Instant::now();
    e.ensure_loaded(model, context, threads).await.expect("the model loads");
    let (cold_ms, cold) = first_token(&e, full.clone(), t0).await;

    // Prompt processing on a conversation that shares no cached prefix with the last one.
    let (_, pp) = first_token(&e, conversation("You are a careful assistant.", true), Instant::now()).await;

    // Pre-warmed: the conversation so far in the cache, then the failover's request.
    e.prewarm(model, context, threads, conversation("You are a helpful assistant.", false)).await.expect("pre-warm");
    let (warm_ms, warm) = first_token(&e, full, Instant::now()).await;

    let report = serde_json::json!({
        "threads": threads,
        "prompt_tokens": cold.prompt_tokens,
        "reused": warm.prompt_reused,
        "prompt_tokens_per_s": f64::from(pp.prompt_evaluated) / (pp.prompt_ms.max(1) as f64 / 1000.0),
        "cold_first_token_ms": cold_ms,
        "warm_first_token_ms": warm_ms,
    });
    println!("{report}");
}
