//! The router as an OpenAI-compatible API on loopback (design.md section 2, Gateway): other
//! tools point `OPENAI_BASE_URL` here and get the same failover as the window.
//!
//! `POST /v1/chat/completions` (streamed and not, `stream_options.include_usage`),
//! `GET /v1/models`, `GET /understudy/status`. `x-understudy-provider` names the provider that
//! began the answer, `x-understudy-failover` why it is not the primary; in a stream each chunk's
//! `model` is the model that wrote it. Requests whose Host is not loopback get 403 (DNS
//! rebinding), and so does whatever a web page could send (`guard`: another Origin,
//! `Sec-Fetch-Site` cross-site/same-site; 415 for a body that is not JSON); a bearer token
//! (the app's per-install one, `understudy serve`'s from env or file); no CORS; the client's
//! Authorization is never sent upstream (the router uses the stored key). `listen`: header-read
//! timeout and connection cap.

mod guard;
mod listen;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Json;
use serde_json::{json, Map, Value};
use understudy_local::tools::{self, ToolChoice, ToolFormat, ToolStream};
use understudy_local::ResponseFormat;
use understudy_openai::AnswerHeaders;
use understudy_router::chain::{Chain, LocalModel};
use understudy_router::{Answer, ChatError, ChatRequest, ErrorClass, Event, FinishReason, Role, Router, Sampling, Turn};

pub use guard::new_token;
pub use listen::Limits;

/// Request bodies above this are refused (413): OpenAI takes up to 50 MB of images, base64 in
/// the JSON, in one request.
pub const MAX_BODY: usize = 50 * 1024 * 1024;

/// Bodies up to this are read as they come. A larger one must declare its `Content-Length`, and
/// takes that many bytes of [`Limits::large_bodies`] until its answer ends, so a few large
/// requests cannot make the gateway hold gigabytes.
pub const FREE_BODY: usize = 8 * 1024 * 1024;

const MIB: u64 = 1024 * 1024;

#[derive(Clone, Default)]
pub struct GatewayConfig {
    /// Required as `Authorization: Bearer <token>` when set.
    pub token: Option<String>,
    pub limits: Limits,
}

impl std::fmt::Debug for GatewayConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayConfig").field("token", &self.token.as_ref().map(|_| "<redacted>")).field("limits", &self.limits).finish()
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    #[error("the gateway listens on loopback only; {0} is not a loopback address")]
    NotLoopback(SocketAddr),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("the gateway stopped: {0}")]
    Serve(std::io::Error),
}

#[derive(Clone)]
struct App {
    router: Router,
    cfg: GatewayConfig,
    /// [`Limits::large_bodies`] in MiB: each body over [`FREE_BODY`] holds its size (rounded
    /// up) until its answer ends.
    large: Arc<tokio::sync::Semaphore>,
}

/// The HTTP application (for tests and embedding).
pub fn app(router: Router, cfg: GatewayConfig) -> axum::Router {
    // Never less than one largest body, which would otherwise wait for ever.
    let large_mib = cfg.limits.large_bodies.max(MAX_BODY as u64).div_ceil(MIB);
    let large = Arc::new(tokio::sync::Semaphore::new(usize::try_from(large_mib).unwrap_or(usize::MAX).min(tokio::sync::Semaphore::MAX_PERMITS)));
    let state = App { router, cfg, large };
    axum::Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/models", get(models))
        .route("/v1/models/{*id}", get(model))
        .route("/understudy/status", get(status))
        .fallback(unknown_endpoint)
        .method_not_allowed_fallback(wrong_method)
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .layer(middleware::map_response(guard::harden))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// Serves on `addr` (loopback only) until `shutdown` completes; then stops accepting and lets
/// the streams in flight finish.
pub async fn serve(
    router: Router,
    cfg: GatewayConfig,
    addr: SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), GatewayError> {
    let listener = bind(addr)?;
    let limits = cfg.limits;
    listen::run(listener, app(router, cfg), limits, shutdown).await
}

fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, GatewayError> {
    if !addr.ip().is_loopback() {
        return Err(GatewayError::NotLoopback(addr));
    }
    let listener = listen_on(addr).map_err(|source| GatewayError::Bind { addr, source })?;
    tracing::info!(%addr, "gateway listening");
    Ok(listener)
}

/// Connections the kernel may hold before they are accepted. `TcpListener::bind` asks for 128:
/// a burst of new connections (a client opening many at once, or a flood of half-sent ones)
/// overflows that, and each one over it waits about a second for its SYN to be retried. The
/// kernel caps it at its own maximum (`net.core.somaxconn`, 4096 on Linux since 5.4).
const BACKLOG: u32 = 4096;

fn listen_on(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    // As `TcpListener::bind` does: a restarted gateway can bind its port again at once. (On
    // Windows this would let another program bind the port in use.)
    #[cfg(not(windows))]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// A gateway serving in the background (the desktop app's Settings switch): listening once
/// [`start`] returns, until [`Running::stop`].
#[derive(Debug)]
pub struct Running {
    pub addr: SocketAddr,
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<Result<(), GatewayError>>,
}

/// Binds `addr` (a port in use is an error here, not later) and serves on its own task.
pub async fn start(router: Router, cfg: GatewayConfig, addr: SocketAddr) -> Result<Running, GatewayError> {
    let listener = bind(addr)?;
    // The port actually bound (port 0 asks for any free one).
    let addr = listener.local_addr().unwrap_or(addr);
    let stop = tokio_util::sync::CancellationToken::new();
    let shutdown = stop.clone().cancelled_owned();
    let limits = cfg.limits;
    let task = tokio::spawn(listen::run(listener, app(router, cfg), limits, shutdown));
    Ok(Running { addr, stop, task })
}

impl Running {
    /// Stops accepting at once; answers in flight get up to `grace` to finish, then are cut.
    pub async fn stop(self, grace: Duration) {
        self.stop.cancel();
        let abort = self.task.abort_handle();
        if tokio::time::timeout(grace, self.task).await.is_err() {
            abort.abort();
        }
        tracing::info!(addr = %self.addr, "gateway stopped");
    }
}

/// What the gateway serves, for the error a client gets from anything else.
const SERVED: &str = "The Understudy gateway serves POST /v1/chat/completions, GET /v1/models, GET /v1/models/{model} and GET /understudy/status";

/// Any other path (`/v1/responses`, `/v1/embeddings`, `/v1/completions`, …): OpenAI's 404 for
/// an unknown URL, saying what is served instead, so a client's error names the cause.
async fn unknown_endpoint(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    let message = format!("Invalid URL ({method} {}): {SERVED}; send this request to OpenAI directly.", uri.path());
    error(StatusCode::NOT_FOUND, "invalid_request_error", Some("unknown_url"), &message)
}

/// A served path asked with another method (`GET /v1/chat/completions`): OpenAI's 405, as
/// JSON rather than an empty body.
async fn wrong_method(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    let message = format!("Invalid method for URL ({method} {}): {SERVED}.", uri.path());
    error(StatusCode::METHOD_NOT_ALLOWED, "invalid_request_error", Some("method_not_allowed"), &message)
}

/// OpenAI's error shape, so SDKs raise their usual exceptions.
fn error(status: StatusCode, kind: &str, code: Option<&str>, message: &str) -> Response {
    (status, Json(json!({ "error": { "message": message, "type": kind, "param": null, "code": code } }))).into_response()
}

/// The browser checks and the token (`guard`), then the body, read within `body_read`: a
/// request that stalls after its header is not kept forever. A body over [`FREE_BODY`] first
/// waits (within the same time) for its share of `large_bodies`, which it holds until its
/// answer's body ends.
async fn guard(State(app): State<App>, req: Request, next: Next) -> Response {
    if let Some(refused) = guard::refuse(&req, app.cfg.token.as_deref()) {
        return refused;
    }
    if req.method() != axum::http::Method::POST {
        return next.run(req).await;
    }
    let deadline = tokio::time::Instant::now() + app.cfg.limits.body_read;
    // `refuse` has turned away a declared length over MAX_BODY.
    let declared = guard::declared_length(req.headers()).filter(|&n| n > FREE_BODY as u64);
    let (limit, held) = match declared {
        None => (FREE_BODY, None),
        Some(n) => {
            let mib = u32::try_from(n.div_ceil(MIB)).unwrap_or(u32::MAX);
            match tokio::time::timeout_at(deadline, app.large.clone().acquire_many_owned(mib)).await {
                Ok(Ok(permit)) => (usize::try_from(n).unwrap_or(MAX_BODY), Some(permit)),
                _ => {
                    let mut r = error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "server_error",
                        Some("busy"),
                        "The gateway is holding as many large requests as it may at once; try again in a moment.",
                    );
                    r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(1));
                    return r;
                }
            }
        }
    };
    let (parts, body) = req.into_parts();
    let body = match tokio::time::timeout_at(deadline, axum::body::to_bytes(body, limit)).await {
        Ok(Ok(b)) => b,
        Ok(Err(_)) => {
            let message = "The request body is too large (50 MiB at most; over 8 MiB only with a Content-Length that says its size) or was cut off.";
            return error(StatusCode::PAYLOAD_TOO_LARGE, "invalid_request_error", None, message);
        }
        Err(_) => return error(StatusCode::REQUEST_TIMEOUT, "invalid_request_error", None, "The request body did not arrive in time."),
    };
    let response = next.run(Request::from_parts(parts, Body::from(body))).await;
    match held {
        None => response,
        Some(permit) => response.map(|body| Body::new(Holding { body, _permit: permit })),
    }
}

