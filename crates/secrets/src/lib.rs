//! API keys: in the OS keyring (Secret Service on Linux, Keychain, Credential Manager). Where
//! no keyring service runs (headless Linux), in a file only the user can read, and the
//! Settings page says so. Never in the database, logs, exports or error texts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

const SERVICE: &str = "understudy";

/// Where secrets are kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Backend {
    Keyring,
    /// The keyring is unavailable (`why`); a mode-0600 file in the data dir is used instead.
    File {
        path: PathBuf,
        why: String,
    },
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    #[error("cannot read or write the secrets file {}: {source}", path.display())]
    File { path: PathBuf, source: std::io::Error },
    #[error("the secrets file {} is damaged; delete it and add the key again", path.display())]
    Damaged { path: PathBuf },
}

/// The secret store. `name` is e.g. the provider id (`openai`).
#[derive(Debug, Clone)]
pub struct Secrets {
    file: PathBuf,
    use_keyring: bool,
}

impl Secrets {
    /// Secrets for the data dir; the fallback file is `secrets.json` there.
    pub fn new(data_dir: &Path) -> Secrets {
        Secrets { file: data_dir.join("secrets.json"), use_keyring: true }
    }

    /// Never touches the OS keyring (tests, and users who opt out).
    pub fn file_only(data_dir: &Path) -> Secrets {
        Secrets { file: data_dir.join("secrets.json"), use_keyring: false }
    }

    fn entry(name: &str) -> Option<keyring::Entry> {
        keyring::Entry::new(SERVICE, name).ok()
    }

    /// Stores a secret; returns where it went.
    pub fn set(&self, name: &str, value: &str) -> Result<Backend, SecretError> {
        if self.use_keyring {
            match Self::entry(name).map(|e| e.set_password(value)) {
                Some(Ok(())) => {
                    // A copy left in the file from a keyring-less time would outlive this one.
                    self.remove_from_file(name)?;
                    return Ok(Backend::Keyring);
                }
                Some(Err(e)) => return self.set_in_file(name, value, &e.to_string()),
                None => return self.set_in_file(name, value, "the keyring entry could not be created"),
            }
        }
        self.set_in_file(name, value, "the keyring is turned off")
    }

    pub fn get(&self, name: &str) -> Result<Option<String>, SecretError> {
        if self.use_keyring {
            if let Some(Ok(v)) = Self::entry(name).map(|e| e.get_password()) {
                return Ok(Some(v));
            }
        }
        Ok(self.read_file()?.remove(name))
    }

    pub fn delete(&self, name: &str) -> Result<(), SecretError> {
        if self.use_keyring {
            if let Some(e) = Self::entry(name) {
                let _ = e.delete_credential();
            }
        }
        self.remove_from_file(name)
    }

    /// Where a new secret would go now, for the Settings page.
    pub fn backend(&self) -> Backend {
        if self.use_keyring {
            // Probe with a read: NoEntry means the keyring works.
            match Self::entry("probe").map(|e| e.get_password()) {
                Some(Ok(_)) | Some(Err(keyring::Error::NoEntry)) => return Backend::Keyring,
                Some(Err(e)) => return Backend::File { path: self.file.clone(), why: e.to_string() },
                None => {}
            }
        }
        Backend::File { path: self.file.clone(), why: "the keyring is unavailable".into() }
    }

    fn set_in_file(&self, name: &str, value: &str, why: &str) -> Result<Backend, SecretError> {
        tracing::warn!("keyring unavailable ({why}); keeping the secret in {} (readable only by you)", self.file.display());
        let mut all = self.read_file()?;
        all.insert(name.to_string(), value.to_string());
        self.write_file(&all)?;
        Ok(Backend::File { path: self.file.clone(), why: why.to_string() })
    }

    fn remove_from_file(&self, name: &str) -> Result<(), SecretError> {
        let mut all = self.read_file()?;
        if all.remove(name).is_some() {
            self.write_file(&all)?;
        }
        Ok(())
    }

