//! Turning a conversation into the model's prompt text.
//!
//! Order of preference: the model's own `tokenizer.chat_template` rendered as Jinja exactly as
//! Hugging Face `transformers` renders it (`apply_chat_template`: trim_blocks, lstrip_blocks,
//! its `tojson`, `raise_exception`, `strftime_now`), because that is the prompt the model was
//! trained on. llama.cpp's own renderer guesses the family from the template's text and renders
//! a wrong prompt without an error when it guesses wrong, so it is used only for a template
//! minijinja cannot run at all. Files without a template get a llama.cpp built-in chosen by
//! architecture, else ChatML.

use std::fmt::Write as _;

use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use minijinja::value::{Kwargs, ValueKind};
use minijinja::{Error, ErrorKind, Value};
use serde::Serialize;
use understudy_core::Role;

use crate::protocol::Message;

/// How the prompt was rendered, reported in `Loaded` and stats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Template {
    /// The model's template, which minijinja cannot run but llama.cpp's renderer recognises.
    Builtin(String),
    /// The model's template rendered as Jinja by minijinja, as `transformers` does.
    Jinja(String),
    /// A llama.cpp built-in chosen by architecture (`gemma`, ...), the file having none.
    ByArchitecture(&'static str),
    ChatMl,
}

impl Template {
    pub fn describe(&self) -> String {
        match self {
            Template::Builtin(_) => "model (llama.cpp)".into(),
            Template::Jinja(_) => "model (jinja)".into(),
            Template::ByArchitecture(name) => format!("built-in {name}"),
            Template::ChatMl => "chatml".into(),
        }
    }
}

/// llama.cpp built-in templates for architectures whose files often lack one.
fn builtin_for_architecture(arch: &str) -> Option<&'static str> {
    Some(match arch {
        a if a.starts_with("gemma") => "gemma",
        "phi3" => "phi3",
        "qwen2" | "qwen3" | "qwen2moe" | "qwen3moe" => "chatml",
        _ => return None,
    })
}

