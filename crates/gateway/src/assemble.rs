//! A streamed chat completion put back together as the one response OpenAI sends a client that
//! did not ask to stream: the gateway always streams upstream (to see first tokens, stalls and
//! cuts), so a non-streamed client gets the chunks assembled — content, refusal, tool calls by
//! index (id, type, name, arguments concatenated), annotations, audio (its `data` and
//! `transcript` concatenated), logprobs, finish reason, usage with its details,
//! `system_fingerprint`, `service_tier` — for every choice.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

#[derive(Debug, Default)]
pub(crate) struct Assembly {
    /// `id`, `created`, `model`, `system_fingerprint`, `service_tier`, `usage`: the last
    /// non-null value of each.
    top: Map<String, Value>,
    choices: BTreeMap<u64, Choice>,
}

#[derive(Debug, Default)]
struct Choice {
    role: Option<String>,
    content: Option<String>,
    refusal: Option<String>,
    reasoning: Option<String>,
    tool_calls: BTreeMap<u64, Value>,
    function_call: Option<Value>,
    annotations: Vec<Value>,
    /// Audio output (`modalities: ["audio"]`): `id` and `expires_at` as they come, `data`
    /// (base64) and `transcript` concatenated.
    audio: Option<Map<String, Value>>,
    /// `logprobs.content` and `logprobs.refusal`, once any chunk carried logprobs.
    logprobs: Option<Logprobs>,
    finish_reason: Option<Value>,
}

type Logprobs = (Option<Vec<Value>>, Option<Vec<Value>>);

/// What the offline model wrote after the upstream failed mid-answer (choice 0).
pub(crate) struct Continuation<'a> {
    pub text: &'a str,
    pub reasoning: &'a str,
    pub model: &'a str,
    pub finish: &'a str,
    pub usage: Option<Value>,
    /// The offline model's tool calls, as OpenAI writes them in a message.
    pub tool_calls: Vec<Value>,
}

fn append(into: &mut Option<String>, piece: Option<&str>) {
    if let Some(p) = piece {
        into.get_or_insert_with(String::new).push_str(p);
    }
}

fn append_list(into: &mut Option<Vec<Value>>, list: Option<&Value>) {
    if let Some(items) = list.and_then(Value::as_array) {
        into.get_or_insert_with(Vec::new).extend(items.iter().cloned());
    }
}

impl Assembly {
    /// One upstream chunk (`chat.completion.chunk`).
    pub(crate) fn add(&mut self, chunk: &Value) {
        let Some(o) = chunk.as_object() else { return };
        for key in ["id", "created", "model", "system_fingerprint", "service_tier", "usage"] {
            if let Some(v) = o.get(key).filter(|v| !v.is_null()) {
                self.top.insert(key.into(), v.clone());
            }
        }
        for (position, c) in o.get("choices").and_then(Value::as_array).into_iter().flatten().enumerate() {
            let index = c.get("index").and_then(Value::as_u64).unwrap_or(position as u64);
            let choice = self.choices.entry(index).or_default();
            if let Some(d) = c.get("delta") {
                if let Some(role) = d.get("role").and_then(Value::as_str) {
                    choice.role = Some(role.into());
                }
                append(&mut choice.content, d.get("content").and_then(Value::as_str));
                append(&mut choice.refusal, d.get("refusal").and_then(Value::as_str));
                append(&mut choice.reasoning, d.get("reasoning_content").and_then(Value::as_str));
                if let Some(list) = d.get("annotations").and_then(Value::as_array) {
                    choice.annotations.extend(list.iter().cloned());
                }
                if let Some(part) = d.get("audio").and_then(Value::as_object) {
                    merge_audio(choice.audio.get_or_insert_with(Map::new), part);
                }
                for (n, call) in d.get("tool_calls").and_then(Value::as_array).into_iter().flatten().enumerate() {
                    let at = call.get("index").and_then(Value::as_u64).unwrap_or(n as u64);
                    let slot =
                        choice.tool_calls.entry(at).or_insert_with(|| json!({ "id": null, "type": "function", "function": { "name": "", "arguments": "" } }));
                    merge_call(slot, call);
                }
                if let Some(f) = d.get("function_call").filter(|f| !f.is_null()) {
                    merge_call(choice.function_call.get_or_insert_with(|| json!({ "function": { "name": "", "arguments": "" } })), &json!({ "function": f }));
                }
            }
            if let Some(lp) = c.get("logprobs").filter(|l| !l.is_null()) {
                let (content, refusal) = choice.logprobs.get_or_insert((None, None));
                append_list(content, lp.get("content"));
                append_list(refusal, lp.get("refusal"));
            }
            if let Some(f) = c.get("finish_reason").filter(|f| !f.is_null()) {
                choice.finish_reason = Some(f.clone());
            }
        }
    }

