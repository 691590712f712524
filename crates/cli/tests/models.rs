#![allow(clippy::unwrap_used)]
//! `understudy models …` as users run it, against a loopback Hugging Face stand-in
//! (`hf-mirror`, pointed at by HF_ENDPOINT): pull with a verified hash, a kill -9 mid-download
//! and a resume that fetches only the rest, list / verify / rm, import, scan and search.

use std::io::BufRead;
use std::process::{Command, Output, Stdio};

struct Env {
    dir: tempfile::TempDir,
    mirror: understudy_testkit::HfMirror,
}

fn env(rate: Option<u64>) -> Env {
    env_with(rate, &[])
}

/// `unlinked`: files the mirror serves without a sha256 (`X-Linked-Etag`).
fn env_with(rate: Option<u64>, unlinked: &[&str]) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("hub/test-org/Tiny-GGUF");
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::copy(understudy_testkit::tiny_gguf(), repo.join("tiny-Q4_K_M.gguf")).unwrap();
    std::fs::write(repo.join("junk-Q8_0.gguf"), vec![7u8; 300_000]).unwrap();
    std::fs::write(dir.path().join("config.toml"), "").unwrap();
    let mirror = understudy_testkit::HfMirror::start_with(&dir.path().join("hub"), rate, unlinked);
    Env { dir, mirror }
}

impl Env {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_understudy"));
        c.args(args)
            .env("UNDERSTUDY_CONFIG", self.dir.path().join("config.toml"))
            .env("UNDERSTUDY_DATA_DIR", self.dir.path().join("data"))
            .env("HOME", self.dir.path().join("home"))
            .env("HF_ENDPOINT", self.mirror.endpoint())
            .env_remove("HF_HOME")
            .env_remove("HF_HUB_CACHE")
            .env_remove("OLLAMA_MODELS")
            .env_remove("XDG_CACHE_HOME");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// `understudy ARGS` run by `sh -c 'umask 000; exec …'` with the same environment.
    #[cfg(unix)]
    fn run_with_umask_000(&self, args: &[&str]) -> Output {
        let c = self.cmd(args);
        let mut sh = Command::new("sh");
        sh.arg("-c").arg("umask 000; exec \"$@\"").arg("sh").arg(c.get_program()).args(c.get_args());
        for (k, v) in c.get_envs() {
            match v {
                Some(v) => sh.env(k, v),
                None => sh.env_remove(k),
            };
        }
        sh.output().unwrap()
    }

