//! Any bytes as a GGUF file found in a scanned folder (HF cache, LM Studio, Ollama): a header
//! that validates is described (parameters, quantization, KV cache at any context) without a
//! panic or an overflow; a shape no real model has gives an unknown cache, never zero.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(h) = understudy_local::gguf::validate_bytes(data, std::path::Path::new("fuzz.gguf")) {
        for context in [256, 4096, 1 << 20, u32::MAX] {
            let d = understudy_models::library::details(&h, context);
            assert!(d.kv_cache_bytes != Some(0));
        }
    }
});
