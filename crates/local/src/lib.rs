//! The local engine: llama.cpp (via `llama-cpp-2`, pinned) in an isolated worker process, GGUF
//! header validation before a file reaches llama.cpp, chat templates, sampling and KV-cache
//! reuse.
//!
//! Landed so far: [`gguf::validate`], the header check every model file passes before
//! llama.cpp sees it. The worker, templates and sampling follow (Local engine issue).

mod archs;
mod ggml;
pub mod gguf;

pub use archs::KNOWN_ARCHITECTURES;
