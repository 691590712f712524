//! The user's offline models: files downloaded into the models dir, files imported in place (a
//! list of paths, never copies), and files other apps keep ([`crate::scan`]). Every file is
//! header-checked before it is offered; each comes with what a user needs to choose one —
//! architecture, size, quantization, context, chat template — and whether it fits in memory.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use understudy_local::gguf::{self, Header, Value};

use crate::catalog::Catalog;
use crate::scan::{self, Origin, Roots};

/// The list of imported paths, next to the downloads.
const IMPORTS: &str = "imports.json";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LibraryError {
    #[error("{0}")]
    Invalid(String),
    #[error("no model {0:?} in the library (see `understudy models list`)")]
    NotFound(String),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// Where a model comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// Downloaded by Understudy into the models dir.
    Downloaded,
    /// A file the user pointed at, used in place.
    Imported,
    HfCache,
    LmStudio,
    Ollama,
}

impl From<Origin> for Source {
    fn from(o: Origin) -> Source {
        match o {
            Origin::HfCache => Source::HfCache,
            Origin::LmStudio => Source::LmStudio,
            Origin::Ollama => Source::Ollama,
        }
    }
}

/// Whether a model fits in memory at the configured context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fit {
    /// Needs at most 80 % of the memory available now.
    Fits,
    /// More than is free now, but within the machine's memory: close other apps first.
    Tight,
    WillNotFit,
}

/// What the header says, in the terms a model picker uses.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Details {
    pub architecture: String,
    pub name: Option<String>,
    pub parameters: u64,
    pub quantization: String,
    /// The model's trained context length.
    pub context_length: Option<u64>,
    pub chat_template: bool,
    /// Bytes the KV cache takes at the configured context (f16 keys and values).
    pub kv_cache_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Model {
    /// What `[local] model` takes to use it: the catalog id for a downloaded catalog model,
    /// else the absolute path.
    pub id: String,
    /// For people: the catalog name, the other app's name, or the file name.
    pub label: String,
    pub source: Source,
    pub path: PathBuf,
    pub size: u64,
    /// The header checks out; else why not.
    pub details: Result<Details, String>,
    /// Memory needed to run it (weights + KV cache + runtime), and the verdict.
    pub needs_bytes: u64,
    pub fit: Fit,
}

/// Memory to judge fits by: what is free now and what the machine has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    pub available: u64,
    pub total: u64,
}

impl Memory {
    pub fn now() -> Memory {
        let mut s = sysinfo::System::new();
        s.refresh_memory();
        Memory { available: s.available_memory(), total: s.total_memory() }
    }
}

/// Compute buffers, the worker process and the tokenizer: a fixed allowance on top of weights
/// and cache (llama.cpp's CPU compute buffer for a 4k context is ~100–300 MB).
const RUNTIME_BYTES: u64 = 300 << 20;

pub fn fit(needs: u64, memory: Memory) -> Fit {
    if needs <= memory.available / 10 * 8 {
        Fit::Fits
    } else if needs <= memory.total.saturating_sub(1 << 30) {
        Fit::Tight
    } else {
        Fit::WillNotFit
    }
}

/// llama.cpp's file-type ids (general.file_type) by name.
fn file_type_name(t: u64) -> Option<&'static str> {
    Some(match t {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        19 => "IQ2_XXS",
        20 => "IQ2_XS",
        21 => "Q2_K_S",
        22 => "IQ3_XS",
        23 => "IQ3_XXS",
        24 => "IQ1_S",
        25 => "IQ4_NL",
        26 => "IQ3_S",
        27 => "IQ3_M",
        28 => "IQ2_S",
        29 => "IQ2_M",
        30 => "IQ4_XS",
        31 => "IQ1_M",
        32 => "BF16",
        36 => "TQ1_0",
        37 => "TQ2_0",
        38 => "MXFP4",
        _ => return None,
    })
}