/// Why a chat template could not be chosen or rendered; the words name the model file.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("{file}: its chat template did not finish within {FUEL} steps (a loop that never ends?); the model cannot be used with it")]
    OutOfFuel { file: String },
    #[error("{file}: chat template: {source}")]
    Jinja { file: String, source: Error },
    /// A template text or name with an interior NUL, for llama.cpp's renderer.
    #[error("chat template: {0}")]
    Nul(#[from] std::ffi::NulError),
    #[error(transparent)]
    Llama(#[from] llama_cpp_2::ApplyChatTemplateError),
    /// Tools, tool calls or tool results for a template that is not rendered as Jinja (llama.cpp's
    /// renderer and the built-ins know no tools): refused rather than left out of the prompt.
    #[error("{file}: its chat template cannot render tools, tool calls or tool results")]
    NoTools { file: String },
}

/// Picks the template for `model` (the file at `file`) once, at load. A template that runs out
/// of fuel on a one-message chat is hostile (or broken beyond use) and fails the load, naming
/// the file.
pub fn choose(model: &LlamaModel, architecture: &str, file: &str) -> Result<Template, TemplateError> {
    if let Ok(t) = model.chat_template(None) {
        let text = t.to_string().unwrap_or_default();
        match jinja(&text, &[Message::new(Role::User, "u")], None, true, "", "") {
            Ok(_) => return Ok(Template::Jinja(text)),
            Err(e) if e.kind() == ErrorKind::OutOfFuel => return Err(jinja_error(file, e)),
            Err(e) => {
                // Syntax minijinja lacks: llama.cpp's guess from the text beats ChatML. It returns
                // an error for templates it does not know.
                let probe = [chat("system", "s"), chat("user", "u")];
                if model.apply_chat_template(&t, &probe, true).is_ok() {
                    tracing::warn!("{}; using llama.cpp's renderer for it", jinja_error(file, e));
                    return Ok(Template::Builtin(text));
                }
                tracing::warn!("{}; falling back to a built-in template", jinja_error(file, e));
            }
        }
    }
    Ok(match builtin_for_architecture(architecture) {
        Some(name) => Template::ByArchitecture(name),
        None => Template::ChatMl,
    })
}

fn chat(role: &str, content: &str) -> LlamaChatMessage {
    // Interior NULs are the only failure; strip them rather than fail a conversation.
    LlamaChatMessage::new(role.replace('\0', ""), content.replace('\0', "")).expect("NULs removed")
}

/// Renders `messages` (and `tools`, OpenAI's tool objects, for a template that reads them);
/// with `open_assistant`, ends with the opened assistant turn to answer in (without, the text
/// is a prefix of any longer conversation: what pre-warm caches). Errors name the model `file`.
#[allow(clippy::too_many_arguments)]
pub fn render(
    model: &LlamaModel,
    file: &str,
    template: &Template,
    messages: &[Message],
    tools: Option<&serde_json::Value>,
    open_assistant: bool,
    bos: &str,
    eos: &str,
) -> Result<String, TemplateError> {
    if !matches!(template, Template::Jinja(_)) && (tools.is_some() || messages.iter().any(Message::is_tool_turn)) {
        return Err(TemplateError::NoTools { file: file.into() });
    }
    let llama = |name_or_text: &str| -> Result<String, TemplateError> {
        let tmpl = LlamaChatTemplate::new(name_or_text)?;
        let chat: Vec<_> = messages.iter().map(|m| chat(m.role.as_str(), &m.content)).collect();
        Ok(model.apply_chat_template(&tmpl, &chat, open_assistant)?)
    };
    match template {
        Template::Builtin(text) => llama(text),
        Template::ByArchitecture(name) => llama(name),
        Template::Jinja(text) => render_jinja(text, file, messages, tools, open_assistant, bos, eos),
        Template::ChatMl => Ok(chatml(messages, open_assistant)),
    }
}

pub fn chatml(messages: &[Message], open_assistant: bool) -> String {
    let mut out = String::new();
    for m in messages {
        out.push_str(&format!("<|im_start|>{}\n{}<|im_end|>\n", m.role, m.content));
    }
    if open_assistant {
        out.push_str("<|im_start|>assistant\n");
    }
    out
}

/// Instructions a chat template may run per render. Real templates spend tens per message (a
/// 1000-message conversation renders with every common family in the tests); a template from
/// a downloaded or scanned file that loops for ever stops here (about a second in a debug
/// build) instead of hanging the worker until the stall watchdog kills it.
pub const FUEL: u64 = 2_000_000;

/// Renders a Hugging Face style chat template (Jinja) the way `transformers`'
/// `apply_chat_template` does, within [`FUEL`]: `messages` as given (any serializable shape, so
/// messages with `tool_calls` work too), `tools` (JSON schemas) or none, `documents` none, and
/// the special tokens `bos_token` / `eos_token`. Errors name the model `file` the template came
/// from.
pub fn render_jinja<M: Serialize>(
    template: &str,
    file: &str,
    messages: &[M],
    tools: Option<&serde_json::Value>,
    add_generation_prompt: bool,
    bos: &str,
    eos: &str,
) -> Result<String, TemplateError> {
    jinja(template, messages, tools, add_generation_prompt, bos, eos).map_err(|e| jinja_error(file, e))
}

fn jinja_error(file: &str, e: Error) -> TemplateError {
    match e.kind() {
        ErrorKind::OutOfFuel => TemplateError::OutOfFuel { file: file.into() },
        _ => TemplateError::Jinja { file: file.into(), source: e },
    }
}

/// The environment of `transformers`' `_compile_jinja_template` (an immutable sandbox with
/// trim_blocks, lstrip_blocks and loop controls; `tojson`, `raise_exception`, `strftime_now`),
/// plus Python's str/dict/list methods, which Jinja2 templates call freely.
fn environment() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    env.set_fuel(Some(FUEL));
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    minijinja_contrib::add_to_environment(&mut env);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function("raise_exception", |msg: String| -> Result<String, Error> { Err(Error::new(ErrorKind::InvalidOperation, msg)) });
    env.add_function("strftime_now", |format: String| -> Result<String, Error> {
        let mut out = String::new();
        // chrono reports a format it cannot do as fmt::Error (Python would raise too).
        write!(out, "{}", chrono::Local::now().format(&format))
            .map_err(|_| Error::new(ErrorKind::InvalidOperation, format!("strftime_now: bad format {format:?}")))?;
        Ok(out)
    });
    env.add_filter("tojson", tojson);
    env
}

fn jinja<M: Serialize>(
    template: &str,
    messages: &[M],
    tools: Option<&serde_json::Value>,
    add_generation_prompt: bool,
    bos: &str,
    eos: &str,
) -> Result<String, Error> {
    let mut env = environment();
    env.add_template("chat", template)?;
    let ctx = minijinja::context! {
        messages => Value::from_serialize(messages),
        tools => tools.map(Value::from_serialize),
        documents => Value::from(()),
        add_generation_prompt => add_generation_prompt,
        bos_token => bos,
        eos_token => eos,
    };
    env.get_template("chat").and_then(|t| t.render(ctx))
}

