//! The one composition root. From the environment and paths, read once at start, it builds
//! what every front end uses: the config in a `watch` (Settings writes it here, every consumer
//! reads the watch), the provider chain with its keys, the local engine, the router with its
//! health monitor, the history (`Conversations` over the store), secrets, downloads, the
//! folders scanned for models, the status page to open and the desktop app's in-app gateway.
//! The CLI (every command, `serve` included) and the desktop app build them here only, so they
//! cannot disagree on how a part is made.

pub mod gateway;

use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::watch;
use understudy_conversations::Conversations;
use understudy_core::overview::KeySource;
use understudy_core::providers::{BoundKey, StatusPage, PRESETS};
use understudy_core::settings::{self, ProviderEntry};
use understudy_core::{config, ConfigError, Env, Loaded, Overview, Paths, Settings};
use understudy_local::engine::EngineConfig;
use understudy_local::Engine;
use understudy_models::manager::Downloads;
use understudy_models::scan::Roots;
use understudy_router::{Chain, Router, StoredKeys};
use understudy_store::{Backend, Secrets, Store, StoreNotice};

pub use gateway::{GatewayProblem, GatewayStatus, TokenError};

/// After a long healthy spell the offline model's memory goes back to the user.
pub const IDLE_UNLOAD: Duration = Duration::from_secs(15 * 60);

/// A lock held by another program is waited for this long before the history runs in memory.
pub const STORE_LOCK_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ServicesError {
    /// The offline model's worker is this program (`<exe> worker`); its path is unknown.
    #[error("cannot find this program's own file, which runs the offline model: {0}")]
    Worker(std::io::Error),
}

/// Why a Settings write did not happen.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The file as it is cannot be read; it is fixed by hand first (the window's banner says where).
    #[error("the config file has a problem to fix first: {0}")]
    Unfixed(ConfigError),
    /// The change would make the file invalid, or writing it failed.
    #[error(transparent)]
    Write(#[from] ConfigError),
}

