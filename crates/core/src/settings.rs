//! What the Settings page edits, written back into the config file with toml_edit so the
//! user's comments, ordering and other keys survive. The file stays the single source of truth
//! (design.md section 2): the app and the CLI read the same settings.

use std::path::Path;

use serde::{Deserialize, Serialize};
use toml_edit::{value, ArrayOfTables, DocumentMut, Item, Table};

use crate::config::{Config, ConfigError, Mode};

/// The everyday settings of the primary provider, the local model and the mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
            set_enabled(&mut doc, table, on).map_err(|()| invalid(table, format!("`{table}` is not a table")))?;
        }
    }
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

/// Sets `[table] enabled`, keeping the comment beside an existing value.
fn set_enabled(doc: &mut DocumentMut, table: &str, on: bool) -> Result<(), ()> {
    let t = doc.entry(table).or_insert_with(|| Item::Table(Table::new()));
    let t = t.as_table_like_mut().ok_or(())?;
    match t.get_mut("enabled") {
        Some(item) if item.is_value() => {
            let decor = item.as_value().map(|v| v.decor().clone());
            *item = value(on);
            if let (Some(d), Some(v)) = (decor, item.as_value_mut()) {
                *v.decor_mut() = d;
            }
        }
        _ => {
            t.insert("enabled", value(on));
        }
    }
    Ok(())
}

/// Writes `new` into the config file `loaded` came from (creating it if needed), atomically:
/// a crash or a full disk mid-write leaves the old file whole, never half a file. The file is
/// owner-only (0600) and a config dir made here 0700, whatever the umask.
pub fn save(loaded: &crate::Loaded, new: &Settings) -> Result<(), ConfigError> {
    let file = &loaded.path;
    let io = |e: std::io::Error| ConfigError::Read { file: file.clone(), message: e.to_string() };
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(io(e)),
    };
    let out = apply(&text, file, &Settings::of(&loaded.config), new)?;
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
    fn an_invalid_value_is_refused_with_its_key() {
        let file = Path::new("/c/config.toml");
        let current = Settings::of(&Config::default());
        let bad = Settings { base_url: "ftp://x".into(), ..current.clone() };
        let err = apply("", file, &current, &bad).unwrap_err();
        assert_eq!(err.key(), Some("providers[0].base_url"), "{err}");
    }
}
