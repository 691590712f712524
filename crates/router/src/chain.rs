//! The ordered provider chain built from the config: cloud providers (the first is primary),
//! then the local engine. Rebuilt whenever the config or a key changes.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use understudy_core::config::{Config, Mode, ProviderConfig, LOCAL_PROVIDER_ID};
use understudy_core::providers::{self, BoundKey, KeyProblem, Resolved};
use understudy_core::{Env, Paths};
use understudy_openai::{Client, ClientConfig};
use understudy_secrets::{Backend, SecretError, Secrets};

/// The secret store's name for the environment variables the user allowed as `env:NAME` (a
/// JSON list). Kept with the keys, in the app's own store, never in the shareable config file.
pub const KEY_ENV_ALLOWED: &str = "key-env-allowed";

/// Where API keys come from: the config says `keyring` (the store's secrets) or `env:NAME`.
pub trait Keys: Send + Sync {
    /// The key to send to `provider`, or why there is none.
    fn key(&self, provider: &ProviderConfig) -> Result<String, KeyProblem>;
}

/// Keys from the store's secrets (each bound to the origin it was saved for) and the
/// environment snapshot, by the rules of `core::providers`.
#[derive(Debug, Clone)]
pub struct StoredKeys {
    secrets: Secrets,
    env: Env,
    allowed: Vec<String>,
}

impl StoredKeys {
    /// `env`: the process's snapshot (`core::Env`), taken once at start.
    pub fn new(secrets: Secrets, env: &Env) -> StoredKeys {
        let allowed = allowed_key_env(&secrets);
        StoredKeys { env: env.clone(), secrets, allowed }
    }
}

impl Keys for StoredKeys {
    fn key(&self, provider: &ProviderConfig) -> Result<String, KeyProblem> {
        let stored = self.secrets.get(&provider.id).map(|v| v.map(|v| BoundKey::from_stored(&v))).map_err(|e| e.to_string());
        let resolved = providers::resolve_key(provider, stored, &self.env, &self.allowed)?;
        if let Resolved::Migrate(bound) = &resolved {
            tracing::info!("the stored key of {} is now bound to {}", provider.id, bound.origin);
            if let Err(e) = self.secrets.set(&provider.id, &bound.to_stored()) {
                tracing::warn!("cannot re-save the key of {} bound to its host: {e}", provider.id);
            }
        }
        Ok(resolved.key().to_string())
    }
}

/// Saves `key` for `provider`, bound to the origin of its base URL.
pub fn store_key(secrets: &Secrets, provider: &ProviderConfig, key: &str) -> Result<Backend, SecretError> {
    let bound = BoundKey::new(&provider.base_url, key).unwrap_or_else(|| BoundKey { origin: String::new(), key: key.to_string() });
    secrets.set(&provider.id, &bound.to_stored())
}

/// The variable names allowed as `env:NAME` beyond each vendor's conventional one.
pub fn allowed_key_env(secrets: &Secrets) -> Vec<String> {
    secrets.get(KEY_ENV_ALLOWED).ok().flatten().and_then(|v| serde_json::from_str(&v).ok()).unwrap_or_default()
}

pub fn set_allowed_key_env(secrets: &Secrets, names: &[String]) -> Result<Backend, SecretError> {
    secrets.set(KEY_ENV_ALLOWED, &serde_json::to_string(names).expect("strings serialise"))
}

/// A cloud provider of the chain.
#[derive(Debug, Clone)]
pub struct Cloud {
    pub id: String,
    /// For people: "OpenAI" for the `openai` provider, else the id.
    pub label: String,
    pub model: String,
    /// None when no key can be sent to it (`key_problem` says why) or its client failed.
    pub client: Option<Client>,
    pub key_problem: Option<KeyProblem>,
    /// Its vendor's status page, read as a hint for it only (none when unknown).
    pub status_page: Option<crate::status_page::Page>,
}

/// The local engine's model choice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalModel {
    /// No model is configured.
    None,
    /// Configured but no such file (a catalog id not downloaded yet, or a moved file).
    Missing(String),
    Ready {
        path: PathBuf,
        name: String,
    },
}

