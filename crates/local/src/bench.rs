//! `understudy bench`: prompt-processing and generation speed of the bundled llama.cpp on a
//! model, the way llama-bench measures them (a 512-token prompt in batches, then 128 tokens one
//! at a time), plus load time and peak memory.

use std::num::NonZeroU32;
use std::path::Path;
use std::time::Instant;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use serde::Serialize;

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
pub fn run(path: &Path, threads: u32) -> Result<BenchReport, String> {
    crate::gguf::validate(path).map_err(|e| e.to_string())?;
    llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default().with_logs_enabled(false));
    let backend = LlamaBackend::init().map_err(|e| e.to_string())?;
    let threads = if threads == 0 { crate::worker::default_threads() } else { threads };
    let started = Instant::now();
    let model = LlamaModel::load_from_file(&backend, path, &LlamaModelParams::default()).map_err(|e| format!("llama.cpp could not load {}: {e}", path.display()))?;
    let load_ms = started.elapsed().as_millis() as u64;
    let n_ctx = (PROMPT_TOKENS + GEN_TOKENS + 16) as u32;
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(n_ctx))
        .with_n_batch(PROMPT_TOKENS as u32)
        .with_n_threads(threads as i32)
        .with_n_threads_batch(threads as i32);
    let mut ctx = model.new_context(&backend, params).map_err(|e| e.to_string())?;

    // Natural-ish text repeated until it tokenizes past 512 tokens, then cut to exactly 512.
    let vocab = model.vocab();
    let sentence = "The quick brown fox jumps over the lazy dog while the committee reviews the quarterly report on renewable energy. ";
    let mut tokens = vocab.tokenize(sentence.repeat(64).as_bytes(), true, false);
    if tokens.len() < PROMPT_TOKENS {
        return Err(format!("the model's tokenizer made only {} tokens of the benchmark text", tokens.len()));
    }
    tokens.truncate(PROMPT_TOKENS);

    let mut batch = LlamaBatch::new(PROMPT_TOKENS, 1);
    for (i, t) in tokens.iter().enumerate() {
        batch.add(*t, i as i32, &[0], i + 1 == tokens.len()).map_err(|e| e.to_string())?;
    }
    let started = Instant::now();
    ctx.decode(&mut batch).map_err(|e| e.to_string())?;
    let prompt_s = started.elapsed().as_secs_f64();

    // Greedy, end-of-generation ignored: always exactly GEN_TOKENS steps.
    let mut sampler = LlamaSampler::greedy();
    let started = Instant::now();
    let mut pos = tokens.len() as i32;
    for _ in 0..GEN_TOKENS {
        let t = sampler.sample(&ctx, batch.n_tokens() - 1);
        batch.clear();
        batch.add(t, pos, &[0], true).map_err(|e| e.to_string())?;
        pos += 1;
        ctx.decode(&mut batch).map_err(|e| e.to_string())?;
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

/// VmHWM of this process (Linux), in MiB; 0 where unavailable.
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok()))
        .map_or(0.0, |kb| kb / 1024.0)
}
