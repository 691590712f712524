//! Conformance of chat templates: the real templates of every catalog family (copies in
//! `tests/templates/`) rendered by minijinja must equal, byte for byte, what Python `jinja2`
//! renders the way `transformers`' `apply_chat_template` does (`xtask/py/render_chat_templates.py`
//! in the test venv), for a fixed set of conversations: a bare question, a system prompt,
//! several turns, tools offered and a tool call answered. Where the reference raises (a template
//! that refuses tool roles, say), minijinja must fail too.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{json, Value};
use understudy_local::template::render_jinja;

/// Template file, BOS and EOS text as the model's tokenizer has them.
const TEMPLATES: [(&str, &str, &str); 8] = [
    ("Qwen-Qwen2.5-7B-Instruct.jinja", "", "<|im_end|>"),
    ("Qwen-Qwen3-0.6B.jinja", "", "<|im_end|>"),
    ("meta-llama-Llama-3.2-3B-Instruct.jinja", "<|begin_of_text|>", "<|eot_id|>"),
    ("google-gemma-3-it.jinja", "<bos>", "<eos>"),
    ("microsoft-Phi-4-mini-instruct.jinja", "<|endoftext|>", "<|endoftext|>"),
    ("HuggingFaceTB-SmolLM2-135M-Instruct.jinja", "<|im_start|>", "<|im_end|>"),
    ("HuggingFaceTB-SmolLM3-3B.jinja", "<|im_start|>", "<|im_end|>"),
    ("mistralai-Mistral-Nemo-Instruct-2407.jinja", "<s>", "</s>"),
];

fn tools() -> Value {
    json!([{
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather at a place. Use it for \"now\" questions, not forecasts (< 1 h old & cached).",
            "parameters": {
                "type": "object",
                "properties": {
                    "location": {"type": "string", "description": "City, e.g. Zürich or 東京"},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                    "precision": {"type": "number", "minimum": 0.5, "maximum": 1e20, "default": 100.0},
                    "days": {"type": "integer", "minimum": 1}
                },
                "required": ["location"]
            }
        }
    }])
}

