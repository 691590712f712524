//! The curated catalog (models/catalog.toml, built into the binary) and what a model id means:
//! a catalog id, or `owner/repo/file.gguf` on Hugging Face (design.md section 2).

use serde::{Deserialize, Serialize};

/// The catalog as shipped.
const BUILTIN: &str = include_str!("../../../models/catalog.toml");

/// Hugging Face, unless `HF_ENDPOINT` (huggingface_hub's convention) names a mirror.
pub const DEFAULT_HF_ENDPOINT: &str = "https://huggingface.co";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(rename = "CatalogEntry"))]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub id: String,
    pub name: String,
    pub repo: String,
    pub file: String,
    /// Bytes, as shown before download; the hub's size is what a download is checked against.
    pub size: u64,
    /// Pins the file: checked even when the server sends no `X-Linked-Etag`.
    #[serde(default)]
    pub sha256: Option<String>,
    /// `general.architecture` of the GGUF; one the bundled llama.cpp runs.
    pub architecture: String,
    pub quantization: String,
    pub parameters: String,
    pub context: u32,
    /// Memory needed while answering at the default context (file, KV cache, buffers), GB.
    pub ram_gb: u32,
    pub license: String,
    pub good_for: String,
    #[serde(default)]
    pub recommended: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalog {
    #[serde(rename = "model")]
    pub models: Vec<Entry>,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    #[error("the model catalog cannot be read: {0}")]
    Parse(String),
    #[error("the model catalog is inconsistent: {0}")]
    Invalid(String),
}

impl Catalog {
    /// The catalog built into this binary.
    pub fn builtin() -> Catalog {
        Catalog::parse(BUILTIN).expect("models/catalog.toml is checked by the tests")
    }

    pub fn parse(text: &str) -> Result<Catalog, CatalogError> {
        let c: Catalog = toml::from_str(text).map_err(|e| CatalogError::Parse(e.to_string()))?;
        let mut ids = std::collections::HashSet::new();
        for m in &c.models {
            if !ids.insert(m.id.as_str()) {
                return Err(CatalogError::Invalid(format!("duplicate id {:?}", m.id)));
            }
            crate::download::safe_file_name(&format!("{}.gguf", m.id)).map_err(|e| CatalogError::Invalid(format!("{}: {e}", m.id)))?;
            if !m.file.ends_with(".gguf") || m.repo.split('/').count() != 2 {
                return Err(CatalogError::Invalid(format!("{}: repo must be owner/name and file a .gguf", m.id)));
            }
            if m.sha256.as_deref().is_some_and(|h| h.len() != 64 || !h.chars().all(|c| c.is_ascii_hexdigit())) {
                return Err(CatalogError::Invalid(format!("{}: sha256 must be 64 hex digits", m.id)));
            }
        }
        match c.models.iter().filter(|m| m.recommended).count() {
            1 => Ok(c),
            n => Err(CatalogError::Invalid(format!("{n} entries are marked recommended; exactly one must be"))),
        }
    }

    pub fn get(&self, id: &str) -> Option<&Entry> {
        self.models.iter().find(|m| m.id == id)
    }

    pub fn recommended(&self) -> &Entry {
        self.models.iter().find(|m| m.recommended).expect("parse checks exactly one")
    }
}

/// The Hugging Face base URL: `hf_endpoint_var` (the value of `HF_ENDPOINT`, from the
/// environment snapshot taken at start) when set, else huggingface.co.
pub fn hf_endpoint(hf_endpoint_var: Option<&str>) -> String {
    hf_endpoint_var.map(|v| v.trim().trim_end_matches('/').to_string()).filter(|v| !v.is_empty()).unwrap_or_else(|| DEFAULT_HF_ENDPOINT.to_string())
}

/// What to download for an id: where from, the name it gets in the models dir, and what the
/// catalog knows about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Source {
    pub repo: String,
    pub file: String,
    /// The file name in the models dir (`<id>.gguf` for catalog entries).
    pub local_name: String,
    pub entry: Option<Entry>,
}

