//! Every kind of bad file gets a clear error naming the file and the problem, never a crash;
//! real models pass. Malformed files are crafted byte by byte.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use understudy_local::gguf::{self, GgufError, Problem, Value};

/// Little GGUF writer for crafting files, valid or not.
#[derive(Default)]
struct G(Vec<u8>);

impl G {
    fn header(version: u32, tensors: u64, kv: u64) -> G {
        let mut g = G(b"GGUF".to_vec());
        g.u32(version).u64(tensors).u64(kv);
        g
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend(v.to_le_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend(v.to_le_bytes());
        self
    }
    fn str(&mut self, s: &str) -> &mut Self {
        self.u64(s.len() as u64);
        self.0.extend(s.as_bytes());
        self
    }
    fn kv_str(&mut self, k: &str, v: &str) -> &mut Self {
        self.str(k).u32(8).str(v)
    }
    fn kv_u32(&mut self, k: &str, v: u32) -> &mut Self {
        self.str(k).u32(4).u32(v)
    }
    /// A tensor info: name, dims, type, offset.
    fn tensor(&mut self, name: &str, dims: &[u64], ty: u32, offset: u64) -> &mut Self {
        self.str(name).u32(dims.len() as u32);
        for d in dims {
            self.u64(*d);
        }
        self.u32(ty).u64(offset)
    }
    /// Pads to 32 and appends `n` data bytes.
    fn data(&mut self, n: usize) -> &mut Self {
        while !self.0.len().is_multiple_of(32) {
            self.0.push(0);
        }
        self.0.extend(std::iter::repeat_n(0u8, n));
        self
    }
    fn bytes(&self) -> Vec<u8> {
        self.0.clone()
    }
}

/// A minimal valid file: llama arch, one 8x4 F32 tensor.
fn valid() -> G {
    let mut g = G::header(3, 1, 2);
    g.kv_str("general.architecture", "llama").kv_u32("llama.context_length", 2048);
    g.tensor("token_embd.weight", &[8, 4], 0, 0).data(8 * 4 * 4);
    g
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// Validates `bytes` written as `name`; expects a problem matching `expect`, and an error text
/// that names the file.
fn check(name: &str, bytes: &[u8], expect: impl Fn(&Problem) -> bool) {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), name, bytes);
    let err = gguf::validate(&path).expect_err(name);
    let problem = err.problem().unwrap_or_else(|| panic!("{name}: expected a problem, got {err}"));
    assert!(expect(problem), "{name}: unexpected problem {problem:?}");
    let text = err.to_string();
    assert!(text.contains(&path.display().to_string()), "{name}: error does not name the file: {text}");
}

#[test]
fn the_crafted_valid_file_passes() {
    let dir = tempfile::tempdir().unwrap();
    let h = gguf::validate(&write(dir.path(), "ok.gguf", &valid().bytes())).unwrap();
    assert_eq!(h.architecture(), "llama");
    assert_eq!(h.context_length(), Some(2048));
    assert_eq!(h.tensors.len(), 1);
    assert_eq!(h.tensors[0].bytes, 128);
    assert_eq!(h.data_offset % 32, 0);
    // a 0-dimensional tensor is a scalar, as in ggml
    let mut g = G::header(3, 1, 1);
    g.kv_str("general.architecture", "llama").tensor("s", &[], 0, 0).data(4);
    let h = gguf::validate(&write(dir.path(), "scalar.gguf", &g.bytes())).unwrap();
    assert_eq!(h.tensors[0].bytes, 4);
}

