#![allow(clippy::unwrap_used)]
//! Every entry point that takes a model's name (as IPC and the CLI pass it) refuses names that
//! would leave the models dir — `../x`, absolute paths, separators — and touches no file
//! outside it.

use std::path::{Path, PathBuf};

use understudy_models::catalog::{self, Catalog, Source};
use understudy_models::library::Library;
use understudy_models::manager::{Downloads, Event, PullOptions};

/// Hostile names as a compromised UI, a script or a hub listing could send them.
fn hostile(outside: &Path) -> Vec<String> {
    vec![
        "../victim.gguf".into(),
        "../victim".into(),
        "..".into(),
        "sub/../../victim.gguf".into(),
        "..\\victim.gguf".into(),
        outside.join("victim.gguf").display().to_string(),
        "/etc/passwd".into(),
        "imports.json".into(),
        "victim.gguf\0.gguf".into(),
    ]
}

/// A models dir with files beside it (in `outside`) that a hostile name would reach.
struct Fixture {
    _tmp: tempfile::TempDir,
    models: PathBuf,
    outside: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().to_path_buf();
        let models = outside.join("models");
        std::fs::create_dir_all(&models).unwrap();
        for f in ["victim.gguf", "victim.gguf.part", "victim.gguf.part.json", "victim.part", "victim.part.json"] {
            std::fs::write(outside.join(f), "keep me").unwrap();
        }
        std::fs::write(models.join("imports.json"), "[]").unwrap();
        Fixture { _tmp: tmp, models, outside }
    }

    /// Every file outside the models dir is still there, unchanged.
    fn assert_untouched(&self, what: &str) {
        for f in ["victim.gguf", "victim.gguf.part", "victim.gguf.part.json", "victim.part", "victim.part.json"] {
            assert_eq!(std::fs::read_to_string(self.outside.join(f)).ok().as_deref(), Some("keep me"), "{what} touched {f}");
        }
        assert_eq!(std::fs::read_to_string(self.models.join("imports.json")).unwrap(), "[]", "{what} touched imports.json");
    }
}

#[test]
fn cancel_and_pause_refuse_names_outside_the_models_dir() {
    let f = Fixture::new();
    let downloads = Downloads::new(&f.models).unwrap();
    for name in hostile(&f.outside) {
        assert!(downloads.cancel(&name).is_err(), "cancel({name:?}) accepted");
        assert!(downloads.pause(&name).is_err(), "pause({name:?}) accepted");
        f.assert_untouched(&format!("cancel({name:?})"));
    }
    // A proper name still works: a paused download's partial is discarded.
    std::fs::write(f.models.join("m.gguf.part"), "x").unwrap();
    assert!(downloads.cancel("m.gguf").unwrap(), "the partial was there to discard");
    assert!(!f.models.join("m.gguf.part").exists());
    assert!(!downloads.pause("m.gguf").unwrap(), "nothing running");
}

#[tokio::test]
async fn pull_refuses_a_local_name_outside_the_models_dir() {
    let f = Fixture::new();
    let downloads = Downloads::new(&f.models).unwrap();
    for name in hostile(&f.outside) {
        // The URL is never reached: the name is refused first.
        let source = Source { repo: "o/r".into(), file: "x.gguf".into(), local_name: name.clone(), entry: None };
        let event = downloads.pull(&source, "http://127.0.0.1:9", PullOptions::default(), |_| {}).await;
        match event {
            Event::Failed { message } => assert!(message.contains("unsafe model file name"), "{name:?}: {message}"),
            other => panic!("pull with local name {name:?}: {other:?}"),
        }
        f.assert_untouched(&format!("pull({name:?})"));
    }
    assert_eq!(std::fs::read_dir(&f.models).unwrap().count(), 1, "nothing created in the models dir but imports.json");
}

#[test]
fn hub_ids_with_paths_in_the_file_name_are_refused() {
    let catalog = Catalog::builtin();
    for id in ["o/r/../../victim.gguf", "o/r/..", "o/r//etc/passwd", "o/r/sub/victim.gguf", "o/r/.hidden.gguf", "o/r/victim.txt"] {
        assert!(catalog::resolve(&catalog, id).is_err(), "{id:?} resolved");
    }
}

#[test]
fn remove_refuses_names_outside_the_models_dir() {
    let f = Fixture::new();
    let lib = Library::new(&f.models);
    let catalog = Catalog::builtin();
    for name in hostile(&f.outside) {
        assert!(lib.remove(&catalog, &name).is_err(), "remove({name:?}) accepted");
        f.assert_untouched(&format!("remove({name:?})"));
    }
    // Our own bookkeeping beside the models is not a model either.
    std::fs::write(f.models.join("m.gguf"), "x").unwrap();
    std::fs::write(f.models.join("m.gguf.sha256"), "x").unwrap();
    assert!(lib.remove(&catalog, "m.gguf.sha256").is_err());
    assert!(lib.remove(&catalog, &f.models.join("m.gguf.sha256").display().to_string()).is_err());
    assert!(f.models.join("m.gguf.sha256").exists());
    // A model in the dir, by name or by path, is ours to delete.
    assert_eq!(lib.remove(&catalog, "m.gguf").unwrap(), f.models.join("m.gguf"));
    assert!(!f.models.join("m.gguf").exists() && !f.models.join("m.gguf.sha256").exists());
}

#[test]
fn import_refuses_what_is_not_a_model_and_never_copies() {
    let f = Fixture::new();
    let lib = Library::new(&f.models);
    for path in ["/etc/passwd", "../victim.gguf"] {
        assert!(lib.import(Path::new(path)).is_err(), "import({path:?}) accepted");
    }
    assert!(lib.import(&f.outside.join("victim.gguf")).is_err(), "not a GGUF");
    f.assert_untouched("import");
    assert!(lib.imports().is_empty());
}

#[test]
fn model_path_is_the_one_join() {
    let dir = Path::new("/data/models");
    assert_eq!(understudy_models::model_path(dir, "m.gguf").unwrap(), dir.join("m.gguf"));
    for bad in ["../m.gguf", "/etc/passwd", "a/b.gguf", "", ".gguf", "m.gguf/.."] {
        assert!(understudy_models::model_path(dir, bad).is_err(), "{bad:?}");
    }
}
