//! One answer: pick the provider the mode and the request allow, stream its tokens as
//! [`Event`]s, and stop within milliseconds when cancelled. The answer runs on its own task, so
//! a slow reader never slows the upstream read and a dropped [`Answer`] cancels it.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Map, Value};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::{CancellationToken, DropGuard};
use understudy_core::config::Mode;
use understudy_core::providers::KeyProblem;
pub use understudy_core::turn::{Because, FailoverReason, FinishReason, Turn};
use understudy_core::{ErrorClass, NextAction};
use understudy_local::{Engine, Event as LocalEvent, FinishReason as LocalFinish, SamplingParams};
use understudy_openai::{AnswerHeaders, ChatMessage, ChatRequest as CloudRequest, Error as CloudError, ErrorKind, FailureClass, StreamEvent};

use crate::chain::{Chain, Cloud, LocalModel};
use crate::health::{HealthSnapshot, Monitor};
use crate::liveness::{Lapse, Liveness, Step};
use crate::plan::{self, Action, Blame, Facts, Pinned, Plan, Skip, Unanswered};
use crate::policy::{Outcome, PolicyConfig};

#[derive(Debug, Clone, Default)]
pub struct ChatRequest {
    pub messages: Vec<Turn>,
    /// Overrides the cloud provider's configured model (a per-conversation model).
    pub model: Option<String>,
    /// `None` = by mode; `Some("local")` = the local engine only; `Some(id)` = that provider.
    pub provider: Option<String>,
    pub max_tokens: Option<u32>,
    /// The client's own request body (the gateway's): sent to cloud providers as it is, except
    /// `model` when it names none and, for a streamed one, `stream_options.include_usage`
    /// (forced on: the failover counts by it); each upstream chunk then also comes back raw as
    /// [`Event::Upstream`]. One that asks for no stream is asked unstreamed and comes back as
    /// [`Event::Whole`]. `None` (the window, the CLI): the request is built from `messages`.
    pub raw: Option<Map<String, Value>>,
    /// The client's sampling for the offline model; unset fields keep the engine's defaults.
    pub sampling: Sampling,
    /// Why the offline model cannot take this request (an image, tools, JSON mode, logprobs,
    /// n > 1 …), in words. Then it is never answered offline with those parts dropped: a
    /// request for the local model is refused, and a failover is an error saying why.
    pub offline_refusal: Option<String>,
    /// OpenAI's tool objects, rendered by the offline model's chat template as its `tools` (the
    /// gateway's, only where that template has tool support).
    pub tools: Option<Vec<Value>>,
    /// The conversation as the offline model's template reads it, tool calls and tool results
    /// included (the gateway's, when it has them); `None`: `messages`.
    pub offline_messages: Option<Vec<understudy_local::Message>>,
}

/// Sampling a client asked for, as the offline model honours it (`None` = the engine's default).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sampling {
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub min_p: Option<f32>,
    pub top_k: Option<i32>,
    pub seed: Option<u32>,
    pub stop: Vec<String>,
    pub presence_penalty: Option<f32>,
    pub frequency_penalty: Option<f32>,
    /// The answer must match this grammar (`response_format` JSON mode or a schema, as
    /// `understudy_local::ResponseFormat::grammar` writes it).
    pub grammar: Option<String>,
}

impl Sampling {
    /// The local engine's parameters: these over its defaults.
    pub fn params(&self, max_tokens: Option<u32>) -> SamplingParams {
        let d = SamplingParams::default();
        SamplingParams {
            temperature: self.temperature.unwrap_or(d.temperature),
            top_p: self.top_p.unwrap_or(d.top_p),
            min_p: self.min_p.unwrap_or(d.min_p),
            top_k: self.top_k.unwrap_or(d.top_k),
            seed: self.seed.unwrap_or(d.seed),
            stop: self.stop.clone(),
            presence_penalty: self.presence_penalty.unwrap_or(d.presence_penalty),
            frequency_penalty: self.frequency_penalty.unwrap_or(d.frequency_penalty),
            grammar: self.grammar.clone(),
            max_tokens,
            ..d
        }
    }
}

/// What a client whose answer found the offline model's queue full is told to wait (seconds):
/// about one short answer's time.
pub const BUSY_RETRY_AFTER_S: u64 = 2;

/// What the user is told about a failure: what happened, in words, and what to do next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChatError {
    /// What kind of failure (design.md section 3, or `local` / `setup` / `busy`).
    pub class: ErrorClass,
    /// What the window offers and the CLI words beyond `next_step`; clients branch on this, never on the text.
    pub next_action: NextAction,
    pub provider: Option<String>,
    pub message: String,
    pub next_step: String,
    pub status: Option<u16>,
    pub code: Option<String>,
    /// The request field a provider's error is about (OpenAI's `error.param`), passed on by the
    /// gateway.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
    /// Try again after this many seconds: when the offline model's queue is full (class
    /// `busy`, which the gateway answers with 429), or as the provider's error said
    /// (`Retry-After`, rounded up). The gateway sends it as `Retry-After`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    /// The provider's `x-request-id` for its error answer, which the gateway passes on (SDKs
    /// show it as the error's `request_id`, to quote to the provider's support).
    #[serde(skip)]
    pub request_id: Option<String>,
}

impl ChatError {
    /// A failure in words, with nothing of a provider's answer to it (no status, code, param,
    /// wait or request id).
    fn new(class: ErrorClass, next_action: NextAction, provider: Option<String>, message: String, next_step: &str) -> ChatError {
        ChatError {
            class,
            next_action,
            provider,
            message,
            next_step: next_step.into(),
            status: None,
            code: None,
            param: None,
            retry_after: None,
            request_id: None,
        }
    }