    fn models(&self) -> std::path::PathBuf {
        self.dir.path().join("data/models")
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    text(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn pull_verifies_then_list_verify_and_rm_manage_the_model() {
    let e = env(None);
    std::fs::write(e.dir.path().join("config.toml"), "[local]\ncontext = 1024\n").unwrap();
    let out = e.run(&["models", "pull", "--json", "test-org/Tiny-GGUF/tiny-Q4_K_M.gguf"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let done = json_lines(&out).pop().unwrap();
    assert_eq!((done["type"].as_str(), done["verified"].as_bool()), (Some("done"), Some(true)), "X-Linked-Etag checked: {done}");
    let file = e.models().join("tiny-Q4_K_M.gguf");
    assert_eq!(std::fs::read(&file).unwrap(), std::fs::read(understudy_testkit::tiny_gguf()).unwrap());
    assert!(!e.models().join("tiny-Q4_K_M.gguf.part").exists());

    let out = e.run(&["models", "list", "--json"]);
    let lines = json_lines(&out);
    let model = lines.iter().find(|l| l["kind"] == "model").unwrap();
    assert_eq!((model["source"].as_str(), model["details"]["architecture"].as_str()), (Some("downloaded"), Some("llama")));
    assert!(model["fit"].is_string() && model["needs_bytes"].as_u64().unwrap() > model["size"].as_u64().unwrap());
    assert!(lines.iter().filter(|l| l["kind"] == "catalog").count() >= 8);
    let human = text(&e.run(&["models", "list"]).stdout);
    assert!(human.contains("tiny-Q4_K_M") && human.contains("llama") && human.contains("Available to download") && human.contains("[recommended]"), "{human}");

    assert!(e.run(&["models", "verify"]).status.success());
    // A byte flipped on disk is caught.
    let mut bytes = std::fs::read(&file).unwrap();
    let n = bytes.len() - 1;
    bytes[n] ^= 1;
    std::fs::write(&file, bytes).unwrap();
    let out = e.run(&["models", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("BROKEN"), "{}", text(&out.stdout));

    let out = e.run(&["models", "rm", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!file.exists());
}

#[test]
fn a_download_killed_midway_resumes_and_fetches_only_the_rest() {
    let size = std::fs::metadata(understudy_testkit::tiny_gguf()).unwrap().len();
    let e = env(Some(250_000)); // one connection for a file this small: about 4 s in all
    let mut child = e.cmd(&["models", "pull", "--json", "test-org/Tiny-GGUF/tiny-Q4_K_M.gguf"]).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    loop {
        let line: serde_json::Value = serde_json::from_str(&lines.next().expect("progress before the end").unwrap()).unwrap();
        assert_eq!(line["type"], "progress", "finished before it could be killed: {line}");
        if line["done"].as_u64().unwrap() * 4 > size {
            break;
        }
    }
    Command::new("kill").args(["-9", &child.id().to_string()]).status().unwrap();
    child.wait().unwrap();
    let part = e.models().join("tiny-Q4_K_M.gguf.part");
    assert!(part.exists() && e.models().join("tiny-Q4_K_M.gguf.part.json").exists(), "the partial download and its sidecar stay");
    assert!(!e.models().join("tiny-Q4_K_M.gguf").exists());
    let before = e.mirror.served();

    let out = e.run(&["models", "pull", "--json", "test-org/Tiny-GGUF/tiny-Q4_K_M.gguf"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let done = json_lines(&out).pop().unwrap();
    // What was written and recorded before the kill is kept (the sidecar lags the last write
    // by at most a flush interval), and only the rest is fetched.
    let resumed = done["resumed_bytes"].as_u64().unwrap();
    assert!(resumed >= size / 8, "{done}");
    assert_eq!(done["verified"], true);
    let fetched_again = e.mirror.served() - before;
    assert!(fetched_again <= size - resumed + 64 * 1024, "the resume fetched {fetched_again} of {size} bytes, {resumed} were kept");
    assert_eq!(std::fs::read(e.models().join("tiny-Q4_K_M.gguf")).unwrap(), std::fs::read(understudy_testkit::tiny_gguf()).unwrap());
    assert!(!part.exists());
}

#[test]
fn bad_ids_and_files_that_are_not_models_are_refused() {
    let e = env(None);
    let out = e.run(&["models", "pull", "no-such-model"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("neither a catalog id"), "{}", text(&out.stderr));
    let out = e.run(&["models", "pull", "test-org/Tiny-GGUF/../../etc/passwd.gguf"]);
    assert_eq!(out.status.code(), Some(2));
    let out = e.run(&["models", "pull", "test-org/Tiny-GGUF/missing.gguf"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("404"), "{}", text(&out.stderr));
    // Downloaded and hash-checked, but not a GGUF: deleted, never offered.
    let out = e.run(&["models", "pull", "test-org/Tiny-GGUF/junk-Q8_0.gguf"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("not a usable model"), "{}", text(&out.stderr));
    assert!(!e.models().join("junk-Q8_0.gguf").exists());

    let junk = e.dir.path().join("hub/test-org/Tiny-GGUF/junk-Q8_0.gguf");
    let out = e.run(&["models", "import", junk.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("junk-Q8_0.gguf"), "{}", text(&out.stderr));
}

#[test]
fn import_scan_and_search() {
    let e = env(None);
    let mine = e.dir.path().join("elsewhere/mine.gguf");
    std::fs::create_dir_all(mine.parent().unwrap()).unwrap();
    std::fs::copy(understudy_testkit::tiny_gguf(), &mine).unwrap();
    let out = e.run(&["models", "import", mine.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("used in place"));
    assert!(!e.models().join("mine.gguf").exists(), "not copied");

    // LM Studio's folder in this HOME.
    let lms = e.dir.path().join("home/.lmstudio/models/pub/Tiny-GGUF/tiny.gguf");
    std::fs::create_dir_all(lms.parent().unwrap()).unwrap();
    std::fs::copy(understudy_testkit::tiny_gguf(), &lms).unwrap();
    let out = e.run(&["models", "scan", "--json"]);
    let found = json_lines(&out);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!((found[0]["origin"].as_str(), found[0]["name"].as_str()), (Some("lm-studio"), Some("pub/Tiny-GGUF/tiny.gguf")));

    let list = json_lines(&e.run(&["models", "list", "--json"]));
    let sources: Vec<&str> = list.iter().filter(|l| l["kind"] == "model").map(|l| l["source"].as_str().unwrap()).collect();
    assert_eq!(sources, ["imported", "lm-studio"]);

    let out = e.run(&["models", "search", "tiny"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("test-org/Tiny-GGUF"), "{}", text(&out.stdout));
    // A repository lists its files with quantizations, ready for `pull`.
    let out = e.run(&["models", "search", "test-org/Tiny-GGUF"]);
    let listing = text(&out.stdout);
    assert!(listing.contains("Q4_K_M") && listing.contains("test-org/Tiny-GGUF/tiny-Q4_K_M.gguf") && listing.contains("Q8_0"), "{listing}");
}

#[test]
fn a_hundred_kills_during_downloads_never_leave_a_broken_model() {
    let e = env(Some(400_000));
    let final_file = e.models().join("tiny-Q4_K_M.gguf");
    let mut rng = 0x2545_F491_u64 ^ u64::from(std::process::id());
    for _ in 0..100 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let mut child = e.cmd(&["models", "pull", "test-org/Tiny-GGUF/tiny-Q4_K_M.gguf"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20 + rng % 400));
        let _ = child.kill();
        child.wait().unwrap();
        if final_file.exists() {
            // Only ever complete and verified under the final name.
            assert_eq!(std::fs::read(&final_file).unwrap(), std::fs::read(understudy_testkit::tiny_gguf()).unwrap());
            std::fs::remove_file(&final_file).unwrap();
            let _ = std::fs::remove_file(e.models().join("tiny-Q4_K_M.gguf.sha256"));
        }
    }
    let out = e.run(&["models", "pull", "--json", "test-org/Tiny-GGUF/tiny-Q4_K_M.gguf"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(json_lines(&out).pop().unwrap()["verified"], true);
    assert_eq!(std::fs::read(&final_file).unwrap(), std::fs::read(understudy_testkit::tiny_gguf()).unwrap());
    assert!(e.run(&["models", "verify"]).status.success());
}

#[test]
fn downloads_and_search_go_through_the_proxy_the_environment_names() {
    // HF_ENDPOINT names a host that does not resolve; only the proxy (the mirror, which answers
    // absolute-form requests like a forward proxy would pass them on) can serve it.
    let e = env(None);
    let run = |args: &[&str]| {
        e.cmd(args)
            .env("HF_ENDPOINT", "http://hub.invalid")
            .env("HTTP_PROXY", e.mirror.endpoint())
            .env("http_proxy", e.mirror.endpoint())
            .env_remove("NO_PROXY")
            .env_remove("no_proxy")
            .output()
            .unwrap()
    };
    let out = run(&["models", "pull", "--json", "test-org/Tiny-GGUF/tiny-Q4_K_M.gguf"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(json_lines(&out).pop().unwrap()["verified"], true);
    let out = run(&["models", "search", "tiny"]);
    assert!(text(&out.stdout).contains("test-org/Tiny-GGUF"), "{}{}", text(&out.stdout), text(&out.stderr));
    // Without the proxy the same endpoint cannot be reached: the test above proved the proxy.
    let out = e.cmd(&["models", "search", "tiny"]).env("HF_ENDPOINT", "http://hub.invalid").env_remove("HTTP_PROXY").env_remove("http_proxy").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
}

#[test]
fn a_file_without_a_known_sha256_is_refused_unless_allowed_and_listed_as_not_verified() {
    let e = env_with(None, &["tiny-Q4_K_M.gguf"]);
    let id = "test-org/Tiny-GGUF/tiny-Q4_K_M.gguf";
    let before = e.mirror.served();
    let out = e.run(&["models", "pull", id]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("cannot be verified") && text(&out.stderr).contains("--allow-unverified"), "{}", text(&out.stderr));
    assert!(e.mirror.served() - before <= 1, "refused before the download: {} bytes served", e.mirror.served() - before);
    let left: Vec<_> = std::fs::read_dir(e.models()).map(|d| d.flatten().map(|f| f.file_name()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "nothing kept: {left:?}");
    let out = e.run(&["models", "pull", "--json", id]);
    assert_eq!(json_lines(&out).pop().unwrap()["type"], "unverified");

    let out = e.run(&["models", "pull", "--json", "--allow-unverified", id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let done = json_lines(&out).pop().unwrap();
    assert_eq!((done["type"].as_str(), done["verified"].as_bool()), (Some("done"), Some(false)), "{done}");
    let lines = json_lines(&e.run(&["models", "list", "--json"]));
    let model = lines.iter().find(|l| l["kind"] == "model").unwrap();
    assert_eq!(model["verified"], false, "{model}");
    let human = text(&e.run(&["models", "list"]).stdout);
    assert!(human.contains("not verified"), "{human}");
}

#[test]
fn names_that_leave_the_models_dir_are_refused() {
    let e = env(None);
    let victim = e.dir.path().join("victim.gguf");
    std::fs::write(&victim, "keep me").unwrap();
    std::fs::create_dir_all(e.models()).unwrap();
    for name in ["../victim.gguf", "../../victim.gguf", victim.to_str().unwrap(), "/etc/passwd", "data/../victim.gguf"] {
        let out = e.run(&["models", "rm", name]);
        assert_eq!(out.status.code(), Some(1), "rm {name}: {}", text(&out.stdout));
    }
    for id in ["test-org/Tiny-GGUF/../victim.gguf", "test-org/Tiny-GGUF/..", "test-org/Tiny-GGUF//etc/passwd.gguf"] {
        let out = e.run(&["models", "pull", id]);
        assert_eq!(out.status.code(), Some(2), "pull {id}: {}", text(&out.stderr));
    }
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
    assert!(std::fs::read_dir(e.models()).unwrap().next().is_none(), "nothing written into the models dir");
}

#[cfg(unix)]
#[test]
fn data_dir_logs_and_downloads_are_owner_only_under_umask_000() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).permissions().mode() & 0o777;
    let e = env(None);
    let out = e.run_with_umask_000(&["models", "pull", "test-org/Tiny-GGUF/tiny-Q4_K_M.gguf"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let data = e.dir.path().join("data");
    assert_eq!(mode(&data), 0o700, "data dir");
    assert_eq!(mode(&data.join("logs")), 0o700, "logs dir");
    let logs: Vec<_> = std::fs::read_dir(data.join("logs")).unwrap().map(|f| f.unwrap().path()).collect();
    assert!(!logs.is_empty(), "a log file was written");
    for f in logs.iter().chain([&e.models().join("tiny-Q4_K_M.gguf"), &e.models().join("tiny-Q4_K_M.gguf.sha256")]) {
        assert_eq!(mode(f), 0o600, "{}", f.display());
    }
}
