//! ARCHITECTURE.md kept true mechanically: every path its code map names exists, and the
//! invariants that can be read off the tree hold (who depends on tauri, `alerts` apart from
//! `router` and light enough to link no database, engine, keyring or HTTP client, the router
//! and gateway without SQLite, no `Result<_, String>` in public library APIs, no function over
//! 80 lines without a `Long:` reason).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask is in the workspace root").to_path_buf()
}

fn architecture() -> String {
    std::fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md")
}

/// Backticked words of ARCHITECTURE.md that name a place in the repository: the code map's first
/// column, and any `crates/…`, `src-tauri/…`, `ui/…`, `xtask/…`, `models/…`, `fuzz/…` path in the text.
fn named_paths(doc: &str) -> BTreeSet<String> {
    const TOP: [&str; 7] = ["crates/", "src-tauri", "ui/", "xtask/", "models/", "fuzz/", ".ci/"];
    let mut paths = BTreeSet::new();
    for (i, word) in doc.split('`').enumerate() {
        // Odd pieces are inside backticks.
        if i % 2 == 1 && TOP.iter().any(|t| word.starts_with(t)) && !word.contains(['*', ' ', '<', '{']) {
            paths.insert(word.trim_end_matches('/').to_string());
        }
    }
    for row in doc.lines().filter(|l| l.starts_with("| `")) {
        let first = row.split('|').nth(1).unwrap_or_default();
        for (i, word) in first.split('`').enumerate() {
            if i % 2 == 1 && !word.contains('*') {
                paths.insert(word.trim_end_matches('/').to_string());
            }
        }
    }
    paths
}

#[test]
fn every_path_the_code_map_names_exists() {
    let paths = named_paths(&architecture());
    assert!(paths.contains("crates/router") && paths.contains("src-tauri"), "the code map was not read: {paths:?}");
    let missing: Vec<&String> = paths.iter().filter(|p| !root().join(p).exists()).collect();
    assert!(missing.is_empty(), "ARCHITECTURE.md names paths that do not exist: {missing:?}");
}

/// (package, [(dependency, kind)]) for every workspace member, as Cargo.toml declares them.
fn declared_dependencies() -> Vec<(String, Vec<(String, String)>)> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out =
        Command::new(cargo).args(["metadata", "--format-version", "1", "--no-deps", "--offline"]).current_dir(root()).output().expect("cargo metadata runs");
    assert!(out.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&out.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("cargo metadata's JSON");
    meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .expect("dependencies")
                .iter()
                .map(|d| (d["name"].as_str().unwrap_or_default().to_string(), d["kind"].as_str().unwrap_or("normal").to_string()))
                .collect();
            (p["name"].as_str().unwrap_or_default().to_string(), deps)
        })
        .collect()
}

#[test]
fn only_src_tauri_depends_on_tauri() {
    let packages = declared_dependencies();
    assert!(packages.iter().any(|(p, _)| p == "understudy-app"), "the app was not found among {:?}", packages.iter().map(|p| &p.0).collect::<Vec<_>>());
    let offenders: Vec<String> = packages
        .iter()
        .filter(|(p, _)| p != "understudy-app")
        .flat_map(|(p, deps)| deps.iter().filter(|(d, _)| d == "tauri" || d.starts_with("tauri-")).map(move |(d, k)| format!("{p} → {d} ({k})")))
        .collect();
    assert!(offenders.is_empty(), "only src-tauri may depend on tauri: {offenders:?}");
}

/// `alerts` is pure (what the tray shows and when to notify): it reads health and turn types
/// from `core`, never the router or the store.
#[test]
fn alerts_does_not_depend_on_router() {
    let packages = declared_dependencies();
    let (_, deps) = packages.iter().find(|(p, _)| p == "understudy-alerts").expect("understudy-alerts is a member");
    let on_router: Vec<&str> =
        deps.iter().filter(|(d, k)| k == "normal" && (d == "understudy-router" || d == "understudy-store")).map(|(d, _)| d.as_str()).collect();
    assert!(on_router.is_empty(), "alerts depends on {on_router:?}; the types it reads live in understudy-core");
}

/// Every package `package` links (its normal dependencies, transitively), by name.
fn linked_packages(package: &str) -> BTreeSet<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["tree", "-p", package, "-e", "normal", "--prefix", "none", "--format", "{p}", "--offline"])
        .current_dir(root())
        .output()
        .expect("cargo tree runs");
    assert!(out.status.success(), "cargo tree: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| l.split_whitespace().next()).map(str::to_string).collect()
}

