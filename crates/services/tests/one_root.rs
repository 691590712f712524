//! One composition root: what Settings writes reaches every consumer through the config watch
//! and the router, and the engine is made from the config, whoever builds the services.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use understudy_core::config::Mode;
use understudy_core::settings::ProviderEntry;
use understudy_core::{Env, Paths, Settings};
use understudy_services::{Change, Services, WriteError};
use understudy_store::Secrets;

const CONFIG: &str = "# kept by hand\n[failover]\nstall_timeout = \"7s\"\nstatus_page = \"\"\n";

fn services(dir: &std::path::Path) -> Services {
    let config = dir.join("config.toml");
    let env = Env::from_pairs([("UNDERSTUDY_DATA_DIR", dir.join("data").display().to_string()), ("UNDERSTUDY_CONFIG", config.display().to_string())]);
    let paths = Paths::resolve(&env).unwrap();
    Services::builder(env, paths).secrets(Secrets::file_only(dir)).worker("/bin/false", &[]).build().unwrap()
}

#[tokio::test]
async fn a_settings_write_reaches_the_watch_and_the_router_without_anyone_reading_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.toml"), CONFIG).unwrap();
    let services = services(dir.path());
    let router = services.router().clone();
    let mut consumer = services.config();
    assert_eq!(consumer.borrow_and_update().config.mode, Mode::Auto);

    let settings = Settings { mode: Mode::LocalOnly, notifications: false, ..Settings::of(&services.current().config) };
    services.write(Change::Settings(&settings)).unwrap();
    // The file is broken by hand at once: a consumer that read it would see defaults.
    std::fs::write(dir.path().join("config.toml"), "mode = [").unwrap();
    tokio::time::timeout(Duration::from_secs(1), consumer.changed()).await.expect("the write is published").unwrap();
    let seen = consumer.borrow_and_update().clone();
    assert_eq!(seen.config.mode, Mode::LocalOnly);
    assert!(!seen.config.notifications.enabled);
    assert!(seen.problem.is_none());
    assert_eq!(router.chain().mode, Mode::LocalOnly, "the router follows the write");

    // The next write reads the file first and refuses to build on a broken one.
    assert!(matches!(services.write(Change::Settings(&settings)), Err(WriteError::Unfixed(_))));
    // Retry after a fix by hand: the reload publishes it and the router follows.
    std::fs::write(dir.path().join("config.toml"), CONFIG).unwrap();
    assert_eq!(services.overview().mode, Mode::Auto);
    assert!(consumer.has_changed().unwrap());
    assert_eq!(router.chain().mode, Mode::Auto);
}

#[tokio::test]
async fn a_provider_list_write_changes_the_chain_the_shared_router_answers_with() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.toml"), CONFIG).unwrap();
    let services = services(dir.path());
    let router = services.router().clone();
    let groq = ProviderEntry { id: "groq".into(), base_url: "http://127.0.0.1:9/v1".into(), model: "m".into(), api_key: "keyring".into(), enabled: true };
    let mut list = services.provider_entries().unwrap();
    list.push(groq);
    services.write(Change::Providers(&list)).unwrap();
    let ids: Vec<String> = router.chain().clouds.iter().map(|c| c.id.clone()).collect();
    assert_eq!(ids, ["openai", "groq"]);
    assert_eq!(services.provider_entries().unwrap().len(), 2);
    assert!(std::fs::read_to_string(dir.path().join("config.toml")).unwrap().starts_with("# kept by hand"), "comments stay");
}

#[test]
fn the_engine_gets_the_configured_stall_timeout_and_idle_unload() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.toml"), CONFIG).unwrap();
    let services = services(dir.path());
    let engine = services.router().engine().config();
    assert_eq!(engine.stall_timeout, Duration::from_secs(7));
    assert_eq!(engine.idle_unload, Some(understudy_services::IDLE_UNLOAD));
    assert_eq!(engine.program, std::path::Path::new("/bin/false"));
}

#[test]
fn the_status_page_to_open_is_the_configured_one_else_openais() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.toml"), "[failover]\nstatus_page = \"https://status.example.com\"\n").unwrap();
    assert_eq!(services(dir.path()).status_page(), "https://status.example.com");
    std::fs::write(dir.path().join("config.toml"), CONFIG).unwrap();
    assert_eq!(services(dir.path()).status_page(), "https://status.openai.com");
}
