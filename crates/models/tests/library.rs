#![allow(clippy::unwrap_used)]
//! Models already on disk, found where other apps keep them (fake Hugging Face cache, LM Studio
//! and Ollama trees built like the real ones), imported in place, described and judged for
//! memory; broken files are reported, never offered.

use std::path::{Path, PathBuf};

use understudy_models::catalog::Catalog;
use understudy_models::library::{self, Fit, Library, Memory, Source};
use understudy_models::scan::{self, Origin, Roots};

fn tiny() -> PathBuf {
    understudy_testkit::tiny_gguf()
}

#[cfg(unix)]
fn link(target: &Path, at: &Path) {
    std::fs::create_dir_all(at.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(target, at).unwrap();
}

fn write(to: &Path, content: &str) {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::write(to, content).unwrap();
}

fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::copy(from, to).unwrap();
}

const PLENTY: Memory = Memory { available: 64 << 30, total: 64 << 30 };

/// The three apps' layouts, as they write them.
fn fake_home(home: &Path) -> Roots {
    // huggingface_hub: blobs named by hash, snapshots linking to them.
    let hub = home.join(".cache/huggingface/hub");
    let repo = hub.join("models--bartowski--Tiny-GGUF");
    copy(&tiny(), &repo.join("blobs/5bd9a41cdeadbeef"));
    link(Path::new("../../blobs/5bd9a41cdeadbeef"), &repo.join("snapshots/0123abcd/tiny-Q4_K_M.gguf"));
    std::fs::write(repo.join("snapshots/0123abcd/README.md"), "not a model").unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), "0123abcd").unwrap();
    // A download interrupted by huggingface_hub: only an .incomplete blob, no snapshot entry.
    write(&hub.join("models--x--Broken-GGUF/blobs/ffff.incomplete"), "");
    // LM Studio: publisher/repo/file.gguf, with a vision projector beside the model.
    let lms = home.join(".lmstudio/models");
    copy(&tiny(), &lms.join("lmstudio-community/Tiny-GGUF/Tiny-Q8_0.gguf"));
    std::fs::write(lms.join("lmstudio-community/Tiny-GGUF/mmproj-Tiny-F16.gguf"), b"GGUF").unwrap();
    std::fs::write(lms.join("lmstudio-community/Tiny-GGUF/notes.txt"), "x").unwrap();
    // A file that says .gguf but is not one.
    write(&lms.join("someone/Fake-GGUF/fake.gguf"), "not a gguf");
    // Ollama: a manifest naming the model layer by digest; the blob is the GGUF.
    let ollama = home.join(".ollama/models");
    let digest = "a".repeat(64);
    copy(&tiny(), &ollama.join(format!("blobs/sha256-{digest}")));
    std::fs::write(ollama.join(format!("blobs/sha256-{}", "b".repeat(64))), "{{ .Prompt }}").unwrap();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": { "mediaType": "application/vnd.docker.container.image.v1+json", "digest": format!("sha256:{}", "c".repeat(64)), "size": 485 },
        "layers": [
            { "mediaType": "application/vnd.ollama.image.model", "digest": format!("sha256:{digest}"), "size": std::fs::metadata(tiny()).unwrap().len() },
            { "mediaType": "application/vnd.ollama.image.template", "digest": format!("sha256:{}", "b".repeat(64)), "size": 13 }
        ]
    });
    let m = ollama.join("manifests/registry.ollama.ai/library/tinyllama/latest");
    std::fs::create_dir_all(m.parent().unwrap()).unwrap();
    std::fs::write(&m, manifest.to_string()).unwrap();
    // A manifest whose blob was pruned is skipped.
    let gone = ollama.join("manifests/registry.ollama.ai/library/gone/7b");
    std::fs::create_dir_all(gone.parent().unwrap()).unwrap();
    std::fs::write(&gone, manifest.to_string().replace(&digest, &"d".repeat(64))).unwrap();
    Roots::from_env(|_| None, home)
}

#[test]
fn finds_models_of_hugging_face_lm_studio_and_ollama_in_place() {
    let home = tempfile::tempdir().unwrap();
    let roots = fake_home(home.path());
    let found = scan::scan(&roots);
    let names: Vec<(Origin, &str)> = found.iter().map(|f| (f.origin, f.name.as_str())).collect();
    assert_eq!(
        names,
        [
            (Origin::HfCache, "bartowski/Tiny-GGUF/tiny-Q4_K_M.gguf"),
            (Origin::LmStudio, "lmstudio-community/Tiny-GGUF/Tiny-Q8_0.gguf"),
            (Origin::LmStudio, "someone/Fake-GGUF/fake.gguf"),
            (Origin::Ollama, "tinyllama:latest"),
        ]
    );
    let size = std::fs::metadata(tiny()).unwrap().len();
    assert!(found.iter().filter(|f| f.name != "someone/Fake-GGUF/fake.gguf").all(|f| f.size == size));
    // Used in place: the paths are the other apps' own files.
    assert!(found[0].path.starts_with(home.path().join(".cache/huggingface/hub/models--bartowski--Tiny-GGUF/snapshots")));
    assert_eq!(found[3].path, home.path().join(format!(".ollama/models/blobs/sha256-{}", "a".repeat(64))));
}

#[test]
fn environment_overrides_move_the_roots() {
    let home = Path::new("/home/u");
    let env = |k: &str| match k {
        "HF_HOME" => Some("/data/hf".to_string()),
        "OLLAMA_MODELS" => Some("/srv/ollama".to_string()),
        _ => None,
    };
    let r = Roots::from_env(env, home);
    assert_eq!(r.hf_hub, [PathBuf::from("/data/hf/hub")]);
    assert_eq!(r.ollama, [PathBuf::from("/srv/ollama")]);
    let r = Roots::from_env(|k| (k == "HF_HUB_CACHE").then(|| "/c/hub".to_string()), home);
    assert_eq!(r.hf_hub, [PathBuf::from("/c/hub")]);
    assert!(r.ollama.contains(&PathBuf::from("/home/u/.ollama/models")));
}

