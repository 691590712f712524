//! Tools for the offline model, where its chat template has them: which format the template
//! teaches the model to call tools in (picked by the template's own markers), the model's text
//! parsed back into OpenAI `tool_calls`, and a grammar that forces a call (`tool_choice`
//! "required") so that even a weak model writes one that parses.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex};
use std::time::SystemTime;

use serde_json::{json, Value};
use understudy_core::Role;

/// How a model family writes a tool call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolFormat {
    /// Hermes / Qwen 2.5 / Qwen 3: `<tool_call>{"name": …, "arguments": {…}}</tool_call>`, one
    /// block per call.
    Hermes,
    /// Llama 3.1 / 3.2 / 3.3: the answer is one JSON object `{"name": …, "parameters": {…}}`
    /// (after `<|python_tag|>` on some).
    Llama3Json,
}

impl ToolFormat {
    /// The format a chat template teaches, or `None` when it has no tool support (it never reads
    /// `tools`, or writes calls in a format not known here): then a request with tools is refused.
    pub fn of_template(source: &str) -> Option<ToolFormat> {
        if !source.contains("tools") {
            return None;
        }
        if source.contains("<tool_call>") {
            Some(ToolFormat::Hermes)
        } else if source.contains("\"parameters\"") && source.contains("<|start_header_id|>") {
            Some(ToolFormat::Llama3Json)
        } else {
            None
        }
    }
}

/// Formats already read, by file (size and modification time tell a replaced file): the
/// gateway asks on every request with tools, and a header with a large vocabulary takes
/// milliseconds to read.
static BY_MODEL: LazyLock<Mutex<HashMap<PathBuf, Known>>> = LazyLock::new(Mutex::default);

/// A file's size and modification time, and the format its template teaches.
type Known = (u64, Option<SystemTime>, Option<ToolFormat>);

impl ToolFormat {
    /// The format the model file's own chat template teaches, `None` when the file has no
    /// template, one without tool support, or one minijinja cannot run (the worker then uses
    /// llama.cpp's renderer, which knows no tools).
    pub fn of_model(path: &Path) -> Option<ToolFormat> {
        let meta = std::fs::metadata(path).ok()?;
        let stamp = (meta.len(), meta.modified().ok());
        if let Some((len, modified, format)) = BY_MODEL.lock().expect("tool format cache").get(path) {
            if (*len, *modified) == stamp {
                return *format;
            }
        }
        let format = crate::gguf::validate(path).ok().and_then(|h| {
            let text = h.chat_template()?;
            let probe = [crate::protocol::Message::new(Role::User, "u")];
            crate::template::render_jinja(text, &path.display().to_string(), &probe, Some(&json!([])), true, "", "").ok()?;
            ToolFormat::of_template(text)
        });
        BY_MODEL.lock().expect("tool format cache").insert(path.to_path_buf(), (stamp.0, stamp.1, format));
        format
    }
}

/// OpenAI's `tool_choice`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ToolChoice {
    /// The model decides (OpenAI's default when tools are offered).
    #[default]
    Auto,
    /// No call: the tools are not shown to the offline model at all.
    None,
    /// At least one call: a grammar makes the answer one call.
    Required,
    /// This function must be called.
    Function(String),
}

impl ToolChoice {
    /// `"auto"`, `"none"`, `"required"`, `{"type": "function", "function": {"name": …}}`, or
    /// absent (auto); anything else is `None`.
    pub fn from_openai(v: Option<&Value>) -> Option<ToolChoice> {
        match v {
            None | Some(Value::Null) => Some(ToolChoice::Auto),
            Some(Value::String(s)) => match s.as_str() {
                "auto" => Some(ToolChoice::Auto),
                "none" => Some(ToolChoice::None),
                "required" => Some(ToolChoice::Required),
                _ => None,
            },
            Some(o) => o.get("function")?.get("name")?.as_str().map(|n| ToolChoice::Function(n.to_string())),
        }
    }
}

/// An assistant turn's `tool_calls` from an OpenAI history as chat templates read them:
/// `arguments` is a JSON text in OpenAI's API but an object in `transformers`' (templates print
/// it with `tojson`), so a text that parses as JSON is turned into that value.
pub fn for_template(calls: &[Value]) -> Vec<Value> {
    calls
        .iter()
        .map(|call| {
            let mut call = call.clone();
            if let Some(f) = call.get_mut("function").and_then(Value::as_object_mut) {
                if let Some(parsed) = f.get("arguments").and_then(Value::as_str).and_then(|a| serde_json::from_str::<Value>(a).ok()) {
                    f.insert("arguments".into(), parsed);
                }
            }
            call
        })
        .collect()
}