/// `transformers`' `tojson`: `json.dumps(x, ensure_ascii=False, indent=indent,
/// separators=separators, sort_keys=sort_keys)`. minijinja's own escapes `<`, `>`, `&` and `'`
/// for HTML and formats differently, which changes the prompt (tool schemas, arguments).
fn tojson(value: &Value, kwargs: Kwargs) -> Result<Value, Error> {
    let indent: Option<Value> = kwargs.get("indent")?;
    let separators: Option<Value> = kwargs.get("separators")?;
    let sort_keys: Option<bool> = kwargs.get("sort_keys")?;
    let ensure_ascii: Option<bool> = kwargs.get("ensure_ascii")?;
    kwargs.assert_all_used()?;
    let indent = match indent {
        None => None,
        Some(v) if v.is_none() => None,
        Some(v) if v.kind() == ValueKind::String => Some(v.as_str().unwrap_or_default().to_string()),
        Some(v) => Some(" ".repeat(usize::try_from(i64::try_from(v)?.max(0)).unwrap_or(0))),
    };
    let (item_sep, key_sep) = match separators.filter(|s| !s.is_none()) {
        Some(s) => {
            let (a, b) = (s.get_item_by_index(0)?, s.get_item_by_index(1)?);
            match (a.as_str(), b.as_str()) {
                (Some(a), Some(b)) => (a.to_string(), b.to_string()),
                _ => return Err(Error::new(ErrorKind::InvalidOperation, "tojson: separators must be two strings")),
            }
        }
        // Python's defaults: no space before a newline when indenting.
        None if indent.is_some() => (",".into(), ": ".into()),
        None => (", ".into(), ": ".into()),
    };
    let json = PyJson { indent, item_sep, key_sep, sort_keys: sort_keys.unwrap_or(false), ensure_ascii: ensure_ascii.unwrap_or(false) };
    let mut out = String::new();
    json.write(&mut out, value, 1)?;
    Ok(Value::from(out))
}

struct PyJson {
    indent: Option<String>,
    item_sep: String,
    key_sep: String,
    sort_keys: bool,
    ensure_ascii: bool,
}

impl PyJson {
    fn write(&self, out: &mut String, v: &Value, level: usize) -> Result<(), Error> {
        let unsupported = || Error::new(ErrorKind::InvalidOperation, format!("tojson: object of type {} is not JSON serializable", v.kind()));
        match v.kind() {
            ValueKind::None => out.push_str("null"),
            ValueKind::Bool => out.push_str(if v.is_true() { "true" } else { "false" }),
            ValueKind::Number if v.is_integer() => out.push_str(&v.to_string()),
            ValueKind::Number => out.push_str(&py_float(f64::try_from(v.clone())?)),
            ValueKind::String => self.string(out, v.as_str().unwrap_or_default()),
            ValueKind::Seq | ValueKind::Iterable => {
                let items: Vec<Value> = v.try_iter()?.collect();
                self.container(out, '[', ']', level, items.len(), |out, i| self.write(out, &items[i], level + 1))?;
            }
            ValueKind::Map => {
                let mut entries: Vec<(String, Value)> = Vec::new();
                for key in v.try_iter()? {
                    let item = v.get_item(&key)?;
                    let name = match key.kind() {
                        ValueKind::String => key.as_str().unwrap_or_default().to_string(),
                        ValueKind::None => "null".into(),
                        ValueKind::Bool => (if key.is_true() { "true" } else { "false" }).into(),
                        ValueKind::Number if key.is_integer() => key.to_string(),
                        ValueKind::Number => py_float(f64::try_from(key.clone())?),
                        _ => {
                            return Err(Error::new(
                                ErrorKind::InvalidOperation,
                                format!("tojson: keys must be str, int, float, bool or None, not {}", key.kind()),
                            ))
                        }
                    };
                    entries.push((name, item));
                }
                if self.sort_keys {
                    entries.sort_by(|a, b| a.0.cmp(&b.0));
                }
                self.container(out, '{', '}', level, entries.len(), |out, i| {
                    self.string(out, &entries[i].0);
                    out.push_str(&self.key_sep);
                    self.write(out, &entries[i].1, level + 1)
                })?;
            }
            _ => return Err(unsupported()),
        }
        Ok(())
    }