#[test]
fn the_library_lists_describes_and_judges_every_model() {
    let home = tempfile::tempdir().unwrap();
    let roots = fake_home(home.path());
    let dir = home.path().join("data/models");
    copy(&tiny(), &dir.join("qwen3-0.6b-q8_0.gguf"));
    std::fs::write(dir.join("half.gguf.part"), "partial").unwrap();
    let lib = Library::new(&dir);
    let elsewhere = home.path().join("Downloads/my-model.gguf");
    copy(&tiny(), &elsewhere);
    let imported = lib.import(&elsewhere).unwrap();
    assert_eq!(lib.import(&elsewhere).unwrap(), imported, "importing twice keeps one entry");
    assert_eq!(lib.imports().len(), 1);

    let catalog = Catalog::builtin();
    let models = lib.list(&catalog, &roots, 4096, PLENTY);
    let summary: Vec<(Source, &str)> = models.iter().map(|m| (m.source, m.label.as_str())).collect();
    assert_eq!(summary[0], (Source::Downloaded, "Qwen3 0.6B"));
    assert_eq!(models[0].id, "qwen3-0.6b-q8_0", "a downloaded catalog model is chosen by its id");
    assert_eq!(summary[1], (Source::Imported, "my-model.gguf"));
    assert_eq!(models[1].path, std::fs::canonicalize(&elsewhere).unwrap(), "used in place, not copied");
    assert!(!dir.join("my-model.gguf").exists());
    assert_eq!(models.len(), 6, "{summary:?}");
    assert!(models.iter().any(|m| m.source == Source::Ollama && m.label == "tinyllama:latest"));

    let d = models[0].details.as_ref().unwrap();
    assert_eq!(d.architecture, "llama");
    assert!(d.parameters > 0 && d.chat_template, "{d:?}");
    let kv = d.kv_cache_bytes.unwrap();
    assert!(kv > 0);
    assert_eq!(models[0].fit, Fit::Fits);
    assert_eq!(models[0].needs_bytes, Some(models[0].size + kv + (300 << 20)));

    let fake = models.iter().find(|m| m.label == "someone/Fake-GGUF/fake.gguf").unwrap();
    assert_eq!(fake.details, None);
    let problem = fake.problem.as_deref().unwrap();
    assert!(problem.contains("fake.gguf"), "{problem}");

    // Memory verdicts at the edges.
    let need = 4 << 30;
    assert_eq!(library::fit(need, Memory { available: 8 << 30, total: 16 << 30 }), Fit::Fits);
    assert_eq!(library::fit(need, Memory { available: 2 << 30, total: 16 << 30 }), Fit::Tight);
    assert_eq!(library::fit(need, Memory { available: 2 << 30, total: 4 << 30 }), Fit::WillNotFit);

    // A bigger context costs more cache.
    let small = lib.list(&catalog, &Roots::default(), 512, PLENTY)[0].details.clone().unwrap().kv_cache_bytes.unwrap();
    assert!(small < kv, "{small} vs {kv}");
}

#[test]
fn import_refuses_what_is_not_a_model_and_rm_only_deletes_our_own_files() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("models");
    let lib = Library::new(&dir);
    let catalog = Catalog::builtin();
    let text = home.path().join("notes.gguf");
    std::fs::write(&text, "hello").unwrap();
    let err = lib.import(&text).unwrap_err().to_string();
    assert!(err.contains("notes.gguf"), "{err}");
    assert!(lib.import(&home.path().join("missing.gguf")).is_err());
    assert!(lib.imports().is_empty());

    let mine = home.path().join("mine.gguf");
    copy(&tiny(), &mine);
    let imported = lib.import(&mine).unwrap();
    copy(&tiny(), &dir.join("gemma-3-1b-it-q4_k_m.gguf"));
    library::record_hash(&dir.join("gemma-3-1b-it-q4_k_m.gguf"), "0".repeat(64).as_str(), true).unwrap();

    // Forgetting an import leaves the user's file alone.
    lib.remove(&catalog, imported.to_str().unwrap()).unwrap();
    assert!(mine.exists() && lib.imports().is_empty());
    // A downloaded model is deleted with its recorded hash.
    lib.remove(&catalog, "gemma-3-1b-it-q4_k_m").unwrap();
    assert!(!dir.join("gemma-3-1b-it-q4_k_m.gguf").exists() && !dir.join("gemma-3-1b-it-q4_k_m.gguf.sha256").exists());
    assert!(lib.remove(&catalog, "gemma-3-1b-it-q4_k_m").is_err());
    // Never a file outside the models dir.
    assert!(lib.remove(&catalog, mine.to_str().unwrap()).is_err());
    assert!(lib.remove(&catalog, "../mine.gguf").is_err());
    assert!(mine.exists());
}

#[test]
fn verify_catches_a_file_that_changed_after_download() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.gguf");
    copy(&tiny(), &model);
    assert!(library::verify_hash(&model).is_ok(), "nothing recorded: nothing to compare");
    use sha2::Digest;
    let good: String = sha2::Sha256::digest(std::fs::read(&model).unwrap()).iter().map(|b| format!("{b:02x}")).collect();
    library::record_hash(&model, &good, true).unwrap();
    assert!(library::verify_hash(&model).is_ok());
    let mut bytes = std::fs::read(&model).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&model, bytes).unwrap();
    let err = library::verify_hash(&model).unwrap_err().to_string();
    assert!(err.contains(&good) && err.contains("download it again"), "{err}");
}
