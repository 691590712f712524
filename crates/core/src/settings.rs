//! What the Settings page edits, written back into the config file with toml_edit so the
//! user's comments, ordering and other keys survive. The file stays the single source of truth
//! (design.md section 2): the app and the CLI read the same settings.

use std::path::Path;

use serde::{Deserialize, Serialize};
use toml_edit::{value, ArrayOfTables, DocumentMut, Item, Table};

use crate::config::{Config, ConfigError, Mode};

/// The everyday settings of the primary provider, the local model and the mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Settings {
    pub mode: Mode,
    pub base_url: String,
    pub model: String,
    /// A catalog id or a .gguf path; None = no offline model.
    pub local_model: Option<String>,
    /// Desktop notifications on outage and recovery (`[notifications] enabled`).
    pub notifications: bool,
    /// The desktop app serves the gateway for other tools (`[gateway] enabled`).
    #[serde(default)]
    pub gateway: bool,
}

impl Settings {
    /// The settings in effect (environment overrides included).
    pub fn of(config: &Config) -> Settings {
        let primary = config.primary();
        Settings {
            mode: config.mode,
            base_url: primary.map(|p| p.base_url.clone()).unwrap_or_default(),
            model: primary.map(|p| p.model.clone()).unwrap_or_default(),
            local_model: config.local.model.clone(),
            notifications: config.notifications.enabled,
            gateway: config.gateway.enabled,
        }
    }
}

fn mode_str(m: Mode) -> &'static str {
    match m {
        Mode::Auto => "auto",
        Mode::CloudOnly => "cloud-only",
        Mode::LocalOnly => "local-only",
    }
}

/// Writes the fields of `new` that differ from `current` (what is in effect now) into the config
/// file's text and returns the new text, validated by the same parser that reads it. Fields
/// left alone stay as they were, so a base URL that comes from `OPENAI_BASE_URL` is not pinned
/// into the file just because the page was saved.
pub fn apply(text: &str, file: &Path, current: &Settings, new: &Settings) -> Result<String, ConfigError> {
    let invalid = |key: &str, message: String| ConfigError::Invalid { file: file.to_path_buf(), line: None, key: Some(key.to_string()), message };
    let mut doc: DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| invalid("", e.message().to_string()))?;
    if new.mode != current.mode {
        set(&mut doc["mode"], mode_str(new.mode));
    }
    if new.base_url.trim() != current.base_url || new.model.trim() != current.model {
        let primary = primary_table(&mut doc).ok_or_else(|| invalid("providers", "`providers` is not a list of tables".into()))?;
        if new.base_url.trim() != current.base_url {
            set(&mut primary["base_url"], new.base_url.trim().trim_end_matches('/'));
        }
        if new.model.trim() != current.model {
            set(&mut primary["model"], new.model.trim());
        }
    }
    let local_model = new.local_model.as_deref().map(str::trim).filter(|m| !m.is_empty());
    if local_model != current.local_model.as_deref() {
        let local = doc.entry("local").or_insert_with(|| Item::Table(Table::new()));
        let local = local.as_table_like_mut().ok_or_else(|| invalid("local", "`local` is not a table".into()))?;
        match local_model {
            Some(m) => {
                set(local.entry("model").or_insert(Item::None), m);
                None
            }
            None => local.remove("model"),
        };
    }
    for (table, on, was) in [("notifications", new.notifications, current.notifications), ("gateway", new.gateway, current.gateway)] {
        if on != was {
            set_flag(&mut doc, table, "enabled", on).map_err(|()| invalid(table, format!("`{table}` is not a table")))?;
        }
    }
    finish(text, file, doc)
}

/// The document as text, validated by the parser that reads it.
fn finish(text: &str, file: &Path, mut doc: DocumentMut) -> Result<String, ConfigError> {
    // A file of comments only keeps them in the document's trailing text; new keys would land
    // above them, so they are moved back to the top.
    let trailing = doc.trailing().as_str().unwrap_or_default().to_string();
    let out = if text.trim_start().starts_with('#') && !trailing.trim().is_empty() && !doc.to_string().starts_with(&trailing) {
        doc.set_trailing("");
        format!("{}\n{}", trailing.trim_end(), doc)
    } else {
        doc.to_string()
    };
    Config::parse(&out, file)?;
    Ok(out)
}

