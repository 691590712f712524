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
    _dir: tempfile::TempDir,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(upstream: &str, token: &str) -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    std::fs::write(&cfg, "[failover]\nstatus_page = \"\"\n[local]\ncontext = 512\nthreads = 1\n").unwrap();
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_understudy"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--token", token])
        .env("UNDERSTUDY_CONFIG", &cfg)
        .env("UNDERSTUDY_DATA_DIR", dir.path().join("data"))
        .env("OPENAI_BASE_URL", upstream)
        .env("OPENAI_API_KEY", "sk-test-GATEWAYUPSTREAM0123")
        .env("UNDERSTUDY_LOCAL_MODEL", understudy_testkit::tiny_gguf())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t0.elapsed() < Duration::from_secs(20), "the gateway did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Gateway { child, port, _dir: dir }
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
    assert_eq!(status.code(), Some(0));
    assert!(std::net::TcpStream::connect(("127.0.0.1", gw.port)).is_err(), "no longer listening");
}

#[test]
fn serve_refuses_a_non_loopback_address() {
    let out = Command::new(env!("CARGO_BIN_EXE_understudy")).args(["serve", "--listen", "0.0.0.0:8321"]).env("UNDERSTUDY_DATA_DIR", std::env::temp_dir()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback only"));
}
