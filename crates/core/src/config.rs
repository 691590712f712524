//! The configuration contract of design.md section 2: a TOML file where every key is optional,
//! plus the SDK environment variables (`OPENAI_API_KEY`, `OPENAI_BASE_URL`) and our own
//! `UNDERSTUDY_*` ones.
//!
//! Parsing is pure ([`Config::parse`]); [`load`] adds the file read and the environment. A bad
//! file never stops the app: [`load`] returns the defaults together with a [`ConfigError`] that
//! names the file, line and key, and the caller shows it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::de::{DeTable, DeValue};

use crate::env::Env;
use crate::paths::Paths;

/// The provider id of the local engine; always last in the chain and never configured in
/// `[[providers]]`.
pub const LOCAL_PROVIDER_ID: &str = "local";
/// OpenAI's API, the default `base_url` of the primary provider.
pub const OPENAI_DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";

/// How the router picks providers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Cloud providers first, the local engine when they fail.
    #[default]
    Auto,
    /// Never answer locally.
    CloudOnly,
    /// Never call a cloud provider.
    LocalOnly,
}

/// When the local model is loaded ahead of need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Prewarm {
    Never,
    #[default]
    OnDegraded,
    Always,
}

/// Where a provider's API key comes from. A literal key is never accepted in the file, so the
/// file can be shared or committed without leaking it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ApiKeySource {
    /// The OS keyring (with the store crate's user-only file fallback).
    #[default]
    Keyring,
    /// The named environment variable.
    Env(String),
}

impl fmt::Display for ApiKeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiKeySource::Keyring => f.write_str("keyring"),
            ApiKeySource::Env(name) => write!(f, "env:{name}"),
        }
    }
}

