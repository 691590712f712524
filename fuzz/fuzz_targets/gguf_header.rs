//! Any bytes as a GGUF file: a clear error or a header, never a panic, a hang or a huge
//! allocation (model files come from the internet).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = understudy_local::gguf::validate_bytes(data, std::path::Path::new("fuzz.gguf"));
});
