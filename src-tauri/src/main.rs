// No console window on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() -> anyhow::Result<()> {
    // The local engine runs llama.cpp in a child process: this same binary, with `worker`.
    if std::env::args().nth(1).as_deref() == Some("worker") {
        return understudy_local::worker::run(std::io::BufReader::new(std::io::stdin()), std::io::stdout().lock()).map_err(anyhow::Error::from);
    }
    if std::env::args().nth(1).as_deref() == Some("--version") {
        use std::io::Write;
        return writeln!(std::io::stdout(), "understudy-app {}", understudy_core::VERSION).map_err(anyhow::Error::from);
    }
    understudy_app::run()
}
