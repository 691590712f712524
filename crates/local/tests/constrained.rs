#![allow(clippy::unwrap_used)]
//! Grammar-constrained answers through the real worker on the tiny random-weight model, which
//! has never seen JSON or a tool call: whatever it writes under the grammar must parse.

use serde_json::{json, Value};
use understudy_core::Role;
use understudy_local::engine::EngineConfig;
use understudy_local::tools::{self, ToolFormat};
use understudy_local::{Engine, Event, FinishReason, Message, ResponseFormat, SamplingParams};

async fn answer(e: &Engine, p: SamplingParams, prefill: Option<&str>) -> Result<(String, FinishReason), String> {
    let messages = vec![Message::new(Role::User, "What is the weather in Paris?")];
    let mut g = e.generate(messages, p, prefill.map(str::to_string)).await.map_err(|e| e.to_string())?;
    let mut text = String::new();
    while let Some(ev) = g.next().await {
        match ev {
            Event::Token { text: t, .. } => text.push_str(&t),
            Event::Done { finish_reason, .. } => return Ok((text, finish_reason)),
            Event::Error { message, .. } => return Err(message),
            _ => {}
        }
    }
    Err("no done".into())
}

async fn engine() -> Engine {
    let e = Engine::new(EngineConfig::new(env!("CARGO_BIN_EXE_understudy-local-worker"), &[]));
    e.load(&understudy_testkit::tiny_gguf(), 1024, 1).await.unwrap();
    e
}

#[tokio::test]
async fn a_forced_tool_call_from_random_weights_parses_into_a_call_of_an_offered_tool() {
    let e = engine().await;
    let tools = [
        json!({ "type": "function", "function": { "name": "get_weather", "parameters": { "type": "object",
            "properties": { "unit": { "enum": ["c", "f"] }, "days": { "type": "integer", "minimum": 1, "maximum": 3 } },
            "required": ["unit", "days"], "additionalProperties": false } } }),
        json!({ "type": "function", "function": { "name": "get_time", "parameters": { "type": "object", "properties": {}, "additionalProperties": false } } }),
    ];
    for format in [ToolFormat::Hermes, ToolFormat::Llama3Json] {
        let grammar = tools::forcing_grammar(format, &tools).unwrap();
        for seed in 1..=3 {
            let p = SamplingParams { temperature: 1.0, seed, max_tokens: Some(300), grammar: Some(grammar.clone()), ..SamplingParams::default() };
            let (text, finish) = answer(&e, p, None).await.unwrap();
            assert_eq!(finish, FinishReason::Stop, "{format:?}: {text:?}");
            let (content, calls) = tools::parse(format, &text);
            assert_eq!((content.as_str(), calls.len()), ("", 1), "{format:?}: {text:?}");
            let args: Value = serde_json::from_str(&calls[0].arguments).unwrap();
            match calls[0].name.as_str() {
                "get_weather" => {
                    assert!(["c", "f"].contains(&args["unit"].as_str().unwrap()) && args["days"].as_i64().is_some_and(|d| (1..=3).contains(&d)), "{args}")
                }
                "get_time" => assert_eq!(args, json!({})),
                other => panic!("a tool nobody offered: {other}"),
            }
            eprintln!("{format:?} seed {seed}: {text:?}");
        }
    }
}

#[tokio::test]
async fn a_json_answer_is_continued_under_the_grammar_and_a_prefill_that_does_not_fit_is_an_error() {
    let e = engine().await;
    let schema = json!({ "type": "object", "properties": { "colour": { "enum": ["red", "green"] }, "ok": { "type": "boolean" } },
        "required": ["colour", "ok"], "additionalProperties": false });
    let grammar = ResponseFormat::JsonSchema(schema).grammar().unwrap();
    let p = SamplingParams { temperature: 1.0, seed: 4, max_tokens: Some(200), grammar: Some(grammar), ..SamplingParams::default() };
    let prefill = r#"{"colour": "gr"#;
    let (rest, finish) = answer(&e, p.clone(), Some(prefill)).await.unwrap();
    assert_eq!(finish, FinishReason::Stop);
    let v: Value = serde_json::from_str(&format!("{prefill}{rest}")).unwrap_or_else(|e| panic!("{e}: {prefill}{rest}"));
    assert_eq!(v["colour"], "green", "{v}");
    assert!(v["ok"].is_boolean(), "{v}");
    let err = answer(&e, p, Some("Sure! Here")).await.unwrap_err();
    assert!(err.contains("does not match the response format"), "{err}");
}

