//! Which file names from outside may become a path in the models directory.

use std::path::{Path, PathBuf};

/// A model file name that is not safe to create inside the models directory.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unsafe model file name {name:?}: {reason}")]
pub struct UnsafeFileName {
    pub name: String,
    pub reason: &'static str,
}

/// Checks that a (remote-provided) file name stays inside the directory it is joined to and is
/// a `.gguf`: no path separators, `..`, NUL or control characters, no leading dot, no
/// characters or device names Windows refuses, at most 255 bytes. Returns it unchanged.
pub fn safe_file_name(name: &str) -> Result<String, UnsafeFileName> {
    let fail = |reason| Err(UnsafeFileName { name: name.to_owned(), reason });
    if name.is_empty() {
        return fail("empty");
    }
    if name.len() > 255 {
        return fail("longer than 255 bytes");
    }
    if name.contains(['/', '\\']) {
        return fail("contains a path separator");
    }
    if name.contains('\0') {
        return fail("contains NUL");
    }
    if name.contains("..") {
        return fail("contains \"..\"");
    }
    if name.starts_with('.') {
        return fail("starts with a dot");
    }
    if name.chars().any(char::is_control) {
        return fail("contains a control character");
    }
    if name.contains([':', '*', '?', '"', '<', '>', '|']) {
        return fail("contains a character Windows does not allow in file names");
    }
    if name.ends_with([' ', '.']) {
        return fail("ends with a space or a dot");
    }
    let lower = name.to_ascii_lowercase();
    let Some(stem) = lower.strip_suffix(".gguf") else {
        return fail("not a .gguf file");
    };
    let base = stem.split('.').next().unwrap_or(stem).trim_end();
    const RESERVED: [&str; 4] = ["con", "prn", "aux", "nul"];
    let numbered = |p: &str| base.strip_prefix(p).is_some_and(|d| d.len() == 1 && d.as_bytes()[0].is_ascii_digit() && d != "0");
    if RESERVED.contains(&base) || numbered("com") || numbered("lpt") {
        return fail("a reserved device name on Windows");
    }
    Ok(name.to_owned())
}

/// The one way a file name from outside (IPC, the CLI, the catalog, the hub) becomes a path in
/// the models dir `dir`: checked by [`safe_file_name`], then joined.
pub fn model_path(dir: &Path, name: &str) -> Result<PathBuf, UnsafeFileName> {
    Ok(dir.join(safe_file_name(name)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_file_names() {
        for ok in ["qwen2.5-0.5b-instruct-q4_k_m.gguf", "Model-00001-of-00003.gguf", "a.GGUF", "con-model.gguf", "com0.gguf"] {
            assert_eq!(safe_file_name(ok).as_deref(), Ok(ok), "{ok}");
        }
        for bad in [
            "",
            "../x.gguf",
            "a/b.gguf",
            "a\\b.gguf",
            "..gguf",
            "a..b.gguf",
            ".hidden.gguf",
            ".gguf",
            "x.gguf\0",
            "x\n.gguf",
            "model.bin",
            "model.gguf.part",
            "model",
            "c:x.gguf",
            "what?.gguf",
            "CON.gguf",
            "nul.q4.gguf",
            "com1.gguf",
            "LPT9.gguf",
        ] {
            assert!(safe_file_name(bad).is_err(), "{bad:?} accepted");
        }
        let long = format!("{}.gguf", "a".repeat(251));
        assert!(safe_file_name(&long).is_err());
        assert!(safe_file_name(&long[1..]).is_ok());
        let e = safe_file_name("../evil.gguf").expect_err("rejected");
        assert_eq!(e.to_string(), "unsafe model file name \"../evil.gguf\": contains a path separator");
    }
}
