//! The worker process: owns llama.cpp's backend, model and context on one thread and serves the
//! JSON-lines protocol (see [`crate::protocol`]). A separate thread reads stdin so that a
//! `cancel` arrives while tokens are being generated; generation checks for it after every token.
//!
//! Runs as `understudy worker` (or the test binary `understudy-local-worker`). llama.cpp can abort
//! the process on a malformed model; that is why it lives here and not in the app.

use std::collections::VecDeque;
use std::io::{BufRead, Write};
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::time::Instant;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use understudy_core::Role;

use crate::decode::{StopScan, ThinkSplit, Utf8Stream};
use crate::protocol::{Event, FinishReason, Message, Request, SamplingParams, Usage};
use crate::template::{self, Template};

/// Tokens decoded per llama.cpp batch while evaluating a prompt.
const BATCH: usize = 512;
/// The prompt is evaluated this many tokens per decode, each followed by a `progress` event and
/// a look for cancels: on a 2-core CPU a 512-token decode of a 270M model takes over 2 s, a
/// 128-token one ~0.5 s, so a long prompt never looks like a stall and Stop is quick.
const EVAL_CHUNK: usize = 128;

/// Physical cores less one, at least one. Threads beyond the physical cores share execution
/// units; and a desktop always has other work on some core (the webview, the user's programs),
/// where a generation thread that waits for a busy core stalls all the others at each step.
/// Measured on the 2-core CI machine with Gemma 3 270M (`cargo xtask bench`): one thread
/// generated 35 tokens/s idle and 35 with the other core busy; two threads 53 idle but 22 busy.
pub fn default_threads() -> u32 {
    (num_cpus::get_physical().max(2) - 1) as u32
}

enum Incoming {
    Request(Request),
    Malformed(String),
}

/// Serves requests from `input` until it closes, writing events to `output`.
pub fn run(input: impl BufRead + Send + 'static, mut output: impl Write) -> std::io::Result<()> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in input.lines() {
            let Ok(line) = line else { break };
            if line.trim().is_empty() {
                continue;
            }
            let msg = match serde_json::from_str::<Request>(&line) {
                Ok(r) => Incoming::Request(r),
                Err(e) => Incoming::Malformed(format!("malformed request: {e}")),
            };
            if tx.send(msg).is_err() {
                break;
            }
        }
    });
    llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
    let backend = LlamaBackend::init().map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut w = Worker { rx, pending: VecDeque::new(), out: &mut output };
    loop {
        let Some(req) = w.next_blocking() else { return Ok(()) };
        match req {
            Request::Load { path, context, threads } => {
                let started = Instant::now();
                match load(&backend, &path) {
                    Ok((model, architecture)) => {
                        let template = match template::choose(&model, &architecture, &path) {
                            Ok(t) => t,
                            Err(e) => {
                                w.emit(&Event::Error { id: None, message: e.to_string() })?;
                                continue;
                            }
                        };
                        let threads = if threads == 0 { default_threads() } else { threads };
                        let context = context.max(256);
                        w.emit(&Event::Loaded {
                            path: path.clone(),
                            architecture,
                            load_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                            context,
                            threads,
                            template: template.describe(),
                        })?;
                        let spec = Spec { path, context, threads, template };
                        match w.serve(&backend, &model, &spec)? {
                            After::Eof => return Ok(()),
                            After::Unload => w.emit(&Event::Unloaded)?,
                            After::Load(req) => w.pending.push_front(req),
                        }
                    }
                    Err(message) => w.emit(&Event::Error { id: None, message })?,
                }
            }
            Request::Generate { id, .. } | Request::Prewarm { id, .. } => w.emit(&Event::Error { id: Some(id), message: "no local model is loaded".into() })?,
            Request::Cancel { .. } => {}
            Request::Unload => w.emit(&Event::Unloaded)?,
            Request::Stats => w.emit(&Event::Stats { loaded: None, cached_tokens: 0, context: 0, threads: 0 })?,
        }
    }
}

fn load(backend: &LlamaBackend, path: &str) -> Result<(LlamaModel, String), String> {
    // The parent validated the header already; validating again here keeps the worker safe when
    // driven directly, and costs milliseconds.
    let header = crate::gguf::validate(Path::new(path)).map_err(|e| e.to_string())?;
    let model = LlamaModel::load_from_file(backend, path, &LlamaModelParams::default()).map_err(|e| format!("llama.cpp could not load {path}: {e}"))?;
    Ok((model, header.architecture().to_string()))
}

