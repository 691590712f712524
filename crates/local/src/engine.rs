//! The parent side of the local engine: spawns the worker process, validates model files before
//! they reach it, routes its events to per-request channels, and turns a crash or a stall into a
//! clear error (then restarts the worker and reloads the model on the next request).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::{mpsc, oneshot, Mutex, Notify};

use crate::gguf;
use crate::protocol::{Event, Message, Request, SamplingParams};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    #[error(transparent)]
    BadModel(#[from] gguf::GgufError),
    #[error("no local model is loaded")]
    NotLoaded,
    #[error("the local engine could not start ({program}): {source}")]
    Spawn { program: String, source: std::io::Error },
    #[error("the local engine failed to load {path}: {message}")]
    Load { path: String, message: String },
    #[error("the local engine stopped unexpectedly ({0})")]
    Crashed(String),
    #[error("the local engine did not respond for {0:?} and was restarted")]
    Stalled(Duration),
    /// A pre-warm stopped so that an answer could start (what it evaluated stays cached).
    #[error("the pre-warm gave way to an answer")]
    GaveWay,
    /// `max_queue` answers are already running or waiting: try again shortly.
    #[error("the offline model is busy: {0} answers are already running or waiting")]
    QueueFull(usize),
}

/// How to start the worker, and how long silence means it hangs.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub program: PathBuf,
    pub args: Vec<String>,
    /// No event for this long while the worker works on a request (time queued behind another
    /// one never counts; prompt evaluation reports progress): the worker is killed and that
    /// request fails.
    pub stall_timeout: Duration,
    /// At most this many answers running or waiting; more get [`EngineError::QueueFull`].
    pub max_queue: usize,
    /// Loading a model may take this long.
    pub load_timeout: Duration,
    /// Stop the worker (freeing the model's memory) after this long without requests; the next
    /// request loads the model again. `None` keeps it loaded.
    pub idle_unload: Option<Duration>,
}

impl EngineConfig {
    pub fn new(program: impl Into<PathBuf>, args: &[&str]) -> EngineConfig {
        EngineConfig {
            program: program.into(),
            args: args.iter().map(|s| s.to_string()).collect(),
            stall_timeout: Duration::from_secs(30),
            load_timeout: Duration::from_secs(120),
            idle_unload: None,
            max_queue: 16,
        }
    }
}

/// What is loaded, so that a restarted worker can load it again.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LoadSpec {
    path: String,
    context: u32,
    threads: u32,
}

/// Facts about a loaded model, from the worker's `loaded` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    pub architecture: String,
    pub load_ms: u64,
    pub context: u32,
    pub threads: u32,
    pub template: String,
}

type Routes = Arc<StdMutex<HashMap<String, mpsc::UnboundedSender<Event>>>>;

/// What the engine's generations came to since it was created (status and tests read it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Tally {
    /// Generations that ended with `Done` (any reason).
    pub finished: u64,
    /// Of those, stopped because nobody wanted the rest (Stop, a client that went away).
    pub cancelled: u64,
    pub completion_tokens: u64,
}

struct Proc {
    pid: Option<u32>,
    requests: mpsc::UnboundedSender<Request>,
    /// Events not tied to a generation (loaded, unloaded, stats, load errors).
    control: mpsc::UnboundedReceiver<Event>,
    alive: Arc<AtomicBool>,
    /// Dropping this kills the worker: the task that owns the child waits on it.
    _kill: oneshot::Sender<()>,
}

impl Proc {
    fn spawn(config: &EngineConfig, routes: &Routes, tally: &Arc<StdMutex<Tally>>) -> Result<Proc, EngineError> {
        let mut child = Command::new(&config.program)
            .args(&config.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| EngineError::Spawn { program: config.program.display().to_string(), source })?;
        let pid = child.id();
        let stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        let (kill, killed) = oneshot::channel::<()>();
        let stuck = Arc::new(Notify::new());
        tokio::spawn(own_child(child, killed, stuck.clone()));
        let (requests, outgoing) = mpsc::unbounded_channel::<Request>();
        tokio::spawn(write_requests(stdin, outgoing));
        let (control_tx, control) = mpsc::unbounded_channel();
        let alive = Arc::new(AtomicBool::new(true));
        let reader =
            Reader { pid, stall: config.stall_timeout, routes: routes.clone(), control: control_tx, tally: tally.clone(), stuck, alive: alive.clone() };
        tokio::spawn(reader.run(stdout));
        Ok(Proc { pid, requests, control, alive, _kill: kill })
    }
}