    fn setup(message: &str, next_step: &str, next_action: NextAction) -> ChatError {
        ChatError::new(ErrorClass::Setup, next_action, None, message.into(), next_step)
    }

    /// A local engine error; a full queue is `busy` with a retry time, not a failure.
    fn from_engine(e: &understudy_local::EngineError) -> ChatError {
        match e {
            understudy_local::EngineError::QueueFull(_) => ChatError {
                code: Some("rate_limit_exceeded".into()),
                retry_after: Some(BUSY_RETRY_AFTER_S),
                ..ChatError::new(ErrorClass::Busy, NextAction::Retry, Some("local".into()), e.to_string(), "Try again in a few seconds.")
            },
            _ => ChatError::local(e.to_string()),
        }
    }

    /// The offline model was asked (pinned, local-only mode, or a failover) for what it cannot
    /// do. `cloud`: why the cloud provider could not answer, when this is a failover.
    fn offline_refused(cloud: Option<(&str, &str)>, why: &str) -> ChatError {
        match cloud {
            Some((label, reason)) => ChatError {
                status: Some(503),
                code: Some("offline_unsupported".into()),
                ..ChatError::new(
                    ErrorClass::Outage,
                    NextAction::Retry,
                    Some("local".into()),
                    format!("{label} is unreachable ({reason}), and the offline model cannot take this request: {why}"),
                    "Try again when it is back, or leave that out of the request so the offline model can answer.",
                )
            },
            None => ChatError {
                status: Some(400),
                code: Some("offline_unsupported".into()),
                ..ChatError::new(
                    ErrorClass::Request,
                    NextAction::None,
                    Some("local".into()),
                    format!("The offline model cannot take this request: {why}"),
                    "Send it to a cloud model, or leave that out of the request.",
                )
            },
        }
    }

    fn local(message: String) -> ChatError {
        let next_step = "Try again; if it keeps failing, choose another offline model in Settings.";
        ChatError::new(ErrorClass::Local, NextAction::OpenSettings, Some("local".into()), message, next_step)
    }

    pub fn from_cloud(e: &CloudError) -> ChatError {
        let class = match e.class {
            FailureClass::Outage => ErrorClass::Outage,
            FailureClass::RateLimit => ErrorClass::RateLimit,
            FailureClass::Account => ErrorClass::Account,
            FailureClass::Request => ErrorClass::Request,
        };
        let (next_step, next_action) = match (e.class, e.status, e.code.as_deref(), &e.kind) {
            (_, Some(401), _, _) => ("Check the API key in Settings.", NextAction::AddKey),
            (_, Some(403), _, _) => ("Check that the key's project may use this model, in Settings.", NextAction::OpenSettings),
            (_, Some(404), _, _) => ("Check the model name and base URL in Settings.", NextAction::OpenSettings),
            (_, _, Some("insufficient_quota"), _) => ("Add credit to the account, or use another key in Settings.", NextAction::OpenSettings),
            (FailureClass::RateLimit, ..) => ("Wait a moment and try again.", NextAction::Retry),
            (_, _, Some("context_length_exceeded"), _) => ("Start a new conversation or shorten this one.", NextAction::None),
            (FailureClass::Request, ..) => ("Change the request and try again.", NextAction::None),
            (_, _, _, ErrorKind::Connect | ErrorKind::Dns | ErrorKind::Tls) => {
                ("Check your connection and the base URL in Settings; install an offline model to keep answering when this happens.", NextAction::OpenSettings)
            }
            _ => ("Try again; install an offline model to keep answering when this happens.", NextAction::Retry),
        };
        ChatError {
            class,
            next_action,
            provider: Some(e.provider.clone()),
            message: e.describe(),
            next_step: next_step.into(),
            status: e.status,
            code: e.code.clone(),
            param: e.param.as_deref().cloned(),
            retry_after: e.retry_after.map(|d| d.as_secs() + u64::from(d.subsec_nanos() > 0)),
            request_id: e.request_id.as_deref().map(str::to_string),
        }
    }
}

impl std::fmt::Display for ChatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sep = if self.message.ends_with(['.', '!', '?']) { " " } else { ". " };
        write!(f, "{}{sep}{}", self.message, self.next_step)
    }
}

/// Why `e` kept a cloud provider from answering, as the reason the next one names.
pub fn failover_reason(e: &CloudError) -> FailoverReason {
    match (&e.kind, e.class) {
        (ErrorKind::FirstToken, _) => FailoverReason::TimedOut,
        (ErrorKind::Stall, _) => FailoverReason::Stalled,
        (ErrorKind::Connect | ErrorKind::Dns | ErrorKind::Tls, _) => FailoverReason::Unreachable,
        (ErrorKind::Cut | ErrorKind::Truncated, _) => FailoverReason::CutOff,
        (ErrorKind::Malformed | ErrorKind::StreamError, _) => FailoverReason::BadStream,
        (_, FailureClass::RateLimit) => FailoverReason::RateLimited,
        (_, FailureClass::Account) => FailoverReason::AccountProblem,
        (ErrorKind::Status, _) => FailoverReason::ServerError,
        _ => FailoverReason::Failed,
    }
}

fn because_of(cloud: &Cloud, reason: FailoverReason) -> Because {
    Because { provider: cloud.id.clone(), label: cloud.label.clone(), reason }
}

/// The turns as the local engine takes them.
pub(crate) fn to_local(turns: &[Turn]) -> Vec<understudy_local::Message> {
    turns.iter().map(understudy_local::Message::from).collect()
}