#[derive(Debug, Clone)]
pub struct Chain {
    pub mode: Mode,
    pub clouds: Vec<Cloud>,
    pub local: LocalModel,
    pub context: u32,
    pub threads: u32,
    pub failover: understudy_core::config::FailoverConfig,
    pub prewarm: understudy_core::config::Prewarm,
}

impl Chain {
    pub fn build(config: &Config, paths: &Paths, keys: &dyn Keys) -> Chain {
        let clouds = config
            .providers
            .iter()
            .map(|p| {
                let label = providers::provider_label(p);
                let key = keys.key(p);
                let client = key.as_ref().ok().and_then(|key| {
                    let cfg = ClientConfig {
                        base_url: p.base_url.clone(),
                        api_key: Some(key.clone()),
                        provider: label.clone(),
                        connect_timeout: config.failover.connect_timeout,
                        first_token_timeout: config.failover.first_token_timeout,
                        reasoning_first_token_timeout: config.failover.reasoning_first_token_timeout,
                        stall_timeout: config.failover.stall_timeout,
                    };
                    Client::new(cfg).map_err(|e| tracing::warn!("provider {}: {e}", p.id)).ok()
                });
                let status_page = crate::status_page::Page::for_provider(p, &config.failover.status_page);
                Cloud { id: p.id.clone(), label, model: p.model.clone(), client, key_problem: key.err(), status_page }
            })
            .collect();
        Chain {
            mode: config.mode,
            clouds,
            local: resolve_local(config.local.model.as_deref(), &paths.models_dir()),
            context: config.local.context,
            threads: config.local.threads,
            failover: config.failover.clone(),
            prewarm: config.local.prewarm,
        }
    }

    pub fn primary(&self) -> Option<&Cloud> {
        self.clouds.first()
    }

    pub fn cloud(&self, id: &str) -> Option<&Cloud> {
        self.clouds.iter().find(|c| c.id == id)
    }

    /// The id used for the local engine in events and the store.
    pub fn local_id() -> &'static str {
        LOCAL_PROVIDER_ID
    }
}

/// A `.gguf` path (absolute, or relative to the models dir) or a catalog id, which is the
/// file `<id>.gguf` in the models dir once downloaded.
pub fn resolve_local(model: Option<&str>, models_dir: &Path) -> LocalModel {
    let Some(model) = model.map(str::trim).filter(|m| !m.is_empty()) else { return LocalModel::None };
    let candidates = if model.ends_with(".gguf") { vec![PathBuf::from(model), models_dir.join(model)] } else { vec![models_dir.join(format!("{model}.gguf"))] };
    match candidates.into_iter().find(|p| p.is_file()) {
        Some(path) => {
            let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| model.to_string());
            LocalModel::Ready { path, name }
        }
        None => LocalModel::Missing(model.to_string()),
    }
}

/// Keys that are never there: for tests and local-only use.
#[derive(Debug, Default)]
pub struct NoKeys;

impl Keys for NoKeys {
    fn key(&self, _: &ProviderConfig) -> Result<String, KeyProblem> {
        Err(KeyProblem::Missing)
    }
}

/// A fixed key for every provider (tests).
#[derive(Debug)]
pub struct FixedKey(pub String);

impl Keys for FixedKey {
    fn key(&self, _: &ProviderConfig) -> Result<String, KeyProblem> {
        Ok(self.0.clone())
    }
}

pub type SharedKeys = Arc<dyn Keys>;

#[cfg(test)]
mod tests {
    use super::*;
    use understudy_core::config::ApiKeySource;

    fn config(providers: &[(&str, &str, ApiKeySource)]) -> Config {
        let providers = providers
            .iter()
            .map(|(id, url, key)| ProviderConfig { id: id.to_string(), base_url: url.to_string(), model: "m".into(), api_key: key.clone() })
            .collect();
        Config { providers, ..Config::default() }
    }

    fn paths(dir: &Path) -> Paths {
        Paths::resolve(&Env::from_pairs([("UNDERSTUDY_DATA_DIR", dir.to_str().unwrap())])).unwrap()
    }

