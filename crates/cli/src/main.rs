//! `understudy`: the command-line face of the failover engine (design.md section 2, CLI).
//! Exit codes: 0 success, 1 runtime failure, 2 usage or config error.

// A command-line program: stdout is its output.
#![allow(clippy::print_stdout)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

mod models;
use understudy_core::{logging, Env, Paths};
use understudy_services::Services;

#[derive(Debug, Parser)]
#[command(name = "understudy", version, about = "Chat with OpenAI; keep answering from a local GGUF model when it fails.")]
struct Cli {
    /// Machine output: one JSON object per line.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// One answer, streamed to stdout (reads stdin when MESSAGE is absent).
    Chat {
        /// `auto`, a provider id from the config, or `local`.
        #[arg(long, default_value = "auto")]
        provider: String,
        message: Option<String>,
    },
    /// The loopback OpenAI-compatible gateway.
    Serve {
        /// Loopback address to listen on [default: [gateway] listen, 127.0.0.1:8321].
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Read the clients' token (their API key) from this file [default: env
        /// UNDERSTUDY_GATEWAY_TOKEN, else a new one for this run]. Never on the command line,
        /// where every user's `ps` shows it.
        #[arg(long, value_name = "PATH")]
        token_file: Option<PathBuf>,
    },
    /// Each provider's state, breaker, last error and the current route.
    Status,
    /// Browse, download and manage offline models.
    Models {
        #[command(subcommand)]
        command: ModelsCommand,
    },
    /// Prompt and generation speed of the local engine.
    Bench(BenchArgs),
    /// The local engine's worker process (spawned by Understudy itself; speaks JSON lines).
    #[command(hide = true)]
    Worker,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ModelsCommand {
    /// Installed and discovered models.
    List,
    /// Search Hugging Face for GGUF models; `owner/repo` lists that repository's files.
    Search { query: String },
    /// Download a catalog id or `owner/repo/file.gguf`.
    Pull {
        id: String,
        /// Keep the file even when no sha256 is known to check it against (the hub sends none
        /// and the catalog pins none).
        #[arg(long)]
        allow_unverified: bool,
    },
    /// Use a .gguf file in place.
    Import { path: PathBuf },
    /// Find models already on disk (Hugging Face cache, LM Studio, Ollama).
    Scan,
    /// Check sizes and hashes of installed models.
    Verify,
    /// Delete a downloaded model.
    Rm { id: String },
}

#[derive(Debug, Args)]
struct BenchArgs {
    /// A .gguf file (default: the configured local model).
    #[arg(long)]
    model: Option<PathBuf>,
    #[arg(long)]
    threads: Option<u32>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Worker = cli.command {
        // The engine's child process: stdout is its protocol channel, so no logging setup here
        // beyond what the parent passes through stderr.
        return worker();
    }
    let env = Env::from_process();
    let paths = match Paths::resolve(&env) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("understudy: {e}");
            return ExitCode::from(2);
        }
    };
    // Owner-only data dirs (0700) whatever the umask; a dir that cannot be made shows up as
    // logging's warning and as the command's own error where it matters.
    let _ = paths.create_data_dirs();
    let _log = logging::init(&env, &paths.logs_dir(), "understudy");
    tracing::debug!(data_dir = %paths.data_dir.display(), json = cli.json, "starting");
    // The same services as the app's, made in one place (understudy-services).
    let services = match Services::builder(env, paths).build() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("understudy: {e}");
            return ExitCode::from(1);
        }
    };
    let loaded = services.current();
    if let Some(problem) = &loaded.problem {
        eprintln!("understudy: config error: {problem}");
        return ExitCode::from(2);
    }
    match cli.command {
        Command::Worker => worker(), // returned above, before logging started
        Command::Bench(args) => bench(&args, &loaded.config, cli.json),
        Command::Chat { provider, message } => match read_message(message) {
            Ok(message) => chat(&provider, message, &services, cli.json),
            Err(code) => code,
        },
        Command::Serve { listen, token_file } => match gateway_token(&loaded.config, services.env(), token_file.as_deref()) {
            Ok(token) => serve(listen.unwrap_or(loaded.config.gateway.listen), token, &services),
            Err(e) => {
                eprintln!("understudy serve: {e:#}");
                ExitCode::from(2)
            }
        },
        Command::Status => status(&loaded.config, &services, cli.json),
        Command::Models { command } => models::run(command, &loaded.config, &services, cli.json),
    }
}

fn worker() -> ExitCode {
    match understudy_local::worker::run(std::io::BufReader::new(std::io::stdin()), std::io::stdout().lock()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("understudy worker: {e}");
            ExitCode::from(1)
        }
    }
}

