//! The local engine: llama.cpp (via `llama-cpp-2`, pinned) in an isolated worker process.
//!
//! - [`gguf::validate`]: the header check every model file passes before llama.cpp sees it.
//! - [`worker`]: the child process that owns model and context (`understudy worker`).
//! - [`engine::Engine`]: the async parent side; restarts a crashed or stalled worker.
//! - [`template`]: chat templates (llama.cpp built-ins, minijinja, ChatML).
//! - [`grammar`]: `response_format` as a grammar the sampler enforces.
//! - [`tools`]: a template's tool-call format, calls parsed back, a grammar forcing one.

mod archs;
pub mod bench;
mod decode;
pub mod engine;
mod ggml;
pub mod gguf;
pub mod grammar;
pub mod protocol;
pub mod template;
pub mod tools;
pub mod worker;

pub use archs::KNOWN_ARCHITECTURES;
pub use engine::{Engine, EngineError, Generation};
pub use grammar::ResponseFormat;
pub use protocol::{Event, FinishReason, Message, SamplingParams, Usage};