/// What happens during an answer, in order: `Started` (when the provider that answers is known:
/// at its first token, so a failover before it is invisible), `Token`s, maybe `Switched` and
/// more `Token`s, maybe `Usage`, then exactly one `Done` or `Error`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    Started {
        provider: String,
        label: String,
        model: String,
        /// Why an earlier provider did not answer, in words (stored with the answer).
        failover: Option<String>,
        /// The same as data: who failed before and how.
        because: Option<Because>,
        /// The response headers that describe a cloud provider's answer
        /// ([`understudy_openai::ANSWER_HEADERS`]: request id, processing time, rate limits…),
        /// for the gateway to pass on; `None` when the offline model begins the answer (from
        /// the start or after a failover). A cloud answer continued offline keeps its provider's.
        #[serde(skip)]
        headers: Option<AnswerHeaders>,
    },
    Token {
        text: String,
    },
    /// A cloud provider's chunk as it came (only for a streamed request with `raw`), before the
    /// `Token`s it carries: the gateway passes it on unchanged (tool calls, logprobs,
    /// refusals, annotations, usage details). Never sent before `Started`.
    Upstream {
        chunk: Value,
        /// The chunk's text as it came, passed on byte for byte.
        #[serde(skip)]
        data: String,
    },
    /// A cloud provider's whole answer to a client that asked for no stream (only for a request
    /// with `raw`), as it came: the gateway passes it on byte for byte. It follows `Started`
    /// and comes before the `Token`, `Usage` and `Done` that say what it means.
    Whole {
        #[serde(skip)]
        body: String,
    },
    /// A reasoning model's thinking, apart from the answer text (never stored with it, never
    /// part of a continuation's prefill).
    Reasoning {
        text: String,
    },
    /// The provider failed mid-answer; `provider` continues the text from where it stopped.
    Switched {
        provider: String,
        label: String,
        model: String,
        reason: String,
        /// The provider that began the answer and how it failed.
        because: Because,
    },
    Usage {
        prompt_tokens: u32,
        completion_tokens: u32,
    },
    /// The offline model left out this many of the oldest messages (never the system prompt,
    /// never the last message): the whole conversation did not fit its context.
    LeftOut {
        messages: u32,
    },
    /// Why it ended; `model` is the model that wrote it, as the provider reported it.
    Done {
        finish_reason: FinishReason,
        model: String,
    },
    Error {
        error: ChatError,
    },
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
pub(crate) struct Inner {
    chain: RwLock<Arc<Chain>>,
    engine: Engine,
    monitor: Monitor,
    /// The conversation most likely to continue, as its next request would start; the
    /// pre-warm puts it into the local model's KV cache (probe.rs). Versioned so a changed
    /// conversation is warmed again.
    warm: std::sync::Mutex<(u64, Vec<Turn>)>,
}

/// Routes answers over the provider chain. Cheap to clone; clones share state.
#[derive(Debug, Clone)]
pub struct Router(pub(crate) Arc<Inner>);

impl Router {
    pub fn new(chain: Chain, engine: Engine) -> Router {
        let monitor = Monitor::new(&chain, PolicyConfig::from_config(&chain.failover));
        Router(Arc::new(Inner { chain: RwLock::new(Arc::new(chain)), engine, monitor, warm: std::sync::Mutex::default() }))
    }

    /// Remembers the conversation most likely to continue (the one just answered, as its next
    /// request would start: system prompt and every turn so far). When OpenAI turns degraded the
    /// pre-warm evaluates it into the offline model's cache, so a failover then evaluates only
    /// the new message instead of the whole history.
    pub fn remember_context(&self, messages: Vec<Turn>) {
        let mut warm = self.0.warm.lock().expect("warm lock");
        warm.0 += 1;
        warm.1 = messages;
    }

    /// What the pre-warm evaluates, and its version (0: nothing remembered yet).
    pub fn warm_context(&self) -> (u64, Vec<Turn>) {
        self.0.warm.lock().expect("warm lock").clone()
    }

    /// Takes a new chain (config or key changed); answers in flight keep the old one.
    pub fn reconfigure(&self, chain: Chain) {
        self.0.monitor.reconfigure(&chain, PolicyConfig::from_config(&chain.failover));
        *self.0.chain.write().expect("chain lock") = Arc::new(chain);
    }

    /// Provider health, for the tray, notifications, the UI and the status endpoint.
    pub fn health(&self) -> watch::Receiver<HealthSnapshot> {
        self.0.monitor.subscribe()
    }