impl Serialize for ApiKeySource {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One OpenAI-compatible provider of the ordered chain.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProviderConfig {
    pub id: String,
    pub base_url: String,
    pub model: String,
    pub api_key: ApiKeySource,
}

impl ProviderConfig {
    pub fn openai_default() -> Self {
        ProviderConfig { id: "openai".into(), base_url: OPENAI_DEFAULT_BASE_URL.into(), model: "gpt-4o-mini".into(), api_key: ApiKeySource::Keyring }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LocalConfig {
    /// Catalog id or path to a .gguf file; `None` when no offline model is chosen yet.
    pub model: Option<String>,
    /// Generation threads; 0 picks the default (physical cores).
    pub threads: u32,
    /// Context window in tokens.
    pub context: u32,
    pub prewarm: Prewarm,
}

impl Default for LocalConfig {
    fn default() -> Self {
        LocalConfig { model: None, threads: 0, context: 4096, prewarm: Prewarm::OnDegraded }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FailoverConfig {
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub first_token_timeout: Duration,
    /// The first-token wait of a model that reasons before it answers and streams nothing
    /// meanwhile (OpenAI's o-series and GPT-5 on Chat Completions, or a request with a
    /// `reasoning_effort`): a hard question takes minutes, not a hung provider.
    #[serde(with = "humantime_serde")]
    pub reasoning_first_token_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub stall_timeout: Duration,
    pub consecutive_failures: u32,
    pub failure_rate: f64,
    pub window: u32,
    #[serde(with = "humantime_serde")]
    pub open_for: Duration,
    #[serde(with = "humantime_serde")]
    pub open_for_max: Duration,
    /// Empty disables the status-page hint.
    pub status_page: String,
    #[serde(with = "humantime_serde")]
    pub status_poll: Duration,
    #[serde(with = "humantime_serde")]
    pub probe_interval: Duration,
}

impl Default for FailoverConfig {
    fn default() -> Self {
        FailoverConfig {
            connect_timeout: Duration::from_secs(5),
            first_token_timeout: Duration::from_secs(20),
            reasoning_first_token_timeout: Duration::from_secs(180),
            stall_timeout: Duration::from_secs(30),
            consecutive_failures: 3,
            failure_rate: 0.5,
            window: 10,
            open_for: Duration::from_secs(30),
            open_for_max: Duration::from_secs(300),
            status_page: "https://status.openai.com".into(),
            status_poll: Duration::from_secs(300),
            probe_interval: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotificationsConfig {
    pub enabled: bool,
    #[serde(with = "humantime_serde")]
    pub recovery_after: Duration,
    #[serde(with = "humantime_serde")]
    pub reopen_window: Duration,
}

impl Default for NotificationsConfig {
    fn default() -> Self {
        NotificationsConfig { enabled: true, recovery_after: Duration::from_secs(120), reopen_window: Duration::from_secs(600) }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrayConfig {
    #[serde(with = "humantime_serde")]
    pub hold: Duration,
    /// How long the closed window's web view is kept before it is released (and rebuilt when
    /// the window is opened again): a quick reopen stays instant, a day in the tray stays light.
    #[serde(with = "humantime_serde")]
    pub release_after: Duration,
    /// Started at login (the app's login item), the app stays in the tray without a window.
    pub start_minimized: bool,
}

impl Default for TrayConfig {
    fn default() -> Self {
        TrayConfig { hold: Duration::from_secs(60), release_after: Duration::from_secs(30), start_minimized: false }
    }
}

/// The loopback gateway (design.md section 2). `enabled` runs it inside the desktop app, sharing
/// the app's router; `understudy serve` runs it regardless and listens on `listen` unless told
/// otherwise. Never a non-loopback address. `require_token` (default on): clients send the
/// app's per-install token (`understudy serve`: `UNDERSTUDY_GATEWAY_TOKEN` or `--token-file`)
/// as their API key; off only for tools that cannot send one (the browser checks stay on).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    pub enabled: bool,
    pub listen: std::net::SocketAddr,
    pub require_token: bool,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig { enabled: false, listen: std::net::SocketAddr::from(([127, 0, 0, 1], 8321)), require_token: true }
    }
}

/// The whole configuration after file and environment are merged.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Config {
    pub mode: Mode,
    /// Ordered cloud chain; the first is primary. The local engine is implicit and always last.
    pub providers: Vec<ProviderConfig>,
    pub local: LocalConfig,
    pub failover: FailoverConfig,
    pub notifications: NotificationsConfig,
    pub tray: TrayConfig,
    pub gateway: GatewayConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mode: Mode::Auto,
            providers: vec![ProviderConfig::openai_default()],
            local: LocalConfig::default(),
            failover: FailoverConfig::default(),
            notifications: NotificationsConfig::default(),
            tray: TrayConfig::default(),
            gateway: GatewayConfig::default(),
        }
    }
}

/// The file as written: `[[providers]]` keeps its fields optional so that defaults and
/// `OPENAI_BASE_URL` can fill them in after parsing.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawConfig {
    mode: Mode,
    providers: Option<Vec<RawProvider>>,
    local: LocalConfig,
    failover: FailoverConfig,
    notifications: NotificationsConfig,
    tray: TrayConfig,
    gateway: GatewayConfig,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvider {
    id: String,
    base_url: Option<String>,
    model: Option<String>,
    api_key: Option<String>,
    /// `false` keeps the provider in the file (and in Settings) but out of the chain.
    enabled: Option<bool>,
}

/// A configuration file that cannot be used. Names the file, the 1-based line and the dotted
/// key (`failover.connect_timeout`, `providers[0].api_key`) wherever they are known.
/// Never contains the value of an `api_key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot read config file {}: {message}", file.display())]
    Read { file: PathBuf, message: String },
    #[error("{}{}: {}{message}", file.display(), line.map(|l| format!(":{l}")).unwrap_or_default(), key.as_ref().map(|k| format!("key `{k}`: ")).unwrap_or_default())]
    Invalid { file: PathBuf, line: Option<usize>, key: Option<String>, message: String },
}

impl ConfigError {
    pub fn file(&self) -> &Path {
        match self {
            ConfigError::Read { file, .. } | ConfigError::Invalid { file, .. } => file,
        }
    }
    pub fn line(&self) -> Option<usize> {
        match self {
            ConfigError::Read { .. } => None,
            ConfigError::Invalid { line, .. } => *line,
        }
    }
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Read { .. } => None,
            ConfigError::Invalid { key, .. } => key.as_deref(),
        }
    }
    /// The problem without the location prefix (the location is in the other accessors).
    pub fn message(&self) -> &str {
        match self {
            ConfigError::Read { message, .. } | ConfigError::Invalid { message, .. } => message,
        }
    }
}

impl Config {
    /// Parses a config file's text. `file` is only used in errors. Environment variables are
    /// not consulted; see [`Config::apply_env`].
    pub fn parse(text: &str, file: &Path) -> Result<Config, ConfigError> {
        let doc = Doc { text, file };
        let root = DeTable::parse(text).map_err(|e| doc.error(e.span(), None, e.message()))?;
        let de = toml::de::Deserializer::from(root.clone());
        let raw: RawConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = path_to_key(e.path());
            let span = e.inner().span().or_else(|| key.as_deref().and_then(|k| locate(&root, k)));
            doc.error(span, key, e.inner().message())
        })?;
        raw.validate(&doc, &root)
    }

