//! Test helper: opens the store given as the first argument, commits a user message, then
//! streams an assistant answer into it a word every 10 ms, forever (until killed). With a
//! second argument, a directory, it instead writes a few words, exports the conversation
//! there as Markdown and JSON, and exits (the file-mode test runs it under `umask 000`).

use understudy_store::{Provenance, Role, Store, StreamingMessage};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: understudy-store-writer DB")?;
    let store = Store::open(std::path::Path::new(&path))?;
    let c = store.create_conversation("crash test")?;
    store.add_message(c.id, Role::User, "Tell me a very long story.")?;
    let by = Provenance { provider: Some("openai".into()), model: Some("gpt-4o-mini".into()), failover_reason: None };
    let mut answer = StreamingMessage::begin(&store, c.id, &by)?;
    if let Some(dir) = std::env::args().nth(2) {
        answer.push(&store, "a few words")?;
        let messages = store.messages(c.id)?;
        for format in [understudy_store::export::Format::Markdown, understudy_store::export::Format::Json] {
            understudy_store::export::save(std::path::Path::new(&dir), &c, &messages, format)?;
        }
        return Ok(());
    }
    let mut i = 0u64;
    loop {
        answer.push(&store, &format!("word{i} "))?;
        i += 1;
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}