/// Describes a validated header at `context` tokens.
pub fn details(h: &Header, context: u32) -> Details {
    let get = |k: &str| h.arch_value(k).and_then(Value::as_u64);
    let (layers, embd, heads) = (get("block_count").unwrap_or(0), get("embedding_length").unwrap_or(0), get("attention.head_count").unwrap_or(0).max(1));
    let kv_heads = get("attention.head_count_kv").unwrap_or(heads);
    let head_k = get("attention.key_length").unwrap_or(embd / heads);
    let head_v = get("attention.value_length").unwrap_or(embd / heads);
    // The engine allocates the configured context whatever the model was trained for.
    let kv_cache_bytes = layers * u64::from(context) * kv_heads * (head_k + head_v) * 2;
    let quantization =
        h.metadata.get("general.file_type").and_then(Value::as_u64).and_then(file_type_name).map(str::to_string).unwrap_or_else(|| "unknown".into());
    Details {
        architecture: h.architecture().to_string(),
        name: h.name().map(str::to_string),
        parameters: h.parameters(),
        quantization,
        context_length: h.context_length(),
        chat_template: h.chat_template().is_some_and(|t| !t.trim().is_empty()),
        kv_cache_bytes,
    }
}

/// The models dir and its list of imports.
#[derive(Debug, Clone)]
pub struct Library {
    pub dir: PathBuf,
}

impl Library {
    pub fn new(dir: impl Into<PathBuf>) -> Library {
        Library { dir: dir.into() }
    }

    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LibraryError + '_ {
        move |source| LibraryError::Io { path: path.to_path_buf(), source }
    }

    /// The imported paths (missing files included: they are shown as such).
    pub fn imports(&self) -> Vec<PathBuf> {
        std::fs::read(self.dir.join(IMPORTS)).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
    }

    fn save_imports(&self, list: &[PathBuf]) -> Result<(), LibraryError> {
        let path = self.dir.join(IMPORTS);
        std::fs::create_dir_all(&self.dir).map_err(Self::io(&self.dir))?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(list).expect("paths serialise")).map_err(Self::io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(Self::io(&path))
    }

    /// Uses a .gguf file where it is: checks its header, then remembers its absolute path.
    /// Returns the path to put in `[local] model`.
    pub fn import(&self, file: &Path) -> Result<PathBuf, LibraryError> {
        let path = std::fs::canonicalize(file).map_err(Self::io(file))?;
        if !path.is_file() {
            return Err(LibraryError::Invalid(format!("{} is not a file", path.display())));
        }
        gguf::validate(&path).map_err(|e| LibraryError::Invalid(e.to_string()))?;
        if path.starts_with(&self.dir) {
            return Ok(path); // already in the models dir: listed as downloaded
        }
        let mut list = self.imports();
        if !list.contains(&path) {
            list.push(path.clone());
            self.save_imports(&list)?;
        }
        Ok(path)
    }

    /// Every model: downloaded, imported, then found in other apps' folders.
    pub fn list(&self, catalog: &Catalog, roots: &Roots, context: u32, memory: Memory) -> Vec<Model> {
        let mut out = Vec::new();
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "gguf") && p.is_file())
            .collect();
        files.sort();
        for path in files {
            let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            let (id, label) = match catalog.get(&stem) {
                Some(e) => (e.id.clone(), e.name.clone()),
                None => (path.display().to_string(), stem),
            };
            out.push(describe(id, label, Source::Downloaded, path, context, memory));
        }
        for path in self.imports() {
            let label = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            out.push(describe(path.display().to_string(), label, Source::Imported, path, context, memory));
        }
        let known: std::collections::HashSet<PathBuf> = out.iter().filter_map(|m| std::fs::canonicalize(&m.path).ok()).collect();
        for f in scan::scan(roots) {
            if std::fs::canonicalize(&f.path).is_ok_and(|p| known.contains(&p)) {
                continue;
            }
            out.push(describe(f.path.display().to_string(), f.name, f.origin.into(), f.path, context, memory));
        }
        out
    }

    /// Deletes a downloaded model, or forgets an imported one (its file stays). Files of other
    /// apps are theirs to delete.
    pub fn remove(&self, catalog: &Catalog, id: &str) -> Result<PathBuf, LibraryError> {
        let in_dir = match catalog.get(id) {
            Some(e) => self.dir.join(format!("{}.gguf", e.id)),
            None => PathBuf::from(id),
        };
        let in_dir = if in_dir.is_relative() { self.dir.join(in_dir) } else { in_dir };
        if in_dir.parent() == Some(self.dir.as_path()) && in_dir.is_file() {
            std::fs::remove_file(&in_dir).map_err(Self::io(&in_dir))?;
            let _ = std::fs::remove_file(hash_path(&in_dir));
            let _ = crate::download::discard_partial(&in_dir);
            return Ok(in_dir);
        }
        let mut list = self.imports();
        let before = list.len();
        list.retain(|p| p != Path::new(id));
        if list.len() < before {
            self.save_imports(&list)?;
            return Ok(PathBuf::from(id));
        }
        Err(LibraryError::NotFound(id.to_string()))
    }
}

