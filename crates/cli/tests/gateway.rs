#![allow(clippy::unwrap_used)]
//! `understudy serve` against the official openai Python SDK (pinned in xtask/py/requirements.txt)
//! with llmock as the upstream and the tiny GGUF as the offline model; and a graceful SIGTERM.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Gateway {
    child: std::process::Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(upstream: &str, token: &str) -> Gateway {
    start_with(upstream, token, "")
}

/// `failover` adds lines to the config's `[failover]` table. The token goes in the environment
/// (never argv, where `ps` shows it).
fn start_with(upstream: &str, token: &str, failover: &str) -> Gateway {
    spawn(upstream, failover, "", |c| {
        c.env("UNDERSTUDY_GATEWAY_TOKEN", token);
    })
}

/// `gateway` adds lines to the config's `[gateway]` table; `more` adds to the command.
fn spawn(upstream: &str, failover: &str, gateway: &str, more: impl FnOnce(&mut Command)) -> Gateway {
    spawn_with_context(upstream, failover, gateway, 512, more)
}

/// [`spawn`] with the offline model's context (tokens).
fn spawn_with_context(upstream: &str, failover: &str, gateway: &str, context: u32, more: impl FnOnce(&mut Command)) -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    let port = free_port();
    std::fs::write(
        &cfg,
        format!("[failover]\nstatus_page = \"\"\n{failover}\n[local]\ncontext = {context}\nthreads = 1\n[gateway]\nlisten = \"127.0.0.1:{port}\"\n{gateway}\n"),
    )
    .unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_understudy"));
    command
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env_remove("UNDERSTUDY_GATEWAY_TOKEN")
        .env("UNDERSTUDY_LOCAL_MODEL", understudy_testkit::tiny_gguf());
    more(&mut command);
    let child = command
        .env("UNDERSTUDY_CONFIG", &cfg)
        .env("UNDERSTUDY_DATA_DIR", dir.path().join("data"))
        .env("OPENAI_BASE_URL", upstream)
        .env("OPENAI_API_KEY", "sk-test-GATEWAYUPSTREAM0123")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("stderr.log")).unwrap())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t0.elapsed() < Duration::from_secs(20), "the gateway did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Gateway { child, port, dir }
}

#[test]
fn the_openai_sdk_works_through_the_gateway() {
    let mock = understudy_testkit::Llmock::start(&[]);
    let gw = start(&mock.base_url(), "gw-token-123");
    let out = Command::new(understudy_testkit::venv_python())
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/gateway_sdk.py"))
        .args([format!("http://127.0.0.1:{}/v1", gw.port), mock.admin_url("").trim_end_matches('/').to_string(), "gw-token-123".into()])
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    assert!(out.status.success(), "{}\n{}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stdout).contains("gateway SDK suite: ok"));
}

/// llmock with the response headers OpenAI sends that it does not: a proxy in front of it adds
/// `x-request-id: req_shim_<n>` (one per request) and `openai-processing-ms` to each response
/// head, and `connection: close` so that each connection carries one request. Passes on the
/// rest byte for byte as it comes.
fn with_request_ids(mock: &understudy_testkit::Llmock) -> String {
    use std::io::{Read, Write};
    use std::net::{Shutdown, TcpListener, TcpStream};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let port = mock.port;
    std::thread::spawn(move || {
        for (n, client) in listener.incoming().enumerate() {
            let Ok(mut client) = client else { continue };
            let Ok(mut server) = TcpStream::connect(("127.0.0.1", port)) else { continue };
            let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c2, &mut s2);
                let _ = s2.shutdown(Shutdown::Write);
            });
            std::thread::spawn(move || {
                let (mut head, mut buf) = (Vec::new(), [0u8; 8192]);
                let end = loop {
                    match server.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(k) => head.extend_from_slice(&buf[..k]),
                    }
                    if let Some(end) = head.windows(2).position(|w| w == b"\r\n") {
                        break end + 2;
                    }
                };
                let added = format!("x-request-id: req_shim_{n}\r\nopenai-processing-ms: 1\r\nconnection: close\r\n");
                let _ = client.write_all(&[&head[..end], added.as_bytes(), &head[end..]].concat());
                let _ = std::io::copy(&mut server, &mut client);
                let _ = client.shutdown(Shutdown::Write);
            });
        }
    });
    format!("http://{addr}/v1")
}

