//! A stand-in for a Hugging Face mirror (`HF_ENDPOINT`) on loopback, serving the files of a
//! directory the way the hub does, for tests, the e2e suite and the download benchmark:
//!
//! - `GET|HEAD /{owner}/{repo}/resolve/main/{file}` → 302 to `/blobs/{sha256}` with
//!   `X-Linked-Etag: "<sha256>"` and `X-Linked-Size` (the hub's LFS headers);
//! - `GET|HEAD /blobs/{sha256}` → the bytes, `Range` answered with 206, `ETag`, `Accept-Ranges`;
//! - `GET /api/models?search=Q` and `GET /api/models/{owner}/{repo}/tree/main` (the models API);
//! - `GET /_stats` → `{"served": body bytes sent so far}`.
//!
//! Files are `{dir}/{owner}/{repo}/{file}`. `--rate N` sends at most N bytes/s per response
//! (so a test can stop a download midway). `--no-linked-etag FILE` (repeatable) redirects that
//! file without `X-Linked-Etag`, as the hub does for files not in LFS: nothing to verify it
//! against. Prints `listening on PORT` once it accepts.
//!
//! usage: hf-mirror DIR [--port P] [--rate BYTES_PER_S] [--no-linked-etag FILE]...

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Json;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

struct File {
    repo: String,
    name: String,
    path: PathBuf,
    size: u64,
    sha256: String,
    /// Sent without `X-Linked-Etag`.
    unlinked: bool,
}

struct Mirror {
    files: Vec<File>,
    rate: Option<u64>,
    served: AtomicU64,
}

type App = State<Arc<Mirror>>;

fn sha256_hex(path: &std::path::Path) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    let mut f = std::fs::File::open(path).unwrap();
    std::io::copy(&mut f, &mut h).unwrap();
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = PathBuf::from(args.first().expect("usage: hf-mirror DIR [--port P] [--rate BYTES_PER_S]"));
    let opt = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).map(|v| v.parse::<u64>().expect("a number"));
    let unlinked: Vec<&str> = args.windows(2).filter(|w| w[0] == "--no-linked-etag").map(|w| w[1].as_str()).collect();
    let mut files = Vec::new();
    for owner in std::fs::read_dir(&dir).unwrap().flatten() {
        for repo in std::fs::read_dir(owner.path()).into_iter().flatten().flatten() {
            for f in std::fs::read_dir(repo.path()).into_iter().flatten().flatten() {
                let path = f.path();
                if path.is_file() {
                    let repo = format!("{}/{}", owner.file_name().to_string_lossy(), repo.file_name().to_string_lossy());
                    let name = f.file_name().to_string_lossy().into_owned();
                    files.push(File {
                        repo,
                        unlinked: unlinked.contains(&name.as_str()),
                        name,
                        sha256: sha256_hex(&path),
                        size: path.metadata().unwrap().len(),
                        path,
                    });
                }
            }
        }
    }
    let mirror = Arc::new(Mirror { files, rate: opt("--rate"), served: AtomicU64::new(0) });
    let app = axum::Router::new()
        .route("/_stats", get(|State(m): App| async move { Json(json!({ "served": m.served.load(Ordering::SeqCst) })) }))
        .route("/api/models", get(search))
        .route("/api/models/{owner}/{repo}/tree/main", get(tree))
        .route("/{owner}/{repo}/resolve/main/{file}", get(resolve).head(resolve))
        .route("/blobs/{sha}", get(blob).head(blob))
        .with_state(mirror);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", opt("--port").unwrap_or(0) as u16)).await.unwrap();
    println!("listening on {}", listener.local_addr().unwrap().port());
    axum::serve(listener, app).await.unwrap();
}

async fn search(State(m): App, Query(q): Query<HashMap<String, String>>) -> Json<serde_json::Value> {
    let q = q.get("search").map(|s| s.to_ascii_lowercase()).unwrap_or_default();
    let mut repos: Vec<&str> = m.files.iter().map(|f| f.repo.as_str()).filter(|r| r.to_ascii_lowercase().contains(&q)).collect();
    repos.dedup();
    Json(json!(repos.iter().map(|r| json!({ "id": r, "downloads": 1, "likes": 0 })).collect::<Vec<_>>()))
}

