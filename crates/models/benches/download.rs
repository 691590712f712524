//! Download throughput of a 1 GB file on loopback: Understudy's downloader against curl, same
//! server (testkit's hf-mirror), same disk, alternating, best of three each. Target: ≥ 0.9× curl.
//! Run with `cargo xtask bench download`. The file is sparse (zeros), so the disk is not what is
//! measured; the sha256 check is timed separately.

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use understudy_models::download::{DownloadConfig, DownloadControl, DownloadRequest, Downloader, Stage};

const SIZE: u64 = 1 << 30;

fn main() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("hub/bench/Big-GGUF");
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::File::create(repo.join("big.gguf")).unwrap().set_len(SIZE).unwrap();
    let mirror = understudy_testkit::HfMirror::start(&work.path().join("hub"), None);
    // curl gets the blob directly (the redirect is the same one hop for both).
    let url = format!("{}/bench/Big-GGUF/resolve/main/big.gguf", mirror.endpoint());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let downloader = Downloader::new(DownloadConfig::default()).unwrap();
    let (mut ours, mut verify, mut curl) = (Duration::MAX, Duration::MAX, Duration::MAX);
    for round in 0..3 {
        let out = work.path().join(format!("ours-{round}.gguf"));
        let t0 = Instant::now();
        let hashing_from = std::sync::Mutex::new(None::<Instant>);
        let got = rt
            .block_on(downloader.download(
                DownloadRequest::new(url.clone(), out.clone()),
                |p| {
                    if p.stage == Stage::Verifying {
                        hashing_from.lock().unwrap().get_or_insert_with(Instant::now);
                    }
                },
                DownloadControl::new(),
            ))
            .unwrap();
        let end = Instant::now();
        assert_eq!(got.size, SIZE);
        let split = hashing_from.lock().unwrap().unwrap_or(end);
        ours = ours.min(split - t0);
        verify = verify.min(end - split);
        std::fs::remove_file(&out).unwrap();

        let out = work.path().join(format!("curl-{round}.bin"));
        let t0 = Instant::now();
        let status = std::process::Command::new("curl").args(["-sSfL", "-o"]).arg(&out).arg(&url).status().unwrap();
        assert!(status.success());
        curl = curl.min(t0.elapsed());
        assert_eq!(std::fs::metadata(&out).unwrap().len(), SIZE);
        std::fs::remove_file(&out).unwrap();
    }
    let mbps = |d: Duration| SIZE as f64 / d.as_secs_f64() / 1e6;
    println!("download of 1 GiB on loopback (hf-mirror), best of 3; baseline: curl in the same run\n");
    println!("{:<34} {:>10} {:>10} {:>7}", "", "seconds", "MB/s", "ratio");
    println!("{:<34} {:>10.2} {:>10.0} {:>7.2}", "curl", curl.as_secs_f64(), mbps(curl), 1.0);
    println!("{:<34} {:>10.2} {:>10.0} {:>7.2}", "understudy (transfer)", ours.as_secs_f64(), mbps(ours), mbps(ours) / mbps(curl));
    println!(
        "{:<34} {:>10.2} {:>10.0} {:>7.2}",
        "understudy (transfer + sha256)",
        (ours + verify).as_secs_f64(),
        mbps(ours + verify),
        mbps(ours + verify) / mbps(curl)
    );
    println!("\ntarget: transfer ratio >= 0.9");
}
