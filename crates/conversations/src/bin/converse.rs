//! Test helper for the crash cycles: what the app does for one message, without the window.
//! Opens the history at DB, starts a conversation, sends MESSAGE through the real router
//! (OpenAI at BASE_URL, mode auto), prints `committed` once the user message is stored and
//! `done` when the answer is; the test kills it with SIGKILL somewhere in between.
//!
//! usage: understudy-converse DB BASE_URL MESSAGE

#![allow(clippy::print_stdout)]

use std::io::Write;

use understudy_conversations::{Conversations, TurnEvent};
use understudy_core::config::{ApiKeySource, Config, Mode, ProviderConfig};
use understudy_core::{Env, Paths};
use understudy_local::engine::EngineConfig;
use understudy_local::Engine;
use understudy_router::chain::FixedKey;
use understudy_router::{Chain, Router};
use understudy_store::Store;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [db, base_url, message] = args.as_slice() else { return Err("usage: understudy-converse DB BASE_URL MESSAGE".into()) };
    let db = std::path::PathBuf::from(db);
    let dir = db.parent().ok_or("DB has no parent dir")?.to_path_buf();
    let env = Env::from_pairs([("UNDERSTUDY_DATA_DIR", dir.display().to_string()), ("UNDERSTUDY_CONFIG", dir.join("none.toml").display().to_string())]);
    let paths = Paths::resolve(&env)?;
    let mut config = Config { mode: Mode::Auto, ..Config::default() };
    config.providers = vec![ProviderConfig { id: "openai".into(), base_url: base_url.clone(), model: "gpt-4o-mini".into(), api_key: ApiKeySource::Keyring }];
    config.failover.status_page = String::new();
    let router = Router::new(
        Chain::build(&config, &paths, &FixedKey("sk-test-CRASH0123456789".into())),
        Engine::new(EngineConfig::new(std::path::PathBuf::from("/nonexistent"), &[])),
    );
    let conversations = Conversations::new(Store::open(&db)?, router);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let c = conversations.create()?;
        conversations
            .send(c.id, message, |e| {
                if let TurnEvent::UserMessage { .. } = e {
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out, "committed {}", c.id);
                    let _ = out.flush();
                }
            })
            .await?;
        println!("done {}", c.id);
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}
