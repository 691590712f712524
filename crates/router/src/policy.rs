//! The failover policy of design.md section 3 as one pure state machine: no I/O, no clock of
//! its own. Callers feed it outcomes with the time (`now`, any monotonic offset) and ask it
//! whether to use the provider and how healthy it is. Table-tested on a fake clock below.

use std::collections::VecDeque;
use std::time::Duration;

use understudy_core::config::FailoverConfig;
pub use understudy_core::health::{Breaker, Health};
use understudy_openai::FailureClass;

#[derive(Debug, Clone, PartialEq)]
pub struct PolicyConfig {
    pub consecutive_failures: u32,
    pub failure_rate: f64,
    pub window: u32,
    pub open_for: Duration,
    pub open_for_max: Duration,
    /// A first token slower than this marks the provider degraded.
    pub slow_first_token: Duration,
    /// How long a failure or a slow first token keeps the provider degraded.
    pub degraded_for: Duration,
    /// ± share of the open time, so many clients do not probe in lockstep.
    pub jitter: f64,
}

impl PolicyConfig {
    pub fn from_config(f: &FailoverConfig) -> PolicyConfig {
        PolicyConfig {
            consecutive_failures: f.consecutive_failures.max(1),
            failure_rate: f.failure_rate,
            window: f.window.max(1),
            open_for: f.open_for,
            open_for_max: f.open_for_max.max(f.open_for),
            slow_first_token: f.first_token_timeout / 2,
            degraded_for: Duration::from_secs(120),
            jitter: 0.1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome {
    /// A request answered; `first_token` when it streamed.
    Success {
        first_token: Option<Duration>,
    },
    Failure(FailureClass),
    /// A health probe (`GET /models`, then a 1-token completion) passed or failed.
    Probe(bool),
}

#[derive(Debug, Clone)]
pub struct Policy {
    cfg: PolicyConfig,
    breaker: Breaker,
    /// Outage failures count 1, rate limits ½.
    consecutive: f64,
    /// The last `window` request outcomes as failure weights (0, ½ or 1).
    recent: VecDeque<f64>,
    /// Openings since the breaker last stayed closed for `open_for_max`.
    opens: u32,
    closed_at: Duration,
    health_since: Duration,
    last_health: Health,
    last_trouble: Option<Duration>,
    incident: bool,
    /// When a request or probe last told us something (idle probes count from here).
    last_seen: Option<Duration>,
    /// Probe failures in a row: the next probe comes sooner (5 s, 10 s, …) until decided.
    probe_failures: u32,
    rng: u64,
}

/// Milliseconds of a duration, saturating: config durations are bounded, but a clock must
/// never wrap whatever it is fed.
fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Policy {
    pub fn new(cfg: PolicyConfig, seed: u64) -> Policy {
        Policy {
            cfg,
            breaker: Breaker::Closed,
            consecutive: 0.0,
            recent: VecDeque::new(),
            opens: 0,
            closed_at: Duration::ZERO,
            health_since: Duration::ZERO,
            last_health: Health::Healthy,
            last_trouble: None,
            incident: false,
            last_seen: None,
            probe_failures: 0,
            rng: seed | 1,
        }
    }

    pub fn breaker(&self) -> Breaker {
        self.breaker
    }

    /// Whether a request may use this provider now. An open breaker whose time is up turns
    /// half-open: requests still skip it while probes decide.
    pub fn allows(&mut self, now: Duration) -> bool {
        self.tick(now);
        matches!(self.breaker, Breaker::Closed)
    }

    /// Whether a probe should run now: the breaker is half-open.
    fn wants_probe(&mut self, now: Duration) -> bool {
        self.tick(now);
        matches!(self.breaker, Breaker::HalfOpen { .. })
    }

    /// How long until the provider should be probed (zero = now). Half-open: at once. Open: the
    /// moment the open time ends, whatever `interval` is (so OpenAI is used again as soon as the
    /// breaker allows), or sooner at the idle cadence (a probe that passes ends the wait early).
    /// Otherwise after `interval` without any request or probe; after a failed probe sooner
    /// (5 s, 10 s, 20 s, … up to `interval`) until the breaker has decided.
    pub fn probe_in(&mut self, now: Duration, interval: Duration) -> Duration {
        if self.wants_probe(now) {
            return Duration::ZERO;
        }
        let wait = match self.probe_failures {
            0 => interval,
            n => Duration::from_secs(5).saturating_mul(2u32.saturating_pow(n.min(31) - 1)).min(interval),
        };
        let idle = self.last_seen.map_or(Duration::ZERO, |t| t.saturating_add(wait).saturating_sub(now));
        match self.breaker {
            Breaker::Open { until_ms } => Duration::from_millis(until_ms).saturating_sub(now).min(idle),
            _ => idle,
        }
    }

    fn tick(&mut self, now: Duration) {
        if let Breaker::Open { until_ms } = self.breaker {
            if ms(now) >= until_ms {
                self.breaker = Breaker::HalfOpen { successes: 0 };
            }
        }
        self.update_health(now);
    }

    /// An open breaker turns half-open at once (the user pressed "Retry OpenAI now").
    pub fn force_half_open(&mut self, now: Duration) {
        if let Breaker::Open { .. } = self.breaker {
            self.breaker = Breaker::HalfOpen { successes: 0 };
        }
        self.update_health(now);
    }

    /// A status-page incident on the API component: degraded, never open on its own.
    pub fn set_incident(&mut self, now: Duration, incident: bool) {
        self.incident = incident;
        self.update_health(now);
    }

    pub fn record(&mut self, now: Duration, outcome: Outcome) {
        self.tick(now);
        self.last_seen = Some(now);
        match outcome {
            Outcome::Probe(false) => self.probe_failures = self.probe_failures.saturating_add(1),
            Outcome::Probe(true) | Outcome::Success { .. } => self.probe_failures = 0,
            Outcome::Failure(_) => {}
        }
        match outcome {
            Outcome::Success { first_token } => {
                self.consecutive = 0.0;
                self.push(0.0);
                if first_token.is_some_and(|t| t > self.cfg.slow_first_token) {
                    self.last_trouble = Some(now);
                }
                // A real answer while half-open counts like a passed probe.
                if let Breaker::HalfOpen { .. } = self.breaker {
                    self.probe_passed(now);
                }
            }
            Outcome::Failure(class) => self.fail(now, class),
            Outcome::Probe(true) => match self.breaker {
                Breaker::HalfOpen { .. } => self.probe_passed(now),
                // A probe that passes while open ends the wait early: the provider is back
                // before `open_for` ran out (long outages double it up to open_for_max), and
                // one more passing probe closes the breaker.
                Breaker::Open { .. } => self.breaker = Breaker::HalfOpen { successes: 1 },
                Breaker::Closed => self.consecutive = 0.0,
            },
            Outcome::Probe(false) => self.fail(now, FailureClass::Outage),
        }
        self.update_health(now);
    }

    fn fail(&mut self, now: Duration, class: FailureClass) {
        let weight = match class {
            FailureClass::Outage => 1.0,
            FailureClass::RateLimit => 0.5,
            // Configuration or request problems say nothing about the provider's health.
            FailureClass::Account | FailureClass::Request => return,
        };
        self.last_trouble = Some(now);
        self.consecutive += weight;
        self.push(weight);
        match self.breaker {
            Breaker::Closed if self.should_open() => self.open(now),
            Breaker::HalfOpen { .. } => self.open(now),
            _ => {}
        }
    }

    fn probe_passed(&mut self, now: Duration) {
        if let Breaker::HalfOpen { successes } = self.breaker {
            if successes + 1 >= 2 {
                self.breaker = Breaker::Closed;
                self.closed_at = now;
                self.consecutive = 0.0;
                self.recent.clear();
                // Verified by two probes: green at once (the tray's hold keeps it from blinking).
                self.last_trouble = None;
            } else {
                self.breaker = Breaker::HalfOpen { successes: successes + 1 };
            }
        }
    }

    fn push(&mut self, weight: f64) {
        self.recent.push_back(weight);
        while self.recent.len() > self.cfg.window as usize {
            self.recent.pop_front();
        }
    }

    fn should_open(&self) -> bool {
        if self.consecutive >= f64::from(self.cfg.consecutive_failures) {
            return true;
        }
        let n = self.recent.len();
        n >= 4 && self.recent.iter().sum::<f64>() / n as f64 >= self.cfg.failure_rate
    }

    fn open(&mut self, now: Duration) {
        // A breaker that stayed closed long enough starts again from `open_for`.
        if self.opens > 0 && matches!(self.breaker, Breaker::Closed) && now.saturating_sub(self.closed_at) >= self.cfg.open_for_max {
            self.opens = 0;
        }
        self.opens += 1;
        let base = self.cfg.open_for.as_secs_f64() * 2f64.powi(self.opens.saturating_sub(1).min(30) as i32);
        let base = base.min(self.cfg.open_for_max.as_secs_f64());
        // Jitter only shortens the wait: the open time never exceeds its nominal value, so the
        // provider is tried again at most `open_for` (doubled, capped) after it failed.
        let jitter = 1.0 - self.cfg.jitter * self.random();
        // `as` saturates a float to the integer's range.
        self.breaker = Breaker::Open { until_ms: ms(now).saturating_add((base * jitter * 1000.0) as u64) };
    }

    /// xorshift64*: deterministic per seed, enough for jitter.
    fn random(&mut self) -> f64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        (self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn health(&self, now: Duration) -> Health {
        match self.breaker {
            Breaker::Open { .. } | Breaker::HalfOpen { .. } => Health::Outage,
            Breaker::Closed if self.incident || self.last_trouble.is_some_and(|t| now.saturating_sub(t) < self.cfg.degraded_for) => Health::Degraded,
            Breaker::Closed => Health::Healthy,
        }
    }

    /// When the current health began.
    pub fn since(&self) -> Duration {
        self.health_since
    }

    fn update_health(&mut self, now: Duration) {
        let h = self.health(now);
        if h != self.last_health {
            self.last_health = h;
            self.health_since = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use FailureClass::*;

    fn cfg() -> PolicyConfig {
        PolicyConfig {
            consecutive_failures: 3,
            failure_rate: 0.5,
            window: 10,
            open_for: Duration::from_secs(30),
            open_for_max: Duration::from_secs(300),
            slow_first_token: Duration::from_secs(10),
            degraded_for: Duration::from_secs(120),
            jitter: 0.0,
        }
    }

    /// One step of a table: at `t` seconds, this outcome; then the expected health and breaker.
    enum Step {
        At(u64, Outcome),
        Incident(u64, bool),
        Expect(u64, Health, Breaker, bool),
        /// At `t` seconds the next probe is due in this many seconds (default `probe_interval`).
        NextProbe(u64, u64),
    }
    use Step::*;

    /// The default `probe_interval`.
    const PROBE_INTERVAL: Duration = Duration::from_secs(60);

    fn ok() -> Outcome {
        Outcome::Success { first_token: Some(Duration::from_millis(300)) }
    }
    fn fail(c: FailureClass) -> Outcome {
        Outcome::Failure(c)
    }
    fn open(until_s: u64) -> Breaker {
        Breaker::Open { until_ms: until_s * 1000 }
    }

    fn check(name: &str, steps: &[Step]) {
        let mut p = Policy::new(cfg(), 7);
        for (i, step) in steps.iter().enumerate() {
            match step {
                At(t, o) => p.record(Duration::from_secs(*t), *o),
                Incident(t, on) => p.set_incident(Duration::from_secs(*t), *on),
                Expect(t, health, breaker, allows) => {
                    let now = Duration::from_secs(*t);
                    assert_eq!(p.allows(now), *allows, "{name}: step {i}: allows");
                    assert_eq!((p.health(now), p.breaker()), (*health, *breaker), "{name}: step {i}");
                }
                NextProbe(t, secs) => {
                    let due = p.probe_in(Duration::from_secs(*t), PROBE_INTERVAL);
                    assert_eq!(due, Duration::from_secs(*secs), "{name}: step {i}: next probe");
                }
            }
        }
    }

    #[test]
    fn the_failover_policy_table() {
        check("healthy traffic stays closed", &[At(0, ok()), At(1, ok()), Expect(2, Health::Healthy, Breaker::Closed, true)]);
        check(
            "one outage failure is degraded, not open",
            &[At(0, fail(Outage)), Expect(1, Health::Degraded, Breaker::Closed, true), Expect(121, Health::Healthy, Breaker::Closed, true)],
        );
        check(
            "three consecutive outage failures open for open_for",
            &[
                At(0, fail(Outage)),
                At(1, fail(Outage)),
                At(2, fail(Outage)),
                Expect(3, Health::Outage, open(32), false),
                Expect(31, Health::Outage, open(32), false),
            ],
        );
        check(
            "a success in between resets the consecutive count",
            &[
                At(0, ok()),
                At(0, ok()),
                At(0, ok()),
                At(0, ok()),
                At(0, fail(Outage)),
                At(1, fail(Outage)),
                At(2, ok()),
                At(3, fail(Outage)),
                Expect(4, Health::Degraded, Breaker::Closed, true),
            ],
        );
        check(
            "failure rate over the window opens (min 4 samples)",
            &[At(0, ok()), At(1, fail(Outage)), At(2, ok()), At(3, fail(Outage)), Expect(4, Health::Outage, open(33), false)],
        );
        check(
            "rate limits count half",
            &[
                At(0, ok()),
                At(1, ok()),
                At(2, fail(RateLimit)),
                At(3, fail(RateLimit)),
                At(4, fail(RateLimit)),
                Expect(5, Health::Degraded, Breaker::Closed, true),
                At(5, fail(RateLimit)),
                At(6, fail(RateLimit)),
                At(7, fail(RateLimit)),
                Expect(8, Health::Outage, open(37), false),
            ],
        );
        check(
            "account and request errors never count",
            &[At(0, fail(Account)), At(1, fail(Account)), At(2, fail(Request)), At(3, fail(Account)), Expect(4, Health::Healthy, Breaker::Closed, true)],
        );
        check(
            "after open_for it is half-open; two probe successes close it",
            &[
                At(0, fail(Outage)),
                At(0, fail(Outage)),
                At(0, fail(Outage)),
                Expect(30, Health::Outage, Breaker::HalfOpen { successes: 0 }, false),
                At(30, Outcome::Probe(true)),
                Expect(31, Health::Outage, Breaker::HalfOpen { successes: 1 }, false),
                At(31, Outcome::Probe(true)),
                Expect(32, Health::Healthy, Breaker::Closed, true),
            ],
        );
        check(
            "a failed probe re-opens for twice as long, capped at open_for_max",
            &[
                At(0, fail(Outage)),
                At(0, fail(Outage)),
                At(0, fail(Outage)),
                At(30, Outcome::Probe(false)),
                Expect(31, Health::Outage, open(90), false),
                At(90, Outcome::Probe(false)),
                Expect(91, Health::Outage, open(210), false),
                At(210, Outcome::Probe(false)),
                At(450, Outcome::Probe(false)),
                Expect(451, Health::Outage, open(750), false),
                At(750, Outcome::Probe(false)),
                Expect(751, Health::Outage, open(1050), false),
            ],
        );
        check(
            "a probe that passes while open ends the wait early; one more closes; a failing one changes nothing",
            &[
                At(0, fail(Outage)),
                At(0, fail(Outage)),
                At(0, fail(Outage)),
                At(10, Outcome::Probe(false)),
                Expect(11, Health::Outage, open(30), false),
                At(20, Outcome::Probe(true)),
                Expect(20, Health::Outage, Breaker::HalfOpen { successes: 1 }, false),
                At(21, Outcome::Probe(true)),
                Expect(21, Health::Healthy, Breaker::Closed, true),
            ],
        );
        check(
            "a status-page incident degrades but never opens",
            &[Incident(0, true), Expect(1, Health::Degraded, Breaker::Closed, true), Incident(2, false), Expect(3, Health::Healthy, Breaker::Closed, true)],
        );
        check(
            "a slow first token degrades",
            &[At(0, Outcome::Success { first_token: Some(Duration::from_secs(12)) }), Expect(1, Health::Degraded, Breaker::Closed, true)],
        );
        check(
            "a real success while half-open counts as a probe",
            &[At(0, fail(Outage)), At(0, fail(Outage)), At(0, fail(Outage)), At(31, ok()), At(32, ok()), Expect(33, Health::Healthy, Breaker::Closed, true)],
        );
    }

    /// When OpenAI comes back while its breaker is open, it is used again at the latest when the
    /// open time ends (probed at once then), whatever the idle probe cadence.
    #[test]
    fn the_probe_schedule_table() {
        check(
            "default probe_interval: an idle healthy provider is probed every 60 s",
            &[At(0, Outcome::Probe(true)), NextProbe(0, 60), NextProbe(59, 1), NextProbe(60, 0), At(5, ok()), NextProbe(6, 59)],
        );
        check(
            "a breaker opened by requests is probed the moment its open time ends, not at the idle cadence",
            &[
                At(0, Outcome::Probe(true)),
                At(10, fail(Outage)),
                At(11, fail(Outage)),
                At(12, fail(Outage)),
                NextProbe(12, 30),
                NextProbe(41, 1),
                NextProbe(42, 0),
                Expect(42, Health::Outage, Breaker::HalfOpen { successes: 0 }, false),
                At(42, Outcome::Probe(true)),
                NextProbe(42, 0),
                At(42, Outcome::Probe(true)),
                Expect(42, Health::Healthy, Breaker::Closed, true),
            ],
        );
        check(
            "recovery during a long open time: failed probes back off (5, 10, 20, 40 s), the end of the open time still probes",
            &[
                At(0, fail(Outage)),
                At(0, fail(Outage)),
                At(0, fail(Outage)),
                At(30, Outcome::Probe(false)),
                Expect(30, Health::Outage, open(90), false),
                NextProbe(30, 5),
                At(35, Outcome::Probe(false)),
                NextProbe(35, 10),
                At(45, Outcome::Probe(false)),
                NextProbe(45, 20),
                At(65, Outcome::Probe(false)),
                // The idle cadence would say 40 s; the open time ends in 25.
                NextProbe(65, 25),
                Expect(70, Health::Outage, open(90), false),
                // OpenAI recovered at 70: the probe at 90, when the open time ends, passes.
                NextProbe(90, 0),
                At(90, Outcome::Probe(true)),
                NextProbe(90, 0),
                At(90, Outcome::Probe(true)),
                Expect(90, Health::Healthy, Breaker::Closed, true),
            ],
        );
        check(
            "recovery right after a re-open: the next probe comes 5 s later, not after the doubled open time",
            &[
                At(0, fail(Outage)),
                At(0, fail(Outage)),
                At(0, fail(Outage)),
                At(30, Outcome::Probe(false)),
                Expect(31, Health::Outage, open(90), false),
                NextProbe(31, 4),
                At(35, Outcome::Probe(true)),
                Expect(35, Health::Outage, Breaker::HalfOpen { successes: 1 }, false),
                NextProbe(35, 0),
                At(35, Outcome::Probe(true)),
                Expect(35, Health::Healthy, Breaker::Closed, true),
            ],
        );
        check(
            "a flapping provider: each re-open soon after closing doubles the open time, so users mostly stay on the fallback",
            &[
                At(0, fail(Outage)),
                At(0, fail(Outage)),
                At(0, fail(Outage)),
                At(30, Outcome::Probe(true)),
                At(30, Outcome::Probe(true)),
                Expect(30, Health::Healthy, Breaker::Closed, true),
                At(31, fail(Outage)),
                At(32, fail(Outage)),
                At(33, fail(Outage)),
                Expect(34, Health::Outage, open(93), false),
                NextProbe(34, 59),
                At(93, Outcome::Probe(true)),
                At(93, Outcome::Probe(true)),
                At(94, fail(Outage)),
                At(95, fail(Outage)),
                At(96, fail(Outage)),
                Expect(97, Health::Outage, open(216), false),
                Expect(215, Health::Outage, open(216), false),
                // Closed for open_for_max (300 s): the next outage starts from open_for again.
                At(216, Outcome::Probe(true)),
                At(216, Outcome::Probe(true)),
                At(600, fail(Outage)),
                At(600, fail(Outage)),
                At(600, fail(Outage)),
                Expect(601, Health::Outage, open(630), false),
            ],
        );
    }

    #[test]
    fn clock_arithmetic_saturates_on_huge_open_times() {
        let huge = Duration::from_secs(u64::MAX / 4);
        let mut p = Policy::new(PolicyConfig { open_for: huge, open_for_max: huge, ..cfg() }, 3);
        for _ in 0..3 {
            p.record(Duration::from_secs(10), fail(Outage));
        }
        assert!(matches!(p.breaker(), Breaker::Open { until_ms: u64::MAX }), "{:?}", p.breaker());
        assert!(p.probe_in(Duration::from_secs(20), huge) > Duration::from_secs(3600), "no wrapped clock: probed much later, not now");
        assert!(!p.allows(Duration::from_secs(20)));
        for t in 21..60 {
            p.record(Duration::from_secs(t), Outcome::Probe(false));
        }
        // 39 failed probes: the back-off saturates at its ceiling instead of overflowing.
        assert!(p.probe_in(Duration::from_secs(60), huge) > Duration::from_secs(3600));
        // A clock far beyond any open time: half-open, probed at once.
        assert_eq!(p.probe_in(Duration::from_secs(u64::MAX / 2), huge), Duration::ZERO);
    }

    #[test]
    fn open_time_has_jitter_within_ten_percent() {
        let mut seen = std::collections::BTreeSet::new();
        for seed in 0..50 {
            let mut p = Policy::new(PolicyConfig { jitter: 0.1, ..cfg() }, seed);
            for _ in 0..3 {
                p.record(Duration::ZERO, fail(Outage));
            }
            let Breaker::Open { until_ms } = p.breaker() else { panic!("open") };
            assert!((27_000..=30_000).contains(&until_ms), "never longer than open_for: {until_ms}");
            seen.insert(until_ms / 100);
        }
        assert!(seen.len() > 10, "jitter spreads the probes: {seen:?}");
    }

    #[test]
    fn health_since_tracks_changes() {
        let mut p = Policy::new(cfg(), 1);
        p.record(Duration::from_secs(5), fail(Outage));
        assert_eq!(p.since(), Duration::from_secs(5));
        p.record(Duration::from_secs(6), ok());
        assert_eq!(p.since(), Duration::from_secs(5), "still degraded");
        assert!(p.allows(Duration::from_secs(200)));
        assert_eq!((p.health(Duration::from_secs(200)), p.since()), (Health::Healthy, Duration::from_secs(200)));
    }
}
