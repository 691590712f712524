//! The downloader against a real HTTP server (axum on a loopback port) serving a deterministic
//! 8 MiB body with Range support and injectable faults: dropped connections, stalls, a server
//! that ignores Range, ETag changes, slow transfers, redirects with `X-Linked-Etag`, error
//! statuses. The server counts the body bytes it sends, so a test can tell a resume that
//! fetched only the rest from one that fetched everything again.

use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use understudy_models::download::{
    discard_partial, part_path, partial_progress, sidecar_path, DownloadConfig, DownloadControl, DownloadError, DownloadRequest, Downloaded, Downloader,
    Progress, Stage,
};

const MIB: u64 = 1024 * 1024;
const SIZE: u64 = 8 * MIB;

// ---------------------------------------------------------------------------------------------
// The server

#[derive(Debug, Default)]
struct Faults {
    /// Answer 200 with the whole body to every request, ranged or not.
    ignore_range: bool,
    /// Honour only the first-byte probe's Range; answer other ranged requests with 200.
    ignore_range_after_probe: bool,
    /// Cut the connection when a response reaches this file offset (once).
    drop_at: Option<u64>,
    /// Stop sending (for 30 s) when a response reaches this file offset (once).
    stall_at: Option<u64>,
    /// Bytes per second per response.
    rate: Option<u64>,
    /// Statuses for the next requests, before anything else.
    fail_next: VecDeque<u16>,
    /// The total stated in Content-Range, instead of the real one.
    fake_total: Option<u64>,
    /// `X-Linked-Etag` on the redirect.
    linked_etag: Option<String>,
    /// From the request with this number (1-based) on, serve another file.
    replace_at_request: Option<(u64, Served)>,
}

#[derive(Debug)]
struct Served {
    body: Arc<Vec<u8>>,
    etag: String,
}

#[derive(Debug)]
struct ServerState {
    file: Mutex<Served>,
    faults: Mutex<Faults>,
    /// Body bytes sent (counted as each piece is handed to hyper).
    served: AtomicU64,
    /// Requests to /files/.
    requests: AtomicU64,
    /// Their `Range` headers.
    ranges: Mutex<Vec<(u64, Option<u64>)>>,
    redirects: AtomicU64,
    not_found: AtomicU64,
}

struct TestServer {
    base: String,
    st: Arc<ServerState>,
}

impl TestServer {
    async fn start(body: Vec<u8>) -> Self {
        let st = Arc::new(ServerState {
            file: Mutex::new(Served { body: Arc::new(body), etag: "\"v1\"".into() }),
            faults: Mutex::new(Faults::default()),
            served: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            ranges: Mutex::default(),
            redirects: AtomicU64::new(0),
            not_found: AtomicU64::new(0),
        });
        let app = Router::new().route("/files/{name}", get(serve_file)).route("/redirect/{name}", get(redirect)).fallback(not_found).with_state(st.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serve");
        });
        Self { base: format!("http://{addr}"), st }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn faults(&self, f: impl FnOnce(&mut Faults)) {
        f(&mut self.st.faults.lock().expect("faults"));
    }

    fn set_body(&self, body: Vec<u8>, etag: &str) {
        *self.st.file.lock().expect("file") = Served { body: Arc::new(body), etag: etag.into() };
    }

    fn served(&self) -> u64 {
        self.st.served.load(Ordering::SeqCst)
    }

    fn requests(&self) -> u64 {
        self.st.requests.load(Ordering::SeqCst)
    }

    /// Lets responses the client dropped notice it (a piece in flight may still be counted),
    /// then zeroes the counters.
    async fn settle_and_reset(&self) {
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.st.served.store(0, Ordering::SeqCst);
        self.st.requests.store(0, Ordering::SeqCst);
    }
}

fn parse_range(headers: &HeaderMap) -> Option<(u64, Option<u64>)> {
    let v = headers.get(header::RANGE)?.to_str().ok()?;
    let (a, b) = v.strip_prefix("bytes=")?.split_once('-')?;
    Some((a.parse().ok()?, if b.is_empty() { None } else { Some(b.parse().ok()?) }))
}

