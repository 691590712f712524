//! The HTTP client: chat completions (streamed and not), `GET /models`, with the three timeouts
//! a stream needs — connect, first token, and the gap between chunks — and no cap on the whole
//! answer.

use std::time::Duration;

use eventsource_stream::{Event as SseEvent, EventStreamError, Eventsource};
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use understudy_core::{Role, Turn};

use crate::error::{Error, ErrorKind};
use crate::headers::AnswerHeaders;

/// An OpenAI-compatible endpoint.
#[derive(Clone)]
pub struct ClientConfig {
    /// e.g. `https://api.openai.com/v1` (no trailing slash needed).
    pub base_url: String,
    /// Sent as `Authorization: Bearer`; never logged, never in errors.
    pub api_key: Option<String>,
    /// Name used in messages ("OpenAI").
    pub provider: String,
    pub connect_timeout: Duration,
    pub first_token_timeout: Duration,
    /// The first-token wait of a model that reasons before it answers and streams nothing
    /// meanwhile ([`reasons_silently`]); the longer of the two applies to it.
    pub reasoning_first_token_timeout: Duration,
    pub stall_timeout: Duration,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("provider", &self.provider)
            .field("connect_timeout", &self.connect_timeout)
            .field("first_token_timeout", &self.first_token_timeout)
            .field("reasoning_first_token_timeout", &self.reasoning_first_token_timeout)
            .field("stall_timeout", &self.stall_timeout)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: Role, content: &str) -> ChatMessage {
        ChatMessage { role, content: content.into() }
    }
}

impl From<&Turn> for ChatMessage {
    fn from(turn: &Turn) -> ChatMessage {
        ChatMessage::new(turn.role, &turn.content)
    }
}

/// The request body; only the fields Understudy sends.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<ChatMessage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    #[serde(default)]
    pub total_tokens: u32,
}

/// A complete (non-streamed) answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatResponse {
    pub model: String,
    pub content: String,
    pub finish_reason: Option<String>,
    pub usage: Option<Usage>,
    pub request_id: Option<String>,
}

/// A complete answer to a client's body ([`Client::chat_whole_body`]).
#[derive(Debug, Clone, PartialEq)]
pub struct WholeAnswer {
    /// The response's headers that describe the answer ([`crate::ANSWER_HEADERS`]), for a
    /// proxy to pass on.
    pub headers: AnswerHeaders,
    /// The body as it came: a proxy passes it on byte for byte.
    pub data: String,
    /// What it says.
    pub response: ChatResponse,
}

/// One step of a streamed answer.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// Text to append. `model` is the model that produced it.
    Delta { model: String, content: String },
    /// The choice finished (`stop`, `length`, ...).
    Finish { reason: String },
    /// Token counts (with `stream_options.include_usage`).
    Usage(Usage),
    /// Output that is not text — a tool-call, refusal or audio delta: the answer has begun
    /// (it counts as a first token) though there is no text to append. `tool_call` when it
    /// is part of a tool call, which can never be continued by another model.
    Part { model: String, tool_call: bool },
    /// The upstream's chunk (only from [`Client::chat_stream_body`]), given before the events
    /// it means: `data` as it came (the gateway passes it on byte for byte), `value` parsed.
    Chunk { data: String, value: Value },
    /// `[DONE]`: the answer is complete.
    Done,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ModelInfo {
    pub id: String,
    #[serde(default)]
    pub owned_by: Option<String>,
    /// When the provider made it (Unix seconds), where it says.
    #[serde(default)]
    pub created: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    config: ClientConfig,
}

