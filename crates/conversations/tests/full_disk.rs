#![allow(clippy::unwrap_used)]
#![cfg(target_os = "linux")]
//! The disk fills up while an answer streams: a real 1 MiB tmpfs as the data dir (mounting
//! needs root, as in CI; elsewhere the test says so and passes), llmock as OpenAI. The answer
//! keeps reaching the window, the window hears that it could not be saved while the save is
//! retried, nothing stored before is lost, and once space is back the final text is stored
//! `complete` — not left `streaming`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use understudy_conversations::{Conversations, TurnEvent};
use understudy_core::config::{ApiKeySource, Config, Mode, ProviderConfig};
use understudy_core::{Env, Paths, Role};
use understudy_local::engine::EngineConfig;
use understudy_local::Engine;
use understudy_router::chain::FixedKey;
use understudy_router::{Chain, Router};
use understudy_store::{Status, Store};
use understudy_testkit::Llmock;

/// A tmpfs mounted for the test's lifetime.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let ok = std::process::Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"]).arg(dir.path()).status();
        ok.is_ok_and(|s| s.success()).then_some(Tmpfs { dir })
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(self.dir.path()).status();
    }
}

/// Writes `path` until the disk is full.
fn fill(path: &Path) {
    let mut f = std::fs::File::create(path).unwrap();
    let block = vec![0u8; 4096];
    while f.write_all(&block).is_ok() {}
    let _ = f.sync_all();
}

#[tokio::test]
async fn a_disk_that_fills_mid_answer_keeps_the_answer_and_stores_it_once_space_is_back() {
    let Some(disk) = Tmpfs::mount("1m") else {
        use std::os::unix::fs::MetadataExt;
        assert_ne!(std::fs::metadata("/proc/self").unwrap().uid(), 0, "root could not mount a tmpfs");
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    };
    let data = disk.path().join("data");
    let db = data.join("understudy.db");
    let filler: PathBuf = disk.path().join("filler");

    let mock = Llmock::start(&[]);
    let text = "One two three four five six seven eight nine ten eleven twelve.";
    let scenario = serde_json::json!({ "behaviors": [
        { "type": "reply", "text": text },
        // A pause mid-answer, longer than the 500 ms save interval: the save fails meanwhile.
        { "type": "stream_fault", "kind": "stall", "after_chunks": 3, "stall_seconds": 2 }
    ]});
    let r = reqwest::Client::new().post(mock.admin_url("scenario")).json(&scenario).send().await.unwrap();
    assert!(r.status().is_success());
    let mut config = Config { mode: Mode::CloudOnly, ..Config::default() };
    config.providers = vec![ProviderConfig { id: "openai".into(), base_url: mock.base_url(), model: "gpt-4o-mini".into(), api_key: ApiKeySource::Keyring }];
    config.failover.stall_timeout = Duration::from_secs(30);
    let env = Env::from_pairs([("UNDERSTUDY_DATA_DIR", data.display().to_string()), ("UNDERSTUDY_CONFIG", disk.path().join("c.toml").display().to_string())]);
    let paths = Paths::resolve(&env).unwrap();
    let router = Router::new(
        Chain::build(&config, &paths, &FixedKey("sk-test-FULLDISK0123456789".into())),
        Engine::new(EngineConfig::new(PathBuf::from("/cloud-only/no-worker"), &[])),
    );
    let opened = Store::open_or_recover(&db, Duration::from_secs(5));
    assert_eq!(opened.notice, None);
    let conversations = Conversations::new(opened.store, router);

    // Stored before the disk fills: must survive.
    let earlier = conversations.create().unwrap();
    conversations.with_store(|s| s.add_message(earlier.id, Role::User, "an earlier question")).unwrap();
    let c = conversations.create().unwrap();

    // The window: fills the disk once the answer has begun; frees it once the whole answer
    // is on screen and a save of it has failed.
    let events = Arc::new(Mutex::new(Vec::<TurnEvent>::new()));
    let (seen, fill_at) = (events.clone(), filler.clone());
    let sink = move |e: TurnEvent| {
        let mut seen = seen.lock().unwrap();
        if matches!(e, TurnEvent::AnswerStarted { .. }) {
            fill(&fill_at);
        }
        let on_screen: String = seen.iter().filter_map(|e| if let TurnEvent::Token { text } = e { Some(text.as_str()) } else { None }).collect();
        if matches!(e, TurnEvent::NotSaved { .. }) && on_screen == text && fill_at.exists() {
            std::fs::remove_file(&fill_at).unwrap();
        }
        seen.push(e);
    };
    let answer = conversations.send(c.id, "count to twelve", sink).await.unwrap();
    assert!(!filler.exists(), "the disk was freed by the window");

    let events = events.lock().unwrap().clone();
    let first_failure = events.iter().position(|e| matches!(e, TurnEvent::NotSaved { .. })).expect("the window heard the save fail");
    assert!(events[first_failure + 1..].iter().any(|e| matches!(e, TurnEvent::Token { .. })), "the answer kept streaming after a failed save: {events:?}");
    if let TurnEvent::NotSaved { reason } = &events[first_failure] {
        assert!(reason.contains("full"), "{reason}");
    }
    let streamed: String = events.iter().filter_map(|e| if let TurnEvent::Token { text } = e { Some(text.as_str()) } else { None }).collect();
    assert_eq!(streamed, text, "every token reached the window");
    assert!(matches!(events.last(), Some(TurnEvent::Finished { message }) if message.content == text));

    assert_eq!((answer.status, answer.content.as_str()), (Status::Complete, text));
    drop(conversations);
    let store = Store::open(&db).unwrap();
    let msgs = store.messages(c.id).unwrap();
    assert_eq!(msgs.iter().map(|m| (m.role.as_str(), m.status)).collect::<Vec<_>>(), [("user", Status::Complete), ("assistant", Status::Complete)]);
    assert_eq!(msgs[1].content, text, "the final text landed once space was back");
    assert_eq!(store.messages(earlier.id).unwrap()[0].content, "an earlier question");
    assert_eq!(store.integrity_check().unwrap(), "ok");
}