struct Spec {
    path: String,
    context: u32,
    threads: u32,
    template: Template,
}

enum After {
    Eof,
    Unload,
    Load(Request),
}

struct Worker<'o, W: Write> {
    rx: Receiver<Incoming>,
    /// Requests that arrived during a generation, served after it.
    pending: VecDeque<Request>,
    out: &'o mut W,
}

impl<W: Write> Worker<'_, W> {
    fn emit(&mut self, event: &Event) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(event).map_err(std::io::Error::other)?;
        line.push(b'\n');
        self.out.write_all(&line)?;
        self.out.flush()
    }

    fn next_blocking(&mut self) -> Option<Request> {
        if let Some(r) = self.pending.pop_front() {
            return Some(r);
        }
        loop {
            match self.rx.recv().ok()? {
                Incoming::Request(r) => return Some(r),
                Incoming::Malformed(message) => {
                    // A write failure here surfaces on the next emit.
                    let _ = self.emit(&Event::Error { id: None, message });
                }
            }
        }
    }

    fn serve(&mut self, backend: &LlamaBackend, model: &LlamaModel, spec: &Spec) -> std::io::Result<After> {
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(spec.context))
            .with_n_batch(BATCH as u32)
            .with_n_threads(spec.threads as i32)
            .with_n_threads_batch(spec.threads as i32);
        let mut ctx = match model.new_context(backend, params) {
            Ok(c) => c,
            Err(e) => {
                self.emit(&Event::Error { id: None, message: format!("cannot create a {}-token context for {}: {e}", spec.context, spec.path) })?;
                return Ok(After::Unload);
            }
        };
        // Tokens whose keys and values are in the KV cache, in order: the next prompt that starts
        // with them only evaluates the rest.
        let mut cached: Vec<LlamaToken> = Vec::new();
        loop {
            let Some(req) = self.next_blocking() else { return Ok(After::Eof) };
            match req {
                Request::Generate { .. } | Request::Prewarm { .. } => {
                    let (id, messages, tools, params, prefill, evaluate_only) = match req {
                        Request::Generate { id, messages, tools, params, prefill } => (id, messages, tools, params, prefill, false),
                        Request::Prewarm { id, messages } => (id, messages, None, SamplingParams::default(), None, true),
                        _ => unreachable!("matched above"),
                    };
                    let tools = tools.map(serde_json::Value::Array);
                    let g = Generation { model, spec, id: id.clone(), params: &params, tools: tools.as_ref(), evaluate_only };
                    if let Err(message) = g.run(self, &mut ctx, &mut cached, &messages, prefill.as_deref()) {
                        // Whatever state the cache is in now is unknown: start clean next time.
                        ctx.clear_kv_cache();
                        cached.clear();
                        self.emit(&Event::Error { id: Some(id), message })?;
                    }
                }
                Request::Load { .. } => return Ok(After::Load(req)),
                Request::Unload => return Ok(After::Unload),
                Request::Cancel { .. } => {}
                Request::Stats => self.emit(&Event::Stats {
                    loaded: Some(spec.path.clone()),
                    cached_tokens: cached.len() as u32,
                    context: spec.context,
                    threads: spec.threads,
                })?,
            }
        }
    }

    /// A queued request whose client went away never runs: it ends as cancelled at once, so the
    /// requests behind it move up.
    fn drop_pending(&mut self, id: &str) {
        let before = self.pending.len();
        self.pending.retain(|r| !matches!(r, Request::Generate { id: g, .. } | Request::Prewarm { id: g, .. } if g == id));
        if self.pending.len() != before {
            let _ = self.emit(&Event::Done { id: id.to_string(), finish_reason: FinishReason::Cancelled, usage: Usage::default() });
        }
    }

    /// Whether `id` was cancelled; other requests that arrived meanwhile are queued.
    fn cancelled(&mut self, id: &str) -> bool {
        loop {
            match self.rx.try_recv() {
                Ok(Incoming::Request(Request::Cancel { id: c })) if c == id => return true,
                Ok(Incoming::Request(Request::Cancel { id: c })) => self.drop_pending(&c),
                Ok(Incoming::Request(r)) => self.pending.push_back(r),
                Ok(Incoming::Malformed(message)) => {
                    let _ = self.emit(&Event::Error { id: None, message });
                }
                Err(TryRecvError::Empty) => return false,
                // The parent is gone: nobody wants the rest of this answer.
                Err(TryRecvError::Disconnected) => return true,
            }
        }
    }
}

