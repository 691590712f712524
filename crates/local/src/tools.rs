//! Tools for the offline model, where its chat template has them: which format the template
//! teaches the model to call tools in (picked by the template's own markers), the model's text
//! parsed back into OpenAI `tool_calls`, and a grammar that forces a call (`tool_choice`
//! "required") so that even a weak model writes one that parses.

use serde_json::{json, Value};

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

/// A call the model made, as OpenAI sends it: `arguments` is a JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    let object = crate::grammar::ResponseFormat::JsonSchema(json!({ "oneOf": calls })).grammar()?;
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
    fn a_forcing_grammar_wraps_the_call_as_the_format_writes_it() {
        let tools = [json!({ "type": "function", "function": { "name": "get_weather", "parameters": {
            "type": "object", "properties": { "city": { "type": "string" } }, "required": ["city"] } } })];
        let g = forcing_grammar(ToolFormat::Hermes, &tools).unwrap();
        assert!(g.starts_with("root ::= \"<tool_call>\\n\" call") && g.contains("call ::=") && g.contains("get_weather"), "{g}");
        let g = forcing_grammar(ToolFormat::Llama3Json, &tools).unwrap();
        assert!(g.contains("parameters"), "{g}");
    }
}
