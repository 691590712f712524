//! A gateway on a free loopback port over a local-only router (or one that fails over from an
//! upstream) whose engine runs `engine` (the real worker, or a stand-in script that answers as a
//! worker does).

use understudy_core::config::{ApiKeySource, Config, Mode, ProviderConfig};
use understudy_core::{Env, Paths};
use understudy_local::engine::EngineConfig;
use understudy_local::Engine;
use understudy_router::chain::{FixedKey, NoKeys};
use understudy_router::{Chain, Router};

pub struct Gw {
    // Each test binary compiles this module; not every one reads every field.
    #[allow(dead_code)]
    pub router: Router,
    /// `…/v1/chat/completions`
    pub url: String,
    _running: understudy_gateway::Running,
    _dir: tempfile::TempDir,
}

pub async fn start_local(engine: EngineConfig) -> Gw {
    start_local_with(engine, &understudy_testkit::tiny_gguf()).await
}

/// [`start_local`] with another offline model file.
pub async fn start_local_with(engine: EngineConfig, model: &std::path::Path) -> Gw {
    start(engine, model, None).await
}

/// A gateway whose router asks the OpenAI-compatible upstream at `base_url` first and fails over
/// to the offline model `model`.
// Each test binary compiles this module; not every one uses every function.
#[allow(dead_code)]
pub async fn start_failover(engine: EngineConfig, model: &std::path::Path, base_url: String) -> Gw {
    start(engine, model, Some(base_url)).await
}

async fn start(engine: EngineConfig, model: &std::path::Path, upstream: Option<String>) -> Gw {
    let dir = tempfile::tempdir().unwrap();
    let env = Env::from_pairs([
        ("UNDERSTUDY_DATA_DIR", dir.path().join("data").display().to_string()),
        ("UNDERSTUDY_CONFIG", dir.path().join("c.toml").display().to_string()),
    ]);
    let mut config = match upstream {
        Some(base_url) => Config {
            providers: vec![ProviderConfig { id: "openai".into(), base_url, model: "gpt-4o-mini".into(), api_key: ApiKeySource::Keyring }],
            ..Config::default()
        },
        None => Config { mode: Mode::LocalOnly, ..Config::default() },
    };
    config.failover.status_page = String::new();
    config.local.model = Some(model.display().to_string());
    config.local.context = 2048;
    config.local.threads = 1;
    let paths = Paths::resolve(&env).unwrap();
    let chain = match config.providers.is_empty() {
        true => Chain::build(&config, &paths, &NoKeys),
        false => Chain::build(&config, &paths, &FixedKey("sk-test-UPSTREAM0123456789".into())),
    };
    let router = Router::new(chain, Engine::new(engine));
    // Bound by the gateway itself (port 0): a port picked, freed and bound again later could
    // be taken meanwhile by another test process, whose server would then get our requests.
    let running = understudy_gateway::start(router.clone(), understudy_gateway::GatewayConfig::default(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = running.addr;
    Gw { router, url: format!("http://{addr}/v1/chat/completions"), _running: running, _dir: dir }
}
