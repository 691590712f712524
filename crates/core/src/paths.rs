//! Where Understudy keeps its files: the XDG config and data directories (via `directories`),
//! overridable with `UNDERSTUDY_CONFIG` and `UNDERSTUDY_DATA_DIR`.

use std::path::PathBuf;

use crate::env::Env;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// The config file (`$XDG_CONFIG_HOME/understudy/config.toml` unless `UNDERSTUDY_CONFIG`).
    pub config_file: PathBuf,
    /// `$XDG_DATA_HOME/understudy` unless `UNDERSTUDY_DATA_DIR`.
    pub data_dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PathsError {
    #[error("cannot find a home directory for the XDG config and data directories; set UNDERSTUDY_CONFIG and UNDERSTUDY_DATA_DIR")]
    NoHome,
    #[error("cannot create {}: {source}", path.display())]
    Create { path: PathBuf, source: std::io::Error },
}

impl Paths {
    pub fn resolve(env: &Env) -> Result<Paths, PathsError> {
        let dirs = || directories::ProjectDirs::from("", "", "understudy").ok_or(PathsError::NoHome);
        let config_file = match env.non_empty("UNDERSTUDY_CONFIG") {
            Some(p) => PathBuf::from(p),
            None => dirs()?.config_dir().join("config.toml"),
        };
        let data_dir = match env.non_empty("UNDERSTUDY_DATA_DIR") {
            Some(p) => PathBuf::from(p),
            None => dirs()?.data_dir().to_path_buf(),
        };
        Ok(Paths { config_file, data_dir })
    }

    /// The SQLite database of conversations and settings.
    pub fn database(&self) -> PathBuf {
        self.data_dir.join("understudy.db")
    }

    /// Downloaded and imported models.
    pub fn models_dir(&self) -> PathBuf {
        self.data_dir.join("models")
    }

    /// Rotating log files.
    pub fn logs_dir(&self) -> PathBuf {
        self.data_dir.join("logs")
    }

    /// Where exports go: the user's Downloads folder (XDG user dirs), else the home folder,
    /// else the data dir.
    pub fn exports_dir(&self) -> PathBuf {
        directories::UserDirs::new()
            .map(|u| u.download_dir().map(PathBuf::from).unwrap_or_else(|| u.home_dir().to_path_buf()))
            .unwrap_or_else(|| self.data_dir.clone())
    }

    /// Creates the data directory and its `models/` and `logs/` folders, owner-only (0700 on
    /// Unix, whatever the umask; an existing, more open dir is tightened): conversations and
    /// logs are nobody else's business on a shared machine.
    pub fn create_data_dirs(&self) -> Result<(), PathsError> {
        for path in [self.data_dir.clone(), self.models_dir(), self.logs_dir()] {
            std::fs::create_dir_all(&path).and_then(|()| private_dir(&path)).map_err(|source| PathsError::Create { path, source })?;
        }
        Ok(())
    }
}

/// Makes `dir` owner-only (0700) on Unix.
pub fn private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Makes the process create every new file and dir owner-only (umask 077) on Unix. Called at
/// start-up by the app and the CLI (in [`crate::logging::init`]): some files are created by
/// dependencies that take no mode (tracing-appender's daily log files, SQLite's, the
/// downloader's), and a user's umask of 000 must not make them world-readable.
pub fn private_umask() {
    #[cfg(unix)]
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_win_and_subdirs_follow_the_contract() {
        let p = Paths::resolve(&Env::from_pairs([("UNDERSTUDY_CONFIG", "/etc/u.toml"), ("UNDERSTUDY_DATA_DIR", "/srv/u")])).unwrap();
        assert_eq!(p.config_file, PathBuf::from("/etc/u.toml"));
        assert_eq!(p.database(), PathBuf::from("/srv/u/understudy.db"));
        assert_eq!(p.models_dir(), PathBuf::from("/srv/u/models"));
        assert_eq!(p.logs_dir(), PathBuf::from("/srv/u/logs"));
    }

    #[test]
    fn defaults_are_the_xdg_directories() {
        // `directories` reads XDG_* from the process; only check the shape here.
        let p = Paths::resolve(&Env::default()).unwrap();
        assert!(p.config_file.ends_with("understudy/config.toml"), "{}", p.config_file.display());
        assert!(p.data_dir.ends_with("understudy"), "{}", p.data_dir.display());
    }

    #[test]
    #[cfg(unix)]
    fn create_data_dirs_are_owner_only_even_when_they_existed() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
        let p = Paths { config_file: tmp.path().join("c.toml"), data_dir: data.clone() };
        p.create_data_dirs().unwrap();
        for dir in [data.clone(), p.models_dir(), p.logs_dir()] {
            assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700, "{}", dir.display());
        }
    }

    #[test]
    fn create_data_dirs_makes_models_and_logs() {
        let dir = tempfile::tempdir().unwrap();
        let p = Paths::resolve(&Env::from_pairs([("UNDERSTUDY_CONFIG", "/x.toml"), ("UNDERSTUDY_DATA_DIR", dir.path().join("d").to_str().unwrap())])).unwrap();
        p.create_data_dirs().unwrap();
        assert!(p.models_dir().is_dir() && p.logs_dir().is_dir());
    }
}
