//! What the tray shows and when to notify, as pure policy over the router's health snapshots:
//! no I/O, no clock of its own (callers pass `now`), so sequences of snapshots can be checked on
//! a fake clock. `src-tauri` only draws what [`Indicator`] says and sends what [`Notifier`] says.

use std::time::Duration;

pub mod icon;
pub mod window;

use serde::Serialize;
use understudy_core::config::Mode;
use understudy_core::health::{Breaker, Health, HealthSnapshot, Route};
use understudy_core::turn::{Because, FailoverReason};

/// The tray states of design.md section 3, for the chain: the primary provider's health and
/// who answers now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TrayState {
    /// Green: the primary answers.
    Healthy,
    /// Amber: recent errors, slow first tokens or a status-page incident on the primary.
    Degraded,
    /// Amber: the primary is down; a backup cloud provider answers.
    Backup,
    /// Red: the primary is down and the offline model answers.
    Outage,
    /// Grey: nothing can answer.
    Nothing,
    /// Blue: local only, by choice.
    LocalOnly,
}

impl TrayState {
    /// Worse states are shown at once; better ones wait for the hold.
    fn severity(self) -> u8 {
        match self {
            TrayState::Healthy | TrayState::LocalOnly => 0,
            TrayState::Degraded => 1,
            TrayState::Backup => 2,
            TrayState::Outage => 3,
            TrayState::Nothing => 4,
        }
    }
}

/// The state a snapshot calls for, ignoring the hold.
pub fn state_of(s: &HealthSnapshot) -> TrayState {
    if s.mode == Mode::LocalOnly {
        return if s.local_model.is_some() { TrayState::LocalOnly } else { TrayState::Nothing };
    }
    let primary = s.providers.first();
    let backup_answers = match &s.route {
        Route::Nothing => return TrayState::Nothing,
        Route::Provider(id) => primary.is_some_and(|p| &p.id != id),
        Route::Local => false,
    };
    match primary.map(|p| p.health) {
        _ if s.route == Route::Local => TrayState::Outage,
        // The primary is down, or cannot be used (no key), and another cloud answers.
        _ if backup_answers => TrayState::Backup,
        Some(Health::Outage) => TrayState::Outage,
        Some(Health::Degraded) => TrayState::Degraded,
        _ => TrayState::Healthy,
    }
}

/// The name of who answers now (`route`): a provider's label, or the offline model's name.
fn route_label(s: &HealthSnapshot) -> String {
    match s.providers.iter().find(|p| s.route.is_provider(&p.id)) {
        Some(p) => p.label.clone(),
        None => s.local_model.clone().unwrap_or_else(|| "the offline model".to_string()),
    }
}

/// What the tray shows: the state, and in words what, since when and who answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrayView {
    pub state: TrayState,
    pub words: String,
}

/// The tray menu's probe item, naming the primary provider ("Retry Groq now").
pub fn retry_words(s: &HealthSnapshot) -> String {
    format!("Retry {} now", s.providers.first().map_or("OpenAI", |p| p.label.as_str()))
}

/// `since` is a unix-ms timestamp; `clock` turns it into "14:02" (injected for tests).
pub fn words(state: TrayState, s: &HealthSnapshot, clock: &dyn Fn(u64) -> String) -> String {
    let primary = s.providers.first();
    let label = primary.map_or("OpenAI", |p| p.label.as_str());
    let since = primary.map(|p| clock(p.since)).unwrap_or_default();
    let model = s.local_model.as_deref().unwrap_or("the offline model");
    match state {
        TrayState::Healthy => format!("{label} is healthy — answering with {label}"),
        TrayState::Degraded => {
            let why = primary.and_then(|p| p.last_error.as_deref()).map(|e| format!(" ({e})")).unwrap_or_default();
            format!("{label} degraded since {since}{why}")
        }
        TrayState::Backup | TrayState::Outage => format!("{label} unreachable since {since} — answering with {}", route_label(s)),
        TrayState::Nothing if s.mode == Mode::LocalOnly => "Local only, but no offline model is installed".to_string(),
        TrayState::Nothing => format!("Nothing can answer: {label} is down since {since} and no offline model is installed"),
        TrayState::LocalOnly => format!("Local only — answering with {model}"),
    }
}