    /// Python's layout: `[a, b]`, or with an indent each item on its own line.
    fn container(
        &self,
        out: &mut String,
        open: char,
        close: char,
        level: usize,
        n: usize,
        mut item: impl FnMut(&mut String, usize) -> Result<(), Error>,
    ) -> Result<(), Error> {
        out.push(open);
        if n == 0 {
            out.push(close);
            return Ok(());
        }
        let newline = |level: usize| self.indent.as_ref().map(|ind| format!("\n{}", ind.repeat(level)));
        if let Some(nl) = newline(level) {
            out.push_str(&nl);
        }
        for i in 0..n {
            if i > 0 {
                out.push_str(&self.item_sep);
                if let Some(nl) = newline(level) {
                    out.push_str(&nl);
                }
            }
            item(out, i)?;
        }
        if let Some(nl) = newline(level - 1) {
            out.push_str(&nl);
        }
        out.push(close);
        Ok(())
    }

    fn string(&self, out: &mut String, s: &str) {
        out.push('"');
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                c if (c as u32) < 0x20 || (self.ensure_ascii && (c as u32) > 0x7e) => {
                    let mut buf = [0u16; 2];
                    for unit in c.encode_utf16(&mut buf) {
                        let _ = write!(out, "\\u{unit:04x}");
                    }
                }
                c => out.push(c),
            }
        }
        out.push('"');
    }
}