    pub fn monitor(&self) -> &Monitor {
        &self.0.monitor
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
        let router = self.clone();
        tokio::spawn(async move {
            let sink = Sink(tx);
            tokio::select! {
                biased;
                () = token.cancelled() => {}
                () = answer(&router, &chain, request, &sink) => return,
            }
            // Cancelled: the provider's stream was dropped with the future above, which
            // closes the HTTP connection or cancels the local generation.
            sink.send(Event::Done { finish_reason: FinishReason::Cancelled, model: String::new() }).await;
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
        .ok_or_else(|| ChatError::setup("No cloud provider is configured.", "Add one in Settings.", NextAction::OpenSettings))?;
        let client = cloud.client.as_ref().ok_or_else(|| no_key(cloud))?;
        let started = Instant::now();
        let models = client.models().await.map_err(|e| ChatError::from_cloud(&e))?;
        Ok(ConnectionReport {
            provider: cloud.id.clone(),
            label: cloud.label.clone(),
            latency_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            models: models.len(),
            model: cloud.model.clone(),
            // Some compatible servers list nothing; only a non-empty list that lacks it is a problem.
            model_listed: models.is_empty() || models.iter().any(|m| m.id == cloud.model),
        })
    }
}

impl Router {
    /// The model ids a cloud provider offers (`GET /models`), for Settings' model list.
    pub async fn provider_models(&self, provider: &str) -> Result<Vec<String>, ChatError> {
        let chain = self.chain();
        let cloud = chain.cloud(provider).ok_or_else(|| {
            ChatError::setup(&format!("There is no enabled provider called {provider:?}."), "Enable it and save first.", NextAction::OpenSettings)
        })?;
        let client = cloud.client.as_ref().ok_or_else(|| no_key(cloud))?;
        let mut ids: Vec<String> = client.models().await.map_err(|e| ChatError::from_cloud(&e))?.into_iter().map(|m| m.id).collect();
        ids.sort();
        Ok(ids)
    }
}

/// The result of [`Router::test_connection`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ConnectionReport {
    pub provider: String,
    pub label: String,
    pub latency_ms: u64,
    pub models: usize,
    pub model: String,
    pub model_listed: bool,
}

/// Why `cloud` has no client: its key problem in words, with what to do.
fn no_key(cloud: &Cloud) -> ChatError {
    let (message, next, code) = match &cloud.key_problem {
        None | Some(KeyProblem::Missing) => (format!("No API key is set for {}.", cloud.label), "Add the key in Settings.", "key_missing"),
        Some(KeyProblem::OtherHost { saved_for, now }) => (
            format!("{}'s key was saved for {saved_for}; it is not sent to {now}.", cloud.label),
            "Enter the key for this host in Settings → Providers.",
            "key_needed_for_host",
        ),
        Some(p @ KeyProblem::EnvNotAllowed { .. }) => {
            (format!("{}: {p}.", cloud.label), "Store the key in Settings → Providers, or allow that variable there.", "key_env_not_allowed")
        }
        Some(p) => (format!("{}: {p}.", cloud.label), "Add the key in Settings.", "key_missing"),
    };
    let mut e = ChatError::setup(&message, next, NextAction::AddKey);
    e.provider = Some(cloud.id.clone());
    e.code = Some(code.into());
    e
}

struct Sink(mpsc::Sender<Event>);

impl Sink {
    /// Sends an event; a reader that went away is not an error (the answer still finishes).
    async fn send(&self, e: Event) {
        let _ = self.0.send(e).await;
    }
}

/// How a cloud attempt ended.
enum Attempt {
    Done {
        first_token: Option<Duration>,
    },
    /// Failed; `partial` = (text so far, the chunks of text it came in) when tokens had
    /// already been sent;
    /// `tool_call` when a tool call had begun.
    Failed {
        error: CloudError,
        partial: Option<(String, u32)>,
        tool_call: bool,
    },
}

/// A failure of `cloud` asked `request` in a few words, for "answered here because …".
fn reason_of(e: &CloudError, chain: &Chain, cloud: &Cloud, request: &ChatRequest) -> String {
    match e.kind {
        ErrorKind::FirstToken => format!("{} did not answer within {} s", e.provider, first_token_wait(chain, cloud, request).as_secs()),
        // `lapsed` says which.
        ErrorKind::Stall if request.raw.as_ref().is_some_and(|b| !streamed(b)) => e.message.clone(),
        ErrorKind::Stall => format!("{} stopped sending for {} s", e.provider, chain.failover.stall_timeout.as_secs()),
        _ => e.summary(),
    }
}

/// How long `cloud` was given for the first token of `request`'s answer: longer for a model
/// that reasons silently first.
fn first_token_wait(chain: &Chain, cloud: &Cloud, request: &ChatRequest) -> Duration {
    let (model, effort) = reasoning_of(cloud, request);
    cloud.client.as_ref().map_or(chain.failover.first_token_timeout, |c| c.first_token_wait(&model, effort))
}

/// The model `cloud` is asked for and the `reasoning_effort` it is asked with: the client's
/// body's, else the conversation's or the provider's model.
fn reasoning_of<'a>(cloud: &Cloud, request: &'a ChatRequest) -> (String, Option<&'a str>) {
    let raw = request.raw.as_ref();
    let model = raw.and_then(|b| b.get("model")).and_then(Value::as_str).filter(|m| !m.trim().is_empty());
    let model = model.map(str::to_string).unwrap_or_else(|| asked_model(cloud, request));
    (model, raw.and_then(|b| b.get("reasoning_effort")).and_then(Value::as_str))
}

/// The model `cloud` is asked for: the conversation's own, else the provider's.
fn asked_model(cloud: &Cloud, request: &ChatRequest) -> String {
    request.model.clone().filter(|m| !m.trim().is_empty()).unwrap_or_else(|| cloud.model.clone())
}

