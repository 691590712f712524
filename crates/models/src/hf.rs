//! Hugging Face's public models API (or a mirror at `HF_ENDPOINT`): search GGUF repositories and
//! list a repository's .gguf files with their sizes, quantizations and sha256 (from LFS).

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HubError {
    #[error("cannot reach {url}: {message}")]
    Unreachable { url: String, message: String },
    #[error("{url} answered {status}")]
    Status { url: String, status: u16 },
    #[error("{url} sent something that is not the models API's JSON: {message}")]
    Format { url: String, message: String },
}

/// A repository from a search.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Repo {
    pub id: String,
    #[serde(default)]
    pub downloads: u64,
    #[serde(default)]
    pub likes: u64,
    #[serde(default, rename = "lastModified")]
    pub last_modified: Option<String>,
}

/// A .gguf file of a repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct RepoFile {
    pub path: String,
    pub size: u64,
    /// From the file name (`Q4_K_M`, `Q8_0`, `F16` …), when it says.
    pub quantization: Option<String>,
    /// The LFS object id, which is the file's sha256.
    pub sha256: Option<String>,
}

#[derive(Deserialize)]
struct TreeEntry {
    #[serde(rename = "type")]
    kind: String,
    path: String,
    #[serde(default)]
    size: u64,
    #[serde(default)]
    lfs: Option<Lfs>,
}

#[derive(Deserialize)]
struct Lfs {
    oid: String,
    size: u64,
}

/// The quantization a GGUF file name carries, e.g. `Llama-3.2-1B-Instruct-Q4_K_M.gguf`.
pub fn quantization_of(file: &str) -> Option<String> {
    let stem = file.strip_suffix(".gguf").unwrap_or(file).to_ascii_uppercase();
    const KNOWN: [&str; 30] = [
        "IQ1_S", "IQ1_M", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ2_M", "IQ3_XXS", "IQ3_XS", "IQ3_S", "IQ3_M", "IQ4_XS", "IQ4_NL", "Q2_K_S", "Q2_K_L", "Q2_K",
        "Q3_K_S", "Q3_K_M", "Q3_K_L", "Q3_K_XL", "Q4_K_S", "Q4_K_M", "Q4_K_L", "Q4_0", "Q4_1", "Q5_K_S", "Q5_K_M", "Q5_K_L", "Q6_K_L", "Q6_K", "Q8_0",
    ];
    let tokens: Vec<&str> = stem.split(['-', '.']).collect();
    for t in tokens.iter().rev() {
        // Names join with '-' or '.', and "_" sits inside the quantization itself.
        if let Some(k) = KNOWN
            .iter()
            .find(|k| t == *k || t.ends_with(&format!("_{k}")) || t.ends_with(*k) && t.len() > k.len() && t.as_bytes()[t.len() - k.len() - 1] == b'_')
        {
            return Some((*k).to_string());
        }
        if ["F16", "BF16", "F32"].contains(t) {
            return Some((*t).to_string());
        }
    }
    None
}

/// A small client for the hub's JSON API.
#[derive(Debug, Clone)]
pub struct Hub {
    http: reqwest::Client,
    endpoint: String,
}

impl Hub {
    pub fn new(endpoint: &str) -> Hub {
        let http = reqwest::Client::builder()
            .user_agent(concat!("understudy/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(std::time::Duration::from_secs(10))
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .expect("a TLS backend is compiled in");
        Hub { http, endpoint: endpoint.trim_end_matches('/').to_string() }
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, url: String) -> Result<T, HubError> {
        let r = self.http.get(&url).send().await.map_err(|e| HubError::Unreachable { url: url.clone(), message: e.to_string() })?;
        if !r.status().is_success() {
            return Err(HubError::Status { url, status: r.status().as_u16() });
        }
        let bytes = r.bytes().await.map_err(|e| HubError::Unreachable { url: url.clone(), message: e.to_string() })?;
        serde_json::from_slice(&bytes).map_err(|e| HubError::Format { url, message: e.to_string() })
    }

    /// GGUF repositories matching `query`, most downloaded first.
    pub async fn search(&self, query: &str, limit: u32) -> Result<Vec<Repo>, HubError> {
        let q: String = query
            .trim()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c.to_string() } else { format!("%{:02X}", c as u32 & 0xff) })
            .collect();
        self.get(format!("{}/api/models?search={q}&filter=gguf&sort=downloads&direction=-1&limit={limit}", self.endpoint)).await
    }

    /// The .gguf files of `repo` (owner/name), multi-part shards excluded (they cannot be
    /// loaded one by one), smallest first.
    pub async fn files(&self, repo: &str) -> Result<Vec<RepoFile>, HubError> {
        let tree: Vec<TreeEntry> = self.get(format!("{}/api/models/{repo}/tree/main", self.endpoint)).await?;
        let mut files: Vec<RepoFile> = tree
            .into_iter()
            .filter(|e| {
                e.kind == "file"
                    && e.path.to_ascii_lowercase().ends_with(".gguf")
                    && !e.path.contains("-of-0")
                    && !e.path.to_ascii_lowercase().contains("mmproj")
            })
            .map(|e| {
                let (size, sha256) = match e.lfs {
                    Some(l) => (l.size, Some(l.oid)),
                    None => (e.size, None),
                };
                RepoFile { quantization: quantization_of(&e.path), path: e.path, size, sha256 }
            })
            .collect();
        files.sort_by_key(|f| f.size);
        Ok(files)
    }
}

#[cfg(test)]
mod tests {
    use super::quantization_of;

    #[test]
    fn quantization_comes_from_the_file_name() {
        for (file, q) in [
            ("Llama-3.2-1B-Instruct-Q4_K_M.gguf", Some("Q4_K_M")),
            ("qwen2.5-0.5b-instruct-q4_k_m.gguf", Some("Q4_K_M")),
            ("gemma-3-1b-it-Q8_0.gguf", Some("Q8_0")),
            ("model.IQ4_XS.gguf", Some("IQ4_XS")),
            ("phi-4-mini-f16.gguf", Some("F16")),
            ("tinyllama-1.1b-chat-v1.0.Q5_K_S.gguf", Some("Q5_K_S")),
            ("weights.gguf", None),
        ] {
            assert_eq!(quantization_of(file).as_deref(), q, "{file}");
        }
    }
}
