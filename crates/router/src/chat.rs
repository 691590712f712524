//! One answer: pick the provider the mode and the request allow, stream its tokens as
//! [`Event`]s, and stop within milliseconds when cancelled. The answer runs on its own task, so
//! a slow reader never slows the upstream read and a dropped [`Answer`] cancels it.

use std::sync::{Arc, RwLock};
use std::time::Instant;

use serde::Serialize;
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, DropGuard};
use understudy_core::config::Mode;
use understudy_local::{Engine, Event as LocalEvent, FinishReason, SamplingParams};
use understudy_openai::{ChatMessage, ChatRequest as CloudRequest, Error as CloudError, ErrorKind, FailureClass, StreamEvent};

use crate::chain::{Chain, Cloud, LocalModel};

/// A message of the conversation sent to a provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Turn {
    pub role: String,
    pub content: String,
}

impl Turn {
    pub fn new(role: &str, content: &str) -> Turn {
        Turn { role: role.into(), content: content.into() }
    }
}

#[derive(Debug, Clone, Default)]
pub struct ChatRequest {
    pub messages: Vec<Turn>,
    /// Overrides the cloud provider's configured model (a per-conversation model).
    pub model: Option<String>,
    /// `None` = by mode; `Some("local")` = the local engine only; `Some(id)` = that provider.
    pub provider: Option<String>,
    pub max_tokens: Option<u32>,
}

/// What the user is told about a failure: what happened, in words, and what to do next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChatError {
    /// `outage`, `rate-limit`, `account`, `request` (design.md section 3), or `local` / `setup`.
    pub class: String,
    pub provider: Option<String>,
    pub message: String,
    pub next_step: String,
    pub status: Option<u16>,
    pub code: Option<String>,
}

impl ChatError {
    fn setup(message: &str, next_step: &str) -> ChatError {
        ChatError { class: "setup".into(), provider: None, message: message.into(), next_step: next_step.into(), status: None, code: None }
    }

    fn local(message: String) -> ChatError {
        ChatError { class: "local".into(), provider: Some("local".into()), message, next_step: "Try again; if it keeps failing, choose another offline model in Settings.".into(), status: None, code: None }
    }

    pub fn from_cloud(e: &CloudError) -> ChatError {
        let class = match e.class {
            FailureClass::Outage => "outage",
            FailureClass::RateLimit => "rate-limit",
            FailureClass::Account => "account",
            FailureClass::Request => "request",
        };
        let next_step = match (e.class, e.status, e.code.as_deref(), &e.kind) {
            (_, Some(401), _, _) => "Check the API key in Settings.",
            (_, Some(403), _, _) => "Check that the key's project may use this model, in Settings.",
            (_, Some(404), _, _) => "Check the model name and base URL in Settings.",
            (_, _, Some("insufficient_quota"), _) => "Add credit to the account, or use another key in Settings.",
            (FailureClass::RateLimit, ..) => "Wait a moment and try again.",
            (_, _, Some("context_length_exceeded"), _) => "Start a new conversation or shorten this one.",
            (FailureClass::Request, ..) => "Change the request and try again.",
            (_, _, _, ErrorKind::Connect | ErrorKind::Dns | ErrorKind::Tls) => "Check your connection and the base URL in Settings; install an offline model to keep answering when this happens.",
            _ => "Try again; install an offline model to keep answering when this happens.",
        };
        ChatError { class: class.into(), provider: Some(e.provider.clone()), message: e.describe(), next_step: next_step.into(), status: e.status, code: e.code.clone() }
    }
}

impl std::fmt::Display for ChatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sep = if self.message.ends_with(['.', '!', '?']) { " " } else { ". " };
        write!(f, "{}{sep}{}", self.message, self.next_step)
    }
}

/// What happens during an answer, in order: `Started`, `Token`s, maybe `Usage`, then exactly
/// one `Done` or `Error`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    Started { provider: String, label: String, model: String, failover: Option<String> },
    Token { text: String },
    Usage { prompt_tokens: u32, completion_tokens: u32 },
    /// `finish_reason`: `stop`, `length`, or `cancelled` (the user stopped it; the text so far
    /// stands). `model` is the model that wrote it, as the provider reported it.
    Done { finish_reason: String, model: String },
    Error { error: ChatError },
}

/// An answer being produced. Events come from [`Answer::next`]; dropping it cancels.
#[derive(Debug)]
pub struct Answer {
    rx: mpsc::Receiver<Event>,
    cancel: CancellationToken,
    _guard: DropGuard,
}