/// Item 1 and 2 of the gateway issue with a real SDK: every field a client sets reaches OpenAI
/// (sampling, JSON mode, structured outputs, tools, a tool-result turn, images, logprobs,
/// streamed and not), tool calls come back, and during an outage the offline model answers what
/// it can honour and refuses the rest in words (gateway_fidelity.py). The upstream's request id
/// and rate-limit headers reach the SDK (llmock's own `x-ratelimit-*` with `--rpm` / `--tpm`,
/// the request id from [`with_request_ids`]).
#[test]
fn requests_pass_through_unchanged_and_the_offline_model_refuses_what_it_cannot_honour() {
    let mock = understudy_testkit::Llmock::start(&["--rpm", "100000", "--tpm", "1000000000"]);
    let gw = start(&with_request_ids(&mock), "gw-token-123");
    let out = Command::new(understudy_testkit::venv_python())
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/gateway_fidelity.py"))
        .args([format!("http://127.0.0.1:{}/v1", gw.port), mock.admin_url("").trim_end_matches('/').to_string(), "gw-token-123".into()])
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    assert!(out.status.success(), "{}\n{}\n{}", text(&out.stdout), text(&out.stderr), said(&gw));
    assert!(text(&out.stdout).contains("gateway fidelity suite: ok"));
    eprintln!("{}", text(&out.stdout));
}

/// Tools offline with the SDK: an offline model whose chat template has tools (the tiny GGUF
/// with Qwen 2.5's real template) answers `tool_choice` required or named with OpenAI tool
/// calls during an outage and as `local/<id>`, and takes a tool-result turn (gateway_tools.py).
/// The ChatML template's refusal is checked by gateway_fidelity.py above.
#[test]
fn the_offline_model_answers_tools_through_the_sdk_where_its_template_has_them() {
    let mock = understudy_testkit::Llmock::start(&[]);
    let model = understudy_testkit::tiny_gguf_with_template("qwen2.5");
    // Qwen's tool instructions spelled letter by letter by the tiny vocabulary need the room.
    let gw = spawn_with_context(&mock.base_url(), "", "", 2048, |c| {
        c.env("UNDERSTUDY_GATEWAY_TOKEN", "gw-token-123").env("UNDERSTUDY_LOCAL_MODEL", &model);
    });
    let out = Command::new(understudy_testkit::venv_python())
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/gateway_tools.py"))
        .args([format!("http://127.0.0.1:{}/v1", gw.port), mock.admin_url("").trim_end_matches('/').to_string(), "gw-token-123".into()])
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    assert!(out.status.success(), "{}\n{}\n{}", text(&out.stdout), text(&out.stderr), said(&gw));
    assert!(text(&out.stdout).contains("gateway tools suite: ok"));
    eprintln!("{}", text(&out.stdout));
}

/// The same checks with the Node SDK (npm `openai`, a dev dependency of ui/ that
/// `cargo xtask setup` installs) as the client: gateway_fidelity.mjs.
#[test]
fn the_node_sdk_s_requests_pass_through_unchanged_too() {
    let ui = concat!(env!("CARGO_MANIFEST_DIR"), "/../../ui");
    assert!(
        std::path::Path::new(ui).join("node_modules/openai/package.json").exists(),
        "the npm openai package is missing from ui/node_modules: run `cargo xtask setup` (or `npm ci` in ui/)"
    );
    let mock = understudy_testkit::Llmock::start(&[]);
    let gw = start(&mock.base_url(), "gw-token-123");
    let out = Command::new("node")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/gateway_fidelity.mjs"))
        .args([format!("http://127.0.0.1:{}/v1", gw.port), mock.admin_url("").trim_end_matches('/').to_string(), "gw-token-123".into(), ui.into()])
        .output()
        .expect("node (cargo xtask setup installs it)");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    assert!(out.status.success(), "{}\n{}\n{}", text(&out.stdout), text(&out.stderr), said(&gw));
    assert!(text(&out.stdout).contains("gateway node fidelity suite: ok"));
    eprintln!("{}", text(&out.stdout));
}