/// The failover policy of design.md section 3 applied to one answer: `plan::Plan` decides the
/// order of attempts (each cloud provider in order, skipping those it cannot ask, then the
/// local engine; a cut answer continued offline); this carries its actions out and turns its
/// blame into the words and data the answer carries.
async fn answer(router: &Router, chain: &Chain, request: ChatRequest, sink: &Sink) {
    let engine = router.engine();
    let monitor = router.monitor();
    let pinned = request.provider.as_deref();
    let clouds: Vec<&Cloud> = match pinned {
        Some(id) if id == Chain::local_id() => Vec::new(),
        Some(id) => chain.cloud(id).into_iter().collect(),
        None => chain.clouds.iter().collect(),
    };
    let mut plan = Plan::new(facts(chain, monitor, &request, &clouds));
    let mut blamed = Blamed { chain, monitor, clouds: &clouds, request: &request, failures: clouds.iter().map(|_| None).collect() };
    // The text a provider had sent when it was cut, for the offline model to continue.
    let mut partial_text = None;
    let mut action = plan.start();
    loop {
        match action {
            Action::Ask { provider, wait } => {
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
                let cloud = clouds[provider];
                let Some(client) = &cloud.client else { unreachable!("the plan asks only providers with a key") };
                let failover = (plan.blame().map(|b| blamed.reason(b)), plan.blame().map(|b| blamed.because(b)));
                let outcome = match attempt_cloud(cloud, client, &request, failover, sink).await {
                    Attempt::Done { first_token } => {
                        // A model that thinks before its first token says by it how long it
                        // thought, not how well the provider is doing: never "slow".
                        let (model, effort) = reasoning_of(cloud, &request);
                        let first_token = first_token.filter(|_| !understudy_openai::reasons_silently(&model, effort));
                        monitor.record(chain, &cloud.id, &cloud.label, Outcome::Success { first_token }, None);
                        plan::Outcome::Answered
                    }
                    Attempt::Failed { error, partial, tool_call } => {
                        monitor.record(chain, &cloud.id, &cloud.label, Outcome::Failure(error.class), Some(error.summary()));
                        tracing::warn!(provider = %cloud.id, class = ?error.class, mid_stream = partial.is_some(), "{}", error.describe());
                        let outcome = plan::Outcome::Failed {
                            class: error.class,
                            mid_answer: partial.is_some(),
                            in_tool_call: tool_call,
                            retry_after: error.retry_after,
                        };
                        partial_text = partial;
                        blamed.failures[provider] = Some(error);
                        outcome
                    }
                };
                action = plan.next(outcome);
            }
            Action::Finished => return,
            Action::Local { start, blame } => {
                let start = match start {
                    plan::Start::Fresh => Start::Fresh,
                    plan::Start::Continue => {
                        let (text, sent) = partial_text.take().unwrap_or_default();
                        Start::Continue { text, sent }
                    }
                    plan::Start::Restart => Start::Restart,
                };
                let failover = (blame.map(|b| blamed.reason(b)), blame.map(|b| blamed.because(b)));
                return answer_local(chain, engine, &request, failover, start, sink).await;
            }
            Action::RefuseOffline { blame, mid_answer } => {
                let refusal = request.offline_refusal.as_deref().unwrap_or_default();
                return sink.send(Event::Error { error: blamed.refusal(refusal, blame, mid_answer) }).await;
            }
            Action::GiveUp(why) => return sink.send(Event::Error { error: blamed.unanswered(why, pinned) }).await,
        }
    }
}

/// What the plan starts from: the mode, what was pinned, whether and why each cloud provider
/// would be passed over, the local model, and whether the offline model must refuse.
fn facts(chain: &Chain, monitor: &Monitor, request: &ChatRequest, clouds: &[&Cloud]) -> Facts {
    let pinned = request.provider.as_deref();
    let local_only = chain.mode == Mode::LocalOnly || pinned == Some(Chain::local_id());
    Facts {
        mode: chain.mode,
        pinned: match pinned {
            None => None,
            Some(id) if id == Chain::local_id() => Some(Pinned::Local),
            Some(_) if clouds.is_empty() => Some(Pinned::Unknown),
            Some(_) => Some(Pinned::Cloud),
        },
        clouds: if local_only { Vec::new() } else { clouds.iter().map(|c| skip_of(c, monitor)).collect() },
        local_ready: matches!(chain.local, LocalModel::Ready { .. }),
        offline_refused: request.offline_refusal.is_some(),
    }
}

/// Why a provider is passed over without a request, judged when the answer starts.
fn skip_of(cloud: &Cloud, monitor: &Monitor) -> Option<Skip> {
    match (&cloud.client, &cloud.key_problem) {
        (None, Some(KeyProblem::OtherHost { .. })) => Some(Skip::KeyNeededForHost),
        (None, _) => Some(Skip::NoKey),
        (Some(_), _) if !monitor.allows(&cloud.id, &cloud.label) => Some(Skip::Down),
        (Some(_), _) => None,
    }
}

/// A plan's `Blame` in the words, data and error an answer carries.
struct Blamed<'a> {
    chain: &'a Chain,
    monitor: &'a Monitor,
    clouds: &'a [&'a Cloud],
    request: &'a ChatRequest,
    /// Each provider's last request failure.
    failures: Vec<Option<CloudError>>,
}