/// Sets `[table] key` to a boolean, keeping the comment beside an existing value.
fn set_flag(doc: &mut DocumentMut, table: &str, key: &str, on: bool) -> Result<(), ()> {
    let t = doc.entry(table).or_insert_with(|| Item::Table(Table::new()));
    let t = t.as_table_like_mut().ok_or(())?;
    match t.get_mut(key) {
        Some(item) if item.is_value() => set_bool(item, on),
        _ => {
            t.insert(key, value(on));
        }
    }
    Ok(())
}

/// `[tray] start_minimized` as the file's text sets it; None when the file does not name it
/// (the default, off, applies). The text must parse ([`Config::parse`]).
pub fn start_minimized_of(text: &str, file: &Path) -> Result<Option<bool>, ConfigError> {
    Config::parse(text, file)?;
    let doc: DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| invalid(file, "", e.message().to_string()))?;
    Ok(doc.get("tray").and_then(|t| t.get("start_minimized")).and_then(Item::as_bool))
}

/// Writes `[tray] start_minimized` (the Settings page's "stay in the tray when started at
/// login") into the file's text, validated by the parser that reads it.
pub fn apply_start_minimized(text: &str, file: &Path, on: bool) -> Result<String, ConfigError> {
    let mut doc: DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| invalid(file, "", e.message().to_string()))?;
    set_flag(&mut doc, "tray", "start_minimized", on).map_err(|()| invalid(file, "tray", "`tray` is not a table".into()))?;
    finish(text, file, doc)
}

/// Writes `[tray] start_minimized` into the config file `loaded` came from (atomically).
pub fn save_start_minimized(loaded: &crate::Loaded, on: bool) -> Result<(), ConfigError> {
    let out = apply_start_minimized(&read_config(&loaded.path)?, &loaded.path, on)?;
    write_config(&loaded.path, &out)
}

/// The config file's text; a file not there yet is empty.
fn read_config(file: &Path) -> Result<String, ConfigError> {
    match std::fs::read_to_string(file) {
        Ok(t) => Ok(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(ConfigError::Read { file: file.to_path_buf(), message: e.to_string() }),
    }
}

/// One row of Settings → Providers as the file has it (disabled ones included), in chain order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ProviderEntry {
    pub id: String,
    pub base_url: String,
    pub model: String,
    /// `keyring` (the secret store) or `env:NAME`.
    pub api_key: String,
    pub enabled: bool,
}

impl ProviderEntry {
    /// The provider as the router takes it (to resolve its key, for instance).
    pub fn to_config(&self) -> crate::config::ProviderConfig {
        use crate::config::ApiKeySource;
        let api_key = match self.api_key.strip_prefix("env:") {
            Some(name) => ApiKeySource::Env(name.to_string()),
            None => ApiKeySource::Keyring,
        };
        crate::config::ProviderConfig { id: self.id.clone(), base_url: self.base_url.clone(), model: self.model.clone(), api_key }
    }
}

/// The `[[providers]]` of the file's text, disabled ones included; the built-in OpenAI when the
/// file has none. The text must parse ([`Config::parse`]).
pub fn providers_of(text: &str, file: &Path) -> Result<Vec<ProviderEntry>, ConfigError> {
    Config::parse(text, file)?;
    let doc: DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| invalid(file, "", e.message().to_string()))?;
    let Some(list) = doc.get("providers").and_then(Item::as_array_of_tables) else {
        let p = crate::config::ProviderConfig::openai_default();
        return Ok(vec![ProviderEntry { id: p.id, base_url: p.base_url, model: p.model, api_key: "keyring".into(), enabled: true }]);
    };
    let default = crate::config::ProviderConfig::openai_default();
    Ok(list
        .iter()
        .map(|t| {
            let s = |k: &str| t.get(k).and_then(Item::as_str).map(str::to_string);
            let id = s("id").unwrap_or_default();
            let base_url = s("base_url").map(|u| u.trim_end_matches('/').to_string()).unwrap_or_else(|| default.base_url.clone());
            ProviderEntry {
                id,
                base_url,
                model: s("model").unwrap_or_else(|| default.model.clone()),
                api_key: s("api_key").unwrap_or_else(|| "keyring".into()),
                enabled: t.get("enabled").and_then(Item::as_bool).unwrap_or(true),
            }
        })
        .collect())
}

fn invalid(file: &Path, key: &str, message: String) -> ConfigError {
    ConfigError::Invalid { file: file.to_path_buf(), line: None, key: Some(key.to_string()), message }
}

