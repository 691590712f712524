#![allow(clippy::unwrap_used)]
//! The Hugging Face models API client against an in-test server that answers like the hub
//! (`HF_ENDPOINT` points the real app at a mirror the same way).

use std::sync::{Arc, Mutex};

use axum::extract::{Path, RawQuery};
use axum::routing::get;
use axum::Json;
use serde_json::json;
use understudy_models::hf::{Hub, HubError};

async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test]
async fn search_asks_for_gguf_repos_and_lists_a_repo_s_files_with_sizes_and_hashes() {
    let queries = Arc::new(Mutex::new(Vec::new()));
    let q = queries.clone();
    let app = axum::Router::new()
        .route(
            "/api/models",
            get(move |RawQuery(query): RawQuery| {
                q.lock().unwrap().push(query.unwrap_or_default());
                async move {
                    Json(json!([
                        { "id": "bartowski/Qwen2.5-7B-Instruct-GGUF", "downloads": 120000, "likes": 90, "lastModified": "2024-09-19T00:00:00.000Z", "tags": ["gguf"] },
                        { "id": "Qwen/Qwen2.5-0.5B-Instruct-GGUF", "downloads": 80000, "likes": 50 }
                    ]))
                }
            }),
        )
        .route(
            "/api/models/{owner}/{repo}/tree/main",
            get(|Path((owner, repo)): Path<(String, String)>| async move {
                assert_eq!((owner.as_str(), repo.as_str()), ("bartowski", "Qwen2.5-7B-Instruct-GGUF"));
                Json(json!([
                    { "type": "file", "oid": "x", "size": 1519, "path": ".gitattributes" },
                    { "type": "file", "oid": "y", "size": 135, "path": "Qwen2.5-7B-Instruct-Q8_0.gguf", "lfs": { "oid": "a".repeat(64), "size": 8098525888u64, "pointerSize": 135 } },
                    { "type": "file", "oid": "z", "size": 135, "path": "Qwen2.5-7B-Instruct-Q4_K_M.gguf", "lfs": { "oid": "b".repeat(64), "size": 4683073952u64, "pointerSize": 135 } },
                    { "type": "file", "oid": "w", "size": 135, "path": "Qwen2.5-7B-Instruct-f16-00001-of-00002.gguf", "lfs": { "oid": "c".repeat(64), "size": 9000000000u64, "pointerSize": 135 } },
                    { "type": "directory", "oid": "d", "size": 0, "path": "old" }
                ]))
            }),
        );
    let hub = Hub::new(&serve(app).await);
    let repos = hub.search("qwen 7b", 20).await.unwrap();
    assert_eq!(repos.len(), 2);
    assert_eq!((repos[0].id.as_str(), repos[0].downloads), ("bartowski/Qwen2.5-7B-Instruct-GGUF", 120000));
    let query = queries.lock().unwrap()[0].clone();
    assert!(query.contains("search=qwen%207b") && query.contains("filter=gguf") && query.contains("sort=downloads"), "{query}");

    let files = hub.files("bartowski/Qwen2.5-7B-Instruct-GGUF").await.unwrap();
    let summary: Vec<(&str, u64, Option<&str>)> = files.iter().map(|f| (f.path.as_str(), f.size, f.quantization.as_deref())).collect();
    assert_eq!(
        summary,
        [("Qwen2.5-7B-Instruct-Q4_K_M.gguf", 4683073952, Some("Q4_K_M")), ("Qwen2.5-7B-Instruct-Q8_0.gguf", 8098525888, Some("Q8_0"))],
        "smallest first; shards and non-GGUF left out"
    );
    assert_eq!(files[0].sha256.as_deref(), Some("b".repeat(64).as_str()));
}

#[tokio::test]
async fn hub_failures_name_the_url_and_status() {
    let app = axum::Router::new().route("/api/models", get(|| async { (axum::http::StatusCode::TOO_MANY_REQUESTS, "slow down") }));
    let base = serve(app).await;
    let hub = Hub::new(&base);
    let err = hub.search("x", 5).await.unwrap_err();
    assert!(matches!(&err, HubError::Status { status: 429, .. }), "{err}");
    assert!(err.to_string().contains(&base), "{err}");
    let err = hub.files("a/b").await.unwrap_err();
    assert!(matches!(err, HubError::Status { status: 404, .. }), "{err}");
    let dead = Hub::new("http://127.0.0.1:9");
    assert!(matches!(dead.search("x", 5).await.unwrap_err(), HubError::Unreachable { .. }));
}