impl Blamed<'_> {
    fn failure(&self, i: usize) -> &CloudError {
        self.failures[i].as_ref().expect("the plan blames a failure only after it happened")
    }

    /// The last error the monitor saw from a provider skipped as down.
    fn last_error(&self, cloud: &Cloud) -> Option<String> {
        self.monitor.snapshot().providers.iter().find(|p| p.id == cloud.id).and_then(|p| p.last_error.clone())
    }

    fn because(&self, blame: Blame) -> Because {
        let cloud = self.clouds[blame.index()];
        let reason = match blame {
            Blame::Skipped(_, Skip::NoKey) => FailoverReason::NoKey,
            Blame::Skipped(_, Skip::KeyNeededForHost) => FailoverReason::KeyNeededForHost,
            Blame::Skipped(_, Skip::Down) => FailoverReason::Down,
            Blame::Failed(i) => failover_reason(self.failure(i)),
        };
        because_of(cloud, reason)
    }

    fn reason(&self, blame: Blame) -> String {
        let cloud = self.clouds[blame.index()];
        match blame {
            Blame::Skipped(_, Skip::NoKey) => format!("no API key is set for {}", cloud.label),
            Blame::Skipped(_, Skip::KeyNeededForHost) => format!("{} needs its key entered again for its new host", cloud.label),
            Blame::Skipped(_, Skip::Down) => {
                format!("{} is failing ({}); waiting for it to recover", cloud.label, self.last_error(cloud).as_deref().unwrap_or("recent errors"))
            }
            Blame::Failed(i) => reason_of(self.failure(i), self.chain, cloud, self.request),
        }
    }

    fn error(&self, blame: Blame) -> ChatError {
        let cloud = self.clouds[blame.index()];
        match blame {
            Blame::Skipped(_, Skip::NoKey | Skip::KeyNeededForHost) => no_key(cloud),
            Blame::Skipped(_, Skip::Down) => ChatError::new(
                ErrorClass::Outage,
                NextAction::Retry,
                Some(cloud.id.clone()),
                format!(
                    "{} is failing and is skipped until it recovers{}",
                    cloud.label,
                    self.last_error(cloud).map(|w| format!(" (last error: {w})")).unwrap_or_default()
                ),
                "Install an offline model to keep answering while it is down.",
            ),
            Blame::Failed(i) => ChatError::from_cloud(self.failure(i)),
        }
    }

    /// The offline model cannot take this request (`refusal` says why) and the cloud provider
    /// whose request failed (else the first) did not answer.
    fn refusal(&self, refusal: &str, blame: Option<Blame>, mid_answer: bool) -> ChatError {
        let label = blame
            .and_then(Blame::failed)
            .map_or_else(|| self.chain.clouds.first().map_or_else(|| "OpenAI".to_string(), |c| c.label.clone()), |i| self.clouds[i].label.clone());
        match blame.map(|b| self.reason(b)) {
            None => ChatError::offline_refused(None, refusal),
            Some(why) if mid_answer => ChatError::offline_refused(Some((&label, &format!("it failed mid-answer: {why}"))), refusal),
            Some(why) => ChatError::offline_refused(Some((&label, &why)), refusal),
        }
    }

    /// Nobody can answer: the error that says why (`pinned`: the provider the request named).
    fn unanswered(&self, why: Unanswered, pinned: Option<&str>) -> ChatError {
        match why {
            Unanswered::UnknownProvider => ChatError::setup(
                &format!("There is no provider called {:?}.", pinned.unwrap_or_default()),
                "Check the provider list in the config file.",
                NextAction::OpenSettings,
            ),
            Unanswered::NoCloud => ChatError::setup("No cloud provider is configured.", "Add one in Settings.", NextAction::OpenSettings),
            Unanswered::NothingToTry => ChatError::setup("No provider can answer.", "Check Settings.", NextAction::OpenSettings),
            Unanswered::Error { blame, offer_model } => {
                let mut error = self.error(blame);
                if offer_model {
                    error.next_step = "No offline model is installed to answer meanwhile: download one in Models, then try again.".into();
                    error.next_action = NextAction::DownloadModel;
                }
                error
            }
        }
    }
}

async fn attempt_cloud(
    cloud: &Cloud,
    client: &understudy_openai::Client,
    request: &ChatRequest,
    failover: (Option<String>, Option<Because>),
    sink: &Sink,
) -> Attempt {
    let model = asked_model(cloud, request);
    if let Some(body) = request.raw.as_ref().filter(|b| !streamed(b)) {
        return attempt_whole(cloud, client, client_body(body, &model), failover, sink).await;
    }
    let started = Instant::now();
    let mut stream = match open_stream(client, request, &model).await {
        Ok(s) => s,
        Err(error) => return Attempt::Failed { error, partial: None, tool_call: false },
    };
    let (mut answered_by, mut finish, mut text, mut first_token) = (model, FinishReason::Stop, String::new(), None);
    let mut sent = 0u32;
    // Raw chunks before the first token wait for `Started` (a failover before it drops them).
    let (mut held, mut tool_call) = (Vec::new(), false);
    let begin = |answered_by: &str, (failover, because): &(Option<String>, Option<Because>), headers: &AnswerHeaders| Event::Started {
        provider: cloud.id.clone(),
        label: cloud.label.clone(),
        model: answered_by.to_string(),
        failover: failover.clone(),
        because: because.clone(),
        headers: Some(headers.clone()),
    };
    while let Some(event) = stream.next().await {
        let (model, content) = match event {
            Ok(StreamEvent::Delta { model, content }) => (model, Some(content)),
            Ok(StreamEvent::Part { model, tool_call: call }) => {
                tool_call |= call;
                (model, None)
            }
            Ok(StreamEvent::Chunk { data, value: chunk }) => {
                if first_token.is_none() {
                    held.push((chunk, data));
                } else {
                    sink.send(Event::Upstream { chunk, data }).await;
                }
                continue;
            }
            Ok(StreamEvent::Finish { reason }) => {
                finish = FinishReason::from_wire(&reason);
                continue;
            }
            Ok(StreamEvent::Usage(u)) => {
                sink.send(Event::Usage { prompt_tokens: u.prompt_tokens, completion_tokens: u.completion_tokens }).await;
                continue;
            }
            Ok(StreamEvent::Done) => {
                if first_token.is_none() {
                    // An empty answer is still an answer from this provider.
                    started_with(sink, begin(&answered_by, &failover, &stream.headers), &mut held).await;
                }
                sink.send(Event::Done { finish_reason: finish, model: answered_by }).await;
                return Attempt::Done { first_token };
            }
            Err(error) => return Attempt::Failed { error, partial: first_token.map(|_| (text, sent)), tool_call },
        };
        if !model.is_empty() {
            answered_by = model;
        }
        if first_token.is_none() {
            first_token = Some(started.elapsed());
            started_with(sink, begin(&answered_by, &failover, &stream.headers), &mut held).await;
        }
        if let Some(content) = content {
            sent += 1;
            text.push_str(&content);
            sink.send(Event::Token { text: content }).await;
        }
    }
    // The client reports a stream without [DONE] as an error; this is only a safety net.
    let error = CloudError::new(ErrorKind::Truncated, &cloud.label, "the stream ended without [DONE]");
    Attempt::Failed { error, partial: first_token.map(|_| (text, sent)), tool_call }
}