/// Python's `float.__repr__`: shortest digits, `1.0` not `1`, exponent outside 1e-4..1e16.
fn py_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity".into() } else { "-Infinity".into() };
    }
    // `{:e}` gives the shortest round-trip digits: "-1.2345e-7".
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = mantissa.strip_prefix('-').map_or(("", mantissa), |m| ("-", m));
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if !(-4..16).contains(&exp) {
        let m = if digits.len() > 1 { format!("{}.{}", &digits[..1], &digits[1..]) } else { digits };
        return format!("{sign}{m}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    }
    let point = exp + 1; // digits before the decimal point
    if point <= 0 {
        format!("{sign}0.{}{digits}", "0".repeat((-point) as usize))
    } else if (point as usize) >= digits.len() {
        format!("{sign}{digits}{}.0", "0".repeat(point as usize - digits.len()))
    } else {
        format!("{sign}{}.{}", &digits[..point as usize], &digits[point as usize..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LLAMA3: &str = "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";
    const MISTRAL: &str = "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}{% endif %}{% endfor %}";
    const GEMMA: &str = "{{ bos_token }}{% for message in messages %}{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}";
    const CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    fn check(template: &str, messages: &[Message], expect: &str) {
        assert_eq!(render_jinja(template, "m.gguf", messages, None, true, "<s>", "</s>").unwrap(), expect);
    }

    #[test]
    fn jinja_renders_the_common_families() {
        let convo = [Message::new(Role::User, "Hi"), Message::new(Role::Assistant, "Hello!"), Message::new(Role::User, "Bye")];
        check(
            CHATML,
            &convo,
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n",
        );
        check(
            LLAMA3,
            &convo,
            "<s><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nBye<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
        );
        check(MISTRAL, &convo, "<s>[INST] Hi [/INST]Hello!</s>[INST] Bye [/INST]");
        check(
            GEMMA,
            &convo,
            "<s><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n<start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n",
        );
    }

    #[test]
    fn template_exceptions_are_errors_not_panics() {
        let err = render_jinja(MISTRAL, "/models/m.gguf", &[Message::new(Role::Assistant, "x")], None, true, "", "").unwrap_err().to_string();
        assert!(err.contains("must alternate") && err.starts_with("/models/m.gguf: "), "{err}");
        assert!(render_jinja::<Message>("{% for %}", "m.gguf", &[], None, true, "", "").is_err());
    }

    /// Templates that would run for hours (or for ever) without a limit.
    const HOSTILE: [&str; 3] = [
        "{% for a in range(100000) %}{% for b in range(100000) %}{{ a }}{% endfor %}{% endfor %}",
        "{% for m in messages %}{% for a in range(100000) %}{% for b in range(100000) %}x{% endfor %}{% endfor %}{% endfor %}",
        "{% macro f(n) %}{% for i in range(1000) %}{{ f(n + 1) }}{% endfor %}{% endmacro %}{{ f(0) }}",
    ];

    #[test]
    fn a_template_that_runs_away_stops_with_an_error_naming_the_file() {
        for t in HOSTILE {
            let started = std::time::Instant::now();
            let err = render_jinja(t, "/home/u/.lmstudio/models/evil/evil.gguf", &[Message::new(Role::User, "u")], None, true, "", "").unwrap_err().to_string();
            assert!(err.starts_with("/home/u/.lmstudio/models/evil/evil.gguf: "), "{err}");
            assert!(started.elapsed() < std::time::Duration::from_secs(10), "took {:?}: {err}", started.elapsed());
        }
        let err = render_jinja::<Message>(HOSTILE[0], "evil.gguf", &[], None, true, "", "").unwrap_err().to_string();
        assert!(err.contains("did not finish"), "{err}");
    }

    #[test]
    fn long_real_conversations_stay_within_the_fuel() {
        let convo: Vec<Message> =
            (0..1000).map(|i| Message::new(if i % 2 == 0 { Role::User } else { Role::Assistant }, &format!("message {i} with some words"))).collect();
        for t in [LLAMA3, MISTRAL, GEMMA, CHATML] {
            let text = render_jinja(t, "m.gguf", &convo, None, true, "<s>", "</s>").unwrap();
            assert!(text.contains("message 999"));
        }
    }

    #[test]
    fn the_template_fuzz_corpus_replays_without_a_panic() {
        let corpus = understudy_testkit::fuzz_corpus("chat_template");
        assert!(!corpus.is_empty());
        for (path, bytes) in corpus {
            // What the fuzz target does: the input as a template over a short conversation.
            let t = String::from_utf8_lossy(&bytes);
            let started = std::time::Instant::now();
            let _ = render_jinja(&t, "fuzz.gguf", &[Message::new(Role::System, "s"), Message::new(Role::User, "u")], None, true, "<s>", "</s>");
            assert!(started.elapsed() < std::time::Duration::from_secs(10), "{}", path.display());
        }
    }

    /// `json.dumps(x, ensure_ascii=False, ...)`, not minijinja's HTML-safe `tojson`.
    #[test]
    fn tojson_is_pythons_json_dumps() {
        let r = |t: &str| render_jinja::<Message>(t, "m.gguf", &[], None, true, "", "").unwrap();
        assert_eq!(r(r#"{{ {"b": "<a & 'c'>", "a": [1, 2.5, none, true]} | tojson }}"#), r#"{"b": "<a & 'c'>", "a": [1, 2.5, null, true]}"#);
        assert_eq!(r(r#"{{ {"k": [1, {}], "e": []} | tojson(indent=2) }}"#), "{\n  \"k\": [\n    1,\n    {}\n  ],\n  \"e\": []\n}");
        assert_eq!(r(r#"{{ {"b": 1, "a": "Zürich\n"} | tojson(separators=(",", ":"), sort_keys=true) }}"#), r#"{"a":"Zürich\n","b":1}"#);
        assert_eq!(r(r#"{{ "é" | tojson(ensure_ascii=true) }}"#), r#""\u00e9""#);
        for (f, want) in
            [(1.0, "1.0"), (-273.15, "-273.15"), (1e20, "1e+20"), (1e16, "1e+16"), (1e15, "1000000000000000.0"), (0.0001, "0.0001"), (1.5e-5, "1.5e-05")]
        {
            assert_eq!(py_float(f), want);
        }
    }

    /// transformers' environment: blocks eat their newline and leading indentation; the date
    /// helper Llama 3.x templates call exists.
    #[test]
    fn blocks_are_trimmed_and_strftime_now_exists() {
        let t = "{% for m in messages %}\n    {% if m.role == 'user' %}\n[{{ m.content }}]\n    {% endif %}\n{% endfor %}";
        assert_eq!(render_jinja(t, "m.gguf", &[Message::new(Role::User, "a"), Message::new(Role::User, "b")], None, true, "", "").unwrap(), "[a]\n[b]\n");
        let year = render_jinja::<Message>("{{ strftime_now('%Y') }}", "m.gguf", &[], None, true, "", "").unwrap();
        assert!(year.len() == 4 && year.starts_with('2'), "{year}");
    }

    #[test]
    fn chatml_fallback() {
        assert_eq!(chatml(&[Message::new(Role::User, "q")], true), "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n");
        assert_eq!(chatml(&[Message::new(Role::System, "s")], false), "<|im_start|>system\ns<|im_end|>\n");
    }
}