impl Answer {
    pub async fn next(&mut self) -> Option<Event> {
        self.rx.recv().await
    }

    /// Stops the answer: a `Done` with `cancelled` follows at once.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// A handle that cancels this answer from elsewhere (the Stop button).
    pub fn canceller(&self) -> CancellationToken {
        self.cancel.clone()
    }
}

#[derive(Debug)]
struct Inner {
    chain: RwLock<Arc<Chain>>,
    engine: Engine,
}

/// Routes answers over the provider chain. Cheap to clone; clones share state.
#[derive(Debug, Clone)]
pub struct Router(Arc<Inner>);

impl Router {
    pub fn new(chain: Chain, engine: Engine) -> Router {
        Router(Arc::new(Inner { chain: RwLock::new(Arc::new(chain)), engine }))
    }

    /// Takes a new chain (config or key changed); answers in flight keep the old one.
    pub fn reconfigure(&self, chain: Chain) {
        *self.0.chain.write().expect("chain lock") = Arc::new(chain);
    }

    pub fn chain(&self) -> Arc<Chain> {
        self.0.chain.read().expect("chain lock").clone()
    }

    pub fn engine(&self) -> &Engine {
        &self.0.engine
    }

    /// Starts an answer on its own task.
    pub fn chat(&self, request: ChatRequest) -> Answer {
        let (tx, rx) = mpsc::channel(256);
        let cancel = CancellationToken::new();
        let token = cancel.clone();
        let chain = self.chain();
        let engine = self.0.engine.clone();
        tokio::spawn(async move {
            let sink = Sink(tx);
            tokio::select! {
                biased;
                () = token.cancelled() => {}
                () = answer(&chain, &engine, request, &sink) => return,
            }
            // Cancelled: the provider's stream was dropped with the future above, which
            // closes the HTTP connection or cancels the local generation.
            sink.send(Event::Done { finish_reason: "cancelled".into(), model: String::new() }).await;
        });
        Answer { rx, _guard: cancel.clone().drop_guard(), cancel }
    }

    /// Checks a cloud provider with `GET /models` and reports whether its model is offered.
    pub async fn test_connection(&self, provider: Option<&str>) -> Result<ConnectionReport, ChatError> {
        let chain = self.chain();
        let cloud = match provider {
            Some(id) => chain.cloud(id),
            None => chain.primary(),
        }
        .ok_or_else(|| ChatError::setup("No cloud provider is configured.", "Add one in Settings."))?;
        let client = cloud.client.as_ref().ok_or_else(|| no_key(cloud))?;
        let started = Instant::now();
        let models = client.models().await.map_err(|e| ChatError::from_cloud(&e))?;
        Ok(ConnectionReport {
            provider: cloud.id.clone(),
            label: cloud.label.clone(),
            latency_ms: started.elapsed().as_millis() as u64,
            models: models.len(),
            model: cloud.model.clone(),
            // Some compatible servers list nothing; only a non-empty list that lacks it is a problem.
            model_listed: models.is_empty() || models.iter().any(|m| m.id == cloud.model),
        })
    }
}

/// The result of [`Router::test_connection`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConnectionReport {
    pub provider: String,
    pub label: String,
    pub latency_ms: u64,
    pub models: usize,
    pub model: String,
    pub model_listed: bool,
}

fn no_key(cloud: &Cloud) -> ChatError {
    ChatError::setup(&format!("No API key is set for {}.", cloud.label), "Add the key in Settings.")
}

struct Sink(mpsc::Sender<Event>);

impl Sink {
    /// Sends an event; a reader that went away is not an error (the answer still finishes).
    async fn send(&self, e: Event) {
        let _ = self.0.send(e).await;
    }
}

async fn answer(chain: &Chain, engine: &Engine, request: ChatRequest, sink: &Sink) {
    let local_only = chain.mode == Mode::LocalOnly || request.provider.as_deref() == Some(Chain::local_id());
    if local_only {
        return answer_local(chain, engine, &request, None, sink).await;
    }
    let cloud = match request.provider.as_deref() {
        Some(id) => chain.cloud(id),
        None => chain.primary(),
    };
    let Some(cloud) = cloud else {
        let e = match request.provider.as_deref() {
            Some(id) => ChatError::setup(&format!("There is no provider called {id:?}."), "Check the provider list in the config file."),
            None => ChatError::setup("No cloud provider is configured.", "Add one in Settings."),
        };
        return sink.send(Event::Error { error: e }).await;
    };
    if cloud.client.is_none() {
        // Without a key the cloud cannot answer; in auto mode an installed offline model can.
        if chain.mode == Mode::Auto && request.provider.is_none() && matches!(chain.local, LocalModel::Ready { .. }) {
            let reason = format!("no API key is set for {}", cloud.label);
            return answer_local(chain, engine, &request, Some(reason), sink).await;
        }
        return sink.send(Event::Error { error: no_key(cloud) }).await;
    }
    answer_cloud(cloud, &request, sink).await;
}