/// (name, messages, tools offered).
fn conversations() -> Vec<(&'static str, Value, Option<Value>)> {
    let call = json!({
        "role": "assistant",
        "content": "",
        "tool_calls": [{"id": "call12345", "type": "function", "function": {"name": "get_weather", "arguments": {"location": "Zürich", "unit": "celsius"}}}]
    });
    vec![
        ("question", json!([{"role": "user", "content": "What is the capital of France?"}]), None),
        (
            "system prompt",
            json!([{"role": "system", "content": "Always answer in French."}, {"role": "user", "content": "What is the capital of Italy?"}]),
            None,
        ),
        (
            "several turns",
            json!([
                {"role": "system", "content": "You are terse.\nAnswer in one line."},
                {"role": "user", "content": "My name is Zoë."},
                {"role": "assistant", "content": "Nice to meet you, Zoë!"},
                {"role": "user", "content": "  Is 2 < 3 & \"x\" == 'x'?  "},
                {"role": "assistant", "content": "Yes.\n"},
                {"role": "user", "content": "What is my name?"}
            ]),
            None,
        ),
        (
            "turns without a system prompt",
            json!([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help?"}, {"role": "user", "content": "Bye"}]),
            None,
        ),
        (
            "tools offered",
            json!([{"role": "system", "content": "You can look things up."}, {"role": "user", "content": "What's the weather in Zürich?"}]),
            Some(tools()),
        ),
        (
            "tool call answered",
            json!([
                {"role": "user", "content": "What's the weather in Zürich?"},
                call,
                {"role": "tool", "tool_call_id": "call12345", "name": "get_weather", "content": "{\"temperature\": 21.5, \"sky\": \"sunny\"}"}
            ]),
            Some(tools()),
        ),
    ]
}

#[test]
fn every_catalog_family_renders_as_transformers_does() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/templates");
    let mut cases = Vec::new();
    let mut labels = Vec::new();
    for (file, bos, eos) in TEMPLATES {
        let template = std::fs::read_to_string(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        for (name, messages, tools) in conversations() {
            for add_generation_prompt in [true, false] {
                cases.push(json!({
                    "template": template, "messages": messages, "tools": tools,
                    "add_generation_prompt": add_generation_prompt, "bos_token": bos, "eos_token": eos,
                }));
                labels.push(format!("{file} / {name} / add_generation_prompt={add_generation_prompt}"));
            }
        }
    }
    let reference = reference_renderings(&cases);
    assert_eq!(reference.len(), cases.len());

    let (mut failures, mut rendered, mut refused) = (Vec::new(), 0, 0);
    for ((case, want), label) in cases.iter().zip(&reference).zip(&labels) {
        let messages = case["messages"].as_array().expect("messages");
        let tools = case["tools"].as_array().map(|_| &case["tools"]);
        let agp = case["add_generation_prompt"].as_bool().expect("flag");
        let got = render_jinja(
            case["template"].as_str().expect("template"),
            "m.gguf",
            messages,
            tools,
            agp,
            case["bos_token"].as_str().expect("bos"),
            case["eos_token"].as_str().expect("eos"),
        );
        match (want.get("text").and_then(Value::as_str), got) {
            (Some(want), Ok(got)) if want == got => rendered += 1,
            (Some(want), Ok(got)) => {
                let at = want.chars().zip(got.chars()).take_while(|(a, b)| a == b).count();
                failures.push(format!("{label}: differs at char {at}\n  jinja2:    {want:?}\n  minijinja: {got:?}"));
            }
            (Some(want), Err(e)) => failures.push(format!("{label}: jinja2 rendered {want:?}, minijinja failed: {e}")),
            (None, Ok(got)) => failures.push(format!("{label}: jinja2 failed ({}), minijinja rendered {got:?}", want["error"])),
            (None, Err(_)) => refused += 1,
        }
    }
    assert!(failures.is_empty(), "{} of {} renderings differ:\n{}", failures.len(), cases.len(), failures.join("\n"));
    // The set must exercise real renderings, not mostly agreeing failures.
    assert!(rendered > cases.len() * 3 / 4, "{rendered} rendered, {refused} refused by both");
}

/// Runs the reference renderer once for all cases.
fn reference_renderings(cases: &[Value]) -> Vec<Value> {
    let python = understudy_testkit::venv_python();
    let script = understudy_testkit::repo_root().join("xtask/py/render_chat_templates.py");
    let mut child = Command::new(&python)
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e} (run `cargo xtask setup`)", python.display()));
    let input = serde_json::to_vec(cases).expect("cases as JSON");
    let mut stdin = child.stdin.take().expect("piped");
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().expect("reference renderer");
    writer.join().expect("writer").expect("write cases");
    assert!(out.status.success(), "{} failed (jinja2 missing? run `cargo xtask setup`): {}", script.display(), String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("reference renderings as JSON")
}

/// A tool schema reaches the prompt with its keys in the client's order, as `transformers` keeps
/// them (a JSON object's order is what the model was trained to read), not sorted: through the
/// engine's line to its worker and the template's `tojson`. The same for a call's arguments.
#[test]
fn a_tool_schema_reaches_the_prompt_in_the_client_s_key_order() {
    // Keys deliberately out of alphabetical order at every level, in `tojson`'s spacing.
    let tool = r#"{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"unit": {"type": "string", "enum": ["c", "f"]}, "city": {"type": "string"}}, "required": ["unit", "city"]}, "description": "The weather"}}"#;
    let arguments = r#"{"unit": "c", "city": "Paris"}"#;
    let call = json!({ "id": "c1", "type": "function", "function": { "name": "get_weather", "arguments": serde_json::from_str::<Value>(arguments).unwrap() } });
    let mut answered = understudy_local::Message::new(understudy_core::Role::Assistant, "");
    answered.tool_calls = Some(vec![call]);
    let messages = vec![understudy_local::Message::new(understudy_core::Role::User, "Weather?"), answered];
    let request = understudy_local::protocol::Request::Generate {
        id: "1".into(),
        messages,
        tools: Some(vec![serde_json::from_str(tool).unwrap()]),
        params: understudy_local::SamplingParams::default(),
        prefill: None,
    };
    // As the worker reads it.
    let line = serde_json::to_string(&request).unwrap();
    let understudy_local::protocol::Request::Generate { messages, tools, .. } = serde_json::from_str(&line).unwrap() else { unreachable!() };
    let template = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/templates/Qwen-Qwen2.5-7B-Instruct.jinja")).unwrap();
    let prompt = render_jinja(&template, "m.gguf", &messages, tools.map(Value::Array).as_ref(), false, "", "<|im_end|>").unwrap();
    assert!(prompt.contains(&format!("\n{tool}\n")), "{prompt}");
    assert!(prompt.contains(&format!("\"arguments\": {arguments}")), "{prompt}");
}