/// An answer's body that holds its request's share of `large_bodies` until it ends (a streamed
/// answer keeps its request, in the router, until then).
struct Holding {
    body: Body,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl http_body::Body for Holding {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

fn now_s() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Message content as the offline model reads it: a string, or the text parts of a content
/// array. A part it cannot read (an image, audio, a file) is a reason to refuse, never dropped.
fn text_of(content: &Value, i: usize, refusals: &mut Vec<String>) -> Option<String> {
    match content {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => {
            let mut text = String::new();
            for part in parts {
                match part.get("type").and_then(Value::as_str) {
                    Some("text") | None if part.get("text").is_some() => text.push_str(part.get("text").and_then(Value::as_str).unwrap_or_default()),
                    Some("refusal") => text.push_str(part.get("refusal").and_then(Value::as_str).unwrap_or_default()),
                    Some("image_url") => refusals.push(format!("messages[{i}] has an image, and the offline model reads text only")),
                    Some("input_audio") => refusals.push(format!("messages[{i}] has audio, and the offline model reads text only")),
                    Some("file") => refusals.push(format!("messages[{i}] has a file, and the offline model reads text only")),
                    Some(other) => refusals.push(format!("messages[{i}] has a content part of type {other:?}, which it cannot read")),
                    None => return None,
                }
            }
            Some(text)
        }
        Value::Null => Some(String::new()),
        _ => None,
    }
}

struct Parsed {
    request: ChatRequest,
    stream: bool,
    include_usage: bool,
    tools: ToolUse,
}

/// What a request asks of the offline model's tool support; whether it gets it depends on the
/// model's chat template ([`Parsed::offline_tools`]).
#[derive(Debug, Default)]
struct ToolUse {
    /// OpenAI's tool objects (`tools`).
    offered: Vec<Value>,
    choice: ToolChoice,
    /// The history has assistant tool calls or tool results (the template must render them).
    in_history: bool,
    /// `parallel_tool_calls: false`: at most one call.
    single: bool,
}

/// How the offline model's answer is read for calls: its template's format, and how many
/// calls the client takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CallReader {
    format: ToolFormat,
    max: usize,
}

/// Request fields the offline model has no use for and may ignore without changing the answer
/// a client gets: bookkeeping, hints, and what matters only with tools (refused anyway).
const IGNORED_OFFLINE: &[&str] = &[
    "user",
    "store",
    "metadata",
    "service_tier",
    "reasoning_effort",
    "verbosity",
    "prompt_cache_key",
    "safety_identifier",
    "prediction",
    "function_call",
    "top_logprobs",
];

/// A 400 naming what is wrong with the request.
fn bad(message: &str) -> Box<Response> {
    Box::new(error(StatusCode::BAD_REQUEST, "invalid_request_error", None, message))
}

/// Reads what the gateway and the offline model need; the body itself goes to the cloud
/// provider unchanged (`ChatRequest::raw`). What the offline model cannot honour is collected
/// into `offline_refusal`, so it is refused clearly rather than answered with it dropped.
fn parse(body: &Bytes) -> Result<Parsed, Box<Response>> {
    let v: Value = serde_json::from_slice(body).map_err(|e| bad(&format!("The body is not valid JSON: {e}")))?;
    let Value::Object(raw) = v else { return Err(bad("The body must be a JSON object.")) };
    let model = match raw.get("model") {
        Some(Value::String(m)) => m.clone(),
        None | Some(Value::Null) => return Err(bad("`model` is required.")),
        Some(_) => return Err(bad("`model` must be a string.")),
    };
    let list = raw.get("messages").and_then(Value::as_array).filter(|m| !m.is_empty()).ok_or_else(|| bad("`messages` must be a non-empty array."))?;
    let mut refusals = Vec::new();
    let mut tool_use = ToolUse::default();
    let (messages, offline) = read_messages(list, &mut refusals, &mut tool_use)?;
    let (max_tokens, mut sampling) = read_sampling(&raw)?;
    let format = read_options(&raw, &mut refusals, &mut tool_use)?;
    // Converted now, so a schema the grammar cannot express is refused before any answer.
    match format.as_ref().map(ResponseFormat::grammar) {
        Some(Ok(g)) => sampling.grammar = Some(g),
        Some(Err(e)) => refusals.push(e.to_string()),
        None => {}
    }
    let (provider, upstream_model) = match model.strip_prefix("local/") {
        Some(_) => (Some(Chain::local_id().to_string()), None),
        None => (None, Some(model)),
    };
    let stream = raw.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let include_usage = raw.get("stream_options").and_then(|o| o.get("include_usage")).and_then(Value::as_bool).unwrap_or(false);
    refusals.dedup();
    let offline_refusal = (!refusals.is_empty()).then(|| refusals.join("; "));
    let offline_messages = tool_use.in_history.then_some(offline);
    Ok(Parsed {
        request: ChatRequest {
            messages,
            model: upstream_model,
            provider,
            max_tokens,
            raw: Some(raw),
            sampling,
            offline_refusal,
            tools: None,
            offline_messages,
        },
        stream,
        include_usage,
        tools: tool_use,
    })
}

/// The request's messages as turns for the router, and as the offline model's template reads
/// them (tool calls and results kept); notes what the offline model cannot take.
fn read_messages(list: &[Value], refusals: &mut Vec<String>, tool_use: &mut ToolUse) -> Result<(Vec<Turn>, Vec<understudy_local::Message>), Box<Response>> {
    let mut messages = Vec::with_capacity(list.len());
    // The same turns as the offline model's template reads them, tool calls and results kept.
    let mut offline = Vec::with_capacity(list.len());
    for (i, m) in list.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str).ok_or_else(|| bad(&format!("messages[{i}].role is required.")))?;
        let role = match role {
            "developer" | "system" => Role::System,
            "user" => Role::User,
            "assistant" => Role::Assistant,
            "tool" => Role::Tool,
            "function" => {
                refusals.push(format!("messages[{i}] is a legacy function result, and the offline model takes tool results as `tool` messages"));
                Role::Tool
            }
            _ => return Err(bad(&format!("messages[{i}].role {role:?} is not supported."))),
        };
        let has = |k: &str| m.get(k).is_some_and(|t| !t.is_null() && t.as_array().is_none_or(|a| !a.is_empty()));
        if has("function_call") {
            refusals.push(format!("messages[{i}] has a legacy function call, and the offline model takes `tool_calls`"));
        }
        if has("audio") {
            refusals.push(format!("messages[{i}] refers to audio, and the offline model reads text only"));
        }
        let content = text_of(m.get("content").unwrap_or(&Value::Null), i, refusals)
            .ok_or_else(|| bad(&format!("messages[{i}].content must be a string or an array of parts.")))?;
        messages.push(Turn::new(role, &content));
        let mut local = understudy_local::Message::new(role, &content);
        if has("tool_calls") {
            local.tool_calls = m.get("tool_calls").and_then(Value::as_array).map(|calls| tools::for_template(calls));
        }
        if role == Role::Tool {
            local.tool_call_id = Some(m.get("tool_call_id").and_then(Value::as_str).unwrap_or_default().to_string());
        }
        tool_use.in_history |= local.is_tool_turn();
        offline.push(local);
    }
    Ok((messages, offline))
}

