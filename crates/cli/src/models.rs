//! `understudy models …`: the model library from the command line (design.md section 2).

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use understudy_core::Config;
use understudy_models::catalog::{self, Catalog};
use understudy_models::library::{Fit, Library, Memory, Model, Source};
use understudy_models::manager::{Downloads, Event, PullOptions};
use understudy_models::scan::Roots;
use understudy_services::Services;

use crate::ModelsCommand as Command;

fn gb(bytes: u64) -> String {
    format!("{:.2} GB", bytes as f64 / 1e9)
}

fn fit_words(f: Fit) -> &'static str {
    match f {
        Fit::Fits => "fits in memory",
        Fit::Tight => "tight: close other apps first",
        Fit::WillNotFit => "will not fit in memory",
        Fit::Unknown => "memory needed unknown: the file does not describe its shape",
    }
}

fn source_words(s: Source) -> &'static str {
    match s {
        Source::Downloaded => "downloaded",
        Source::Imported => "imported",
        Source::HfCache => "Hugging Face cache",
        Source::LmStudio => "LM Studio",
        Source::Ollama => "Ollama",
    }
}

fn print_model(out: &mut impl Write, m: &Model, chosen: bool) -> std::io::Result<()> {
    let mark = if chosen { "*" } else { " " };
    let unverified = if m.verified == Some(false) { ", not verified" } else { "" };
    writeln!(out, "{mark} {}  ({}, {}{unverified})", m.label, source_words(m.source), gb(m.size))?;
    match (&m.details, &m.problem) {
        (Some(d), _) => writeln!(
            out,
            "    {} · {:.1}B parameters · {} · context {} · {} · needs {} ({})",
            d.architecture,
            d.parameters as f64 / 1e9,
            d.quantization,
            d.context_length.map_or("?".into(), |c| c.to_string()),
            if d.chat_template { "chat template" } else { "no chat template (ChatML is used)" },
            m.needs_bytes.map_or("?".into(), gb),
            fit_words(m.fit)
        )?,
        (None, problem) => writeln!(out, "    cannot be used: {}", problem.as_deref().unwrap_or("unknown problem"))?,
    }
    writeln!(out, "    use: {}", m.id)
}