/// Writes the provider list `new` (order, fields, enabled) into the file's text: a provider that
/// stays keeps its table with its comments and other keys, only changed values are replaced;
/// removed ones go, added ones are appended in place. Validated by the parser that reads it.
pub fn apply_providers(text: &str, file: &Path, new: &[ProviderEntry]) -> Result<String, ConfigError> {
    let mut doc: DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| invalid(file, "", e.message().to_string()))?;
    let old = providers_of(text, file)?;
    let mut tables: Vec<(String, Table)> = match doc.remove("providers") {
        Some(Item::ArrayOfTables(list)) => list.into_iter().map(|t| (t.get("id").and_then(Item::as_str).unwrap_or_default().to_string(), t)).collect(),
        Some(_) => return Err(invalid(file, "providers", "`providers` is not a list of tables".into())),
        None => Vec::new(),
    };
    // Tables are written at their document position: one shared position (the first provider's)
    // makes them follow the list's order, where the old tables stood.
    let at = tables.iter().filter_map(|(_, t)| t.position()).min();
    let mut list = ArrayOfTables::new();
    for entry in new {
        let was = old.iter().find(|o| o.id == entry.id);
        let mut t = match tables.iter().position(|(id, _)| *id == entry.id) {
            Some(i) => tables.remove(i).1,
            None => {
                let mut t = Table::new();
                t["id"] = value(entry.id.trim());
                t
            }
        };
        let base_url = entry.base_url.trim().trim_end_matches('/');
        if was.is_none_or(|w| w.base_url != base_url) || (t.get("base_url").is_none() && entry.id != "openai") {
            set(t.entry("base_url").or_insert(Item::None), base_url);
        }
        if was.is_none_or(|w| w.model != entry.model.trim()) {
            set(t.entry("model").or_insert(Item::None), entry.model.trim());
        }
        if was.is_none_or(|w| w.api_key != entry.api_key) && !(was.is_none() && entry.api_key == "keyring") {
            set(t.entry("api_key").or_insert(Item::None), entry.api_key.trim());
        }
        match (entry.enabled, t.contains_key("enabled")) {
            (true, true) => {
                t.remove("enabled");
            }
            (false, _) => set_bool(t.entry("enabled").or_insert(Item::None), false),
            (true, false) => {}
        }
        t.set_position(at);
        list.push(t);
    }
    doc.insert("providers", Item::ArrayOfTables(list));
    let out = doc.to_string();
    Config::parse(&out, file)?;
    Ok(out)
}

/// Writes `new` as the provider list of the config file `loaded` came from (atomically).
pub fn save_providers(loaded: &crate::Loaded, new: &[ProviderEntry]) -> Result<(), ConfigError> {
    let out = apply_providers(&read_config(&loaded.path)?, &loaded.path, new)?;
    write_config(&loaded.path, &out)
}

fn set_bool(item: &mut Item, on: bool) {
    let decor = item.as_value().map(|v| v.decor().clone());
    *item = value(on);
    if let (Some(d), Some(v)) = (decor, item.as_value_mut()) {
        *v.decor_mut() = d;
    }
}

/// Writes `new` into the config file `loaded` came from (creating it if needed), atomically:
/// a crash or a full disk mid-write leaves the old file whole, never half a file. The file is
/// owner-only (0600) and a config dir made here 0700, whatever the umask.
pub fn save(loaded: &crate::Loaded, new: &Settings) -> Result<(), ConfigError> {
    let file = &loaded.path;
    let out = apply(&read_config(file)?, file, &Settings::of(&loaded.config), new)?;
    write_config(file, &out)
}

/// The atomic, owner-only write of the config file.
fn write_config(file: &Path, out: &str) -> Result<(), ConfigError> {
    let io = |e: std::io::Error| ConfigError::Read { file: file.to_path_buf(), message: e.to_string() };
    if let Some(dir) = file.parent() {
        let mut dirs = std::fs::DirBuilder::new();
        dirs.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut dirs, 0o700);
        dirs.create(dir).map_err(io)?;
    }
    let tmp = file.with_extension("toml.tmp");
    write_synced(&tmp, out.as_bytes()).and_then(|()| std::fs::rename(&tmp, file)).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(e)
    })
}

/// Writes a new owner-only file and flushes it to disk (before it is renamed over the old one).
fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    // A leftover from a crash may carry another mode; the mode below applies to new files only.
    let _ = std::fs::remove_file(path);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Replaces a value, keeping the comment and spacing around it.
