//! The local engine's worker process (the same code as `understudy worker`).

fn main() -> std::io::Result<()> {
    understudy_local::worker::run(std::io::BufReader::new(std::io::stdin()), std::io::stdout().lock())
}