/// The child's own handle kills it (portable, unlike a `kill` program): when the Proc is
/// dropped (unload, idle, restart) or when the watchdog finds it stuck.
async fn own_child(mut child: Child, killed: oneshot::Receiver<()>, stuck: Arc<Notify>) {
    tokio::select! {
        _ = child.wait() => {}
        _ = killed => { let _ = child.kill().await; }
        () = stuck.notified() => { let _ = child.kill().await; }
    }
}

/// Writes requests to the worker as JSON lines until it stops reading or the Proc is gone.
async fn write_requests(mut stdin: ChildStdin, mut outgoing: mpsc::UnboundedReceiver<Request>) {
    while let Some(req) = outgoing.recv().await {
        let mut line = serde_json::to_vec(&req).expect("requests serialise");
        line.push(b'\n');
        if stdin.write_all(&line).await.is_err() || stdin.flush().await.is_err() {
            break;
        }
    }
}

/// Reads the worker's events and hands each to the answer it belongs to (or to the control
/// channel); its watchdog kills a worker that stays silent while it works on an answer.
struct Reader {
    pid: Option<u32>,
    stall: Duration,
    routes: Routes,
    control: mpsc::UnboundedSender<Event>,
    tally: Arc<StdMutex<Tally>>,
    stuck: Arc<Notify>,
    alive: Arc<AtomicBool>,
}

impl Reader {
    async fn run(self, stdout: ChildStdout) {
        let mut lines = BufReader::new(stdout).lines();
        // The watchdog judges the worker, not the queue: it runs only while the worker
        // works on a request (from `started` to its end) and any event from it resets it.
        let mut working: Option<String> = None;
        let mut killed_for_stall = false;
        // A decode that outlasts the stall timeout on a loaded machine is still work: while
        // the worker keeps using the CPU (a hung one does not), it gets more windows, up to
        // BUSY_WINDOWS in a row without an event.
        let (mut busy_windows, mut cpu_mark) = (0u32, CpuMark::take(self.pid));
        let stall = self.stall;
        loop {
            let next = match &working {
                Some(id) => match tokio::time::timeout(stall, lines.next_line()).await {
                    Ok(next) => next,
                    Err(_) if busy_windows < BUSY_WINDOWS && computing(self.pid, &mut cpu_mark) => {
                        busy_windows += 1;
                        tracing::debug!("local engine silent for {stall:?} but computing: waiting on");
                        continue;
                    }
                    Err(_) => {
                        self.kill_stalled(id);
                        working = None;
                        killed_for_stall = true;
                        continue;
                    }
                },
                None => lines.next_line().await,
            };
            let Ok(Some(line)) = next else { break };
            busy_windows = 0;
            // Tokens come many a second: /proc is read at most ten times a stall window.
            if cpu_mark.is_none_or(|m| m.at.elapsed() >= stall / 10) {
                cpu_mark = CpuMark::take(self.pid);
            }
            let Ok(event) = serde_json::from_str::<Event>(&line) else {
                tracing::warn!("local engine wrote a line that is not an event: {line:?}");
                continue;
            };
            match answer_of(&event) {
                Some((id, false)) => working = Some(id.to_owned()),
                Some((_, true)) => working = None,
                None => {}
            }
            self.deliver(event);
        }
        self.ended(killed_for_stall);
    }

    /// The worker stayed silent for the stall timeout on answer `id`: that answer fails and
    /// the worker is killed.
    fn kill_stalled(&self, id: &str) {
        tracing::warn!("local engine silent for {:?} while answering: killing it", self.stall);
        if let Some(tx) = self.routes.lock().expect("routes lock").remove(id) {
            let _ = tx.send(Event::Error { id: Some(id.to_owned()), message: EngineError::Stalled(self.stall).to_string() });
        }
        self.stuck.notify_one();
    }

    /// Counts a finished generation, then sends the event to its answer (forgotten after its
    /// last event) or, when it belongs to none, to the control channel.
    fn deliver(&self, event: Event) {
        if let Event::Done { finish_reason, usage, .. } = &event {
            let mut t = self.tally.lock().expect("tally lock");
            t.finished += 1;
            t.cancelled += u64::from(*finish_reason == crate::protocol::FinishReason::Cancelled);
            t.completion_tokens += u64::from(usage.completion_tokens);
        }
        match answer_of(&event).map(|(id, last)| (id.to_owned(), last)) {
            Some((id, last)) => {
                let mut r = self.routes.lock().expect("routes lock");
                if let Some(tx) = r.get(&id) {
                    let _ = tx.send(event);
                }
                if last {
                    r.remove(&id);
                }
            }
            None => {
                let _ = self.control.send(event);
            }
        }
    }