    /// A damaged file (not the JSON we write) is moved aside, never deleted, as
    /// `secrets-damaged-<date>.json`, and reads as empty: the app asks for the key again.
    fn read_file(&self) -> Result<BTreeMap<String, String>, SecretError> {
        match std::fs::read(&self.file) {
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(all) => Ok(all),
                Err(_) => {
                    let kept = self.file.with_file_name(format!("secrets-damaged-{}.json", chrono::Local::now().format("%Y%m%d-%H%M%S%.3f")));
                    std::fs::rename(&self.file, &kept).map_err(|_| SecretError::Damaged { path: self.file.clone() })?;
                    #[cfg(unix)]
                    let _ = std::fs::set_permissions(&kept, std::os::unix::fs::PermissionsExt::from_mode(0o600));
                    tracing::warn!(
                        "the secrets file {} was damaged; kept it as {} and started a new one: add the API key again",
                        self.file.display(),
                        kept.display()
                    );
                    Ok(BTreeMap::new())
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(source) => Err(SecretError::File { path: self.file.clone(), source }),
        }
    }

    /// Written to a temp file created 0600 and renamed, so the secret is never readable by
    /// others, not even for a moment, and a crash leaves the old file intact.
    fn write_file(&self, all: &BTreeMap<String, String>) -> Result<(), SecretError> {
        use std::io::Write;
        let err = |source| SecretError::File { path: self.file.clone(), source };
        if let Some(dir) = self.file.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let tmp = self.file.with_extension("json.tmp");
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let _ = std::fs::remove_file(&tmp);
        let written = options.open(&tmp).and_then(|mut f| {
            f.write_all(&serde_json::to_vec(all).expect("a string map serialises"))?;
            f.sync_all()
        });
        // A failed write (a full disk) leaves the old file whole and no half-written temp file.
        written.and_then(|()| std::fs::rename(&tmp, &self.file)).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            err(e)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_fallback_is_private_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let s = Secrets::file_only(dir.path());
        assert!(matches!(s.backend(), Backend::File { .. }));
        assert_eq!(s.get("openai").unwrap(), None);
        assert!(matches!(s.set("openai", "sk-ONE").unwrap(), Backend::File { .. }));
        s.set("groq", "gsk-TWO").unwrap();
        assert_eq!(s.get("openai").unwrap().as_deref(), Some("sk-ONE"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("secrets.json")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        s.delete("openai").unwrap();
        assert_eq!(s.get("openai").unwrap(), None);
        assert_eq!(s.get("groq").unwrap().as_deref(), Some("gsk-TWO"));
        assert!(!format!("{s:?}").contains("TWO"));
    }

    #[test]
    fn without_a_keyring_service_the_file_is_used_and_says_why() {
        // No Secret Service on this bus: the keyring call fails and the file takes over.
        let dir = tempfile::tempdir().unwrap();
        let bus = dir.path().join("no-bus");
        std::env::set_var("DBUS_SESSION_BUS_ADDRESS", format!("unix:path={}", bus.display()));
        let s = Secrets::new(dir.path());
        match s.set("openai", "sk-THREE").unwrap() {
            Backend::File { why, .. } => assert!(!why.is_empty()),
            Backend::Keyring => panic!("no keyring service runs here"),
        }
        assert_eq!(s.get("openai").unwrap().as_deref(), Some("sk-THREE"));
        assert!(matches!(s.backend(), Backend::File { .. }));
    }

    #[test]
    fn a_damaged_file_is_kept_aside_and_a_new_one_started() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secrets.json"), "{not json").unwrap();
        let s = Secrets::file_only(dir.path());
        assert_eq!(s.get("openai").unwrap(), None);
        let kept: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert_eq!(kept.len(), 1, "{kept:?}");
        assert!(kept[0].starts_with("secrets-damaged-") && kept[0].ends_with(".json"), "{kept:?}");
        assert_eq!(std::fs::read_to_string(dir.path().join(&kept[0])).unwrap(), "{not json");
        s.set("openai", "sk-FOUR").unwrap();
        assert_eq!(s.get("openai").unwrap().as_deref(), Some("sk-FOUR"));
    }
}