/// A token's text with special tokens written out (`<s>`, `<think>`).
fn special_text(model: &LlamaModel, t: LlamaToken) -> String {
    // Models without a BOS/EOS report token -1, which must not reach token_to_piece.
    if t.0 < 0 {
        return String::new();
    }
    String::from_utf8_lossy(&model.vocab().token_to_piece(t, true, None)).into_owned()
}

struct Generation<'a> {
    model: &'a LlamaModel,
    spec: &'a Spec,
    id: String,
    params: &'a SamplingParams,
    /// OpenAI's tool objects (an array) for the template's `tools`.
    tools: Option<&'a serde_json::Value>,
    /// Pre-warm: fill the cache with the prompt, answer nothing.
    evaluate_only: bool,
}

impl Generation<'_> {
    /// Renders and tokenizes, dropping the oldest turns (never the system prompt, never the last
    /// message) until the prompt leaves room to answer. The number of turns to drop is found by
    /// binary search (fewer tokens the more are dropped), so a long conversation costs
    /// O(log n) renders, not one per dropped turn.
    fn prompt(&self, messages: &[Message], prefill: Option<&str>, usage: &mut Usage) -> Result<Vec<LlamaToken>, String> {
        let vocab = self.model.vocab();
        let (bos, eos) = (special_text(self.model, vocab.bos()), special_text(self.model, vocab.eos()));
        let reserve = self.params.max_tokens.unwrap_or(256).min(self.spec.context / 4) as usize;
        let room = (self.spec.context as usize).saturating_sub(reserve);
        // Droppable: every non-system message but the last message, oldest first.
        let droppable: Vec<usize> = messages.iter().enumerate().filter(|(i, m)| m.role != Role::System && i + 1 < messages.len()).map(|(i, _)| i).collect();
        let tokens_without = |drop: usize| -> Result<Vec<LlamaToken>, String> {
            // The first `drop` droppable messages are exactly the non-system ones before `cut`.
            let cut = drop.checked_sub(1).map_or(0, |last| droppable[last] + 1);
            let kept: Vec<Message> = messages.iter().enumerate().filter(|(i, m)| *i >= cut || m.role == Role::System).map(|(_, m)| m.clone()).collect();
            let mut text = template::render(self.model, &self.spec.path, &self.spec.template, &kept, self.tools, !self.evaluate_only, &bos, &eos)
                .map_err(|e| e.to_string())?;
            if let Some(p) = prefill {
                text.push_str(p);
            }
            // Templates write the BOS themselves where the model wants one.
            Ok(vocab.tokenize(text.as_bytes(), bos.is_empty() || !text.starts_with(&bos), true))
        };
        let all = tokens_without(0)?;
        if all.len() <= room {
            return Ok(all);
        }
        let most = tokens_without(droppable.len())?;
        if most.len() > room {
            return Err(format!("the message is too long for the local model's context: {} prompt tokens, {room} available", most.len()));
        }
        // Invariant: dropping `hi` fits, dropping `lo` does not.
        let (mut lo, mut hi, mut best) = (0, droppable.len(), most);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            let tokens = tokens_without(mid)?;
            if tokens.len() <= room {
                (hi, best) = (mid, tokens);
            } else {
                lo = mid;
            }
        }
        usage.dropped_messages = hi as u32;
        Ok(best)
    }

    fn sampler(&self) -> Result<LlamaSampler, String> {
        let p = self.params;
        let mut chain = Vec::new();
        // First, so every later sampler only ever sees tokens the grammar allows.
        if let Some(g) = &p.grammar {
            chain.push(LlamaSampler::grammar(self.model, g, "root").map_err(|e| format!("the response format's grammar: {e}"))?);
        }
        if p.repeat_penalty != 1.0 || p.frequency_penalty != 0.0 || p.presence_penalty != 0.0 {
            // OpenAI's presence/frequency penalties count every generated token; a window of
            // 1024 covers any answer the offline model writes in practice.
            let last_n = if p.frequency_penalty != 0.0 || p.presence_penalty != 0.0 { 1024 } else { 64 };
            chain.push(LlamaSampler::penalties(self.model.vocab().n_tokens(), last_n, p.repeat_penalty, p.frequency_penalty, p.presence_penalty));
        }
        if p.temperature <= 0.0 {
            chain.push(LlamaSampler::greedy());
        } else {
            if p.top_k > 0 {
                chain.push(LlamaSampler::top_k(p.top_k));
            }
            chain.push(LlamaSampler::top_p(p.top_p, 1));
            chain.push(LlamaSampler::min_p(p.min_p, 1));
            chain.push(LlamaSampler::temp(p.temperature));
            chain.push(LlamaSampler::dist(p.seed));
        }
        Ok(LlamaSampler::chain_simple(chain))
    }

    fn run<W: Write>(
        &self,
        w: &mut Worker<'_, W>,
        ctx: &mut LlamaContext<'_>,
        cached: &mut Vec<LlamaToken>,
        messages: &[Message],
        prefill: Option<&str>,
    ) -> Result<(), String> {
        let io = |e: std::io::Error| format!("cannot write to the engine: {e}");
        w.emit(&Event::Started { id: self.id.clone() }).map_err(io)?;
        let mut usage = Usage::default();
        let tokens = self.prompt(messages, prefill, &mut usage)?;
        if tokens.is_empty() {
            // Nothing to evaluate: a pre-warm of a conversation with no turns yet, on a model
            // without a BOS token (SmolLM2), renders nothing. Done at once, not a crash.
            return w.emit(&Event::Done { id: self.id.clone(), finish_reason: FinishReason::Stop, usage }).map_err(io);
        }
        // Whether the template opened a reasoning block itself: the prompt's last tokens say.
        let tail: String = tokens[tokens.len().saturating_sub(8)..].iter().map(|t| special_text(self.model, *t)).collect();
        let think = ThinkSplit::new(&tail, prefill.is_some());
        usage.prompt_tokens = tokens.len() as u32;

        let started = Instant::now();
        let mut batch = LlamaBatch::new(BATCH, 1);
        let evaluated = self.evaluate(w, ctx, cached, &tokens, &mut batch, &mut usage)?;
        usage.prompt_ms = millis_since(started);
        if !evaluated {
            return w.emit(&Event::Done { id: self.id.clone(), finish_reason: FinishReason::Cancelled, usage }).map_err(io);
        }
        if self.evaluate_only {
            return w.emit(&Event::Done { id: self.id.clone(), finish_reason: FinishReason::Stop, usage }).map_err(io);
        }

        let started = Instant::now();
        let mut sampler = self.sampler()?;
        if let (Some(p), Some(_)) = (prefill, &self.params.grammar) {
            self.accept_prefill(&mut sampler, &tokens, p)?;
        }
        let (finish, completion_tokens) = self.answer(w, ctx, cached, &mut batch, sampler, think)?;
        usage.completion_tokens = completion_tokens;
        usage.generation_ms = millis_since(started);
        w.emit(&Event::Done { id: self.id.clone(), finish_reason: finish, usage }).map_err(io)
    }

    /// Puts the prompt into the KV cache: keeps the common prefix with what is cached and
    /// evaluates only what follows (at least the last token, whose logits the first sample
    /// needs), a chunk at a time with a `progress` event after each. False when cancelled.
    fn evaluate<W: Write>(
        &self,
        w: &mut Worker<'_, W>,
        ctx: &mut LlamaContext<'_>,
        cached: &mut Vec<LlamaToken>,
        tokens: &[LlamaToken],
        batch: &mut LlamaBatch<'_>,
        usage: &mut Usage,
    ) -> Result<bool, String> {
        let common = cached.iter().zip(tokens).take_while(|(a, b)| a == b).count().min(tokens.len() - 1);
        ctx.clear_kv_cache_seq(Some(0), Some(common as u32), None).map_err(|e| e.to_string())?;
        cached.truncate(common);
        usage.prompt_reused = common as u32;
        usage.prompt_evaluated = (tokens.len() - common) as u32;
        for (chunk_start, chunk) in tokens[common..].chunks(EVAL_CHUNK).enumerate().map(|(i, c)| (common + i * EVAL_CHUNK, c)) {
            batch.clear();
            for (j, t) in chunk.iter().enumerate() {
                let pos = chunk_start + j;
                batch.add(*t, pos as i32, &[0], pos + 1 == tokens.len()).map_err(|e| e.to_string())?;
            }
            ctx.decode(batch).map_err(|e| format!("llama.cpp failed to evaluate the prompt: {e}"))?;
            cached.extend_from_slice(chunk);
            w.emit(&Event::Progress { id: self.id.clone(), evaluated: (cached.len() - common) as u32 })
                .map_err(|e| format!("cannot write to the engine: {e}"))?;
            if w.cancelled(&self.id) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// A continued answer: the grammar starts where the cloud's partial text ended. It is fed
    /// the prompt's own last tokens, those that spell the prefill (tokenizing the prefill alone
    /// could differ, e.g. SentencePiece's leading space).
    fn accept_prefill(&self, sampler: &mut LlamaSampler, tokens: &[LlamaToken], prefill: &str) -> Result<(), String> {
        let vocab = self.model.vocab();
        let unfit = || "the partial answer does not match the response format, so it cannot be continued".to_string();
        let (mut k, mut spelled) = (tokens.len(), Vec::new());
        while spelled.len() < prefill.len() && k > 0 {
            k -= 1;
            spelled.splice(0..0, vocab.token_to_piece(tokens[k], false, None));
        }
        if spelled != prefill.as_bytes() {
            return Err(unfit());
        }
        for t in &tokens[k..] {
            sampler.try_accept(*t).map_err(|_| unfit())?;
        }
        Ok(())
    }

    /// Samples and streams the answer until it ends (end of generation, a stop string, the
    /// length limit, a cancel); thinking streams apart from the answer. Returns how it ended
    /// and how many tokens it took.
    fn answer<W: Write>(
        &self,
        w: &mut Worker<'_, W>,
        ctx: &mut LlamaContext<'_>,
        cached: &mut Vec<LlamaToken>,
        batch: &mut LlamaBatch<'_>,
        mut sampler: LlamaSampler,
        mut think: ThinkSplit,
    ) -> Result<(FinishReason, u32), String> {
        let io = |e: std::io::Error| format!("cannot write to the engine: {e}");
        let vocab = self.model.vocab();
        let mut utf8 = Utf8Stream::default();
        let mut stops = StopScan::new(&self.params.stop);
        let max = self.params.max_tokens.map_or(u32::MAX, |m| m.max(1));
        let mut completion_tokens = 0;
        let finish = loop {
            let token = sampler.sample(ctx, batch.n_tokens() - 1);
            if vocab.is_eog(token) {
                break FinishReason::Stop;
            }
            completion_tokens += 1;
            let text = utf8.push(&vocab.token_to_piece(token, false, None));
            // Thinking streams apart from the answer; stop strings apply to the answer only.
            let (reasoning, text) = think.push(&text);
            if !reasoning.is_empty() {
                w.emit(&Event::Reasoning { id: self.id.clone(), text: reasoning }).map_err(io)?;
            }
            let (text, hit) = stops.push(&text);
            if !text.is_empty() {
                w.emit(&Event::Token { id: self.id.clone(), text }).map_err(io)?;
            }
            if hit {
                break FinishReason::Stop;
            }
            if completion_tokens >= max || cached.len() + 1 >= self.spec.context as usize {
                break FinishReason::Length;
            }
            batch.clear();
            batch.add(token, cached.len() as i32, &[0], true).map_err(|e| e.to_string())?;
            ctx.decode(batch).map_err(|e| format!("llama.cpp failed to generate: {e}"))?;
            cached.push(token);
            if w.cancelled(&self.id) {
                break FinishReason::Cancelled;
            }
        };
        let (reasoning, text) = think.push(&utf8.finish());
        let (more_reasoning, more_text) = think.finish();
        let reasoning = reasoning + &more_reasoning;
        if !reasoning.is_empty() && finish != FinishReason::Cancelled {
            w.emit(&Event::Reasoning { id: self.id.clone(), text: reasoning }).map_err(io)?;
        }
        let rest = stops.push(&(text + &more_text)).0 + &stops.finish();
        if !rest.is_empty() && finish != FinishReason::Cancelled {
            w.emit(&Event::Token { id: self.id.clone(), text: rest }).map_err(io)?;
        }
        Ok((finish, completion_tokens))
    }
}

fn millis_since(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}