/// A call the model made, as OpenAI sends it: `arguments` is a JSON text.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ToolCall {
    pub name: String,
    pub arguments: String,
}

fn call_of(v: &Value, args_key: &str) -> Option<ToolCall> {
    let name = v.get("name")?.as_str()?.to_string();
    let args = v.get(args_key).or_else(|| v.get("arguments")).cloned().unwrap_or_else(|| json!({}));
    // OpenAI's arguments are a JSON text; a model that wrote them as a string already is kept.
    let arguments = match args {
        Value::String(s) => s,
        other => other.to_string(),
    };
    Some(ToolCall { name, arguments })
}

/// The model's answer split into its text and its tool calls. Text that is not a well-formed
/// call stays text (never a half call).
pub fn parse(format: ToolFormat, text: &str) -> (String, Vec<ToolCall>) {
    match format {
        ToolFormat::Hermes => {
            let (mut content, mut calls, mut rest) = (String::new(), Vec::new(), text);
            while let Some(start) = rest.find("<tool_call>") {
                let after = &rest[start + "<tool_call>".len()..];
                let Some(end) = after.find("</tool_call>") else { break };
                match serde_json::from_str::<Value>(after[..end].trim()).ok().as_ref().and_then(|v| call_of(v, "arguments")) {
                    Some(call) => {
                        content.push_str(&rest[..start]);
                        calls.push(call);
                    }
                    None => content.push_str(&rest[..start + "<tool_call>".len() + end + "</tool_call>".len()]),
                }
                rest = &after[end + "</tool_call>".len()..];
            }
            content.push_str(rest);
            let content = if calls.is_empty() { content } else { content.trim().to_string() };
            (content, calls)
        }
        ToolFormat::Llama3Json => {
            let body = text.trim().trim_start_matches("<|python_tag|>").trim();
            match serde_json::from_str::<Value>(body).ok().as_ref().and_then(|v| call_of(v, "parameters")) {
                Some(call) => (String::new(), vec![call]),
                None => (text.to_string(), Vec::new()),
            }
        }
    }
}

/// The model's answer as it streams: text goes out as soon as it cannot be the start of a
/// call; a call is held until the answer ends and then parsed whole (a client never sees half
/// a call as text, nor a call that does not parse as a call).
#[derive(Debug)]
pub struct ToolStream {
    format: ToolFormat,
    held: String,
    /// A call began: everything from it on is held.
    calling: bool,
    /// Llama 3 JSON: the answer began as text, so it is no call.
    text: bool,
}

const HERMES_OPEN: &str = "<tool_call>";
const PYTHON_TAG: &str = "<|python_tag|>";

impl ToolStream {
    pub fn new(format: ToolFormat) -> ToolStream {
        ToolStream { format, held: String::new(), calling: false, text: false }
    }

    /// Takes the next piece of the answer; returns the text that can be sent now.
    pub fn push(&mut self, piece: &str) -> String {
        self.held.push_str(piece);
        if self.calling {
            return String::new();
        }
        match self.format {
            ToolFormat::Hermes => {
                if let Some(at) = self.held.find(HERMES_OPEN) {
                    self.calling = true;
                    let text = self.held[..at].to_string();
                    self.held.drain(..at);
                    return text;
                }
                // Hold back an ending that may be the start of the marker.
                let keep = (1..HERMES_OPEN.len()).rev().find(|&n| self.held.ends_with(&HERMES_OPEN[..n])).unwrap_or(0);
                let send = self.held.len() - keep;
                self.held.drain(..send).collect()
            }
            ToolFormat::Llama3Json => {
                if self.text {
                    return std::mem::take(&mut self.held);
                }
                let start = self.held.trim_start();
                if start.is_empty() || (PYTHON_TAG.starts_with(start) && start.len() < PYTHON_TAG.len()) {
                    String::new()
                } else if start.starts_with('{') || start.starts_with(PYTHON_TAG) {
                    self.calling = true;
                    String::new()
                } else {
                    self.text = true;
                    std::mem::take(&mut self.held)
                }
            }
        }
    }

    /// The answer ended: the rest of its text and its calls.
    pub fn finish(self) -> (String, Vec<ToolCall>) {
        if self.calling {
            parse(self.format, &self.held)
        } else {
            (self.held, Vec::new())
        }
    }
}