pub fn run(cmd: Command, config: &Config, services: &Services, json: bool) -> ExitCode {
    let catalog = Catalog::builtin();
    let library = Library::new(services.paths().models_dir());
    let mut out = std::io::stdout().lock();
    let context = config.local.context;
    let result = match cmd {
        Command::List => list(&mut out, &catalog, &library, services.scan_roots(), config, json),
        Command::Scan => scan(&mut out, services.scan_roots(), json),
        Command::Import { path } => import(&mut out, &library, &path, json),
        Command::Rm { id } => rm(&mut out, &catalog, &library, &id, json),
        Command::Verify => verify(&mut out, &catalog, &library, context, json),
        Command::Search { query } => search(&mut out, services.hf_endpoint(), &query, json),
        Command::Pull { id, allow_unverified } => pull(&catalog, &library, services, &id, allow_unverified, json),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("understudy models: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// The library (the chosen model marked) and the catalog (what is downloaded or recommended).
fn list(out: &mut impl Write, catalog: &Catalog, library: &Library, roots: &Roots, config: &Config, json: bool) -> anyhow::Result<ExitCode> {
    let models = library.list(catalog, roots, config.local.context, Memory::now());
    let chosen = config.local.model.clone().unwrap_or_default();
    let downloaded: Vec<&str> = models.iter().filter(|m| m.source == Source::Downloaded).map(|m| m.id.as_str()).collect();
    if json {
        for m in &models {
            let mut v = serde_json::to_value(m)?;
            v["kind"] = "model".into();
            v["chosen"] = (m.id == chosen).into();
            writeln!(out, "{v}")?;
        }
        for e in &catalog.models {
            let mut v = serde_json::to_value(e)?;
            v["kind"] = "catalog".into();
            v["downloaded"] = downloaded.contains(&e.id.as_str()).into();
            writeln!(out, "{v}")?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    if models.is_empty() {
        writeln!(out, "No offline models yet.")?;
    }
    for m in &models {
        print_model(out, m, m.id == chosen)?;
    }
    writeln!(out, "\nAvailable to download (understudy models pull ID):")?;
    for e in &catalog.models {
        let tag = if downloaded.contains(&e.id.as_str()) {
            " [downloaded]"
        } else if e.recommended {
            " [recommended]"
        } else {
            ""
        };
        writeln!(out, "  {:<32} {:>8}  {:<26} {}{tag}", e.id, gb(e.size), e.name, e.good_for)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// GGUF files other apps keep, each header-checked.
fn scan(out: &mut impl Write, roots: &Roots, json: bool) -> anyhow::Result<ExitCode> {
    let found = understudy_models::scan::scan(roots);
    for f in &found {
        let check = understudy_local::gguf::validate(&f.path).map(|_| ()).map_err(|e| e.to_string());
        if json {
            writeln!(out, "{}", serde_json::json!({ "origin": f.origin, "name": f.name, "path": f.path, "size": f.size, "problem": check.err() }))?;
        } else {
            let status = check.err().map_or("ok".to_string(), |e| format!("cannot be used: {e}"));
            writeln!(out, "{:<20} {}  {}  ({}, {status})", f.origin.label(), f.name, f.path.display(), gb(f.size))?;
        }
    }
    if !json && found.is_empty() {
        writeln!(out, "No models found in the Hugging Face cache, LM Studio or Ollama folders.")?;
    }
    Ok(ExitCode::SUCCESS)
}

fn import(out: &mut impl Write, library: &Library, path: &Path, json: bool) -> anyhow::Result<ExitCode> {
    match library.import(path) {
        Ok(p) => {
            if json {
                writeln!(out, "{}", serde_json::json!({ "imported": p }))?;
            } else {
                writeln!(out, "Imported {} (used in place, not copied). To answer with it: [local] model = {:?}", p.display(), p.display().to_string())?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("understudy models import: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

fn rm(out: &mut impl Write, catalog: &Catalog, library: &Library, id: &str, json: bool) -> anyhow::Result<ExitCode> {
    match library.remove(catalog, id) {
        Ok(p) => {
            if json {
                writeln!(out, "{}", serde_json::json!({ "removed": p }))?;
            } else {
                writeln!(out, "Removed {}", p.display())?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("understudy models rm: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

/// Header and recorded sha256 of every installed model (not the scanned ones); exit 1 if any
/// is broken.
fn verify(out: &mut impl Write, catalog: &Catalog, library: &Library, context: u32, json: bool) -> anyhow::Result<ExitCode> {
    let models = library.list(catalog, &Roots::default(), context, Memory::now());
    let mut bad = 0;
    for m in &models {
        let problem = match &m.problem {
            Some(p) => Some(p.clone()),
            None => understudy_models::library::verify_hash(&m.path).err().map(|e| e.to_string()),
        };
        bad += usize::from(problem.is_some());
        if json {
            writeln!(out, "{}", serde_json::json!({ "id": m.id, "path": m.path, "ok": problem.is_none(), "problem": problem }))?;
        } else {
            let verdict = if problem.is_none() { "ok" } else { "BROKEN" };
            writeln!(out, "{verdict:<8} {}{}", m.path.display(), problem.map(|p| format!(": {p}")).unwrap_or_default())?;
        }
    }
    Ok(if bad == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// `owner/repo`: its .gguf files, to pick a quantization for `pull owner/repo/file`; anything
/// else: the repositories that match.
fn search(out: &mut impl Write, endpoint: &str, query: &str, json: bool) -> anyhow::Result<ExitCode> {
    let hub = understudy_models::hf::Hub::new(endpoint);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let q = query.trim();
    // Each row: JSON, and a line for people.
    let mut rows: Vec<(serde_json::Value, String)> = Vec::new();
    let (found, empty) = if q.split('/').count() == 2 && !q.contains(' ') {
        let found = rt.block_on(hub.files(q)).map(|files| {
            for f in &files {
                let line = format!("{:<10} {:>9}  {q}/{}", f.quantization.as_deref().unwrap_or("?"), gb(f.size), f.path);
                rows.push((serde_json::to_value(f).expect("files serialise"), line));
            }
        });
        (found, format!("{q} has no single-file .gguf models."))
    } else {
        let found = rt.block_on(hub.search(q, 20)).map(|repos| {
            for r in &repos {
                rows.push((serde_json::to_value(r).expect("repos serialise"), format!("{:<60} {:>10} downloads", r.id, r.downloads)));
            }
        });
        (found, format!("No GGUF repositories match {q:?}."))
    };
    if let Err(e) = found {
        eprintln!("understudy models search: {e}");
        return Ok(ExitCode::from(1));
    }
    for (v, line) in &rows {
        writeln!(out, "{}", if json { v.to_string() } else { line.clone() })?;
    }
    if !json && rows.is_empty() {
        writeln!(out, "{empty}")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Downloads a catalog id or owner/repo/file.gguf into the models dir with a progress bar;
/// Ctrl-C pauses (the same command resumes where it stopped). A file no sha256 is known for
/// is refused (exit 1) unless `allow_unverified`.
fn pull(catalog: &Catalog, library: &Library, services: &Services, id: &str, allow_unverified: bool, json: bool) -> anyhow::Result<ExitCode> {
    let source = match catalog::resolve(catalog, id) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("understudy models pull: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let dest = match understudy_models::model_path(&library.dir, &source.local_name) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("understudy models pull: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    if dest.exists() {
        eprintln!("understudy models pull: {} is already downloaded ({})", source.local_name, dest.display());
        return Ok(ExitCode::SUCCESS);
    }
    let endpoint = services.hf_endpoint();
    eprintln!("understudy: {}", source.url(endpoint));
    let outcome = download(&services.downloads()?, &source, endpoint, allow_unverified, json)?;
    pull_outcome(outcome, &source, id, json)
}

/// Runs the download with an indicatif bar (or, with `--json`, a progress line at most every
/// 500 ms); Ctrl-C pauses it. Returns the final event.
fn download(downloads: &Downloads, source: &catalog::Source, endpoint: &str, allow_unverified: bool, json: bool) -> anyhow::Result<Event> {
    let bar = if json { indicatif::ProgressBar::hidden() } else { indicatif::ProgressBar::new(0) };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg:11} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_message("downloading");
    let last_json = std::sync::Mutex::new(None::<std::time::Instant>);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let outcome = rt.block_on(async {
        let (d, name) = (downloads.clone(), source.local_name.clone());
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                let _ = d.pause(&name);
            }
        });
        downloads
            .pull(source, endpoint, PullOptions { allow_unverified }, |e| {
                if let Event::Progress { stage, done, total, .. } = &e {
                    if let Some(t) = total {
                        bar.set_length(*t);
                    }
                    bar.set_position(*done);
                    bar.set_message(stage.as_str());
                    let mut last = last_json.lock().expect("progress lock");
                    if json && last.is_none_or(|t| t.elapsed() >= std::time::Duration::from_millis(500)) {
                        *last = Some(std::time::Instant::now());
                        println!("{}", serde_json::to_value(&e).expect("events serialise"));
                    }
                }
            })
            .await
    });
    bar.finish_and_clear();
    Ok(outcome)
}

/// What a pull's final event means to the user, and its exit code.
fn pull_outcome(outcome: Event, source: &catalog::Source, id: &str, json: bool) -> anyhow::Result<ExitCode> {
    match outcome {
        Event::Done { path, size, sha256, verified, resumed_bytes } => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "type": "done", "path": path, "size": size, "sha256": sha256, "verified": verified, "resumed_bytes": resumed_bytes })
                );
            } else {
                let use_as = if source.entry.is_some() { source.local_name.trim_end_matches(".gguf").to_string() } else { path.display().to_string() };
                println!(
                    "Downloaded {} ({}, sha256 {}{}).",
                    path.display(),
                    gb(size),
                    &sha256[..12.min(sha256.len())],
                    if verified { ", verified" } else { ", NOT verified: no sha256 was known for it" }
                );
                println!("To answer with it: [local] model = {use_as:?} (or choose it in the app's Models page).");
            }
            Ok(ExitCode::SUCCESS)
        }
        Event::Paused => {
            eprintln!("understudy models pull: paused; run the same command to resume where it stopped");
            Ok(ExitCode::from(1))
        }
        Event::Cancelled => Ok(ExitCode::from(1)),
        Event::Unverified { message } => {
            if json {
                println!("{}", serde_json::json!({ "type": "unverified", "message": message }));
            }
            eprintln!("understudy models pull: {message}. To download it anyway: understudy models pull --allow-unverified {id}");
            Ok(ExitCode::from(1))
        }
        Event::Failed { message } => {
            eprintln!("understudy models pull: {message}");
            Ok(ExitCode::from(1))
        }
        Event::Progress { .. } => anyhow::bail!("the download ended without an outcome"),
    }
}
