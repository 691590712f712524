//! The engine through its real worker process, on the tiny and the Gemma test models.

use std::path::Path;
use std::time::{Duration, Instant};

use understudy_core::Role;
use understudy_local::engine::EngineConfig;
use understudy_local::{Engine, EngineError, Event, FinishReason, Message, SamplingParams, Usage};

fn engine() -> Engine {
    Engine::new(EngineConfig::new(env!("CARGO_BIN_EXE_understudy-local-worker"), &[]))
}

fn user(text: &str) -> Vec<Message> {
    vec![Message::new(Role::System, "You are terse."), Message::new(Role::User, text)]
}

fn params(max_tokens: u32) -> SamplingParams {
    SamplingParams { max_tokens: Some(max_tokens), ..SamplingParams::default() }
}

/// Runs one generation to its end: (text, finish, usage), or the error message.
async fn answer(e: &Engine, messages: Vec<Message>, p: SamplingParams, prefill: Option<&str>) -> Result<(String, FinishReason, Usage), String> {
    let mut g = e.generate(messages, p, prefill.map(str::to_string)).await.map_err(|e| e.to_string())?;
    let mut text = String::new();
    while let Some(ev) = g.next().await {
        match ev {
            Event::Token { text: t, .. } => text.push_str(&t),
            Event::Done { finish_reason, usage, .. } => return Ok((text, finish_reason, usage)),
            Event::Error { message, .. } => return Err(message),
            other => panic!("unexpected {other:?}"),
        }
    }
    Err("stream ended without done".into())
}

#[tokio::test]
async fn answers_with_max_tokens_and_reports_usage() {
    let e = engine();
    let loaded = e.load(&understudy_testkit::tiny_gguf(), 512, 1).await.unwrap();
    assert_eq!(loaded.architecture, "llama");
    assert_eq!(loaded.template, "model (jinja)");
    let (text, finish, usage) = answer(&e, user("hello there"), params(12), None).await.unwrap();
    assert_eq!(finish, FinishReason::Length);
    assert_eq!(usage.completion_tokens, 12);
    assert!(!text.is_empty());
    assert!(usage.prompt_tokens > 10 && usage.prompt_evaluated == usage.prompt_tokens, "{usage:?}");
}

#[tokio::test]
async fn same_seed_same_text_other_seed_other_text() {
    let e = engine();
    e.load(&understudy_testkit::tiny_gguf(), 512, 1).await.unwrap();
    let p = |seed| SamplingParams { temperature: 1.0, top_k: 0, top_p: 1.0, min_p: 0.0, seed, max_tokens: Some(24), ..SamplingParams::default() };
    let a = answer(&e, user("tell me"), p(7), None).await.unwrap().0;
    let b = answer(&e, user("tell me"), p(7), None).await.unwrap().0;
    let c = answer(&e, user("tell me"), p(8), None).await.unwrap().0;
    assert_eq!(a, b);
    assert_ne!(a, c, "random weights at temperature 1 should differ by seed");
}

#[tokio::test]
async fn the_next_turn_reuses_the_kv_cache() {
    let e = engine();
    e.load(&understudy_testkit::tiny_gguf(), 512, 1).await.unwrap();
    let greedy = SamplingParams { temperature: 0.0, max_tokens: Some(8), ..SamplingParams::default() };
    let mut convo = user("first question about the model");
    let (reply, _, first) = answer(&e, convo.clone(), greedy.clone(), None).await.unwrap();
    assert_eq!(first.prompt_reused, 0);
    convo.push(Message::new(Role::Assistant, &reply));
    convo.push(Message::new(Role::User, "and a second one"));
    let (_, _, second) = answer(&e, convo, greedy, None).await.unwrap();
    assert!(second.prompt_reused >= first.prompt_tokens - 1, "reused {} of the first prompt's {}", second.prompt_reused, first.prompt_tokens);
    assert_eq!(second.prompt_evaluated + second.prompt_reused, second.prompt_tokens);
    assert!(second.prompt_evaluated < second.prompt_tokens / 2, "{second:?}");
}

