//! The JSON-lines protocol between the engine (parent) and its worker process: one request per
//! line on the worker's stdin, one event per line on its stdout.

use serde::{Deserialize, Serialize};
use understudy_core::{Role, Turn};

/// A message as the chat template reads it (`transformers`' shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: String,
    /// An assistant turn's tool calls, OpenAI's objects with `arguments` as a JSON object (what
    /// templates print with `tojson`; see [`tools::for_template`](crate::tools::for_template)).
    /// Absent (not null) when there are none, so `message.tool_calls is defined` is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<serde_json::Value>>,
    /// A `tool` turn's answer to this call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl Message {
    pub fn new(role: Role, content: &str) -> Message {
        Message { role, content: content.into(), tool_calls: None, tool_call_id: None }
    }

    /// Whether the template must know tools to render this turn.
    pub fn is_tool_turn(&self) -> bool {
        self.tool_calls.is_some() || self.tool_call_id.is_some() || self.role == Role::Tool
    }
}

impl From<&Turn> for Message {
    fn from(turn: &Turn) -> Message {
        Message::new(turn.role, &turn.content)
    }
}

/// Sampling and length controls; the defaults are llama.cpp's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SamplingParams {
    /// 0 = greedy.
    pub temperature: f32,
    pub top_p: f32,
    /// 0 = off.
    pub top_k: i32,
    pub min_p: f32,
    /// 1.0 = off.
    pub repeat_penalty: f32,
    /// Same seed and parameters give the same text.
    pub seed: u32,
    /// Stop after this many generated tokens (None = until the context is full).
    pub max_tokens: Option<u32>,
    /// Stop before any of these strings; the stop string itself is not returned.
    pub stop: Vec<String>,
    /// OpenAI's `presence_penalty` (-2..2; 0 = off): llama.cpp's penalties sampler.
    pub presence_penalty: f32,
    /// OpenAI's `frequency_penalty` (-2..2; 0 = off).
    pub frequency_penalty: f32,
    /// The answer must match this GBNF grammar (root rule `root`; from
    /// [`ResponseFormat::grammar`](crate::grammar::ResponseFormat::grammar)). With a prefill, the
    /// prefill must match its beginning.
    pub grammar: Option<String>,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            temperature: 0.8,
            top_p: 0.95,
            top_k: 40,
            min_p: 0.05,
            repeat_penalty: 1.0,
            seed: 0xD1CE,
            max_tokens: None,
            stop: Vec::new(),
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            grammar: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    /// Loads (or replaces) the model. `threads` 0 = the engine default.
    Load {
        path: String,
        context: u32,
        threads: u32,
    },
    /// Generates an answer to `messages`; with `prefill`, continues that partial assistant text.
    /// `tools` (OpenAI's tool objects) are rendered by the model's template as its `tools`.
    Generate {
        id: String,
        messages: Vec<Message>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tools: Option<Vec<serde_json::Value>>,
        params: SamplingParams,
        prefill: Option<String>,
    },
    /// Loads the conversation's prompt into the KV cache without answering, so that the next
    /// `generate` starting with it evaluates only the rest. Ends with `Done`.
    Prewarm {
        id: String,
        messages: Vec<Message>,
    },
    Cancel {
        id: String,
    },
    Unload,
    Stats,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// End of turn or a stop string.
    Stop,
    /// max_tokens or the context filled up.
    Length,
    Cancelled,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Tokens of the rendered prompt (including any prefill).
    pub prompt_tokens: u32,
    /// Of those, how many were evaluated now; the rest came from the KV cache.
    pub prompt_evaluated: u32,
    pub prompt_reused: u32,
    pub completion_tokens: u32,
    /// Oldest turns dropped so the conversation fits the context.
    pub dropped_messages: u32,
    pub prompt_ms: u64,
    pub generation_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    Loaded {
        path: String,
        architecture: String,
        load_ms: u64,
        context: u32,
        threads: u32,
        template: String,
    },
    /// The worker took the request off its queue and works on it now. Time spent queued
    /// before this is never a stall.
    Started {
        id: String,
    },
    /// Prompt evaluation moved on (after each batch): a long prompt is work, not a stall.
    Progress {
        id: String,
        evaluated: u32,
    },
    Token {
        id: String,
        text: String,
    },
    /// A reasoning model's thinking (`<think>` … `</think>`), streamed apart from the answer.
    Reasoning {
        id: String,
        text: String,
    },
    Done {
        id: String,
        finish_reason: FinishReason,
        usage: Usage,
    },
    /// `id` is None for errors not tied to a request (a failed load).
    Error {
        id: Option<String>,
        message: String,
    },
    Unloaded,
    Stats {
        loaded: Option<String>,
        cached_tokens: u32,
        context: u32,
        threads: u32,
    },
}