    #[test]
    fn a_provider_moved_to_another_host_gets_no_key_and_says_a_key_is_needed_for_it() {
        let dir = tempfile::tempdir().unwrap();
        let secrets = Secrets::file_only(dir.path());
        let groq = config(&[("groq", "https://api.groq.com/openai/v1", ApiKeySource::Keyring)]);
        store_key(&secrets, &groq.providers[0], "gsk-BOUND0123456789").unwrap();
        let keys = StoredKeys::new(secrets.clone(), &Env::default());
        let chain = Chain::build(&groq, &paths(dir.path()), &keys);
        assert!(chain.clouds[0].client.is_some() && chain.clouds[0].key_problem.is_none());
        assert_eq!(chain.clouds[0].label, "Groq");

        // The (shared) config file now points groq elsewhere: nothing is sent there.
        let moved = config(&[("groq", "http://127.0.0.1:9/v1", ApiKeySource::Keyring)]);
        let chain = Chain::build(&moved, &paths(dir.path()), &keys);
        assert!(chain.clouds[0].client.is_none());
        assert_eq!(chain.clouds[0].key_problem, Some(KeyProblem::OtherHost { saved_for: "https://api.groq.com".into(), now: "http://127.0.0.1:9".into() }));
        // Entered again for the new host, it serves there.
        store_key(&secrets, &moved.providers[0], "gsk-NEWHOST0123456789").unwrap();
        assert!(Chain::build(&moved, &paths(dir.path()), &keys).clouds[0].client.is_some());
        assert!(!std::fs::read_to_string(dir.path().join("secrets.json")).unwrap().contains("BOUND"), "the old key was replaced");
    }

    #[test]
    fn a_key_saved_before_binding_is_bound_on_first_use() {
        let dir = tempfile::tempdir().unwrap();
        let secrets = Secrets::file_only(dir.path());
        secrets.set("openai", "sk-LEGACY0123456789").unwrap();
        let c = config(&[("openai", "http://127.0.0.1:7/v1", ApiKeySource::Keyring)]);
        let chain = Chain::build(&c, &paths(dir.path()), &StoredKeys::new(secrets.clone(), &Env::default()));
        assert!(chain.clouds[0].client.is_some());
        let stored = BoundKey::from_stored(&secrets.get("openai").unwrap().unwrap());
        assert_eq!(stored, providers::Stored::Bound(BoundKey { origin: "http://127.0.0.1:7".into(), key: "sk-LEGACY0123456789".into() }));
    }

    #[test]
    fn an_env_key_is_read_only_when_conventional_or_allowed_in_the_app() {
        let dir = tempfile::tempdir().unwrap();
        let secrets = Secrets::file_only(dir.path());
        let env = Env::from_pairs([("UNDERSTUDY_TEST_CHAIN_KEY", "k-chain-0123456789")]);
        let c = config(&[("mine", "http://127.0.0.1:7/v1", ApiKeySource::Env("UNDERSTUDY_TEST_CHAIN_KEY".into()))]);
        let chain = Chain::build(&c, &paths(dir.path()), &StoredKeys::new(secrets.clone(), &env));
        assert!(matches!(chain.clouds[0].key_problem, Some(KeyProblem::EnvNotAllowed { .. })));
        set_allowed_key_env(&secrets, &["UNDERSTUDY_TEST_CHAIN_KEY".into()]).unwrap();
        let chain = Chain::build(&c, &paths(dir.path()), &StoredKeys::new(secrets, &env));
        assert!(chain.clouds[0].client.is_some(), "{:?}", chain.clouds[0].key_problem);
    }

    #[test]
    fn local_models_resolve_by_path_or_catalog_id() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("qwen.gguf"), b"x").unwrap();
        assert_eq!(resolve_local(None, dir.path()), LocalModel::None);
        assert_eq!(resolve_local(Some("  "), dir.path()), LocalModel::None);
        assert_eq!(resolve_local(Some("qwen"), dir.path()), LocalModel::Ready { path: dir.path().join("qwen.gguf"), name: "qwen".into() });
        assert_eq!(resolve_local(Some("qwen.gguf"), dir.path()), LocalModel::Ready { path: dir.path().join("qwen.gguf"), name: "qwen".into() });
        let abs = dir.path().join("qwen.gguf").display().to_string();
        assert!(matches!(resolve_local(Some(&abs), Path::new("/nowhere")), LocalModel::Ready { .. }));
        assert_eq!(resolve_local(Some("llama-3.2-1b"), dir.path()), LocalModel::Missing("llama-3.2-1b".into()));
    }
}
