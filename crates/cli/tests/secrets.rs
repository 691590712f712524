#![allow(clippy::unwrap_used)]
//! The API key never leaks: after a session of answers, an upstream that rejects the key, the
//! gateway, `status --json` and a failing local engine, all at the most verbose log level, the
//! key is in no output, no log file and no other file of the data dir except the secret store.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const KEY: &str = "sk-proj-UNDERSTUDYLEAKCHECK0123456789abcdef";

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[test]
fn the_key_is_in_no_output_log_or_file_after_a_full_session() {
    let mock = understudy_testkit::Llmock::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    std::fs::write(
        dir.path().join("config.toml"),
        format!("[failover]\nstatus_page = \"\"\n[local]\ncontext = 512\nthreads = 1\n[gateway]\nlisten = \"127.0.0.1:{port}\"\n"),
    )
    .unwrap();
    understudy_store::Secrets::file_only(&data).set("openai", KEY).unwrap();
    let cmd = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_understudy"));
        c.args(args)
            .env("UNDERSTUDY_CONFIG", dir.path().join("config.toml"))
            .env("UNDERSTUDY_DATA_DIR", &data)
            .env("UNDERSTUDY_LOG", "trace")
            .env("RUST_BACKTRACE", "1")
            .env("OPENAI_BASE_URL", mock.base_url())
            .env_remove("OPENAI_API_KEY")
            .env("UNDERSTUDY_LOCAL_MODEL", understudy_testkit::tiny_gguf());
        c
    };
    let scenario = |b: &str| {
        reqwest::blocking::Client::new().post(mock.admin_url("scenario")).body(format!("{{\"behaviors\": {b}}}")).send().unwrap();
    };
    let mut outputs: Vec<Output> = Vec::new();
    outputs.push(cmd(&["chat", "hello"]).output().unwrap());
    assert!(outputs[0].status.success(), "{}", String::from_utf8_lossy(&outputs[0].stderr));
    // The upstream rejects the key: the error names the problem, not the key.
    scenario(r#"[{"type": "fail", "status": 401, "message": "Incorrect API key provided: sk-proj-********cdef", "times": 3}]"#);
    outputs.push(cmd(&["chat", "--provider", "openai", "hello"]).output().unwrap());
    outputs.push(cmd(&["chat", "--json", "hello"]).output().unwrap());
    outputs.push(cmd(&["status", "--json"]).output().unwrap());
    // The gateway, asked with and without a token, then status through it, then SIGTERM.
    let serve = cmd(&["serve"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let http = reqwest::blocking::Client::new();
    let body = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#;
    let answer = http
        .post(format!("http://127.0.0.1:{port}/v1/chat/completions"))
        .bearer_auth("client-token")
        .body(body)
        .header("content-type", "application/json")
        .send()
        .unwrap()
        .text()
        .unwrap();
    let models = http.get(format!("http://127.0.0.1:{port}/v1/models")).send().unwrap().text().unwrap();
    outputs.push(cmd(&["status", "--json"]).output().unwrap());
    Command::new("kill").args(["-TERM", &serve.id().to_string()]).status().unwrap();
    outputs.push(serve.wait_with_output().unwrap());
    // A local engine that cannot load its model (a crash-like failure path with a backtrace env).
    let bad = dir.path().join("bad.gguf");
    std::fs::write(&bad, "not a model").unwrap();
    outputs.push(cmd(&["chat", "--provider", "local", "hi"]).env("UNDERSTUDY_LOCAL_MODEL", &bad).output().unwrap());

    let mut seen = String::new();
    for o in &outputs {
        seen.push_str(&String::from_utf8_lossy(&o.stdout));
        seen.push_str(&String::from_utf8_lossy(&o.stderr));
    }
    seen.push_str(&answer);
    seen.push_str(&models);
    assert!(seen.contains("TRACE") || seen.contains("DEBUG"), "the most verbose logs were on");
    assert!(seen.contains("rejected the API key (401)"), "the 401 was reported: {seen}");
    assert!(!seen.contains(KEY) && !seen.contains(&KEY[8..30]), "the key leaked into an output");

    let mut files = Vec::new();
    files_under(dir.path(), &mut files);
    let mut checked = 0;
    for f in files {
        if f == data.join("secrets.json") {
            continue; // the secret store itself (0600), where the key belongs
        }
        let bytes = std::fs::read(&f).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(KEY) && !text.contains(&KEY[8..30]), "the key is in {}", f.display());
        checked += 1;
    }
    assert!(checked >= 2, "log files were written and checked");
}