/// The light crates stay light: reading health and turns links no database, no llama.cpp, no
/// keyring and no HTTP client; the router and the gateway on it answer, never keep history, so
/// they link no SQLite.
#[test]
fn light_crates_do_not_link_heavy_ones() {
    const HEAVY: &[&str] = &["rusqlite", "llama-cpp-sys-2", "keyring", "reqwest"];
    const RULES: &[(&str, &[&str])] =
        &[("understudy-core", HEAVY), ("understudy-alerts", HEAVY), ("understudy-router", &["rusqlite"]), ("understudy-gateway", &["rusqlite"])];
    for (package, heavy) in RULES {
        let linked = linked_packages(package);
        assert!(linked.contains(*package), "cargo tree did not list {package} itself: {linked:?}");
        let found: Vec<&str> = heavy.iter().copied().filter(|h| linked.contains(*h)).collect();
        assert!(found.is_empty(), "{package} links {found:?}");
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            // Binaries (`src/bin`) use anyhow, not thiserror.
            if path.file_name().is_some_and(|n| n != "bin") {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") && path.file_name().is_some_and(|n| n != "main.rs") {
            out.push(path);
        }
    }
}

/// `pub fn name(...) -> Result<T, String>` (also `pub async fn`, signatures over several lines);
/// only the return type counts, not a parameter's.
fn string_error_fns(source: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (at, _) in source.match_indices("pub ") {
        let rest = &source[at + 4..];
        let rest = rest.strip_prefix("async ").unwrap_or(rest);
        let Some(sig) = rest.strip_prefix("fn ") else { continue };
        let name: String = sig.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        let end = sig.find(['{', ';']).unwrap_or(sig.len());
        let sig = &sig[..end];
        let Some(ret) = sig.rfind("->").map(|i| sig[i + 2..].trim()) else { continue };
        let ret = ret.split(" where").next().unwrap_or(ret).trim();
        let compact: String = ret.chars().filter(|c| !c.is_whitespace()).collect();
        if compact.starts_with("Result<") && compact.ends_with(",String>") {
            found.push(name);
        }
    }
    found
}

#[test]
fn string_error_detection_reads_return_types_only() {
    let src = "pub fn a() -> Result<u8, String> {}\npub async fn b(\n    x: u8,\n) -> Result<Vec<u8>, String>\n{}\npub fn c(r: Result<u8, String>) -> Result<u8, E> {}\npub(crate) fn d() -> Result<(), String> {}\npub fn e() -> String {}";
    assert_eq!(string_error_fns(src), ["a", "b"]);
}

#[test]
fn public_library_apis_return_typed_errors() {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(root().join("crates")).expect("crates/").flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        // The CLI is a binary (anyhow); testkit is test-only support.
        if name != "cli" && name != "testkit" {
            rust_files(&entry.path().join("src"), &mut files);
        }
    }
    assert!(files.len() > 20, "the library sources were not found: {files:?}");
    let mut found: Vec<String> = Vec::new();
    for file in files {
        let source = std::fs::read_to_string(&file).expect("a source file");
        let rel = file.strip_prefix(root()).unwrap_or(&file).to_string_lossy().replace('\\', "/");
        found.extend(string_error_fns(&source).into_iter().map(|f| format!("{rel}: {f}")));
    }
    found.sort();
    assert!(found.is_empty(), "public library functions return Result<_, String> (ARCHITECTURE.md: library crates use thiserror): {found:?}");
}

/// The longest a function may be without a `Long:` reason in its doc comment.
const MAX_FN_LINES: usize = 80;

/// Functions longer than [`MAX_FN_LINES`] without a `Long:` line in their doc comment, as
/// `name (lines)`. Reads rustfmt's layout (CI checks it): a body ends at the first `}` at its
/// `fn`'s indentation; one-line bodies and bodiless declarations are skipped, and so are
/// `#[cfg(test)]` modules written inline.
fn long_fns_without_reason(source: &str) -> Vec<String> {
    let lines: Vec<&str> = source.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let mut found = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let depth = indent(line);
        let code = line.trim_start();
        let closes_at = |from: usize| (from + 1..lines.len()).find(|&k| indent(lines[k]) == depth && lines[k].trim_start().starts_with('}'));
        if code.starts_with("mod ") && code.ends_with('{') && attributes_above(&lines, i).any(|a| a == "#[cfg(test)]") {
            i = closes_at(i).unwrap_or(lines.len());
            continue;
        }
        let Some(name) = fn_name(code) else {
            i += 1;
            continue;
        };
        let signature_end = (i..lines.len()).find(|&k| lines[k].contains('{') || lines[k].trim_end().ends_with(';')).unwrap_or(i);
        let one_line = signature_end == i && code.trim_end().ends_with('}');
        if one_line || !lines[signature_end].contains('{') {
            i += 1;
            continue;
        }
        let end = closes_at(i).unwrap_or(lines.len() - 1);
        let length = end - i + 1;
        let reasoned = attributes_above(&lines, i).any(|a| a.starts_with("///") && a.contains("Long:"));
        if length > MAX_FN_LINES && !reasoned {
            found.push(format!("{name} ({length} lines)"));
        }
        i += 1;
    }
    found
}

