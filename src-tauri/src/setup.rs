//! What the app knows at start: environment and paths. Configuration is re-read on demand so
//! that fixing the file and pressing Retry in the window takes effect without a restart.

use understudy_core::{config, logging, ConfigError, Env, Overview, Paths};

#[derive(Debug)]
pub struct Setup {
    pub env: Env,
    pub paths: Paths,
    pub problem_at_start: Option<ConfigError>,
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
        Ok(Setup { env, paths, problem_at_start })
    }

    pub fn init_logging(&self) -> logging::LogGuard {
        logging::init(&self.env, &self.paths.logs_dir(), "understudy-app")
    }

    pub fn overview(&self) -> Overview {
        let loaded = config::load(&self.env, &self.paths);
        // The keyring arrives with the store crate; until then only environment keys count.
        Overview::gather(&loaded, &self.paths, |name| std::env::var(name).is_ok_and(|v| !v.trim().is_empty()), |_| false)
    }
}