fn bench(args: &BenchArgs, config: &understudy_core::Config, json: bool) -> ExitCode {
    let Some(model) = args.model.clone().or_else(|| config.local.model.as_ref().filter(|m| m.ends_with(".gguf")).map(PathBuf::from)) else {
        eprintln!("understudy bench: no model: pass --model PATH.gguf (or set [local] model to a .gguf path)");
        return ExitCode::from(2);
    };
    let threads = args.threads.unwrap_or(config.local.threads);
    match understudy_local::bench::run(&model, threads) {
        Ok(r) if json => {
            println!("{}", serde_json::to_string(&r).expect("report serialises"));
            ExitCode::SUCCESS
        }
        Ok(r) => {
            println!("model       {}", r.model);
            println!("threads     {}", r.threads);
            println!("load        {} ms", r.load_ms);
            println!("prompt      {:.1} tokens/s ({} tokens)", r.prompt_tokens_per_s, r.prompt_tokens);
            println!("generation  {:.1} tokens/s ({} tokens)", r.gen_tokens_per_s, r.gen_tokens);
            println!("peak RSS    {:.0} MB", r.peak_rss_mb);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("understudy bench: {e}");
            ExitCode::from(1)
        }
    }
}

/// The message argument, or stdin when absent; an empty one is a usage error.
fn read_message(message: Option<String>) -> Result<String, ExitCode> {
    let message = match message {
        Some(m) => m,
        None => {
            let mut s = String::new();
            if let Err(e) = std::io::Read::read_to_string(&mut std::io::stdin(), &mut s) {
                eprintln!("understudy chat: cannot read stdin: {e}");
                return Err(ExitCode::from(1));
            }
            s
        }
    };
    if message.trim().is_empty() {
        eprintln!("understudy chat: empty message");
        return Err(ExitCode::from(2));
    }
    Ok(message)
}

/// The clients' token for `serve`, and whether it was made up here (then it is shown).
#[derive(Debug)]
struct ServeToken {
    token: Option<String>,
    generated: bool,
}

/// `--token-file`, else `UNDERSTUDY_GATEWAY_TOKEN`, else a fresh one; none with
/// `[gateway] require_token = false`.
fn gateway_token(config: &understudy_core::Config, env: &Env, file: Option<&std::path::Path>) -> anyhow::Result<ServeToken> {
    use anyhow::Context as _;
    if !config.gateway.require_token {
        return Ok(ServeToken { token: None, generated: false });
    }
    let given = match file {
        Some(f) => {
            let text = std::fs::read_to_string(f).with_context(|| format!("cannot read the token file {}", f.display()))?;
            anyhow::ensure!(!text.trim().is_empty(), "the token file {} is empty", f.display());
            warn_if_others_can_use(f);
            Some(text.trim().to_string())
        }
        None => env.non_empty("UNDERSTUDY_GATEWAY_TOKEN").map(|t| t.trim().to_string()),
    };
    match given {
        Some(token) => Ok(ServeToken { token: Some(token), generated: false }),
        None => Ok(ServeToken { token: Some(understudy_gateway::new_token().context("no random token could be made")?), generated: true }),
    }
}

/// A token file that other users can read (or replace) hands them the gateway, and the user's
/// API key behind it; said, not refused, since the file is the user's to share.
fn warn_if_others_can_use(file: &std::path::Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(file).map_or(0, |m| m.permissions().mode());
        if mode & 0o066 != 0 {
            eprintln!(
                "understudy serve: warning: other users can read or change the token file {} (mode {:03o}); `chmod 600` it to keep the gateway yours",
                file.display(),
                mode & 0o777
            );
        }
    }
    #[cfg(not(unix))]
    let _ = file;
}

