//! Background health work, so the tray and notifications tell the truth before anyone types:
//! probes (`GET /models`, then a 1-token completion) while a breaker is half-open and after
//! `probe_interval` without traffic, the status-page poll, and pre-warming the local model when
//! health turns degraded (unloading it again after a long healthy spell).

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::task::JoinHandle;
use understudy_core::config::{Mode, Prewarm};
use understudy_core::Role;
use understudy_openai::{ChatMessage, ChatRequest, Client};

use crate::chain::{Chain, LocalModel};
use crate::chat::{to_local, Inner, Router};
use crate::policy::{Health, Outcome};

/// One probe: the model list answers, then the model produces one token.
pub async fn probe(client: &Client, model: &str) -> Result<(), understudy_openai::Error> {
    client.models().await?;
    client.chat(&one_token(model)).await.map(|_| ())
}

/// The cheapest question that shows `model` answers: one token.
pub(crate) fn one_token(model: &str) -> ChatRequest {
    ChatRequest { model: model.to_string(), messages: vec![ChatMessage::new(Role::User, "ping")], max_tokens: Some(1), temperature: None }
}

impl Router {
    /// "Retry OpenAI now": probes every cloud provider at once; an open breaker is treated as
    /// half-open, so two passing probes close it without waiting for `open_for`.
    pub async fn probe_now(&self) {
        let chain = self.chain();
        for cloud in chain.clouds.iter() {
            let Some(client) = &cloud.client else { continue };
            self.monitor().force_half_open(&cloud.id, &cloud.label);
            for _ in 0..2 {
                let result = probe(client, &cloud.model).await;
                let ok = result.is_ok();
                let error = result.as_ref().err().map(understudy_openai::Error::summary);
                self.monitor().record(&chain, &cloud.id, &cloud.label, Outcome::Probe(ok), error);
                if !ok || self.monitor().snapshot().providers.iter().any(|p| p.id == cloud.id && p.breaker == crate::policy::Breaker::Closed) {
                    break;
                }
            }
        }
    }

    /// Starts the background health work; it ends when the last clone of the router is dropped.
    pub fn start_background(&self) -> JoinHandle<()> {
        let weak = Arc::downgrade(&self.0);
        tokio::spawn(status_loop(weak.clone()));
        tokio::spawn(probe_loop(weak))
    }
}

/// Polls each provider's status page every `status_poll`, five times as often while that
/// provider is down; a page's word marks only its own provider.
async fn status_loop(weak: Weak<Inner>) {
    let http = match reqwest::Client::builder().timeout(Duration::from_secs(10)).build() {
        Ok(c) => c,
        Err(e) => return tracing::warn!("status page: no HTTP client: {e}"),
    };
    // Providers whose page is unreadable now (warned once per streak) and when each is due.
    let mut warned = std::collections::HashSet::<String>::new();
    let mut due = std::collections::HashMap::<String, tokio::time::Instant>::new();
    loop {
        let Some(inner) = weak.upgrade() else { return };
        let chain = Router(inner).chain();
        let every = chain.failover.status_poll.max(Duration::from_millis(100));
        let mut next = tokio::time::Instant::now() + every;
        for cloud in chain.clouds.iter() {
            let Some(page) = &cloud.status_page else { continue };
            let now = tokio::time::Instant::now();
            let at = *due.entry(cloud.id.clone()).or_insert(now);
            if at > now {
                next = next.min(at);
                continue;
            }
            let verdict = crate::status_page::check(&http, page).await;
            let Some(inner) = weak.upgrade() else { return };
            let router = Router(inner);
            match verdict {
                Ok(v) => {
                    warned.remove(&cloud.id);
                    let incident = match v {
                        crate::status_page::Verdict::Incident(words) => Some(words),
                        crate::status_page::Verdict::Operational => None,
                    };
                    router.monitor().set_incident(&chain, &cloud.id, &cloud.label, incident);
                }
                // A broken or unreachable page changes nothing; say so once per streak.
                Err(e) => {
                    if warned.insert(cloud.id.clone()) {
                        tracing::warn!("status page of {} unreadable: {e}", cloud.label);
                    }
                }
            }
            let down = router.monitor().snapshot().providers.iter().any(|p| p.id == cloud.id && p.health == Health::Outage);
            let again = tokio::time::Instant::now() + if down { every / 5 } else { every };
            due.insert(cloud.id.clone(), again);
            next = next.min(again);
        }
        tokio::time::sleep_until(next).await;
    }
}