async fn serve_file(State(st): State<Arc<ServerState>>, headers: HeaderMap) -> Response {
    let number = st.requests.fetch_add(1, Ordering::SeqCst) + 1;
    let replacement = {
        let mut f = st.faults.lock().expect("faults");
        match f.replace_at_request.take() {
            Some((at, file)) if at == number => Some(file),
            other => {
                f.replace_at_request = other;
                None
            }
        }
    };
    if let Some(file) = replacement {
        *st.file.lock().expect("file") = file;
    }
    let (body, etag) = {
        let f = st.file.lock().expect("file");
        (f.body.clone(), f.etag.clone())
    };
    let (ignore, fake_total, fail) = {
        let mut f = st.faults.lock().expect("faults");
        let range = parse_range(&headers);
        st.ranges.lock().expect("ranges").extend(range);
        let is_probe = range == Some((0, Some(0)));
        (f.ignore_range || (f.ignore_range_after_probe && !is_probe), f.fake_total, f.fail_next.pop_front())
    };
    if let Some(code) = fail {
        return (StatusCode::from_u16(code).expect("status"), [(header::RETRY_AFTER, "0")], "injected failure").into_response();
    }
    let len = body.len() as u64;
    let mut resp = Response::builder().header(header::ETAG, &etag).header(header::CONTENT_TYPE, "application/octet-stream");
    let range = if ignore { None } else { parse_range(&headers) };
    let (start, end) = match range {
        Some((a, _)) if a >= len => {
            return Response::builder()
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(header::CONTENT_RANGE, format!("bytes */{len}"))
                .body(Body::empty())
                .expect("response");
        }
        Some((a, b)) => {
            let b = b.unwrap_or(len - 1).min(len - 1);
            let total = fake_total.unwrap_or(len);
            resp =
                resp.status(StatusCode::PARTIAL_CONTENT).header(header::ACCEPT_RANGES, "bytes").header(header::CONTENT_RANGE, format!("bytes {a}-{b}/{total}"));
            (a, b + 1)
        }
        None => {
            resp = resp.status(StatusCode::OK);
            if !ignore {
                resp = resp.header(header::ACCEPT_RANGES, "bytes");
            }
            (0, len)
        }
    };
    resp.header(header::CONTENT_LENGTH, end - start).body(body_stream(st, body, start, end)).expect("response")
}

/// `body[start..end]` in pieces, with the faults applied.
fn body_stream(st: Arc<ServerState>, body: Arc<Vec<u8>>, start: u64, end: u64) -> Body {
    let stream = futures_util::stream::unfold((start, st, body), move |(pos, st, body)| async move {
        if pos >= end {
            return None;
        }
        let (dropped, stalled, rate) = {
            let mut f = st.faults.lock().expect("faults");
            let piece = if f.rate.is_some() { 16 * 1024 } else { 64 * 1024 };
            let n = piece.min(end - pos);
            let hit = |at: Option<u64>| at.is_some_and(|d| d >= pos && d < pos + n);
            let dropped = hit(f.drop_at);
            if dropped {
                f.drop_at = None;
            }
            let stalled = hit(f.stall_at);
            if stalled {
                f.stall_at = None;
            }
            (dropped, stalled, f.rate)
        };
        if dropped {
            return Some((Err(io::Error::other("injected connection drop")), (end, st, body)));
        }
        if stalled {
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        let piece = if rate.is_some() { 16 * 1024 } else { 64 * 1024 };
        let n = piece.min(end - pos);
        if let Some(rate) = rate {
            tokio::time::sleep(Duration::from_secs_f64(n as f64 / rate as f64)).await;
        }
        st.served.fetch_add(n, Ordering::SeqCst);
        let chunk = Bytes::copy_from_slice(&body[pos as usize..(pos + n) as usize]);
        Some((Ok(chunk), (pos + n, st, body)))
    });
    Body::from_stream(stream)
}

/// Like the Hugging Face hub's `resolve` for an LFS file: 302 to the CDN, with the LFS sha256
/// in `X-Linked-Etag` and the size in `X-Linked-Size`.
async fn redirect(State(st): State<Arc<ServerState>>, axum::extract::Path(name): axum::extract::Path<String>) -> Response {
    st.redirects.fetch_add(1, Ordering::SeqCst);
    let len = st.file.lock().expect("file").body.len();
    let mut resp = Response::builder()
        .status(StatusCode::FOUND)
        .header(header::LOCATION, format!("/files/{name}?X-Amz-Signature=secret"))
        .header(header::ETAG, "\"0123456789abcdef0123456789abcdef01234567\"")
        .header("x-linked-size", len.to_string());
    if let Some(linked) = &st.faults.lock().expect("faults").linked_etag {
        resp = resp.header("x-linked-etag", linked);
    }
    resp.body(Body::empty()).expect("response")
}

async fn not_found(State(st): State<Arc<ServerState>>) -> Response {
    st.not_found.fetch_add(1, Ordering::SeqCst);
    (StatusCode::NOT_FOUND, "Entry not found").into_response()
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// Deterministic pseudo-random bytes (xorshift64*).
fn body(seed: u64, len: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len as usize);
    while (out.len() as u64) < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len as usize);
    out
}