/// A change Settings makes to config.toml.
#[derive(Debug, Clone, Copy)]
pub enum Change<'a> {
    /// The everyday settings (mode, primary provider, offline model, switches).
    Settings(&'a Settings),
    /// Settings → Providers: the ordered `[[providers]]` list.
    Providers(&'a [ProviderEntry]),
    /// `[tray] start_minimized`: started at login, stay in the tray.
    StartMinimized(bool),
}

/// Where the history's settings table kept "start minimized" before it was `[tray]
/// start_minimized` in the config file.
pub const STORED_START_MINIMIZED: &str = "start_minimized";

/// The history opened by [`Services::open_history`].
#[derive(Debug)]
pub struct History {
    pub conversations: Conversations,
    /// What opening the store found wrong (damaged, newer, locked) and did about it.
    pub notice: Option<StoreNotice>,
}

/// How [`Services`] are made; [`Services::builder`].
#[derive(Debug)]
pub struct Builder {
    env: Env,
    paths: Paths,
    secrets: Option<Secrets>,
    worker: Option<(PathBuf, Vec<String>)>,
}

impl Builder {
    /// Another secret store than the OS keyring with its file fallback (tests: `file_only`).
    pub fn secrets(mut self, secrets: Secrets) -> Builder {
        self.secrets = Some(secrets);
        self
    }

    /// Another worker program than this executable run as `<exe> worker`.
    pub fn worker(mut self, program: impl Into<PathBuf>, args: &[&str]) -> Builder {
        self.worker = Some((program.into(), args.iter().map(|a| a.to_string()).collect()));
        self
    }

    /// Reads the config file once and makes the parts that cost nothing; the router (which
    /// reads the keyring) is made on first use, the history by [`Services::open_history`].
    pub fn build(self) -> Result<Services, ServicesError> {
        let worker = match self.worker {
            Some(w) => w,
            None => (std::env::current_exe().map_err(ServicesError::Worker)?, vec!["worker".to_string()]),
        };
        let home = self.env.get("HOME").map(PathBuf::from).unwrap_or_default();
        let scan_roots = Roots::from_env(|k| self.env.get(k).map(str::to_string), &home);
        let hf_endpoint = understudy_models::catalog::hf_endpoint(self.env.get("HF_ENDPOINT"));
        let (config, _) = watch::channel(config::load(&self.env, &self.paths));
        let secrets = self.secrets.unwrap_or_else(|| Secrets::new(&self.paths.data_dir));
        Ok(Services {
            env: self.env,
            paths: self.paths,
            config,
            writing: Mutex::new(()),
            secrets,
            scan_roots,
            hf_endpoint,
            worker,
            router: OnceLock::new(),
            gateway: Default::default(),
        })
    }
}

/// The services of one process: see the crate's documentation.
#[derive(Debug)]
pub struct Services {
    env: Env,
    paths: Paths,
    /// The config in effect; `reload` and `write` are the only places that read the file.
    config: watch::Sender<Loaded>,
    /// One Settings write at a time: each reads the file, changes it and publishes the result.
    writing: Mutex<()>,
    secrets: Secrets,
    scan_roots: Roots,
    hf_endpoint: String,
    worker: (PathBuf, Vec<String>),
    router: OnceLock<Router>,
    /// The desktop app's in-app gateway, when it runs one.
    gateway: gateway::InApp,
}

impl Services {
    /// `env` and `paths` are the process's, read once by the caller at start.
    pub fn builder(env: Env, paths: Paths) -> Builder {
        Builder { env, paths, secrets: None, worker: None }
    }

    pub fn env(&self) -> &Env {
        &self.env
    }

    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    pub fn secrets(&self) -> &Secrets {
        &self.secrets
    }

    /// Where other apps keep models (Hugging Face cache, LM Studio, Ollama), from the environment.
    pub fn scan_roots(&self) -> &Roots {
        &self.scan_roots
    }

    /// The Hugging Face base URL (`HF_ENDPOINT`, else huggingface.co).
    pub fn hf_endpoint(&self) -> &str {
        &self.hf_endpoint
    }

    /// The config in effect, and every change after: what consumers read instead of the file.
    pub fn config(&self) -> watch::Receiver<Loaded> {
        self.config.subscribe()
    }

    /// The config in effect now.
    pub fn current(&self) -> Loaded {
        self.config.borrow().clone()
    }

    /// Reads the file again (the window's Retry after the user fixed it by hand) and publishes
    /// it when it changed; a changed config also reaches the router.
    pub fn reload(&self) -> Loaded {
        let loaded = config::load(&self.env, &self.paths);
        let changed = self.publish(loaded.clone());
        if changed {
            self.reconfigure();
        }
        loaded
    }

    fn publish(&self, loaded: Loaded) -> bool {
        self.config.send_if_modified(|old| {
            let changed = *old != loaded;
            *old = loaded;
            changed
        })
    }

    /// The one way Settings changes config.toml: the file as it is now must be valid; the
    /// change is validated by the same parser and written atomically (`core::settings`), then
    /// published to every consumer and applied to the router.
    pub fn write(&self, change: Change<'_>) -> Result<Loaded, WriteError> {
        let _one = self.writing.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = config::load(&self.env, &self.paths);
        if let Some(problem) = now.problem {
            return Err(WriteError::Unfixed(problem));
        }
        match change {
            Change::Settings(new) => settings::save(&now, new)?,
            Change::Providers(list) => settings::save_providers(&now, list)?,
            Change::StartMinimized(on) => settings::save_start_minimized(&now, on)?,
        }
        let written = config::load(&self.env, &self.paths);
        self.publish(written.clone());
        self.reconfigure();
        Ok(written)
    }

    /// Settings → Providers' rows: the file's `[[providers]]` list, disabled ones included
    /// (which the config in effect leaves out).
    pub fn provider_entries(&self) -> Result<Vec<ProviderEntry>, WriteError> {
        let loaded = self.current();
        Ok(settings::providers_of(&file_text(&loaded)?, &loaded.path)?)
    }

    /// `[tray] start_minimized` of the config in effect.
    pub fn start_minimized(&self) -> bool {
        self.config.borrow().config.tray.start_minimized
    }

    /// Moves a "start minimized" the history's settings table kept ([`STORED_START_MINIMIZED`])
    /// into the config file once: a stored "true" is written as `[tray] start_minimized` unless
    /// the file already names it (the file decides), then the stored value goes. A file that
    /// cannot be read or written keeps it stored for the next start.
    fn move_start_minimized(&self, store: &Store) {
        let stored = match store.setting(STORED_START_MINIMIZED) {
            Ok(Some(v)) => v,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!("cannot read the stored start_minimized: {e}");
                return;
            }
        };
        if stored == "true" {
            let loaded = config::load(&self.env, &self.paths);
            let named = file_text(&loaded).and_then(|text| Ok(settings::start_minimized_of(&text, &loaded.path)?));
            let moved = match named {
                Ok(Some(_)) => Ok(()),
                Ok(None) => self.write(Change::StartMinimized(true)).map(drop),
                Err(e) => Err(e),
            };
            if let Err(e) = moved {
                tracing::warn!("start_minimized stays in the history's settings until the config file can take it: {e}");
                return;
            }
        }
        if let Err(e) = store.remove_setting(STORED_START_MINIMIZED) {
            tracing::warn!("cannot forget the stored start_minimized: {e}");
        }
    }

    /// Where keys come from: the secret store and the environment snapshot.
    pub fn keys(&self) -> StoredKeys {
        StoredKeys::new(self.secrets.clone(), &self.env)
    }

    /// The provider chain of the config in effect, with the keys stored now. Reads the
    /// keyring: call it outside an async runtime (its D-Bus client blocks on one of its own).
    pub fn chain(&self) -> Chain {
        // Cloned first: the watch stays free for writers while the keyring answers.
        let config = self.config.borrow().config.clone();
        Chain::build(&config, &self.paths, &self.keys())
    }

    /// The local engine's settings: this program as its worker, the configured stall timeout,
    /// idle unload after [`IDLE_UNLOAD`].
    pub fn engine_config(&self) -> EngineConfig {
        let (program, args) = &self.worker;
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut engine = EngineConfig::new(program, &args);
        engine.stall_timeout = self.config.borrow().config.failover.stall_timeout;
        engine.idle_unload = Some(IDLE_UNLOAD);
        engine
    }

    /// The router (chain + local engine; its monitor publishes the health watch), made on first
    /// use and shared by every caller (the window, the tray, the in-app gateway). Reads the
    /// keyring the first time: call it outside an async runtime.
    pub fn router(&self) -> &Router {
        self.router.get_or_init(|| Router::new(self.chain(), Engine::new(self.engine_config())))
    }

    /// Re-reads the keys and the config in effect into the router, if there is one yet (after a
    /// key or a Settings change).
    pub fn reconfigure(&self) {
        if let Some(router) = self.router.get() {
            router.reconfigure(self.chain());
        }
    }

    /// The history, opened whatever state it is in (`Store::open_or_recover`), with the
    /// conversations service over the router.
    pub fn open_history(&self) -> History {
        let opened = Store::open_or_recover(&self.paths.database(), STORE_LOCK_WAIT);
        self.move_start_minimized(&opened.store);
        History { conversations: Conversations::new(opened.store, self.router().clone()), notice: opened.notice }
    }

    /// The in-app gateway's per-install token, made (32 random bytes) and kept in the secret
    /// store the first time it is needed.
    pub fn gateway_token(&self) -> Result<String, TokenError> {
        gateway::token(&self.secrets)
    }

    /// Starts, moves or stops the in-app gateway to match `[gateway]` of the config in effect,
    /// serving the shared router on `runtime` until the next change. Blocks: call it outside
    /// that runtime (the keyring, read first, blocks on a runtime of its own), at most
    /// [`gateway::STOP_GRACE`] more while answers are in flight on a gateway being stopped.
    pub fn sync_gateway(&self, runtime: &tokio::runtime::Handle) -> GatewayStatus {
        let config = self.config.borrow().config.gateway.clone();
        let want = config.enabled.then(|| gateway::Want { addr: config.listen, token: config.require_token.then(|| self.gateway_token()) });
        let router = self.router();
        runtime.block_on(self.gateway.sync(router, want));
        self.gateway_status()
    }

    /// Where the in-app gateway listens, or why it does not although enabled.
    pub fn gateway_status(&self) -> GatewayStatus {
        self.gateway.status()
    }

    /// Model downloads into the models dir (one pull per file).
    pub fn downloads(&self) -> Result<Downloads, understudy_models::DownloadError> {
        Downloads::new(self.paths.models_dir())
    }

    /// The status page to open for people: the primary provider's own (its vendor's), else the
    /// configured one, else OpenAI's.
    pub fn status_page(&self) -> String {
        let primary = self.router.get().and_then(|r| r.chain().primary().and_then(|c| c.status_page.as_ref()).map(|p| p.url.clone()));
        let configured = Some(self.config.borrow().config.failover.status_page.clone()).filter(|p| !p.trim().is_empty());
        primary.or(configured).unwrap_or_else(openai_status_page)
    }

    /// What is set up (the first-run screen, the config banner, the status bar), the file read
    /// again first so that a fix by hand shows without a restart.
    pub fn overview(&self) -> Overview {
        self.overview_of(&self.reload())
    }

    /// Where the primary provider's key comes from, under the config in effect.
    pub fn key_source(&self) -> KeySource {
        self.overview_of(&self.current()).openai_key
    }

    fn overview_of(&self, loaded: &Loaded) -> Overview {
        let stored = |id: &str| self.secrets.get(id).ok().flatten().map(|v| BoundKey::from_stored(&v));
        let allowed = understudy_router::chain::allowed_key_env(&self.secrets);
        let mut o = Overview::gather(loaded, &self.paths, &self.env, &allowed, stored);
        if o.openai_key == KeySource::Keyring && matches!(self.secrets.backend(), Backend::File { .. }) {
            o.openai_key = KeySource::File;
        }
        o
    }
}

/// The text of the config file `loaded` came from, which must be valid; a file not there yet
/// is empty.
fn file_text(loaded: &Loaded) -> Result<String, WriteError> {
    if let Some(problem) = &loaded.problem {
        return Err(WriteError::Unfixed(problem.clone()));
    }
    match std::fs::read_to_string(&loaded.path) {
        Ok(t) => Ok(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(ConfigError::Read { file: loaded.path.clone(), message: e.to_string() }.into()),
    }
}

/// OpenAI's status page, from its vendor preset.
fn openai_status_page() -> String {
    match PRESETS.iter().find(|p| p.id == "openai").and_then(|p| p.status_page) {
        Some(StatusPage::IncidentIo { page } | StatusPage::Statuspage { page }) => page.to_string(),
        None => String::new(),
    }
}