impl Client {
    pub fn new(config: ClientConfig) -> Result<Client, Error> {
        // No overall timeout: a long answer may stream for minutes. The per-phase timeouts are
        // enforced around each await instead.
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            // Reused connections save a handshake, but servers commonly close idle ones after
            // 5 s (uvicorn, so vLLM, LiteLLM and llama-cpp-python; Node; Apache): a request
            // sent on one as it closes fails unanswered and would fail over. Dropped first.
            .pool_idle_timeout(POOL_IDLE)
            .user_agent(concat!("understudy/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::new(ErrorKind::Client, &config.provider, e.to_string()))?;
        Ok(Client { http, config })
    }

    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{}", self.config.base_url.trim_end_matches('/'), path.trim_start_matches('/'))
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut rb = self.http.request(method, self.url(path));
        if let Some(key) = &self.config.api_key {
            rb = rb.bearer_auth(key);
        }
        rb
    }

    /// Removes the key from a text that came from elsewhere (a server echoing it back).
    fn scrub(&self, text: String) -> String {
        match &self.config.api_key {
            Some(key) if key.len() >= 8 && text.contains(key.as_str()) => text.replace(key.as_str(), "<redacted>"),
            _ => text,
        }
    }

    fn transport(&self, e: &reqwest::Error, during_body: bool) -> Error {
        let text = self.scrub(chain(e));
        let lower = text.to_lowercase();
        let kind = if during_body {
            ErrorKind::Cut
        } else if lower.contains("dns") || lower.contains("failed to lookup") || lower.contains("name or service not known") {
            ErrorKind::Dns
        } else if lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake") {
            ErrorKind::Tls
        } else {
            ErrorKind::Connect
        };
        Error::new(kind, &self.config.provider, text)
    }