    /// Applies `OPENAI_BASE_URL` (to the `openai` provider when the file did not set its
    /// base_url) and `UNDERSTUDY_LOCAL_MODEL`.
    pub fn apply_env(&mut self, env: &Env, file_set_openai_base_url: bool) {
        if let Some(url) = env.get("OPENAI_BASE_URL").filter(|u| !u.trim().is_empty()) {
            if !file_set_openai_base_url {
                if let Some(p) = self.providers.iter_mut().find(|p| p.id == "openai") {
                    p.base_url = url.trim().trim_end_matches('/').to_string();
                }
            }
        }
        if let Some(model) = env.get("UNDERSTUDY_LOCAL_MODEL").filter(|m| !m.trim().is_empty()) {
            self.local.model = Some(model.trim().to_string());
        }
    }

    /// The primary (first) cloud provider.
    pub fn primary(&self) -> Option<&ProviderConfig> {
        self.providers.first()
    }
}

struct Doc<'a> {
    text: &'a str,
    file: &'a Path,
}

impl Doc<'_> {
    fn error(&self, span: Option<std::ops::Range<usize>>, key: Option<String>, message: &str) -> ConfigError {
        let line = span.map(|s| line_of(self.text, s.start));
        ConfigError::Invalid { file: self.file.to_path_buf(), line, key, message: message.trim().to_string() }
    }

    fn error_at(&self, root: &toml::Spanned<DeTable<'_>>, key: &str, message: &str) -> ConfigError {
        self.error(locate(root, key), Some(key.to_string()), message)
    }
}

/// The longest a request may wait for a connection, a first token or the next one.
const MAX_TIMEOUT: Duration = Duration::from_secs(60 * 60);
/// The longest any other config duration (open breaker, poll and probe intervals, tray and
/// notification timings) may be.
const MAX_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);

impl RawConfig {
    fn validate(self, doc: &Doc<'_>, root: &toml::Spanned<DeTable<'_>>) -> Result<Config, ConfigError> {
        self.check_values(doc, root)?;
        let providers = match self.providers {
            None => vec![ProviderConfig::openai_default()],
            Some(list) => {
                let mut out: Vec<ProviderConfig> = Vec::with_capacity(list.len());
                let mut disabled = Vec::with_capacity(list.len());
                for (i, p) in list.into_iter().enumerate() {
                    disabled.push(p.enabled == Some(false));
                    let provider = p.validate(i, &out, doc, root)?;
                    out.push(provider);
                }
                // Validated like the rest (ids stay unique), then left out of the chain.
                out.into_iter().zip(disabled).filter(|(_, off)| !off).map(|(p, _)| p).collect()
            }
        };
        Ok(Config {
            mode: self.mode,
            providers,
            local: self.local,
            failover: self.failover,
            notifications: self.notifications,
            tray: self.tray,
            gateway: self.gateway,
        })
    }

