//! Cloud provider presets and the rules for where a provider's API key may come from.
//!
//! A config file can be shared or committed, so it must not be able to send a key elsewhere:
//! a key kept in the secret store is bound to the origin (scheme, host, port) it was saved for,
//! and `api_key = "env:NAME"` is honoured only for the provider's conventional variable (its
//! vendor's, by the base URL's host) or for names the user allowed in the app itself. Pure: the
//! caller brings the stored value, the environment snapshot and the allowed names.

use serde::{Deserialize, Serialize};

use crate::config::{ApiKeySource, ProviderConfig};
use crate::env::Env;

/// How a vendor publishes its status page (read as a hint for that provider only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StatusPage {
    /// Atlassian Statuspage: `{page}/api/v2/summary.json`.
    Statuspage { page: &'static str },
    /// incident.io: `{page}/api/v1/summary` or the page feed.
    IncidentIo { page: &'static str },
}

impl StatusPage {
    pub fn url(&self) -> &'static str {
        match self {
            StatusPage::Statuspage { page } | StatusPage::IncidentIo { page } => page,
        }
    }
}

/// What kind of server a preset is: a vendor's cloud API, or a server on this computer or
/// network (no key needed, never a status page).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum PresetKind {
    Cloud,
    LocalServer,
    Custom,
}

/// A provider the Settings page offers to add. `base_url` may hold a `{resource}` placeholder
/// the user fills in (Azure).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Preset {
    /// Suggested provider id in `[[providers]]`.
    pub id: &'static str,
    pub name: &'static str,
    pub kind: PresetKind,
    pub base_url: &'static str,
    /// A sensible first model; the user picks from `/models` or types another.
    pub model: &'static str,
    /// The vendor's conventional API key variable, honoured for its hosts without asking.
    pub key_env: Option<&'static str>,
    /// Hosts that are this vendor's (exact, or `.suffix` for any subdomain).
    #[serde(skip)]
    pub hosts: &'static [&'static str],
    pub status_page: Option<StatusPage>,
}