    /// Sends and checks the status; an error status becomes a classified [`Error`].
    async fn send(&self, rb: reqwest::RequestBuilder, wait: Duration, what: ErrorKind) -> Result<reqwest::Response, Error> {
        let response = match tokio::time::timeout(wait, rb.send()).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return Err(self.transport(&e, false)),
            Err(_) => return Err(Error::new(what, &self.config.provider, format!("no response within {}s", wait.as_secs_f32()))),
        };
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let request_id = header(&response, "x-request-id");
        let retry_after = retry_after(&response);
        let body = tokio::time::timeout(wait, response.text()).await.ok().and_then(Result::ok).unwrap_or_default();
        let (code, message, param) = error_object(&body);
        let mut err = Error::from_status(status, code, message.map(|m| self.scrub(m)), &self.config.provider);
        err.param = param.map(Box::new);
        err.request_id = request_id.map(String::into_boxed_str);
        err.retry_after = retry_after;
        Err(err)
    }

    /// `GET /models`: also the health probe.
    pub async fn models(&self) -> Result<Vec<ModelInfo>, Error> {
        let wait = self.config.first_token_timeout;
        let response = self.send(self.request(reqwest::Method::GET, "models"), wait, ErrorKind::FirstToken).await?;
        #[derive(Deserialize)]
        struct List {
            data: Vec<ModelInfo>,
        }
        let body = tokio::time::timeout(wait, response.bytes())
            .await
            .map_err(|_| Error::new(ErrorKind::Stall, &self.config.provider, "the model list did not arrive"))?;
        let body = body.map_err(|e| self.transport(&e, true))?;
        serde_json::from_slice::<List>(&body).map(|l| l.data).map_err(|e| Error::new(ErrorKind::Malformed, &self.config.provider, format!("model list: {e}")))
    }

    /// A complete answer in one response.
    pub async fn chat(&self, req: &ChatRequest) -> Result<ChatResponse, Error> {
        let wait = self.first_token_wait(&req.model, None);
        let body = request_body(req, false);
        let response = self.send(self.request(reqwest::Method::POST, "chat/completions").json(&body), wait, ErrorKind::FirstToken).await?;
        let request_id = header(&response, "x-request-id");
        let bytes = match tokio::time::timeout(self.config.stall_timeout, response.bytes()).await {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => return Err(self.transport(&e, true)),
            Err(_) => return Err(Error::new(ErrorKind::Stall, &self.config.provider, "the answer's body did not arrive")),
        };
        Ok(ChatResponse { request_id, ..self.completion(&bytes)? })
    }

    /// A complete answer to a body written elsewhere (a gateway client's that asked for no
    /// stream), sent as it is. Nothing of such an answer arrives before it is whole (OpenAI
    /// sends even the headers after the last token), so no wait is enforced here: the caller
    /// decides how long the provider may work, by checking that it still answers at all.
    pub async fn chat_whole_body(&self, body: Map<String, Value>) -> Result<WholeAnswer, Error> {
        let rb = self.request(reqwest::Method::POST, "chat/completions").json(&body);
        let response = self.send(rb, Duration::MAX, ErrorKind::FirstToken).await?;
        let headers = AnswerHeaders::of(response.headers());
        let request_id = headers.get("x-request-id").map(str::to_string);
        let with_id = |mut e: Error| {
            e.request_id = request_id.as_deref().map(Box::from);
            e
        };
        let bytes = response.bytes().await.map_err(|e| with_id(self.transport(&e, true)))?;
        let answer = self.completion(&bytes).map_err(with_id)?;
        // `completion` read it as JSON, which is UTF-8.
        let data = String::from_utf8_lossy(&bytes).into_owned();
        Ok(WholeAnswer { headers, data, response: ChatResponse { request_id, ..answer } })
    }

    /// What a completion's body says: its model, its first choice's text and finish reason, and
    /// the usage. An error object in its place is the provider's error.
    fn completion(&self, bytes: &[u8]) -> Result<ChatResponse, Error> {
        #[derive(Deserialize)]
        struct Completion {
            model: String,
            choices: Vec<Choice>,
            usage: Option<Usage>,
        }
        #[derive(Deserialize)]
        struct Choice {
            message: Reply,
            finish_reason: Option<String>,
        }
        // Only the text is read: whatever role a provider names its reply with. A reasoning
        // model whose limit ran out while it thought has none (`null` from some servers).
        #[derive(Deserialize)]
        struct Reply {
            #[serde(default)]
            content: Option<String>,
        }
        let provider = &self.config.provider;
        let c: Completion = serde_json::from_slice(bytes).map_err(|e| match error_body(&String::from_utf8_lossy(bytes)) {
            Some(o) => {
                let mut err = Error::new(ErrorKind::StreamError, provider, self.scrub(o.message.unwrap_or_default()));
                err.code = o.code.or(o.r#type);
                err
            }
            None => Error::new(ErrorKind::Malformed, provider, format!("completion: {e}")),
        })?;
        let choice = c.choices.into_iter().next().ok_or_else(|| Error::new(ErrorKind::Malformed, provider, "completion without choices"))?;
        Ok(ChatResponse {
            model: c.model,
            content: choice.message.content.unwrap_or_default(),
            finish_reason: choice.finish_reason,
            usage: c.usage,
            request_id: None,
        })
    }

    /// A streamed answer. Returns once the response headers arrived; the first chunk must come
    /// within the first-token timeout and each next one within the stall timeout.
    pub async fn chat_stream(&self, req: &ChatRequest) -> Result<ChatStream, Error> {
        let body = request_body(req, true);
        self.open_stream(&body, false).await
    }

    /// A streamed answer to a body written elsewhere (a gateway client's), sent as it is except
    /// for `stream: true` and `stream_options.include_usage: true` (the failover watches the
    /// stream and counts tokens; other `stream_options` stay). Each chunk also comes back raw
    /// ([`StreamEvent::Chunk`]) before what it means.
    pub async fn chat_stream_body(&self, mut body: Map<String, Value>) -> Result<ChatStream, Error> {
        body.insert("stream".into(), Value::Bool(true));
        let options = body.entry("stream_options").or_insert_with(|| Value::Object(Map::new()));
        if !options.is_object() {
            *options = Value::Object(Map::new());
        }
        if let Value::Object(o) = options {
            o.insert("include_usage".into(), Value::Bool(true));
        }
        self.open_stream(&Value::Object(body), true).await
    }

    /// How long the first token of an answer of `model` may take (`reasoning_effort` as the
    /// client set it): the first-token timeout, or for a model that reasons silently first
    /// the longer reasoning one.
    pub fn first_token_wait(&self, model: &str, reasoning_effort: Option<&str>) -> Duration {
        let c = &self.config;
        match reasons_silently(model, reasoning_effort) {
            true => c.first_token_timeout.max(c.reasoning_first_token_timeout),
            false => c.first_token_timeout,
        }
    }

    async fn open_stream(&self, body: &Value, raw: bool) -> Result<ChatStream, Error> {
        let model = body.get("model").and_then(Value::as_str).unwrap_or_default();
        let first_wait = self.first_token_wait(model, body.get("reasoning_effort").and_then(Value::as_str));
        // OpenAI sends a stream's headers at once, but a server may hold them back until its
        // first token: the same wait for both.
        let response = self.send(self.request(reqwest::Method::POST, "chat/completions").json(body), first_wait, ErrorKind::FirstToken).await?;
        let headers = AnswerHeaders::of(response.headers());
        Ok(ChatStream {
            events: response.bytes_stream().eventsource().boxed(),
            client: self.clone(),
            headers,
            got_first: false,
            first_wait,
            thinking: false,
            end: None,
            pending: std::collections::VecDeque::new(),
            raw,
            finished: false,
        })
    }
}

