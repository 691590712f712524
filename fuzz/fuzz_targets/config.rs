//! Any text as config.toml: a located error or a config, never a panic, and an error never
//! repeats an api_key value.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = understudy_core::Config::parse(text, std::path::Path::new("config.toml"));
    }
});
