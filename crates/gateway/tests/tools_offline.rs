#![allow(clippy::unwrap_used)]
//! Tools answered by the offline model where its chat template has them: the tiny random-weight
//! GGUF carrying Qwen 2.5's (or Llama 3.2's) real template gets the tools in its prompt, and `tool_choice`
//! "required" or a named function holds it to one call by a grammar, which comes back as
//! OpenAI's `tool_calls` (streamed as tool-call deltas) with `finish_reason: "tool_calls"`. A
//! tool-result turn is rendered by the template and answered. The same requests to a model whose
//! template has no tool support are refused in words. An upstream (llmock) cut inside its tool
//! call is answered afresh by that model: the streamed client gets one whole call, never a
//! fragment of the upstream's.

mod common;
use common::{start_failover, start_local, start_local_with};
use serde_json::{json, Value};
use understudy_local::engine::EngineConfig;

fn tools() -> Value {
    json!([
        { "type": "function", "function": { "name": "get_weather", "description": "The weather in a city", "parameters": { "type": "object",
            "properties": { "city": { "enum": ["Paris", "Oslo"] }, "unit": { "enum": ["c", "f"] } }, "required": ["city", "unit"], "additionalProperties": false } } },
        { "type": "function", "function": { "name": "get_time", "parameters": { "type": "object", "properties": {}, "additionalProperties": false } } }
    ])
}

/// The answer's message (content, tool_calls) and finish reason, from a stream put together as
/// the SDKs do (tool-call deltas by index) or from the completion.
async fn ask(http: &reqwest::Client, url: &str, body: &Value) -> (Value, String) {
    let r = http.post(url).json(body).send().await.unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    assert_eq!(status, 200, "{body}: {text}");
    read(body["stream"] == json!(true), &text)
}

/// [`ask`]'s reading of an answer's body.
fn read(stream: bool, text: &str) -> (Value, String) {
    if !stream {
        let v: Value = serde_json::from_str(text).unwrap();
        let c = &v["choices"][0];
        return (c["message"].clone(), c["finish_reason"].as_str().unwrap().to_string());
    }
    let (mut content, mut calls, mut finish) = (String::new(), Vec::<Value>::new(), String::new());
    for data in text.lines().filter_map(|l| l.strip_prefix("data: ")).filter(|d| *d != "[DONE]") {
        let chunk: Value = serde_json::from_str(data).unwrap();
        let delta = &chunk["choices"][0]["delta"];
        content.push_str(delta["content"].as_str().unwrap_or(""));
        for d in delta["tool_calls"].as_array().into_iter().flatten() {
            let i = d["index"].as_u64().unwrap() as usize;
            if calls.len() <= i {
                calls.push(json!({ "id": d["id"], "type": d["type"], "function": { "name": d["function"]["name"], "arguments": "" } }));
            }
            let args = calls[i]["function"]["arguments"].as_str().unwrap().to_string() + d["function"]["arguments"].as_str().unwrap_or("");
            calls[i]["function"]["arguments"] = args.into();
        }
        if let Some(f) = chunk["choices"][0]["finish_reason"].as_str() {
            finish = f.to_string();
        }
    }
    let content = if content.is_empty() && !calls.is_empty() { Value::Null } else { content.into() };
    (json!({ "role": "assistant", "content": content, "tool_calls": calls }), finish)
}

/// One call of an offered tool, with arguments its schema allows.
fn assert_one_valid_call(message: &Value, only: Option<&str>) -> String {
    let calls = message["tool_calls"].as_array().unwrap_or_else(|| panic!("no tool_calls: {message}"));
    assert_eq!(calls.len(), 1, "{message}");
    let call = &calls[0];
    assert!(call["id"].as_str().is_some_and(|id| id.starts_with("call_")) && call["type"] == "function", "{call}");
    let name = call["function"]["name"].as_str().unwrap();
    let args: Value = serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap_or_else(|e| panic!("{e}: {call}"));
    match name {
        "get_weather" => assert!(["Paris", "Oslo"].contains(&args["city"].as_str().unwrap()) && ["c", "f"].contains(&args["unit"].as_str().unwrap()), "{args}"),
        "get_time" => assert_eq!(args, json!({})),
        other => panic!("a tool nobody offered: {other}"),
    }
    if let Some(only) = only {
        assert_eq!(name, only, "{message}");
    }
    assert!(message["content"].is_null(), "only the call: {message}");
    name.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_with_tools_answers_offline_with_openai_tool_calls() {
    answers_with_tool_calls("qwen2.5").await;
}

/// Llama 3.2's template: calls are a bare JSON object with `parameters`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llama_3_2_s_template_answers_offline_with_openai_tool_calls_too() {
    answers_with_tool_calls("llama3.2").await;
}