/// A GBNF grammar (root `root`) whose every text is one call, in `format`, of one of `tools`
/// (OpenAI's tool objects) with arguments matching that tool's parameter schema.
pub fn forcing_grammar(format: ToolFormat, tools: &[Value]) -> Result<String, crate::grammar::GrammarError> {
    let args_key = match format {
        ToolFormat::Hermes => "arguments",
        ToolFormat::Llama3Json => "parameters",
    };
    let calls: Vec<Value> = tools
        .iter()
        .filter_map(|t| t.get("function"))
        .map(|f| {
            let params = f.get("parameters").cloned().unwrap_or_else(|| json!({ "type": "object" }));
            json!({
                "type": "object",
                "properties": { "name": { "const": f.get("name").cloned().unwrap_or(Value::Null) }, args_key: params },
                "required": ["name", args_key],
                "additionalProperties": false,
            })
        })
        .collect();
    let object = crate::grammar::ResponseFormat::JsonSchema(json!({ "oneOf": calls })).grammar_as_converted()?;
    // The call's JSON becomes a rule of its own, wrapped as the format writes it.
    let object = object.replacen("root ::=", "call ::=", 1);
    let root = match format {
        ToolFormat::Hermes => r#"root ::= "<tool_call>\n" call "\n</tool_call>""#,
        ToolFormat::Llama3Json => "root ::= call",
    };
    Ok(format!("{root}\n{object}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(name: &str) -> String {
        std::fs::read_to_string(format!("{}/tests/templates/{name}.jinja", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    #[test]
    fn the_template_says_whether_and_how_tools_are_called() {
        assert_eq!(ToolFormat::of_template(&template("Qwen-Qwen2.5-7B-Instruct")), Some(ToolFormat::Hermes));
        assert_eq!(ToolFormat::of_template(&template("Qwen-Qwen3-0.6B")), Some(ToolFormat::Hermes));
        assert_eq!(ToolFormat::of_template(&template("meta-llama-Llama-3.2-3B-Instruct")), Some(ToolFormat::Llama3Json));
        for without in ["google-gemma-3-it", "HuggingFaceTB-SmolLM2-135M-Instruct", "HuggingFaceTB-SmolLM3-3B"] {
            assert_eq!(ToolFormat::of_template(&template(without)), None, "{without}");
        }
    }

    #[test]
    fn calls_parse_into_openai_tool_calls_and_anything_else_stays_text() {
        let (text, calls) = parse(
            ToolFormat::Hermes,
            "Let me look.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n<tool_call>{\"name\":\"t\",\"arguments\":{}}</tool_call>",
        );
        assert_eq!(text, "Let me look.");
        assert_eq!(
            calls,
            [ToolCall { name: "get_weather".into(), arguments: r#"{"city":"Paris"}"#.into() }, ToolCall { name: "t".into(), arguments: "{}".into() }]
        );
        let broken = "<tool_call>{\"name\": \"get_weather\", \"argu</tool_call> and <tool_call>{\"name\"";
        assert_eq!(parse(ToolFormat::Hermes, broken), (broken.to_string(), vec![]));
        let (text, calls) = parse(ToolFormat::Llama3Json, "<|python_tag|>{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo\"}}");
        assert_eq!((text.as_str(), calls), ("", vec![ToolCall { name: "get_weather".into(), arguments: r#"{"city":"Oslo"}"#.into() }]));
        assert_eq!(parse(ToolFormat::Llama3Json, "It is sunny."), ("It is sunny.".to_string(), vec![]));
    }

    #[test]
    fn a_streamed_answer_sends_text_at_once_and_holds_a_call_until_it_is_whole() {
        let mut s = ToolStream::new(ToolFormat::Hermes);
        let mut sent = String::new();
        for piece in ["Let me", " look.\n<tool", "_call>\n{\"name\": \"get_weather\", ", "\"arguments\": {\"city\": \"Paris\"}}\n</tool_call>"] {
            sent.push_str(&s.push(piece));
        }
        assert_eq!(sent, "Let me look.\n", "the marker's start was held back, the call never sent as text");
        assert_eq!(s.finish(), (String::new(), vec![ToolCall { name: "get_weather".into(), arguments: r#"{"city":"Paris"}"#.into() }]));
        // A `<` that turns out not to open a call goes out with the text after it.
        let mut s = ToolStream::new(ToolFormat::Hermes);
        assert_eq!(s.push("a <"), "a ");
        assert_eq!(s.push("b"), "<b");
        assert_eq!(s.finish(), (String::new(), vec![]));
        // A call cut short (max_tokens) comes back as text at the end, never as a half call.
        let mut s = ToolStream::new(ToolFormat::Hermes);
        assert_eq!(s.push("<tool_call>\n{\"name\": \"f"), "");
        assert_eq!(s.finish(), ("<tool_call>\n{\"name\": \"f".to_string(), vec![]));

        let mut s = ToolStream::new(ToolFormat::Llama3Json);
        assert_eq!(s.push(" {\"name\": \"t\", "), "");
        assert_eq!(s.push("\"parameters\": {}}"), "");
        assert_eq!(s.finish(), (String::new(), vec![ToolCall { name: "t".into(), arguments: "{}".into() }]));
        let mut s = ToolStream::new(ToolFormat::Llama3Json);
        assert_eq!(s.push(" "), "");
        assert_eq!(s.push(" It is"), "  It is");
        assert_eq!(s.push(" {sunny}"), " {sunny}");
        assert_eq!(s.finish(), (String::new(), vec![]));
    }

    #[test]
    fn tool_choice_reads_openai_s_forms() {
        assert_eq!(ToolChoice::from_openai(None), Some(ToolChoice::Auto));
        assert_eq!(ToolChoice::from_openai(Some(&json!("none"))), Some(ToolChoice::None));
        assert_eq!(ToolChoice::from_openai(Some(&json!("required"))), Some(ToolChoice::Required));
        assert_eq!(ToolChoice::from_openai(Some(&json!({"type": "function", "function": {"name": "f"}}))), Some(ToolChoice::Function("f".into())));
        assert_eq!(ToolChoice::from_openai(Some(&json!("sometimes"))), None);
        assert_eq!(ToolChoice::from_openai(Some(&json!({"type": "function"}))), None);
    }

    /// An OpenAI history with a tool call and its result, rendered by Qwen 2.5's own template:
    /// the tools in its system block, the call as `<tool_call>` JSON with the arguments as an
    /// object, the result inside `<tool_response>`.
    #[test]
    fn tools_calls_and_results_render_with_the_model_s_own_template() {
        let tools = json!([{ "type": "function", "function": { "name": "get_weather", "description": "Weather now",
            "parameters": { "type": "object", "properties": { "city": { "type": "string" } } } } }]);
        let openai_calls = [json!({ "id": "call_1", "type": "function", "function": { "name": "get_weather", "arguments": "{\"city\": \"Paris\"}" } })];
        let messages = [
            crate::Message::new(Role::User, "Weather in Paris?"),
            crate::Message { tool_calls: Some(for_template(&openai_calls)), ..crate::Message::new(Role::Assistant, "") },
            crate::Message { tool_call_id: Some("call_1".into()), ..crate::Message::new(Role::Tool, "{\"temperature\": 21}") },
        ];
        let text = crate::template::render_jinja(&template("Qwen-Qwen2.5-7B-Instruct"), "q.gguf", &messages, Some(&tools), true, "", "").unwrap();
        let offered = text.split("<tools>\n").nth(1).and_then(|t| t.split("\n</tools>").next()).unwrap();
        assert_eq!(serde_json::from_str::<Value>(offered).unwrap(), tools[0], "{text}");
        assert!(
            text.contains("<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call><|im_end|>"),
            "{text}"
        );
        assert!(text.contains("<|im_start|>user\n<tool_response>\n{\"temperature\": 21}\n</tool_response><|im_end|>\n<|im_start|>assistant\n"), "{text}");
        // Without tools offered the call and result still render (tool_choice "none" later on).
        let text = crate::template::render_jinja(&template("Qwen-Qwen2.5-7B-Instruct"), "q.gguf", &messages, None, true, "", "").unwrap();
        assert!(!text.contains("<tools>") && text.contains("<tool_response>"), "{text}");
    }

    #[test]
    fn a_model_file_s_tool_format_comes_from_its_template() {
        assert_eq!(ToolFormat::of_model(&understudy_testkit::tiny_gguf_with_template("qwen2.5")), Some(ToolFormat::Hermes));
        assert_eq!(ToolFormat::of_model(&understudy_testkit::tiny_gguf_with_template("llama3")), None);
        assert_eq!(ToolFormat::of_model(&understudy_testkit::tiny_gguf_with_template("none")), None);
        assert_eq!(ToolFormat::of_model(Path::new("/nonexistent.gguf")), None);
    }

    #[test]
    fn a_forcing_grammar_wraps_the_call_as_the_format_writes_it() {
        let tools = [json!({ "type": "function", "function": { "name": "get_weather", "parameters": {
            "type": "object", "properties": { "city": { "type": "string" } }, "required": ["city"] } } })];
        let g = forcing_grammar(ToolFormat::Hermes, &tools).unwrap();
        assert!(g.starts_with("root ::= \"<tool_call>\\n\" call") && g.contains("call ::=") && g.contains("get_weather"), "{g}");
        let g = forcing_grammar(ToolFormat::Llama3Json, &tools).unwrap();
        assert!(g.contains("parameters"), "{g}");
    }
}
