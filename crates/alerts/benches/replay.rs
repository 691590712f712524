//! Outage replay: a timeline modelled on a real OpenAI incident (xtask/replay/*.toml), time-
//! compressed and played through llmock while a client asks a question every second through the
//! real router (probes running, the tiny GGUF as the offline model), and the tray indicator and
//! notifier of `understudy-alerts` follow the health watch as in the app. Prints a report and
//! writes an SVG timeline (health, tray, who answered each prompt).
//! Run with `cargo xtask replay TIMELINE`.

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use understudy_alerts::{Indicator, Notifier, NotifierConfig, Slot, TrayState};
use understudy_core::config::{ApiKeySource, Config, Mode, ProviderConfig};
use understudy_core::{Env, Paths, Role};
use understudy_local::engine::EngineConfig;
use understudy_local::Engine;
use understudy_router::chain::FixedKey;
use understudy_router::{Chain, ChatRequest, Event, Router, Turn};

#[derive(serde::Deserialize)]
struct Timeline {
    name: String,
    phase: Vec<Phase>,
}

#[derive(serde::Deserialize, Clone)]
struct Phase {
    at: f64,
    state: String,
    #[serde(default)]
    error_rate: f64,
    #[serde(default)]
    slow_first_token: f64,
}

/// `REPLAY_PROBE_INTERVAL` (humantime, e.g. "60s", the default of config.toml); 2 s otherwise.
fn probe_interval() -> Duration {
    std::env::var("REPLAY_PROBE_INTERVAL").ok().map_or(Duration::from_secs(2), |v| humantime::parse_duration(&v).expect("REPLAY_PROBE_INTERVAL"))
}
const OPEN_FOR_MAX: Duration = Duration::from_secs(16);

#[derive(Debug, Clone)]
struct Prompt {
    at: f64,
    began_with: String,
    answered_by: String,
    ok: bool,
    total: f64,
}

fn truth(phases: &[Phase], t: f64) -> &str {
    phases.iter().rev().find(|p| p.at <= t).map_or("healthy", |p| p.state.as_str())
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * p / 100.0).round() as usize]
}

/// Seconds since the replay began.
#[derive(Clone, Copy)]
struct Clock(Instant);

impl Clock {
    fn now(self) -> f64 {
        self.0.elapsed().as_secs_f64()
    }
}

/// What the replay saw.
#[derive(Default)]
struct Recorded {
    prompts: Vec<Prompt>,
    /// (t, truth, tray shown)
    samples: Vec<(f64, String, TrayState)>,
    /// (t, slot, updated in place)
    notices: Vec<(f64, Slot, bool)>,
}