    /// EOF: the worker exited or crashed. Everyone waiting hears it now, not at a timeout.
    fn ended(&self, killed_for_stall: bool) {
        self.alive.store(false, Ordering::SeqCst);
        let why = if killed_for_stall { "it was restarted after it stopped responding on another answer" } else { "its output ended" };
        let waiting: Vec<_> = self.routes.lock().expect("routes lock").drain().collect();
        for (id, tx) in waiting {
            let _ = tx.send(Event::Error { id: Some(id), message: EngineError::Crashed(why.into()).to_string() });
        }
    }
}

/// The answer an event belongs to, and whether it is that answer's last event; `None` for
/// events not tied to a generation (loaded, unloaded, stats, load errors).
fn answer_of(event: &Event) -> Option<(&str, bool)> {
    match event {
        Event::Started { id } | Event::Progress { id, .. } | Event::Token { id, .. } | Event::Reasoning { id, .. } => Some((id, false)),
        Event::Done { id, .. } | Event::Error { id: Some(id), .. } => Some((id, true)),
        _ => None,
    }
}

/// The local engine. Cheap to clone (clones share one worker); generations are queued by the
/// worker and run one at a time.
#[derive(Debug, Clone)]
pub struct Engine(Arc<Inner>);

#[derive(Debug)]
pub struct Inner {
    config: EngineConfig,
    routes: Routes,
    tally: Arc<StdMutex<Tally>>,
    next_id: AtomicU64,
    state: Mutex<State>,
    /// The pre-warm in progress, if any: an answer that comes in cancels it rather than wait
    /// behind it (its evaluated prefix stays in the cache).
    prewarming: StdMutex<Option<(String, mpsc::UnboundedSender<Request>)>>,
}

impl std::ops::Deref for Engine {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

#[derive(Default)]
struct State {
    proc: Option<Proc>,
    loaded: Option<(LoadSpec, Loaded)>,
    last_used: Option<tokio::time::Instant>,
    /// Whether the idle watchdog runs.
    watching: bool,
}

impl State {
    /// A worker runs and its output has not ended.
    fn worker_alive(&self) -> bool {
        self.proc.as_ref().is_some_and(|p| p.alive.load(Ordering::SeqCst))
    }
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State").field("running", &self.proc.is_some()).field("loaded", &self.loaded).finish()
    }
}

impl Engine {
    pub fn new(config: EngineConfig) -> Engine {
        Engine(Arc::new(Inner {
            config,
            routes: Arc::default(),
            tally: Arc::default(),
            next_id: AtomicU64::new(1),
            state: Mutex::new(State::default()),
            prewarming: StdMutex::default(),
        }))
    }

    /// What it was made with (the worker program, stall timeout, idle unload).
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Validates the file's GGUF header, then loads it in the worker (starting one if needed).
    pub async fn load(&self, path: &Path, context: u32, threads: u32) -> Result<Loaded, EngineError> {
        let spec = LoadSpec { path: path.display().to_string(), context, threads };
        let mut state = self.state.lock().await;
        self.validate_and_load(&mut state, path, spec).await
    }

    /// Loads the model unless it is loaded already with the same settings. The check and the
    /// load hold one lock: two answers arriving together load the model once (checked apart,
    /// both loaded it, and the second load held the engine while the first answer waited).
    pub async fn ensure_loaded(&self, path: &Path, context: u32, threads: u32) -> Result<(), EngineError> {
        let spec = LoadSpec { path: path.display().to_string(), context, threads };
        let mut state = self.state.lock().await;
        if state.loaded.as_ref().is_some_and(|(s, _)| *s == spec) {
            return Ok(());
        }
        self.validate_and_load(&mut state, path, spec).await.map(drop)
    }

    async fn validate_and_load(&self, state: &mut State, path: &Path, spec: LoadSpec) -> Result<Loaded, EngineError> {
        gguf::validate(path)?;
        let loaded = self.load_locked(state, spec).await?;
        self.watch_idle(state);
        Ok(loaded)
    }

