//! Model catalog (models/catalog.toml), Hugging Face search, resumable verified downloads and
//! discovery of GGUF files already on disk (HF cache, LM Studio, Ollama).
//!
//! Empty until the "Model library" issue lands (see ARCHITECTURE.md).