    /// The `chat.completion`; `id` is used only if the upstream sent none.
    pub(crate) fn finish(mut self, id: &str, local: Option<Continuation<'_>>) -> Value {
        if let Some(l) = &local {
            let c = self.choices.entry(0).or_default();
            if !c.tool_calls.is_empty() || c.function_call.is_some() {
                // The upstream was cut inside a tool call, so the offline model answered afresh
                // (never inside the call's JSON): its answer replaces the upstream's.
                (c.content, c.tool_calls, c.function_call) = (None, BTreeMap::new(), None);
            }
            for (i, call) in l.tool_calls.iter().enumerate() {
                c.tool_calls.insert(i as u64, call.clone());
            }
            if !l.text.is_empty() {
                c.content.get_or_insert_with(String::new).push_str(l.text);
            }
            append(&mut c.reasoning, (!l.reasoning.is_empty()).then_some(l.reasoning));
            c.finish_reason = Some(Value::String(l.finish.into()));
        }
        if self.choices.is_empty() {
            self.choices.insert(0, Choice::default());
        }
        let choices: Vec<Value> = self
            .choices
            .into_iter()
            .map(|(index, c)| {
                let calls: Vec<Value> = c.tool_calls.into_values().collect();
                let mut message = Map::new();
                message.insert("role".into(), Value::String(c.role.unwrap_or_else(|| "assistant".into())));
                // OpenAI: `content` null when the answer is only tool calls or a refusal.
                message.insert("content".into(), c.content.map_or(Value::Null, Value::String));
                message.insert("refusal".into(), c.refusal.map_or(Value::Null, Value::String));
                if !c.annotations.is_empty() {
                    message.insert("annotations".into(), Value::Array(c.annotations));
                }
                if let Some(a) = c.audio {
                    message.insert("audio".into(), Value::Object(a));
                }
                if let Some(r) = c.reasoning {
                    message.insert("reasoning_content".into(), Value::String(r));
                }
                if !calls.is_empty() {
                    message.insert("tool_calls".into(), Value::Array(calls));
                }
                if let Some(f) = c.function_call {
                    message.insert("function_call".into(), f["function"].clone());
                }
                let logprobs = c.logprobs.map_or(Value::Null, |(content, refusal)| json!({ "content": content, "refusal": refusal }));
                json!({ "index": index, "message": message, "logprobs": logprobs, "finish_reason": c.finish_reason.unwrap_or(Value::Null) })
            })
            .collect();
        let mut out = Map::new();
        out.insert("id".into(), self.top.remove("id").unwrap_or_else(|| Value::String(id.into())));
        out.insert("object".into(), Value::String("chat.completion".into()));
        out.insert("created".into(), self.top.remove("created").unwrap_or_else(|| json!(super::now_s())));
        let model = match &local {
            Some(l) => Value::String(l.model.into()),
            None => self.top.remove("model").unwrap_or(Value::Null),
        };
        out.insert("model".into(), model);
        out.insert("choices".into(), Value::Array(choices));
        let usage = match local {
            Some(l) => l.usage.unwrap_or(Value::Null),
            None => self.top.remove("usage").unwrap_or(Value::Null),
        };
        out.insert("usage".into(), usage);
        for key in ["service_tier", "system_fingerprint"] {
            if let Some(v) = self.top.remove(key) {
                out.insert(key.into(), v);
            }
        }
        Value::Object(out)
    }
}

/// Merges an audio delta into the audio so far: `data` and `transcript` are pieces of one
/// base64 string and one text, everything else (`id`, `expires_at`) is the last value sent.
fn merge_audio(so_far: &mut Map<String, Value>, part: &Map<String, Value>) {
    for (k, v) in part {
        match (k.as_str(), v.as_str()) {
            ("data" | "transcript", Some(piece)) => {
                let joined = format!("{}{piece}", so_far.get(k).and_then(Value::as_str).unwrap_or_default());
                so_far.insert(k.clone(), Value::String(joined));
            }
            _ if v.is_null() => {}
            _ => {
                so_far.insert(k.clone(), v.clone());
            }
        }
    }
}