fn main() {
    let path = std::env::args().skip(1).find(|a| a.ends_with(".toml")).expect("usage: replay TIMELINE.toml");
    let tl: Timeline = toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let end = tl.phase.iter().find(|p| p.state == "end").map_or(120.0, |p| p.at);
    let mock = understudy_testkit::Llmock::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let probe = probe_interval();
    let router = router(&mock, dir.path(), probe);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let clock = Clock(Instant::now());
    let recorded: Arc<Mutex<Recorded>> = Arc::default();
    rt.block_on(async {
        let _bg = router.start_background();
        let driver = tokio::spawn(drive_upstream(tl.phase.clone(), mock.admin_url(""), clock, end));
        let watcher = tokio::spawn(watch_health(router.health(), tl.phase.clone(), recorded.clone(), clock, end));
        // A user (or a tool) asking something every second.
        let mut asks = Vec::new();
        while clock.now() < end - 3.0 {
            asks.push(tokio::spawn(ask(router.clone(), recorded.clone(), clock)));
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        for a in asks {
            let _ = a.await;
        }
        let _ = driver.await;
        let _ = watcher.await;
    });
    let recorded = std::mem::take(&mut *recorded.lock().unwrap());
    report(&tl, end, probe, &recorded);
    let out = std::env::var("REPLAY_SVG").unwrap_or_else(|_| format!("{}.svg", path.trim_end_matches(".toml")));
    std::fs::write(&out, svg(&tl, end, &recorded)).unwrap();
    println!("timeline plot           {out}");
}

/// The real router over llmock as OpenAI and the tiny GGUF offline, with short timeouts.
fn router(mock: &understudy_testkit::Llmock, dir: &std::path::Path, probe: Duration) -> Router {
    let env = Env::from_pairs([("UNDERSTUDY_DATA_DIR", dir.display().to_string()), ("UNDERSTUDY_CONFIG", dir.join("c.toml").display().to_string())]);
    let paths = Paths::resolve(&env).unwrap();
    let mut c = Config { mode: Mode::Auto, ..Config::default() };
    c.providers = vec![ProviderConfig { id: "openai".into(), base_url: mock.base_url(), model: "gpt-4o-mini".into(), api_key: ApiKeySource::Keyring }];
    c.local.model = Some(understudy_testkit::tiny_gguf().display().to_string());
    c.local.context = 1024;
    c.local.threads = 1;
    c.failover.connect_timeout = Duration::from_secs(1);
    c.failover.first_token_timeout = Duration::from_secs(2);
    c.failover.stall_timeout = Duration::from_secs(2);
    c.failover.probe_interval = probe;
    c.failover.open_for = Duration::from_secs(4);
    c.failover.open_for_max = OPEN_FOR_MAX;
    c.failover.status_page = String::new();
    Router::new(Chain::build(&c, &paths, &FixedKey("sk-replay-0123456789".into())), Engine::new(EngineConfig::new(understudy_testkit::local_worker(), &[])))
}

/// The upstream follows the timeline: llmock's scenario set from the phase now.
async fn drive_upstream(phases: Vec<Phase>, admin: String, clock: Clock, end: f64) {
    let http = reqwest::Client::new();
    let mut current = String::new();
    while clock.now() < end {
        let p = phases.iter().rev().find(|p| p.at <= clock.now()).cloned().unwrap_or(Phase {
            at: 0.0,
            state: "healthy".into(),
            error_rate: 0.0,
            slow_first_token: 0.0,
        });
        let behaviors = match p.state.as_str() {
            "outage" => Some(serde_json::json!([{ "type": "fail", "status": 503, "message": "service unavailable", "times": 100_000 }])),
            "degraded" => Some(serde_json::Value::Array(
                (0..40)
                    .map(|i| {
                        // `error_rate` of each ten requests fail (0.4 → 4 of 10).
                        if (i % 10) < (p.error_rate * 10.0).round() as usize {
                            serde_json::json!({ "type": "fail", "status": 502 })
                        } else {
                            serde_json::json!({ "type": "slow_first_token", "seconds": p.slow_first_token })
                        }
                    })
                    .collect(),
            )),
            _ => None,
        };
        if p.state != current || p.state == "degraded" {
            let _ = http.delete(format!("{admin}scenario")).send().await;
            if let Some(b) = behaviors {
                let _ = http.post(format!("{admin}scenario")).json(&serde_json::json!({ "behaviors": b })).send().await;
            }
            current = p.state.clone();
        }
        tokio::time::sleep(Duration::from_millis(if current == "degraded" { 1000 } else { 100 })).await;
    }
}

/// The tray and the notifier, fed from the health watch as the app feeds them.
async fn watch_health(
    rx: tokio::sync::watch::Receiver<understudy_router::HealthSnapshot>,
    phases: Vec<Phase>,
    recorded: Arc<Mutex<Recorded>>,
    clock: Clock,
    end: f64,
) {
    let mut ind = Indicator::new(Duration::from_secs(3));
    let mut notifier = Notifier::new(NotifierConfig { enabled: true, recovery_after: Duration::from_secs(6), reopen_window: Duration::from_secs(60) });
    while clock.now() < end {
        let snap = rx.borrow().clone();
        let d = Duration::from_secs_f64(clock.now());
        ind.update(d, &snap);
        {
            let mut r = recorded.lock().unwrap();
            for n in notifier.update(d, &snap) {
                r.notices.push((clock.now(), n.slot, n.replace));
            }
            r.samples.push((clock.now(), truth(&phases, clock.now()).to_string(), ind.shown().unwrap_or(TrayState::Healthy)));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One question through the router: who began it, who finished it, whether it was answered.
async fn ask(r: Router, recorded: Arc<Mutex<Recorded>>, clock: Clock) {
    let at = clock.now();
    let mut a = r.chat(ChatRequest { messages: vec![Turn::new(Role::User, "What time is it?")], max_tokens: Some(8), ..ChatRequest::default() });
    let (mut began, mut by, mut ok) = (String::new(), String::new(), false);
    while let Some(e) = a.next().await {
        match e {
            Event::Started { provider, .. } => (began, by) = (provider.clone(), provider),
            Event::Switched { provider, .. } => by = provider,
            Event::Done { .. } => ok = true,
            _ => {}
        }
    }
    recorded.lock().unwrap().prompts.push(Prompt { at, began_with: began, answered_by: by, ok, total: clock.now() - at });
}

/// The report: answers, added latency, notifications, time the tray was wrong, false
/// failovers and how soon OpenAI answered again after each incident.
fn report(tl: &Timeline, end: f64, probe: Duration, recorded: &Recorded) {
    let Recorded { prompts, samples, notices } = recorded;
    let answered = prompts.iter().filter(|p| p.ok).count();
    let mut healthy_openai: Vec<f64> =
        prompts.iter().filter(|p| p.ok && p.began_with == "openai" && truth(&tl.phase, p.at) == "healthy").map(|p| p.total).collect();
    let baseline = pct(&mut healthy_openai, 50.0);
    let mut incident: Vec<f64> = prompts.iter().filter(|p| p.ok && truth(&tl.phase, p.at) != "healthy").map(|p| p.total - baseline).collect();
    // Incidents (a healthy → not-healthy edge) and their ends.
    let mut incidents = 0;
    let mut recoveries: Vec<f64> = Vec::new();
    for w in tl.phase.windows(2) {
        if w[0].state == "healthy" && w[1].state != "healthy" && w[1].state != "end" {
            incidents += 1;
        }
        if w[0].state != "healthy" && w[1].state == "healthy" {
            recoveries.push(w[1].at);
        }
    }
    let returns: Vec<f64> =
        recoveries.iter().map(|&r| prompts.iter().filter(|p| p.at >= r && p.began_with == "openai").map(|p| p.at - r).fold(f64::INFINITY, f64::min)).collect();
    // A local answer in a healthy phase, once the return window after an incident has passed
    // (the breaker is probed at the latest when its open time ends).
    let false_failovers = prompts
        .iter()
        .filter(|p| {
            p.ok && p.began_with == "local"
                && truth(&tl.phase, p.at) == "healthy"
                && !recoveries.iter().any(|&r| p.at >= r && p.at < r + OPEN_FOR_MAX.as_secs_f64() + 2.0)
        })
        .count();
    let wrong_tray: f64 = samples
        .windows(2)
        .filter(|w| {
            let (t, shown) = (w[0].1.as_str(), w[0].2);
            match t {
                "healthy" => shown != TrayState::Healthy,
                "outage" => shown != TrayState::Outage,
                _ => shown == TrayState::Healthy,
            }
        })
        .map(|w| w[1].0 - w[0].0)
        .sum();
    let outage_n = notices.iter().filter(|n| n.1 == Slot::Outage && !n.2).count();
    let recovery_n = notices.iter().filter(|n| n.1 == Slot::Recovery).count();
    println!("replay: {} ({end:.0} s)", tl.name);
    println!("prompts answered        {answered}/{} ({:.1} %)", prompts.len(), 100.0 * answered as f64 / prompts.len().max(1) as f64);
    println!("healthy baseline        {:.0} ms per answer (OpenAI, p50)", baseline * 1e3);
    println!("added during incidents  p50 {:.0} ms, p95 {:.0} ms", pct(&mut incident.clone(), 50.0) * 1e3, pct(&mut incident, 95.0) * 1e3);
    println!(
        "notifications           {outage_n} outage, {recovery_n} recovery ({} updated in place) for {incidents} incident(s)",
        notices.iter().filter(|n| n.2).count()
    );
    println!("tray wrong              {wrong_tray:.1} s of {end:.0} s (detection and the 3 s hold included)");
    println!("false failovers         {false_failovers}");
    println!(
        "back to OpenAI after    {} (probe interval {} s)",
        returns.iter().map(|r| if r.is_finite() { format!("{r:.1} s") } else { "never".into() }).collect::<Vec<_>>().join(", "),
        probe.as_secs()
    );
}

/// The timeline as an SVG: truth, tray, and each prompt (x = when, y = how long, colour = who).
fn svg(tl: &Timeline, end: f64, recorded: &Recorded) -> String {
    let Recorded { prompts, samples, notices } = recorded;
    let (w, h, x) = (1000.0, 320.0, |t: f64| 40.0 + t / end * 940.0);
    let mut svg = format!("<svg xmlns='http://www.w3.org/2000/svg' width='{w}' height='{h}' font-family='sans-serif' font-size='12'><rect width='100%' height='100%' fill='white'/>");
    let _ = write!(svg, "<text x='40' y='16' font-size='14'>{}</text>", tl.name.replace('&', "&amp;").replace('<', "&lt;"));
    let colour = |s: &str| match s {
        "healthy" => "#22c55e",
        "outage" => "#ef4444",
        _ => "#f59e0b",
    };
    // One rectangle per run of equal state (API truth on top, the tray below).
    let tray_of = |s: TrayState| match s {
        TrayState::Healthy => "healthy",
        TrayState::Outage => "outage",
        _ => "degraded",
    };
    for (row, y) in [(0, 28), (1, 48)] {
        let mut start = 0;
        for i in 1..=samples.len() {
            let key = |j: usize| if row == 0 { colour(&samples[j].1) } else { colour(tray_of(samples[j].2)) };
            if i == samples.len() || key(i) != key(start) {
                let (a, b) = (x(samples[start].0), x(samples[i.min(samples.len() - 1)].0));
                let _ = write!(svg, "<rect x='{a:.1}' y='{y}' width='{:.1}' height='14' fill='{}'/>", (b - a).max(0.5), key(start));
                start = i;
            }
        }
    }
    let _ = write!(svg, "<text x='2' y='39'>API</text><text x='2' y='59'>tray</text>");
    let ymax = prompts.iter().map(|p| p.total).fold(1.0, f64::max);
    for p in prompts {
        let fill = if !p.ok {
            "#000"
        } else if p.began_with == "local" {
            "#f97316"
        } else if p.answered_by == "local" {
            "#a855f7"
        } else {
            "#3b82f6"
        };
        let _ = write!(svg, "<circle cx='{:.1}' cy='{:.1}' r='3' fill='{fill}'/>", x(p.at), 300.0 - p.total / ymax * 220.0);
    }
    for (t, slot, _) in notices {
        let _ = write!(
            svg,
            "<line x1='{0:.1}' x2='{0:.1}' y1='66' y2='300' stroke='{1}' stroke-dasharray='3,3'/>",
            x(*t),
            if *slot == Slot::Recovery { "#22c55e" } else { "#ef4444" }
        );
    }
    let _ = write!(svg, "<text x='40' y='316'>dots: answers (y = seconds, max {ymax:.1} s) — blue OpenAI, orange offline model, purple continued offline, black failed; dashed: notifications</text></svg>");
    svg
}