/// The tray indicator: worse news is shown at once; a colour is held at least `hold` before
/// flipping back, so a flapping upstream does not blink.
#[derive(Debug, Clone)]
pub struct Indicator {
    hold: Duration,
    shown: Option<(TrayState, Duration)>,
    mode: Option<Mode>,
}

impl Indicator {
    pub fn new(hold: Duration) -> Indicator {
        Indicator { hold, shown: None, mode: None }
    }

    /// The state to show now for this snapshot (call again on every snapshot and from a timer:
    /// a held state is released by time alone). Returns Some only when it changes.
    pub fn update(&mut self, now: Duration, s: &HealthSnapshot) -> Option<TrayState> {
        let wanted = state_of(s);
        let mode_changed = self.mode.replace(s.mode) != Some(s.mode);
        let show = match self.shown {
            None => true,
            Some((shown, _)) if shown == wanted => false,
            // The user changed the mode: their choice shows at once.
            _ if mode_changed => true,
            Some((shown, _)) if wanted.severity() > shown.severity() => true,
            Some((_, at)) => now.saturating_sub(at) >= self.hold,
        };
        if show {
            self.shown = Some((wanted, now));
            Some(wanted)
        } else {
            None
        }
    }

    /// When a held state could next be released (for the caller's timer).
    pub fn next_check(&self, now: Duration) -> Option<Duration> {
        self.shown.map(|(_, at)| at.saturating_add(self.hold).saturating_sub(now))
    }

    pub fn shown(&self) -> Option<TrayState> {
        self.shown.map(|(s, _)| s)
    }
}

/// Which notification a message is: one slot each, so a later one can replace it in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Slot {
    Outage,
    Recovery,
    Account,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notice {
    pub slot: Slot,
    /// Replace the notification last shown in this slot (same id) instead of adding one.
    pub replace: bool,
    pub summary: String,
    pub body: String,
    /// Where a click takes the user, with a button for it where the notification server shows
    /// actions: the model library ("Download a model") or Settings. `None`: the window as it was.
    pub opens: Option<Page>,
}

/// A page of the window a notification can open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "kebab-case")]
pub enum Page {
    Models,
    Settings,
}

impl Page {
    /// The page's name: the notification action's key and what the window is asked to show.
    pub fn name(self) -> &'static str {
        match self {
            Page::Models => "models",
            Page::Settings => "settings",
        }
    }

    /// The notification button's label.
    pub fn action_label(self) -> &'static str {
        match self {
            Page::Models => "Download a model",
            Page::Settings => "Open Settings",
        }
    }
}

#[derive(Debug, Clone)]
pub struct NotifierConfig {
    pub enabled: bool,
    /// "OpenAI is back" only after the breaker stayed closed this long (and an answer succeeded).
    pub recovery_after: Duration,
    /// An outage starting again within this of the last one updates its notification in place.
    pub reopen_window: Duration,
}

/// Notifications people trust: one when an outage starts, one when it is over, one per account
/// problem; none for single errors.
#[derive(Debug, Clone)]
pub struct Notifier {
    cfg: NotifierConfig,
    /// In an announced outage since this time.
    outage: Option<Duration>,
    /// When the breaker last closed after an announced outage (recovery pending).
    closed_at: Option<Duration>,
    /// When the last announced outage was over (announced or not yet).
    last_outage_end: Option<Duration>,
    account_told: Option<String>,
}

impl Notifier {
    pub fn new(cfg: NotifierConfig) -> Notifier {
        Notifier { cfg, outage: None, closed_at: None, last_outage_end: None, account_told: None }
    }