/// `max_tokens` (or `max_completion_tokens`) and the sampling settings the offline model uses.
fn read_sampling(raw: &Map<String, Value>) -> Result<(Option<u32>, Sampling), Box<Response>> {
    let number = |k: &str| -> Result<Option<f64>, Box<Response>> {
        match raw.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(n) => n.as_f64().map(Some).ok_or_else(|| bad(&format!("`{k}` must be a number."))),
        }
    };
    let max_tokens = match (number("max_completion_tokens")?, number("max_tokens")?) {
        (Some(n), _) | (None, Some(n)) => Some(n.clamp(0.0, f64::from(u32::MAX)) as u32),
        (None, None) => None,
    };
    let stop = match raw.get("stop") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => a.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        Some(_) => return Err(bad("`stop` must be a string or an array of strings.")),
    };
    let sampling = Sampling {
        temperature: number("temperature")?.map(|n| n as f32),
        top_p: number("top_p")?.map(|n| n as f32),
        min_p: number("min_p")?.map(|n| n as f32),
        top_k: number("top_k")?.map(|n| n.clamp(0.0, f64::from(i32::MAX)) as i32),
        // OpenAI's seed is an i64; the engine's a u32: the low 32 bits, so equal seeds agree.
        seed: raw.get("seed").and_then(|s| s.as_i64().or_else(|| s.as_u64().map(|u| u as i64))).map(|s| s as u32),
        stop,
        presence_penalty: number("presence_penalty")?.map(|n| n as f32),
        frequency_penalty: number("frequency_penalty")?.map(|n| n as f32),
        grammar: None,
    };
    Ok((max_tokens, sampling))
}

/// Reads every other field for what the offline model can honour: tools, `tool_choice`, the
/// response format (returned, for its grammar); the rest is ignored when harmless, else noted
/// in `refusals`.
fn read_options(raw: &Map<String, Value>, refusals: &mut Vec<String>, tool_use: &mut ToolUse) -> Result<Option<ResponseFormat>, Box<Response>> {
    let mut format = None;
    let set = |k: &str| raw.get(k).is_some_and(|v| !v.is_null() && v != &Value::Bool(false) && v.as_array().is_none_or(|a| !a.is_empty()));
    for (k, v) in raw {
        match k.as_str() {
            "model"
            | "messages"
            | "stream"
            | "stream_options"
            | "max_tokens"
            | "max_completion_tokens"
            | "temperature"
            | "top_p"
            | "min_p"
            | "top_k"
            | "seed"
            | "stop"
            | "presence_penalty"
            | "frequency_penalty" => {}
            "n" if v.as_u64().is_none_or(|n| n > 1) && !v.is_null() => refusals.push("it asks for several answers (n > 1)".into()),
            // Whether the offline model can take them depends on its template: `offline_tools`.
            "tools" if set(k) => match v.as_array() {
                Some(list) => tool_use.offered.clone_from(list),
                None => return Err(bad("`tools` must be an array.")),
            },
            "parallel_tool_calls" => tool_use.single = v == &Value::Bool(false),
            "tool_choice" => match ToolChoice::from_openai(Some(v)) {
                Some(choice) => tool_use.choice = choice,
                None => refusals.push(format!("its tool_choice {v} is not one the offline model knows")),
            },
            "functions" if set(k) => refusals.push("it offers legacy `functions`, and the offline model takes `tools`".into()),
            // JSON mode and structured outputs: the offline model is held to them by a grammar.
            "response_format" => match v.get("type").and_then(Value::as_str) {
                None | Some("text") => {}
                Some("json_object") => format = Some(ResponseFormat::JsonObject),
                Some("json_schema") => match v.get("json_schema").and_then(|j| j.get("schema")) {
                    Some(schema) => format = Some(ResponseFormat::JsonSchema(schema.clone())),
                    None => refusals.push("its response_format json_schema has no schema".into()),
                },
                Some(other) => refusals.push(format!("it asks for response_format {other:?}")),
            },
            "logprobs" if set(k) => refusals.push("it asks for logprobs, which the offline model does not report".into()),
            "logit_bias" if v.as_object().is_some_and(|o| !o.is_empty()) => refusals.push("it sets logit_bias, whose token ids are OpenAI's".into()),
            "modalities" if v.as_array().is_some_and(|a| a.iter().any(|m| m != "text")) => refusals.push("it asks for audio output".into()),
            "audio" | "web_search_options" if set(k) => refusals.push(format!("it sets `{k}`, which the offline model cannot honour")),
            _ if v.is_null() || IGNORED_OFFLINE.contains(&k.as_str()) => {}
            "n" | "tools" | "functions" | "logprobs" | "logit_bias" | "modalities" | "audio" | "web_search_options" => {}
            _ => refusals.push(format!("it sets `{k}`, which the offline model does not know")),
        }
    }
    Ok(format)
}