    /// The bounds of every setting outside `[[providers]]`.
    fn check_values(&self, doc: &Doc<'_>, root: &toml::Spanned<DeTable<'_>>) -> Result<(), ConfigError> {
        let f = &self.failover;
        // Upper bounds: a wait of years is a typo, and clock arithmetic on it would overflow.
        let (n, t) = (&self.notifications, &self.tray);
        for (key, d, max, words) in [
            ("failover.connect_timeout", f.connect_timeout, MAX_TIMEOUT, "1h"),
            ("failover.first_token_timeout", f.first_token_timeout, MAX_TIMEOUT, "1h"),
            ("failover.reasoning_first_token_timeout", f.reasoning_first_token_timeout, MAX_TIMEOUT, "1h"),
            ("failover.stall_timeout", f.stall_timeout, MAX_TIMEOUT, "1h"),
            ("failover.open_for", f.open_for, MAX_INTERVAL, "24h"),
            ("failover.open_for_max", f.open_for_max, MAX_INTERVAL, "24h"),
            ("failover.status_poll", f.status_poll, MAX_INTERVAL, "24h"),
            ("failover.probe_interval", f.probe_interval, MAX_INTERVAL, "24h"),
            ("notifications.recovery_after", n.recovery_after, MAX_INTERVAL, "24h"),
            ("notifications.reopen_window", n.reopen_window, MAX_INTERVAL, "24h"),
            ("tray.hold", t.hold, MAX_INTERVAL, "24h"),
            ("tray.release_after", t.release_after, MAX_INTERVAL, "24h"),
        ] {
            if d > max {
                return Err(doc.error_at(root, key, &format!("must be at most {words}")));
            }
        }
        let checks: [(&str, bool, &str); 6] = [
            ("failover.failure_rate", (0.0..=1.0).contains(&f.failure_rate) && f.failure_rate > 0.0, "must be greater than 0 and at most 1"),
            ("failover.consecutive_failures", f.consecutive_failures >= 1, "must be at least 1"),
            ("failover.window", f.window >= 1, "must be at least 1"),
            ("failover.open_for_max", f.open_for_max >= f.open_for, "must not be shorter than failover.open_for"),
            ("local.context", (256..=1_048_576).contains(&self.local.context), "must be between 256 and 1048576 tokens"),
            ("local.threads", self.local.threads <= 1024, "must be at most 1024 (0 = physical cores)"),
        ];
        if let Some((key, _, msg)) = checks.iter().find(|(_, ok, _)| !ok) {
            return Err(doc.error_at(root, key, msg));
        }
        for (key, d) in [
            ("failover.connect_timeout", f.connect_timeout),
            ("failover.first_token_timeout", f.first_token_timeout),
            ("failover.reasoning_first_token_timeout", f.reasoning_first_token_timeout),
            ("failover.stall_timeout", f.stall_timeout),
            ("failover.open_for", f.open_for),
            ("failover.status_poll", f.status_poll),
            ("failover.probe_interval", f.probe_interval),
        ] {
            if d.is_zero() {
                return Err(doc.error_at(root, key, "must be longer than 0s"));
            }
        }
        if !f.status_page.is_empty() && !is_http_url(&f.status_page) {
            return Err(doc.error_at(root, "failover.status_page", "must be an http(s) URL, or \"\" to disable"));
        }
        if !self.gateway.listen.ip().is_loopback() {
            return Err(doc.error_at(
                root,
                "gateway.listen",
                "must be a loopback address (127.0.0.1:PORT or [::1]:PORT): the gateway is for this computer only",
            ));
        }
        Ok(())
    }
}

impl RawProvider {
    /// The `i`th `[[providers]]` entry, its id unique among those before it (`earlier`).
    fn validate(self, i: usize, earlier: &[ProviderConfig], doc: &Doc<'_>, root: &toml::Spanned<DeTable<'_>>) -> Result<ProviderConfig, ConfigError> {
        let key = |field: &str| format!("providers[{i}].{field}");
        if self.id.trim().is_empty() || !self.id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            return Err(doc.error_at(root, &key("id"), "must be non-empty and use only letters, digits, '-', '_' or '.'"));
        }
        if self.id == LOCAL_PROVIDER_ID {
            return Err(doc.error_at(root, &key("id"), "\"local\" is reserved: the local engine is always the last provider and is configured under [local]"));
        }
        if earlier.iter().any(|o| o.id == self.id) {
            return Err(doc.error_at(root, &key("id"), &format!("duplicate provider id \"{}\"", self.id)));
        }
        let base_url = match self.base_url {
            Some(u) if is_http_url(&u) => u.trim_end_matches('/').to_string(),
            Some(_) => return Err(doc.error_at(root, &key("base_url"), "must be an http(s) URL")),
            None if self.id == "openai" => OPENAI_DEFAULT_BASE_URL.to_string(),
            None => return Err(doc.error_at(root, &key("base_url"), "is required for providers other than \"openai\"")),
        };
        // Never echo the value: it may be a real key typed in the wrong place.
        let literal = "must be \"keyring\" or \"env:NAME\"; a literal API key is not allowed in the config file (add it in Settings, or set OPENAI_API_KEY)";
        let api_key = match self.api_key.as_deref() {
            None | Some("keyring") => ApiKeySource::Keyring,
            Some(v) => match v.strip_prefix("env:") {
                Some(name) if is_env_name(name) => ApiKeySource::Env(name.to_string()),
                _ => return Err(doc.error_at(root, &key("api_key"), literal)),
            },
        };
        let model = self.model.unwrap_or_else(|| ProviderConfig::openai_default().model);
        Ok(ProviderConfig { id: self.id, base_url, model, api_key })
    }
}