/// Opens the provider's stream: the client's body as it is (the provider's own `model` only
/// where it names none), else a request made from the conversation.
async fn open_stream(client: &understudy_openai::Client, request: &ChatRequest, model: &str) -> Result<understudy_openai::ChatStream, CloudError> {
    match &request.raw {
        Some(body) => client.chat_stream_body(client_body(body, model)).await,
        None => {
            let req = CloudRequest {
                model: model.to_string(),
                messages: request.messages.iter().map(ChatMessage::from).collect(),
                max_tokens: request.max_tokens,
                temperature: None,
            };
            client.chat_stream(&req).await
        }
    }
}

/// The client's body as the provider is asked it: as it is, with the provider's own `model`
/// only where it names none.
fn client_body(body: &Map<String, Value>, model: &str) -> Map<String, Value> {
    let mut body = body.clone();
    if body.get("model").and_then(Value::as_str).is_none_or(|m| m.trim().is_empty()) {
        body.insert("model".into(), Value::String(model.to_string()));
    }
    body
}

/// Whether a client's body asks for a stream.
fn streamed(body: &Map<String, Value>) -> bool {
    body.get("stream").and_then(Value::as_bool) == Some(true)
}

/// A client that asked for no stream gets the provider's answer whole, its request sent as it
/// is: forcing a stream on would watch for a first token and stalls, but costs what a server
/// takes longer to stream an answer than to send it. [`Liveness`] stands in for those
/// timeouts. Nothing reaches the client before the answer is whole, so after a failure the
/// offline model answers afresh.
async fn attempt_whole(
    cloud: &Cloud,
    client: &understudy_openai::Client,
    body: Map<String, Value>,
    failover: (Option<String>, Option<Because>),
    sink: &Sink,
) -> Attempt {
    let model = body.get("model").and_then(Value::as_str).unwrap_or_default().to_string();
    let first_wait = client.first_token_wait(&model, body.get("reasoning_effort").and_then(Value::as_str));
    let stall = client.config().stall_timeout;
    let started = tokio::time::Instant::now();
    let answer = client.chat_whole_body(body);
    tokio::pin!(answer);
    let mut live = Liveness::new(first_wait, stall);
    let mut check: Option<Check<'_>> = None;
    let whole = loop {
        let wake = match live.step(started.elapsed()) {
            Step::GiveUp(lapse) => return Attempt::Failed { error: lapsed(&cloud.label, lapse, first_wait), partial: None, tool_call: false },
            Step::Check => {
                check = Some(Box::pin(still_answers(client, &model)));
                continue;
            }
            Step::Wait(at) => started + at,
        };
        tokio::select! {
            result = &mut answer => break result,
            checked = async { check.as_mut().expect("polled only with a check").await }, if check.is_some() => {
                check = None;
                match checked {
                    Ok(()) => live.answered(started.elapsed()),
                    // Why the provider does not answer says more than that it did not.
                    Err(error) => return Attempt::Failed { error, partial: None, tool_call: false },
                }
            }
            () = tokio::time::sleep_until(wake) => {}
        }
    };
    drop(check);
    let whole = match whole {
        Ok(w) => w,
        Err(error) => return Attempt::Failed { error, partial: None, tool_call: false },
    };
    let r = whole.response;
    let answered_by = if r.model.is_empty() { model } else { r.model };
    let (failover, because) = failover;
    let headers = Some(whole.headers);
    sink.send(Event::Started { provider: cloud.id.clone(), label: cloud.label.clone(), model: answered_by.clone(), failover, because, headers }).await;
    sink.send(Event::Whole { body: whole.data }).await;
    if !r.content.is_empty() {
        sink.send(Event::Token { text: r.content }).await;
    }
    if let Some(u) = r.usage {
        sink.send(Event::Usage { prompt_tokens: u.prompt_tokens, completion_tokens: u.completion_tokens }).await;
    }
    let finish_reason = r.finish_reason.as_deref().map_or(FinishReason::Stop, FinishReason::from_wire);
    sink.send(Event::Done { finish_reason, model: answered_by }).await;
    Attempt::Done { first_token: None }
}

/// A 1-token check in flight ([`still_answers`]).
type Check<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), CloudError>> + Send + 'a>>;

/// Whether the provider answers a 1-token question: only an outage (no connection, a server
/// error) says it does not; a refusal of its own (a rate limit, a bad key) is still an answer.
/// How long it may take is the caller's [`Liveness`].
async fn still_answers(client: &understudy_openai::Client, model: &str) -> Result<(), CloudError> {
    match client.chat(&crate::probe::one_token(model)).await {
        Err(e) if e.class == FailureClass::Outage => Err(e),
        _ => Ok(()),
    }
}

