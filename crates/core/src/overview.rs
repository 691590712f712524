//! What is set up, in one serialisable value: the first-run screen, the status bar and
//! `understudy status` read it. It holds no secrets, only where a key comes from.

use std::path::PathBuf;

use serde::Serialize;

use crate::config::{ConfigError, Loaded, Mode};
use crate::env::Env;
use crate::paths::Paths;
use crate::providers::{resolve_key, Resolved, Stored};

/// Where the primary provider's API key comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "kebab-case")]
pub enum KeySource {
    /// No key found: the first-run screen offers to add one.
    None,
    /// From an environment variable (`OPENAI_API_KEY`, or the `env:NAME` of the config).
    Env,
    /// From the OS keyring.
    Keyring,
    /// From the user-only secrets file (no keyring service runs); Settings says so.
    File,
}

/// A config problem as the UI shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ConfigProblem {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub key: Option<String>,
    pub message: String,
}

impl From<&ConfigError> for ConfigProblem {
    fn from(e: &ConfigError) -> Self {
        ConfigProblem { file: e.file().to_path_buf(), line: e.line(), key: e.key().map(str::to_string), message: e.message().to_string() }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Overview {
    pub version: String,
    pub mode: Mode,
    pub data_dir: PathBuf,
    pub config_path: PathBuf,
    pub config_problem: Option<ConfigProblem>,
    pub openai_key: KeySource,
    pub openai_base_url: String,
    pub openai_model: String,
    pub local_model: Option<String>,
    /// Nothing can answer yet: no cloud key and no local model.
    pub first_run: bool,
}

impl Overview {
    /// `stored(id)`: what the secret store holds for a provider (the store crate knows);
    /// `allowed`: the `env:NAME` variables the user allowed in the app. Where the primary's key
    /// comes from is decided by the same rules as the router's (`providers::resolve_key`).
    pub fn gather(loaded: &Loaded, paths: &Paths, env: &Env, allowed: &[String], stored: impl Fn(&str) -> Option<Stored>) -> Overview {
        let primary = loaded.config.primary();
        let openai_key = match primary.map(|p| resolve_key(p, Ok(stored(&p.id)), env, allowed)) {
            None | Some(Err(_)) => KeySource::None,
            Some(Ok(Resolved::Env(_))) => KeySource::Env,
            Some(Ok(Resolved::Stored(_) | Resolved::Migrate(_))) => KeySource::Keyring,
        };
        let local_model = loaded.config.local.model.clone();
        Overview {
            version: crate::VERSION.to_string(),
            mode: loaded.config.mode,
            data_dir: paths.data_dir.clone(),
            config_path: loaded.path.clone(),
            config_problem: loaded.problem.as_ref().map(ConfigProblem::from),
            openai_key,
            openai_base_url: primary.map(|p| p.base_url.clone()).unwrap_or_default(),
            openai_model: primary.map(|p| p.model.clone()).unwrap_or_default(),
            first_run: openai_key == KeySource::None && local_model.is_none(),
            local_model,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;
    use crate::providers::BoundKey;

    fn overview(config_text: Option<&str>, env: &[(&str, &str)], keyring: bool) -> Overview {
        overview_allowing(config_text, env, keyring, &[])
    }

    fn overview_allowing(config_text: Option<&str>, env: &[(&str, &str)], keyring: bool, allowed: &[String]) -> Overview {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("config.toml");
        if let Some(t) = config_text {
            std::fs::write(&cfg, t).unwrap();
        }
        let mut pairs: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        pairs.push(("UNDERSTUDY_CONFIG".into(), cfg.to_str().unwrap().into()));
        pairs.push(("UNDERSTUDY_DATA_DIR".into(), dir.path().join("data").to_str().unwrap().into()));
        let env = Env::from_pairs(pairs.clone());
        let paths = Paths::resolve(&env).unwrap();
        let loaded = config::load(&env, &paths);
        Overview::gather(&loaded, &paths, &env, allowed, |_| keyring.then(|| BoundKey::from_stored("sk-stored-0123456789")))
    }

    #[test]
    fn nothing_configured_is_first_run() {
        let o = overview(Some(""), &[], false);
        assert!(o.first_run);
        assert_eq!(o.openai_key, KeySource::None);
        assert_eq!(o.local_model, None);
        assert_eq!(o.openai_base_url, "https://api.openai.com/v1");
    }

    #[test]
    fn a_key_or_a_local_model_ends_first_run() {
        let o = overview(Some(""), &[("OPENAI_API_KEY", "sk-x")], false);
        assert_eq!((o.first_run, o.openai_key), (false, KeySource::Env));
        let o = overview(Some(""), &[], true);
        assert_eq!((o.first_run, o.openai_key), (false, KeySource::Keyring));
        let o = overview(Some(""), &[("UNDERSTUDY_LOCAL_MODEL", "/m/a.gguf")], false);
        assert_eq!((o.first_run, o.local_model.as_deref()), (false, Some("/m/a.gguf")));
        let o = overview(Some("[[providers]]\nid = \"openai\"\napi_key = \"env:MY_KEY\"\n"), &[("MY_KEY", "k")], false);
        assert_eq!(o.openai_key, KeySource::None, "a name the user did not allow in the app is not read");
        let o = overview_allowing(Some("[[providers]]\nid = \"openai\"\napi_key = \"env:MY_KEY\"\n"), &[("MY_KEY", "k")], false, &["MY_KEY".into()]);
        assert_eq!(o.openai_key, KeySource::Env);
        let o = overview(Some("[[providers]]\nid = \"openai\"\napi_key = \"env:MY_KEY\"\n"), &[("OPENAI_API_KEY", "k")], false);
        assert_eq!(o.openai_key, KeySource::None, "env:NAME means that variable, not OPENAI_API_KEY");
    }

    #[test]
    fn a_config_problem_is_carried_and_serialises_for_the_ui() {
        let o = overview(Some("[tray]\nhold = 3\n"), &[], false);
        let p = o.config_problem.clone().expect("problem");
        assert_eq!((p.line, p.key.as_deref()), (Some(2), Some("tray.hold")));
        let json = serde_json::to_value(&o).unwrap();
        assert_eq!(json["config_problem"]["key"], "tray.hold");
        assert_eq!(json["config_problem"]["line"], 2);
        assert_eq!(json["openai_key"], "none");
        assert_eq!(json["mode"], "auto");
        assert_eq!(json["first_run"], true);
    }
}
