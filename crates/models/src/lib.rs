//! Model catalog (models/catalog.toml), Hugging Face search, resumable verified downloads and
//! discovery of GGUF files already on disk (HF cache, LM Studio, Ollama).
//!
//! [`catalog`] (the curated list and what an id means), [`download`] (resumable, verified,
//! parallel ranged downloads), [`hf`] (the hub's search and file lists), [`scan`] (models other
//! apps keep), [`library`] (installed models described and judged for memory; import, remove,
//! verify) and [`manager`] (downloads as the app and CLI run them).

pub mod catalog;
pub mod download;
pub mod hf;
pub mod library;
pub mod manager;
pub mod scan;

pub use download::{
    discard_partial, model_path, part_path, partial_progress, safe_file_name, sidecar_path, DownloadConfig, DownloadControl, DownloadError, DownloadRequest,
    Downloaded, Downloader, Progress, Stage, UnsafeFileName,
};