/// Merges a tool-call delta into the call so far: `id` and `type` as they come, the
/// function's `name` once, its `arguments` concatenated.
fn merge_call(slot: &mut Value, delta: &Value) {
    for key in ["id", "type"] {
        if let Some(v) = delta.get(key).filter(|v| !v.is_null()) {
            slot[key] = v.clone();
        }
    }
    if let Some(f) = delta.get("function") {
        if let Some(name) = f.get("name").and_then(Value::as_str) {
            if slot["function"]["name"].as_str().is_none_or(str::is_empty) {
                slot["function"]["name"] = Value::String(name.into());
            }
        }
        if let Some(args) = f.get("arguments").and_then(Value::as_str) {
            let so_far = slot["function"]["arguments"].as_str().unwrap_or_default().to_string();
            slot["function"]["arguments"] = Value::String(so_far + args);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assemble(chunks: &[Value]) -> Value {
        let mut a = Assembly::default();
        for c in chunks {
            a.add(c);
        }
        a.finish("ours", None)
    }

    #[test]
    fn tool_calls_assemble_by_index_as_openai_sends_them_unstreamed() {
        let head = |choices: Value| json!({ "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 7, "model": "gpt-4o-2024", "system_fingerprint": "fp_1", "service_tier": "default", "choices": choices, "usage": null });
        let v = assemble(&[
            head(json!([{ "index": 0, "delta": { "role": "assistant", "content": null, "refusal": null }, "logprobs": null, "finish_reason": null }])),
            head(
                json!([{ "index": 0, "delta": { "tool_calls": [{ "index": 0, "id": "call_a", "type": "function", "function": { "name": "get_weather", "arguments": "" } }] } }]),
            ),
            head(
                json!([{ "index": 0, "delta": { "tool_calls": [{ "index": 1, "id": "call_b", "type": "function", "function": { "name": "get_time", "arguments": "{}" } }] } }]),
            ),
            head(json!([{ "index": 0, "delta": { "tool_calls": [{ "index": 0, "function": { "arguments": "{\"city\":" } }] } }])),
            head(json!([{ "index": 0, "delta": { "tool_calls": [{ "index": 0, "function": { "arguments": "\"Paris\"}" } }] } }])),
            head(json!([{ "index": 0, "delta": {}, "finish_reason": "tool_calls" }])),
            head(json!([]))
                .as_object()
                .map(|o| {
                    let mut o = o.clone();
                    o.insert(
                        "usage".into(),
                        json!({ "prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13, "completion_tokens_details": { "reasoning_tokens": 0 } }),
                    );
                    Value::Object(o)
                })
                .unwrap(),
        ]);
        assert_eq!(
            v,
            json!({
                "id": "chatcmpl-1", "object": "chat.completion", "created": 7, "model": "gpt-4o-2024",
                "choices": [{ "index": 0, "message": { "role": "assistant", "content": null, "refusal": null, "tool_calls": [
                    { "id": "call_a", "type": "function", "function": { "name": "get_weather", "arguments": "{\"city\":\"Paris\"}" } },
                    { "id": "call_b", "type": "function", "function": { "name": "get_time", "arguments": "{}" } },
                ] }, "logprobs": null, "finish_reason": "tool_calls" }],
                "usage": { "prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13, "completion_tokens_details": { "reasoning_tokens": 0 } },
                "service_tier": "default", "system_fingerprint": "fp_1",
            })
        );
    }

    #[test]
    fn text_logprobs_refusal_annotations_and_several_choices_assemble() {
        let lp = |t: &str| json!({ "token": t, "logprob": -0.1, "bytes": [], "top_logprobs": [] });
        let v = assemble(&[
            json!({ "id": "c", "model": "m", "choices": [{ "index": 0, "delta": { "role": "assistant", "content": "" } }, { "index": 1, "delta": { "role": "assistant", "content": "" } }] }),
            json!({ "id": "c", "model": "m", "choices": [{ "index": 0, "delta": { "content": "Hel" }, "logprobs": { "content": [lp("Hel")], "refusal": null } }] }),
            json!({ "id": "c", "model": "m", "choices": [{ "index": 1, "delta": { "refusal": "I can't" } }] }),
            json!({ "id": "c", "model": "m", "choices": [{ "index": 0, "delta": { "content": "lo", "annotations": [{ "type": "url_citation" }] }, "logprobs": { "content": [lp("lo")] } }] }),
            json!({ "id": "c", "model": "m", "choices": [{ "index": 0, "delta": {}, "finish_reason": "stop" }, { "index": 1, "delta": {}, "finish_reason": "stop" }] }),
        ]);
        let c0 = &v["choices"][0];
        assert_eq!(c0["message"], json!({ "role": "assistant", "content": "Hello", "refusal": null, "annotations": [{ "type": "url_citation" }] }));
        assert_eq!(c0["logprobs"]["content"].as_array().map(Vec::len), Some(2));
        assert_eq!(v["choices"][1]["message"], json!({ "role": "assistant", "content": "", "refusal": "I can't" }));
        assert_eq!(v["choices"][1]["index"], 1);
    }

    #[test]
    fn audio_output_assembles_as_one_message_audio() {
        let d = |delta: Value| json!({ "id": "c", "model": "gpt-4o-audio-preview", "choices": [{ "index": 0, "delta": delta, "finish_reason": null }] });
        let v = assemble(&[
            d(json!({ "role": "assistant", "content": null, "audio": { "id": "audio_1", "transcript": "" } })),
            d(json!({ "audio": { "data": "AAAA" } })),
            d(json!({ "audio": { "transcript": "Hel", "data": null } })),
            d(json!({ "audio": { "data": "BBBB", "transcript": "lo", "expires_at": 1_700_003_600 } })),
            json!({ "id": "c", "model": "gpt-4o-audio-preview", "choices": [{ "index": 0, "delta": {}, "finish_reason": "stop" }] }),
        ]);
        assert_eq!(
            v["choices"][0]["message"],
            json!({ "role": "assistant", "content": null, "refusal": null, "audio": { "id": "audio_1", "transcript": "Hello", "data": "AAAABBBB", "expires_at": 1_700_003_600 } })
        );
    }
}