impl Source {
    /// `{endpoint}/{owner}/{repo}/resolve/main/{file}`.
    pub fn url(&self, endpoint: &str) -> String {
        format!("{}/{}/resolve/main/{}", endpoint.trim_end_matches('/'), self.repo, self.file)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdError {
    #[error("{0:?} is neither a catalog id (see `understudy models list --catalog`) nor owner/repo/file.gguf")]
    Unknown(String),
    #[error("{0:?}: the file must be a .gguf file directly in the repository (owner/repo/file.gguf)")]
    BadFile(String),
}

/// Resolves a catalog id or `owner/repo/file.gguf`.
pub fn resolve(catalog: &Catalog, id: &str) -> Result<Source, IdError> {
    let id = id.trim();
    if let Some(e) = catalog.get(id) {
        return Ok(Source { repo: e.repo.clone(), file: e.file.clone(), local_name: format!("{}.gguf", e.id), entry: Some(e.clone()) });
    }
    let parts: Vec<&str> = id.split('/').collect();
    match parts.as_slice() {
        [owner, repo, file] if !owner.is_empty() && !repo.is_empty() => {
            let local = crate::download::safe_file_name(file).map_err(|_| IdError::BadFile(id.to_string()))?;
            // A catalog file under another name is still that entry (its checks apply).
            let entry = catalog.models.iter().find(|e| e.repo == format!("{owner}/{repo}") && e.file == *file).cloned();
            Ok(Source { repo: format!("{owner}/{repo}"), file: (*file).to_string(), local_name: local, entry })
        }
        [_, _, ..] if id.ends_with(".gguf") => Err(IdError::BadFile(id.to_string())),
        _ => Err(IdError::Unknown(id.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_catalog_is_complete() {
        let c = Catalog::builtin();
        assert!(c.models.len() >= 8, "{}", c.models.len());
        assert_eq!(c.recommended().id, "gemma-3-4b-it-q4_k_m");
        for m in &c.models {
            assert!(m.size > 100_000_000 && m.size < 10_000_000_000, "{}: {}", m.id, m.size);
            assert!(m.context >= 2048 && !m.good_for.is_empty() && !m.license.is_empty(), "{}", m.id);
        }
    }

    #[test]
    fn ids_resolve_to_hub_urls() {
        let c = Catalog::builtin();
        let s = resolve(&c, "qwen3-0.6b-q8_0").unwrap();
        assert_eq!(s.url("https://hf-mirror.example/"), "https://hf-mirror.example/unsloth/Qwen3-0.6B-GGUF/resolve/main/Qwen3-0.6B-Q8_0.gguf");
        assert_eq!(s.local_name, "qwen3-0.6b-q8_0.gguf");
        let s = resolve(&c, "someone/Some-GGUF/model-Q8_0.gguf").unwrap();
        assert_eq!((s.repo.as_str(), s.local_name.as_str(), s.entry.is_none()), ("someone/Some-GGUF", "model-Q8_0.gguf", true));
        assert!(resolve(&c, "hugging-quants/Llama-3.2-1B-Instruct-Q4_K_M-GGUF/llama-3.2-1b-instruct-q4_k_m.gguf").unwrap().entry.is_some());
        assert!(matches!(resolve(&c, "nonsense"), Err(IdError::Unknown(_))));
        assert!(matches!(resolve(&c, "a/b/../../etc/passwd.gguf"), Err(IdError::BadFile(_))));
        assert!(matches!(resolve(&c, "a/b/sub/x.gguf"), Err(IdError::BadFile(_))));
        assert!(matches!(resolve(&c, "a/b/readme.md"), Err(IdError::BadFile(_))));
    }

    #[test]
    fn a_broken_catalog_is_refused() {
        let one = "[[model]]\nid = \"a\"\nname = \"A\"\nrepo = \"o/r\"\nfile = \"a.gguf\"\nsize = 1\narchitecture = \"llama\"\nquantization = \"Q4\"\nparameters = \"1B\"\ncontext = 4096\nram_gb = 1\nlicense = \"MIT\"\ngood_for = \"x\"\n";
        assert!(matches!(Catalog::parse(one), Err(CatalogError::Invalid(m)) if m.contains("recommended")));
        let two = format!("{one}recommended = true\n{}recommended = true\n", one);
        assert!(matches!(Catalog::parse(&two), Err(CatalogError::Invalid(m)) if m.contains("duplicate")));
        assert!(matches!(Catalog::parse("[[model]]\nid = 3\n"), Err(CatalogError::Parse(_))));
    }
}