async fn answers_with_tool_calls(template: &str) {
    let model = understudy_testkit::tiny_gguf_with_template(template);
    let gw = start_local_with(EngineConfig::new(understudy_testkit::local_worker(), &[]), &model).await;
    let http = reqwest::Client::new();
    let user = json!([{ "role": "user", "content": "What is the weather in Paris?" }]);
    for stream in [false, true] {
        for (choice, only) in [(json!("required"), None), (json!({ "type": "function", "function": { "name": "get_weather" } }), Some("get_weather"))] {
            for seed in [1, 2] {
                let body = json!({ "model": "local/tiny", "stream": stream, "messages": user, "tools": tools(), "tool_choice": choice,
                    "temperature": 1.0, "seed": seed, "max_tokens": 200 });
                let (message, finish) = ask(&http, &gw.url, &body).await;
                assert_eq!(finish, "tool_calls", "{message}");
                let name = assert_one_valid_call(&message, only);
                eprintln!("{template}: stream {stream}, tool_choice {choice}, seed {seed}: {name} {}", message["tool_calls"][0]["function"]["arguments"]);
            }
        }
    }

    // A tool-result turn: the template renders the call and its result; the model answers.
    let history = json!([
        { "role": "user", "content": "What is the weather in Paris?" },
        { "role": "assistant", "content": null, "tool_calls": [{ "id": "call_1", "type": "function", "function": { "name": "get_weather", "arguments": "{\"city\":\"Paris\",\"unit\":\"c\"}" } }] },
        { "role": "tool", "tool_call_id": "call_1", "content": "21 degrees and sunny" }
    ]);
    for (stream, choice) in [(false, "auto"), (true, "auto"), (false, "none")] {
        let body =
            json!({ "model": "local/tiny", "stream": stream, "messages": history, "tools": tools(), "tool_choice": choice, "temperature": 0, "max_tokens": 8 });
        let (message, finish) = ask(&http, &gw.url, &body).await;
        assert!(["stop", "length", "tool_calls"].contains(&finish.as_str()), "{finish}: {message}");
        if choice == "none" {
            assert!(message["tool_calls"].as_array().is_none_or(Vec::is_empty), "tool_choice none never calls: {message}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_without_tools_is_refused_in_words() {
    // The tiny model's ChatML template reads no tools.
    let gw = start_local(EngineConfig::new(understudy_testkit::local_worker(), &[])).await;
    let http = reqwest::Client::new();
    let tool_turn = json!([
        { "role": "user", "content": "Weather?" },
        { "role": "assistant", "content": null, "tool_calls": [{ "id": "c", "type": "function", "function": { "name": "get_time", "arguments": "{}" } }] },
        { "role": "tool", "tool_call_id": "c", "content": "noon" }
    ]);
    for (body, says) in [
        (json!({ "model": "local/tiny", "messages": [{ "role": "user", "content": "x" }], "tools": tools(), "tool_choice": "required" }), "it offers tools"),
        (json!({ "model": "local/tiny", "messages": tool_turn }), "its history has tool calls or tool results"),
    ] {
        let r = http.post(&gw.url).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 400);
        let v: Value = r.json().await.unwrap();
        let m = v["error"]["message"].as_str().unwrap();
        assert!(m.contains("offline model cannot take this request") && m.contains(says) && m.contains("no tool support"), "{m}");
    }
    assert_eq!(gw.router.engine().tally().finished, 0, "nothing reached the model");
}

/// llmock streams a tool call and drops the connection inside its arguments; the offline model
/// (Qwen 2.5's template, `tool_choice` naming get_weather) answers afresh. A streamed client put together
/// as the SDKs do gets exactly one valid call, the offline model's, and nothing of the
/// upstream's half call. (A non-streamed client's answer is asked unstreamed, which llmock
/// cannot cut; `passthrough` cuts one.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_cut_inside_a_tool_call_is_answered_with_one_whole_offline_call() {
    let mock = understudy_testkit::Llmock::start(&[]);
    let model = understudy_testkit::tiny_gguf_with_template("qwen2.5");
    let gw = start_failover(EngineConfig::new(understudy_testkit::local_worker(), &[]), &model, mock.base_url()).await;
    let http = reqwest::Client::new();
    // Role, the call's name, then 12-character pieces of its arguments: cut after the first.
    for behaviour in [
        json!({ "type": "reply", "tool_calls": [{ "name": "get_weather", "arguments": { "city": "Oslo", "unit": "f" } }] }),
        json!({ "type": "stream_fault", "kind": "disconnect", "after_chunks": 3 }),
    ] {
        let r = http.post(mock.admin_url("scenario")).json(&json!({ "behaviors": [behaviour] })).send().await.unwrap();
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    }
    let body = json!({ "model": "gpt-4o-mini", "stream": true, "messages": [{ "role": "user", "content": "What is the weather in Paris?" }],
        "tools": tools(), "tool_choice": { "type": "function", "function": { "name": "get_weather" } }, "temperature": 1.0, "seed": 1, "max_tokens": 200 });
    let r = http.post(&gw.url).json(&body).send().await.unwrap();
    assert_eq!((r.status().as_u16(), &r.headers()["x-understudy-provider"]), (200, &"openai".parse().unwrap()), "the upstream's call began the answer");
    let text = r.text().await.unwrap();
    let (message, finish) = read(true, &text);
    assert_eq!(finish, "tool_calls", "{text}");
    let name = assert_one_valid_call(&message, None);
    let id = message["tool_calls"][0]["id"].as_str().unwrap();
    assert!(id.starts_with("call_understudy_"), "the offline model's call: {text}");
    // Every tool-call delta is the offline model's whole call: none of the upstream's pieces.
    let ids: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: ").and_then(|d| serde_json::from_str::<Value>(d).ok()))
        .flat_map(|c| c["choices"][0]["delta"]["tool_calls"].as_array().cloned().unwrap_or_default())
        .map(|d| d["id"].clone())
        .collect();
    assert_eq!(ids, [json!(id)], "{text}");
    eprintln!("cut inside the upstream's call: {name} {}", message["tool_calls"][0]["function"]["arguments"]);
    let served: Value = http.get(mock.admin_url("requests")).send().await.unwrap().json().await.unwrap();
    let served = served.as_array().or_else(|| served.get("requests").and_then(Value::as_array)).map_or(0, Vec::len);
    assert_eq!(served, 1, "the upstream was asked once");
}

/// The client's tool schema reaches the offline model with its keys in the client's order (as
/// `transformers` renders it), not sorted: the engine's request to its worker (a stand-in that
/// records it) carries the tools as the client wrote them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_schema_reaches_the_offline_model_in_the_client_s_key_order() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("requests.jsonl");
    let worker = format!(
        r#"read l; echo '{{"type":"loaded","path":"m","architecture":"llama","load_ms":1,"context":2048,"threads":1,"template":"model (jinja)"}}'
while read l; do
  echo "$l" >> '{}'
  id=$(echo "$l" | sed 's/.*"id":"\([^"]*\)".*/\1/')
  echo "{{\"type\":\"started\",\"id\":\"$id\"}}"
  echo "{{\"type\":\"token\",\"id\":\"$id\",\"text\":\"offline\"}}"
  echo "{{\"type\":\"done\",\"id\":\"$id\",\"finish_reason\":\"stop\",\"usage\":{{\"prompt_tokens\":3,\"prompt_evaluated\":3,\"prompt_reused\":0,\"completion_tokens\":1,\"dropped_messages\":0,\"prompt_ms\":1,\"generation_ms\":1}}}}"
done"#,
        log.display()
    );
    let gw = start_local_with(EngineConfig::new("bash", &["-c", &worker]), &understudy_testkit::tiny_gguf_with_template("qwen2.5")).await;
    // Out of alphabetical order at every level.
    let tool = r#"{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"unit":{"enum":["c","f"]},"city":{"type":"string"}},"required":["unit","city"]},"description":"The weather"}}"#;
    let body = format!(r#"{{"model":"local/tiny","messages":[{{"role":"user","content":"Weather?"}}],"tools":[{tool}]}}"#);
    let r = reqwest::Client::new().post(&gw.url).header("content-type", "application/json").body(body).send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let sent = std::fs::read_to_string(&log).unwrap();
    assert!(sent.contains(&format!(r#""tools":[{tool}]"#)), "{sent}");
}
