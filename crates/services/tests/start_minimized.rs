//! "Start minimized" is `[tray] start_minimized` in the config file, written by Settings like
//! the other settings; a value the history's settings table kept before is moved there once.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use understudy_core::{Env, Paths};
use understudy_services::{Change, Services, STORED_START_MINIMIZED};
use understudy_store::{Secrets, Store};

fn services(dir: &Path) -> Services {
    let config = dir.join("config.toml");
    let env = Env::from_pairs([("UNDERSTUDY_DATA_DIR", dir.join("data").display().to_string()), ("UNDERSTUDY_CONFIG", config.display().to_string())]);
    let paths = Paths::resolve(&env).unwrap();
    paths.create_data_dirs().unwrap();
    Services::builder(env, paths).secrets(Secrets::file_only(dir)).worker("/bin/false", &[]).build().unwrap()
}

/// A history whose settings table says `value`, as an older Understudy left it.
fn stored(dir: &Path, value: &str) {
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let store = Store::open(&services(dir).paths().database()).unwrap();
    store.set_setting(STORED_START_MINIMIZED, value).unwrap();
}

/// Opens the history (which moves the setting) and says what its settings table still holds.
fn open_and_read(services: &Services) -> Option<String> {
    services.open_history().conversations.with_store(|s| s.setting(STORED_START_MINIMIZED)).unwrap()
}

fn config(dir: &Path) -> Option<String> {
    std::fs::read_to_string(dir.join("config.toml")).ok()
}

#[test]
fn settings_write_it_into_the_tray_table_and_every_reader_sees_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.toml"), "# mine\n[tray]\nhold = \"5s\"\n").unwrap();
    let services = services(dir.path());
    let mut watch = services.config();
    assert!(!services.start_minimized());
    services.write(Change::StartMinimized(true)).unwrap();
    assert!(services.start_minimized());
    assert!(watch.has_changed().unwrap() && watch.borrow_and_update().config.tray.start_minimized);
    assert_eq!(config(dir.path()).unwrap(), "# mine\n[tray]\nhold = \"5s\"\nstart_minimized = true\n");
    services.write(Change::StartMinimized(false)).unwrap();
    assert!(!services.start_minimized());
    assert_eq!(config(dir.path()).unwrap(), "# mine\n[tray]\nhold = \"5s\"\nstart_minimized = false\n");
}

#[test]
fn a_stored_true_moves_into_a_file_that_does_not_name_it_once() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.toml"), "# mine\nmode = \"auto\"\n").unwrap();
    stored(dir.path(), "true");
    let services = services(dir.path());
    assert!(!services.start_minimized());
    assert_eq!(open_and_read(&services), None, "gone from the store");
    assert!(services.start_minimized(), "published at once");
    assert_eq!(config(dir.path()).unwrap(), "# mine\nmode = \"auto\"\n\n[tray]\nstart_minimized = true\n");

    // Off in Settings afterwards: the next start does not bring the old value back.
    services.write(Change::StartMinimized(false)).unwrap();
    let again = self::services(dir.path());
    assert_eq!(open_and_read(&again), None);
    assert!(!again.start_minimized());
}

#[test]
fn the_file_decides_when_it_names_it_and_a_stored_false_just_goes() {
    let dir = tempfile::tempdir().unwrap();
    let text = "[tray]\nstart_minimized = false # not on this laptop\n";
    std::fs::write(dir.path().join("config.toml"), text).unwrap();
    stored(dir.path(), "true");
    let services = services(dir.path());
    assert_eq!(open_and_read(&services), None);
    assert!(!services.start_minimized());
    assert_eq!(config(dir.path()).unwrap(), text, "untouched");

    let dir = tempfile::tempdir().unwrap();
    stored(dir.path(), "false");
    let services = self::services(dir.path());
    assert_eq!(open_and_read(&services), None);
    assert_eq!(config(dir.path()), None, "no file is made for the default");
}

#[test]
fn a_broken_file_keeps_it_stored_for_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.toml"), "mode = [\n").unwrap();
    stored(dir.path(), "true");
    let services = services(dir.path());
    assert_eq!(open_and_read(&services).as_deref(), Some("true"));
    assert_eq!(config(dir.path()).unwrap(), "mode = [\n");

    // Fixed by hand: the next start moves it.
    std::fs::write(dir.path().join("config.toml"), "").unwrap();
    let services = self::services(dir.path());
    assert_eq!(open_and_read(&services), None);
    assert!(services.start_minimized());
}