#[tokio::test]
async fn a_prefill_is_part_of_the_prompt_and_the_answer_continues_it() {
    let e = engine();
    e.load(&understudy_testkit::tiny_gguf(), 512, 1).await.unwrap();
    let greedy = SamplingParams { temperature: 0.0, max_tokens: Some(4), ..SamplingParams::default() };
    let (_, _, plain) = answer(&e, user("count"), greedy.clone(), None).await.unwrap();
    let (_, _, pre) = answer(&e, user("count"), greedy, Some("one two three four")).await.unwrap();
    assert!(pre.prompt_reused >= plain.prompt_tokens - 1, "the shared prompt came from the cache: {pre:?} vs {plain:?}");
    assert!(pre.prompt_tokens >= plain.prompt_tokens + 4, "{pre:?} vs {plain:?}");
}

#[tokio::test]
async fn overflowing_conversations_drop_the_oldest_turns_but_keep_the_system_prompt() {
    let e = engine();
    e.load(&understudy_testkit::tiny_gguf(), 256, 1).await.unwrap();
    let mut convo = vec![Message::new(Role::System, "Keep this.")];
    for i in 0..40 {
        convo.push(Message::new(Role::User, &format!("question number {i} about the model and the file")));
        convo.push(Message::new(Role::Assistant, "an answer that takes some room in the context"));
    }
    convo.push(Message::new(Role::User, "last"));
    let (_, _, usage) = answer(&e, convo, params(8), None).await.unwrap();
    assert!(usage.dropped_messages > 0, "{usage:?}");
    assert!(usage.prompt_tokens as usize + 8 <= 256, "{usage:?}");
    // a single message that cannot fit is an error, not a crash
    let huge = "word ".repeat(2000);
    let err = answer(&e, user(&huge), params(8), None).await.unwrap_err();
    assert!(err.contains("too long"), "{err}");
    // and the engine still answers afterwards
    answer(&e, user("still there?"), params(4), None).await.unwrap();
}

#[tokio::test]
async fn stop_strings_end_the_answer_without_showing_the_stop() {
    let e = engine();
    e.load(&understudy_testkit::gemma_gguf(), 1024, 1).await.unwrap();
    let p = SamplingParams { temperature: 0.0, max_tokens: Some(40), stop: vec!["\n".into()], ..SamplingParams::default() };
    // gemma's base model continues a list; the newline stop cuts after the first line
    let (text, finish, _) = answer(&e, vec![Message::new(Role::User, "List: apples, pears, plums")], p, Some("Sure:")).await.unwrap();
    assert_eq!(finish, FinishReason::Stop);
    assert!(!text.contains('\n'), "{text:?}");
}