fn describe(id: String, label: String, source: Source, path: PathBuf, context: u32, memory: Memory) -> Model {
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let details = gguf::validate(&path).map(|h| details(&h, context)).map_err(|e| e.to_string());
    let needs_bytes = size + details.as_ref().map_or(0, |d| d.kv_cache_bytes) + RUNTIME_BYTES;
    let fit = fit(needs_bytes, memory);
    Model { id, label, source, path, size, details, needs_bytes, fit }
}

fn hash_path(model: &Path) -> PathBuf {
    crate::download::with_suffix(model, ".sha256")
}

/// Remembers a downloaded file's sha256 beside it, for `verify`.
pub fn record_hash(model: &Path, sha256: &str) -> Result<(), LibraryError> {
    let p = hash_path(model);
    std::fs::write(&p, format!("{sha256}\n")).map_err(|source| LibraryError::Io { path: p, source })
}

/// Re-hashes a file that has a recorded sha256 and compares; files without one pass (their
/// header was checked when listed).
pub fn verify_hash(model: &Path) -> Result<(), String> {
    let Ok(recorded) = std::fs::read_to_string(hash_path(model)) else { return Ok(()) };
    let recorded = recorded.trim().to_ascii_lowercase();
    let file = std::fs::File::open(model).map_err(|e| format!("cannot read it: {e}"))?;
    // The downloader's streamed hash; nothing here stops it part-way.
    let (hashed, stop) = (std::sync::atomic::AtomicU64::new(0), std::sync::atomic::AtomicBool::new(false));
    let actual = crate::download::sha256_file(&file, &hashed, &stop).map_err(|e| format!("cannot read it: {e}"))?.unwrap_or_default();
    if actual == recorded {
        Ok(())
    } else {
        Err(format!("its sha256 is {actual}, but {recorded} was downloaded: the file changed on disk; delete it and download it again"))
    }
}

/// A catalog entry as the Models page shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Offer {
    #[serde(flatten)]
    pub entry: crate::catalog::Entry,
    pub downloaded: bool,
    /// A paused or interrupted download: (bytes on hand, total).
    pub partial: Option<(u64, u64)>,
    pub downloading: bool,
    /// At the catalog size and the configured context.
    pub fit: Fit,
}

/// Everything the Models page shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Shelf {
    pub installed: Vec<Model>,
    pub catalog: Vec<Offer>,
    /// `[local] model` as configured.
    pub chosen: Option<String>,
    pub memory: MemoryView,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MemoryView {
    pub available: u64,
    pub total: u64,
}

impl Library {
    /// The installed models and the catalog with each entry's download state.
    pub fn shelf(&self, catalog: &Catalog, roots: &Roots, context: u32, memory: Memory, chosen: Option<String>, downloading: &[String]) -> Shelf {
        let installed = self.list(catalog, roots, context, memory);
        let offers = catalog
            .models
            .iter()
            .map(|e| {
                let name = format!("{}.gguf", e.id);
                let dest = self.dir.join(&name);
                // Catalog sizes are of Q4-class files: the KV cache at this context is estimated
                // from the parameter count's usual shape (a conservative 1/8 of the weights per 4k).
                let kv = e.size / 8 * u64::from(context) / 4096;
                Offer {
                    entry: e.clone(),
                    downloaded: dest.is_file(),
                    partial: crate::manager::partial(&dest),
                    downloading: downloading.contains(&name),
                    fit: fit(e.size + kv + RUNTIME_BYTES, memory),
                }
            })
            .collect();
        Shelf { installed, catalog: offers, chosen, memory: MemoryView { available: memory.available, total: memory.total } }
    }
}
