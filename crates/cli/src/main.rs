//! `understudy`: the command-line face of the failover engine (design.md section 2, CLI).
//! Exit codes: 0 success, 1 runtime failure, 2 usage or config error.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use understudy_core::{config, logging, Env, Paths};

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
        #[arg(long, default_value = "127.0.0.1:8321")]
        listen: SocketAddr,
        /// Require `Authorization: Bearer <TOKEN>` from clients.
        #[arg(long)]
        token: Option<String>,
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
enum ModelsCommand {
    /// Installed and discovered models.
    List,
    /// Search Hugging Face for GGUF models.
    Search { query: String },
    /// Download a catalog id or `owner/repo/file.gguf`.
    Pull { id: String },
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

impl ModelsCommand {
    fn name(&self) -> &'static str {
        match self {
            ModelsCommand::List => "list",
            ModelsCommand::Search { .. } => "search",
            ModelsCommand::Pull { .. } => "pull",
            ModelsCommand::Import { .. } => "import",
            ModelsCommand::Scan => "scan",
            ModelsCommand::Verify => "verify",
            ModelsCommand::Rm { .. } => "rm",
        }
    }
}

impl Command {
    fn name(&self) -> String {
        match self {
            Command::Chat { .. } => "chat".into(),
            Command::Serve { .. } => "serve".into(),
            Command::Status => "status".into(),
            Command::Models { command } => format!("models {}", command.name()),
            Command::Bench(_) => "bench".into(),
            Command::Worker => "worker".into(),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Worker = cli.command {
        // The engine's child process: stdout is its protocol channel, so no logging setup here
        // beyond what the parent passes through stderr.
        return match understudy_local::worker::run(std::io::BufReader::new(std::io::stdin()), std::io::stdout().lock()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("understudy worker: {e}");
                ExitCode::from(1)
            }
        };
    }
    let env = Env::from_process();
    let paths = match Paths::resolve(&env) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("understudy: {e}");
            return ExitCode::from(2);
        }
    };
    let _log = logging::init(&env, &paths.logs_dir(), "understudy");
    tracing::debug!(data_dir = %paths.data_dir.display(), json = cli.json, "starting");
    let loaded = config::load(&env, &paths);
    if let Some(problem) = &loaded.problem {
        eprintln!("understudy: config error: {problem}");
        return ExitCode::from(2);
    }
    if let Command::Bench(args) = &cli.command {
        return bench(args, &loaded.config, cli.json);
    }
    if let Command::Chat { provider, message } = &cli.command {
        let message = match read_message(message.clone()) {
            Ok(m) => m,
            Err(code) => return code,
        };
        if provider == understudy_core::config::LOCAL_PROVIDER_ID {
            return chat_local(message, &loaded.config, cli.json);
        }
        return chat_cloud(provider, message, &loaded.config, &paths, cli.json);
    }
    if let Command::Serve { listen, token } = &cli.command {
        return serve(*listen, token.clone(), &loaded.config, &paths);
    }
    // The other commands land with their issues (see ARCHITECTURE.md); until then say so plainly.
    eprintln!("understudy {}: not implemented yet", cli.command.name());
    ExitCode::from(2)
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

/// The router the app uses: config, stored keys, this binary as the engine's worker.
fn router(config: &understudy_core::Config, paths: &Paths) -> anyhow::Result<understudy_router::Router> {
    let secrets = understudy_store::Secrets::new(&paths.data_dir);
    let chain = understudy_router::Chain::build(config, paths, &understudy_router::StoredKeys(secrets));
    let mut engine = understudy_local::engine::EngineConfig::new(std::env::current_exe()?, &["worker"]);
    engine.stall_timeout = config.failover.stall_timeout;
    engine.idle_unload = Some(std::time::Duration::from_secs(15 * 60));
    Ok(understudy_router::Router::new(chain, understudy_local::Engine::new(engine)))
}

