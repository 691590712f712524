//! Any text as a status page's JSON (Statuspage and incident.io widget formats).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = understudy_router::status_page::parse_statuspage(text);
        let _ = understudy_router::status_page::parse_incident_io(text);
    }
});
