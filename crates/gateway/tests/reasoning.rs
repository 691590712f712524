#![allow(clippy::unwrap_used)]
//! A reasoning model's thinking reaches OpenAI clients as `reasoning_content` (as DeepSeek's API
//! and OpenRouter send it), apart from the answer's `content`. The worker here is a stand-in
//! that answers as a reasoning model's worker does: `reasoning` events, then `token`s.

mod common;
use common::start_local;
use understudy_local::engine::EngineConfig;

const THINKING_WORKER: &str = r#"read l; echo '{"type":"loaded","path":"m","architecture":"qwen3","load_ms":1,"context":2048,"threads":1,"template":"model (jinja)"}'
while read l; do
  id=$(echo "$l" | sed 's/.*"id":"\([^"]*\)".*/\1/')
  echo "{\"type\":\"started\",\"id\":\"$id\"}"
  echo "{\"type\":\"reasoning\",\"id\":\"$id\",\"text\":\"The user greets me. \"}"
  echo "{\"type\":\"reasoning\",\"id\":\"$id\",\"text\":\"Be brief.\"}"
  echo "{\"type\":\"token\",\"id\":\"$id\",\"text\":\"Hello\"}"
  echo "{\"type\":\"token\",\"id\":\"$id\",\"text\":\"!\"}"
  echo "{\"type\":\"done\",\"id\":\"$id\",\"finish_reason\":\"stop\",\"usage\":{\"prompt_tokens\":9,\"prompt_evaluated\":9,\"prompt_reused\":0,\"completion_tokens\":12,\"dropped_messages\":0,\"prompt_ms\":1,\"generation_ms\":1}}"
done"#;

fn body(stream: bool) -> serde_json::Value {
    serde_json::json!({ "model": "local", "stream": stream, "messages": [{ "role": "user", "content": "hi" }] })
}

#[tokio::test]
async fn thinking_is_reasoning_content_not_content() {
    let gw = start_local(EngineConfig::new("bash", &["-c", THINKING_WORKER])).await;
    let url = gw.url.clone();
    let http = reqwest::Client::new();
    let r: serde_json::Value = http.post(&url).json(&body(false)).send().await.unwrap().json().await.unwrap();
    let message = &r["choices"][0]["message"];
    assert_eq!((message["content"].as_str(), message["reasoning_content"].as_str()), (Some("Hello!"), Some("The user greets me. Be brief.")), "{r}");

    let text = http.post(&url).json(&body(true)).send().await.unwrap().text().await.unwrap();
    let (mut content, mut reasoning) = (String::new(), String::new());
    for data in text.lines().filter_map(|l| l.strip_prefix("data: ")).filter(|d| *d != "[DONE]") {
        let chunk: serde_json::Value = serde_json::from_str(data).unwrap();
        let delta = &chunk["choices"][0]["delta"];
        content.push_str(delta["content"].as_str().unwrap_or(""));
        reasoning.push_str(delta["reasoning_content"].as_str().unwrap_or(""));
    }
    assert_eq!((content.as_str(), reasoning.as_str()), ("Hello!", "The user greets me. Be brief."), "{text}");
}
