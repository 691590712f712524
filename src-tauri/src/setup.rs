//! What the app knows at start: environment and paths. Configuration is re-read on demand so
//! that fixing the file and pressing Retry in the window takes effect without a restart.

use understudy_core::{config, logging, ConfigError, Env, Overview, Paths};
use understudy_store::{Backend, Secrets};

use crate::IpcError;

#[derive(Debug)]
pub struct Setup {
    pub env: Env,
    pub paths: Paths,
    pub problem_at_start: Option<ConfigError>,
    pub secrets: Secrets,
}

impl Setup {
    pub fn from_process() -> anyhow::Result<Setup> {
        let env = Env::from_process();
        let paths = Paths::resolve(&env)?;
        if let Err(e) = paths.create_data_dirs() {
            // Not fatal: the window opens and later features report their own I/O errors.
            eprintln!("understudy: {e}");
        }
        let problem_at_start = config::load(&env, &paths).problem;
        let secrets = Secrets::new(&paths.data_dir);
        Ok(Setup { env, paths, problem_at_start, secrets })
    }

    pub fn init_logging(&self) -> logging::LogGuard {
        logging::init(&self.env, &self.paths.logs_dir(), "understudy-app")
    }

    pub fn overview(&self) -> Overview {
        let loaded = config::load(&self.env, &self.paths);
        let stored = |id: &str| self.secrets.get(id).ok().flatten().is_some();
        Overview::gather(&loaded, &self.paths, |name| std::env::var(name).is_ok_and(|v| !v.trim().is_empty()), stored)
    }

    /// Stores the primary provider's API key (keyring, else the private file) and says where.
    pub fn save_api_key(&self, key: &str) -> Result<Backend, IpcError> {
        let key = config::validate_api_key(key).map_err(|m| IpcError { code: "invalid_key", message: m.to_string() })?;
        let loaded = config::load(&self.env, &self.paths);
        let id = loaded.config.primary().map_or("openai", |p| p.id.as_str()).to_string();
        self.secrets.set(&id, key).map_err(|e| IpcError { code: "secrets", message: e.to_string() })
    }
}