/// How long an idle connection is kept for the next request: under the 5 s after which many
/// servers close one (the official Python SDK's httpx keeps them 5 s too).
const POOL_IDLE: Duration = Duration::from_secs(4);

/// How long a finished stream's body may take to end before its connection is given up
/// (when a [`ChatStream`] is dropped).
const DRAIN: Duration = Duration::from_secs(2);

/// A streamed answer in progress. Errors end it; so does `Done`.
pub struct ChatStream {
    events: BoxStream<'static, Result<SseEvent, EventStreamError<reqwest::Error>>>,
    client: Client,
    /// The response's headers that describe the answer ([`crate::ANSWER_HEADERS`]), for a
    /// proxy to pass on; its `x-request-id` names the answer in errors.
    pub headers: AnswerHeaders,
    got_first: bool,
    /// How long the first token may take ([`Client::first_token_wait`]).
    first_wait: Duration,
    /// Reasoning has come (`reasoning_content` and the like) but no answer yet: the provider
    /// is at work, so the stall timeout applies until the first token (a `Stall` with nothing
    /// of the answer sent).
    thinking: bool,
    /// How it ended, once it has: `[DONE]`, after which only the body's end is left of it
    /// ([`Drop`]), or an error.
    end: Option<End>,
    /// Events of a chunk already read, reported next (a chunk may carry the last text and the
    /// finish reason together; a raw chunk comes before what it means).
    pending: std::collections::VecDeque<StreamEvent>,
    /// Give each chunk back raw as well.
    raw: bool,
    /// A finish reason has come: a usage chunk now ends the answer.
    finished: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Done,
    Failed,
}

impl Drop for ChatStream {
    /// After `[DONE]` the body's own end (HTTP/1.1's last chunk) often comes a moment later,
    /// and a body dropped before its end takes its connection with it: every next request
    /// would connect anew (a TCP and TLS handshake). Reading that end on a task of its own, for
    /// at most [`DRAIN`], hands the connection back to the pool without delaying the answer.
    /// A stream dropped before `[DONE]` still closes its connection, which is how an answer
    /// is cancelled upstream.
    fn drop(&mut self) {
        if self.end != Some(End::Done) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let mut rest = std::mem::replace(&mut self.events, futures_util::stream::empty().boxed());
        runtime.spawn(async move {
            let _ = tokio::time::timeout(DRAIN, async { while let Some(Ok(_)) = rest.next().await {} }).await;
        });
    }
}

impl std::fmt::Debug for ChatStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatStream").field("request_id", &self.headers.get("x-request-id")).field("end", &self.end).finish()
    }
}

impl ChatStream {
    /// The next event, or `None` after `Done` or an error.
    pub async fn next(&mut self) -> Option<Result<StreamEvent, Error>> {
        if self.end.is_some() {
            return None;
        }
        let result = self.step().await;
        self.end = match result {
            Ok(StreamEvent::Done) => Some(End::Done),
            Err(_) => Some(End::Failed),
            Ok(_) => None,
        };
        Some(result)
    }