/// Every preset, in the order Settings lists them.
pub const PRESETS: &[Preset] = &[
    Preset {
        id: "openai",
        name: "OpenAI",
        kind: PresetKind::Cloud,
        base_url: "https://api.openai.com/v1",
        model: "gpt-4o-mini",
        key_env: Some("OPENAI_API_KEY"),
        hosts: &["api.openai.com"],
        status_page: Some(StatusPage::IncidentIo { page: "https://status.openai.com" }),
    },
    Preset {
        id: "azure",
        name: "Azure OpenAI",
        kind: PresetKind::Cloud,
        base_url: "https://{resource}.openai.azure.com/openai/v1",
        model: "gpt-4o-mini",
        key_env: Some("AZURE_OPENAI_API_KEY"),
        hosts: &[".openai.azure.com"],
        status_page: None,
    },
    Preset {
        id: "anthropic",
        name: "Anthropic",
        kind: PresetKind::Cloud,
        base_url: "https://api.anthropic.com/v1",
        model: "claude-3-5-haiku-latest",
        key_env: Some("ANTHROPIC_API_KEY"),
        hosts: &["api.anthropic.com"],
        status_page: Some(StatusPage::Statuspage { page: "https://status.anthropic.com" }),
    },
    Preset {
        id: "gemini",
        name: "Google Gemini",
        kind: PresetKind::Cloud,
        base_url: "https://generativelanguage.googleapis.com/v1beta/openai",
        model: "gemini-2.0-flash",
        key_env: Some("GEMINI_API_KEY"),
        hosts: &["generativelanguage.googleapis.com"],
        status_page: None,
    },
    Preset {
        id: "openrouter",
        name: "OpenRouter",
        kind: PresetKind::Cloud,
        base_url: "https://openrouter.ai/api/v1",
        model: "openai/gpt-4o-mini",
        key_env: Some("OPENROUTER_API_KEY"),
        hosts: &["openrouter.ai"],
        status_page: None,
    },
    Preset {
        id: "groq",
        name: "Groq",
        kind: PresetKind::Cloud,
        base_url: "https://api.groq.com/openai/v1",
        model: "llama-3.3-70b-versatile",
        key_env: Some("GROQ_API_KEY"),
        hosts: &["api.groq.com"],
        status_page: Some(StatusPage::Statuspage { page: "https://groqstatus.com" }),
    },
    Preset {
        id: "mistral",
        name: "Mistral",
        kind: PresetKind::Cloud,
        base_url: "https://api.mistral.ai/v1",
        model: "mistral-small-latest",
        key_env: Some("MISTRAL_API_KEY"),
        hosts: &["api.mistral.ai"],
        status_page: None,
    },
    Preset {
        id: "deepseek",
        name: "DeepSeek",
        kind: PresetKind::Cloud,
        base_url: "https://api.deepseek.com/v1",
        model: "deepseek-chat",
        key_env: Some("DEEPSEEK_API_KEY"),
        hosts: &["api.deepseek.com"],
        status_page: Some(StatusPage::Statuspage { page: "https://status.deepseek.com" }),
    },
    Preset {
        id: "together",
        name: "Together",
        kind: PresetKind::Cloud,
        base_url: "https://api.together.xyz/v1",
        model: "meta-llama/Llama-3.3-70B-Instruct-Turbo",
        key_env: Some("TOGETHER_API_KEY"),
        hosts: &["api.together.xyz"],
        status_page: None,
    },
    Preset {
        id: "ollama",
        name: "Ollama",
        kind: PresetKind::LocalServer,
        base_url: "http://127.0.0.1:11434/v1",
        model: "",
        key_env: None,
        hosts: &[],
        status_page: None,
    },
    Preset {
        id: "lm-studio",
        name: "LM Studio",
        kind: PresetKind::LocalServer,
        base_url: "http://127.0.0.1:1234/v1",
        model: "",
        key_env: None,
        hosts: &[],
        status_page: None,
    },
    Preset {
        id: "llama-server",
        name: "llama-server",
        kind: PresetKind::LocalServer,
        base_url: "http://127.0.0.1:8080/v1",
        model: "",
        key_env: None,
        hosts: &[],
        status_page: None,
    },
    Preset {
        id: "vllm",
        name: "vLLM",
        kind: PresetKind::LocalServer,
        base_url: "http://127.0.0.1:8000/v1",
        model: "",
        key_env: None,
        hosts: &[],
        status_page: None,
    },
    Preset {
        id: "custom",
        name: "Custom (OpenAI-compatible)",
        kind: PresetKind::Custom,
        base_url: "",
        model: "",
        key_env: None,
        hosts: &[],
        status_page: None,
    },
];

/// The vendor preset a base URL belongs to, by its host (never by the provider's id, which a
/// config file can choose freely).
pub fn preset_for_url(base_url: &str) -> Option<&'static Preset> {
    let host = url::Url::parse(base_url).ok()?.host_str()?.to_ascii_lowercase();
    PRESETS.iter().filter(|p| p.kind == PresetKind::Cloud).find(|p| {
        p.hosts.iter().any(|h| match h.strip_prefix('.') {
            Some(suffix) => host.ends_with(&format!(".{suffix}")),
            None => host == *h,
        })
    })
}

/// A provider's name for people: the preset's whose id it took ("groq" → "Groq"), else its
/// vendor's by host, else the id as written. Only a name: keys never follow it.
pub fn provider_label(provider: &ProviderConfig) -> String {
    match PRESETS.iter().find(|p| p.id == provider.id && p.kind != PresetKind::Custom).or_else(|| preset_for_url(&provider.base_url)) {
        Some(p) => p.name.to_string(),
        None => provider.id.clone(),
    }
}

/// How a provider id reads for people where its config is not at hand (stored answers, the
/// offline model).
pub fn label_of_id(id: &str) -> String {
    match id {
        "openai" => "OpenAI".to_string(),
        "local" => "Local model".to_string(),
        other => other.to_string(),
    }
}

/// `scheme://host:port` of a base URL (default ports left out), the unit a stored key is bound
/// to; `None` for what is not an http(s) URL.
pub fn origin(base_url: &str) -> Option<String> {
    let u = url::Url::parse(base_url).ok()?;
    matches!(u.scheme(), "http" | "https").then(|| u.origin().ascii_serialization()).filter(|o| o != "null")
}