fn sha256(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

fn config() -> DownloadConfig {
    DownloadConfig {
        connections: 4,
        stall_timeout: Duration::from_millis(500),
        retries: 5,
        backoff: Duration::from_millis(50),
        chunk_size: Some(MIB),
        ..DownloadConfig::default()
    }
}

fn downloader() -> Downloader {
    // The downloader's log in the test's captured output (`UNDERSTUDY_LOG=debug` for more).
    let filter = std::env::var("UNDERSTUDY_LOG").unwrap_or_else(|_| "understudy_models=info".into());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
    Downloader::new(config()).expect("downloader")
}

fn request(url: String, dest: &Path, sha: Option<&str>) -> DownloadRequest {
    // Transport tests: a file without a known sha256 is allowed here (the refusal has its own tests).
    DownloadRequest { url, dest: dest.to_path_buf(), expected_size: None, expected_sha256: sha.map(str::to_owned), allow_unverified: true }
}

/// Downloads the server's model.gguf to `dest` in one go, checked against `data`'s sha256.
async fn download_verified(server: &TestServer, dest: &Path, data: &[u8]) -> Downloaded {
    downloader().download(request(server.url("/files/model.gguf"), dest, Some(&sha256(data))), |_| {}, DownloadControl::new()).await.expect("download")
}

type Seen = Arc<Mutex<Vec<Progress>>>;

fn recorder() -> (Seen, impl Fn(Progress) + Send + Sync + 'static) {
    let seen: Seen = Arc::default();
    let s = seen.clone();
    (seen, move |p| s.lock().expect("seen").push(p))
}

/// A progress callback that pauses (or cancels) once `at` bytes are on hand.
fn stop_at(control: &DownloadControl, at: u64, cancel: bool) -> impl Fn(Progress) + Send + Sync + 'static {
    let control = control.clone();
    move |p: Progress| {
        if p.stage == Stage::Downloading && p.done >= at {
            if cancel {
                control.cancel();
            } else {
                control.pause();
            }
        }
    }
}

/// Bytes the sidecar says are on disk.
fn sidecar_covered(dest: &Path) -> u64 {
    let text = std::fs::read(sidecar_path(dest)).expect("sidecar exists");
    let v: serde_json::Value = serde_json::from_slice(&text).expect("sidecar is JSON");
    v["done"].as_array().expect("done ranges").iter().map(|r| r[1].as_u64().expect("end") - r[0].as_u64().expect("start")).sum()
}