impl Parsed {
    /// Whether the offline model must know tools for this request (offered and not
    /// `tool_choice` "none", or tool calls / results in the history).
    fn needs_tools(&self) -> bool {
        self.shows_tools() || self.tools.in_history
    }

    fn shows_tools(&self) -> bool {
        !self.tools.offered.is_empty() && self.tools.choice != ToolChoice::None
    }

    /// Fits the request to the offline model's tool support (`format`, from its chat template):
    /// the tools go to its template, `tool_choice` "required" or a named function becomes the
    /// grammar of one call; without support it is refused in words. Returns how to read the
    /// model's calls back, when tools are shown to it.
    fn offline_tools(&mut self, format: Option<ToolFormat>) -> Option<CallReader> {
        if !self.needs_tools() {
            return None;
        }
        let shows = self.shows_tools();
        let refusal = &mut self.request.offline_refusal;
        let mut refuse = |why: String| {
            *refusal = Some(match refusal.take() {
                Some(before) => format!("{before}; {why}"),
                None => why,
            });
        };
        let Some(format) = format else {
            refuse(if shows {
                "it offers tools, and the offline model's chat template has no tool support".into()
            } else {
                "its history has tool calls or tool results, and the offline model's chat template has no tool support".into()
            });
            return None;
        };
        if !shows {
            return None;
        }
        let forced: Vec<Value> = match &self.tools.choice {
            ToolChoice::Required => self.tools.offered.clone(),
            ToolChoice::Function(name) => {
                let named: Vec<Value> =
                    self.tools.offered.iter().filter(|t| t.pointer("/function/name").and_then(Value::as_str) == Some(name)).cloned().collect();
                if named.is_empty() {
                    refuse(format!("its tool_choice names {name:?}, which is not among its tools"));
                    return None;
                }
                named
            }
            ToolChoice::Auto | ToolChoice::None => Vec::new(),
        };
        if forced.is_empty() {
            // A response_format grammar would leave the model no way to call a tool.
            if self.request.sampling.grammar.is_some() {
                refuse("it offers tools together with a response_format, and the offline model cannot be held to both".into());
                return None;
            }
        } else {
            // The answer is a call, which no response_format governs.
            match tools::forcing_grammar(format, &forced) {
                Ok(g) => self.request.sampling.grammar = Some(g),
                Err(e) => {
                    refuse(format!("its tools' parameters: {e}"));
                    return None;
                }
            }
        }
        self.request.tools = Some(self.tools.offered.clone());
        Some(CallReader { format, max: if self.tools.single { 1 } else { usize::MAX } })
    }
}

/// The offline model's tool-call format, read from its GGUF's chat template (cached per file).
async fn local_tool_format(router: &Router) -> Option<ToolFormat> {
    let LocalModel::Ready { path, .. } = &router.chain().local else { return None };
    let path = path.clone();
    tokio::task::spawn_blocking(move || ToolFormat::of_model(&path)).await.ok().flatten()
}

/// A call as OpenAI writes it in a message, with an id of its own.
fn openai_call(call: &tools::ToolCall) -> Value {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    json!({ "id": format!("call_understudy_{}_{n}", now_s()), "type": "function", "function": { "name": call.name, "arguments": call.arguments } })
}

/// A failure before any answer, as an HTTP error: the upstream's status where there was one,
/// with its `Retry-After` and `x-request-id`.
fn chat_error(e: &ChatError) -> Response {
    let status = match (e.class, e.status) {
        // The offline model's queue is full: OpenAI's rate-limit answer, so SDKs back off and retry.
        (ErrorClass::Busy, _) => StatusCode::TOO_MANY_REQUESTS,
        (_, Some(s)) => StatusCode::from_u16(s).unwrap_or(StatusCode::BAD_GATEWAY),
        (ErrorClass::Setup, _) => StatusCode::SERVICE_UNAVAILABLE,
        (ErrorClass::Local, _) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_GATEWAY,
    };
    let kind = match status.as_u16() {
        400 | 404 | 422 => "invalid_request_error",
        401 | 403 => "authentication_error",
        429 => "rate_limit_error",
        _ => "server_error",
    };
    // `param`: the request field the provider's error is about, as SDKs expose it.
    let mut r = (status, Json(json!({ "error": { "message": e.to_string(), "type": kind, "param": e.param, "code": e.code } }))).into_response();
    // The SDKs wait this long before their own retry (else a backoff of their own, from 0.5 s).
    if let Some(after) = e.retry_after {
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(after));
    }
    if let Some(id) = e.request_id.as_deref().and_then(|id| HeaderValue::from_str(id).ok()) {
        r.headers_mut().insert("x-request-id", id);
    }
    r
}

/// The answering provider's headers that describe its answer, as it sent them: only those of
/// `understudy_openai::ANSWER_HEADERS` (its request id, which SDKs show as `_request_id`,
/// processing time, API version, organization and project, rate-limit state), never hop-by-hop,
/// body or cookie headers.
fn pass_on(headers: &mut HeaderMap, upstream: Option<&AnswerHeaders>) {
    for (name, value) in upstream.into_iter().flat_map(AnswerHeaders::iter) {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), v);
        }
    }
}

fn provenance(headers: &mut HeaderMap, provider: &str, failover: Option<&str>) {
    if let Ok(v) = HeaderValue::from_str(provider) {
        headers.insert("x-understudy-provider", v);
    }
    // Header values must be visible ASCII; reasons are plain English, anything else is dropped.
    if let Some(v) = failover.map(|r| r.replace(|c: char| !c.is_ascii() || c.is_ascii_control(), " ")).and_then(|r| HeaderValue::from_str(&r).ok()) {
        headers.insert("x-understudy-failover", v);
    }
}

/// Client headers OpenAI reads that are not sent upstream: the router asks with the stored
/// key, and the key decides the organization and project (another organization's or project's
/// header would make OpenAI refuse the key, and the failover would take that for an outage);
/// the others mean nothing to chat completions or would follow the answer to another provider
/// or a retry. The response names those the client sent, in `x-understudy-not-forwarded`.
const NOT_FORWARDED: &[&str] = &["openai-organization", "openai-project", "openai-beta", "idempotency-key", "x-client-request-id"];

async fn chat_completions(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    let mut r = answer(app, body).await;
    let dropped: Vec<&str> = NOT_FORWARDED.iter().copied().filter(|h| headers.contains_key(*h)).collect();
    if let Ok(v) = HeaderValue::from_str(&dropped.join(", ")) {
        if !dropped.is_empty() {
            r.headers_mut().insert("x-understudy-not-forwarded", v);
        }
    }
    r
}

