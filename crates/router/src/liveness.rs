//! Whether a provider is still at work on a non-streamed answer. Nothing of such an answer
//! arrives before it is whole, so there is no first token or next chunk to wait for. Instead,
//! the provider proves it still answers by taking a 1-token check. The first check is sent
//! halfway through the first-token wait, and it must answer before that wait ends. A hung
//! provider is therefore given up at the same moment as a stream with no first token (one
//! whose check fails with an outage, at once, by the caller). A provider that passes a check
//! gets a stall timeout more, with the next check at its half. A pure state machine on the
//! caller's clock (time since the request was sent).

use std::time::Duration;

/// Why the provider was given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lapse {
    /// No check had passed: it is treated as a first token that never came.
    NoAnswer,
    /// A check had passed, then one did not: it stopped, as a stream that stalls.
    Stopped,
    /// It kept answering checks but not the request for [`LONGEST`].
    TooLong,
}

/// The longest an unstreamed answer is waited for while its provider keeps answering checks:
/// the official SDKs' own default timeout. A client that waits longer has chosen to, and
/// without an end the checks would go on for as long as it waits.
pub const LONGEST: Duration = Duration::from_secs(600);

/// What to do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Nothing until this time (or until the answer or a check's result comes).
    Wait(Duration),
    /// Send a check; its answer must come before the next step's time.
    Check,
    GiveUp(Lapse),
}

/// The watch over one non-streamed answer.
#[derive(Debug, Clone)]
pub struct Liveness {
    stall: Duration,
    /// When the answer is given up whatever the checks say ([`LONGEST`], or the first-token
    /// wait if that is longer).
    longest: Duration,
    /// When the provider must have shown it is alive again.
    deadline: Duration,
    check_at: Duration,
    checking: bool,
    passed: bool,
}

impl Liveness {
    /// `first_wait`: how long a first token may take; `stall`: the gap allowed between chunks.
    pub fn new(first_wait: Duration, stall: Duration) -> Liveness {
        Liveness { stall, longest: LONGEST.max(first_wait), deadline: first_wait, check_at: first_wait / 2, checking: false, passed: false }
    }

    /// What to do at `now`.
    pub fn step(&mut self, now: Duration) -> Step {
        if now >= self.deadline {
            return Step::GiveUp(if self.passed { Lapse::Stopped } else { Lapse::NoAnswer });
        }
        if now >= self.longest {
            return Step::GiveUp(Lapse::TooLong);
        }
        let wake = self.deadline.min(self.longest);
        if self.checking {
            return Step::Wait(wake);
        }
        if now >= self.check_at {
            self.checking = true;
            return Step::Check;
        }
        Step::Wait(self.check_at.min(wake))
    }

    /// A check was answered at `now` (even with an error of the request's own, such as a rate
    /// limit: only an outage is no answer, and the caller gives up on that at once).
    pub fn answered(&mut self, now: Duration) {
        self.checking = false;
        self.passed = true;
        self.deadline = now.saturating_add(self.stall);
        self.check_at = now.saturating_add(self.stall / 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIRST: Duration = Duration::from_secs(20);
    const STALL: Duration = Duration::from_secs(30);

    fn s(secs: f64) -> Duration {
        Duration::from_secs_f64(secs)
    }

    /// What happens, in order: (time, what the caller does or learns, the step it gets).
    enum Do {
        Step,
        Answered,
    }

    fn run(table: &[(f64, Do, Option<Step>)]) {
        let mut live = Liveness::new(FIRST, STALL);
        for (i, (at, what, want)) in table.iter().enumerate() {
            match what {
                Do::Step => assert_eq!(Some(live.step(s(*at))), *want, "row {i} at {at} s"),
                Do::Answered => live.answered(s(*at)),
            }
        }
    }

    #[test]
    fn a_quick_answer_needs_no_check() {
        run(&[(0.0, Do::Step, Some(Step::Wait(s(10.0)))), (9.9, Do::Step, Some(Step::Wait(s(10.0))))]);
    }

    #[test]
    fn a_hung_provider_is_given_up_when_a_first_token_would_have_been() {
        run(&[(10.0, Do::Step, Some(Step::Check)), (15.0, Do::Step, Some(Step::Wait(s(20.0)))), (20.0, Do::Step, Some(Step::GiveUp(Lapse::NoAnswer)))]);
    }

    #[test]
    fn a_long_answer_from_a_live_provider_is_waited_for_check_after_check() {
        run(&[
            (10.0, Do::Step, Some(Step::Check)),
            (10.5, Do::Answered, None),
            (10.5, Do::Step, Some(Step::Wait(s(25.5)))),
            (25.5, Do::Step, Some(Step::Check)),
            (26.0, Do::Answered, None),
            (40.0, Do::Step, Some(Step::Wait(s(41.0)))),
            (41.0, Do::Step, Some(Step::Check)),
            (41.5, Do::Answered, None),
            (71.5, Do::Step, Some(Step::GiveUp(Lapse::Stopped))),
        ]);
    }

    #[test]
    fn a_provider_that_stops_answering_checks_is_given_up_as_stopped() {
        run(&[
            (10.0, Do::Step, Some(Step::Check)),
            (11.0, Do::Answered, None),
            (26.0, Do::Step, Some(Step::Check)),
            (41.0, Do::Step, Some(Step::GiveUp(Lapse::Stopped))),
        ]);
    }

    #[test]
    fn a_provider_that_answers_checks_but_never_the_request_is_given_up_at_the_longest_wait() {
        let mut live = Liveness::new(FIRST, STALL);
        let mut now = Duration::ZERO;
        let mut checks = 0;
        let lapse = loop {
            match live.step(now) {
                Step::Wait(at) => now = at,
                Step::Check => {
                    checks += 1;
                    now += s(0.5);
                    live.answered(now);
                }
                Step::GiveUp(lapse) => break lapse,
            }
        };
        assert_eq!((lapse, now), (Lapse::TooLong, LONGEST));
        assert_eq!(checks, 39, "one at 10 s, then one every 15.5 s");
    }

    #[test]
    fn one_check_at_a_time() {
        run(&[(10.0, Do::Step, Some(Step::Check)), (10.0, Do::Step, Some(Step::Wait(s(20.0)))), (12.0, Do::Step, Some(Step::Wait(s(20.0))))]);
    }
}
