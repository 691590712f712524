//! The health monitor: one [`Policy`] per cloud provider, fed by every request, the probes
//! and the status page, published as a `watch` of [`HealthSnapshot`] that the tray, the
//! notifier, the UI and `GET /understudy/status` subscribe to. Nobody polls the router.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;
use tokio::time::Instant;
use understudy_core::config::Mode;

use crate::chain::{Chain, LocalModel};
use crate::policy::{Outcome, Policy, PolicyConfig};
pub use understudy_core::health::{Breaker, Health, HealthSnapshot, ProviderHealth, Route};

#[derive(Debug)]
struct Entry {
    label: String,
    policy: Policy,
    last_error: Option<String>,
    account_problem: Option<String>,
    answered_since_close: bool,
}

#[derive(Debug)]
pub struct Monitor {
    start: Instant,
    start_unix_ms: u64,
    cfg: Mutex<PolicyConfig>,
    entries: Mutex<HashMap<String, Entry>>,
    tx: watch::Sender<HealthSnapshot>,
}

fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl Monitor {
    pub fn new(chain: &Chain, cfg: PolicyConfig) -> Monitor {
        let empty = HealthSnapshot { mode: chain.mode, providers: Vec::new(), route: Route::Nothing, local_model: None };
        let (tx, _) = watch::channel(empty);
        let m = Monitor { start: Instant::now(), start_unix_ms: unix_ms(), cfg: Mutex::new(cfg), entries: Mutex::default(), tx };
        m.publish(chain);
        m
    }

    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    pub fn subscribe(&self) -> watch::Receiver<HealthSnapshot> {
        self.tx.subscribe()
    }

    pub fn snapshot(&self) -> HealthSnapshot {
        self.tx.borrow().clone()
    }

    /// Takes a new chain and policy settings; providers that stay keep their state.
    pub fn reconfigure(&self, chain: &Chain, cfg: PolicyConfig) {
        *self.cfg.lock().expect("cfg lock") = cfg;
        self.entries.lock().expect("entries lock").retain(|id, _| chain.cloud(id).is_some());
        self.publish(chain);
    }

    fn with<T>(&self, id: &str, label: &str, f: impl FnOnce(&mut Entry, Duration) -> T) -> T {
        let mut entries = self.entries.lock().expect("entries lock");
        let entry = entries.entry(id.to_string()).or_insert_with(|| {
            // Seeded per provider and run, so two providers (or two apps) do not probe in step.
            let seed = self.start_unix_ms ^ id.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
            Entry {
                label: label.to_string(),
                policy: Policy::new(self.cfg.lock().expect("cfg lock").clone(), seed),
                last_error: None,
                account_problem: None,
                answered_since_close: true,
            }
        });
        f(entry, self.now())
    }

    /// Whether requests may use the provider now (its breaker is closed).
    pub fn allows(&self, id: &str, label: &str) -> bool {
        self.with(id, label, |e, now| e.policy.allows(now))
    }

    pub fn record(&self, chain: &Chain, id: &str, label: &str, outcome: Outcome, error: Option<String>) {
        self.with(id, label, |e, now| {
            let was_closed = e.policy.breaker() == Breaker::Closed;
            e.policy.record(now, outcome);
            match (was_closed, e.policy.breaker() == Breaker::Closed) {
                (true, false) => e.answered_since_close = false,
                (_, true) if matches!(outcome, Outcome::Success { .. }) || (!was_closed && matches!(outcome, Outcome::Probe(true))) => {
                    e.answered_since_close = true
                }
                _ => {}
            }
            match outcome {
                Outcome::Failure(understudy_openai::FailureClass::Account) => e.account_problem = error.clone(),
                Outcome::Success { .. } => e.account_problem = None,
                _ => {}
            }
            if error.is_some() {
                e.last_error = error;
            }
        });
        self.publish(chain);
    }

    /// The status page's word on the provider: an incident marks it degraded, never open.
    pub fn set_incident(&self, chain: &Chain, id: &str, label: &str, incident: Option<String>) {
        self.with(id, label, |e, now| {
            e.policy.set_incident(now, incident.is_some());
            if let Some(words) = incident {
                e.last_error = Some(format!("status page: {words}"));
            }
        });
        self.publish(chain);
    }

    /// The user asked to retry: an open breaker turns half-open now.
    pub fn force_half_open(&self, id: &str, label: &str) {
        self.with(id, label, |e, now| e.policy.force_half_open(now));
    }

    /// How long until the provider should be probed (zero = now); see [`Policy::probe_in`].
    pub fn probe_in(&self, id: &str, label: &str, interval: Duration) -> Duration {
        self.with(id, label, |e, now| e.policy.probe_in(now, interval))
    }

    /// Recomputes the snapshot and tells subscribers if it changed.
    pub fn publish(&self, chain: &Chain) {
        let now = self.now();
        let providers: Vec<ProviderHealth> = chain
            .clouds
            .iter()
            .map(|c| {
                self.with(&c.id, &c.label, |e, _| {
                    // Lets an open breaker whose time is up show as half-open.
                    e.policy.allows(now);
                    ProviderHealth {
                        id: c.id.clone(),
                        label: e.label.clone(),
                        model: c.model.clone(),
                        key_problem: c.key_problem.clone(),
                        health: e.policy.health(now),
                        breaker: e.policy.breaker(),
                        since: self.start_unix_ms + e.policy.since().as_millis() as u64,
                        last_error: e.last_error.clone(),
                        account_problem: e.account_problem.clone(),
                        answered_since_close: e.answered_since_close,
                    }
                })
            })
            .collect();
        let local_model = match &chain.local {
            LocalModel::Ready { name, .. } => Some(name.clone()),
            _ => None,
        };
        let cloud_route = chain.clouds.iter().zip(&providers).find(|(c, p)| c.client.is_some() && p.breaker == Breaker::Closed).map(|(c, _)| c.id.clone());
        let route = match (chain.mode, cloud_route, &local_model) {
            (Mode::LocalOnly, _, Some(_)) => Route::Local,
            (Mode::LocalOnly, _, None) => Route::Nothing,
            (_, Some(id), _) => Route::Provider(id),
            (Mode::Auto, None, Some(_)) => Route::Local,
            _ => Route::Nothing,
        };
        let snapshot = HealthSnapshot { mode: chain.mode, providers, route, local_model };
        self.tx.send_if_modified(|s| {
            if *s == snapshot {
                false
            } else {
                *s = snapshot;
                true
            }
        });
    }
}

/// Calls `send` with the current snapshot, then with every change, until `send` returns false
/// (the window went away) or the router is gone.
pub async fn forward(mut rx: watch::Receiver<HealthSnapshot>, mut send: impl FnMut(HealthSnapshot) -> bool) {
    loop {
        let snapshot = rx.borrow_and_update().clone();
        if !send(snapshot) || rx.changed().await.is_err() {
            return;
        }
    }
}
