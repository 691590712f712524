#![allow(clippy::unwrap_used)]
//! The shipped catalog (models/catalog.toml) against what it promises: every model runs on the
//! bundled llama.cpp (its architecture is in the vendored arch list), every entry's licence,
//! quantization, size and RAM agree with the model it names, the range goes from ~0.5B to ~8B,
//! and the recommended one suits a typical 8–16 GB laptop.

use understudy_models::catalog::Catalog;

/// The architecture names in the llama.cpp source llama-cpp-sys-2 vendors (LLM_ARCH_NAMES).
fn vendored_architectures() -> Vec<String> {
    let src_dir = understudy_testkit::vendored_llama_cpp().unwrap();
    let src = std::fs::read_to_string(src_dir.join("src/llama-arch.cpp")).unwrap();
    let block = &src[src.find("LLM_ARCH_NAMES = {").unwrap()..];
    let block = &block[..block.find("};").unwrap()];
    block.lines().filter(|l| l.contains("LLM_ARCH_") && !l.contains("LLM_ARCH_UNKNOWN")).filter_map(|l| l.split('"').nth(1)).map(str::to_owned).collect()
}

/// "3.9B" → 3.9e9.
fn parameters(label: &str) -> f64 {
    label.strip_suffix('B').and_then(|n| n.parse::<f64>().ok()).unwrap_or_else(|| panic!("parameters {label:?} is not like 3.9B")) * 1e9
}

/// Average bits per weight of a llama.cpp quantization (llama.cpp's quantize table).
fn bits_per_weight(quantization: &str) -> f64 {
    match quantization {
        "Q4_0" => 4.5,
        "Q4_K_M" => 4.85,
        "Q5_K_M" => 5.7,
        "Q6_K" => 6.56,
        "Q8_0" => 8.5,
        other => panic!("unknown quantization {other:?}"),
    }
}

#[test]
fn every_catalog_architecture_runs_on_the_bundled_llama_cpp() {
    let known = vendored_architectures();
    assert!(known.len() > 50 && known.iter().any(|a| a == "llama"), "{known:?}");
    for m in &Catalog::builtin().models {
        assert!(known.contains(&m.architecture), "{}: architecture {:?} is not in the bundled llama.cpp", m.id, m.architecture);
    }
}

#[test]
fn every_entry_agrees_with_its_licence_quantization_size_and_ram() {
    let catalog = Catalog::builtin();
    for m in &catalog.models {
        // The licence is the family's own.
        let licence = match m.architecture.as_str() {
            "gemma3" => "Gemma",
            "llama" => "Llama 3.2 Community",
            "qwen3" | "smollm3" => "Apache-2.0",
            "phi3" => "MIT",
            other => panic!("{}: no licence known for the {other} family; add it here", m.id),
        };
        assert_eq!(m.license, licence, "{}", m.id);
        // The quantization is the file's (its name says it).
        assert!(m.file.to_ascii_uppercase().contains(&m.quantization), "{}: {} is not {}", m.id, m.file, m.quantization);
        // Size: parameters × bits per weight, within what embeddings kept at higher precision add.
        let params = parameters(&m.parameters);
        assert!((0.5e9..=8.5e9).contains(&params), "{}: {} is outside 0.5B–8B", m.id, m.parameters);
        let expected = params * bits_per_weight(&m.quantization) / 8.0;
        let ratio = m.size as f64 / expected;
        assert!((0.85..1.5).contains(&ratio), "{}: {} bytes is {ratio:.2} × what {} at {} makes", m.id, m.size, m.parameters, m.quantization);
        // RAM: at least the file and some room for the KV cache; not wildly more.
        let file_gb = m.size as f64 / 1e9;
        assert!(f64::from(m.ram_gb) >= file_gb + 0.25 && f64::from(m.ram_gb) <= file_gb + 3.0, "{}: {} GB of RAM for a {file_gb:.1} GB file", m.id, m.ram_gb);
        assert!(m.context >= 8192, "{}", m.id);
        assert!(!m.good_for.is_empty() && !m.good_for.contains('\n') && m.good_for.len() < 160, "{}: good_for is one line", m.id);
    }
    // From ~0.5B to ~8B.
    let sizes: Vec<f64> = catalog.models.iter().map(|m| parameters(&m.parameters)).collect();
    assert!(sizes.iter().any(|&p| p < 1e9) && sizes.iter().any(|&p| p >= 7e9), "{sizes:?}");
    // The recommended model leaves half of an 8 GB laptop to everything else.
    let r = catalog.recommended();
    assert!(r.ram_gb <= 4 && r.sha256.is_some(), "{r:?}");
}