async fn tree(State(m): App, Path((owner, repo)): Path<(String, String)>) -> Json<serde_json::Value> {
    let repo = format!("{owner}/{repo}");
    Json(json!(m
        .files
        .iter()
        .filter(|f| f.repo == repo)
        .map(|f| json!({ "type": "file", "path": f.name, "size": 135, "lfs": { "oid": f.sha256, "size": f.size } }))
        .collect::<Vec<_>>()))
}

async fn resolve(State(m): App, Path((owner, repo, file)): Path<(String, String, String)>) -> Response {
    let repo = format!("{owner}/{repo}");
    match m.files.iter().find(|f| f.repo == repo && f.name == file) {
        Some(f) => {
            let mut resp = (
                StatusCode::FOUND,
                [(header::LOCATION, format!("/blobs/{}", f.sha256)), (header::HeaderName::from_static("x-linked-size"), f.size.to_string())],
            )
                .into_response();
            if !f.unlinked {
                resp.headers_mut().insert("x-linked-etag", format!("\"{}\"", f.sha256).parse().unwrap());
            }
            resp
        }
        None => (StatusCode::NOT_FOUND, Json(json!({ "error": "Entry not found" }))).into_response(),
    }
}

async fn blob(State(m): App, method: Method, headers: HeaderMap, Path(sha): Path<String>) -> Response {
    let Some(f) = m.files.iter().find(|f| f.sha256 == sha) else { return StatusCode::NOT_FOUND.into_response() };
    let range = headers
        .get(header::RANGE)
        .and_then(|r| r.to_str().ok())
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.split_once('-'))
        .map(|(a, b)| (a.parse::<u64>().unwrap_or(0), b.parse::<u64>().ok()));
    let (start, end, status) = match range {
        Some((a, b)) if a < f.size => (a, b.unwrap_or(f.size - 1).min(f.size - 1), StatusCode::PARTIAL_CONTENT),
        Some(_) => return (StatusCode::RANGE_NOT_SATISFIABLE, [(header::CONTENT_RANGE, format!("bytes */{}", f.size))]).into_response(),
        None => (0, f.size.saturating_sub(1), StatusCode::OK),
    };
    let len = if f.size == 0 { 0 } else { end - start + 1 };
    let mut r = Response::builder()
        .status(status)
        .header(header::CONTENT_LENGTH, len)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::ETAG, format!("\"{}\"", f.sha256))
        .header(header::CONTENT_TYPE, "application/octet-stream");
    if status == StatusCode::PARTIAL_CONTENT {
        r = r.header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{}", f.size));
    }
    if method == Method::HEAD {
        return r.body(Body::empty()).unwrap();
    }
    let mut file = tokio::fs::File::open(&f.path).await.unwrap();
    file.seek(std::io::SeekFrom::Start(start)).await.unwrap();
    let (rate, mirror) = (m.rate, m.clone());
    let chunk = rate.map_or(256 * 1024, |r| (r / 20).clamp(1, 256 * 1024)) as usize;
    let t0 = Instant::now();
    let stream = futures_util::stream::unfold((file, len, 0u64), move |(mut file, left, sent)| {
        let mirror = mirror.clone();
        async move {
            if left == 0 {
                return None;
            }
            let mut buf = vec![0u8; chunk.min(left as usize)];
            if file.read_exact(&mut buf).await.is_err() {
                return None;
            }
            let n = buf.len() as u64;
            mirror.served.fetch_add(n, Ordering::SeqCst);
            if let Some(r) = rate {
                let due = Duration::from_secs_f64((sent + n) as f64 / r as f64);
                if let Some(wait) = due.checked_sub(t0.elapsed()) {
                    tokio::time::sleep(wait).await;
                }
            }
            Some((Ok::<_, std::io::Error>(Bytes::from(buf)), (file, left - n, sent + n)))
        }
    });
    r.body(Body::from_stream(stream)).unwrap()
}