#[track_caller]
fn assert_complete(got: &Downloaded, dest: &Path, expected: &[u8]) {
    assert_eq!(got.path, dest);
    assert_eq!(got.size, expected.len() as u64);
    assert_eq!(got.sha256, sha256(expected));
    let on_disk = std::fs::read(dest).expect("dest exists");
    assert!(on_disk == expected, "the file at dest differs from the served body");
    assert_no_partial(dest);
}

#[track_caller]
fn assert_no_partial(dest: &Path) {
    assert!(!part_path(dest).exists(), "{} left behind", part_path(dest).display());
    assert!(!sidecar_path(dest).exists(), "{} left behind", sidecar_path(dest).display());
}

fn dest_in(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("models").join("model.gguf")
}

// ---------------------------------------------------------------------------------------------
// Tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_download_is_verified_and_renamed() {
    let data = body(1, SIZE);
    let server = TestServer::start(data.clone()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let dest = dest_in(&dir);
    let (seen, progress) = recorder();
    let mut req = request(server.url("/files/model.gguf"), &dest, Some(&sha256(&data).to_uppercase()));
    req.expected_size = Some(SIZE);

    let got = downloader().download(req, progress, DownloadControl::new()).await.expect("download");

    assert_complete(&got, &dest, &data);
    assert!(got.verified);
    assert_eq!(got.resumed_bytes, 0);
    // The probe's one byte plus the file, each byte once: 1 probe + 8 chunks of 1 MiB.
    assert_eq!(server.served(), SIZE + 1);
    assert_eq!(server.requests(), 9);
    let seen = seen.lock().expect("seen");
    let downloading: Vec<_> = seen.iter().filter(|p| p.stage == Stage::Downloading).collect();
    assert!(downloading.windows(2).all(|w| w[0].done <= w[1].done), "progress went backwards");
    let last = downloading.last().expect("download progress");
    assert_eq!((last.done, last.total), (SIZE, Some(SIZE)));
    let verified = seen.iter().rfind(|p| p.stage == Stage::Verifying).expect("verify progress");
    assert_eq!(verified.done, SIZE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_dropped_at_30_percent_resumes_that_range() {
    let data = body(2, SIZE);
    let server = TestServer::start(data.clone()).await;
    // Rate-limited so hyper does not buffer hundreds of KiB that the cut would throw away.
    server.faults(|f| {
        f.drop_at = Some(SIZE * 3 / 10);
        f.rate = Some(8 * MIB);
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let dest = dest_in(&dir);

    let got = download_verified(&server, &dest, &data).await;

    assert_complete(&got, &dest, &data);
    // The cut chunk was requested again from where its bytes stopped, not from its start.
    let ranges = server.st.ranges.lock().expect("ranges").clone();
    assert_eq!(ranges.len(), 10, "{ranges:?}");
    assert!(ranges.iter().any(|&(start, _)| start % MIB != 0), "no mid-chunk resume in {ranges:?}");
    assert!(server.served() <= SIZE + 1 + 128 * 1024, "served {}", server.served());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_connection_is_dropped_and_reconnected() {
    let data = body(3, SIZE);
    let server = TestServer::start(data.clone()).await;
    server.faults(|f| f.stall_at = Some(SIZE / 2));
    let dir = tempfile::tempdir().expect("tempdir");
    let dest = dest_in(&dir);
    let started = Instant::now();

    let got = download_verified(&server, &dest, &data).await;

    assert_complete(&got, &dest, &data);
    assert!(server.requests() > 9, "the stalled range was requested again");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_ignoring_range_gets_one_connection_from_zero() {
    let data = body(4, SIZE);
    let server = TestServer::start(data.clone()).await;
    server.faults(|f| f.ignore_range = true);
    let dir = tempfile::tempdir().expect("tempdir");
    let dest = dest_in(&dir);

    let got = download_verified(&server, &dest, &data).await;

    assert_complete(&got, &dest, &data);
    // The probe's 200 is the download: one request, the body once.
    assert_eq!(server.requests(), 1);
    assert_eq!(server.served(), SIZE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_against_a_server_that_now_ignores_range_starts_over_without_appending() {
    let data = body(5, SIZE);
    let server = TestServer::start(data.clone()).await;
    server.faults(|f| f.rate = Some(2 * MIB));
    let dir = tempfile::tempdir().expect("tempdir");
    let dest = dest_in(&dir);
    let url = server.url("/files/model.gguf");

    let control = DownloadControl::new();
    let err = downloader().download(request(url.clone(), &dest, None), stop_at(&control, 3 * MIB, false), control.clone()).await.expect_err("paused");
    assert!(matches!(err, DownloadError::Paused), "{err}");
    assert!(sidecar_covered(&dest) >= 2 * MIB);

    server.settle_and_reset().await;
    server.faults(|f| {
        f.rate = None;
        f.ignore_range = true;
    });
    let got = downloader().download(request(url, &dest, Some(&sha256(&data))), |_| {}, DownloadControl::new()).await.expect("download");

    assert_complete(&got, &dest, &data);
    assert_eq!(got.resumed_bytes, 0);
    assert_eq!(server.served(), SIZE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_ignored_mid_download_falls_back_to_one_connection() {
    let data = body(6, SIZE);
    let server = TestServer::start(data.clone()).await;
    // The probe gets its 206, every chunk request a 200 with the whole body.
    server.faults(|f| f.ignore_range_after_probe = true);
    let dir = tempfile::tempdir().expect("tempdir");
    let dest = dest_in(&dir);

    let got = download_verified(&server, &dest, &data).await;

    assert_complete(&got, &dest, &data);
    let ranged = server.st.ranges.lock().expect("ranges").len() as u64;
    assert_eq!(server.requests(), ranged + 1, "exactly one request without Range: the single connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_changing_mid_download_restarts_from_zero() {
    let old = body(20, SIZE);
    let new = body(21, SIZE);
    let server = TestServer::start(old).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let dest = dest_in(&dir);

    // Request 6 is the first after the probe and the first four chunks: from it on the server
    // has another file under another ETag.
    server.faults(|f| f.replace_at_request = Some((6, Served { body: Arc::new(new.clone()), etag: "\"v2\"".into() })));
    let got = downloader().download(request(server.url("/files/model.gguf"), &dest, None), |_| {}, DownloadControl::new()).await.expect("download");

    assert_complete(&got, &dest, &new);
    assert_eq!(got.resumed_bytes, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etag_change_between_pause_and_resume_restarts_from_zero() {
    let old = body(7, SIZE);
    let new = body(8, SIZE);
    let server = TestServer::start(old).await;
    server.faults(|f| f.rate = Some(2 * MIB));
    let dir = tempfile::tempdir().expect("tempdir");
    let dest = dest_in(&dir);
    let url = server.url("/files/model.gguf");

    let control = DownloadControl::new();
    let err = downloader().download(request(url.clone(), &dest, None), stop_at(&control, 3 * MIB, false), control.clone()).await.expect_err("paused");
    assert!(matches!(err, DownloadError::Paused), "{err}");
    assert!(sidecar_covered(&dest) > 0);

    server.settle_and_reset().await;
    server.set_body(new.clone(), "\"v2\"");
    server.faults(|f| f.rate = None);
    let got = Downloader::new(config()).expect("downloader").download(request(url, &dest, None), |_| {}, DownloadControl::new()).await.expect("download");

    assert_complete(&got, &dest, &new);
    assert_eq!(got.resumed_bytes, 0);
    assert_eq!(server.served(), SIZE + 1, "everything fetched again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_expected_hash_fails_and_leaves_nothing() {
    let data = body(9, SIZE);
    let server = TestServer::start(data.clone()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let dest = dest_in(&dir);
    let wrong = "0".repeat(64);

    let err =
        downloader().download(request(server.url("/files/model.gguf"), &dest, Some(&wrong)), |_| {}, DownloadControl::new()).await.expect_err("hash mismatch");

    let text = err.to_string();
    assert!(text.contains(&format!("the file's sha256 is {}, expected {wrong}", sha256(&data))), "{text}");
    assert!(matches!(err, DownloadError::HashMismatch { .. }));
    assert!(!dest.exists());
    assert_no_partial(&dest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_then_resume_fetches_only_the_rest() {
    let data = body(10, SIZE);
    let server = TestServer::start(data.clone()).await;
    server.faults(|f| f.rate = Some(MIB));
    let dir = tempfile::tempdir().expect("tempdir");
    let dest = dest_in(&dir);
    let url = server.url("/files/model.gguf");

    let control = DownloadControl::new();
    let err =
        downloader().download(request(url.clone(), &dest, Some(&sha256(&data))), stop_at(&control, 3 * MIB, false), control.clone()).await.expect_err("paused");
    assert!(matches!(err, DownloadError::Paused), "{err}");
    assert!(!dest.exists());
    assert!(part_path(&dest).exists());
    let kept = sidecar_covered(&dest);
    assert!((3 * MIB..SIZE).contains(&kept), "kept {kept}");
    assert_eq!(partial_progress(&dest), Some((kept, SIZE)));
    let first_run = server.served();

    server.settle_and_reset().await;
    server.faults(|f| f.rate = None);
    let (seen, progress) = recorder();
    let got = downloader().download(request(url, &dest, Some(&sha256(&data))), progress, DownloadControl::new()).await.expect("resume");

    assert_complete(&got, &dest, &data);
    assert_eq!(got.resumed_bytes, kept);
    // The probe's byte plus exactly the missing bytes.
    assert_eq!(server.served(), SIZE - kept + 1);
    assert!(first_run + server.served() <= SIZE + 256 * 1024, "{first_run} + {}", server.served());
    let first = seen.lock().expect("seen").first().copied().expect("progress");
    assert!(first.done >= kept, "progress starts at the kept bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_download_leaves_a_consistent_resumable_state() {
    let data = body(11, SIZE);
    let server = TestServer::start(data.clone()).await;
    server.faults(|f| f.rate = Some(MIB));
    let dir = tempfile::tempdir().expect("tempdir");
    let dest = dest_in(&dir);
    let url = server.url("/files/model.gguf");

    // A kill: the future is dropped mid-transfer, without a pause or a final checkpoint.
    let reached = Arc::new(tokio::sync::Notify::new());
    let notify = reached.clone();
    let progress = move |p: Progress| {
        if p.done >= SIZE / 2 {
            notify.notify_one();
        }
    };
    let dl = downloader();
    tokio::select! {
        r = dl.download(request(url.clone(), &dest, None), progress, DownloadControl::new()) => panic!("finished: {r:?}"),
        _ = reached.notified() => {}
    }
    drop(dl);
    let kept = sidecar_covered(&dest);
    assert!(kept > 0 && kept < SIZE, "kept {kept}");

    server.settle_and_reset().await;
    server.faults(|f| f.rate = None);
    let got = Downloader::new(config())
        .expect("downloader")
        .download(request(url, &dest, Some(&sha256(&data))), |_| {}, DownloadControl::new())
        .await
        .expect("resume");

    assert_complete(&got, &dest, &data);
    assert_eq!(got.resumed_bytes, kept);
    assert_eq!(server.served(), SIZE - kept + 1, "only the remainder was fetched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_deletes_the_partial_state() {
    let data = body(12, SIZE);
    let server = TestServer::start(data).await;
    server.faults(|f| f.rate = Some(4 * MIB));
    let dir = tempfile::tempdir().expect("tempdir");
    let dest = dest_in(&dir);

    let control = DownloadControl::new();
    let err = downloader()
        .download(request(server.url("/files/model.gguf"), &dest, None), stop_at(&control, 2 * MIB, true), control.clone())
        .await
        .expect_err("cancelled");

    assert!(matches!(err, DownloadError::Cancelled), "{err}");
    assert!(!dest.exists());
    assert_no_partial(&dest);

    // A bare CancellationToken is a pause: the partial state stays until discard_partial.
    let token = CancellationToken::new();
    let pause_at = {
        let token = token.clone();
        move |p: Progress| {
            if p.done >= 2 * MIB {
                token.cancel();
            }
        }
    };
    let err = downloader().download(request(server.url("/files/model.gguf"), &dest, None), pause_at, token).await.expect_err("paused");
    assert!(matches!(err, DownloadError::Paused), "{err}");
    assert!(part_path(&dest).exists() && sidecar_path(&dest).exists());
    discard_partial(&dest).expect("discard");
    assert_no_partial(&dest);
    assert_eq!(partial_progress(&dest), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_linked_etag_on_the_redirect_is_the_expected_hash() {
    let data = body(13, SIZE);
    let server = TestServer::start(data.clone()).await;
    server.faults(|f| f.linked_etag = Some(format!("\"{}\"", sha256(&data))));
    let dir = tempfile::tempdir().expect("tempdir");
    let dest = dest_in(&dir);
    let url = server.url("/redirect/model.gguf");

    let got = downloader().download(request(url.clone(), &dest, None), |_| {}, DownloadControl::new()).await.expect("download");

    assert_complete(&got, &dest, &data);
    assert!(got.verified, "X-Linked-Etag was used as the expected sha256");
    // Only the probe went through the redirect; the ranges went to the final URL.
    assert_eq!(server.st.redirects.load(Ordering::SeqCst), 1);
    assert_eq!(server.requests(), 9);

    // A linked sha256 that does not match the bytes fails the download.
    let wrong = "ab".repeat(32);
    server.faults(|f| f.linked_etag = Some(format!("\"{wrong}\"")));
    let dest2 = dir.path().join("other.gguf");
    let err = downloader().download(request(url, &dest2, None), |_| {}, DownloadControl::new()).await.expect_err("mismatch");
    assert!(err.to_string().contains(&format!("the file's sha256 is {}, expected {wrong}", sha256(&data))), "{err}");
    assert!(!dest2.exists());
    assert_no_partial(&dest2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_found_fails_at_once_without_retries() {
    let server = TestServer::start(body(14, MIB)).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let dest = dest_in(&dir);
    let url = server.url("/nope/model.gguf");
    let started = Instant::now();

    let err = downloader().download(request(url.clone(), &dest, None), |_| {}, DownloadControl::new()).await.expect_err("404");

    assert!(matches!(err, DownloadError::Http { status: 404, .. }), "{err:?}");
    assert_eq!(err.to_string(), format!("{url} answered HTTP 404 Not Found"));
    assert_eq!(server.st.not_found.load(Ordering::SeqCst), 1, "not retried");
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(!dest.exists());

    // 401 / 403 likewise.
    for status in [401, 403] {
        server.faults(|f| f.fail_next = VecDeque::from([status]));
        server.settle_and_reset().await;
        let err = downloader().download(request(server.url("/files/model.gguf"), &dest, None), |_| {}, DownloadControl::new()).await.expect_err("refused");
        assert!(matches!(err, DownloadError::Http { status: s, .. } if s == status), "{err:?}");
        assert_eq!(server.requests(), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_retried() {
    let data = body(15, SIZE);
    let server = TestServer::start(data.clone()).await;
    server.faults(|f| f.fail_next = VecDeque::from([503, 500, 502]));
    let dir = tempfile::tempdir().expect("tempdir");
    let dest = dest_in(&dir);

    let got = download_verified(&server, &dest, &data).await;

    assert_complete(&got, &dest, &data);
    assert_eq!(server.requests(), 3 + 9);

    // Retries run out: a clear error, and the (empty) partial state is kept for later.
    server.faults(|f| f.fail_next = VecDeque::from([503; 10]));
    let dest2 = dir.path().join("again.gguf");
    let err = downloader().download(request(server.url("/files/model.gguf"), &dest2, None), |_| {}, DownloadControl::new()).await.expect_err("gave up");
    assert!(matches!(err, DownloadError::Network { attempts: 6, .. }), "{err:?}");
    assert!(err.to_string().contains("503"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_enough_disk_space_is_refused_before_downloading() {
    let server = TestServer::start(body(16, MIB)).await;
    server.faults(|f| f.fake_total = Some(1 << 60));
    let dir = tempfile::tempdir().expect("tempdir");
    let dest = dest_in(&dir);

    let err = downloader().download(request(server.url("/files/model.gguf"), &dest, None), |_| {}, DownloadControl::new()).await.expect_err("no space");

    match err {
        DownloadError::NoSpace { needed, available, .. } => {
            assert_eq!(needed, 1 << 60);
            assert!(available < needed);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(server.requests(), 1, "only the probe");
    assert!(!dest.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn size_other_than_expected_fails_before_downloading() {
    let server = TestServer::start(body(17, SIZE)).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let dest = dest_in(&dir);
    let mut req = request(server.url("/files/model.gguf"), &dest, None);
    req.expected_size = Some(SIZE - 1);

    let err = downloader().download(req, |_| {}, DownloadControl::new()).await.expect_err("size");

    assert!(matches!(err, DownloadError::SizeMismatch { expected, actual, .. } if expected == SIZE - 1 && actual == SIZE), "{err:?}");
    assert_eq!(server.requests(), 1);
    assert!(!dest.exists());
    assert_no_partial(&dest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_state_starts_over_cleanly() {
    let data = body(18, SIZE);
    let server = TestServer::start(data.clone()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let dest = dest_in(&dir);
    std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
    std::fs::write(part_path(&dest), vec![0xAA; SIZE as usize + 100]).expect("part");
    std::fs::write(sidecar_path(&dest), b"{\"version\":1,\"url\":").expect("sidecar");

    let got = download_verified(&server, &dest, &data).await;

    assert_complete(&got, &dest, &data);
    assert_eq!(got.resumed_bytes, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_download_of_the_same_file_is_refused() {
    let data = body(19, SIZE);
    let server = TestServer::start(data.clone()).await;
    // 2 s for the whole file: longer than the second download waits for the lock (1 s).
    server.faults(|f| f.rate = Some(MIB));
    let dir = tempfile::tempdir().expect("tempdir");
    let dest = dest_in(&dir);
    let url = server.url("/files/model.gguf");
    let dl = downloader();

    let control = DownloadControl::new();
    let first = dl.download(request(url.clone(), &dest, Some(&sha256(&data))), |_| {}, control.clone());
    let second = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let r = dl.download(request(url.clone(), &dest, None), |_| {}, DownloadControl::new()).await;
        control.pause();
        r
    };
    let (first, second) = tokio::join!(first, second);

    assert!(matches!(second, Err(DownloadError::Busy { .. })), "{second:?}");
    assert!(matches!(first, Err(DownloadError::Paused)), "{first:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_no_sha256_is_known_for_is_refused_unless_allowed() {
    let data = body(7, SIZE);
    let server = TestServer::start(data.clone()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let dest = dest_in(&dir);
    // No expected sha256 and no X-Linked-Etag: refused after the one-byte probe.
    let mut req = request(server.url("/files/model.gguf"), &dest, None);
    req.allow_unverified = false;
    let err = downloader().download(req.clone(), |_| {}, DownloadControl::new()).await.expect_err("refused");
    assert!(matches!(err, DownloadError::Unverified { .. }), "{err:?}");
    assert!(err.to_string().contains("cannot be verified"), "{err}");
    assert!(server.served() <= 1, "{} bytes fetched", server.served());
    assert!(!dest.exists() && !part_path(&dest).exists() && !sidecar_path(&dest).exists(), "nothing left behind");

    // Allowed: kept, and reported as not verified.
    req.allow_unverified = true;
    let got = downloader().download(req, |_| {}, DownloadControl::new()).await.expect("download");
    assert_complete(&got, &dest, &data);
    assert!(!got.verified);
}