fn set(item: &mut Item, new: &str) {
    match item.as_value_mut() {
        Some(v) => {
            let decor = v.decor().clone();
            *v = new.into();
            *v.decor_mut() = decor;
        }
        None => *item = value(new),
    }
}

/// The first `[[providers]]` table, created as the OpenAI provider when the file has none.
fn primary_table(doc: &mut DocumentMut) -> Option<&mut Table> {
    let providers = doc.entry("providers").or_insert_with(|| Item::ArrayOfTables(ArrayOfTables::new()));
    let list = providers.as_array_of_tables_mut()?;
    if list.is_empty() {
        let mut t = Table::new();
        t["id"] = value("openai");
        list.push(t);
    }
    list.get_mut(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, new: impl FnOnce(&mut Settings), expect: &str) {
        let file = Path::new("/c/config.toml");
        let config = Config::parse(text, file).unwrap();
        let current = Settings::of(&config);
        let mut next = current.clone();
        new(&mut next);
        let out = apply(text, file, &current, &next).unwrap();
        assert_eq!(out, expect);
        assert_eq!(Settings::of(&Config::parse(&out, file).unwrap()), Settings { base_url: next.base_url.trim_end_matches('/').to_string(), ..next });
    }

    #[test]
    fn writes_only_what_changed_and_keeps_comments() {
        check("# mine\nmode = \"auto\" # why\n", |s| s.mode = Mode::LocalOnly, "# mine\nmode = \"local-only\" # why\n");
        check("", |s| s.model = "gpt-4.1".into(), "[[providers]]\nid = \"openai\"\nmodel = \"gpt-4.1\"\n");
        check(
            "[[providers]]\nid = \"openai\"\nmodel = \"a\" # pinned\n\n[[providers]]\nid = \"groq\"\nbase_url = \"https://api.groq.com/openai/v1\"\nmodel = \"llama\"\n",
            |s| s.base_url = "http://127.0.0.1:9/v1/".into(),
            "[[providers]]\nid = \"openai\"\nmodel = \"a\" # pinned\nbase_url = \"http://127.0.0.1:9/v1\"\n\n[[providers]]\nid = \"groq\"\nbase_url = \"https://api.groq.com/openai/v1\"\nmodel = \"llama\"\n",
        );
        check("[local]\nthreads = 1\n", |s| s.local_model = Some("/m/a.gguf".into()), "[local]\nthreads = 1\nmodel = \"/m/a.gguf\"\n");
        check("[local]\nmodel = \"x\"\nthreads = 1\n", |s| s.local_model = None, "[local]\nthreads = 1\n");
        check("mode = \"auto\"\n", |_| {}, "mode = \"auto\"\n");
        check("[notifications]\nrecovery_after = \"60s\"\n", |s| s.notifications = false, "[notifications]\nrecovery_after = \"60s\"\nenabled = false\n");
        check("[notifications]\nenabled = false # quiet\n", |s| s.notifications = true, "[notifications]\nenabled = true # quiet\n");
        check("[gateway]\nlisten = \"127.0.0.1:9000\"\n", |s| s.gateway = true, "[gateway]\nlisten = \"127.0.0.1:9000\"\nenabled = true\n");
    }

    #[test]
    fn the_provider_list_is_written_in_order_with_comments_kept() {
        let file = Path::new("/c/config.toml");
        let text = "# my chain\nmode = \"auto\"\n\n# the main one\n[[providers]]\nid = \"openai\"\nmodel = \"gpt-4o\" # pinned\n\n[[providers]]\nid = \"groq\" # fast backup\nbase_url = \"https://api.groq.com/openai/v1\"\nmodel = \"llama\"\napi_key = \"env:GROQ_API_KEY\"\n";
        let mut list = providers_of(text, file).unwrap();
        assert_eq!(list.iter().map(|p| (p.id.as_str(), p.enabled)).collect::<Vec<_>>(), [("openai", true), ("groq", true)]);
        assert_eq!(list[0].base_url, "https://api.openai.com/v1");
        // Reorder, disable OpenAI, add Mistral, then write.
        list.swap(0, 1);
        list[1].enabled = false;
        list.push(ProviderEntry {
            id: "mistral".into(),
            base_url: "https://api.mistral.ai/v1/".into(),
            model: "mistral-small-latest".into(),
            api_key: "keyring".into(),
            enabled: true,
        });
        let out = apply_providers(text, file, &list).unwrap();
        assert!(out.starts_with("# my chain\nmode = \"auto\"\n"), "{out}");
        assert!(out.contains("id = \"groq\" # fast backup"), "{out}");
        assert!(out.contains("model = \"gpt-4o\" # pinned"), "{out}");
        assert!(out.contains("# the main one"), "{out}");
        assert!(out.find("\"groq\"").unwrap() < out.find("\"openai\"").unwrap() && out.find("\"openai\"").unwrap() < out.find("\"mistral\"").unwrap(), "{out}");
        assert!(!out.contains("base_url = \"https://api.openai.com/v1\""), "the default base URL is not pinned: {out}");
        let config = Config::parse(&out, file).unwrap();
        assert_eq!(
            config.providers.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
            ["groq", "mistral"],
            "a disabled provider stays in the file, out of the chain"
        );
        assert_eq!(config.providers[1].base_url, "https://api.mistral.ai/v1");
        assert_eq!(
            providers_of(&out, file).unwrap(),
            list.iter().map(|p| ProviderEntry { base_url: p.base_url.trim_end_matches('/').into(), ..p.clone() }).collect::<Vec<_>>()
        );
        // Enabled again and Groq removed.
        let again: Vec<_> = providers_of(&out, file).unwrap().into_iter().filter(|p| p.id != "groq").map(|p| ProviderEntry { enabled: true, ..p }).collect();
        let out2 = apply_providers(&out, file, &again).unwrap();
        assert!(!out2.contains("groq") && !out2.contains("enabled"), "{out2}");
        assert!(out2.contains("model = \"gpt-4o\" # pinned"), "{out2}");
        // A bad entry is refused by the parser, naming it.
        let bad = vec![ProviderEntry { id: "x".into(), base_url: "ftp://x".into(), model: "m".into(), api_key: "keyring".into(), enabled: true }];
        assert!(apply_providers(text, file, &bad).unwrap_err().to_string().contains("http(s) URL"));
    }

    #[test]
    fn save_creates_or_rewrites_the_file_the_app_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/config.toml");
        let env = crate::Env::from_pairs([("UNDERSTUDY_CONFIG", path.display().to_string()), ("UNDERSTUDY_DATA_DIR", dir.path().display().to_string())]);
        let paths = crate::Paths::resolve(&env).unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "# keep me\n").unwrap();
        let loaded = crate::config::load(&env, &paths);
        let new = Settings { mode: Mode::CloudOnly, local_model: Some("qwen".into()), ..Settings::of(&loaded.config) };
        save(&loaded, &new).unwrap();
        let again = crate::config::load(&env, &paths);
        assert!(again.problem.is_none());
        assert_eq!(Settings::of(&again.config), new);
        assert!(std::fs::read_to_string(&path).unwrap().starts_with("# keep me\n"));
    }

    #[test]
    fn start_minimized_is_written_into_the_tray_table_with_comments_kept() {
        let file = Path::new("/c/config.toml");
        let cases = [
            ("", true, "[tray]\nstart_minimized = true\n"),
            ("# mine\n", true, "# mine\n[tray]\nstart_minimized = true\n"),
            ("[tray]\nhold = \"60s\" # calm\n", true, "[tray]\nhold = \"60s\" # calm\nstart_minimized = true\n"),
            ("[tray]\nstart_minimized = true # at login\n", false, "[tray]\nstart_minimized = false # at login\n"),
        ];
        for (text, on, expect) in cases {
            let out = apply_start_minimized(text, file, on).unwrap();
            assert_eq!(out, expect, "{text:?}");
            assert_eq!(Config::parse(&out, file).unwrap().tray.start_minimized, on);
            assert_eq!(start_minimized_of(&out, file).unwrap(), Some(on));
        }
        assert_eq!(start_minimized_of("[tray]\nhold = \"5s\"\n", file).unwrap(), None, "not named: the default applies");
        assert_eq!(start_minimized_of("", file).unwrap(), None);
        assert!(start_minimized_of("[tray]\nstart_minimized = 1\n", file).is_err(), "checked by the parser that reads it");
        assert_eq!(apply_start_minimized("tray = 3\n", file, true).unwrap_err().key(), Some("tray"));
    }

    #[test]
    fn an_invalid_value_is_refused_with_its_key() {
        let file = Path::new("/c/config.toml");
        let current = Settings::of(&Config::default());
        let bad = Settings { base_url: "ftp://x".into(), ..current.clone() };
        let err = apply("", file, &current, &bad).unwrap_err();
        assert_eq!(err.key(), Some("providers[0].base_url"), "{err}");
    }
}
