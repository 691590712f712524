#![allow(clippy::unwrap_used)]
//! The binary as users run it: exit codes and messages of design.md section 2.

use std::path::Path;
use std::process::{Command, Output};

fn understudy(args: &[&str], config: Option<&str>) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    if let Some(text) = config {
        std::fs::write(&cfg, text).unwrap();
    }
    Command::new(env!("CARGO_BIN_EXE_understudy"))
        .args(args)
        .env_remove("OPENAI_API_KEY")
        .env("UNDERSTUDY_CONFIG", &cfg)
        .env("UNDERSTUDY_DATA_DIR", dir.path().join("data"))
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn version_and_help() {
    let out = understudy(&["--version"], None);
    assert!(out.status.success());
    assert_eq!(text(&out.stdout).trim(), format!("understudy {}", env!("CARGO_PKG_VERSION")));
    let out = understudy(&["--help"], None);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for cmd in ["chat", "serve", "status", "models", "bench"] {
        assert!(help.contains(cmd), "help lacks {cmd}: {help}");
    }
    let out = understudy(&["models", "--help"], None);
    for cmd in ["list", "search", "pull", "import", "scan", "verify", "rm"] {
        assert!(text(&out.stdout).contains(cmd), "models help lacks {cmd}");
    }
}

#[test]
fn usage_errors_exit_2() {
    for args in [&["frobnicate"][..], &["serve", "--listen", "not-an-address"], &["models", "pull"], &[]] {
        let out = understudy(args, Some(""));
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out.stderr));
    }
}

#[test]
fn a_bad_config_exits_2_naming_file_line_and_key() {
    let out = understudy(&["status"], Some("mode = \"auto\"\n[failover]\nstal_timeout = \"3s\"\n"));
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("config.toml:3"), "{err}");
    assert!(err.contains("failover.stal_timeout"), "{err}");
    assert!(err.contains("unknown field"), "{err}");
}

#[test]
fn a_literal_key_in_the_config_is_refused_and_never_printed() {
    let out = understudy(&["status"], Some("[[providers]]\nid = \"openai\"\napi_key = \"sk-live-TOPSECRET\"\n"));
    assert_eq!(out.status.code(), Some(2));
    let all = text(&out.stderr) + &text(&out.stdout);
    assert!(all.contains("providers[0].api_key"), "{all}");
    assert!(!all.contains("TOPSECRET"), "{all}");
}

#[test]
fn logs_go_to_the_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_understudy"))
        .args(["status"])
        .env("UNDERSTUDY_CONFIG", dir.path().join("none.toml"))
        .env("UNDERSTUDY_DATA_DIR", dir.path())
        .env("UNDERSTUDY_LOG", "debug")
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(2), "an explicit missing config is a config error");
    let logs: Vec<_> = std::fs::read_dir(Path::new(dir.path()).join("logs")).unwrap().collect();
    assert!(!logs.is_empty(), "no log file written");
}

