//! Any text as a model file's `tokenizer.chat_template` rendered by minijinja: a prompt or an
//! error naming the file, never a panic or a hang (the fuel limit stops runaway loops).
#![no_main]
use understudy_local::protocol::Message;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(template) = std::str::from_utf8(data) {
        let messages = [Message::new("system", "s"), Message::new("user", "u"), Message::new("assistant", "a")];
        if let Err(e) = understudy_local::template::render_jinja(template, "fuzz.gguf", &messages, None, true, "<s>", "</s>") {
            assert!(e.to_string().starts_with("fuzz.gguf: "), "{e}");
        }
    }
});