/// Checks a pasted API key before it is stored: trimmed, non-empty, one token of printable
/// ASCII. Returns the trimmed key; the error never contains the key.
pub fn validate_api_key(key: &str) -> Result<&str, &'static str> {
    let key = key.trim();
    if key.is_empty() {
        return Err("the API key is empty");
    }
    if key.len() < 8 || key.len() > 512 {
        return Err("that does not look like an API key (wrong length)");
    }
    if !key.chars().all(|c| c.is_ascii_graphic()) {
        return Err("an API key has no spaces or special characters; check what was pasted");
    }
    Ok(key)
}

fn is_http_url(s: &str) -> bool {
    let rest = s.strip_prefix("https://").or_else(|| s.strip_prefix("http://"));
    rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/') && !r.contains(char::is_whitespace))
}

/// An environment variable's name as `api_key = "env:NAME"` and the app's list of allowed
/// names take it: letters, digits and `_`, not starting with a digit.
pub fn is_env_name(s: &str) -> bool {
    !s.is_empty() && !s.starts_with(|c: char| c.is_ascii_digit()) && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn line_of(text: &str, byte: usize) -> usize {
    text.as_bytes()[..byte.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

/// `providers[0].api_key` style key from serde_path_to_error's path.
fn path_to_key(path: &serde_path_to_error::Path) -> Option<String> {
    use serde_path_to_error::Segment;
    let mut key = String::new();
    for seg in path.iter() {
        match seg {
            Segment::Seq { index } => key.push_str(&format!("[{index}]")),
            Segment::Map { key: k } | Segment::Enum { variant: k } => {
                if !key.is_empty() {
                    key.push('.');
                }
                key.push_str(k);
            }
            Segment::Unknown => {}
        }
    }
    (!key.is_empty()).then_some(key)
}

/// Byte span of the value at a dotted key (`providers[1].base_url`), or of the nearest
/// enclosing table that exists, so an error can name a line.
fn locate(root: &toml::Spanned<DeTable<'_>>, key: &str) -> Option<std::ops::Range<usize>> {
    let mut span = None;
    let mut table: Option<&DeTable<'_>> = Some(root.get_ref());
    let mut value: Option<&DeValue<'_>> = None;
    for part in key.split('.') {
        let (name, index) = match part.split_once('[') {
            Some((n, rest)) => (n, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        let t = match (table, value) {
            (Some(t), _) => t,
            (None, Some(DeValue::Table(t))) => t,
            _ => return span,
        };
        let Some(v) = t.get(name) else { return span };
        span = Some(v.span());
        let mut v = v.get_ref();
        if let Some(i) = index {
            let Some(item) = v.as_array().and_then(|a| a.get(i)) else { return span };
            span = Some(item.span());
            v = item.get_ref();
        }
        table = None;
        value = Some(v);
    }
    span
}

/// A loaded configuration: always usable, with the problem (if any) that made us fall back to
/// defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    pub config: Config,
    /// The file that was read, or would have been read had it existed.
    pub path: PathBuf,
    /// Whether the file existed.
    pub file_found: bool,
    pub problem: Option<ConfigError>,
}

/// Reads the config file named by `UNDERSTUDY_CONFIG` (or the XDG default), then applies the
/// environment. A missing default file means defaults; a missing file that `UNDERSTUDY_CONFIG`
/// names explicitly is a problem, because the user expected it to be read.
pub fn load(env: &Env, paths: &Paths) -> Loaded {
    let path = paths.config_file.clone();
    let explicit = env.get("UNDERSTUDY_CONFIG").is_some_and(|v| !v.is_empty());
    let (mut config, file_found, problem, file_set_base_url) = match std::fs::read_to_string(&path) {
        Ok(text) => match Config::parse(&text, &path) {
            Ok(c) => {
                let set = file_sets_openai_base_url(&text);
                (c, true, None, set)
            }
            Err(e) => (Config::default(), true, Some(e), false),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => (Config::default(), false, None, false),
        Err(e) => {
            let problem = ConfigError::Read { file: path.clone(), message: e.to_string() };
            (Config::default(), e.kind() != std::io::ErrorKind::NotFound, Some(problem), false)
        }
    };
    config.apply_env(env, file_set_base_url);
    Loaded { config, path, file_found, problem }
}

fn file_sets_openai_base_url(text: &str) -> bool {
    let Ok(root) = DeTable::parse(text) else { return false };
    let Some(list) = root.get_ref().get("providers").and_then(|p| p.get_ref().as_array()) else {
        return false;
    };
    list.iter().any(|p| {
        let t = p.get_ref();
        t.get("id").and_then(|v| v.get_ref().as_str()) == Some("openai") && t.get("base_url").is_some()
    })
}

#[cfg(test)]
mod tests {
    /// The fuzz corpus (fuzz/corpus/config): every input is a config or a located error, never
    /// a panic, and no error repeats a literal api_key value.
    #[test]
    fn the_fuzz_corpus_replays_without_a_panic() {
        let corpus = understudy_testkit::fuzz_corpus("config");
        for (_, bytes) in &corpus {
            if let Err(err) = Config::parse(&String::from_utf8_lossy(bytes), Path::new("config.toml")) {
                assert!(!err.to_string().contains("sk-123"), "{err}");
            }
        }
        assert!(corpus.len() >= 2);
    }

    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/home/u/.config/understudy/config.toml"))
    }

    /// Expects an error at `line` naming `key` whose message contains `needle`.
    fn check_err(text: &str, line: usize, key: &str, needle: &str) {
        let err = parse(text).expect_err(text);
        assert_eq!(err.line(), Some(line), "line for {text:?}: {err}");
        assert_eq!(err.key(), Some(key), "key for {text:?}: {err}");
        assert!(err.message().contains(needle), "message {:?} lacks {needle:?}", err.message());
        let shown = err.to_string();
        assert!(shown.starts_with(&format!("/home/u/.config/understudy/config.toml:{line}: key `{key}`")), "{shown}");
    }

    #[test]
    fn empty_file_gives_the_documented_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.mode, Mode::Auto);
        assert_eq!(c.providers.len(), 1);
        assert_eq!(c.providers[0].base_url, "https://api.openai.com/v1");
        assert_eq!(c.providers[0].model, "gpt-4o-mini");
        assert_eq!(c.providers[0].api_key, ApiKeySource::Keyring);
        assert_eq!(c.failover.first_token_timeout, Duration::from_secs(20));
        assert_eq!(c.failover.stall_timeout, Duration::from_secs(30));
        assert_eq!(c.failover.consecutive_failures, 3);
        assert_eq!(c.failover.open_for_max, Duration::from_secs(300));
        assert_eq!(c.notifications.recovery_after, Duration::from_secs(120));
        assert_eq!(c.tray.hold, Duration::from_secs(60));
        assert_eq!(c.tray.release_after, Duration::from_secs(30));
        assert!(!c.tray.start_minimized);
        assert_eq!(c.local.context, 4096);
        assert_eq!(c.local.prewarm, Prewarm::OnDegraded);
    }

    #[test]
    fn the_design_example_parses_exactly() {
        let text = r#"
mode = "auto"
[[providers]]
id = "openai"
base_url = "https://api.openai.com/v1"
model = "gpt-4o-mini"
api_key = "keyring"
[[providers]]
id = "groq"
base_url = "https://api.groq.com/openai/v1/"
model = "llama-3.1-8b-instant"
api_key = "env:GROQ_API_KEY"
[local]
model = "qwen2.5-0.5b-instruct-q4_k_m"
threads = 0
context = 4096
prewarm = "always"
[failover]
connect_timeout = "5s"
first_token_timeout = "1m 30s"
stall_timeout = "30s"
consecutive_failures = 3
failure_rate = 0.5
window = 10
open_for = "30s"
open_for_max = "300s"
status_page = ""
status_poll = "300s"
probe_interval = "60s"
[notifications]
enabled = false
recovery_after = "120s"
reopen_window = "600s"
[tray]
hold = "60s"
start_minimized = true
[gateway]
enabled = true
listen = "127.0.0.1:9000"
require_token = false
"#;
        let c = parse(text).unwrap();
        assert!(c.gateway.enabled);
        assert_eq!(c.gateway.listen.port(), 9000);
        assert!(!c.gateway.require_token && Config::default().gateway.require_token);
        assert_eq!(c.providers.len(), 2);
        assert_eq!(c.providers[1].id, "groq");
        assert_eq!(c.providers[1].base_url, "https://api.groq.com/openai/v1", "trailing slash trimmed");
        assert_eq!(c.providers[1].api_key, ApiKeySource::Env("GROQ_API_KEY".into()));
        assert_eq!(c.local.model.as_deref(), Some("qwen2.5-0.5b-instruct-q4_k_m"));
        assert_eq!(c.local.prewarm, Prewarm::Always);
        assert_eq!(c.failover.first_token_timeout, Duration::from_secs(90));
        assert_eq!(c.failover.status_page, "");
        assert!(!c.notifications.enabled);
        assert!(c.tray.start_minimized);
    }

    #[test]
    fn modes_parse() {
        for (text, mode) in [("auto", Mode::Auto), ("cloud-only", Mode::CloudOnly), ("local-only", Mode::LocalOnly)] {
            assert_eq!(parse(&format!("mode = \"{text}\"")).unwrap().mode, mode);
        }
    }

    #[test]
    fn bad_files_name_file_line_and_key() {
        // unknown keys, at the top, in a table, in a provider
        check_err("mode = \"auto\"\ncolour = \"red\"\n", 2, "colour", "unknown field `colour`");
        check_err("[failover]\nconnect_timeout = \"5s\"\nstall_timout = \"3s\"\n", 3, "failover.stall_timout", "unknown field `stall_timout`");
        check_err("[[providers]]\nid = \"openai\"\nmodle = \"x\"\n", 3, "providers[0].modle", "unknown field `modle`");
        // wrong types
        check_err("[failover]\n\nwindow = \"ten\"\n", 3, "failover.window", "invalid type");
        check_err("[local]\ncontext = -5\n", 2, "local.context", "invalid value");
        check_err("[notifications]\nenabled = \"yes\"\n", 2, "notifications.enabled", "invalid type");
        check_err("[failover]\nconnect_timeout = 5\n", 2, "failover.connect_timeout", "invalid type");
        check_err("[failover]\nconnect_timeout = \"soon\"\n", 2, "failover.connect_timeout", "");
        check_err("mode = \"sometimes\"\n", 1, "mode", "unknown variant `sometimes`");
        check_err("\n\n[tray]\nhold = true\n", 4, "tray.hold", "invalid type");
        // values out of range
        check_err("[failover]\nfailure_rate = 1.5\n", 2, "failover.failure_rate", "at most 1");
        check_err("[failover]\nopen_for = \"60s\"\nopen_for_max = \"10s\"\n", 3, "failover.open_for_max", "open_for");
        check_err("[failover]\nstall_timeout = \"0s\"\n", 2, "failover.stall_timeout", "longer than 0s");
        // durations: no overflowing clock arithmetic downstream (policy, probes, tray)
        check_err("[failover]\n\nopen_for = \"500000000y\"\n", 3, "failover.open_for", "at most 24h");
        check_err("[failover]\nopen_for_max = \"25h\"\n", 2, "failover.open_for_max", "at most 24h");
        check_err("[failover]\nstatus_poll = \"400days\"\n", 2, "failover.status_poll", "at most 24h");
        check_err("[failover]\nprobe_interval = \"2000000h\"\n", 2, "failover.probe_interval", "at most 24h");
        check_err("[failover]\nstall_timeout = \"2h\"\n", 2, "failover.stall_timeout", "at most 1h");
        check_err("[notifications]\nreopen_window = \"100y\"\n", 2, "notifications.reopen_window", "at most 24h");
        check_err("[tray]\nhold = \"9999999999999s\"\n", 2, "tray.hold", "at most 24h");
        check_err("[tray]\nrelease_after = \"25h\"\n", 2, "tray.release_after", "at most 24h");
        check_err("[tray]\nstart_minimized = \"yes\"\n", 2, "tray.start_minimized", "invalid type");
        check_err("[local]\ncontext = 16\n", 2, "local.context", "between 256");
        check_err("[failover]\nstatus_page = \"status.openai.com\"\n", 2, "failover.status_page", "http(s) URL");
        check_err("[gateway]\nlisten = \"0.0.0.0:8321\"\n", 2, "gateway.listen", "loopback");
        check_err("[gateway]\nlisten = \"localhost\"\n", 2, "gateway.listen", "invalid");
        // providers
        check_err("[[providers]]\nid = \"local\"\n", 2, "providers[0].id", "reserved");
        check_err(
            "[[providers]]\nid = \"a\"\nbase_url = \"http://a\"\n[[providers]]\nid = \"a\"\nbase_url = \"http://b\"\n",
            5,
            "providers[1].id",
            "duplicate",
        );
        check_err("[[providers]]\nid = \"groq\"\n", 1, "providers[0].base_url", "required");
        check_err("[[providers]]\nid = \"openai\"\nbase_url = \"ftp://x\"\n", 3, "providers[0].base_url", "http(s) URL");
        check_err("[[providers]]\nid = \"openai\"\napi_key = \"env:\"\n", 3, "providers[0].api_key", "env:NAME");
    }

    #[test]
    fn a_literal_api_key_is_refused_without_echoing_it() {
        let secret = "sk-proj-AbCdEf0123456789SECRET";
        let text = format!("[[providers]]\nid = \"openai\"\n\napi_key = \"{secret}\"\n");
        check_err(&text, 4, "providers[0].api_key", "literal API key is not allowed");
        let err = parse(&text).unwrap_err();
        let json = serde_json::to_string(&err).unwrap();
        for shown in [err.to_string(), format!("{err:?}"), json] {
            assert!(!shown.contains("SECRET"), "key leaked: {shown}");
        }
    }

    #[test]
    fn pasted_keys_are_trimmed_and_checked() {
        assert_eq!(validate_api_key("  sk-proj-abcdef123456\n"), Ok("sk-proj-abcdef123456"));
        for bad in ["", "   ", "short", "sk-abc def ghi jkl", "sk-ünïcödé-key-here", &"x".repeat(600)] {
            let err = validate_api_key(bad).unwrap_err();
            assert!(!bad.trim().is_empty() || err.contains("empty"));
        }
    }

    #[test]
    fn syntax_errors_name_the_line_and_do_not_quote_the_source() {
        let text = "mode = \"auto\"\n[local\napi = \"sk-SECRET\"\n";
        let err = parse(text).unwrap_err();
        assert_eq!(err.line(), Some(2), "{err}");
        assert!(!err.to_string().contains("SECRET"), "{err}");
    }

    #[test]
    fn openai_base_url_env_fills_the_default_but_not_an_explicit_file_value() {
        let env = Env::from_pairs([("OPENAI_BASE_URL", "http://127.0.0.1:9999/v1/"), ("UNDERSTUDY_LOCAL_MODEL", "/m/tiny.gguf")]);
        let mut c = parse("").unwrap();
        c.apply_env(&env, false);
        assert_eq!(c.providers[0].base_url, "http://127.0.0.1:9999/v1");
        assert_eq!(c.local.model.as_deref(), Some("/m/tiny.gguf"));
        let mut c = parse("[[providers]]\nid = \"openai\"\nbase_url = \"https://example.test/v1\"\n").unwrap();
        c.apply_env(&env, true);
        assert_eq!(c.providers[0].base_url, "https://example.test/v1");
    }

    fn paths_in(dir: &Path) -> Paths {
        Paths::resolve(&Env::from_pairs([
            ("UNDERSTUDY_CONFIG", dir.join("config.toml").to_str().unwrap()),
            ("UNDERSTUDY_DATA_DIR", dir.join("data").to_str().unwrap()),
        ]))
        .unwrap()
    }

    #[test]
    fn load_falls_back_to_defaults_and_keeps_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let paths = paths_in(dir.path());
        std::fs::write(&paths.config_file, "[failover]\nwindow = \"x\"\n").unwrap();
        let env = Env::from_pairs([("UNDERSTUDY_CONFIG", paths.config_file.to_str().unwrap()), ("OPENAI_BASE_URL", "http://127.0.0.1:1/v1")]);
        let loaded = load(&env, &paths);
        assert!(loaded.file_found);
        let problem = loaded.problem.expect("problem");
        assert_eq!(problem.file(), paths.config_file);
        assert_eq!(problem.key(), Some("failover.window"));
        assert_eq!(loaded.config.failover.window, 10);
        assert_eq!(loaded.config.providers[0].base_url, "http://127.0.0.1:1/v1", "env still applies");
    }

    #[test]
    fn load_explicit_missing_file_is_a_problem_but_default_missing_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let paths = paths_in(dir.path());
        let env = Env::from_pairs([("UNDERSTUDY_CONFIG", paths.config_file.to_str().unwrap())]);
        let loaded = load(&env, &paths);
        assert!(matches!(loaded.problem, Some(ConfigError::Read { .. })), "{:?}", loaded.problem);
        let loaded = load(&Env::from_pairs::<[(&str, &str); 0], _, _>([]), &paths);
        assert!(loaded.problem.is_none());
        assert!(!loaded.file_found);
        assert_eq!(loaded.config, Config::default());
    }
}