/// Why a provider has no key to send. Shown in words by `Display`; Settings asks for the key
/// again on `OtherHost`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum KeyProblem {
    #[error("no API key is set")]
    Missing,
    /// The stored key was saved for another origin: the base URL changed since.
    #[error("the stored key was saved for {saved_for}, not {now}; a key is needed for this host")]
    OtherHost { saved_for: String, now: String },
    /// `env:NAME` names neither this provider's conventional variable nor one allowed in the app.
    #[error("api_key = \"env:{name}\" is not used: {name} is not this provider's usual key variable nor allowed in the app's settings")]
    EnvNotAllowed { name: String },
    #[error("the environment variable {name} is not set")]
    EnvUnset { name: String },
    #[error("the secret store cannot be read: {message}")]
    Unreadable { message: String },
}

/// The secret store's value for a provider: the key and the origin it was saved for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoundKey {
    pub origin: String,
    pub key: String,
}

impl BoundKey {
    pub fn new(base_url: &str, key: &str) -> Option<BoundKey> {
        Some(BoundKey { origin: origin(base_url)?, key: key.to_string() })
    }

    /// The stored text (JSON). Keys are printable ASCII without spaces, so a value that is
    /// not this JSON is a key stored before binding existed.
    pub fn to_stored(&self) -> String {
        serde_json::to_string(self).expect("two strings serialise")
    }

    pub fn from_stored(text: &str) -> Stored {
        match serde_json::from_str::<BoundKey>(text) {
            Ok(b) => Stored::Bound(b),
            Err(_) => Stored::Unbound(text.to_string()),
        }
    }
}

// Hand-written: never print the key.
impl std::fmt::Display for BoundKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a key for {}", self.origin)
    }
}

/// A value read from the secret store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    Bound(BoundKey),
    /// Saved before keys were bound: taken as bound to where the provider points now, once,
    /// and re-saved bound (the caller does).
    Unbound(String),
}

/// The conventional key variable for a provider: its vendor's by host, and `OPENAI_API_KEY` for
/// the `openai` provider pointed elsewhere by the environment's own `OPENAI_BASE_URL` (the SDK
/// convention: both come from the user's environment, not from the file).
pub fn conventional_env(provider: &ProviderConfig, env: &Env) -> Option<&'static str> {
    if let Some(p) = preset_for_url(&provider.base_url) {
        return p.key_env;
    }
    let from_env = env.non_empty("OPENAI_BASE_URL").map(|u| u.trim().trim_end_matches('/'));
    (provider.id == "openai" && from_env == Some(provider.base_url.as_str())).then_some("OPENAI_API_KEY")
}

/// The key to send to `provider`, or why there is none.
/// `stored`: the secret store's value under the provider's id; `allowed`: extra variable names
/// the user allowed in the app's own settings (never from the config file).
pub fn resolve_key(provider: &ProviderConfig, stored: Result<Option<Stored>, String>, env: &Env, allowed: &[String]) -> Result<Resolved, KeyProblem> {
    let env_key = |name: &str| env.non_empty(name).map(|v| v.trim().to_string());
    match &provider.api_key {
        ApiKeySource::Env(name) => {
            if conventional_env(provider, env) != Some(name.as_str()) && !allowed.iter().any(|a| a == name) {
                return Err(KeyProblem::EnvNotAllowed { name: name.clone() });
            }
            env_key(name).map(Resolved::Env).ok_or_else(|| KeyProblem::EnvUnset { name: name.clone() })
        }
        ApiKeySource::Keyring => {
            let now = origin(&provider.base_url).unwrap_or_default();
            let problem = match stored {
                Ok(Some(Stored::Bound(b))) if b.origin == now => return Ok(Resolved::Stored(b.key)),
                Ok(Some(Stored::Bound(b))) => KeyProblem::OtherHost { saved_for: b.origin, now },
                Ok(Some(Stored::Unbound(key))) => return Ok(Resolved::Migrate(BoundKey { origin: now, key })),
                Ok(None) => KeyProblem::Missing,
                Err(message) => KeyProblem::Unreadable { message },
            };
            // Nothing usable stored: the conventional variable serves, as SDKs do.
            conventional_env(provider, env).and_then(env_key).map(Resolved::Env).ok_or(problem)
        }
    }
}