    async fn step(&mut self) -> Result<StreamEvent, Error> {
        if let Some(e) = self.pending.pop_front() {
            return Ok(e);
        }
        let provider = self.client.config.provider.clone();
        loop {
            let (wait, kind) = match (self.got_first, self.thinking) {
                (true, _) => (self.client.config.stall_timeout, ErrorKind::Stall),
                // It was sending (its thinking) and stopped: a stall, though before any answer.
                (false, true) => (self.client.config.stall_timeout, ErrorKind::Stall),
                (false, false) => (self.first_wait, ErrorKind::FirstToken),
            };
            let item = match tokio::time::timeout(wait, self.events.next()).await {
                Err(_) => return Err(self.with_id(Error::new(kind, &provider, format!("nothing for {}s", wait.as_secs_f32())))),
                // The body ended before [DONE]: whatever came is not the whole answer.
                Ok(None) => return Err(self.with_id(Error::new(ErrorKind::Truncated, &provider, "the stream ended without [DONE]"))),
                Ok(Some(Err(EventStreamError::Transport(e)))) => return Err(self.with_id(self.client.transport(&e, true))),
                Ok(Some(Err(e))) => return Err(self.with_id(Error::new(ErrorKind::Malformed, &provider, e.to_string()))),
                Ok(Some(Ok(ev))) => ev,
            };
            let data = item.data.trim();
            if data.is_empty() {
                continue;
            }
            if data == "[DONE]" {
                return Ok(StreamEvent::Done);
            }
            let value: Value = match serde_json::from_str(data) {
                Ok(v) => v,
                Err(e) => return Err(self.with_id(Error::new(ErrorKind::Malformed, &provider, format!("chunk is not JSON: {e}")))),
            };
            let decoded = match decode_value(&value) {
                Ok(d) => d,
                Err(ChunkError::NotJson(e)) => return Err(self.with_id(Error::new(ErrorKind::Malformed, &provider, format!("chunk is not JSON: {e}")))),
                Err(ChunkError::Upstream { code, message }) => {
                    let mut e = Error::new(ErrorKind::StreamError, &provider, self.client.scrub(message));
                    e.code = code;
                    return Err(self.with_id(e));
                }
            };
            if !matches!(decoded, Decoded::Skip | Decoded::Thinking) {
                self.got_first = true;
            }
            match decoded {
                Decoded::Skip => {}
                Decoded::Thinking => self.thinking = true,
                Decoded::Usage(usage) => {
                    self.pending.push_back(StreamEvent::Usage(usage));
                    // OpenAI: the usage chunk "is streamed before the data: [DONE] message"
                    // and its choices are always empty, so once the answer has finished it
                    // is the end; `[DONE]` is left to the body's drain (`Drop`) instead of
                    // being waited for (a server may send it a moment later).
                    if self.finished {
                        self.pending.push_back(StreamEvent::Done);
                    }
                }
                Decoded::Finish(reason) => self.finish(reason),
                Decoded::Part { model, tool_call, finish } => {
                    self.pending.push_back(StreamEvent::Part { model, tool_call });
                    finish.into_iter().for_each(|reason| self.finish(reason));
                }
                Decoded::Delta { model, content, tool_call, finish } => {
                    self.pending.push_back(StreamEvent::Delta { model: model.clone(), content });
                    // Text and the start of a call in one chunk: the call has begun too.
                    if tool_call {
                        self.pending.push_back(StreamEvent::Part { model, tool_call });
                    }
                    finish.into_iter().for_each(|reason| self.finish(reason));
                }
            }
            self.pending.extend(usage_of(&value).map(StreamEvent::Usage));
            if self.raw {
                return Ok(StreamEvent::Chunk { data: data.to_string(), value });
            }
            if let Some(e) = self.pending.pop_front() {
                return Ok(e);
            }
        }
    }

    fn finish(&mut self, reason: String) {
        self.finished = true;
        self.pending.push_back(StreamEvent::Finish { reason });
    }

    fn with_id(&self, mut e: Error) -> Error {
        e.request_id = e.request_id.or_else(|| self.headers.get("x-request-id").map(Box::from));
        e
    }
}