/// `understudy serve`: the gateway until SIGINT/SIGTERM, then a graceful stop (exit 0).
fn serve(listen: SocketAddr, token: ServeToken, services: &Services) -> ExitCode {
    if !listen.ip().is_loopback() {
        eprintln!("understudy serve: {listen} is not a loopback address; the gateway listens on loopback only");
        return ExitCode::from(2);
    }
    // Built before the runtime: the keyring's D-Bus client blocks and must not run inside it.
    let router = services.router().clone();
    let run = async {
        let stop = shutdown()?;
        let _health = router.start_background();
        eprintln!("understudy: gateway on http://{listen}/v1; point a client at it with");
        eprintln!("  OPENAI_BASE_URL=http://{listen}/v1");
        match (&token.token, token.generated) {
            (Some(t), true) => {
                eprintln!("  OPENAI_API_KEY={t}");
                eprintln!("(a new token for this run; set UNDERSTUDY_GATEWAY_TOKEN or --token-file to keep one)");
            }
            (Some(_), false) => eprintln!("  OPENAI_API_KEY=<the token from UNDERSTUDY_GATEWAY_TOKEN or --token-file>"),
            (None, _) => eprintln!("  OPENAI_API_KEY=anything (no token: [gateway] require_token = false)"),
        }
        let cfg = understudy_gateway::GatewayConfig { token: token.token, ..understudy_gateway::GatewayConfig::default() };
        understudy_gateway::serve(router, cfg, listen, stop).await?;
        eprintln!("understudy: gateway stopped");
        anyhow::Ok(())
    };
    // One thread: the gateway only moves bytes (the offline model runs in its worker process),
    // and on one thread a request's tasks wake each other without a thread switch: a quarter
    // less CPU per proxied request and half the context switches (`cargo xtask bench gateway`).
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("understudy serve: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("understudy serve: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Completes on Ctrl-C or SIGTERM. The handlers are installed when this is called (inside the
/// runtime, before the gateway binds), not when the future is first polled: a signal that
/// comes as soon as the port answers must stop the gateway cleanly, not kill it.
fn shutdown() -> std::io::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let (mut term, mut int) = (signal(SignalKind::terminate())?, signal(SignalKind::interrupt())?);
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

/// Runs `f` on a small runtime; an error is a runtime failure (exit 1).
fn block_on<T>(f: impl std::future::Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(f)
}

/// `understudy chat`: one answer through the router, so `auto` fails over exactly as the app
/// does. Tokens go to stdout; stderr names the provider that answered and why.
fn chat(provider: &str, message: String, services: &Services, json: bool) -> ExitCode {
    // Built before the runtime: the keyring's D-Bus client blocks and must not run inside it.
    let router = services.router().clone();
    let provider = (provider != "auto").then(|| provider.to_string());
    let request = understudy_router::ChatRequest {
        messages: vec![understudy_router::Turn::new(understudy_router::Role::User, &message)],
        provider,
        ..Default::default()
    };
    match block_on(stream_answer(router, request, json)) {
        Ok(None) => ExitCode::SUCCESS,
        Ok(Some(error)) => {
            let mut text = error.to_string();
            if error.next_action == understudy_router::NextAction::AddKey {
                text.push_str(" On the command line, set OPENAI_API_KEY (or the variable a provider's api_key = \"env:NAME\" names).");
            }
            eprintln!("understudy chat: {text}");
            ExitCode::from(if error.class == understudy_router::ErrorClass::Setup { 2 } else { 1 })
        }
        Err(e) => {
            eprintln!("understudy chat: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Streams one answer; returns the router's error, if the answer failed.
async fn stream_answer(
    router: understudy_router::Router,
    request: understudy_router::ChatRequest,
    json: bool,
) -> anyhow::Result<Option<understudy_router::ChatError>> {
    use std::io::Write;
    use understudy_router::Event;
    let mut answer = router.chat(request);
    let mut out = std::io::stdout().lock();
    let (mut provider, mut failover, mut usage) = (String::new(), None::<String>, None);
    let line = |out: &mut std::io::StdoutLock<'_>, v: serde_json::Value| writeln!(out, "{v}");
    loop {
        // Ctrl-C stops the answer the way the Stop button does: the text so far stands.
        let event = tokio::select! {
            e = answer.next() => e,
            _ = tokio::signal::ctrl_c() => { answer.cancel(); answer.next().await }
        };
        let Some(event) = event else { anyhow::bail!("the answer ended without a result") };
        match event {
            Event::Started { provider: p, label, model, failover: why, because, .. } => {
                match &why {
                    Some(why) => eprintln!("understudy: answering with {p} ({model}) because {why}"),
                    None => eprintln!("understudy: answering with {p} ({model})"),
                }
                if json {
                    line(
                        &mut out,
                        serde_json::json!({ "type": "started", "provider": p, "label": label, "model": model, "failover": why, "because": because }),
                    )?;
                }
                (provider, failover) = (p, why);
            }
            Event::Token { text } if json => line(&mut out, serde_json::json!({ "type": "token", "text": text }))?,
            Event::Token { text } => {
                out.write_all(text.as_bytes())?;
                out.flush()?;
            }
            Event::Switched { provider: p, label, model, reason, because } => {
                // The text so far stays on stdout; the rest continues from where it stopped.
                eprintln!("\nunderstudy: {reason}; {label} ({model}) continues the answer");
                if json {
                    line(&mut out, serde_json::json!({ "type": "switched", "provider": p, "model": model, "reason": reason, "because": because }))?;
                }
                (provider, failover) = (p, Some(reason));
            }
            Event::Usage { prompt_tokens, completion_tokens } => {
                usage = Some(serde_json::json!({ "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens }))
            }
            // Thinking goes to stderr, so stdout holds only the answer.
            Event::Reasoning { text } if json => line(&mut out, serde_json::json!({ "type": "reasoning", "text": text }))?,
            Event::Reasoning { text } => eprint!("{text}"),
            // Only the gateway asks for the upstream's raw chunks.
            Event::Upstream { .. } | Event::Whole { .. } => {}
            Event::LeftOut { messages } => {
                eprintln!("\nunderstudy: the offline model left out the {messages} oldest messages: the conversation did not fit its context");
                if json {
                    line(&mut out, serde_json::json!({ "type": "left_out", "messages": messages }))?;
                }
            }
            Event::Done { finish_reason, model } => {
                if json {
                    line(
                        &mut out,
                        serde_json::json!({ "type": "done", "provider": provider, "model": model, "finish_reason": finish_reason, "failover": failover, "usage": usage }),
                    )?;
                } else {
                    writeln!(out)?;
                }
                return Ok(None);
            }
            Event::Error { error } => {
                if json {
                    line(&mut out, serde_json::json!({ "type": "error", "error": error }))?;
                }
                return Ok(Some(error));
            }
        }
    }
}

/// `understudy status`: the live state of a running gateway (the app's or `understudy serve`'s,
/// so the CLI shows what they see); when none answers, one probe round of its own.
fn status(config: &understudy_core::Config, services: &Services, json: bool) -> ExitCode {
    let listen = config.gateway.listen;
    // The running gateway (the app's or `serve`'s) has the live view; ask it first.
    let live = block_on(async move {
        let url = format!("http://{listen}/understudy/status");
        let client = reqwest::Client::builder().timeout(std::time::Duration::from_millis(1500)).no_proxy().build()?;
        let r = client.get(&url).send().await?.error_for_status()?;
        Ok(r.json::<serde_json::Value>().await?)
    })
    .ok();
    let result = match live {
        Some(snapshot) => Ok((snapshot, format!("the gateway on {listen}"))),
        // None answers: probe once ourselves. The router is built out here, not inside the
        // runtime, because reading the key from the keyring must not run on it.
        None => {
            let router = services.router().clone();
            block_on(async move {
                router.probe_now().await;
                Ok((serde_json::to_value(router.monitor().snapshot())?, "a probe just now".to_string()))
            })
        }
    };
    let (snapshot, source) = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("understudy status: {e:#}");
            return ExitCode::from(1);
        }
    };
    if json {
        let mut v = snapshot;
        v["source"] = serde_json::Value::String(source);
        println!("{v}");
        return ExitCode::SUCCESS;
    }
    print!("{}", status_text(&snapshot, &source, now_ms()));
    ExitCode::SUCCESS
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)).unwrap_or(0)
}

/// The health snapshot as a few aligned lines for people.
fn status_text(s: &serde_json::Value, source: &str, now: u64) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let str_of = |v: &serde_json::Value| v.as_str().unwrap_or("").to_string();
    let _ = writeln!(out, "mode        {}", str_of(&s["mode"]));
    let route = match understudy_router::Route::from(str_of(&s["route"]).as_str()) {
        understudy_router::Route::Nothing => "nothing can answer".to_string(),
        understudy_router::Route::Local => format!("local ({})", s["local_model"].as_str().unwrap_or("no model")),
        understudy_router::Route::Provider(id) => id,
    };
    let _ = writeln!(out, "route       {route}");
    let _ = writeln!(out, "offline     {}", s["local_model"].as_str().unwrap_or("no model installed"));
    for p in s["providers"].as_array().into_iter().flatten() {
        let b = &p["breaker"];
        let breaker = match b["state"].as_str().unwrap_or("?") {
            "open" => format!("open for {} s more", b["until_ms"].as_u64().unwrap_or(now).saturating_sub(now).div_ceil(1000)),
            "half-open" => format!("half-open ({}/2 probes passed)", b["successes"].as_u64().unwrap_or(0)),
            other => other.to_string(),
        };
        let since = p["since"].as_u64().map(|t| format!(" for {}", ago(now.saturating_sub(t)))).unwrap_or_default();
        let _ = writeln!(out, "{:<11} {}{since}, breaker {breaker}", str_of(&p["id"]), str_of(&p["health"]));
        if let Some(m) = p["model"].as_str().filter(|m| !m.is_empty()) {
            let _ = writeln!(out, "{:<11} {} · {m}", "", str_of(&p["label"]));
        }
        if let Ok(problem) = serde_json::from_value::<understudy_core::providers::KeyProblem>(p["key_problem"].clone()) {
            let _ = writeln!(out, "{:<11} key: {problem}", "");
        }
        if let Some(e) = p["last_error"].as_str() {
            let _ = writeln!(out, "{:<11} last error: {e}", "");
        }
        if let Some(e) = p["account_problem"].as_str() {
            let _ = writeln!(out, "{:<11} account: {e}", "");
        }
    }
    let _ = writeln!(out, "(from {source})");
    out
}

fn ago(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min", s / 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}