/// `understudy serve`: the gateway until SIGINT/SIGTERM, then a graceful stop (exit 0).
fn serve(listen: SocketAddr, token: Option<String>, config: &understudy_core::Config, paths: &Paths) -> ExitCode {
    if !listen.ip().is_loopback() {
        eprintln!("understudy serve: {listen} is not a loopback address; the gateway listens on loopback only");
        return ExitCode::from(2);
    }
    // Built before the runtime: the keyring's D-Bus client blocks and must not run inside it.
    let router = match router(config, paths) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("understudy serve: {e:#}");
            return ExitCode::from(1);
        }
    };
    let run = async {
        let _health = router.start_background();
        eprintln!("understudy: gateway on http://{listen}/v1 (set OPENAI_BASE_URL to it)");
        understudy_gateway::serve(router, understudy_gateway::GatewayConfig { token }, listen, shutdown()).await?;
        eprintln!("understudy: gateway stopped");
        anyhow::Ok(())
    };
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
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

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// Runs `f` to completion on a small runtime; an error is a runtime failure (exit 1).
fn block_on(f: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    let result = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(anyhow::Error::from).and_then(|rt| rt.block_on(f));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("understudy chat: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// `understudy chat --provider local`: one answer from the local engine, streamed.
fn chat_local(message: String, config: &understudy_core::Config, json: bool) -> ExitCode {
    let Some(model) = config.local.model.as_ref().filter(|m| m.ends_with(".gguf")).map(PathBuf::from) else {
        eprintln!("understudy chat: no local model: set UNDERSTUDY_LOCAL_MODEL or [local] model to a .gguf file");
        return ExitCode::from(2);
    };
    block_on(stream_local(&model, config, message, json))
}

/// `understudy chat [--provider auto|<id>]`: one answer from a cloud provider, streamed. `auto`
/// is the primary; failing over to the local engine arrives with the router.
fn chat_cloud(provider: &str, message: String, config: &understudy_core::Config, paths: &Paths, json: bool) -> ExitCode {
    use understudy_core::config::ApiKeySource;
    let chosen = if provider == "auto" { config.primary() } else { config.providers.iter().find(|p| p.id == provider) };
    let Some(p) = chosen else {
        let ids: Vec<&str> = config.providers.iter().map(|p| p.id.as_str()).collect();
        eprintln!("understudy chat: no provider {provider:?}; configured: {}, and local", ids.join(", "));
        return ExitCode::from(2);
    };
    // The same keys the app uses: the keyring (or its private-file fallback), `env:NAME`, and
    // OPENAI_API_KEY for the primary when nothing is stored.
    use understudy_router::Keys;
    let secrets = understudy_store::Secrets::new(&paths.data_dir);
    let is_primary = config.primary().is_some_and(|q| q.id == p.id);
    let Some(key) = understudy_router::StoredKeys(secrets).key(&p.id, &p.api_key, is_primary) else {
        let hint = match &p.api_key {
            ApiKeySource::Env(name) => format!("set {name}"),
            ApiKeySource::Keyring => "add it in the app's Settings, or set OPENAI_API_KEY".to_string(),
        };
        eprintln!("understudy chat: no API key for {}: {hint}", p.id);
        return ExitCode::from(2);
    };
    let client = understudy_openai::ClientConfig {
        base_url: p.base_url.clone(),
        api_key: Some(key),
        provider: if p.id == "openai" { "OpenAI".into() } else { p.id.clone() },
        connect_timeout: config.failover.connect_timeout,
        first_token_timeout: config.failover.first_token_timeout,
        stall_timeout: config.failover.stall_timeout,
    };
    block_on(stream_cloud(client, p.id.clone(), p.model.clone(), message, json))
}

async fn stream_cloud(config: understudy_openai::ClientConfig, id: String, model: String, message: String, json: bool) -> anyhow::Result<()> {
    use std::io::Write;
    use understudy_openai::{ChatMessage, ChatRequest, Client, StreamEvent};
    let client = Client::new(config)?;
    eprintln!("understudy: answering with {id} ({model})");
    let request = ChatRequest { model, messages: vec![ChatMessage::new("user", &message)], max_tokens: None, temperature: None };
    let mut stream = client.chat_stream(&request).await?;
    let mut out = std::io::stdout().lock();
    let (mut finish, mut usage, mut answered_by) = (None, None, String::new());
    while let Some(event) = stream.next().await {
        match event? {
            StreamEvent::Delta { model, content } => {
                answered_by = model;
                if json {
                    writeln!(out, "{}", serde_json::json!({ "type": "token", "text": content }))?;
                } else {
                    out.write_all(content.as_bytes())?;
                    out.flush()?;
                }
            }
            StreamEvent::Finish { reason } => finish = Some(reason),
            StreamEvent::Usage(u) => usage = Some(u),
            StreamEvent::Done => {
                if json {
                    let u = usage.take().map(|u| serde_json::json!({ "prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens }));
                    writeln!(out, "{}", serde_json::json!({ "type": "done", "provider": id, "model": answered_by, "finish_reason": finish, "usage": u }))?;
                } else {
                    writeln!(out)?;
                }
            }
        }
    }
    Ok(())
}

async fn stream_local(model: &std::path::Path, config: &understudy_core::Config, message: String, json: bool) -> anyhow::Result<()> {
    use std::io::Write;
    use understudy_local::{engine::EngineConfig, Engine, Event, Message, SamplingParams};
    let exe = std::env::current_exe()?;
    let mut engine_config = EngineConfig::new(exe, &["worker"]);
    engine_config.stall_timeout = config.failover.stall_timeout;
    let engine = Engine::new(engine_config);
    engine.load(model, config.local.context, config.local.threads).await?;
    let name = model.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    eprintln!("understudy: answering with local ({name}), as requested by --provider local");
    let mut generation = engine.generate(vec![Message::new("user", &message)], SamplingParams::default(), None).await?;
    let mut out = std::io::stdout().lock();
    while let Some(event) = generation.next().await {
        match event {
            Event::Token { text, .. } if json => writeln!(out, "{}", serde_json::json!({ "type": "token", "text": text }))?,
            Event::Token { text, .. } => {
                out.write_all(text.as_bytes())?;
                out.flush()?;
            }
            Event::Done { finish_reason, usage, .. } => {
                if json {
                    writeln!(out, "{}", serde_json::json!({ "type": "done", "provider": "local", "model": name, "finish_reason": finish_reason, "usage": usage }))?;
                } else {
                    writeln!(out)?;
                }
                return Ok(());
            }
            Event::Error { message, .. } => anyhow::bail!("the local engine failed: {message}"),
            _ => {}
        }
    }
    anyhow::bail!("the local engine ended without an answer")
}
