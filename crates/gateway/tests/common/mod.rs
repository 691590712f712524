//! A gateway on a free loopback port over a local-only router (or one that fails over from an
//! upstream) whose engine runs `engine` (the real worker, or a stand-in script that answers as a
//! worker does).

// Each test binary compiles this module; not every one uses every item.
#![allow(dead_code)]

use understudy_core::config::{ApiKeySource, Config, Mode, ProviderConfig};
use understudy_core::{Env, Paths};
use understudy_gateway::GatewayConfig;
use understudy_local::engine::EngineConfig;
use understudy_local::Engine;
use understudy_router::chain::{FixedKey, NoKeys};
use understudy_router::{Chain, Router};

pub struct Gw {
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
    start(engine, model, Vec::new(), GatewayConfig::default()).await
}

/// A gateway whose router asks the OpenAI-compatible upstream at `base_url` (provider
/// `openai`) first and fails over to the offline model `model`.
pub async fn start_failover(engine: EngineConfig, model: &std::path::Path, base_url: String) -> Gw {
    start_failover_with(engine, model, base_url, GatewayConfig::default()).await
}

/// [`start_failover`], the gateway configured by `cfg`.
pub async fn start_failover_with(engine: EngineConfig, model: &std::path::Path, base_url: String, cfg: GatewayConfig) -> Gw {
    start(engine, model, vec![provider("openai", base_url)], cfg).await
}

/// A gateway over the cloud providers at `base_urls` in this order (ids `p0`, `p1`, …), then
/// the offline model `model`.
pub async fn start_chain(engine: EngineConfig, model: &std::path::Path, base_urls: &[String]) -> Gw {
    let providers = base_urls.iter().enumerate().map(|(i, url)| provider(&format!("p{i}"), url.clone())).collect();
    start(engine, model, providers, GatewayConfig::default()).await
}

fn provider(id: &str, base_url: String) -> ProviderConfig {
    ProviderConfig { id: id.into(), base_url, model: "gpt-4o-mini".into(), api_key: ApiKeySource::Keyring }
}

/// The key every cloud provider is asked with (the client's token never goes upstream).
pub const STORED_KEY: &str = "sk-test-STORED0123456789";

async fn start(engine: EngineConfig, model: &std::path::Path, providers: Vec<ProviderConfig>, cfg: GatewayConfig) -> Gw {
    let dir = tempfile::tempdir().unwrap();
    let env = Env::from_pairs([
        ("UNDERSTUDY_DATA_DIR", dir.path().join("data").display().to_string()),
        ("UNDERSTUDY_CONFIG", dir.path().join("c.toml").display().to_string()),
    ]);
    let mut config = match providers.is_empty() {
        false => Config { providers, ..Config::default() },
        true => Config { mode: Mode::LocalOnly, ..Config::default() },
    };
    config.failover.status_page = String::new();
    config.local.model = Some(model.display().to_string());
    config.local.context = 2048;
    config.local.threads = 1;
    let paths = Paths::resolve(&env).unwrap();
    let chain = match config.providers.is_empty() {
        true => Chain::build(&config, &paths, &NoKeys),
        false => Chain::build(&config, &paths, &FixedKey(STORED_KEY.into())),
    };
    let router = Router::new(chain, Engine::new(engine));
    // Bound by the gateway itself (port 0): a port picked, freed and bound again later could
    // be taken meanwhile by another test process, whose server would then get our requests.
    let running = understudy_gateway::start(router.clone(), cfg, "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = running.addr;
    Gw { router, url: format!("http://{addr}/v1/chat/completions"), _running: running, _dir: dir }
}

/// A stand-in worker that answers every request "offline" (1 token).
pub const WORKER: &str = r#"read l; echo '{"type":"loaded","path":"m","architecture":"llama","load_ms":1,"context":2048,"threads":1,"template":"model (jinja)"}'
while read l; do
  id=$(echo "$l" | sed 's/.*"id":"\([^"]*\)".*/\1/')
  echo "{\"type\":\"started\",\"id\":\"$id\"}"
  echo "{\"type\":\"token\",\"id\":\"$id\",\"text\":\"offline\"}"
  echo "{\"type\":\"done\",\"id\":\"$id\",\"finish_reason\":\"stop\",\"usage\":{\"prompt_tokens\":3,\"prompt_evaluated\":3,\"prompt_reused\":0,\"completion_tokens\":1,\"dropped_messages\":0,\"prompt_ms\":1,\"generation_ms\":1}}"
done"#;

/// A raw upstream on a free loopback port: each request, read whole ([`read_request`]), is
/// handed to `answer` with its connection (its head lowercased, its body). Returns its base URL,
/// `http://ADDR/v1`.
pub async fn upstream<F, Fut>(answer: F) -> String
where
    F: Fn(String, Vec<u8>, tokio::net::TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let answer = std::sync::Arc::new(answer);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let answer = answer.clone();
            tokio::spawn(async move {
                if let Some((head, body)) = read_request(&mut s).await {
                    answer(head, body, s).await;
                }
            });
        }
    });
    format!("http://{addr}/v1")
}

/// Whether a request's body asks for a stream (a client that did not gets the answer whole).
pub fn asks_stream(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body).ok().and_then(|b| b["stream"].as_bool()) == Some(true)
}

/// A JSON answer as a raw upstream sends it, closing the connection after it: `status` (the
/// status line's rest), `extra` header lines (each ending in CRLF), `body`.
pub fn json_answer(status: &str, extra: &str, body: &serde_json::Value) -> String {
    let body = body.to_string();
    format!("HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n{extra}\r\n{body}", body.len())
}

/// What a raw upstream answers a request it does not serve.
pub const NOT_FOUND: &[u8] = b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";

/// Reads one HTTP/1.1 request from `s`: its head (lowercased) and its body (`Content-Length`
/// bytes); `None` when the peer closes first.
pub async fn read_request(s: &mut tokio::net::TcpStream) -> Option<(String, Vec<u8>)> {
    use tokio::io::AsyncReadExt as _;
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    loop {
        let n = s.read(&mut tmp).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
            let len = head.lines().find_map(|l| l.strip_prefix("content-length:")).map_or(0, |v| v.trim().parse::<usize>().unwrap());
            while buf.len() < end + 4 + len {
                let n = s.read(&mut tmp).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&tmp[..n]);
            }
            return Some((head, buf[end + 4..end + 4 + len].to_vec()));
        }
    }
}
