//! What the app holds: the services (understudy-services, the same composition root as the
//! CLI's: config watch, chain, engine, router, secrets, the in-app gateway), the conversations
//! service over the history and downloads. Settings writes go through the services, which
//! publish the new config to every reader; `app_info` re-reads the file so that fixing it and
//! pressing Retry in the window takes effect without a restart.

use serde::Serialize;
use understudy_conversations::Conversations;
use understudy_core::overview::KeySource;
use understudy_core::{config, logging, settings, Env, Overview, Paths, Settings};
use understudy_router::Keys as _;
use understudy_services::{Change, Services};
use understudy_store::{Backend, StoreNotice};

use crate::{IpcCode, IpcError};

#[derive(Debug)]
pub struct Setup {
    pub services: Services,
    /// What opening the history found wrong (a damaged, newer or locked file) and did about
    /// it; the window shows it until dismissed.
    pub store_notice: std::sync::Mutex<Option<StoreNotice>>,
    pub conversations: Conversations,
    /// Model downloads in progress (pause / cancel by file name).
    pub downloads: understudy_models::manager::Downloads,
}

/// The gateway line of the Settings page.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct GatewayView {
    pub listen: String,
    pub running: bool,
    pub error: Option<String>,
}

/// What other tools need to use the in-app gateway: the per-install token and the exact lines
/// to paste into their environment.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct GatewayAccess {
    pub base_url: String,
    /// None when `[gateway] require_token = false`.
    pub token: Option<String>,
    /// `OPENAI_BASE_URL=…` and `OPENAI_API_KEY=…`, one per line.
    pub env_lines: String,
}

/// A row of Settings → Providers.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct ProviderView {
    #[serde(flatten)]
    pub entry: settings::ProviderEntry,
    pub label: String,
    /// Why no key can be sent to it (`other_host`: asked again); None when it has one.
    pub key_problem: Option<understudy_core::providers::KeyProblem>,
}

/// The Settings page: what is in effect, and where the API key is kept.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct SettingsView {
    pub settings: Settings,
    pub key: KeySource,
    /// Where a key saved now would go (keyring, or the user-only file and why).
    pub backend: Backend,
    pub config_path: std::path::PathBuf,
    pub gateway: GatewayView,
}

impl Setup {
    pub fn from_process() -> anyhow::Result<Setup> {
        // Before anything is created (the database, its -wal, the secrets file): owner-only
        // whatever the user's umask. Logging sets it again; this runs earlier.
        understudy_core::paths::private_umask();
        let env = Env::from_process();
        let paths = Paths::resolve(&env)?;
        if let Err(e) = paths.create_data_dirs() {
            // Not fatal: the window opens and later features report their own I/O errors.
            eprintln!("understudy: {e}");
        }
        // The app binary is also the local engine's worker (`understudy-app worker`).
        let services = Services::builder(env, paths).build()?;
        // The window opens whatever state the history is in (a start_minimized it still holds
        // moves into the config file).
        let history = services.open_history();
        if let Some(notice) = &history.notice {
            eprintln!("understudy: {notice}");
        }
        let downloads = services.downloads()?;
        Ok(Setup { services, store_notice: std::sync::Mutex::new(history.notice), conversations: history.conversations, downloads })
    }

    pub fn init_logging(&self) -> logging::LogGuard {
        logging::init(self.services.env(), &self.services.paths().logs_dir(), "understudy-app")
    }

    pub fn paths(&self) -> &Paths {
        self.services.paths()
    }

    /// What is set up, the config file read again (the window's Retry).
    pub fn overview(&self) -> Overview {
        self.services.overview()
    }

    /// Stores the primary provider's API key (keyring, else the private file) and says where.
    pub fn save_api_key(&self, key: &str) -> Result<Backend, IpcError> {
        let key = config::validate_api_key(key).map_err(|m| IpcError::new(IpcCode::InvalidKey, m))?;
        let primary = self.services.current().config.primary().cloned().unwrap_or_else(understudy_core::config::ProviderConfig::openai_default);
        // Bound to the primary's host: a base URL changed later gets no key until asked again.
        let backend = understudy_router::chain::store_key(self.services.secrets(), &primary, key).map_err(|e| IpcError::new(IpcCode::Secrets, e))?;
        self.services.reconfigure();
        Ok(backend)
    }

    /// Settings → Providers: the file's ordered list, each with its name and why no key can be
    /// sent to it (none: it has one).
    pub fn providers(&self) -> Result<Vec<ProviderView>, IpcError> {
        let keys = self.services.keys();
        Ok(self
            .services
            .provider_entries()?
            .into_iter()
            .map(|entry| {
                let provider = entry.to_config();
                ProviderView { label: understudy_core::providers::provider_label(&provider), key_problem: keys.key(&provider).err(), entry }
            })
            .collect())
    }

    /// Writes the ordered provider list into the config file and applies it.
    pub fn save_providers(&self, list: &[settings::ProviderEntry]) -> Result<Vec<ProviderView>, IpcError> {
        self.services.write(Change::Providers(list))?;
        self.providers()
    }