/// A pinned sha256 is what lets a download be verified without the hub's `X-Linked-Etag`; most
/// entries carry one (those without are verified by the hub's header or refused).
#[test]
fn most_entries_pin_a_sha256_and_none_is_malformed() {
    let catalog = Catalog::builtin();
    let pinned = catalog.models.iter().filter(|m| m.sha256.is_some()).count();
    assert!(pinned * 10 >= catalog.models.len() * 8, "{pinned} of {} pinned", catalog.models.len());
    let mut seen = std::collections::HashSet::new();
    for m in &catalog.models {
        if let Some(h) = &m.sha256 {
            assert!(h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()), "{}: {h}", m.id);
            assert!(seen.insert(h.clone()), "{}: the same sha256 as another entry", m.id);
        }
    }
}

/// A catalog entry's sha256 is what a download is checked against when the hub sends no
/// `X-Linked-Etag`: the right one gives a verified file, a wrong one keeps nothing, and an entry
/// pinning none is refused as unverified before any byte (unless allowed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_sha256_verifies_a_download_the_hub_sends_without_one() {
    use sha2::Digest;
    use understudy_models::catalog::resolve;
    use understudy_models::manager::{Downloads, Event, PullOptions};

    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("hub/test-org/Tiny-GGUF");
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::copy(understudy_testkit::tiny_gguf(), repo.join("tiny-Q4_K_M.gguf")).unwrap();
    let real = format!("{:x}", sha2::Sha256::digest(std::fs::read(repo.join("tiny-Q4_K_M.gguf")).unwrap()));
    let mirror = understudy_testkit::HfMirror::start_with(&dir.path().join("hub"), None, &["tiny-Q4_K_M.gguf"]);
    let entry = |sha: Option<&str>| {
        let pin = sha.map(|s| format!("sha256 = \"{s}\"\n")).unwrap_or_default();
        Catalog::parse(&format!(
            "[[model]]\nid = \"tiny\"\nname = \"Tiny\"\nrepo = \"test-org/Tiny-GGUF\"\nfile = \"tiny-Q4_K_M.gguf\"\nsize = 1\n{pin}architecture = \"llama\"\nquantization = \"Q4_K_M\"\nparameters = \"1B\"\ncontext = 4096\nram_gb = 1\nlicense = \"MIT\"\ngood_for = \"x\"\nrecommended = true\n"
        ))
        .unwrap()
    };
    let pull = |catalog: Catalog, models: std::path::PathBuf| {
        let endpoint = mirror.endpoint();
        async move {
            let source = resolve(&catalog, "tiny").unwrap();
            Downloads::new(models).unwrap().pull(&source, &endpoint, PullOptions::default(), |_| {}).await
        }
    };

    let models = dir.path().join("models-right");
    match pull(entry(Some(&real)), models.clone()).await {
        Event::Done { verified, sha256, .. } => assert!(verified && sha256 == real, "{sha256}"),
        other => panic!("{other:?}"),
    }
    assert!(models.join("tiny.gguf").is_file());

    let models = dir.path().join("models-wrong");
    let wrong = "0".repeat(64);
    assert!(matches!(pull(entry(Some(&wrong)), models.clone()).await, Event::Failed { .. }));
    assert!(!models.join("tiny.gguf").exists(), "a file that does not match the pin is not kept");

    let models = dir.path().join("models-none");
    assert!(matches!(pull(entry(None), models.clone()).await, Event::Unverified { .. }));
    assert!(!models.join("tiny.gguf").exists());
}
