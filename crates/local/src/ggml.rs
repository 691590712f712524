//! The bundled ggml's type table, the single source of truth for tensor sizes.
#![allow(unsafe_code)]

/// (block size in elements, bytes per block) for a ggml type id, or `None` for ids the bundled
/// ggml does not know or has removed (their block size is 0).
pub fn type_sizes(ggml_type: u32) -> Option<(u64, u64)> {
    if ggml_type >= llama_cpp_sys_2::GGML_TYPE_COUNT {
        return None;
    }
    // SAFETY: both functions index a static table by type id; ids below GGML_TYPE_COUNT are in
    // bounds and the calls have no other preconditions or side effects.
    let (block, size) = unsafe { (llama_cpp_sys_2::ggml_blck_size(ggml_type), llama_cpp_sys_2::ggml_type_size(ggml_type)) };
    let block = u64::try_from(block).ok().filter(|&b| b > 0)?;
    let size = u64::try_from(size).ok().filter(|&s| s > 0)?;
    Some((block, size))
}

#[cfg(test)]
mod tests {
    use super::type_sizes;

    #[test]
    fn known_types_match_the_gguf_spec() {
        // F32, F16, Q4_0, Q8_0, Q4_K, Q6_K, BF16
        for (t, want) in [(0, (1, 4)), (1, (1, 2)), (2, (32, 18)), (8, (32, 34)), (12, (256, 144)), (14, (256, 210)), (30, (1, 2))] {
            assert_eq!(type_sizes(t), Some(want), "ggml type {t}");
        }
        // removed Q4_2/Q4_3, and out of range
        assert_eq!(type_sizes(4), None);
        assert_eq!(type_sizes(5), None);
        assert_eq!(type_sizes(9999), None);
    }
}