async fn answer(app: App, body: Bytes) -> Response {
    let mut p = match parse(&body) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let tool_format = match p.needs_tools() {
        true => p.offline_tools(local_tool_format(&app.router).await),
        false => None,
    };
    let mut answer = app.router.chat(p.request);
    // The first event decides the status and the headers: who begins the answer, or the error.
    let (provider, model, failover, described) = loop {
        match answer.next().await {
            Some(Event::Started { provider, model, failover, headers, .. }) => break (provider, model, failover, headers),
            Some(Event::Error { error }) => return chat_error(&error),
            Some(_) => continue,
            None => return error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", None, "The answer ended before it began."),
        }
    };
    // A cloud provider's answer comes as its own chunks (`Event::Upstream`), passed on as they
    // are; the offline model's (from the start or after a switch) is written here.
    let upstream = provider != Chain::local_id();
    let id = format!("chatcmpl-understudy-{}", now_s());
    if p.stream {
        let mut r = Response::new(Body::from_stream(sse(answer, id, model, p.include_usage, upstream, tool_format, app.cfg.limits.keep_alive)));
        let h = r.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        pass_on(h, described.as_ref());
        provenance(h, &provider, failover.as_deref());
        return r;
    }
    let mut collected = match Collected::read(&mut answer, model).await {
        Ok(c) => c,
        Err(error) => return chat_error(&error),
    };
    let left_out = collected.left_out;
    let mut r = match collected.whole.take() {
        // The provider's completion, byte for byte.
        Some(body) => ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response(),
        None => Json(collected.completion(&id, tool_format)).into_response(),
    };
    pass_on(r.headers_mut(), described.as_ref());
    provenance(r.headers_mut(), &provider, failover.as_deref());
    // The offline model's context could not hold the whole conversation: say so, never cut silently.
    if left_out > 0 {
        r.headers_mut().insert("x-understudy-left-out", HeaderValue::from(left_out));
    }
    r
}

/// A non-streamed answer: a cloud provider's completion as it came, or the offline model's
/// text with how it ended.
struct Collected {
    /// The cloud provider's completion, byte for byte.
    whole: Option<String>,
    text: String,
    reasoning: String,
    finish: FinishReason,
    /// (prompt, completion) tokens.
    usage: Option<(u32, u32)>,
    /// The model that wrote the answer.
    model: String,
    left_out: u32,
}

impl Collected {
    /// Reads the rest of the answer (`model` began it).
    async fn read(answer: &mut Answer, model: String) -> Result<Collected, ChatError> {
        let mut c = Collected { whole: None, text: String::new(), reasoning: String::new(), finish: FinishReason::Stop, usage: None, model, left_out: 0 };
        while let Some(e) = answer.next().await {
            match e {
                Event::Whole { body } => c.whole = Some(body),
                Event::Token { text: t } => c.text.push_str(&t),
                Event::Usage { prompt_tokens, completion_tokens } => c.usage = Some((prompt_tokens, completion_tokens)),
                Event::Done { finish_reason, .. } => {
                    c.finish = finish_reason;
                    break;
                }
                Event::Error { error } => return Err(error),
                Event::LeftOut { messages } => c.left_out = messages,
                Event::Reasoning { text: t } => c.reasoning.push_str(&t),
                // A whole answer is never continued: a failed one left the client nothing,
                // and a stream's chunks come only to a client that asked for one.
                Event::Started { .. } | Event::Switched { .. } | Event::Upstream { .. } => {}
            }
        }
        Ok(c)
    }

