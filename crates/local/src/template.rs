//! Turning a conversation into the model's prompt text.
//!
//! Order of preference: llama.cpp's built-in renderer for the model's own
//! `tokenizer.chat_template` (it recognises the common families by their text), then the same
//! template rendered as Jinja with minijinja, then a built-in template chosen by architecture
//! (for files that carry none), and ChatML as the last resort.

use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};

use crate::protocol::Message;

/// How the prompt was rendered, reported in `Loaded` and stats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Template {
    /// The model's template, which llama.cpp's own renderer recognises.
    Builtin(String),
    /// The model's template rendered as Jinja by minijinja.
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

/// Picks the template for `model` (the file at `file`) once, at load. A template that minijinja
/// cannot parse falls back to the built-ins; one that runs out of fuel on a one-message chat is
/// hostile (or broken beyond use) and fails the load, naming the file.
pub fn choose(model: &LlamaModel, architecture: &str, file: &str) -> Result<Template, String> {
    if let Ok(t) = model.chat_template(None) {
        let text = t.to_string().unwrap_or_default();
        // Probe with a two-message chat: llama.cpp returns an error for templates it does not know.
        let probe = [chat("system", "s"), chat("user", "u")];
        if model.apply_chat_template(&t, &probe, true).is_ok() {
            return Ok(Template::Builtin(text));
        }
        match jinja(&text, &[Message::new("user", "u")], true, "", "") {
            Ok(_) => return Ok(Template::Jinja(text)),
            Err(e) if e.kind() == minijinja::ErrorKind::OutOfFuel => return Err(jinja_error(file, &e)),
            Err(_) => {}
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

/// Renders `messages`; with `open_assistant`, ends with the opened assistant turn to answer in
/// (without, the text is a prefix of any longer conversation: what pre-warm caches).
/// Errors name the model `file`.
pub fn render(model: &LlamaModel, file: &str, template: &Template, messages: &[Message], open_assistant: bool, bos: &str, eos: &str) -> Result<String, String> {
    let llama = |name_or_text: &str| -> Result<String, String> {
        let tmpl = LlamaChatTemplate::new(name_or_text).map_err(|e| e.to_string())?;
        let chat: Vec<_> = messages.iter().map(|m| chat(&m.role, &m.content)).collect();
        model.apply_chat_template(&tmpl, &chat, open_assistant).map_err(|e| e.to_string())
    };
    match template {
        Template::Builtin(text) => llama(text),
        Template::ByArchitecture(name) => llama(name),
        Template::Jinja(text) => render_jinja(text, file, messages, open_assistant, bos, eos),
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

/// Renders a Hugging Face style chat template (Jinja) the way `transformers` does, within
/// [`FUEL`]. Errors name the model `file` the template came from.
pub fn render_jinja(template: &str, file: &str, messages: &[Message], add_generation_prompt: bool, bos: &str, eos: &str) -> Result<String, String> {
    jinja(template, messages, add_generation_prompt, bos, eos).map_err(|e| jinja_error(file, &e))
}

fn jinja_error(file: &str, e: &minijinja::Error) -> String {
    if e.kind() == minijinja::ErrorKind::OutOfFuel {
        format!("{file}: its chat template did not finish within {FUEL} steps (a loop that never ends?); the model cannot be used with it")
    } else {
        format!("{file}: chat template: {e}")
    }
}

fn jinja(template: &str, messages: &[Message], add_generation_prompt: bool, bos: &str, eos: &str) -> Result<String, minijinja::Error> {
    let mut env = minijinja::Environment::new();
    env.set_fuel(Some(FUEL));
    minijinja_contrib::add_to_environment(&mut env);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function("raise_exception", |msg: String| -> Result<String, minijinja::Error> {
        Err(minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, msg))
    });
    env.add_template("chat", template)?;
    let ctx = minijinja::context! {
        messages => messages,
        add_generation_prompt => add_generation_prompt,
        bos_token => bos,
        eos_token => eos,
    };
    env.get_template("chat").and_then(|t| t.render(ctx))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LLAMA3: &str = "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";
    const MISTRAL: &str = "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}{% endif %}{% endfor %}";
    const GEMMA: &str = "{{ bos_token }}{% for message in messages %}{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}";
    const CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    fn check(template: &str, messages: &[Message], expect: &str) {
        assert_eq!(render_jinja(template, "m.gguf", messages, true, "<s>", "</s>").unwrap(), expect);
    }

    #[test]
    fn jinja_renders_the_common_families() {
        let convo = [Message::new("user", "Hi"), Message::new("assistant", "Hello!"), Message::new("user", "Bye")];
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
        let err = render_jinja(MISTRAL, "/models/m.gguf", &[Message::new("assistant", "x")], true, "", "").unwrap_err();
        assert!(err.contains("must alternate") && err.starts_with("/models/m.gguf: "), "{err}");
        assert!(render_jinja("{% for %}", "m.gguf", &[], true, "", "").is_err());
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
            let err = render_jinja(t, "/home/u/.lmstudio/models/evil/evil.gguf", &[Message::new("user", "u")], true, "", "").unwrap_err();
            assert!(err.starts_with("/home/u/.lmstudio/models/evil/evil.gguf: "), "{err}");
            assert!(started.elapsed() < std::time::Duration::from_secs(10), "took {:?}: {err}", started.elapsed());
        }
        let err = render_jinja(HOSTILE[0], "evil.gguf", &[], true, "", "").unwrap_err();
        assert!(err.contains("did not finish"), "{err}");
    }

    #[test]
    fn long_real_conversations_stay_within_the_fuel() {
        let convo: Vec<Message> =
            (0..1000).map(|i| Message::new(if i % 2 == 0 { "user" } else { "assistant" }, &format!("message {i} with some words"))).collect();
        for t in [LLAMA3, MISTRAL, GEMMA, CHATML] {
            let text = render_jinja(t, "m.gguf", &convo, true, "<s>", "</s>").unwrap();
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
            let _ = render_jinja(&t, "fuzz.gguf", &[Message::new("system", "s"), Message::new("user", "u")], true, "<s>", "</s>");
            assert!(started.elapsed() < std::time::Duration::from_secs(10), "{}", path.display());
        }
    }

    #[test]
    fn chatml_fallback() {
        assert_eq!(chatml(&[Message::new("user", "q")], true), "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n");
        assert_eq!(chatml(&[Message::new("system", "s")], false), "<|im_start|>system\ns<|im_end|>\n");
    }
}