/// Where a resolved key came from.
#[derive(Clone, PartialEq, Eq)]
pub enum Resolved {
    Stored(String),
    Env(String),
    /// An unbound stored key, now bound to the provider's origin: the caller re-saves it.
    Migrate(BoundKey),
}

impl Resolved {
    pub fn key(&self) -> &str {
        match self {
            Resolved::Stored(k) | Resolved::Env(k) => k,
            Resolved::Migrate(b) => &b.key,
        }
    }
}

// Hand-written: never print the key.
impl std::fmt::Debug for Resolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Resolved::Stored(_) => "Stored(<redacted>)",
            Resolved::Env(_) => "Env(<redacted>)",
            Resolved::Migrate(_) => "Migrate(<redacted>)",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(id: &str, base_url: &str, api_key: ApiKeySource) -> ProviderConfig {
        ProviderConfig { id: id.into(), base_url: base_url.into(), model: "m".into(), api_key }
    }

    fn bound(url: &str, key: &str) -> Result<Option<Stored>, String> {
        Ok(Some(BoundKey::new(url, key).unwrap().into_stored()))
    }

    impl BoundKey {
        fn into_stored(self) -> Stored {
            BoundKey::from_stored(&self.to_stored())
        }
    }

    #[test]
    fn a_stored_key_goes_only_to_the_origin_it_was_saved_for() {
        let env = Env::default();
        let groq = provider("groq", "https://api.groq.com/openai/v1", ApiKeySource::Keyring);
        let got = resolve_key(&groq, bound("https://api.groq.com/openai/v1", "gsk-ONE"), &env, &[]).unwrap();
        assert_eq!(got, Resolved::Stored("gsk-ONE".into()));
        // Another path on the same origin is the same server.
        assert!(resolve_key(&groq, bound("https://api.groq.com/other", "gsk-ONE"), &env, &[]).is_ok());
        // The base URL now points at another host (or scheme, or port): no key, asked again.
        for elsewhere in ["https://evil.example/v1", "http://api.groq.com/openai/v1", "https://api.groq.com:8443/openai/v1"] {
            let moved = provider("groq", elsewhere, ApiKeySource::Keyring);
            let err = resolve_key(&moved, bound("https://api.groq.com/openai/v1", "gsk-ONE"), &env, &[]).unwrap_err();
            assert!(matches!(&err, KeyProblem::OtherHost { saved_for, .. } if saved_for == "https://api.groq.com"), "{elsewhere}: {err:?}");
            assert!(err.to_string().contains("a key is needed for this host"), "{err}");
            assert!(!err.to_string().contains("gsk-ONE"));
        }
    }

    #[test]
    fn env_names_are_honoured_only_when_conventional_for_the_host_or_allowed() {
        let env = Env::from_pairs([("GROQ_API_KEY", "gsk-G"), ("OPENAI_API_KEY", "sk-O"), ("MY_KEY", "k-M")]);
        let groq = provider("groq", "https://api.groq.com/openai/v1", ApiKeySource::Env("GROQ_API_KEY".into()));
        assert_eq!(resolve_key(&groq, Ok(None), &env, &[]).unwrap(), Resolved::Env("gsk-G".into()));
        // A shared file pointing a conventional name at another host gets nothing.
        let evil = provider("openai", "https://evil.example/v1", ApiKeySource::Env("OPENAI_API_KEY".into()));
        assert_eq!(resolve_key(&evil, Ok(None), &env, &[]).unwrap_err(), KeyProblem::EnvNotAllowed { name: "OPENAI_API_KEY".into() });
        let wrong_vendor = provider("groq", "https://api.groq.com/openai/v1", ApiKeySource::Env("OPENAI_API_KEY".into()));
        assert!(matches!(resolve_key(&wrong_vendor, Ok(None), &env, &[]), Err(KeyProblem::EnvNotAllowed { .. })));
        // Any other name only when the user allowed it in the app.
        let custom = provider("mine", "http://127.0.0.1:9000/v1", ApiKeySource::Env("MY_KEY".into()));
        assert!(matches!(resolve_key(&custom, Ok(None), &env, &[]), Err(KeyProblem::EnvNotAllowed { .. })));
        assert_eq!(resolve_key(&custom, Ok(None), &env, &["MY_KEY".into()]).unwrap(), Resolved::Env("k-M".into()));
        let unset = provider("mine", "http://127.0.0.1:9000/v1", ApiKeySource::Env("UNSET_KEY".into()));
        assert_eq!(resolve_key(&unset, Ok(None), &env, &["UNSET_KEY".into()]).unwrap_err(), KeyProblem::EnvUnset { name: "UNSET_KEY".into() });
    }

    #[test]
    fn openai_api_key_serves_openai_and_the_sdk_style_base_url_from_the_environment_only() {
        let env = Env::from_pairs([("OPENAI_API_KEY", "sk-O"), ("OPENAI_BASE_URL", "http://127.0.0.1:7000/v1/")]);
        let official = provider("openai", "https://api.openai.com/v1", ApiKeySource::Keyring);
        assert_eq!(resolve_key(&official, Ok(None), &env, &[]).unwrap(), Resolved::Env("sk-O".into()));
        let sdk = provider("openai", "http://127.0.0.1:7000/v1", ApiKeySource::Keyring);
        assert_eq!(resolve_key(&sdk, Ok(None), &env, &[]).unwrap(), Resolved::Env("sk-O".into()));
        // The file points the primary elsewhere: OPENAI_API_KEY stays home.
        let file = provider("openai", "https://evil.example/v1", ApiKeySource::Keyring);
        assert_eq!(resolve_key(&file, Ok(None), &env, &[]).unwrap_err(), KeyProblem::Missing);
        let other = provider("backup", "http://127.0.0.1:7000/v1", ApiKeySource::Keyring);
        assert_eq!(resolve_key(&other, Ok(None), &env, &[]).unwrap_err(), KeyProblem::Missing);
        // A key stored for another host is not replaced by the environment's silently for a moved provider.
        let moved = provider("groq", "https://evil.example/v1", ApiKeySource::Keyring);
        assert!(matches!(resolve_key(&moved, bound("https://api.groq.com/openai/v1", "gsk"), &env, &[]), Err(KeyProblem::OtherHost { .. })));
    }

    #[test]
    fn a_key_stored_before_binding_is_bound_to_where_the_provider_points_now() {
        let p = provider("openai", "http://127.0.0.1:7000/v1", ApiKeySource::Keyring);
        let got = resolve_key(&p, Ok(Some(BoundKey::from_stored("sk-OLD0123456789"))), &Env::default(), &[]).unwrap();
        assert_eq!(got, Resolved::Migrate(BoundKey { origin: "http://127.0.0.1:7000".into(), key: "sk-OLD0123456789".into() }));
        assert!(!format!("{got:?}").contains("OLD"));
    }

    #[test]
    fn presets_know_their_hosts_env_names_and_status_pages() {
        let by = |url: &str| preset_for_url(url).map(|p| p.id);
        assert_eq!(by("https://api.openai.com/v1"), Some("openai"));
        assert_eq!(by("https://myres.openai.azure.com/openai/v1"), Some("azure"));
        assert_eq!(by("https://openai.azure.com.evil.example/v1"), None);
        assert_eq!(by("https://api.groq.com.evil.example/v1"), None);
        assert_eq!(by("http://127.0.0.1:11434/v1"), None, "local servers are no vendor");
        let names: Vec<_> = PRESETS.iter().filter_map(|p| p.key_env).collect();
        for n in [
            "OPENAI_API_KEY",
            "ANTHROPIC_API_KEY",
            "GEMINI_API_KEY",
            "OPENROUTER_API_KEY",
            "GROQ_API_KEY",
            "MISTRAL_API_KEY",
            "DEEPSEEK_API_KEY",
            "TOGETHER_API_KEY",
            "AZURE_OPENAI_API_KEY",
        ] {
            assert!(names.contains(&n), "{n}");
            assert!(crate::env::VARS.contains(&n), "{n} is in the environment snapshot");
        }
        for p in PRESETS.iter().filter(|p| p.kind == PresetKind::Cloud && !p.base_url.contains('{')) {
            assert_eq!(preset_for_url(p.base_url).map(|f| f.id), Some(p.id), "{} finds itself", p.id);
        }
        assert_eq!(origin("https://API.groq.com:443/openai/v1").as_deref(), Some("https://api.groq.com"));
        assert_eq!(origin("ftp://x/"), None);
    }
}