    /// The offline model's answer as OpenAI's chat completion.
    fn completion(self, id: &str, tool_format: Option<CallReader>) -> Value {
        let Collected { mut text, reasoning, mut finish, usage, model, .. } = self;
        let usage = usage.map(|(p, c)| json!({ "prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c }));
        // Its calls, read back from its text in its template's format.
        let calls: Vec<Value> = match tool_format {
            Some(reader) => {
                let (rest, mut calls) = tools::parse(reader.format, &text);
                calls.truncate(reader.max);
                if !calls.is_empty() {
                    text = rest;
                    finish = FinishReason::ToolCalls;
                }
                calls.iter().map(openai_call).collect()
            }
            None => Vec::new(),
        };
        // OpenAI: `content` null when the answer is only tool calls.
        let content = if text.is_empty() && !calls.is_empty() { Value::Null } else { Value::String(text) };
        let mut message = json!({ "role": "assistant", "content": content, "refusal": null });
        if !calls.is_empty() {
            message["tool_calls"] = Value::Array(calls);
        }
        // A reasoning model's thinking goes where DeepSeek's API and OpenRouter put it.
        if !reasoning.is_empty() {
            message["reasoning_content"] = json!(reasoning);
        }
        json!({
            "id": id, "object": "chat.completion", "created": now_s(), "model": model,
            "choices": [{ "index": 0, "message": message, "logprobs": null, "finish_reason": finish.as_str() }],
            "usage": usage,
        })
    }
}

/// An upstream chunk as the client asked for it: as it came (byte for byte), except that the
/// usage the failover forced on is taken out again when the client did not ask for it (the
/// usage-only chunk, and `usage: null`).
fn upstream_chunk(mut chunk: Value, data: String, include_usage: bool) -> Option<Bytes> {
    if include_usage || chunk.get("usage").is_none() {
        return Some(Bytes::from(format!("data: {data}\n\n")));
    }
    if let Value::Object(o) = &mut chunk {
        if o.get("choices").and_then(Value::as_array).is_some_and(Vec::is_empty) && o.get("usage").is_some_and(|u| !u.is_null()) {
            return None;
        }
        o.remove("usage");
    }
    Some(Bytes::from(format!("data: {chunk}\n\n")))
}

/// The answer as OpenAI chunks: a cloud provider's own (`upstream`), else written here (the
/// offline model, from the start or after a switch, under the upstream's id). Dropping the
/// stream (the client went away) drops the `Answer`, which cancels it — a local generation
/// stops at once.
/// With `tools`, the offline model's text is read for calls (in its format, as many as the
/// client takes): text goes out as it comes, a call as OpenAI's tool-call delta once it is whole.
/// The upstream's chunks from its first tool-call delta on are held back (unchanged) until its
/// stream ends properly, so a cut inside a call leaves the client with none of it and the
/// offline model's fresh answer can follow as the rest of the same response. Silence longer
/// than `keep_alive` is filled with an SSE comment.
fn sse(
    mut answer: Answer,
    id: String,
    model: String,
    include_usage: bool,
    upstream: bool,
    tools: Option<CallReader>,
    keep_alive: Duration,
) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>> {
    let mut chunks = Chunks {
        id,
        model,
        upstream,
        include_usage,
        usage: None,
        calls: tools.map(|r| ToolStream::new(r.format)),
        max_calls: tools.map_or(usize::MAX, |r| r.max),
        held: None,
        sent_role: false,
        sent_text: false,
    };
    async_stream(move |tx| async move {
        if !chunks.upstream {
            let _ = tx.send(chunks.chunk(json!({ "role": "assistant", "content": "" }), None)).await;
        }
        let mut last_sent = tokio::time::Instant::now();
        loop {
            // A client that goes away while nothing is sent (a queued or stalled answer) is
            // noticed at once, not at the next token.
            let e = tokio::select! {
                e = answer.next() => e,
                () = tx.closed() => return,
                () = tokio::time::sleep_until(last_sent + keep_alive) => {
                    if tx.send(Bytes::from_static(b": keep-alive\n\n")).await.is_err() {
                        return;
                    }
                    last_sent = tokio::time::Instant::now();
                    continue;
                }
            };
            let Some(e) = e else { return };
            match chunks.step(e) {
                Step::Skip => {}
                Step::Send(out) => {
                    if tx.send(out).await.is_err() {
                        return; // client gone: dropping `answer` cancels it
                    }
                    last_sent = tokio::time::Instant::now();
                }
                Step::End(outs) => {
                    for out in outs {
                        let _ = tx.send(out).await;
                    }
                    return;
                }
            }
        }
    })
}

/// One streamed answer turned into what the client is sent ([`sse`]).
struct Chunks {
    id: String,
    model: String,
    /// A cloud provider writes the answer (its chunks are passed on), not the offline model.
    upstream: bool,
    include_usage: bool,
    usage: Option<Value>,
    /// The offline model's text read for tool calls.
    calls: Option<ToolStream>,
    max_calls: usize,
    /// The upstream's chunks from its first tool-call delta on, not yet sent; and whether
    /// the client has had the upstream's role and answer text.
    held: Option<Vec<Bytes>>,
    sent_role: bool,
    sent_text: bool,
}

/// What one event of the answer sends.
enum Step {
    Skip,
    Send(Bytes),
    /// These, then the stream ends.
    End(Vec<Bytes>),
}

impl Chunks {
    fn chunk(&self, delta: Value, finish: Option<&str>) -> Bytes {
        let c = json!({ "id": self.id, "object": "chat.completion.chunk", "created": now_s(), "model": self.model, "choices": [{ "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish }] });
        Bytes::from(format!("data: {c}\n\n"))
    }

    fn step(&mut self, e: Event) -> Step {
        match e {
            Event::Upstream { chunk, data } => self.upstream_chunk(chunk, data),
            // The upstream's chunks carry its text already.
            Event::Token { .. } if self.upstream => Step::Skip,
            Event::Token { text } => {
                let text = match self.calls.as_mut() {
                    Some(c) => c.push(&text),
                    None => text,
                };
                if text.is_empty() {
                    return Step::Skip;
                }
                Step::Send(self.chunk(json!({ "content": text }), None))
            }
            Event::Reasoning { text } => Step::Send(self.chunk(json!({ "reasoning_content": text }), None)),
            // A cut inside a tool call: the offline model answers afresh, and the client has
            // seen none of the call (it was held), so the fresh answer is the rest of this
            // response. Unless answer text went out before the call: the fresh answer would
            // be joined onto it as one message, so the client is told instead and the
            // offline answer is dropped (which cancels it).
            Event::Switched { reason, .. } if self.held.is_some() && self.sent_text => {
                let message = format!(
                    "{reason}, in the middle of a tool call after part of the answer was sent; the offline model never continues inside a tool call. Send the request again."
                );
                Step::End(vec![Bytes::from(format!(
                    "data: {}\n\n",
                    json!({ "error": { "message": message, "type": "server_error", "code": "cut_in_tool_call" } })
                ))])
            }
            Event::Switched { model, .. } => {
                self.model = model;
                self.upstream = false;
                // The held part of the call is dropped; the role it carried goes out anew.
                if self.held.take().is_some() && !self.sent_role {
                    Step::Send(self.chunk(json!({ "role": "assistant", "content": "" }), None))
                } else {
                    Step::Skip
                }
            }
            Event::Usage { prompt_tokens, completion_tokens } => {
                self.usage =
                    Some(json!({ "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens }));
                Step::Skip
            }
            Event::Done { finish_reason, .. } => Step::End(self.done(finish_reason)),
            // Mid-stream and nothing could continue: OpenAI's error chunk, and no [DONE].
            Event::Error { error } => Step::Send(Bytes::from(format!(
                "data: {}\n\n",
                json!({ "error": { "message": error.to_string(), "type": "server_error", "code": error.code } })
            ))),
            // Headers are gone by the end of a stream; the non-streamed answer says it. A whole
            // answer comes only to a client that asked for no stream.
            Event::Started { .. } | Event::LeftOut { .. } | Event::Whole { .. } => Step::Skip,
        }
    }

    /// An upstream chunk: passed on, or held from the first tool-call delta on.
    fn upstream_chunk(&mut self, c: Value, data: String) -> Step {
        if let Some(upstream_id) = c.get("id").and_then(Value::as_str) {
            upstream_id.clone_into(&mut self.id);
        }
        let deltas = || c.get("choices").and_then(Value::as_array).into_iter().flatten().filter_map(|ch| ch.get("delta"));
        let calls = deltas().any(understudy_openai::carries_tool_call);
        if self.held.is_none() && !calls {
            self.sent_role |= deltas().any(|d| d.get("role").is_some_and(|r| !r.is_null()));
            self.sent_text |= deltas().any(|d| d.get("content").and_then(Value::as_str).is_some_and(|t| !t.is_empty()));
        }
        let Some(out) = upstream_chunk(c, data, self.include_usage) else { return Step::Skip };
        if calls || self.held.is_some() {
            self.held.get_or_insert_with(Vec::new).push(out);
            return Step::Skip;
        }
        Step::Send(out)
    }

    /// The end of the answer: the held upstream chunks, or the offline model's calls, finish
    /// and usage; then `[DONE]`.
    fn done(&mut self, finish_reason: FinishReason) -> Vec<Bytes> {
        // The upstream sent its own finish and usage chunks (held, if it called a tool).
        let mut out: Vec<Bytes> = self.held.take().into_iter().flatten().collect();
        if !self.upstream {
            let mut finish_reason = finish_reason;
            if let Some((rest, found)) = self.calls.take().map(ToolStream::finish) {
                if !rest.is_empty() {
                    out.push(self.chunk(json!({ "content": rest }), None));
                }
                for (index, call) in found.iter().take(self.max_calls).enumerate() {
                    let mut delta = openai_call(call);
                    delta["index"] = json!(index);
                    out.push(self.chunk(json!({ "tool_calls": [delta] }), None));
                }
                if !found.is_empty() {
                    finish_reason = FinishReason::ToolCalls;
                }
            }
            out.push(self.chunk(json!({}), Some(finish_reason.as_str())));
            if let (true, Some(u)) = (self.include_usage, self.usage.take()) {
                let u = json!({ "id": self.id, "object": "chat.completion.chunk", "created": now_s(), "model": self.model, "choices": [], "usage": u });
                out.push(Bytes::from(format!("data: {u}\n\n")));
            }
        }
        out.push(Bytes::from_static(b"data: [DONE]\n\n"));
        out
    }
}

/// A stream fed by a task through a small channel; when the body is dropped the task's sends
/// fail and it ends, dropping what it owns.
fn async_stream<F, Fut>(f: F) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Bytes>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(f(tx));
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (Ok(b), rx)) })
}

/// The primary provider's models as OpenAI's model objects (`created` as it sent it; none
/// without a cloud provider), or why its list cannot be read.
async fn upstream_models(router: &Router) -> Result<Vec<Value>, String> {
    let chain = router.chain();
    let Some(primary) = chain.primary() else { return Ok(Vec::new()) };
    let Some(client) = primary.client.as_ref() else { return Err(format!("{} has no API key it can use", primary.label)) };
    match client.models().await {
        Ok(list) => Ok(list
            .into_iter()
            .map(|m| json!({ "id": m.id, "object": "model", "created": m.created.unwrap_or(0), "owned_by": m.owned_by.unwrap_or_default() }))
            .collect()),
        Err(e) => Err(e.describe()),
    }
}

/// The offline model as a model object, `local/<name>`.
fn local_model(router: &Router) -> Option<Value> {
    match &router.chain().local {
        LocalModel::Ready { name, .. } => Some(json!({ "id": format!("local/{name}"), "object": "model", "created": 0, "owned_by": "understudy" })),
        _ => None,
    }
}

async fn models(State(app): State<App>) -> Response {
    let mut data = upstream_models(&app.router).await.unwrap_or_else(|e| {
        tracing::info!("gateway /v1/models: upstream list unavailable: {e}");
        Vec::new()
    });
    data.extend(local_model(&app.router));
    Json(json!({ "object": "list", "data": data })).into_response()
}

/// `GET /v1/models/{model}` (the SDKs' `models.retrieve`): the offline model for
/// `local/<name>`, else the provider's model from its list; OpenAI's 404 for one it does not
/// have, and a 503 saying why when its list cannot be read.
async fn model(State(app): State<App>, axum::extract::Path(id): axum::extract::Path<String>) -> Response {
    let missing = || {
        let message = format!("The model `{id}` does not exist or you do not have access to it.");
        error(StatusCode::NOT_FOUND, "invalid_request_error", Some("model_not_found"), &message)
    };
    if id.starts_with("local/") {
        return match local_model(&app.router) {
            Some(m) if m["id"] == id.as_str() => Json(m).into_response(),
            _ => missing(),
        };
    }
    match upstream_models(&app.router).await {
        Ok(list) => match list.into_iter().find(|m| m["id"] == id.as_str()) {
            Some(m) => Json(m).into_response(),
            None => missing(),
        },
        Err(why) => {
            let message = format!("The model list could not be read ({why}), so whether `{id}` exists is not known; chat requests for it are answered by the offline model meanwhile.");
            error(StatusCode::SERVICE_UNAVAILABLE, "server_error", None, &message)
        }
    }
}

async fn status(State(app): State<App>) -> Response {
    Json(app.router.monitor().snapshot()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_offline_queue_is_openai_s_rate_limit_with_retry_after() {
        let busy = ChatError {
            class: ErrorClass::Busy,
            next_action: understudy_router::NextAction::Retry,
            provider: Some("local".into()),
            message: "the offline model is busy".into(),
            next_step: "Try again in a few seconds.".into(),
            status: None,
            code: Some("rate_limit_exceeded".into()),
            param: None,
            retry_after: Some(2),
            request_id: None,
        };
        let r = chat_error(&busy);
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()[header::RETRY_AFTER], "2");
        // Without a retry time an unrouted local failure stays a server error.
        assert_eq!(chat_error(&ChatError { retry_after: None, class: ErrorClass::Local, code: None, ..busy }).status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn requests_parse_like_openai_s() {
        let p = parse(&Bytes::from(
            r#"{"model":"local/qwen","stream":true,"stream_options":{"include_usage":true},"max_completion_tokens":5,
            "messages":[{"role":"developer","content":"be brief"},{"role":"user","content":[{"type":"text","text":"hi "},{"type":"text","text":"there"}]}]}"#,
        ))
        .ok()
        .unwrap();
        assert_eq!((p.stream, p.include_usage), (true, true));
        assert_eq!((p.request.provider.as_deref(), p.request.model.as_deref(), p.request.max_tokens), (Some("local"), None, Some(5)));
        assert_eq!(p.request.messages, [Turn::new(Role::System, "be brief"), Turn::new(Role::User, "hi there")]);
        assert_eq!(p.request.offline_refusal, None);
        assert_eq!(p.request.raw.as_ref().map(|r| r.len()), Some(5), "the whole body goes upstream");
        for bad in [
            r#"{"messages":[{"role":"user","content":"x"}]}"#,
            r#"{"model":5,"messages":[{"role":"user","content":"x"}]}"#,
            r#"{"model":"m","messages":[]}"#,
            r#"{"model":"m","messages":[{"role":"oracle","content":"x"}]}"#,
            r#"{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":"hot"}"#,
            r#"{"model":"m","messages":[{"role":"user","content":"x"}],"stop":5}"#,
            "[1]",
            "not json",
        ] {
            let r = parse(&Bytes::from(bad)).err().unwrap();
            assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
        }
    }

    #[test]
    fn sampling_is_read_for_the_offline_model() {
        let p = parse(&Bytes::from(
            r#"{"model":"gpt-4o","messages":[{"role":"user","content":"x"}],"temperature":0.0,"top_p":0.5,"seed":-1,"stop":["a","b"],
            "presence_penalty":0.5,"frequency_penalty":-0.5,"max_tokens":9,"user":"u1","n":1,"logprobs":false,"tools":[],"response_format":{"type":"text"}}"#,
        ))
        .ok()
        .unwrap();
        let s = &p.request.sampling;
        assert_eq!((s.temperature, s.top_p, s.seed, s.presence_penalty, s.frequency_penalty), (Some(0.0), Some(0.5), Some(u32::MAX), Some(0.5), Some(-0.5)));
        assert_eq!((s.stop.as_slice(), p.request.max_tokens), (["a".to_string(), "b".to_string()].as_slice(), Some(9)));
        assert_eq!(p.request.offline_refusal, None, "all of it is honoured or harmless offline");
        assert_eq!((p.request.provider.as_deref(), p.request.model.as_deref()), (None, Some("gpt-4o")));
    }

    #[test]
    fn json_mode_and_structured_outputs_become_the_offline_model_s_grammar() {
        for format in [r#"{"type":"json_object"}"#, r#"{"type":"json_schema","json_schema":{"name":"x","strict":true,"schema":{"type":"object"}}}"#] {
            let body = format!(r#"{{"model":"gpt-4o","messages":[{{"role":"user","content":"x"}}],"response_format":{format}}}"#);
            let p = parse(&Bytes::from(body)).ok().unwrap();
            assert_eq!(p.request.offline_refusal, None, "{format}");
            assert!(p.request.sampling.grammar.as_deref().is_some_and(|g| g.contains("root ::=")), "{format}");
        }
        let p = parse(&Bytes::from(r#"{"model":"gpt-4o","messages":[{"role":"user","content":"x"}],"response_format":{"type":"text"}}"#)).ok().unwrap();
        assert_eq!(p.request.sampling.grammar, None);
    }

    #[test]
    fn what_the_offline_model_cannot_honour_is_named_never_dropped() {
        let user = r#"{"role":"user","content":"x"}"#;
        for (extra, messages, says) in [
            (r#","functions":[{"name":"f"}]"#, user, "legacy `functions`"),
            (r#","tool_choice":"sometimes""#, user, "tool_choice"),
            (
                r##","response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"$ref":"#/nowhere"}}}"##,
                user,
                "cannot be expressed as a grammar",
            ),
            (r#","response_format":{"type":"json_schema","json_schema":{"name":"x"}}"#, user, "no schema"),
            (r#","logprobs":true,"top_logprobs":2"#, user, "logprobs"),
            (r#","n":2"#, user, "several answers"),
            (r#","brand_new_field":1"#, user, "`brand_new_field`"),
            (
                "",
                r#"{"role":"user","content":[{"type":"text","text":"what is this"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AA"}}]}"#,
                "an image",
            ),
        ] {
            let body = format!(r#"{{"model":"gpt-4o","messages":[{messages}]{extra}}}"#);
            let p = parse(&Bytes::from(body.clone())).ok().unwrap_or_else(|| panic!("{body}"));
            let why = p.request.offline_refusal.unwrap_or_default();
            assert!(why.contains(says), "{body}: {why:?}");
        }
    }

    const TOOLS: &str = r#""tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object",
        "properties":{"unit":{"enum":["c","f"]}},"required":["unit"],"additionalProperties":false}}},{"type":"function","function":{"name":"get_time"}}]"#;
    const HISTORY: &str = r#"{"role":"user","content":"x"},{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function",
        "function":{"name":"get_weather","arguments":"{\"unit\":\"c\"}"}}]},{"role":"tool","tool_call_id":"c1","content":"21"}"#;

    fn parsed(messages: &str, extra: &str) -> Parsed {
        let body = format!(r#"{{"model":"gpt-4o","messages":[{messages}]{extra}}}"#);
        parse(&Bytes::from(body.clone())).ok().unwrap_or_else(|| panic!("{body}"))
    }

    #[test]
    fn a_template_without_tool_support_is_refused_in_words_for_tools_offered_or_in_the_history() {
        let user = r#"{"role":"user","content":"x"}"#;
        for (messages, extra, says) in [(user, format!(",{TOOLS}"), "it offers tools"), (HISTORY, String::new(), "its history has tool calls or tool results")]
        {
            let mut p = parsed(messages, &extra);
            assert_eq!(p.request.offline_refusal, None, "nothing refused before the model is known");
            assert_eq!(p.offline_tools(None), None);
            let why = p.request.offline_refusal.unwrap_or_default();
            assert!(why.contains(says) && why.contains("chat template has no tool support"), "{why}");
        }
        // Neither tools nor tool turns: nothing asked of the template.
        let mut p = parsed(user, r#","tool_choice":"none""#);
        assert_eq!((p.needs_tools(), p.offline_tools(None), p.request.offline_refusal), (false, None, None));
    }

    #[test]
    fn tools_go_to_a_template_that_has_them_and_tool_choice_decides_the_grammar() {
        // auto: the tools go to the template, the model may answer in text.
        let mut p = parsed(HISTORY, &format!(",{TOOLS}"));
        let reader = p.offline_tools(Some(ToolFormat::Hermes));
        assert_eq!(reader, Some(CallReader { format: ToolFormat::Hermes, max: usize::MAX }), "parallel calls unless the client says no");
        assert_eq!((p.request.tools.as_ref().map(Vec::len), &p.request.sampling.grammar, &p.request.offline_refusal), (Some(2), &None, &None));
        // The history as the template reads it: arguments an object, the result tied to its call.
        let turns = p.request.offline_messages.as_ref().unwrap();
        assert_eq!(turns[1].tool_calls.as_ref().unwrap()[0]["function"]["arguments"], json!({ "unit": "c" }));
        assert_eq!((turns[2].role, turns[2].tool_call_id.as_deref(), turns[2].content.as_str()), (Role::Tool, Some("c1"), "21"));

        let mut p = parsed(HISTORY, &format!(r#",{TOOLS},"parallel_tool_calls":false"#));
        assert_eq!(p.offline_tools(Some(ToolFormat::Hermes)), Some(CallReader { format: ToolFormat::Hermes, max: 1 }));

        // required: one call of any tool; a named function: a call of that one only.
        let mut p = parsed(r#"{"role":"user","content":"x"}"#, &format!(r#",{TOOLS},"tool_choice":"required""#));
        assert_eq!(p.offline_tools(Some(ToolFormat::Hermes)).map(|r| r.format), Some(ToolFormat::Hermes));
        let g = p.request.sampling.grammar.clone().unwrap();
        assert!(g.contains("get_weather") && g.contains("get_time") && g.starts_with("root ::= \"<tool_call>"), "{g}");
        assert_eq!(p.request.offline_messages, None, "no tool turns: the plain messages");
        let named = r#","tool_choice":{"type":"function","function":{"name":"get_time"}},"response_format":{"type":"json_object"}"#;
        let mut p = parsed(r#"{"role":"user","content":"x"}"#, &format!(",{TOOLS}{named}"));
        assert_eq!(p.offline_tools(Some(ToolFormat::Llama3Json)).map(|r| r.format), Some(ToolFormat::Llama3Json));
        let g = p.request.sampling.grammar.clone().unwrap();
        assert!(g.contains("get_time") && !g.contains("get_weather") && g.contains("parameters"), "the call's grammar, not the JSON mode's: {g}");

        // none: no tools shown, no grammar; the history's tool turns still render.
        let mut p = parsed(HISTORY, &format!(r#",{TOOLS},"tool_choice":"none""#));
        assert_eq!(p.offline_tools(Some(ToolFormat::Hermes)), None);
        assert_eq!((&p.request.tools, &p.request.sampling.grammar, &p.request.offline_refusal), (&None, &None, &None));
        assert!(p.request.offline_messages.is_some());

        // What cannot be honoured is named.
        for (extra, says) in [
            (r#","tool_choice":{"type":"function","function":{"name":"nope"}}"#, "names \"nope\", which is not among its tools"),
            (r#","response_format":{"type":"json_object"}"#, "together with a response_format"),
        ] {
            let mut p = parsed(r#"{"role":"user","content":"x"}"#, &format!(",{TOOLS}{extra}"));
            assert_eq!(p.offline_tools(Some(ToolFormat::Hermes)), None);
            let why = p.request.offline_refusal.unwrap_or_default();
            assert!(why.contains(says), "{why}");
        }
    }
}