/// The doc comment and attribute lines right above line `i`, nearest first.
fn attributes_above<'a>(lines: &'a [&'a str], i: usize) -> impl Iterator<Item = &'a str> + 'a {
    lines[..i].iter().rev().map(|l| l.trim()).take_while(|l| l.starts_with("///") || l.starts_with("#["))
}

/// The name of the function a line declares (`pub(crate) async unsafe fn name…`), if it does.
fn fn_name(code: &str) -> Option<String> {
    let mut rest = code;
    if let Some(r) = rest.strip_prefix("pub") {
        rest = r.strip_prefix(' ').or_else(|| r.strip_prefix('(').and_then(|r| r.split_once(") ")).map(|(_, r)| r))?;
    }
    for qualifier in ["const ", "async ", "unsafe ", "extern \"C\" "] {
        rest = rest.strip_prefix(qualifier).unwrap_or(rest);
    }
    let name: String = rest.strip_prefix("fn ")?.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
    (!name.is_empty()).then_some(name)
}

/// Out-of-line `#[cfg(test)] mod name;` files declared by `file`.
fn test_module_files(file: &Path, source: &str) -> Vec<PathBuf> {
    let dir = match file.file_stem().and_then(|s| s.to_str()) {
        Some("lib" | "main" | "mod") => file.parent().map(Path::to_path_buf),
        Some(stem) => file.parent().map(|p| p.join(stem)),
        None => None,
    };
    let Some(dir) = dir else { return Vec::new() };
    let lines: Vec<&str> = source.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(name) = line.trim().strip_prefix("mod ").and_then(|r| r.strip_suffix(';')) else { continue };
        if attributes_above(&lines, i).any(|a| a == "#[cfg(test)]") {
            out.push(dir.join(format!("{name}.rs")));
            out.push(dir.join(name).join("mod.rs"));
        }
    }
    out
}

#[test]
fn long_function_detection_skips_reasoned_short_and_test_code() {
    let body = |n: usize| "    let x = 1;\n".repeat(n);
    let src = format!(
        "fn short() {{\n{}}}\n\n/// Long: a table.\n#[inline]\nfn reasoned() {{\n{}}}\n\npub(crate) async fn long(\n    a: u8,\n) -> u8 {{\n{}    a\n}}\n\nimpl X {{\n    fn nested(&self) {{\n{}    }}\n}}\n\nfn one() {{ 1 }}\ntrait T {{\n    fn decl(&self);\n}}\n\n#[cfg(test)]\nmod tests {{\n    fn table() {{\n{}    }}\n}}\n",
        body(78),
        body(90),
        body(90),
        body(85),
        body(120)
    );
    assert_eq!(long_fns_without_reason(&src), ["long (95 lines)", "nested (87 lines)"]);
}

/// Issue #16: no function over 80 lines without a reason. Test code (`tests/` folders, `#[cfg(test)]`
/// modules) is left out: its tables read best whole.
#[test]
fn long_functions_say_why() {
    let mut files = Vec::new();
    let mut dirs = vec![root().join("src-tauri/src"), root().join("xtask/src")];
    for entry in std::fs::read_dir(root().join("crates")).expect("crates/").flatten() {
        dirs.extend([entry.path().join("src"), entry.path().join("benches")]);
    }
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() && path.file_name().is_some_and(|n| n != "tests") {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    assert!(files.len() > 50, "the sources were not found: {files:?}");
    let sources: Vec<(PathBuf, String)> = files.into_iter().map(|f| (f.clone(), std::fs::read_to_string(&f).expect("a source file"))).collect();
    let test_only: BTreeSet<PathBuf> = sources.iter().flat_map(|(f, s)| test_module_files(f, s)).collect();
    assert!(test_only.contains(&root().join("src-tauri/src/ts.rs")), "the test-only modules were not found: {test_only:?}");
    let mut found: Vec<String> = Vec::new();
    for (file, source) in sources.iter().filter(|(f, _)| !test_only.contains(f)) {
        let rel = file.strip_prefix(root()).unwrap_or(file).to_string_lossy().replace('\\', "/");
        found.extend(long_fns_without_reason(source).into_iter().map(|f| format!("{rel}: {f}")));
    }
    found.sort();
    assert!(
        found.is_empty(),
        "functions over {MAX_FN_LINES} lines without a `/// Long: …` reason (split them by what they do, or say why they read best whole): {found:#?}"
    );
}