#[test]
fn not_gguf_at_all() {
    check("empty.gguf", b"", |p| *p == Problem::Empty);
    check("short.gguf", b"GG", |p| matches!(p, Problem::NotGguf(s) if s == "GG"));
    check("ggml.bin", b"ggjt\x03\0\0\0rest of an old file", |p| matches!(p, Problem::NotGguf(s) if s == "ggjt"));
    check("page.gguf", b"<!DOCTYPE html><html>Not Found</html>", |p| matches!(p, Problem::NotGguf(_)));
    check("image.gguf", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", |p| matches!(p, Problem::NotGguf(_)));
    // random bytes from a fixed xorshift seed
    let mut x = 0x9E3779B97F4A7C15u64;
    let random: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    check("random.gguf", &random, |p| matches!(p, Problem::NotGguf(_)));
}

#[test]
fn versions_other_than_2_and_3() {
    for v in [0, 1, 4, u32::MAX] {
        check("v.gguf", &G::header(v, 0, 0).bytes(), |p| *p == Problem::UnsupportedVersion(v));
    }
}

#[test]
fn huge_counts_are_refused_before_allocating() {
    check("tensors.gguf", &G::header(3, u64::MAX, 0).bytes(), |p| matches!(p, Problem::TooMany { what: "tensor", .. }));
    check("kv.gguf", &G::header(3, 0, 1 << 40).bytes(), |p| matches!(p, Problem::TooMany { what: "metadata", .. }));
    let mut g = G::header(3, 0, 1);
    g.u64(u64::MAX).data(64); // key length, then some bytes so the count itself is plausible
    check("keylen.gguf", &g.bytes(), |p| matches!(p, Problem::Truncated(w) if w.contains("metadata key #0")));
    let mut g = G::header(3, 0, 1);
    g.str("tokenizer.ggml.tokens").u32(9).u32(8).u64(u64::MAX / 2);
    check("array.gguf", &g.bytes(), |p| matches!(p, Problem::Truncated(w) if w.contains("tokenizer.ggml.tokens")));
}

#[test]
fn malformed_metadata() {
    let mut g = G::header(3, 0, 1);
    g.str("general.architecture").u32(99);
    check("type.gguf", &g.bytes(), |p| *p == Problem::BadValueType { index: 0, value_type: 99 });
    let mut g = G::header(3, 0, 1);
    g.str("nested").u32(9).u32(9).u64(1);
    check("nested.gguf", &g.bytes(), |p| matches!(p, Problem::NestedArray { key } if key == "nested"));
    let mut g = G::header(3, 0, 2);
    g.kv_str("general.architecture", "llama").kv_str("general.architecture", "llama");
    check("dup.gguf", &g.bytes(), |p| matches!(p, Problem::DuplicateKey(k) if k == "general.architecture"));
    let mut g = G::header(3, 0, 1);
    g.str("general.name").u32(8).u64(2);
    g.0.extend([0xff, 0xfe]);
    check("utf8.gguf", &g.bytes(), |p| matches!(p, Problem::BadUtf8(w) if w.contains("general.name")));
    let mut g = G::header(3, 0, 2);
    g.kv_str("general.architecture", "llama").kv_u32("general.alignment", 24);
    check("align.gguf", &g.bytes(), |p| matches!(p, Problem::BadAlignment(_)));
}

#[test]
fn malformed_tensors() {
    let tensor = |dims: &[u64], ty: u32, offset: u64, data: usize| {
        let mut g = G::header(3, 1, 1);
        g.kv_str("general.architecture", "llama").tensor("t", dims, ty, offset).data(data);
        g.bytes()
    };
    let bad = |needle: &'static str| move |p: &Problem| matches!(p, Problem::BadTensor { name, reason } if name == "t" && reason.contains(needle));
    check("dims5.gguf", &tensor(&[1, 1, 1, 1, 1], 0, 0, 64), bad("5 dimensions"));
    check("type.gguf", &tensor(&[8], 4, 0, 64), bad("unknown ggml type 4"));
    check("type2.gguf", &tensor(&[8], 1000, 0, 64), bad("unknown ggml type 1000"));
    check("block.gguf", &tensor(&[33], 2, 0, 64), bad("block size 32"));
    check("overflow.gguf", &tensor(&[u64::MAX, 1], 0, 0, 64), bad("out of range"));
    check("overflow2.gguf", &tensor(&[1 << 40, 1 << 40], 0, 0, 64), bad("overflows"));
    check("offset.gguf", &tensor(&[8], 0, 7, 64), bad("not a multiple of the alignment"));
    check("bounds.gguf", &tensor(&[8, 4], 0, 0, 64), |p| matches!(p, Problem::TensorOutOfBounds { name, .. } if name == "t"));
    let mut g = G::header(3, 1, 1);
    g.kv_str("general.architecture", "llama").tensor(&"x".repeat(64), &[8], 0, 0).data(32);
    check("name.gguf", &g.bytes(), |p| matches!(p, Problem::BadTensor { reason, .. } if reason.contains("64 bytes")));
    let mut g = G::header(3, 2, 1);
    g.kv_str("general.architecture", "llama").tensor("t", &[8], 0, 0).tensor("t", &[8], 0, 32).data(64);
    check("twice.gguf", &g.bytes(), bad("appears twice"));
}

#[test]
fn architecture_must_be_present_and_known() {
    let mut g = G::header(3, 0, 1);
    g.kv_str("general.name", "x");
    check("noarch.gguf", &g.bytes(), |p| *p == Problem::MissingArchitecture);
    let mut g = G::header(3, 0, 1);
    g.kv_str("general.architecture", "frobnicator");
    check("arch.gguf", &g.bytes(), |p| matches!(p, Problem::UnknownArchitecture(a) if a == "frobnicator"));
    check(
        "clip.gguf",
        &{
            let mut g = G::header(3, 0, 1);
            g.kv_str("general.architecture", "clip");
            g.bytes()
        },
        |p| matches!(p, Problem::UnknownArchitecture(_)),
    );
}

#[test]
fn every_truncation_of_a_real_model_is_an_error_not_a_crash() {
    let tiny = std::fs::read(understudy_testkit::tiny_gguf()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let full = gguf::validate(&write(dir.path(), "full.gguf", &tiny)).unwrap();
    // Every cut inside the header, then a spread through the tensor data, down to the last byte.
    let cuts = (1..full.data_offset as usize).chain((full.data_offset as usize..tiny.len()).step_by(997)).chain([tiny.len() - 1]);
    for cut in cuts {
        let path = write(dir.path(), "cut.gguf", &tiny[..cut]);
        match gguf::validate(&path) {
            Err(GgufError::Invalid {
                problem: Problem::NotGguf(_) | Problem::Truncated(_) | Problem::TooMany { .. } | Problem::TensorOutOfBounds { .. },
                ..
            }) => {}
            other => panic!("cut at {cut} of {}: {other:?}", tiny.len()),
        }
    }
}

#[test]
fn a_missing_file_is_an_io_error_naming_it() {
    let err = gguf::validate(Path::new("/nonexistent/model.gguf")).unwrap_err();
    assert!(matches!(err, GgufError::Io { .. }));
    assert!(err.to_string().contains("/nonexistent/model.gguf"), "{err}");
}

#[test]
fn the_test_models_pass_and_describe_themselves() {
    let tiny = gguf::validate(&understudy_testkit::tiny_gguf()).unwrap();
    assert_eq!((tiny.version, tiny.architecture(), tiny.name()), (3, "llama", Some("understudy-tiny")));
    assert_eq!(tiny.tensors.len(), 2 * 9 + 3);
    assert_eq!(tiny.context_length(), Some(512));
    assert!(tiny.chat_template().is_some_and(|t| t.contains("<|im_start|>")));
    assert!(matches!(tiny.metadata.get("tokenizer.ggml.tokens"), Some(Value::Array { element: "string", len }) if *len > 256));
    assert_eq!(tiny.data_offset + tiny.tensor_bytes(), tiny.file_size, "tiny: data runs to the end of the file");

    let gemma = gguf::validate(&understudy_testkit::gemma_gguf()).unwrap();
    assert_eq!(gemma.architecture(), "gemma3");
    assert_eq!(gemma.context_length(), Some(32768));
    assert_eq!(gemma.tensors.len(), 236);
    let params = gemma.parameters();
    assert!((250_000_000..300_000_000).contains(&params), "gemma 3 270m has {params} parameters");
    assert!(gemma.chat_template().is_none());
}

#[test]
fn the_architecture_list_matches_the_bundled_llama_cpp() {
    let src_dir = understudy_testkit::vendored_llama_cpp().unwrap();
    let src = std::fs::read_to_string(src_dir.join("src/llama-arch.cpp")).unwrap();
    let block = &src[src.find("LLM_ARCH_NAMES = {").unwrap()..];
    let block = &block[..block.find("};").unwrap()];
    let vendored: Vec<&str> = block
        .lines()
        .filter(|l| l.contains("LLM_ARCH_") && !l.contains("LLM_ARCH_UNKNOWN") && !l.contains("LLM_ARCH_CLIP"))
        .filter_map(|l| l.split('"').nth(1))
        .collect();
    assert_eq!(understudy_local::KNOWN_ARCHITECTURES, vendored.as_slice());
}

/// The fuzz corpus (fuzz/corpus/gguf_header, kept by `cargo xtask fuzz`): every input gives a
/// header or an error, never a panic.
#[test]
fn the_fuzz_corpus_replays_without_a_panic() {
    let corpus = understudy_testkit::fuzz_corpus("gguf_header");
    for (p, bytes) in &corpus {
        let _ = understudy_local::gguf::validate_bytes(bytes, p);
    }
    assert!(corpus.len() >= 3, "corpus: {}", corpus.len());
    // A file's own validation agrees with the in-memory one.
    let tiny = understudy_testkit::tiny_gguf();
    let on_disk = understudy_local::gguf::validate(&tiny).unwrap();
    assert_eq!(understudy_local::gguf::validate_bytes(&std::fs::read(&tiny).unwrap(), &tiny).unwrap().tensors.len(), on_disk.tensors.len());
}