    /// Loads the model (unless it is loaded already with the same settings) and puts the
    /// conversation's start — usually the system prompt — into the KV cache, so that the first
    /// answer pays neither load time nor that prompt's evaluation.
    pub async fn prewarm(&self, path: &Path, context: u32, threads: u32, messages: Vec<Message>) -> Result<crate::protocol::Usage, EngineError> {
        self.ensure_loaded(path, context, threads).await?;
        let mut g = self.start(|id| Request::Prewarm { id, messages }).await?;
        *self.prewarming.lock().expect("prewarming lock") = Some((g.id.clone(), g.requests.clone()));
        let result = loop {
            match g.next().await {
                Some(Event::Done { finish_reason: crate::protocol::FinishReason::Cancelled, .. }) => break Err(EngineError::GaveWay),
                Some(Event::Done { usage, .. }) => break Ok(usage),
                Some(Event::Error { message, .. }) => break Err(EngineError::Load { path: path.display().to_string(), message }),
                Some(_) => {}
                None => break Err(EngineError::Crashed("no answer to the pre-warm".into())),
            }
        };
        let mut current = self.prewarming.lock().expect("prewarming lock");
        if current.as_ref().is_some_and(|(id, _)| *id == g.id) {
            *current = None;
        }
        result
    }

    /// Stops the worker once it has been idle for `idle_unload`; the model stays chosen.
    fn watch_idle(&self, state: &mut State) {
        let Some(idle) = self.config.idle_unload else { return };
        state.last_used = Some(tokio::time::Instant::now());
        if std::mem::replace(&mut state.watching, true) {
            return;
        }
        let weak = Arc::downgrade(&self.0);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(idle / 4).await;
                let Some(inner) = weak.upgrade() else { return };
                let mut state = inner.state.lock().await;
                let busy = !inner.routes.lock().expect("routes lock").is_empty();
                let idle_for = state.last_used.map_or(Duration::ZERO, |t| t.elapsed());
                if state.proc.is_some() && !busy && idle_for >= idle {
                    tracing::info!("local engine idle for {idle_for:?}: unloading the model");
                    state.proc = None; // kill_on_drop frees the model's memory with the process
                }
            }
        });
    }

    async fn load_locked(&self, state: &mut State, spec: LoadSpec) -> Result<Loaded, EngineError> {
        state.loaded = None;
        let proc = self.running(state)?;
        let _ = proc.requests.send(Request::Load { path: spec.path.clone(), context: spec.context, threads: spec.threads });
        let answer = tokio::time::timeout(self.config.load_timeout, async {
            loop {
                match proc.control.recv().await {
                    Some(Event::Loaded { architecture, load_ms, context, threads, template, .. }) => {
                        return Ok(Loaded { architecture, load_ms, context, threads, template })
                    }
                    Some(Event::Error { message, .. }) => return Err(EngineError::Load { path: spec.path.clone(), message }),
                    Some(_) => {}
                    None => return Err(EngineError::Crashed("it exited while loading the model".into())),
                }
            }
        })
        .await;
        match answer {
            Ok(Ok(loaded)) => {
                state.loaded = Some((spec, loaded.clone()));
                Ok(loaded)
            }
            Ok(Err(e)) => {
                if matches!(e, EngineError::Crashed(_)) {
                    state.proc = None;
                }
                Err(e)
            }
            Err(_) => {
                state.proc = None; // kill_on_drop
                Err(EngineError::Stalled(self.config.load_timeout))
            }
        }
    }

    /// The running worker, started anew if it is not running.
    fn running<'s>(&self, state: &'s mut State) -> Result<&'s mut Proc, EngineError> {
        if !state.worker_alive() {
            state.proc = Some(Proc::spawn(&self.config, &self.routes, &self.tally)?);
        }
        Ok(state.proc.as_mut().expect("just set"))
    }

    /// Starts an answer. Events arrive on the returned [`Generation`]; dropping it cancels.
    pub async fn generate(&self, messages: Vec<Message>, params: SamplingParams, prefill: Option<String>) -> Result<Generation, EngineError> {
        self.generate_with_tools(messages, None, params, prefill).await
    }

    /// [`generate`](Self::generate) with `tools` (OpenAI's tool objects) rendered by the model's
    /// chat template; a template that cannot render them fails the answer, never drops them.
    pub async fn generate_with_tools(
        &self,
        messages: Vec<Message>,
        tools: Option<Vec<serde_json::Value>>,
        params: SamplingParams,
        prefill: Option<String>,
    ) -> Result<Generation, EngineError> {
        if let Some((id, requests)) = self.prewarming.lock().expect("prewarming lock").take() {
            let _ = requests.send(Request::Cancel { id });
        }
        self.start(|id| Request::Generate { id, messages, tools, params, prefill }).await
    }

    async fn start(&self, request: impl FnOnce(String) -> Request) -> Result<Generation, EngineError> {
        let mut state = self.state.lock().await;
        let (spec, _) = state.loaded.clone().ok_or(EngineError::NotLoaded)?;
        if !state.worker_alive() {
            // The worker crashed or was unloaded for idleness: bring it back with the same model.
            tracing::info!("local engine starting again; loading {}", spec.path);
            state.proc = None;
            self.load_locked(&mut state, spec).await?;
        }
        if state.last_used.is_some() {
            state.last_used = Some(tokio::time::Instant::now());
        }
        let proc = state.proc.as_ref().expect("running with a model");
        let id = format!("g{}", self.next_id.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = mpsc::unbounded_channel();
        {
            let mut routes = self.routes.lock().expect("routes lock");
            if routes.len() >= self.config.max_queue {
                return Err(EngineError::QueueFull(routes.len()));
            }
            routes.insert(id.clone(), tx);
        }
        let _ = proc.requests.send(request(id.clone()));
        Ok(Generation { id, rx, requests: proc.requests.clone(), finished: false })
    }

    /// Kills the worker (as a crash would) and waits until it is gone; the next request starts
    /// a new one.
    pub async fn kill(&self) {
        let Some(p) = self.state.lock().await.proc.take() else { return };
        let alive = p.alive.clone();
        drop(p);
        let t0 = tokio::time::Instant::now();
        while alive.load(Ordering::SeqCst) && t0.elapsed() < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Generations finished so far, by how they ended.
    pub fn tally(&self) -> Tally {
        *self.tally.lock().expect("tally lock")
    }

    /// Answers started and not yet finished: one generating, the rest queued behind it.
    pub fn in_flight(&self) -> usize {
        self.routes.lock().expect("routes lock").len()
    }

    /// The worker's process id, if one runs.
    pub async fn worker_pid(&self) -> Option<u32> {
        self.state.lock().await.proc.as_ref().and_then(|p| p.pid)
    }
}

/// One answer in progress.
#[derive(Debug)]
pub struct Generation {
    id: String,
    rx: mpsc::UnboundedReceiver<Event>,
    requests: mpsc::UnboundedSender<Request>,
    finished: bool,
}

impl Generation {
    /// The next event: `Token`s, then one `Done` or `Error`; `None` after that. Waiting in the
    /// queue has no time limit; a worker that stays silent for the stall timeout while working
    /// on this answer is killed by the engine and reported here as an error.
    pub async fn next(&mut self) -> Option<Event> {
        if self.finished {
            return None;
        }
        let event = loop {
            match self.rx.recv().await {
                // The engine's watchdog reads these; callers see tokens and the end.
                Some(Event::Started { .. } | Event::Progress { .. }) => {}
                Some(e) => break e,
                None => break Event::Error { id: Some(self.id.clone()), message: EngineError::Crashed("its output ended".into()).to_string() },
            }
        };
        if matches!(event, Event::Done { .. } | Event::Error { .. }) {
            self.finished = true;
        }
        Some(event)
    }

    /// Stops generation; a `Done` with `cancelled` follows.
    pub fn cancel(&self) {
        let _ = self.requests.send(Request::Cancel { id: self.id.clone() });
    }
}

impl Drop for Generation {
    fn drop(&mut self) {
        if !self.finished {
            self.cancel();
        }
    }
}

/// How many stall windows in a row a silent worker that keeps computing is given.
const BUSY_WINDOWS: u32 = 10;

/// The worker's CPU time when it was last looked at.
#[derive(Debug, Clone, Copy)]
struct CpuMark {
    ticks: u64,
    at: std::time::Instant,
}

impl CpuMark {
    fn take(pid: Option<u32>) -> Option<CpuMark> {
        Some(CpuMark { ticks: cpu_ticks(pid?)?, at: std::time::Instant::now() })
    }
}

/// Whether the worker used at least a tenth of a core since `mark`; moves `mark` to now.
/// Where the CPU time cannot be read the worker is judged by its silence alone.
fn computing(pid: Option<u32>, mark: &mut Option<CpuMark>) -> bool {
    let (Some(before), Some(now)) = (*mark, CpuMark::take(pid)) else { return false };
    *mark = Some(now);
    // /proc counts in USER_HZ, which Linux fixes at 100 for its ABI.
    let used = Duration::from_millis(now.ticks.saturating_sub(before.ticks).saturating_mul(10));
    used >= now.at.duration_since(before.at) / 10
}

/// The process's user + system CPU time in clock ticks (Linux /proc).
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ..." with utime and stime the 12th and 13th fields after the comm.
    let mut f = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
    Some(f.next()?.parse::<u64>().ok()? + f.next()?.parse::<u64>().ok()?)
}
