#![allow(clippy::unwrap_used)]
//! GGUF headers written to hurt: layer counts, widths, head counts and context that overflow
//! the KV-cache arithmetic. The library describes such a file with an "unknown" memory verdict,
//! never a panic and never "fits". Also replays the `model_details` fuzz corpus.

use std::collections::BTreeMap;
use std::path::Path;

use understudy_local::gguf::{Header, TensorInfo, Value};
use understudy_models::catalog::Catalog;
use understudy_models::library::{self, Fit, Library, Memory};
use understudy_models::scan::Roots;

const PLENTY: Memory = Memory { available: 64 << 30, total: 64 << 30 };

fn header(arch_values: &[(&str, u64)]) -> Header {
    let mut metadata = BTreeMap::from([("general.architecture".to_string(), Value::Str("llama".into()))]);
    for (k, v) in arch_values {
        metadata.insert(format!("llama.{k}"), Value::Uint(*v));
    }
    let tensors = vec![TensorInfo { name: "t".into(), dims: vec![4], ggml_type: 0, offset: 0, bytes: 16 }];
    Header { version: 3, file_size: 1 << 20, alignment: 32, data_offset: 64, metadata, tensors }
}

const SANE: [(&str, u64); 4] = [("block_count", 32), ("embedding_length", 4096), ("attention.head_count", 32), ("attention.head_count_kv", 8)];

fn with(over: (&str, u64)) -> Header {
    let mut values: Vec<(&str, u64)> = SANE.iter().copied().filter(|(k, _)| *k != over.0).collect();
    values.push(over);
    header(&values)
}

#[test]
fn a_sane_header_gets_an_estimate() {
    // 32 layers × 4096 tokens × 8 kv heads × (128 + 128) × 2 bytes.
    assert_eq!(library::details(&header(&SANE), 4096).kv_cache_bytes, Some(32 * 4096 * 8 * 256 * 2));
}

#[test]
fn hostile_shapes_give_an_unknown_cache_not_a_panic() {
    let cases = [
        with(("block_count", u64::MAX)),
        with(("block_count", 513)), // more than llama.cpp loads
        with(("block_count", 0)),
        with(("embedding_length", 0)),
        with(("attention.head_count_kv", u64::MAX)),
        with(("attention.head_count_kv", 1 << 50)),
        with(("attention.head_count_kv", 0)),
        header(&[("block_count", 32), ("embedding_length", 4096), ("attention.key_length", 0), ("attention.value_length", 0)]),
        with(("attention.key_length", u64::MAX)),
        with(("attention.value_length", u64::MAX / 2)),
        header(&[("block_count", 512), ("embedding_length", u64::MAX), ("attention.head_count", 1)]),
        header(&[("embedding_length", 4096)]),
        header(&[]),
    ];
    for (i, h) in cases.iter().enumerate() {
        for context in [256, 4096, 1 << 20, u32::MAX] {
            let d = library::details(h, context);
            assert_eq!(d.kv_cache_bytes, None, "case {i} at context {context}: {d:?}");
        }
    }
    // Large but real-sized values overflow only at a huge context.
    let big = with(("attention.head_count_kv", 1 << 20));
    assert!(library::details(&big, 256).kv_cache_bytes.is_some());
    assert_eq!(library::details(&big, u32::MAX).kv_cache_bytes, None);
}

/// A minimal GGUF v3 file: `general.architecture = "llama"`, the given `llama.*` u64 values and
/// one f32 tensor of 4 elements.
fn gguf(values: &[(&str, u64)]) -> Vec<u8> {
    fn string(out: &mut Vec<u8>, s: &str) {
        out.extend((s.len() as u64).to_le_bytes());
        out.extend(s.as_bytes());
    }
    let mut out = b"GGUF".to_vec();
    out.extend(3u32.to_le_bytes());
    out.extend(1u64.to_le_bytes());
    out.extend((values.len() as u64 + 1).to_le_bytes());
    string(&mut out, "general.architecture");
    out.extend(8u32.to_le_bytes());
    string(&mut out, "llama");
    for (k, v) in values {
        string(&mut out, &format!("llama.{k}"));
        out.extend(10u32.to_le_bytes()); // UINT64
        out.extend(v.to_le_bytes());
    }
    string(&mut out, "t");
    out.extend(1u32.to_le_bytes());
    out.extend(4u64.to_le_bytes());
    out.extend(0u32.to_le_bytes()); // F32
    out.extend(0u64.to_le_bytes());
    out.resize(out.len().div_ceil(32) * 32, 0);
    out.extend([0u8; 16]);
    out
}

#[test]
fn a_hostile_file_in_a_scanned_folder_is_listed_with_an_unknown_verdict() {
    let home = tempfile::tempdir().unwrap();
    let models = home.path().join(".lmstudio/models/evil/Evil-GGUF");
    std::fs::create_dir_all(&models).unwrap();
    std::fs::write(models.join("evil.gguf"), gguf(&[("block_count", 512), ("embedding_length", u64::MAX), ("attention.head_count", 1)])).unwrap();
    std::fs::write(models.join("huge-kv.gguf"), gguf(&[("block_count", 500), ("embedding_length", 4096), ("attention.head_count_kv", u64::MAX)])).unwrap();
    let roots = Roots::from_env(|_| None, home.path());
    let lib = Library::new(home.path().join("data/models"));
    let listed = lib.list(&Catalog::builtin(), &roots, 1 << 20, PLENTY);
    assert_eq!(listed.len(), 2, "{listed:?}");
    for m in &listed {
        let d = m.details.as_ref().unwrap_or_else(|| panic!("{}: {:?}", m.path.display(), m.problem));
        assert_eq!((d.kv_cache_bytes, m.needs_bytes, m.fit), (None, None, Fit::Unknown), "{}", m.path.display());
    }
}

#[test]
fn the_model_details_fuzz_corpus_replays_without_a_panic() {
    let corpus = understudy_testkit::fuzz_corpus("model_details");
    assert!(!corpus.is_empty());
    for (path, bytes) in corpus {
        // What the fuzz target does: header, then the description at a small and a huge context.
        if let Ok(h) = understudy_local::gguf::validate_bytes(&bytes, Path::new("fuzz.gguf")) {
            for context in [512, u32::MAX] {
                let d = library::details(&h, context);
                assert_ne!(d.kv_cache_bytes, Some(0), "{}: {d:?}", path.display());
            }
        }
    }
}
