//! The local engine: llama.cpp (via `llama-cpp-2`, pinned) in an isolated worker process, GGUF
//! header validation before a file reaches llama.cpp, chat templates, sampling and KV-cache
//! reuse.
//!
//! The engine itself lands with the "Local engine" issue. Until then this crate pins the
//! llama.cpp build (so its C++ compile is part of every measured build) and its tests prove
//! that the bundled llama.cpp loads and runs the project's tiny test model.