/// What one SSE `data:` payload (not `[DONE]`) means.
#[derive(Debug, PartialEq)]
pub enum Decoded {
    Delta {
        model: String,
        content: String,
        /// The same chunk also begins or carries a tool call.
        tool_call: bool,
        finish: Option<String>,
    },
    /// A delta with output other than text (a tool call, a refusal, audio): an answer, not
    /// an empty chunk.
    Part {
        model: String,
        tool_call: bool,
        finish: Option<String>,
    },
    Finish(String),
    Usage(Usage),
    /// Reasoning without answer text (`reasoning_content` as DeepSeek and vLLM send it,
    /// `reasoning` as OpenRouter does, `reasoning_details`): the provider is at work, but the
    /// answer has not begun.
    Thinking,
    /// Role-only or empty deltas, chunks without choices: not part of the answer.
    Skip,
}

/// Why a payload is not an answer chunk.
#[derive(Debug, PartialEq)]
pub enum ChunkError {
    NotJson(String),
    /// A mid-stream `{"error": …}` chunk.
    Upstream {
        code: Option<String>,
        message: String,
    },
}

/// Decodes one chunk of a chat completion stream. Pure, so it can be fuzzed (fuzz/).
pub fn decode_chunk(data: &str) -> Result<Decoded, ChunkError> {
    let value: Value = serde_json::from_str(data).map_err(|e| ChunkError::NotJson(e.to_string()))?;
    decode_value(&value)
}

/// [`decode_chunk`] of a chunk already parsed.
/// Whether a streamed `delta` carries (part of) a tool call, the legacy `function_call`
/// included. The router's choice between continuing and restarting a cut answer and the
/// gateway's holding back of a call's chunks both read it, so they agree.
pub fn carries_tool_call(delta: &Value) -> bool {
    delta.get("tool_calls").is_some_and(|t| !t.is_null()) || delta.get("function_call").is_some_and(|f| !f.is_null())
}

