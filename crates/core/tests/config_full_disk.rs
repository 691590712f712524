#![allow(clippy::unwrap_used)]
#![cfg(target_os = "linux")]
//! Saving Settings on a full disk fails with an error and leaves the old config.toml whole
//! (the write goes to a temporary file renamed over the old one). A real 256 KiB tmpfs holds the
//! config; mounting needs root (as in CI), elsewhere the test says so and passes.

use std::io::Write;
use std::path::Path;

use understudy_core::config::Mode;
use understudy_core::{config, settings, Env, Paths, Settings};

struct Tmpfs(tempfile::TempDir);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(self.0.path()).status();
    }
}

fn fill(path: &Path) {
    let mut f = std::fs::File::create(path).unwrap();
    let block = vec![0u8; 4096];
    while f.write_all(&block).is_ok() {}
}

#[test]
fn a_full_disk_leaves_the_old_config_whole() {
    let dir = tempfile::tempdir().unwrap();
    let mounted = std::process::Command::new("mount").args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"]).arg(dir.path()).status().is_ok_and(|s| s.success());
    if !mounted {
        use std::os::unix::fs::MetadataExt;
        assert_ne!(std::fs::metadata("/proc/self").unwrap().uid(), 0, "root could not mount a tmpfs");
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    }
    let disk = Tmpfs(dir);
    let file = disk.0.path().join("config.toml");
    let old = format!("# my settings, with a long comment {}\nmode = \"auto\"\n", "x".repeat(3000));
    std::fs::write(&file, &old).unwrap();
    let env = Env::from_pairs([("UNDERSTUDY_CONFIG", file.display().to_string()), ("UNDERSTUDY_DATA_DIR", disk.0.path().join("data").display().to_string())]);
    let paths = Paths::resolve(&env).unwrap();
    let loaded = config::load(&env, &paths);
    let new = Settings { mode: Mode::LocalOnly, ..Settings::of(&loaded.config) };

    fill(&disk.0.path().join("filler"));
    let err = settings::save(&loaded, &new).unwrap_err();
    assert!(err.to_string().contains("config.toml"), "{err}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), old, "the old file is whole");
    assert!(!file.with_extension("toml.tmp").exists(), "no half-written file is left");

    std::fs::remove_file(disk.0.path().join("filler")).unwrap();
    settings::save(&loaded, &new).unwrap();
    assert_eq!(config::load(&env, &paths).config.mode, Mode::LocalOnly);
}
