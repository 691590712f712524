#![allow(clippy::unwrap_used)]
#![cfg(unix)]
//! What Understudy creates is the user's alone (0600 files, 0700 dirs) even under a permissive
//! umask: this test binary runs with umask 000 and checks the data dirs, a config file written
//! from Settings into a new config dir, and the log files.
//! (One test: the umask is per process, and logging sets its own.)

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use understudy_core::config::Mode;
use understudy_core::{config, logging, settings, Env, Paths, Settings};

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).permissions().mode() & 0o777
}

#[test]
fn data_dirs_config_and_logs_are_private_under_umask_000() {
    rustix::process::umask(rustix::fs::Mode::empty());
    let tmp = tempfile::tempdir().unwrap();
    // The umask really is open: a plain file comes out world-writable.
    std::fs::write(tmp.path().join("control"), b"").unwrap();
    assert_eq!(mode(&tmp.path().join("control")), 0o666);

    let config_file = tmp.path().join("config/understudy/config.toml");
    let env =
        Env::from_pairs([("UNDERSTUDY_CONFIG", config_file.display().to_string()), ("UNDERSTUDY_DATA_DIR", tmp.path().join("data").display().to_string())]);
    let paths = Paths::resolve(&env).unwrap();
    paths.create_data_dirs().unwrap();
    for dir in [paths.data_dir.clone(), paths.models_dir(), paths.logs_dir()] {
        assert_eq!(mode(&dir), 0o700, "{}", dir.display());
    }

    let loaded = config::load(&env, &paths);
    settings::save(&loaded, &Settings { mode: Mode::LocalOnly, ..Settings::of(&loaded.config) }).unwrap();
    assert_eq!(mode(&config_file), 0o600);
    assert_eq!(mode(config_file.parent().unwrap()), 0o700, "a config dir made by Understudy");
    assert_eq!(mode(&tmp.path().join("config")), 0o700);

    let guard = logging::init(&env, &paths.logs_dir(), "understudy-test");
    tracing::warn!("a line for the log file");
    drop(guard);
    let logs: Vec<_> = std::fs::read_dir(paths.logs_dir()).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(!logs.is_empty());
    for f in logs {
        assert_eq!(mode(&f), 0o600, "{}", f.display());
    }
}
