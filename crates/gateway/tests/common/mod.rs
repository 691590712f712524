//! A gateway on a free loopback port over a local-only router whose engine runs `engine` (the
//! real worker, or a stand-in script that answers as a worker does).

use std::time::{Duration, Instant};

use understudy_core::config::{Config, Mode};
use understudy_core::{Env, Paths};
use understudy_local::engine::EngineConfig;
use understudy_local::Engine;
use understudy_router::chain::NoKeys;
use understudy_router::{Chain, Router};

pub struct Gw {
    // Each test binary compiles this module; not every one reads every field.
    #[allow(dead_code)]
    pub router: Router,
    /// `…/v1/chat/completions`
    pub url: String,
    _dir: tempfile::TempDir,
}

pub async fn start_local(engine: EngineConfig) -> Gw {
    let dir = tempfile::tempdir().unwrap();
    let env = Env::from_pairs([
        ("UNDERSTUDY_DATA_DIR", dir.path().join("data").display().to_string()),
        ("UNDERSTUDY_CONFIG", dir.path().join("c.toml").display().to_string()),
    ]);
    let mut config = Config { mode: Mode::LocalOnly, ..Config::default() };
    config.local.model = Some(understudy_testkit::tiny_gguf().display().to_string());
    config.local.context = 2048;
    config.local.threads = 1;
    let router = Router::new(Chain::build(&config, &Paths::resolve(&env).unwrap(), &NoKeys), Engine::new(engine));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let r = router.clone();
    tokio::spawn(async move { understudy_gateway::serve(r, understudy_gateway::GatewayConfig::default(), addr, std::future::pending()).await.unwrap() });
    let t0 = Instant::now();
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(t0.elapsed() < Duration::from_secs(10), "gateway did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Gw { router, url: format!("http://{addr}/v1/chat/completions"), _dir: dir }
}