/// Probes each cloud provider when [`Policy::probe_in`](crate::policy::Policy::probe_in) says
/// so. Sleeps until the earliest one is due, but wakes on every health change: a breaker that
/// opens on real requests must be probed the moment its open time ends, not at the end of an
/// idle sleep computed while it was still closed.
async fn probe_loop(weak: Weak<Inner>) {
    let warmth = Arc::new(std::sync::Mutex::new(Warmth::default()));
    let Some(mut changes) = weak.upgrade().map(|inner| Router(inner).monitor().subscribe()) else { return };
    loop {
        let Some(inner) = weak.upgrade() else { return };
        let router = Router(inner);
        let chain = router.chain();
        let interval = chain.failover.probe_interval.max(Duration::from_millis(100));
        let mut sleep = interval;
        if chain.mode != Mode::LocalOnly {
            for cloud in chain.clouds.iter() {
                let Some(client) = &cloud.client else { continue };
                let due = router.monitor().probe_in(&cloud.id, &cloud.label, interval);
                if due > Duration::ZERO {
                    sleep = sleep.min(due);
                    continue;
                }
                let result = probe(client, &cloud.model).await;
                if let Err(e) = &result {
                    tracing::info!(provider = %cloud.id, "health probe failed: {}", e.describe());
                }
                let error = result.as_ref().err().map(understudy_openai::Error::summary);
                router.monitor().record(&chain, &cloud.id, &cloud.label, Outcome::Probe(result.is_ok()), error);
                sleep = sleep.min(router.monitor().probe_in(&cloud.id, &cloud.label, interval).max(Duration::from_millis(50)));
            }
        }
        prewarm(&router, &chain, &warmth);
        drop(router);
        // What this round published is seen; only later changes wake the loop early.
        changes.borrow_and_update();
        tokio::select! {
            () = tokio::time::sleep(sleep) => {}
            changed = changes.changed() => if changed.is_err() { return },
        }
    }
}

/// Pre-warm progress, shared with the task doing it.
#[derive(Debug, Default)]
struct Warmth {
    /// The `Router::warm_context` version in the cache (`Some(0)`: the model is loaded, no
    /// conversation remembered yet); `None` when nothing is warm.
    warm: Option<u64>,
    running: bool,
    /// Bumped when health recovers, so a pre-warm finishing after that does not count.
    epoch: u64,
}

/// Loads the offline model when the primary turns degraded or worse, and evaluates the
/// conversation most likely to continue into its KV cache, so a switch costs neither load time
/// nor the history's evaluation. Runs on its own task: a pre-warm queued behind a long local
/// answer must not hold up the probes.
fn prewarm(router: &Router, chain: &Chain, warmth: &Arc<std::sync::Mutex<Warmth>>) {
    let LocalModel::Ready { path, .. } = &chain.local else { return };
    let unhealthy = router.monitor().snapshot().providers.first().is_some_and(|p| p.health != Health::Healthy);
    let wanted = match chain.prewarm {
        Prewarm::Never => false,
        Prewarm::Always => true,
        Prewarm::OnDegraded => unhealthy && chain.mode == Mode::Auto,
    };
    let mut w = warmth.lock().expect("warmth lock");
    if !wanted {
        // Healthy again: the engine's idle unload frees the memory after a long healthy spell.
        if w.warm.take().is_some() || w.running {
            w.epoch += 1;
        }
        return;
    }
    let (version, messages) = router.warm_context();
    if w.running || w.warm == Some(version) {
        return;
    }
    w.running = true;
    let epoch = w.epoch;
    drop(w);
    let (engine, path, context, threads, warmth) = (router.engine().clone(), path.clone(), chain.context, chain.threads, warmth.clone());
    tokio::spawn(async move {
        tracing::info!(turns = messages.len(), "pre-warming the offline model {}", path.display());
        let result = if messages.is_empty() {
            engine.ensure_loaded(&path, context, threads).await
        } else {
            engine.prewarm(&path, context, threads, to_local(&messages)).await.map(|usage| {
                tracing::info!(evaluated = usage.prompt_evaluated, reused = usage.prompt_reused, "the conversation is in the offline model's cache");
            })
        };
        let mut w = warmth.lock().expect("warmth lock");
        w.running = false;
        match result {
            Ok(()) if w.epoch == epoch => w.warm = Some(version),
            Ok(()) => {}
            // An answer started: it needs the worker now; the next round warms what is left.
            Err(understudy_local::EngineError::GaveWay) => tracing::info!("the pre-warm gave way to an answer"),
            Err(e) => tracing::warn!("pre-warming the offline model failed: {e}"),
        }
    });
}
