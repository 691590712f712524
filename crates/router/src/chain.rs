//! The ordered provider chain built from the config: cloud providers (the first is primary),
//! then the local engine. Rebuilt whenever the config or a key changes.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use understudy_core::config::{ApiKeySource, Config, Mode, LOCAL_PROVIDER_ID};
use understudy_core::Paths;
use understudy_openai::{Client, ClientConfig};
use understudy_store::Secrets;

/// Where API keys come from: the config says `keyring` (the store's secrets) or `env:NAME`.
pub trait Keys: Send + Sync {
    fn key(&self, provider_id: &str, source: &ApiKeySource, primary: bool) -> Option<String>;
}

/// Keys from the store's secrets and the process environment.
#[derive(Debug, Clone)]
pub struct StoredKeys(pub Secrets);

impl Keys for StoredKeys {
    fn key(&self, provider_id: &str, source: &ApiKeySource, primary: bool) -> Option<String> {
        let env = |name: &str| std::env::var(name).ok().map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        match source {
            ApiKeySource::Env(name) => env(name),
            ApiKeySource::Keyring => match self.0.get(provider_id) {
                Ok(Some(k)) => Some(k),
                Ok(None) => primary.then(|| env("OPENAI_API_KEY")).flatten(),
                Err(e) => {
                    tracing::warn!("cannot read the stored key of {provider_id}: {e}");
                    primary.then(|| env("OPENAI_API_KEY")).flatten()
                }
            },
        }
    }
}

/// A cloud provider of the chain.
#[derive(Debug, Clone)]
pub struct Cloud {
    pub id: String,
    /// For people: "OpenAI" for the `openai` provider, else the id.
    pub label: String,
    pub model: String,
    /// None when no API key is set.
    pub client: Option<Client>,
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

pub fn provider_label(id: &str) -> String {
    understudy_store::export::provider_label(id)
}

impl Chain {
    pub fn build(config: &Config, paths: &Paths, keys: &dyn Keys) -> Chain {
        let clouds = config
            .providers
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let client = keys.key(&p.id, &p.api_key, i == 0).and_then(|key| {
                    let cfg = ClientConfig {
                        base_url: p.base_url.clone(),
                        api_key: Some(key),
                        provider: provider_label(&p.id),
                        connect_timeout: config.failover.connect_timeout,
                        first_token_timeout: config.failover.first_token_timeout,
                        stall_timeout: config.failover.stall_timeout,
                    };
                    Client::new(cfg).map_err(|e| tracing::warn!("provider {}: {e}", p.id)).ok()
                });
                Cloud { id: p.id.clone(), label: provider_label(&p.id), model: p.model.clone(), client }
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
    fn key(&self, _: &str, _: &ApiKeySource, _: bool) -> Option<String> {
        None
    }
}

/// A fixed key for every provider (tests).
#[derive(Debug)]
pub struct FixedKey(pub String);

impl Keys for FixedKey {
    fn key(&self, _: &str, _: &ApiKeySource, _: bool) -> Option<String> {
        Some(self.0.clone())
    }
}

pub type SharedKeys = Arc<dyn Keys>;

#[cfg(test)]
mod tests {
    use super::*;

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