/// The tiny model carrying Qwen 2.5's real template: the tools and a tool-result turn go to the
/// template, and a forced call still comes back as a call. A template the worker cannot render
/// tools with (no template: ChatML) fails the answer rather than drop them from the prompt.
#[tokio::test]
async fn tools_and_a_tool_result_go_through_the_model_s_template_and_a_template_without_tools_refuses() {
    let weather = json!({ "type": "function", "function": { "name": "get_weather", "parameters": { "type": "object",
        "properties": { "unit": { "enum": ["c", "f"] } }, "required": ["unit"], "additionalProperties": false } } });
    let history = vec![
        Message::new(Role::User, "What is the weather in Paris?"),
        Message {
            tool_calls: Some(tools::for_template(&[
                json!({ "id": "call_1", "type": "function", "function": { "name": "get_weather", "arguments": "{\"unit\":\"c\"}" } }),
            ])),
            ..Message::new(Role::Assistant, "")
        },
        Message { tool_call_id: Some("call_1".into()), ..Message::new(Role::Tool, "21 degrees") },
        Message::new(Role::User, "And tomorrow?"),
    ];
    let model = understudy_testkit::tiny_gguf_with_template("qwen2.5");
    assert_eq!(ToolFormat::of_model(&model), Some(ToolFormat::Hermes));
    let e = Engine::new(EngineConfig::new(env!("CARGO_BIN_EXE_understudy-local-worker"), &[]));
    e.load(&model, 1024, 1).await.unwrap();
    let grammar = tools::forcing_grammar(ToolFormat::Hermes, std::slice::from_ref(&weather)).unwrap();
    let p = SamplingParams { temperature: 0.0, max_tokens: Some(200), grammar: Some(grammar), ..SamplingParams::default() };
    let run = |e: Engine, tools: Option<Vec<Value>>, p: SamplingParams, history: Vec<Message>| async move {
        let mut g = e.generate_with_tools(history, tools, p, None).await.unwrap();
        let (mut text, mut usage) = (String::new(), None);
        while let Some(ev) = g.next().await {
            match ev {
                Event::Token { text: t, .. } => text.push_str(&t),
                Event::Done { usage: u, .. } => usage = Some(u),
                Event::Error { message, .. } => return Err(message),
                _ => {}
            }
        }
        Ok((text, usage.unwrap()))
    };
    let (text, with_tools) = run(e.clone(), Some(vec![weather.clone()]), p.clone(), history.clone()).await.unwrap();
    let (content, calls) = tools::parse(ToolFormat::Hermes, &text);
    assert_eq!((content.as_str(), calls.len(), calls[0].name.as_str()), ("", 1, "get_weather"), "{text:?}");
    // The tools' block is part of the prompt: the same conversation without them is shorter.
    let (_, without) = run(e.clone(), None, p.clone(), history.clone()).await.unwrap();
    assert!(with_tools.prompt_tokens > without.prompt_tokens + 50, "{with_tools:?} vs {without:?}");

    let e = Engine::new(EngineConfig::new(env!("CARGO_BIN_EXE_understudy-local-worker"), &[]));
    e.load(&understudy_testkit::tiny_gguf_with_template("none"), 1024, 1).await.unwrap();
    for (tools, history) in [(Some(vec![weather]), vec![Message::new(Role::User, "hi")]), (None, history)] {
        let err = run(e.clone(), tools, SamplingParams { max_tokens: Some(4), ..SamplingParams::default() }, history).await.unwrap_err();
        assert!(err.contains("cannot render tools, tool calls or tool results"), "{err}");
    }
}