    /// Feed every snapshot (and a periodic tick with the latest one): the notices to send now.
    pub fn update(&mut self, now: Duration, s: &HealthSnapshot) -> Vec<Notice> {
        let mut out = Vec::new();
        if s.mode == Mode::LocalOnly {
            // Local by choice: OpenAI's health is not the user's concern now.
            self.outage = None;
            self.closed_at = None;
            return out;
        }
        let Some(p) = s.providers.first() else { return out };
        let open = matches!(p.breaker, Breaker::Open { .. } | Breaker::HalfOpen { .. });
        if open {
            self.closed_at = None;
            if self.outage.is_none() {
                self.outage = Some(now);
                let again = self.last_outage_end.is_some_and(|t| now.saturating_sub(t) < self.cfg.reopen_window);
                let (body, opens) = match (&s.route, &s.local_model) {
                    (Route::Nothing, _) | (Route::Local, None) => {
                        ("No offline model is installed, so nothing can answer. Download one to keep working.".to_string(), Some(Page::Models))
                    }
                    // Who took over: a backup cloud provider or the offline model.
                    _ => (format!("Answering with {} until it is back.", route_label(s)), None),
                };
                let what = p.last_error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default();
                out.push(Notice {
                    slot: Slot::Outage,
                    replace: again,
                    summary: format!("{} is unreachable{}{what}", p.label, if again { " again" } else { "" }),
                    body,
                    opens,
                });
            }
        } else if self.outage.is_some() {
            let closed_at = *self.closed_at.get_or_insert(now);
            if now.saturating_sub(closed_at) >= self.cfg.recovery_after && p.answered_since_close {
                self.outage = None;
                self.closed_at = None;
                self.last_outage_end = Some(now);
                out.push(Notice {
                    slot: Slot::Recovery,
                    replace: false,
                    summary: format!("{} is back", p.label),
                    body: format!("Answers come from {} again.", p.label),
                    opens: None,
                });
            }
        }
        match &p.account_problem {
            Some(problem) if self.account_told.as_ref() != Some(problem) => {
                self.account_told = Some(problem.clone());
                out.push(Notice {
                    slot: Slot::Account,
                    replace: true,
                    summary: format!("{} needs attention in Settings", p.label),
                    body: format!("{problem}. Meanwhile the offline model answers when one is installed."),
                    opens: Some(Page::Settings),
                });
            }
            None => self.account_told = None,
            _ => {}
        }
        if !self.cfg.enabled {
            out.clear();
        }
        out
    }
}

/// Who wrote an answer and why, for the window's badge and the CLI: "Groq · llama-3.3-70b,
/// because OpenAI timed out". Built from the router's typed data, never parsed from words.
pub fn answered_by(label: &str, model: &str, because: Option<&Because>) -> String {
    match because {
        Some(b) => format!("{label} · {model}, because {}", reason_words(b)),
        None => format!("{label} · {model}"),
    }
}

/// Why the provider before did not answer, in a few words ("OpenAI timed out").
pub fn reason_words(b: &Because) -> String {
    let who = &b.label;
    match b.reason {
        FailoverReason::TimedOut => format!("{who} timed out"),
        FailoverReason::Stalled => format!("{who} stopped sending"),
        FailoverReason::Unreachable => format!("{who} was unreachable"),
        FailoverReason::ServerError => format!("{who} had a server error"),
        FailoverReason::RateLimited => format!("{who} was rate-limiting"),
        FailoverReason::AccountProblem => format!("{who} refused the account or key"),
        FailoverReason::CutOff => format!("{who} cut the answer off"),
        FailoverReason::BadStream => format!("{who} sent a broken answer"),
        FailoverReason::Down => format!("{who} is down"),
        FailoverReason::NoKey => format!("{who} has no API key"),
        FailoverReason::KeyNeededForHost => format!("{who} needs its key for a new host"),
        FailoverReason::Failed => format!("{who} failed"),
    }
}

#[cfg(test)]
mod tests;
