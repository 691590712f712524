#![allow(clippy::unwrap_used)]
//! The gateway in front of the real local engine (tiny GGUF): local answers are served first
//! come, first served, one at a time, and a client that goes away stops its generation, whether
//! it was generating or still waiting in the queue.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use understudy_local::engine::EngineConfig;

mod common;
use common::{start_local, Gw};

async fn start() -> Gw {
    start_local(EngineConfig::new(understudy_testkit::local_worker(), &[])).await
}

fn body(stream: bool, max_tokens: u32) -> serde_json::Value {
    serde_json::json!({ "model": "local", "stream": stream, "max_tokens": max_tokens, "messages": [{ "role": "user", "content": "tell me a long story" }] })
}

/// Waits (bounded, as a hang guard) until the engine holds `n` answers (generating or queued).
async fn in_flight(gw: &Gw, n: usize) {
    let t0 = Instant::now();
    while gw.router.engine().in_flight() != n {
        assert!(t0.elapsed() < Duration::from_secs(30), "in flight: {} (want {n}); {:?}", gw.router.engine().in_flight(), gw.router.engine().tally());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_disconnects_mid_stream_stops_its_local_generation() {
    let gw = start().await;
    let http = reqwest::Client::new();
    let r = http.post(&gw.url).json(&body(true, 1500)).send().await.unwrap();
    assert_eq!(r.headers()["x-understudy-provider"], "local");
    let mut chunks = r.bytes_stream();
    let mut seen = String::new();
    while seen.matches("\"content\"").count() < 4 {
        seen.push_str(&String::from_utf8_lossy(&chunks.next().await.unwrap().unwrap()));
    }
    drop(chunks); // the client goes away
    in_flight(&gw, 0).await;
    let t = gw.router.engine().tally();
    assert_eq!((t.finished, t.cancelled), (1, 1), "{t:?}");
    assert!(t.completion_tokens < 1500, "it stopped early: {t:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_answers_are_first_come_first_served_and_a_queued_client_that_leaves_never_runs() {
    let gw = start().await;
    let http = reqwest::Client::new();
    // Load the model first so that the queue below holds generations only.
    assert!(http.post(&gw.url).json(&body(false, 1)).send().await.unwrap().status().is_success());
    in_flight(&gw, 0).await;
    let base = gw.router.engine().tally();

    // A generates; B waits behind it and leaves; C and D wait and stay. The tiny model answers
    // in a blink, so the worker is paused (SIGSTOP) while the queue forms: requests and the
    // cancel wait in its stdin, exactly as they would behind a long answer.
    let a = http.post(&gw.url).json(&body(true, 300)).send().await.unwrap();
    let mut a_chunks = a.bytes_stream();
    a_chunks.next().await.unwrap().unwrap();
    let worker = gw.router.engine().worker_pid().await.unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-STOP", &worker]).status().unwrap().success());
    // B over a plain socket, so that "the client went away" is exactly a closed connection.
    let b = {
        use tokio::io::AsyncWriteExt;
        let addr = gw.url.trim_start_matches("http://").split('/').next().unwrap().to_string();
        let mut sock = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let payload = body(true, 1500).to_string();
        let head = format!("POST /v1/chat/completions HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", payload.len());
        sock.write_all(head.as_bytes()).await.unwrap();
        sock.write_all(payload.as_bytes()).await.unwrap();
        sock
    };
    in_flight(&gw, 2).await;
    // Each records how many generations had ended when its answer came back. The engine counts
    // a generation before it hands the answer on, so these counts follow the order the worker
    // served in, whatever order the two client tasks happen to be scheduled in afterwards.
    let finished = Arc::new(Mutex::new(Vec::new()));
    let mut waiting = Vec::new();
    // C asks for a long answer and D for a short one: were D served first, it would be back
    // while C was still generating, with only A, B and D counted.
    for (name, n, max_tokens) in [("C", 3, 300), ("D", 4, 3)] {
        let (http, url, finished, router) = (http.clone(), gw.url.clone(), finished.clone(), gw.router.clone());
        waiting.push(tokio::spawn(async move {
            let r: serde_json::Value = http.post(&url).json(&body(false, max_tokens)).send().await.unwrap().json().await.unwrap();
            finished.lock().unwrap().push((name, router.engine().tally().finished));
            r
        }));
        in_flight(&gw, n).await;
    }
    drop(b); // B's client disconnects while queued
             // The gateway notices the closed connection and the engine writes B's cancel to the worker's
             // stdin; give that a moment before the worker reads its queue again.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(std::process::Command::new("kill").args(["-CONT", &worker]).status().unwrap().success());
    let mut a_text = String::new();
    while let Some(c) = a_chunks.next().await {
        a_text.push_str(&String::from_utf8_lossy(&c.unwrap()));
    }
    assert!(a_text.contains("[DONE]"), "A finished normally");
    for w in waiting {
        let r = w.await.unwrap();
        assert_eq!(r["choices"][0]["message"]["role"], "assistant", "{r}");
    }
    let finished = finished.lock().unwrap().clone();
    let ended_by = |name: &str| finished.iter().find(|f| f.0 == name).unwrap().1 - base.finished;
    // When C's answer came back, A and B's cancellation had ended: nobody overtook A.
    assert!(ended_by("C") >= 3, "{finished:?}");
    // When D's came back, C had ended too: D waited its turn behind C.
    assert_eq!(ended_by("D"), 4, "served in arrival order: {finished:?}");
    in_flight(&gw, 0).await;
    let t = gw.router.engine().tally();
    assert_eq!(t.finished - base.finished, 4, "A, B (cancelled), C, D: {t:?}");
    assert_eq!(t.cancelled - base.cancelled, 1, "only B: {t:?}");
    // B generated nothing: every token is A's, C's or D's (at most 300 + 300 + 3).
    assert!(t.completion_tokens - base.completion_tokens <= 603, "{t:?}");
}