#[tokio::test]
async fn cancel_stops_generation_within_100_ms() {
    let e = engine();
    let loaded = e.load(&understudy_testkit::gemma_gguf(), 2048, 1).await.unwrap();
    assert_eq!(loaded.template, "built-in gemma", "gemma's file has no template: chosen by architecture");
    let p = SamplingParams { max_tokens: Some(1500), ..SamplingParams::default() };
    let mut g = e.generate(user("Write a long story about a lighthouse."), p, None).await.unwrap();
    let mut tokens = 0;
    while tokens < 3 {
        if let Some(Event::Token { .. }) = g.next().await {
            tokens += 1;
        }
    }
    let asked = Instant::now();
    g.cancel();
    loop {
        match g.next().await.expect("done follows") {
            Event::Token { .. } => {}
            Event::Done { finish_reason, .. } => {
                assert_eq!(finish_reason, FinishReason::Cancelled);
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    let took = asked.elapsed();
    assert!(took < Duration::from_millis(100), "cancel took {took:?}");
}

#[tokio::test]
async fn a_crashed_worker_fails_the_request_and_the_next_one_works() {
    let e = engine();
    e.load(&understudy_testkit::tiny_gguf(), 512, 1).await.unwrap();
    let pid = e.worker_pid().await.unwrap();
    let mut g = e.generate(user("go on"), params(100_000), None).await.unwrap();
    assert!(matches!(g.next().await, Some(Event::Token { .. })));
    std::process::Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap();
    let started = Instant::now();
    let mut last = None;
    while let Some(ev) = g.next().await {
        last = Some(ev);
    }
    match last {
        Some(Event::Error { message, .. }) => assert!(message.contains("stopped unexpectedly"), "{message}"),
        other => panic!("expected an error, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(5), "the crash was noticed at once, not at a timeout");
    let (text, _, _) = answer(&e, user("again"), params(4), None).await.unwrap();
    assert!(!text.is_empty());
    assert_ne!(e.worker_pid().await, Some(pid), "a new worker runs");
}

#[tokio::test]
async fn a_hung_worker_is_killed_after_the_stall_timeout() {
    // `sleep` stands in for a worker stuck inside llama.cpp: it reads nothing and says nothing.
    let mut config = EngineConfig::new("sleep", &["600"]);
    config.load_timeout = Duration::from_millis(500);
    let e = Engine::new(config);
    let started = Instant::now();
    let err = e.load(&understudy_testkit::tiny_gguf(), 512, 1).await.unwrap_err();
    assert!(matches!(err, EngineError::Stalled(_)), "{err}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn bad_model_files_are_refused_before_the_worker_sees_them() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("model.gguf");
    std::fs::write(&bad, b"<html>404</html>").unwrap();
    let e = engine();
    let err = e.load(&bad, 512, 1).await.unwrap_err();
    assert!(matches!(err, EngineError::BadModel(_)), "{err}");
    assert!(err.to_string().contains(&bad.display().to_string()), "{err}");
    assert_eq!(e.worker_pid().await, None, "no worker was started for a bad file");
    let err = e.generate(user("hi"), params(4), None).await.unwrap_err();
    assert!(matches!(err, EngineError::NotLoaded));
    let err = e.load(Path::new("/no/such/model.gguf"), 512, 1).await.unwrap_err();
    assert!(err.to_string().contains("/no/such/model.gguf"), "{err}");
}

#[tokio::test]
async fn gemma_answers_in_real_words() {
    let e = engine();
    e.load(&understudy_testkit::gemma_gguf(), 1024, 1).await.unwrap();
    let greedy = SamplingParams { temperature: 0.0, max_tokens: Some(6), ..SamplingParams::default() };
    // the base model continues a partial answer (as after a mid-stream failover) in the gemma
    // turn template
    let shots = "Q: What is the capital of Germany?\nA: Berlin\nQ: What is the capital of Italy?\nA: Rome\nQ: What is the capital of France?\nA:";
    let (text, _, _) = answer(&e, vec![Message::new(Role::User, "A quiz on capitals, please.")], greedy, Some(shots)).await.unwrap();
    assert!(text.contains("Paris"), "{text:?}");
}

#[tokio::test]
async fn prewarm_loads_and_caches_the_system_prompt_so_the_first_answer_reuses_it() {
    let e = engine();
    let system = vec![Message::new(Role::System, "You are Understudy, a careful assistant that answers briefly and precisely.")];
    let warm = e.prewarm(&understudy_testkit::tiny_gguf(), 512, 1, system.clone()).await.unwrap();
    assert!(warm.prompt_evaluated > 10 && warm.completion_tokens == 0, "{warm:?}");
    let pid = e.worker_pid().await;
    let mut convo = system;
    convo.push(Message::new(Role::User, "hello"));
    let (_, _, usage) = answer(&e, convo, params(4), None).await.unwrap();
    assert!(usage.prompt_reused >= warm.prompt_tokens - 1, "first answer reused the system prompt: {usage:?} after {warm:?}");
    assert_eq!(e.worker_pid().await, pid, "no reload for the first answer");
}

/// A pre-warm (of the conversation most likely to continue) must not make an answer wait: the
/// answer cancels it and starts at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_does_not_wait_behind_a_pre_warm() {
    let e = engine();
    let model = understudy_testkit::tiny_gguf();
    e.load(&model, 512, 1).await.unwrap();
    // The tiny model evaluates in a blink, so the worker is paused (SIGSTOP) while the
    // pre-warm and the answer line up in its input, as they would behind a long history.
    let pid = e.worker_pid().await.unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-STOP", &pid]).status().unwrap().success());
    let history = vec![Message::new(Role::System, "You are terse."), Message::new(Role::User, &"a long history ".repeat(40))];
    let warming = {
        let (e, model) = (e.clone(), model.clone());
        tokio::spawn(async move { e.prewarm(&model, 512, 1, history).await })
    };
    let t0 = Instant::now();
    while e.in_flight() != 1 {
        assert!(t0.elapsed() < Duration::from_secs(10), "the pre-warm never started");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let answering = {
        let e = e.clone();
        tokio::spawn(async move { answer(&e, user("another conversation"), params(3), None).await })
    };
    while e.in_flight() != 2 {
        assert!(t0.elapsed() < Duration::from_secs(10), "the answer never started");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(std::process::Command::new("kill").args(["-CONT", &pid]).status().unwrap().success());
    let (_, finish, _) = answering.await.unwrap().unwrap();
    assert_eq!(finish, FinishReason::Length);
    assert!(matches!(warming.await.unwrap(), Err(EngineError::GaveWay)));
    let t = e.tally();
    assert_eq!((t.finished, t.cancelled), (2, 1), "the pre-warm ended cancelled, the answer normally: {t:?}");
}

#[tokio::test]
async fn an_idle_engine_unloads_and_loads_again_on_the_next_request() {
    let mut config = EngineConfig::new(env!("CARGO_BIN_EXE_understudy-local-worker"), &[]);
    config.idle_unload = Some(Duration::from_millis(400));
    let e = Engine::new(config);
    e.load(&understudy_testkit::tiny_gguf(), 512, 1).await.unwrap();
    answer(&e, user("hi"), params(2), None).await.unwrap();
    assert!(e.worker_pid().await.is_some());
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(e.worker_pid().await, None, "the worker (and the model's memory) is gone after idling");
    let (text, _, _) = answer(&e, user("back again"), params(3), None).await.unwrap();
    assert!(!text.is_empty());
    assert!(e.worker_pid().await.is_some());
}

#[tokio::test]
async fn a_worker_that_hangs_mid_answer_is_killed_and_the_request_fails_clearly() {
    // A stand-in worker that loads, sends one token, then hangs as a stuck llama.cpp would.
    let script = r#"read l; echo '{"type":"loaded","path":"m","architecture":"llama","load_ms":1,"context":512,"threads":1,"template":"chatml"}'
read l; id=$(echo "$l" | sed 's/.*"id":"\([^"]*\)".*/\1/'); echo "{\"type\":\"token\",\"id\":\"$id\",\"text\":\"hi\"}"; exec sleep 600"#;
    let mut config = EngineConfig::new("bash", &["-c", script]);
    config.stall_timeout = Duration::from_millis(500);
    let e = Engine::new(config);
    e.load(&understudy_testkit::tiny_gguf(), 512, 1).await.unwrap();
    let pid = e.worker_pid().await.unwrap();
    let mut g = e.generate(user("hi"), params(10), None).await.unwrap();
    assert!(matches!(g.next().await, Some(Event::Token { ref text, .. }) if text == "hi"));
    let started = Instant::now();
    match g.next().await {
        Some(Event::Error { message, .. }) => assert!(message.contains("did not respond"), "{message}"),
        other => panic!("expected a stall error, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(g.next().await.is_none());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists() || std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z ")),
        "the hung worker was killed"
    );
    // the next request starts a fresh worker, which loads and answers
    let mut g = e.generate(user("again"), params(10), None).await.unwrap();
    assert!(matches!(g.next().await, Some(Event::Token { .. })));
    assert_ne!(e.worker_pid().await, Some(pid));
}

/// One decode can outlast the stall timeout on a loaded machine (seen: 2.5-7 s for 128 tokens
/// of a 2,700-token prompt at load 5-9). A worker that computes through its silence is not
/// killed; one that is silent and idle is (above).
#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_worker_computing_longer_than_the_stall_timeout_is_not_killed() {
    // The stand-in computes for 1.5 s without a word (three stall windows), then answers.
    let script = r#"read l; echo '{"type":"loaded","path":"m","architecture":"llama","load_ms":1,"context":512,"threads":1,"template":"chatml"}'
read l; id=$(echo "$l" | sed 's/.*"id":"\([^"]*\)".*/\1/'); echo "{\"type\":\"started\",\"id\":\"$id\"}"
end=$(( ${EPOCHREALTIME/./} + 1500000 )); while (( ${EPOCHREALTIME/./} < end )); do :; done
echo "{\"type\":\"token\",\"id\":\"$id\",\"text\":\"computed\"}"
echo "{\"type\":\"done\",\"id\":\"$id\",\"finish_reason\":\"stop\",\"usage\":{\"prompt_tokens\":2048,\"prompt_evaluated\":2048,\"prompt_reused\":0,\"completion_tokens\":1,\"dropped_messages\":0,\"prompt_ms\":1500,\"generation_ms\":1}}"
exec sleep 600"#;
    let mut config = EngineConfig::new("bash", &["-c", script]);
    config.stall_timeout = Duration::from_millis(500);
    let e = Engine::new(config);
    e.load(&understudy_testkit::tiny_gguf(), 512, 1).await.unwrap();
    let pid = e.worker_pid().await.unwrap();
    let (text, _, _) = answer(&e, user("a long prompt"), params(10), None).await.unwrap();
    assert_eq!(text, "computed");
    assert_eq!(e.worker_pid().await, Some(pid), "the same worker, never restarted");
}

/// A stand-in worker that serves each request slowly: `started`, then one event every 200 ms
/// for 1.6 s (`progress` while "evaluating the prompt", then tokens), then `done`. Requests
/// wait in its input meanwhile, as they wait in the real worker's queue.
fn slow_worker(stall: Duration) -> Engine {
    let script = r#"read l; echo '{"type":"loaded","path":"m","architecture":"llama","load_ms":1,"context":512,"threads":1,"template":"chatml"}'
while read l; do
  id=$(echo "$l" | sed 's/.*"id":"\([^"]*\)".*/\1/')
  echo "{\"type\":\"started\",\"id\":\"$id\"}"
  for i in 1 2 3 4; do sleep 0.2; echo "{\"type\":\"progress\",\"id\":\"$id\",\"evaluated\":$((i*512))}"; done
  for i in 1 2 3 4; do sleep 0.2; echo "{\"type\":\"token\",\"id\":\"$id\",\"text\":\"t$i \"}"; done
  echo "{\"type\":\"done\",\"id\":\"$id\",\"finish_reason\":\"stop\",\"usage\":{\"prompt_tokens\":2048,\"prompt_evaluated\":2048,\"prompt_reused\":0,\"completion_tokens\":4,\"dropped_messages\":0,\"prompt_ms\":800,\"generation_ms\":800}}"
done"#;
    let mut config = EngineConfig::new("bash", &["-c", script]);
    config.stall_timeout = stall;
    Engine::new(config)
}

/// The watchdog judges the worker, not the queue: three answers queued behind each other (the
/// last waits 3.2 s) and a prompt evaluation longer than the stall timeout all finish with a
/// 500 ms stall timeout, on one worker that is never restarted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_queued_and_prompt_evaluation_are_not_stalls() {
    let e = slow_worker(Duration::from_millis(500));
    e.load(&understudy_testkit::tiny_gguf(), 512, 1).await.unwrap();
    let pid = e.worker_pid().await;
    let answers: Vec<_> = (0..3)
        .map(|i| {
            let e = e.clone();
            tokio::spawn(async move { answer(&e, user(&format!("question {i}")), params(4), None).await })
        })
        .collect();
    for a in answers {
        let (text, finish, _) = a.await.unwrap().unwrap();
        assert_eq!((text.as_str(), finish), ("t1 t2 t3 t4 ", FinishReason::Stop));
    }
    assert_eq!(e.worker_pid().await, pid, "the worker was never killed");
}

/// The queue is bounded: one more answer than `max_queue` is refused at once with a typed
/// error, and is accepted again once the queue has room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_refuses_at_once() {
    let mut config = EngineConfig::new(env!("CARGO_BIN_EXE_understudy-local-worker"), &[]);
    config.max_queue = 2;
    let e = Engine::new(config);
    e.load(&understudy_testkit::tiny_gguf(), 512, 1).await.unwrap();
    let pid = e.worker_pid().await.unwrap().to_string();
    // Paused, so the two answers stay in its queue.
    assert!(std::process::Command::new("kill").args(["-STOP", &pid]).status().unwrap().success());
    let first = e.generate(user("one"), params(2), None).await.unwrap();
    let second = e.generate(user("two"), params(2), None).await.unwrap();
    let err = e.generate(user("three"), params(2), None).await.unwrap_err();
    assert!(matches!(err, EngineError::QueueFull(2)), "{err}");
    assert!(std::process::Command::new("kill").args(["-CONT", &pid]).status().unwrap().success());
    drop((first, second));
    let t0 = Instant::now();
    while e.in_flight() > 0 {
        assert!(t0.elapsed() < Duration::from_secs(5), "cancelled answers left the queue");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    answer(&e, user("three again"), params(2), None).await.unwrap();
}

/// On a real model: a 2,500-token prompt (seconds of evaluation without a token) and three
/// answers queued behind it all finish with a 2 s stall timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_prompt_and_three_queued_answers_finish_with_a_two_second_stall_timeout() {
    let mut config = EngineConfig::new(env!("CARGO_BIN_EXE_understudy-local-worker"), &[]);
    config.stall_timeout = Duration::from_secs(2);
    let e = Engine::new(config);
    e.load(&understudy_testkit::gemma_gguf(), 4096, 1).await.unwrap();
    let long = "The printing press spread from Mainz to every major city of Europe within fifty years, and with it came cheap books. ".repeat(110);
    let greedy = |n| SamplingParams { temperature: 0.0, max_tokens: Some(n), ..SamplingParams::default() };
    let t0 = Instant::now();
    let mut tasks = vec![{
        let e = e.clone();
        tokio::spawn(async move { answer(&e, vec![Message::new(Role::User, &long)], greedy(8), None).await })
    }];
    for i in 0..3 {
        let e = e.clone();
        tasks.push(tokio::spawn(async move { answer(&e, user(&format!("Count from {i} to thirty.")), greedy(48), None).await }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap().expect("no answer failed"));
    }
    let usage = &results[0].2;
    eprintln!("2,500-token prompt: {} tokens evaluated in {} ms; all four answers in {:?}", usage.prompt_evaluated, usage.prompt_ms, t0.elapsed());
    assert!(usage.prompt_tokens >= 2500, "{usage:?}");
    assert!(results.iter().all(|(text, _, _)| !text.is_empty()));
}

/// Answers arriving together at an engine with nothing loaded load the model once: the
/// stand-in worker takes only its first line as a load, so a second load would never be
/// answered and would hold the engine (seen as a gateway test that hung under load).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_arriving_together_load_the_model_once() {
    let e = slow_worker(Duration::from_secs(5));
    let model = understudy_testkit::tiny_gguf();
    // Several at once, so that some check before the first load takes the engine.
    let answers: Vec<_> = (0..6)
        .map(|i| {
            let (e, model) = (e.clone(), model.clone());
            tokio::spawn(async move {
                e.ensure_loaded(&model, 512, 1).await.map_err(|e| e.to_string())?;
                answer(&e, user(&format!("question {i}")), params(4), None).await
            })
        })
        .collect();
    for a in answers {
        let (text, _, _) = tokio::time::timeout(Duration::from_secs(60), a).await.expect("no answer waited behind a second load").unwrap().unwrap();
        assert_eq!(text, "t1 t2 t3 t4 ");
    }
}
