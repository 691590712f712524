#![allow(clippy::unwrap_used)]
//! Offline answers from a real instruct model through the real `understudy serve` (issue 19):
//! with OpenAI unreachable and `stall_timeout = "2s"`, a ~2,500-token prompt (seconds of prompt
//! evaluation without a token) and three answers queued behind it all finish with HTTP 200 and
//! text, and the local engine is never killed and started again.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Serve {
    child: std::process::Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    /// What serve logged so far (stderr: the engine's warnings and restarts are logged there).
    fn said(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap()
    }
}

/// `understudy serve` with OpenAI at a port nobody listens on and SmolLM2-135M-Instruct offline.
fn serve_offline() -> Serve {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    let port = free_port();
    std::fs::write(
        &cfg,
        format!("[failover]\nstatus_page = \"\"\nstall_timeout = \"2s\"\n[local]\ncontext = 4096\nthreads = 1\n[gateway]\nlisten = \"127.0.0.1:{port}\"\n"),
    )
    .unwrap();
    let dead = format!("http://127.0.0.1:{}/v1", free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_understudy"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("UNDERSTUDY_CONFIG", &cfg)
        .env("UNDERSTUDY_DATA_DIR", dir.path().join("data"))
        .env("UNDERSTUDY_GATEWAY_TOKEN", "tok")
        .env("OPENAI_BASE_URL", dead)
        .env("OPENAI_API_KEY", "sk-test-OFFLINEANSWERS0123")
        .env("UNDERSTUDY_LOCAL_MODEL", understudy_testkit::smollm2_gguf())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("stderr.log")).unwrap())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t0.elapsed() < Duration::from_secs(20), "the gateway did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Serve { child, port, dir }
}

/// One greedy chat completion: status, provider header, answer text, prompt tokens.
fn ask(port: u16, question: &str, max_tokens: u32) -> (u16, String, String, u64) {
    let r = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(150))
        .build()
        .unwrap()
        .post(format!("http://127.0.0.1:{port}/v1/chat/completions"))
        .bearer_auth("tok")
        .json(&serde_json::json!({
            "model": "gpt-4o-mini",
            "temperature": 0,
            "max_tokens": max_tokens,
            "messages": [{ "role": "user", "content": question }],
        }))
        .send()
        .unwrap();
    let status = r.status().as_u16();
    let provider = r.headers().get("x-understudy-provider").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    let body: serde_json::Value = r.json().unwrap();
    let text = body["choices"][0]["message"]["content"].as_str().unwrap_or_default().to_string();
    assert_eq!(status, 200, "{body}");
    (status, provider, text, body["usage"]["prompt_tokens"].as_u64().unwrap_or(0))
}

#[test]
fn a_long_prompt_and_three_concurrent_offline_answers_finish_with_a_two_second_stall_timeout() {
    let serve = serve_offline();
    let port = serve.port;
    let long = format!(
        "{}\nIn one sentence, what spread with the printing press?",
        "The printing press spread from Mainz to every major city of Europe within fifty years, and with it came cheap books. ".repeat(115)
    );
    let t0 = Instant::now();
    let mut asks = vec![std::thread::spawn(move || ask(port, &long, 24))];
    for question in ["What is the capital of Germany?", "What is the capital of Japan?", "What is the opposite of hot?"] {
        asks.push(std::thread::spawn(move || ask(port, question, 32)));
    }
    let answers: Vec<_> = asks.into_iter().map(|a| a.join().unwrap_or_else(|_| panic!("an answer failed; serve said:\n{}", serve.said()))).collect();
    let said = serve.said();
    eprintln!("four offline answers in {:?}: {answers:?}", t0.elapsed());
    for (status, provider, text, _) in &answers {
        assert_eq!((*status, provider.as_str()), (200, "local"), "{said}");
        assert!(!text.trim().is_empty(), "an empty answer: {answers:?}");
    }
    assert!(answers[0].3 >= 2500, "the long prompt was {} tokens", answers[0].3);
    // The greedy answers SmolLM2 gives to these (crates/local/tests/instruct.rs).
    assert!(answers[1].2.contains("Berlin") && answers[2].2.contains("Tokyo") && answers[3].2.contains("cold"), "{answers:?}");
    assert!(!said.contains("silent for") && !said.contains("starting again"), "the engine was killed or restarted:\n{said}");
}

/// A real instruct model answers a plain question through `understudy chat --provider local`,
/// with its own chat template (the CLI samples like the window: engine defaults, fixed seed).
#[test]
fn the_cli_answers_a_plain_question_from_a_real_instruct_model() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    std::fs::write(&cfg, "[failover]\nstatus_page = \"\"\n[local]\nthreads = 1\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_understudy"))
        .args(["chat", "--provider", "local", "What is the capital of Germany?"])
        .env("UNDERSTUDY_CONFIG", &cfg)
        .env("UNDERSTUDY_DATA_DIR", dir.path().join("data"))
        .env_remove("OPENAI_API_KEY")
        .env("UNDERSTUDY_LOCAL_MODEL", understudy_testkit::smollm2_gguf())
        .output()
        .unwrap();
    let answer = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(answer.contains("Berlin"), "{answer}");
}
