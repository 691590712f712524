#![allow(clippy::unwrap_used)]
#![cfg(unix)]
//! The CLI on a careless disk: run under umask 000 with a damaged secrets file, it makes its data
//! dirs and log files private (0700 / 0600), moves the damaged file aside (never deletes it),
//! says so on stderr, and goes on to its ordinary answer (here: no key is set up, exit 2).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).permissions().mode() & 0o777
}

#[test]
fn under_umask_000_with_a_damaged_secrets_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("secrets.json"), b"{\"openai\": \"sk-cut-sh").unwrap();
    std::fs::write(dir.path().join("config.toml"), "[failover]\nstatus_page = \"\"\n").unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg("umask 000; exec \"$@\"")
        .arg("sh")
        .arg(env!("CARGO_BIN_EXE_understudy"))
        .args(["chat", "--provider", "openai", "hello"])
        .env("UNDERSTUDY_CONFIG", dir.path().join("config.toml"))
        .env("UNDERSTUDY_DATA_DIR", &data)
        .env_remove("OPENAI_API_KEY")
        .env_remove("UNDERSTUDY_LOCAL_MODEL")
        // No Secret Service: the file fallback is what is read.
        .env("DBUS_SESSION_BUS_ADDRESS", format!("unix:path={}", dir.path().join("no-bus").display()))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");

    let kept: Vec<_> = std::fs::read_dir(&data).unwrap().map(|e| e.unwrap().path()).filter(|p| p.to_string_lossy().contains("secrets-damaged-")).collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(std::fs::read(&kept[0]).unwrap(), b"{\"openai\": \"sk-cut-sh");
    assert_eq!(mode(&kept[0]), 0o600, "it may hold a key");
    assert!(stderr.contains("was damaged") && stderr.contains(&kept[0].display().to_string()), "it says so and where: {stderr}");

    for d in [data.clone(), data.join("models"), data.join("logs")] {
        assert_eq!(mode(&d), 0o700, "{}", d.display());
    }
    let logs: Vec<_> = std::fs::read_dir(data.join("logs")).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(!logs.is_empty());
    for f in logs {
        assert_eq!(mode(&f), 0o600, "{}", f.display());
    }
}