/// The error of a provider given up on while it wrote a whole answer.
fn lapsed(provider: &str, lapse: Lapse, first_wait: Duration) -> CloudError {
    match lapse {
        Lapse::NoAnswer => CloudError::new(ErrorKind::FirstToken, provider, format!("no answer within {}s, nor to a check", first_wait.as_secs_f32())),
        Lapse::Stopped => CloudError::new(ErrorKind::Stall, provider, format!("{provider} stopped answering while it wrote the answer")),
        Lapse::TooLong => CloudError::new(
            ErrorKind::Stall,
            provider,
            format!("{provider} answered checks but not the request for {} min", crate::liveness::LONGEST.as_secs() / 60),
        ),
    }
}

/// Sends `Started`, then the raw chunks held back until a provider was known to answer.
async fn started_with(sink: &Sink, started: Event, held: &mut Vec<(Value, String)>) {
    sink.send(started).await;
    for (chunk, data) in held.drain(..) {
        sink.send(Event::Upstream { chunk, data }).await;
    }
}

/// How the local engine takes over.
enum Start {
    /// The whole answer (`Started`).
    Fresh,
    /// Continues a cloud provider's partial text as a prefill (`Switched`); `sent`: the chunks
    /// of text it had sent, each about a token, which count against the answer's `max_tokens`.
    Continue { text: String, sent: u32 },
    /// A cloud answer failed inside a tool call: the whole answer afresh (`Switched`).
    Restart,
}

/// Answers with the local engine; after a cloud provider failed mid-answer (announced as
/// `Switched` rather than `Started`) it continues the partial text as a prefill, or restarts.
async fn answer_local(chain: &Chain, engine: &Engine, request: &ChatRequest, failover: (Option<String>, Option<Because>), start: Start, sink: &Sink) {
    let (path, name) = match &chain.local {
        LocalModel::Ready { path, name } => (path, name),
        LocalModel::None => {
            let e = ChatError::setup("No offline model is set up.", "Download one in Models, or choose a .gguf file in Settings.", NextAction::DownloadModel);
            return sink.send(Event::Error { error: e }).await;
        }
        LocalModel::Missing(m) => {
            let e = ChatError::setup(
                &format!("The offline model {m:?} is not on this computer."),
                "Download it in Models, or choose another in Settings.",
                NextAction::DownloadModel,
            );
            return sink.send(Event::Error { error: e }).await;
        }
    };
    let (provider, label) = (Chain::local_id().to_string(), "Local model".to_string());
    let switched = !matches!(start, Start::Fresh);
    let (prefill, sent) = match start {
        Start::Continue { text, sent } => (Some(text), sent),
        Start::Fresh | Start::Restart => (None, 0),
    };
    match (switched, failover) {
        (true, (Some(reason), Some(because))) => sink.send(Event::Switched { provider, label, model: name.clone(), reason, because }).await,
        (_, (failover, because)) => sink.send(Event::Started { provider, label, model: name.clone(), failover, because, headers: None }).await,
    }
    // A continued answer has spent part of its budget already: the client's `max_tokens` is
    // for the whole answer, and the usage reported is the whole answer's too. One spent whole
    // ends here, without loading the model.
    let max_tokens = request.max_tokens.map(|m| m.saturating_sub(sent));
    if max_tokens == Some(0) {
        return sink.send(Event::Done { finish_reason: FinishReason::Length, model: name.clone() }).await;
    }
    if let Err(e) = engine.ensure_loaded(path, chain.context, chain.threads).await {
        return sink.send(Event::Error { error: ChatError::from_engine(&e) }).await;
    }
    let messages = request.offline_messages.clone().unwrap_or_else(|| to_local(&request.messages));
    let params = request.sampling.params(max_tokens);
    let mut generation = match engine.generate_with_tools(messages, request.tools.clone(), params, prefill).await {
        Ok(g) => g,
        Err(e) => return sink.send(Event::Error { error: ChatError::from_engine(&e) }).await,
    };
    while let Some(event) = generation.next().await {
        match event {
            LocalEvent::Token { text, .. } => sink.send(Event::Token { text }).await,
            LocalEvent::Reasoning { text, .. } => sink.send(Event::Reasoning { text }).await,
            LocalEvent::Done { finish_reason, usage, .. } => {
                if usage.dropped_messages > 0 {
                    sink.send(Event::LeftOut { messages: usage.dropped_messages }).await;
                }
                sink.send(Event::Usage { prompt_tokens: usage.prompt_tokens, completion_tokens: usage.completion_tokens + sent }).await;
                let finish = match finish_reason {
                    LocalFinish::Stop => FinishReason::Stop,
                    LocalFinish::Length => FinishReason::Length,
                    LocalFinish::Cancelled => FinishReason::Cancelled,
                };
                return sink.send(Event::Done { finish_reason: finish, model: name.clone() }).await;
            }
            LocalEvent::Error { message, .. } => return sink.send(Event::Error { error: ChatError::local(message) }).await,
            _ => {}
        }
    }
    sink.send(Event::Error { error: ChatError::local("the local engine ended without an answer".into()) }).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_offline_queue_is_busy_with_a_retry_time_not_a_failure() {
        let e = ChatError::from_engine(&understudy_local::EngineError::QueueFull(4));
        assert_eq!((e.class, e.retry_after, e.code.as_deref()), (ErrorClass::Busy, Some(BUSY_RETRY_AFTER_S), Some("rate_limit_exceeded")));
        let e = ChatError::from_engine(&understudy_local::EngineError::GaveWay);
        assert_eq!((e.class, e.retry_after), (ErrorClass::Local, None));
    }
}