pub fn decode_value(value: &Value) -> Result<Decoded, ChunkError> {
    let chunk = Chunk::deserialize(value).map_err(|e| ChunkError::NotJson(e.to_string()))?;
    if let Some(err) = chunk.error {
        return Err(ChunkError::Upstream { code: err.code.or(err.r#type), message: err.message.unwrap_or_else(|| "error in stream".into()) });
    }
    // A chunk without choices is usage alone (OpenAI's last chunk with `include_usage`); usage
    // on a chunk with choices (vLLM, Together, Mistral) is read apart ([`usage_of`]) so the
    // chunk's text and finish reason are not lost with it.
    let Some(choice) = chunk.choices.into_iter().next() else { return Ok(chunk.usage.map_or(Decoded::Skip, Decoded::Usage)) };
    let delta = choice.delta.unwrap_or_default();
    let tool_call = value.pointer("/choices/0/delta").is_some_and(carries_tool_call);
    let other =
        tool_call || delta.refusal.as_ref().is_some_and(|r| !r.is_null() && r.as_str() != Some("")) || delta.audio.as_ref().is_some_and(|a| !a.is_null());
    Ok(match (delta.content.filter(|c| !c.is_empty()), choice.finish_reason) {
        (Some(content), finish) => Decoded::Delta { model: chunk.model.unwrap_or_default(), content, tool_call, finish },
        (None, finish) if other => Decoded::Part { model: chunk.model.unwrap_or_default(), tool_call, finish },
        (None, Some(reason)) => Decoded::Finish(reason),
        (None, None) if value.pointer("/choices/0/delta").is_some_and(carries_reasoning) => Decoded::Thinking,
        (None, None) => Decoded::Skip,
    })
}

/// Whether a streamed `delta` carries reasoning (thinking shown apart from the answer).
fn carries_reasoning(delta: &Value) -> bool {
    ["reasoning_content", "reasoning", "reasoning_details"].iter().any(|k| match delta.get(*k) {
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        _ => false,
    })
}

/// The body of a request of Understudy's own (the window's, the CLI's, a probe's). A model that
/// reasons first ([`reasons_silently`]) takes its limit as `max_completion_tokens`: OpenAI
/// refuses `max_tokens` for its o-series and GPT-5 (400 `unsupported_parameter`, which made a
/// health probe of such a model fail); every other model keeps `max_tokens`, which every
/// compatible server knows. Unset fields are left out.
pub fn request_body(req: &ChatRequest, stream: bool) -> Value {
    let mut body = Map::new();
    body.insert("model".into(), Value::String(req.model.clone()));
    body.insert("messages".into(), serde_json::to_value(&req.messages).unwrap_or_default());
    if let Some(n) = req.max_tokens {
        let key = if reasons_silently(&req.model, None) { "max_completion_tokens" } else { "max_tokens" };
        body.insert(key.into(), n.into());
    }
    if let Some(t) = req.temperature {
        body.insert("temperature".into(), serde_json::json!(t));
    }
    body.insert("stream".into(), Value::Bool(stream));
    if stream {
        body.insert("stream_options".into(), serde_json::json!({ "include_usage": true }));
    }
    Value::Object(body)
}

/// Whether a request to `model` (`reasoning_effort` as the client set it) goes to a model that
/// reasons before it answers and, on Chat Completions, streams nothing while it does: OpenAI's
/// o-series and GPT-5 family (not its `-chat` models), or any model asked for a reasoning
/// effort other than "none". Their first token can take minutes on a hard question; a
/// provider prefix (`openai/o3`) is ignored.
pub fn reasons_silently(model: &str, reasoning_effort: Option<&str>) -> bool {
    if let Some(effort) = reasoning_effort {
        return !effort.trim().eq_ignore_ascii_case("none");
    }
    let name = model.rsplit('/').next().unwrap_or(model).trim().to_ascii_lowercase();
    let family = |prefix: &str, next: &[char]| name.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with(next));
    let o_series = ["o1", "o3", "o4"].iter().any(|p| family(p, &['-']));
    let gpt5 = family("gpt-5", &['-', '.']) && !name.contains("-chat");
    o_series || gpt5
}

/// The token counts a chunk with choices carries as well, if any.
fn usage_of(value: &Value) -> Option<Usage> {
    value.get("choices").and_then(Value::as_array).filter(|c| !c.is_empty())?;
    value.get("usage").filter(|u| !u.is_null()).and_then(|u| Usage::deserialize(u).ok())
}

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    choices: Vec<ChunkChoice>,
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default)]
    error: Option<ErrorObject>,
}

#[derive(Deserialize)]
struct ChunkChoice {
    #[serde(default)]
    delta: Option<Delta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<Value>,
    #[serde(default)]
    audio: Option<Value>,
}

#[derive(Deserialize)]
struct ErrorObject {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    r#type: Option<String>,
    #[serde(default)]
    param: Option<String>,
}

/// The `error` object of an OpenAI error body; `None` for any other body.
fn error_body(body: &str) -> Option<ErrorObject> {
    #[derive(Deserialize)]
    struct Body {
        error: ErrorObject,
    }
    serde_json::from_str::<Body>(body).ok().map(|b| b.error)
}

/// `error.code` (else `error.type`), `error.message` and `error.param` of an OpenAI error body;
/// of another body, its start as the message.
fn error_object(body: &str) -> (Option<String>, Option<String>, Option<String>) {
    match error_body(body) {
        Some(e) => (e.code.or(e.r#type), e.message, e.param),
        None => (None, (!body.trim().is_empty()).then(|| body.chars().take(300).collect()), None),
    }
}

fn header(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

/// `retry-after-ms` (OpenAI's, precise) first, then `retry-after` in seconds.
fn retry_after(r: &reqwest::Response) -> Option<Duration> {
    if let Some(ms) = header(r, "retry-after-ms").and_then(|v| v.trim().parse::<f64>().ok()) {
        return Some(Duration::from_secs_f64(ms.max(0.0) / 1000.0));
    }
    header(r, "retry-after").and_then(|v| v.trim().parse::<f64>().ok()).map(|s| Duration::from_secs_f64(s.max(0.0)))
}

/// The error and its sources, one line: reqwest's own text hides the cause.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
