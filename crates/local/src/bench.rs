//! `understudy bench`: prompt-processing and generation speed of the bundled llama.cpp on a
//! model, the way llama-bench measures pp512 and tg128 (one 512-token batch; 128 single-token
//! decodes), plus load time and peak memory.

use std::num::NonZeroU32;
use std::path::Path;
use std::time::Instant;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;
use serde::Serialize;

/// Why the benchmark could not run; each variant keeps llama.cpp's own error.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    NotAModel(#[from] crate::gguf::GgufError),
    #[error(transparent)]
    Backend(#[from] llama_cpp_2::LlamaCppError),
    #[error("llama.cpp could not load {}: {source}", path.display())]
    Load { path: std::path::PathBuf, source: llama_cpp_2::LlamaModelLoadError },
    #[error(transparent)]
    Context(#[from] llama_cpp_2::LlamaContextLoadError),
    #[error("the model's tokenizer made only {0} tokens of the benchmark text")]
    ShortPrompt(usize),
    #[error(transparent)]
    Batch(#[from] llama_cpp_2::llama_batch::BatchAddError),
    #[error(transparent)]
    Decode(#[from] llama_cpp_2::DecodeError),
}

pub const PROMPT_TOKENS: usize = 512;
pub const GEN_TOKENS: usize = 128;

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub model: String,
    pub threads: u32,
    pub load_ms: u64,
    pub prompt_tokens: usize,
    pub prompt_tokens_per_s: f64,
    pub gen_tokens: usize,
    pub gen_tokens_per_s: f64,
    pub peak_rss_mb: f64,
}

/// Runs the benchmark in this process (it is the measurement, so no worker hop).
pub fn run(path: &Path, threads: u32) -> Result<BenchReport, BenchError> {
    crate::gguf::validate(path)?;
    llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default().with_logs_enabled(false));
    let backend = LlamaBackend::init()?;
    let threads = if threads == 0 { crate::worker::default_threads() } else { threads };
    let started = Instant::now();
    let model =
        LlamaModel::load_from_file(&backend, path, &LlamaModelParams::default()).map_err(|source| BenchError::Load { path: path.to_path_buf(), source })?;
    let load_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let n_ctx = (PROMPT_TOKENS + GEN_TOKENS + 16) as u32;
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(n_ctx))
        .with_n_batch(PROMPT_TOKENS as u32)
        .with_n_threads(threads as i32)
        .with_n_threads_batch(threads as i32);
    let mut ctx = model.new_context(&backend, params)?;

    // Natural-ish text repeated until it tokenizes past 512 tokens, then cut to exactly 512.
    let vocab = model.vocab();
    let sentence = "The quick brown fox jumps over the lazy dog while the committee reviews the quarterly report on renewable energy. ";
    let mut tokens = vocab.tokenize(sentence.repeat(64).as_bytes(), true, false);
    if tokens.len() < PROMPT_TOKENS {
        return Err(BenchError::ShortPrompt(tokens.len()));
    }
    tokens.truncate(PROMPT_TOKENS);

    // Same method as llama-bench's pp512/tg128 and xtask's llama.cpp reference program: a
    // warm-up, a cleared cache, then one 512-token batch; then 128 single-token decodes from an
    // empty cache. No sampling in the timed loop, so the figures compare engine to engine.
    let mut batch = LlamaBatch::new(PROMPT_TOKENS, 1);
    decode(&mut ctx, &mut batch, &tokens[..16], 0)?;
    ctx.clear_kv_cache();
    let started = Instant::now();
    decode(&mut ctx, &mut batch, &tokens, 0)?;
    let prompt_s = started.elapsed().as_secs_f64();

    ctx.clear_kv_cache();
    decode(&mut ctx, &mut batch, &tokens[..1], 0)?;
    ctx.clear_kv_cache();
    let started = Instant::now();
    for i in 0..GEN_TOKENS {
        decode(&mut ctx, &mut batch, &tokens[i..i + 1], i)?;
    }
    let gen_s = started.elapsed().as_secs_f64();

    Ok(BenchReport {
        model: path.display().to_string(),
        threads,
        load_ms,
        prompt_tokens: PROMPT_TOKENS,
        prompt_tokens_per_s: PROMPT_TOKENS as f64 / prompt_s,
        gen_tokens: GEN_TOKENS,
        gen_tokens_per_s: GEN_TOKENS as f64 / gen_s,
        peak_rss_mb: peak_rss_mb(),
    })
}

/// Decodes `tokens` at positions from `start`, logits for the last one only.
fn decode(ctx: &mut LlamaContext<'_>, batch: &mut LlamaBatch<'_>, tokens: &[LlamaToken], start: usize) -> Result<(), BenchError> {
    batch.clear();
    for (i, t) in tokens.iter().enumerate() {
        batch.add(*t, (start + i) as i32, &[0], i + 1 == tokens.len())?;
    }
    Ok(ctx.decode(batch)?)
}

/// VmHWM of this process (Linux), in MiB; 0 where unavailable.
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok()))
        .map_or(0.0, |kb| kb / 1024.0)
}
