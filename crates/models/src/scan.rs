//! GGUF files other apps already downloaded, found where they keep them and used in place (never
//! copied): the Hugging Face hub cache, LM Studio's models folders and Ollama's blobs (through
//! its manifests, the only place that says which blob is a model and what it is called).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    HfCache,
    LmStudio,
    Ollama,
}

impl Origin {
    pub fn label(self) -> &'static str {
        match self {
            Origin::HfCache => "Hugging Face cache",
            Origin::LmStudio => "LM Studio",
            Origin::Ollama => "Ollama",
        }
    }
}

/// A model file found on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Found {
    pub origin: Origin,
    /// As that app names it: `owner/repo/file.gguf`, `publisher/repo/file.gguf`, `name:tag`.
    pub name: String,
    pub path: PathBuf,
    pub size: u64,
}

/// Where to look. [`Roots::from_env`] gives each app's default locations and overrides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Roots {
    /// Hub cache dirs (holding `models--owner--repo`).
    pub hf_hub: Vec<PathBuf>,
    /// LM Studio models dirs (holding `publisher/repo/*.gguf`).
    pub lm_studio: Vec<PathBuf>,
    /// Ollama models dirs (holding `manifests/` and `blobs/`).
    pub ollama: Vec<PathBuf>,
}

impl Roots {
    /// huggingface_hub: `HF_HUB_CACHE`, else `HF_HOME/hub`, else `~/.cache/huggingface/hub`
    /// (XDG_CACHE_HOME honoured). LM Studio: `~/.lmstudio/models` and the older
    /// `~/.cache/lm-studio/models`. Ollama: `OLLAMA_MODELS`, else `~/.ollama/models`, plus the
    /// Linux service's `/usr/share/ollama/.ollama/models`.
    pub fn from_env(var: impl Fn(&str) -> Option<String>, home: &Path) -> Roots {
        let var = |k: &str| var(k).filter(|v| !v.trim().is_empty()).map(PathBuf::from);
        let cache = var("XDG_CACHE_HOME").unwrap_or_else(|| home.join(".cache"));
        let hf_hub = var("HF_HUB_CACHE").or_else(|| var("HF_HOME").map(|h| h.join("hub"))).unwrap_or_else(|| cache.join("huggingface").join("hub"));
        let ollama = match var("OLLAMA_MODELS") {
            Some(p) => vec![p],
            None => vec![home.join(".ollama").join("models"), PathBuf::from("/usr/share/ollama/.ollama/models")],
        };
        Roots { hf_hub: vec![hf_hub], lm_studio: vec![home.join(".lmstudio").join("models"), cache.join("lm-studio").join("models")], ollama }
    }
}

/// Everything found under `roots`, each file once (an LM Studio link to an HF blob counts once).
pub fn scan(roots: &Roots) -> Vec<Found> {
    let mut out = Vec::new();
    for r in &roots.hf_hub {
        hf_cache(r, &mut out);
    }
    for r in &roots.lm_studio {
        lm_studio(r, &mut out);
    }
    for r in &roots.ollama {
        ollama(r, &mut out);
    }
    let mut seen = HashSet::new();
    out.retain(|f| seen.insert(std::fs::canonicalize(&f.path).unwrap_or_else(|_| f.path.clone())));
    out
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir).into_iter().flatten().flatten().map(|e| e.path()).collect();
    v.sort();
    v
}

fn is_model_gguf(p: &Path) -> bool {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    // Vision projectors ship next to models but cannot answer on their own.
    name.to_ascii_lowercase().ends_with(".gguf") && !name.to_ascii_lowercase().starts_with("mmproj")
}

/// Size of the file a path (or the symlink at it) leads to; None for dangling links.
fn size_of(p: &Path) -> Option<u64> {
    std::fs::metadata(p).ok().filter(|m| m.is_file()).map(|m| m.len())
}

/// `models--owner--repo/snapshots/<revision>/<file>.gguf` (links into `blobs/`).
fn hf_cache(root: &Path, out: &mut Vec<Found>) {
    for repo_dir in entries(root) {
        let Some(dir_name) = repo_dir.file_name().and_then(|n| n.to_str()) else { continue };
        let Some(rest) = dir_name.strip_prefix("models--") else { continue };
        let repo = rest.replacen("--", "/", 1);
        let mut newest: Vec<(std::time::SystemTime, PathBuf)> =
            entries(&repo_dir.join("snapshots")).into_iter().map(|p| (p.metadata().and_then(|m| m.modified()).unwrap_or(std::time::UNIX_EPOCH), p)).collect();
        // Several revisions may hold the same file name; the newest wins, others are older copies.
        newest.sort_by_key(|e| std::cmp::Reverse(e.0));
        let mut names = HashSet::new();
        for (_, snapshot) in newest {
            walk(&snapshot, 3, &mut |p| {
                let rel = p.strip_prefix(&snapshot).unwrap_or(p).to_string_lossy().into_owned();
                if let (true, Some(size)) = (names.insert(rel.clone()), size_of(p)) {
                    out.push(Found { origin: Origin::HfCache, name: format!("{repo}/{rel}"), path: p.to_path_buf(), size });
                }
            });
        }
    }
}

/// `publisher/repo/<file>.gguf`.
fn lm_studio(root: &Path, out: &mut Vec<Found>) {
    walk(root, 3, &mut |p| {
        if let Some(size) = size_of(p) {
            let name = p.strip_prefix(root).unwrap_or(p).to_string_lossy().into_owned();
            out.push(Found { origin: Origin::LmStudio, name, path: p.to_path_buf(), size });
        }
    });
}

/// Calls `f` for each model .gguf under `dir`, at most `depth` levels down.
fn walk(dir: &Path, depth: u32, f: &mut dyn FnMut(&Path)) {
    for p in entries(dir) {
        if p.is_dir() && depth > 0 {
            walk(&p, depth - 1, f);
        } else if is_model_gguf(&p) {
            f(&p);
        }
    }
}

#[derive(Deserialize)]
struct Manifest {
    #[serde(default)]
    layers: Vec<Layer>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Layer {
    media_type: String,
    digest: String,
}

/// `manifests/<host>/<namespace>/<model>/<tag>` (JSON) → the layer of media type
/// `application/vnd.ollama.image.model` → `blobs/sha256-<hex>`.
fn ollama(root: &Path, out: &mut Vec<Found>) {
    let manifests = root.join("manifests");
    for host in entries(&manifests) {
        for namespace in entries(&host) {
            for model in entries(&namespace) {
                for tag in entries(&model) {
                    let Ok(text) = std::fs::read_to_string(&tag) else { continue };
                    let Ok(m) = serde_json::from_str::<Manifest>(&text) else {
                        tracing::debug!("not an Ollama manifest: {}", tag.display());
                        continue;
                    };
                    let Some(layer) = m.layers.iter().find(|l| l.media_type == "application/vnd.ollama.image.model") else { continue };
                    let Some(hex) = layer.digest.strip_prefix("sha256:").filter(|h| h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit())) else {
                        continue;
                    };
                    let blob = root.join("blobs").join(format!("sha256-{hex}"));
                    let Some(size) = size_of(&blob) else { continue };
                    let file_name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                    let (host_name, ns) = (file_name(&host), file_name(&namespace));
                    let short = format!("{}:{}", file_name(&model), file_name(&tag));
                    let name = if host_name == "registry.ollama.ai" && ns == "library" { short } else { format!("{host_name}/{ns}/{short}") };
                    out.push(Found { origin: Origin::Ollama, name, path: blob, size });
                }
            }
        }
    }
}