#[test]
fn worker_speaks_the_engine_protocol() {
    use std::io::Write;
    let mut child =
        Command::new(env!("CARGO_BIN_EXE_understudy")).arg("worker").stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, r#"{{"type":"load","path":"/no/such.gguf","context":512,"threads":1}}"#).unwrap();
    writeln!(stdin, r#"{{"type":"stats"}}"#).unwrap();
    writeln!(stdin, "not json").unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let lines: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[0].contains(r#""type":"error""#) && lines[0].contains("/no/such.gguf"), "{}", lines[0]);
    assert!(lines[1].contains(r#""type":"stats""#), "{}", lines[1]);
    assert!(lines[2].contains("malformed request"), "{}", lines[2]);
}

#[test]
fn bench_reports_speed_as_json_and_names_a_bad_file() {
    let tiny = understudy_testkit::tiny_gguf();
    let out = understudy(&["bench", "--json", "--threads", "1", "--model", tiny.to_str().unwrap()], Some(""));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in ["prompt_tokens_per_s", "gen_tokens_per_s", "load_ms", "peak_rss_mb"] {
        assert!(report[key].as_f64().is_some_and(|v| v > 0.0), "{key} in {report}");
    }
    assert_eq!(report["threads"], 1);
    let out = understudy(&["bench", "--model", "/etc/hostname"], Some(""));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("/etc/hostname"), "{}", text(&out.stderr));
    let out = understudy(&["bench"], Some(""));
    assert_eq!(out.status.code(), Some(2), "no model configured is a usage error");
}

#[test]
fn chat_with_the_local_provider_streams_an_answer() {
    let tiny = understudy_testkit::tiny_gguf();
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_understudy"))
            .args(args)
            .env_remove("UNDERSTUDY_CONFIG")
            .env("XDG_CONFIG_HOME", dir.path())
            .env("UNDERSTUDY_DATA_DIR", dir.path())
            .env("UNDERSTUDY_LOCAL_MODEL", &tiny)
            .output()
            .unwrap()
    };
    let out = run(&["chat", "--provider", "local", "--json", "hello there"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let name = tiny.file_stem().unwrap().to_str().unwrap();
    assert!(text(&out.stderr).contains(&format!("answering with local ({name})")), "{}", text(&out.stderr));
    let lines: Vec<serde_json::Value> = text(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let done = lines.last().unwrap();
    assert_eq!(done["type"], "done");
    assert_eq!(done["provider"], "local");
    assert!(done["failover"].is_null(), "asked for local: not a failover");
    assert!(done["usage"]["completion_tokens"].as_u64().unwrap() > 0);
    assert_eq!((lines[0]["type"].as_str(), lines[0]["provider"].as_str()), (Some("started"), Some("local")));
    assert!(lines.len() >= 3 && lines[1..lines.len() - 1].iter().all(|l| l["type"] == "token"));
    let out = run(&["chat", "--provider", "local"]);
    assert_eq!(out.status.code(), Some(2), "empty stdin is a usage error");
}

#[test]
fn chat_streams_from_the_cloud_provider_and_explains_failures() {
    let mock = understudy_testkit::Llmock::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str], key: Option<&str>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_understudy"));
        c.args(args)
            .env_remove("UNDERSTUDY_CONFIG")
            .env_remove("UNDERSTUDY_LOCAL_MODEL")
            .env("XDG_CONFIG_HOME", dir.path())
            .env("UNDERSTUDY_DATA_DIR", dir.path())
            .env("OPENAI_BASE_URL", mock.base_url());
        match key {
            Some(k) => c.env("OPENAI_API_KEY", k),
            None => c.env_remove("OPENAI_API_KEY"),
        };
        c.output().unwrap()
    };
    let out = run(&["chat", "hello"], Some("sk-cli-TOPSECRET"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("Simulated success"), "{}", text(&out.stdout));
    assert!(text(&out.stderr).contains("answering with openai (gpt-4o-mini)"), "{}", text(&out.stderr));

    let out = run(&["chat", "--json", "hello"], Some("sk-cli-TOPSECRET"));
    let last: serde_json::Value = serde_json::from_str(text(&out.stdout).lines().last().unwrap()).unwrap();
    assert_eq!((last["type"].as_str(), last["provider"].as_str(), last["finish_reason"].as_str()), (Some("done"), Some("openai"), Some("stop")));

    let queue = |behaviors: &str| {
        reqwest::blocking::Client::new().post(mock.admin_url("scenario")).body(format!("{{\"behaviors\": {behaviors}}}")).send().unwrap();
    };
    queue(r#"[{"type": "fail", "status": 401}]"#);
    let out = run(&["chat", "hello"], Some("sk-cli-TOPSECRET"));
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("OpenAI rejected the API key (401)"), "{err}");
    assert!(!err.contains("TOPSECRET"), "{err}");

    queue(r#"[{"type": "stream_fault", "kind": "truncate", "after_chunks": 2}]"#);
    let out = run(&["chat", "hello"], Some("sk-cli-TOPSECRET"));
    assert_eq!(out.status.code(), Some(1), "a truncated answer is a failure, not a short success");
    assert!(text(&out.stderr).contains("ended early"), "{}", text(&out.stderr));

    let out = run(&["chat", "hello"], None);
    assert_eq!(out.status.code(), Some(2), "no key and no offline model is a config error");
    assert!(text(&out.stderr).contains("No API key is set for OpenAI"), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("set OPENAI_API_KEY"), "{}", text(&out.stderr));
    let out = run(&["chat", "--provider", "nope", "hello"], Some("k"));
    assert_eq!(out.status.code(), Some(2));

    // A key saved by the app (here its private-file fallback) serves the CLI too.
    understudy_store::Secrets::file_only(dir.path()).set("openai", "sk-cli-STOREDKEY").unwrap();
    let out = run(&["chat", "hello"], None);
    assert!(out.status.success(), "without OPENAI_API_KEY the stored key answers: {}", text(&out.stderr));
}

#[test]
fn chat_fails_over_to_the_offline_model_when_openai_is_unreachable() {
    let tiny = understudy_testkit::tiny_gguf();
    let dir = tempfile::tempdir().unwrap();
    // A port nobody listens on: connection refused, the commonest outage.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    std::fs::write(dir.path().join("config.toml"), "[failover]\nstatus_page = \"\"\n[local]\ncontext = 512\nthreads = 1\n").unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_understudy"))
            .args(args)
            .env("UNDERSTUDY_CONFIG", dir.path().join("config.toml"))
            .env("UNDERSTUDY_DATA_DIR", dir.path())
            .env("UNDERSTUDY_LOCAL_MODEL", &tiny)
            .env("OPENAI_BASE_URL", format!("http://127.0.0.1:{dead}/v1"))
            .env("OPENAI_API_KEY", "sk-test-unused")
            .output()
            .unwrap()
    };
    let out = run(&["chat", "--json", "hello"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("answering with local (") && err.contains("because"), "{err}");
    let done: serde_json::Value = serde_json::from_str(text(&out.stdout).lines().last().unwrap()).unwrap();
    assert_eq!((done["type"].as_str(), done["provider"].as_str()), (Some("done"), Some("local")));
    assert!(done["failover"].as_str().is_some_and(|f| !f.is_empty()), "{done}");

    // Pinned to OpenAI, the same outage is an error naming it (exit 1), not a silent failover.
    let out = run(&["chat", "--provider", "openai", "hello"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("OpenAI"), "{}", text(&out.stderr));
}

/// Two cloud providers (two llmock upstreams) and a third whose base URL moved away from where
/// its key was saved: `status` lists every one in chain order, `chat --provider` pins one.
#[test]
fn status_lists_every_provider_and_chat_pins_one() {
    use understudy_core::providers::BoundKey;
    let (a, b) = (understudy_testkit::Llmock::start(&[]), understudy_testkit::Llmock::start(&[]));
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[failover]\nstatus_page = \"\"\n[[providers]]\nid = \"openai\"\nbase_url = \"{}\"\n[[providers]]\nid = \"groq\"\nbase_url = \"{}\"\nmodel = \"llama-3.3-70b\"\n[[providers]]\nid = \"mistral\"\nbase_url = \"http://127.0.0.1:9/v1\"\n",
        a.base_url(),
        b.base_url()
    );
    std::fs::write(dir.path().join("config.toml"), config).unwrap();
    let secrets = understudy_store::Secrets::file_only(dir.path());
    secrets.set("openai", &BoundKey::new(&a.base_url(), "sk-cli-A0123456789").unwrap().to_stored()).unwrap();
    secrets.set("groq", &BoundKey::new(&b.base_url(), "gsk-cli-B0123456789").unwrap().to_stored()).unwrap();
    secrets.set("mistral", &BoundKey::new("https://api.mistral.ai/v1", "mk-cli-C0123456789").unwrap().to_stored()).unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_understudy"))
            .args(args)
            .env("UNDERSTUDY_CONFIG", dir.path().join("config.toml"))
            .env("UNDERSTUDY_DATA_DIR", dir.path())
            .env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent")
            .env_remove("OPENAI_API_KEY")
            .env_remove("OPENAI_BASE_URL")
            .env_remove("UNDERSTUDY_LOCAL_MODEL")
            .output()
            .unwrap()
    };
    let requests = |m: &understudy_testkit::Llmock| {
        let v: serde_json::Value = reqwest::blocking::get(m.admin_url("requests")).unwrap().json().unwrap();
        v.get("requests").unwrap_or(&v).as_array().map_or(0, Vec::len)
    };

    let out = run(&["status"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    let at = |id: &str| shown.find(&format!("\n{id} ")).unwrap_or_else(|| panic!("{id} listed: {shown}"));
    assert!(at("openai") < at("groq") && at("groq") < at("mistral"), "in chain order: {shown}");
    assert!(shown.contains("Groq · llama-3.3-70b"), "{shown}");
    assert!(shown.contains("a key is needed for this host"), "the moved provider says why it is skipped: {shown}");
    assert!(!shown.contains("mk-cli"), "{shown}");

    let (before_a, before_b) = (requests(&a), requests(&b));
    let out = run(&["chat", "--provider", "groq", "hello"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("answering with groq (llama-3.3-70b)"), "{}", text(&out.stderr));
    assert_eq!((requests(&a) - before_a, requests(&b) - before_b), (0, 1), "only the pinned provider was asked");

    let out = run(&["chat", "--provider", "mistral", "hello"]);
    assert_eq!(out.status.code(), Some(2), "a key for another host is a setup problem");
    assert!(text(&out.stderr).contains("not sent to http://127.0.0.1:9"), "{}", text(&out.stderr));
}