async fn answer_cloud(cloud: &Cloud, request: &ChatRequest, sink: &Sink) {
    let client = cloud.client.as_ref().expect("checked by the caller");
    let model = request.model.clone().filter(|m| !m.trim().is_empty()).unwrap_or_else(|| cloud.model.clone());
    sink.send(Event::Started { provider: cloud.id.clone(), label: cloud.label.clone(), model: model.clone(), failover: None }).await;
    let req = CloudRequest {
        model: model.clone(),
        messages: request.messages.iter().map(|t| ChatMessage::new(&t.role, &t.content)).collect(),
        max_tokens: request.max_tokens,
        temperature: None,
    };
    let mut stream = match client.chat_stream(&req).await {
        Ok(s) => s,
        Err(e) => return sink.send(Event::Error { error: ChatError::from_cloud(&e) }).await,
    };
    let (mut answered_by, mut finish) = (model, "stop".to_string());
    while let Some(event) = stream.next().await {
        match event {
            Ok(StreamEvent::Delta { model, content }) => {
                if !model.is_empty() {
                    answered_by = model;
                }
                sink.send(Event::Token { text: content }).await;
            }
            Ok(StreamEvent::Finish { reason }) => finish = reason,
            Ok(StreamEvent::Usage(u)) => sink.send(Event::Usage { prompt_tokens: u.prompt_tokens, completion_tokens: u.completion_tokens }).await,
            Ok(StreamEvent::Done) => return sink.send(Event::Done { finish_reason: finish, model: answered_by }).await,
            Err(e) => return sink.send(Event::Error { error: ChatError::from_cloud(&e) }).await,
        }
    }
    // The client reports a stream without [DONE] as an error; this is only a safety net.
    sink.send(Event::Error { error: ChatError::from_cloud(&CloudError::new(ErrorKind::Truncated, &cloud.label, "the stream ended without [DONE]")) }).await;
}

async fn answer_local(chain: &Chain, engine: &Engine, request: &ChatRequest, failover: Option<String>, sink: &Sink) {
    let (path, name) = match &chain.local {
        LocalModel::Ready { path, name } => (path, name),
        LocalModel::None => {
            let e = ChatError::setup("No offline model is set up.", "Download one in Models, or choose a .gguf file in Settings.");
            return sink.send(Event::Error { error: e }).await;
        }
        LocalModel::Missing(m) => {
            let e = ChatError::setup(&format!("The offline model {m:?} is not on this computer."), "Download it in Models, or choose another in Settings.");
            return sink.send(Event::Error { error: e }).await;
        }
    };
    sink.send(Event::Started { provider: Chain::local_id().into(), label: "Local model".into(), model: name.clone(), failover }).await;
    if let Err(e) = engine.ensure_loaded(path, chain.context, chain.threads).await {
        return sink.send(Event::Error { error: ChatError::local(e.to_string()) }).await;
    }
    let messages = request.messages.iter().map(|t| understudy_local::Message::new(&t.role, &t.content)).collect();
    let params = SamplingParams { max_tokens: request.max_tokens, ..SamplingParams::default() };
    let mut generation = match engine.generate(messages, params, None).await {
        Ok(g) => g,
        Err(e) => return sink.send(Event::Error { error: ChatError::local(e.to_string()) }).await,
    };
    while let Some(event) = generation.next().await {
        match event {
            LocalEvent::Token { text, .. } => sink.send(Event::Token { text }).await,
            LocalEvent::Done { finish_reason, usage, .. } => {
                sink.send(Event::Usage { prompt_tokens: usage.prompt_tokens, completion_tokens: usage.completion_tokens }).await;
                let finish = match finish_reason {
                    FinishReason::Stop => "stop",
                    FinishReason::Length => "length",
                    FinishReason::Cancelled => "cancelled",
                };
                return sink.send(Event::Done { finish_reason: finish.into(), model: name.clone() }).await;
            }
            LocalEvent::Error { message, .. } => return sink.send(Event::Error { error: ChatError::local(message) }).await,
            _ => {}
        }
    }
    sink.send(Event::Error { error: ChatError::local("the local engine ended without an answer".into()) }).await;
}
