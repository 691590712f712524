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
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(rename = "ModelSource"))]
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
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "kebab-case")]
pub enum Fit {
    /// Needs at most 80 % of the memory available now.
    Fits,
    /// More than is free now, but within the machine's memory: close other apps first.
    Tight,
    WillNotFit,
    /// The header does not say enough (or says something no real model has) to estimate the
    /// KV cache: shown as "unknown", never as fitting.
    Unknown,
}

/// What the header says, in the terms a model picker uses.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Details {
    pub architecture: String,
    pub name: Option<String>,
    pub parameters: u64,
    pub quantization: String,
    /// The model's trained context length.
    pub context_length: Option<u64>,
    pub chat_template: bool,
    /// Bytes the KV cache takes at the configured context (f16 keys and values); `None` when
    /// the header gives no usable shape (missing, absurd or overflowing values).
    pub kv_cache_bytes: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(rename = "InstalledModel"))]
pub struct Model {
    /// What `[local] model` takes to use it: the catalog id for a downloaded catalog model,
    /// else the absolute path.
    pub id: String,
    /// For people: the catalog name, the other app's name, or the file name.
    pub label: String,
    pub source: Source,
    pub path: PathBuf,
    pub size: u64,
    /// What the header says; `None` when the file is not a usable model, and then `problem`
    /// says why (for people: unreadable, not GGUF, a bad header).
    pub details: Option<Details>,
    pub problem: Option<String>,
    /// Memory needed to run it (weights + KV cache + runtime), and the verdict; `None` (and
    /// [`Fit::Unknown`]) when the KV cache cannot be estimated.
    pub needs_bytes: Option<u64>,
    pub fit: Fit,
    /// For a downloaded file: whether its sha256 was checked against the hub's or the
    /// catalog's when it was downloaded (`false`: "not verified", the user allowed it, or the
    /// file was put in the models dir by hand). `None`: not ours to judge (imported, other
    /// apps' files) or downloaded before this was recorded.
    pub verified: Option<bool>,
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

/// llama.cpp's `LLAMA_MAX_LAYERS`: it refuses files with more.
const MAX_LAYERS: u64 = 512;

/// Describes a validated header at `context` tokens. Header values come from files anyone can
/// write (scanned folders included): nothing here panics or wraps on them.
pub fn details(h: &Header, context: u32) -> Details {
    let quantization =
        h.metadata.get("general.file_type").and_then(Value::as_u64).and_then(file_type_name).map(str::to_string).unwrap_or_else(|| "unknown".into());
    Details {
        architecture: h.architecture().to_string(),
        name: h.name().map(str::to_string),
        parameters: h.parameters(),
        quantization,
        context_length: h.context_length(),
        chat_template: h.chat_template().is_some_and(|t| !t.trim().is_empty()),
        kv_cache_bytes: kv_cache_bytes(h, context),
    }
}

/// f16 keys and values for `context` tokens (the engine allocates the configured context
/// whatever the model was trained for). `None` without a layer count and width, with more
/// layers than llama.cpp loads, or when the product overflows: a hostile header gets
/// "unknown", not a small number that "fits".
fn kv_cache_bytes(h: &Header, context: u32) -> Option<u64> {
    let get = |k: &str| h.arch_value(k).and_then(Value::as_u64);
    let layers = get("block_count").filter(|l| (1..=MAX_LAYERS).contains(l))?;
    let embd = get("embedding_length").filter(|&e| e > 0)?;
    let heads = get("attention.head_count").unwrap_or(1).max(1);
    // Zero KV heads or head widths would make a cache of nothing: no real model has that.
    let kv_heads = Some(get("attention.head_count_kv").unwrap_or(heads)).filter(|&k| k > 0)?;
    let head_k = get("attention.key_length").unwrap_or(embd / heads);
    let head_v = get("attention.value_length").unwrap_or(embd / heads);
    let per_token = head_k.checked_add(head_v).filter(|&w| w > 0)?;
    layers.checked_mul(u64::from(context))?.checked_mul(kv_heads)?.checked_mul(per_token)?.checked_mul(2)
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
    /// apps are theirs to delete. `id` is a catalog id, a file name in the models dir, or a
    /// path; a name that would leave the models dir is refused before anything is touched.
    pub fn remove(&self, catalog: &Catalog, id: &str) -> Result<PathBuf, LibraryError> {
        let unsafe_name = |e: crate::download::UnsafeFileName| LibraryError::Invalid(e.to_string());
        let as_path = Path::new(id);
        let in_dir = match catalog.get(id) {
            Some(e) => Some(crate::download::model_path(&self.dir, &format!("{}.gguf", e.id)).map_err(unsafe_name)?),
            // A relative id can only name a file directly in the models dir.
            None if as_path.is_relative() => Some(crate::download::model_path(&self.dir, id).map_err(unsafe_name)?),
            None => match (as_path.parent(), as_path.file_name().and_then(|n| n.to_str())) {
                (Some(parent), Some(name)) if parent == self.dir => Some(crate::download::model_path(&self.dir, name).map_err(unsafe_name)?),
                _ => None,
            },
        };
        if let Some(in_dir) = in_dir.filter(|p| p.is_file()) {
            std::fs::remove_file(&in_dir).map_err(Self::io(&in_dir))?;
            let _ = std::fs::remove_file(hash_path(&in_dir));
            let _ = crate::download::discard_partial(&in_dir);
            return Ok(in_dir);
        }
        let mut list = self.imports();
        let before = list.len();
        list.retain(|p| p != as_path);
        if list.len() < before {
            self.save_imports(&list)?;
            return Ok(PathBuf::from(id));
        }
        Err(LibraryError::NotFound(id.to_string()))
    }
}

fn describe(id: String, label: String, source: Source, path: PathBuf, context: u32, memory: Memory) -> Model {
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let (details, problem) = match gguf::validate(&path) {
        Ok(h) => (Some(details(&h, context)), None),
        Err(e) => (None, Some(e.to_string())),
    };
    // A file that cannot be used needs no cache; one whose cache is unknown has no verdict.
    let kv = match &details {
        Some(d) => d.kv_cache_bytes,
        None => Some(0),
    };
    let needs_bytes = kv.and_then(|kv| size.checked_add(kv)?.checked_add(RUNTIME_BYTES));
    let fit = needs_bytes.map_or(Fit::Unknown, |n| fit(n, memory));
    let verified = match source {
        Source::Downloaded => match recorded_hash(&path) {
            Some((_, verified)) => verified,
            None => Some(false),
        },
        _ => None,
    };
    Model { id, label, source, path, size, details, problem, needs_bytes, fit, verified }
}

fn hash_path(model: &Path) -> PathBuf {
    crate::download::with_suffix(model, ".sha256")
}

/// Remembers a downloaded file's sha256 beside it, for `verify`, and whether it was checked
/// against the hub's or the catalog's (for the "not verified" mark).
pub fn record_hash(model: &Path, sha256: &str, verified: bool) -> Result<(), LibraryError> {
    let p = hash_path(model);
    let mark = if verified { "verified" } else { "unverified" };
    std::fs::write(&p, format!("{sha256} {mark}\n")).map_err(|source| LibraryError::Io { path: p, source })
}

/// The recorded sha256 and whether it was verified (`None` in records older than the mark).
fn recorded_hash(model: &Path) -> Option<(String, Option<bool>)> {
    let text = std::fs::read_to_string(hash_path(model)).ok()?;
    let mut words = text.split_whitespace();
    let sha = words.next()?.to_ascii_lowercase();
    let verified = match words.next() {
        Some("verified") => Some(true),
        Some(_) => Some(false),
        None => None,
    };
    Some((sha, verified))
}

/// Why [`verify_hash`] failed.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("cannot read it: {0}")]
    Read(#[from] std::io::Error),
    #[error("its sha256 is {actual}, but {recorded} was downloaded: the file changed on disk; delete it and download it again")]
    Changed { actual: String, recorded: String },
}

/// Re-hashes a file that has a recorded sha256 and compares; files without one pass (their
/// header was checked when listed).
pub fn verify_hash(model: &Path) -> Result<(), VerifyError> {
    let Some((recorded, _)) = recorded_hash(model) else { return Ok(()) };
    let file = std::fs::File::open(model)?;
    // The downloader's streamed hash; nothing here stops it part-way.
    let (hashed, stop) = (std::sync::atomic::AtomicU64::new(0), std::sync::atomic::AtomicBool::new(false));
    let actual = crate::download::sha256_file(&file, &hashed, &stop)?.unwrap_or_default();
    if actual == recorded {
        Ok(())
    } else {
        Err(VerifyError::Changed { actual, recorded })
    }
}

/// A catalog entry as the Models page shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
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
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Shelf {
    pub installed: Vec<Model>,
    pub catalog: Vec<Offer>,
    /// `[local] model` as configured.
    pub chosen: Option<String>,
    pub memory: MemoryView,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
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
                // Catalog ids are checked when the catalog loads; a bad one shows as not downloaded.
                let dest = crate::download::model_path(&self.dir, &name).ok();
                // Catalog sizes are of Q4-class files: the KV cache at this context is estimated
                // from the parameter count's usual shape (a conservative 1/8 of the weights per 4k).
                let kv = (e.size / 8).saturating_mul(u64::from(context)) / 4096;
                Offer {
                    entry: e.clone(),
                    downloaded: dest.as_deref().is_some_and(Path::is_file),
                    partial: dest.as_deref().and_then(crate::manager::partial),
                    downloading: downloading.contains(&name),
                    fit: fit(e.size.saturating_add(kv).saturating_add(RUNTIME_BYTES), memory),
                }
            })
            .collect();
        Shelf { installed, catalog: offers, chosen, memory: MemoryView { available: memory.available, total: memory.total } }
    }
}
