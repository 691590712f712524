#![allow(clippy::unwrap_used)]
//! The desktop surface a web page could reach if model output ever escaped the sanitizer: the
//! window may call only the app's own commands it uses (plus listening for dropped files), and
//! the Content-Security-Policy forbids remote and inline script, eval, plugins and framing.

use std::collections::BTreeSet;

const DIR: &str = env!("CARGO_MANIFEST_DIR");

/// The commands build.rs declares (one permission each).
fn declared_commands() -> BTreeSet<String> {
    let build = std::fs::read_to_string(format!("{DIR}/build.rs")).unwrap();
    let list = build.split("const COMMANDS").nth(1).unwrap().split("];").next().unwrap();
    list.split('"').skip(1).step_by(2).map(str::to_string).collect()
}

/// The commands lib.rs hands to the invoke handler.
fn registered_commands() -> BTreeSet<String> {
    let lib = std::fs::read_to_string(format!("{DIR}/src/lib.rs")).unwrap();
    lib.split("commands::").skip(1).map(|s| s.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect()).collect()
}

#[test]
fn capabilities_grant_only_the_app_s_own_commands() {
    let commands = declared_commands();
    assert_eq!(commands, registered_commands(), "build.rs and the invoke handler list the same commands");
    let allowed: BTreeSet<String> = commands
        .iter()
        .map(|c| format!("allow-{}", c.replace('_', "-")))
        .chain(["core:event:allow-listen".to_string(), "core:event:allow-unlisten".to_string()])
        .collect();
    let mut files = 0;
    for entry in std::fs::read_dir(format!("{DIR}/capabilities")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        files += 1;
        let cap: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert!(cap.get("remote").is_none(), "{}: no remote origin may use the app's commands", path.display());
        assert_eq!(cap["windows"], serde_json::json!(["main"]), "{}: the main window only", path.display());
        assert!(cap.get("webviews").is_none() && cap.get("platforms").is_none(), "{}", path.display());
        for p in cap["permissions"].as_array().unwrap() {
            let p = p.as_str().unwrap_or_else(|| panic!("{}: scoped permission objects are not used: {p}", path.display()));
            assert!(allowed.contains(p), "{}: {p} is broader than the app's own commands", path.display());
        }
    }
    assert_eq!(files, 1, "one capability file, for the main window");
}

#[test]
fn the_content_security_policy_allows_no_remote_or_inline_script() {
    let conf: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(format!("{DIR}/tauri.conf.json")).unwrap()).unwrap();
    let csp = conf["app"]["security"]["csp"].as_str().expect("a CSP string");
    let directive = |name: &str| {
        csp.split(';').map(str::trim).find(|d| d.split_whitespace().next() == Some(name)).map(|d| d.split_whitespace().skip(1).collect::<Vec<_>>())
    };
    assert_eq!(directive("default-src").unwrap(), ["'self'"]);
    assert_eq!(directive("script-src").unwrap(), ["'self'"], "no inline script, no eval, no remote script");
    assert_eq!(directive("object-src").unwrap(), ["'none'"]);
    assert_eq!(directive("base-uri").unwrap(), ["'none'"]);
    assert_eq!(directive("frame-ancestors").unwrap(), ["'none'"]);
    assert_eq!(directive("form-action").unwrap(), ["'none'"]);
    for d in ["img-src", "connect-src", "style-src", "font-src"] {
        for source in directive(d).unwrap() {
            assert!(!source.starts_with("http") || source == "http://ipc.localhost", "{d} loads from {source}");
            assert!(source != "*" && !source.contains("unsafe-eval"), "{d}: {source}");
        }
    }
    assert!(!csp.contains("unsafe-eval") && !csp.contains("'unsafe-inline'; script") && !csp.contains("https:"), "{csp}");
    assert!(conf["app"]["security"].get("dangerousDisableAssetCspModification").is_none());
    assert!(conf["app"].get("withGlobalTauri").is_none_or(|v| v == false), "no window.__TAURI__ for injected script to use");
}