    /// Stores a provider's key, bound to the host its base URL names now.
    pub fn save_provider_key(&self, id: &str, key: &str) -> Result<Vec<ProviderView>, IpcError> {
        let key = config::validate_api_key(key).map_err(|m| IpcError::new(IpcCode::InvalidKey, m))?;
        let entry =
            self.providers()?.into_iter().find(|p| p.entry.id == id).ok_or_else(|| IpcError::new(IpcCode::NotFound, format!("no provider called {id:?}")))?;
        understudy_router::chain::store_key(self.services.secrets(), &entry.entry.to_config(), key).map_err(|e| IpcError::new(IpcCode::Secrets, e))?;
        self.services.reconfigure();
        self.providers()
    }

    /// The environment variables the user allows as `api_key = "env:NAME"` beyond each vendor's
    /// usual one: kept in the app's own secret store, never in the shareable config file.
    pub fn key_env_allowed(&self) -> Vec<String> {
        understudy_router::chain::allowed_key_env(self.services.secrets())
    }

    pub fn set_key_env_allowed(&self, names: &[String]) -> Result<Vec<ProviderView>, IpcError> {
        let names: Vec<String> = names.iter().map(|n| n.trim().to_string()).filter(|n| !n.is_empty()).collect();
        if let Some(bad) = names.iter().find(|n| !config::is_env_name(n)) {
            return Err(IpcError::new(IpcCode::InvalidName, format!("{bad:?} is not an environment variable name (letters, digits and _)")));
        }
        understudy_router::chain::set_allowed_key_env(self.services.secrets(), &names).map_err(|e| IpcError::new(IpcCode::Secrets, e))?;
        self.services.reconfigure();
        self.providers()
    }

    pub fn settings(&self) -> SettingsView {
        let loaded = self.services.current();
        let now = self.services.gateway_status();
        let listen = now.listening.unwrap_or(loaded.config.gateway.listen).to_string();
        let gateway = GatewayView { listen, running: now.listening.is_some(), error: now.problem.map(|p| p.to_string()) };
        let (key, backend) = (self.services.key_source(), self.services.secrets().backend());
        SettingsView { settings: Settings::of(&loaded.config), key, backend, config_path: loaded.path, gateway }
    }

    /// Settings' gateway section: the token and the lines for other tools' environment.
    pub fn gateway_access(&self) -> Result<GatewayAccess, IpcError> {
        let config = self.services.current().config.gateway;
        let listen = self.services.gateway_status().listening.unwrap_or(config.listen);
        let base_url = format!("http://{listen}/v1");
        let token = if config.require_token { Some(self.services.gateway_token().map_err(|e| IpcError::new(IpcCode::Secrets, e))?) } else { None };
        // SDKs insist on some API key; without a token any value passes.
        let env_lines = format!("OPENAI_BASE_URL={base_url}\nOPENAI_API_KEY={}", token.as_deref().unwrap_or("unused"));
        Ok(GatewayAccess { base_url, token, env_lines })
    }

    /// Starts, moves or stops the in-app gateway to match `[gateway]` in the config. Blocks
    /// (main thread only: Settings and tray handlers), at most a couple of seconds when
    /// answers are in flight on a gateway being stopped.
    pub fn apply_gateway(&self) {
        self.services.sync_gateway(tauri::async_runtime::handle().inner());
    }

    /// The tray's Mode menu: writes `mode` into the config file and applies it.
    pub fn set_mode(&self, mode: understudy_core::config::Mode) -> Result<SettingsView, IpcError> {
        let current = self.settings().settings;
        self.save_settings(&Settings { mode, ..current })
    }

    /// Opens the configured status page in the user's browser.
    pub fn open_status_page(&self, app: &tauri::AppHandle) {
        use tauri_plugin_opener::OpenerExt;
        let page = self.services.status_page();
        if let Err(e) = app.opener().open_url(&page, None::<&str>) {
            tracing::warn!("cannot open {page}: {e}");
        }
    }

    /// `[tray] start_minimized`: started at login, the app stays in the tray.
    pub fn start_minimized(&self) -> bool {
        self.services.start_minimized()
    }

    pub fn set_start_minimized(&self, on: bool) -> Result<(), IpcError> {
        self.services.write(Change::StartMinimized(on))?;
        Ok(())
    }

    /// Writes the settings into the config file and applies them at once.
    pub fn save_settings(&self, new: &Settings) -> Result<SettingsView, IpcError> {
        self.services.write(Change::Settings(new))?;
        self.apply_gateway();
        Ok(self.settings())
    }

    /// The Models page: installed and discovered models, the catalog with download states.
    pub fn models(&self) -> understudy_models::library::Shelf {
        use understudy_models::{
            catalog::Catalog,
            library::{Library, Memory},
        };
        let config = self.services.current().config;
        Library::new(self.services.paths().models_dir()).shelf(
            &Catalog::builtin(),
            self.services.scan_roots(),
            config.local.context,
            Memory::now(),
            config.local.model,
            &self.downloads.running(),
        )
    }

    /// Makes `model` (a catalog id or a .gguf path) the offline model, in the config file.
    pub fn choose_model(&self, model: &str) -> Result<SettingsView, IpcError> {
        let current = self.settings().settings;
        self.save_settings(&Settings { local_model: Some(model.to_string()), ..current })
    }
}