#[test]
fn sigterm_stops_the_gateway_cleanly() {
    let mock = understudy_testkit::Llmock::start(&[]);
    let mut gw = start(&mock.base_url(), "t");
    let t0 = Instant::now();
    Command::new("kill").args(["-TERM", &gw.child.id().to_string()]).status().unwrap();
    let status = loop {
        if let Some(s) = gw.child.try_wait().unwrap() {
            break s;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "still running after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    let said = std::fs::read_to_string(gw.dir.path().join("stderr.log")).unwrap();
    assert_eq!(status.code(), Some(0), "killed rather than stopped: {status:?}\n{said}");
    // It stopped serving on its own (the port itself is the OS's to free, and another test may
    // take it at once).
    assert!(said.contains("understudy: gateway stopped"), "{said}");
}

#[test]
fn serve_refuses_a_non_loopback_address() {
    let out = Command::new(env!("CARGO_BIN_EXE_understudy"))
        .args(["serve", "--listen", "0.0.0.0:8321"])
        .env("UNDERSTUDY_DATA_DIR", std::env::temp_dir())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback only"));
}

/// `understudy status` with this config and upstream; `--json` parsed.
fn status(config: &std::path::Path, data: &std::path::Path, upstream: &str, json: bool) -> (serde_json::Value, String) {
    let mut args = vec!["status"];
    if json {
        args.push("--json");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_understudy"))
        .args(&args)
        .env("UNDERSTUDY_CONFIG", config)
        .env("UNDERSTUDY_DATA_DIR", data)
        .env("OPENAI_BASE_URL", upstream)
        .env("OPENAI_API_KEY", "sk-test-GATEWAYUPSTREAM0123")
        .env("UNDERSTUDY_LOCAL_MODEL", understudy_testkit::tiny_gguf())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    (if json { serde_json::from_str(stdout.trim()).unwrap() } else { serde_json::Value::Null }, stdout)
}

#[test]
fn status_probes_when_alone_and_shows_the_gateway_s_view_when_one_runs() {
    let mock = understudy_testkit::Llmock::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    std::fs::write(&cfg, format!("[failover]\nstatus_page = \"\"\n[gateway]\nlisten = \"127.0.0.1:{}\"\n", free_port())).unwrap();

    // No gateway: a probe of its own.
    let (s, _) = status(&cfg, dir.path(), &mock.base_url(), true);
    assert_eq!(s["source"], "a probe just now");
    assert_eq!((s["providers"][0]["id"].as_str(), s["providers"][0]["health"].as_str()), (Some("openai"), Some("healthy")), "{s}");
    assert_eq!(s["providers"][0]["breaker"]["state"], "closed");
    assert_eq!(s["route"], "openai");

    // OpenAI unreachable: one failed probe is "degraded" by the policy (the breaker opens after
    // `consecutive_failures`), with the failure in words.
    let dead = format!("http://127.0.0.1:{}/v1", free_port());
    let (s, _) = status(&cfg, dir.path(), &dead, true);
    let p = &s["providers"][0];
    assert_eq!(p["health"], "degraded", "{s}");
    assert_eq!(p["last_error"], "OpenAI could not be reached", "{s}");
    let (_, text) = status(&cfg, dir.path(), &dead, false);
    assert!(text.contains("openai      degraded") && text.contains("breaker closed") && text.contains("last error: OpenAI could not be reached"), "{text}");

    // A running gateway (token or not) is asked instead, so the CLI sees what it sees.
    let gw = start(&mock.base_url(), "secret-token");
    let gw_cfg = gw.dir.path().join("config.toml");
    let (s, _) = status(&gw_cfg, dir.path(), &dead, true);
    assert_eq!(s["source"], format!("the gateway on 127.0.0.1:{}", gw.port));
    assert_eq!(s["providers"][0]["id"], "openai");
}

/// OpenAI fails with 503 for a while and recovers; a client asks once a second. With the default
/// probe settings (`probe_interval = "60s"`), answers come from OpenAI again within
/// `open_for_max` + 1 s of its recovery: the breaker is probed when its open time ends, not at
/// the next idle probe a minute later.
#[test]
fn answers_return_to_openai_within_open_for_max_of_its_recovery_with_default_probes() {
    let mock = understudy_testkit::Llmock::start(&[]);
    let gw = start_with(&mock.base_url(), "tok", "open_for = \"2s\"\nopen_for_max = \"4s\"");
    let http = reqwest::blocking::Client::new();
    let ask = || {
        let r = http
            .post(format!("http://127.0.0.1:{}/v1/chat/completions", gw.port))
            .bearer_auth("tok")
            .json(&serde_json::json!({ "model": "gpt-4o-mini", "max_tokens": 4, "messages": [{ "role": "user", "content": "hi" }] }))
            .send()
            .unwrap();
        assert!(r.status().is_success(), "{:?}", r.text());
        r.headers()["x-understudy-provider"].to_str().unwrap().to_string()
    };
    let admin = mock.admin_url("scenario");
    // The background probe has seen OpenAI healthy and sleeps its idle minute.
    assert_eq!(ask(), "openai");
    std::thread::sleep(Duration::from_secs(1));
    let outage = serde_json::json!({ "behaviors": [{ "type": "fail", "status": 503, "times": 100_000 }] });
    assert!(http.post(&admin).json(&outage).send().unwrap().status().is_success());
    let t0 = Instant::now();
    let mut local = 0;
    while t0.elapsed() < Duration::from_secs(7) {
        let tick = Instant::now();
        local += usize::from(ask() == "local");
        std::thread::sleep(Duration::from_secs(1).saturating_sub(tick.elapsed()));
    }
    assert!(local >= 5, "answered offline during the outage: {local}");
    assert!(http.delete(&admin).send().unwrap().status().is_success());
    let recovered = Instant::now();
    let back = loop {
        let tick = Instant::now();
        if ask() == "openai" {
            break recovered.elapsed();
        }
        assert!(recovered.elapsed() < Duration::from_secs(30), "still offline 30 s after OpenAI recovered");
        std::thread::sleep(Duration::from_secs(1).saturating_sub(tick.elapsed()));
    };
    eprintln!("answered offline {local} times; back to OpenAI {back:?} after it recovered");
    // open_for_max (4 s) + 1 s.
    assert!(back <= Duration::from_secs(5), "back to OpenAI {back:?} after it recovered");
}

/// A chat request through the gateway with this API key (None: no Authorization); the status.
fn ask_with(port: u16, key: Option<&str>) -> u16 {
    let mut req = reqwest::blocking::Client::new()
        .post(format!("http://127.0.0.1:{port}/v1/chat/completions"))
        .json(&serde_json::json!({ "model": "gpt-4o-mini", "max_tokens": 4, "messages": [{ "role": "user", "content": "hi" }] }));
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    req.send().unwrap().status().as_u16()
}

/// What serve printed so far (it prints before it accepts).
fn said(gw: &Gateway) -> String {
    std::fs::read_to_string(gw.dir.path().join("stderr.log")).unwrap()
}

#[test]
fn serve_takes_its_token_from_a_file_or_the_environment_never_argv() {
    let mock = understudy_testkit::Llmock::start(&[]);
    // --token is gone: a token on the command line is visible to every user in `ps`.
    let out = Command::new(env!("CARGO_BIN_EXE_understudy")).args(["serve", "--token", "x"]).env("UNDERSTUDY_DATA_DIR", std::env::temp_dir()).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));

    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), "from-a-file-0123\n").unwrap();
    let gw = spawn(&mock.base_url(), "", "", |c| {
        c.arg("--token-file").arg(file.path()).env("UNDERSTUDY_GATEWAY_TOKEN", "the-file-wins");
    });
    assert_eq!(ask_with(gw.port, Some("from-a-file-0123")), 200);
    assert_eq!(ask_with(gw.port, Some("the-file-wins")), 401);
    assert_eq!(ask_with(gw.port, None), 401);
    let text = said(&gw);
    assert!(text.contains(&format!("OPENAI_BASE_URL=http://127.0.0.1:{}/v1", gw.port)), "{text}");
    assert!(!text.contains("from-a-file-0123"), "a token the user gave is not echoed: {text}");
    assert!(!text.contains("warning"), "a 0600 token file is fine: {text}");

    // A token file other users can read still works, with a warning that says so.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(file.path(), std::fs::Permissions::from_mode(0o644)).unwrap();
        let gw = spawn(&mock.base_url(), "", "", |c| {
            c.arg("--token-file").arg(file.path());
        });
        assert_eq!(ask_with(gw.port, Some("from-a-file-0123")), 200);
        let text = said(&gw);
        assert!(text.contains("other users can read or change the token file") && text.contains("mode 644"), "{text}");
    }

    let gw = start(&mock.base_url(), "from-the-env-0123");
    assert_eq!(ask_with(gw.port, Some("from-the-env-0123")), 200);
    assert_eq!(ask_with(gw.port, Some("from-the-env-0124")), 401);

    // Neither: a new token for this run, printed as the exact line to use.
    let gw = spawn(&mock.base_url(), "", "", |_| {});
    let text = said(&gw);
    let token = text.lines().find_map(|l| l.trim().strip_prefix("OPENAI_API_KEY=")).unwrap_or_else(|| panic!("{text}")).to_string();
    assert!(token.len() >= 64, "{token}");
    assert_eq!(ask_with(gw.port, Some(&token)), 200);
    assert_eq!(ask_with(gw.port, None), 401);

    // `require_token = false`: no token, and the browser checks still hold.
    let gw = spawn(&mock.base_url(), "", "require_token = false", |_| {});
    assert_eq!(ask_with(gw.port, None), 200);
    let r = reqwest::blocking::Client::new()
        .post(format!("http://127.0.0.1:{}/v1/chat/completions", gw.port))
        .header("content-type", "text/plain")
        .header("origin", "https://evil.example")
        .body(r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#)
        .send()
        .unwrap();
    assert_eq!(r.status(), 403);
}
