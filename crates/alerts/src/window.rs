//! When the window closed to the tray lets go of its web view: after `release_after` hidden, so a
//! quick reopen stays instant while a day in the tray costs only the Rust process. Pure: callers
//! pass `now` on their own clock and do what [`Release::check`] says.

use std::time::Duration;

/// What to do with the hidden window's web view now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Nothing to do: shown, or already released.
    Keep,
    /// Hidden, not long enough yet: check again after this.
    Wait(Duration),
    /// Hidden for the grace period: destroy the web view (once).
    Release,
}

/// The window's life between shown, hidden and released.
#[derive(Debug, Clone)]
pub struct Release {
    grace: Duration,
    hidden_since: Option<Duration>,
}

impl Release {
    pub fn new(grace: Duration) -> Self {
        Release { grace, hidden_since: None }
    }

    /// The window was hidden (closed to the tray). Hiding it again keeps the first time.
    pub fn hidden(&mut self, now: Duration) {
        self.hidden_since.get_or_insert(now);
    }

    /// The window is shown (or rebuilt): nothing is due.
    pub fn shown(&mut self) {
        self.hidden_since = None;
    }

    /// Whether the web view goes now; `Release` is said once per hiding.
    pub fn check(&mut self, now: Duration) -> Step {
        let Some(since) = self.hidden_since else { return Step::Keep };
        let due = since.saturating_add(self.grace);
        if now >= due {
            self.hidden_since = None;
            Step::Release
        } else {
            Step::Wait(due - now)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    enum Do {
        Hide(u64),
        Show,
        Check(u64, Step),
    }

    #[test]
    fn releases_once_after_the_grace_period_unless_shown_again() {
        let s = Duration::from_secs;
        use Do::*;
        let cases: Vec<(&str, Vec<Do>)> = vec![
            ("never hidden", vec![Check(100, Step::Keep)]),
            ("hidden, before the grace", vec![Hide(10), Check(10, Step::Wait(s(30))), Check(39, Step::Wait(s(1)))]),
            ("hidden past the grace: once", vec![Hide(10), Check(40, Step::Release), Check(41, Step::Keep), Check(999, Step::Keep)]),
            ("shown within the grace", vec![Hide(10), Show, Check(40, Step::Keep)]),
            ("a second hide keeps the first time", vec![Hide(10), Hide(30), Check(40, Step::Release)]),
            ("shown, hidden again: a new grace", vec![Hide(10), Show, Hide(35), Check(40, Step::Wait(s(25))), Check(65, Step::Release)]),
            (
                "released, shown (rebuilt), hidden",
                vec![Hide(0), Check(30, Step::Release), Show, Hide(100), Check(129, Step::Wait(s(1))), Check(130, Step::Release)],
            ),
            ("a clock that saturates", vec![Hide(u64::MAX), Check(u64::MAX, Step::Wait(Duration::MAX - s(u64::MAX)))]),
        ];
        for (name, steps) in cases {
            let mut r = Release::new(s(30));
            for step in steps {
                match step {
                    Hide(t) => r.hidden(s(t)),
                    Show => r.shown(),
                    Check(t, want) => assert_eq!(r.check(s(t)), want, "{name} at {t}s"),
                }
            }
        }
    }
}
