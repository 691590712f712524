//! The order of attempts for one answer (design.md section 3) as a pure state machine: no I/O,
//! no clock. `chat::answer` asks it what to do, carries the action out and feeds the outcome
//! back; what an attempt costs in time (a Retry-After) is an action's argument, never a sleep
//! here. Table-tested below.

use std::time::Duration;

use understudy_core::config::Mode;
use understudy_openai::FailureClass;

/// The longest Retry-After honoured by waiting (once per provider) rather than moving on.
pub const RETRY_AFTER_MAX: Duration = Duration::from_secs(2);

/// Why a cloud provider is passed over without a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// No key to send.
    NoKey,
    /// The stored key was saved for another host.
    KeyNeededForHost,
    /// Its breaker is open.
    Down,
}

/// What the plan knows of one answer before it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    pub mode: Mode,
    /// The request names one provider (`--provider`, a regenerate pinned to it).
    pub pinned: Option<Pinned>,
    /// The cloud providers this answer may ask, in chain order: `None` = sendable, or why not.
    pub clouds: Vec<Option<Skip>>,
    /// An offline model is installed and valid.
    pub local_ready: bool,
    /// The request holds something the offline model cannot take (`ChatRequest::offline_refusal`).
    pub offline_refused: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pinned {
    /// The offline model.
    Local,
    /// One cloud provider (already the only entry of `clouds`), or `Unknown` when none matched.
    Cloud,
    Unknown,
}

/// How one cloud attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Answered,
    Failed {
        class: FailureClass,
        /// Some text had already reached the client.
        mid_answer: bool,
        /// The cut was inside a tool call (never continued inside its JSON).
        in_tool_call: bool,
        retry_after: Option<Duration>,
    },
}

/// How the offline model takes over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// The whole answer.
    Fresh,
    /// Continues the cloud provider's partial text as a prefill.
    Continue,
    /// The cloud answer failed inside a tool call: the whole answer afresh, announced as a switch.
    Restart,
}

/// Which provider is to blame for what happens next (an index into `Facts::clouds`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    Skipped(usize, Skip),
    Failed(usize),
}

impl Blame {
    /// The provider whose request failed, if the blame is a failure rather than a skip.
    pub fn failed(self) -> Option<usize> {
        match self {
            Blame::Failed(i) => Some(i),
            Blame::Skipped(..) => None,
        }
    }

    pub fn index(self) -> usize {
        match self {
            Blame::Skipped(i, _) | Blame::Failed(i) => i,
        }
    }
}

/// Why no provider answers, when the plan gives up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unanswered {
    /// `pinned` named a provider the chain does not have.
    UnknownProvider,
    /// No cloud provider is configured and the offline model may not answer.
    NoCloud,
    /// The error of this provider (its request failure, or why it was skipped) ends the answer.
    /// `offer_model`: an outage with no offline model installed, where one would have answered.
    Error { blame: Blame, offer_model: bool },
    /// Nothing was tried and nothing can be.
    NothingToTry,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Send the request to cloud provider `i`, after waiting `wait` (a Retry-After).
    Ask { provider: usize, wait: Duration },
    /// Answer with the offline model; `blame` names who failed before it.
    Local { start: Start, blame: Option<Blame> },
    /// The offline model would answer, but cannot take this request: an error saying why.
    /// `mid_answer`: the provider to blame failed after text had reached the client.
    RefuseOffline { blame: Option<Blame>, mid_answer: bool },
    /// End with an error.
    GiveUp(Unanswered),
    /// The answer is complete.
    Finished,
}

/// One answer's plan; `start` once, then `next` after each `Ask`.
#[derive(Debug, Clone)]
pub struct Plan {
    facts: Facts,
    /// The provider being asked, and whether its Retry-After was already waited for.
    at: usize,
    retried: bool,
    blame: Option<Blame>,
    /// The last request failure was an outage (not an account or rate-limit problem).
    outage: bool,
}

impl Plan {
    pub fn new(facts: Facts) -> Plan {
        Plan { facts, at: 0, retried: false, blame: None, outage: false }
    }

    /// The offline model may take over after the clouds: automatic mode, nothing pinned.
    fn may_go_local(&self) -> bool {
        self.facts.mode == Mode::Auto && self.facts.pinned.is_none()
    }

    /// Who is to blame so far: the last provider that failed, else the first one skipped.
    pub fn blame(&self) -> Option<Blame> {
        self.blame
    }

    pub fn start(&mut self) -> Action {
        if self.facts.mode == Mode::LocalOnly || self.facts.pinned == Some(Pinned::Local) {
            if self.facts.offline_refused {
                return Action::RefuseOffline { blame: None, mid_answer: false };
            }
            return Action::Local { start: Start::Fresh, blame: None };
        }
        if self.facts.clouds.is_empty() {
            return Action::GiveUp(if self.facts.pinned.is_some() { Unanswered::UnknownProvider } else { Unanswered::NoCloud });
        }
        self.at = 0;
        self.advance()
    }

    /// After the `Ask` the plan gave last, what its outcome leads to.
    pub fn next(&mut self, outcome: Outcome) -> Action {
        let i = self.at;
        let Outcome::Failed { class, mid_answer, in_tool_call, retry_after } = outcome else {
            return Action::Finished;
        };
        if mid_answer {
            if self.may_go_local() && self.facts.local_ready {
                let blame = Some(Blame::Failed(i));
                if self.facts.offline_refused {
                    return Action::RefuseOffline { blame, mid_answer: true };
                }
                return Action::Local { start: if in_tool_call { Start::Restart } else { Start::Continue }, blame };
            }
            return Action::GiveUp(Unanswered::Error { blame: Blame::Failed(i), offer_model: false });
        }
        match class {
            FailureClass::Request => Action::GiveUp(Unanswered::Error { blame: Blame::Failed(i), offer_model: false }),
            FailureClass::RateLimit if !self.retried && retry_after.is_some_and(|d| d <= RETRY_AFTER_MAX) => {
                self.retried = true;
                Action::Ask { provider: i, wait: retry_after.unwrap_or_default() }
            }
            _ => {
                self.blame = Some(Blame::Failed(i));
                self.outage = class == FailureClass::Outage;
                self.at += 1;
                self.advance()
            }
        }
    }

    /// The next provider that can be asked from `self.at` on, noting those skipped; after the
    /// last one, the offline model or the end.
    fn advance(&mut self) -> Action {
        while let Some(&skip) = self.facts.clouds.get(self.at) {
            match skip {
                None => {
                    self.retried = false;
                    return Action::Ask { provider: self.at, wait: Duration::ZERO };
                }
                // The first reason to skip explains the failover; a real failure replaces it.
                Some(why) => {
                    self.blame.get_or_insert(Blame::Skipped(self.at, why));
                }
            }
            self.at += 1;
        }
        if self.may_go_local() && self.facts.local_ready {
            if self.facts.offline_refused {
                return Action::RefuseOffline { blame: self.blame, mid_answer: false };
            }
            return Action::Local { start: Start::Fresh, blame: self.blame };
        }
        match self.blame {
            Some(blame) => {
                // An outage the offline model would have covered, had one been installed.
                let outage = match blame {
                    Blame::Failed(_) => self.outage,
                    Blame::Skipped(_, skip) => skip == Skip::Down,
                };
                Action::GiveUp(Unanswered::Error { blame, offer_model: self.may_go_local() && outage })
            }
            None => Action::GiveUp(Unanswered::NothingToTry),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action::*;
    use FailureClass::*;

    fn facts(clouds: Vec<Option<Skip>>, local_ready: bool) -> Facts {
        Facts { mode: Mode::Auto, pinned: None, clouds, local_ready, offline_refused: false }
    }

    fn fail(class: FailureClass) -> Outcome {
        Outcome::Failed { class, mid_answer: false, in_tool_call: false, retry_after: None }
    }

    fn cut(in_tool_call: bool) -> Outcome {
        Outcome::Failed { class: Outage, mid_answer: true, in_tool_call, retry_after: None }
    }

    fn limited(secs: u64) -> Outcome {
        Outcome::Failed { class: RateLimit, mid_answer: false, in_tool_call: false, retry_after: Some(Duration::from_secs(secs)) }
    }

    fn ask(provider: usize) -> Action {
        Ask { provider, wait: Duration::ZERO }
    }

    /// Runs a plan: the first action, then each outcome in turn; returns every action.
    fn run(facts: Facts, outcomes: &[Outcome]) -> Vec<Action> {
        let mut plan = Plan::new(facts);
        let mut actions = vec![plan.start()];
        for &o in outcomes {
            assert!(matches!(actions.last(), Some(Ask { .. })), "an outcome after {:?}", actions.last());
            actions.push(plan.next(o));
        }
        actions
    }

    #[test]
    fn the_order_of_attempts() {
        let down = Some(Skip::Down);
        let no_key = Some(Skip::NoKey);
        let local = |start, blame| Local { start, blame };
        let error = |blame, offer_model| GiveUp(Unanswered::Error { blame, offer_model });
        #[rustfmt::skip]
        let table: Vec<(&str, Facts, Vec<Outcome>, Vec<Action>)> = vec![
            ("the primary answers", facts(vec![None, None], true), vec![Outcome::Answered], vec![ask(0), Finished]),
            ("an outage before the first token moves to the next provider at once",
                facts(vec![None, None], true), vec![fail(Outage), Outcome::Answered], vec![ask(0), ask(1), Finished]),
            ("every cloud fails: the offline model answers, blaming the last",
                facts(vec![None, None], true), vec![fail(Outage), fail(Account)], vec![ask(0), ask(1), local(Start::Fresh, Some(Blame::Failed(1)))]),
            ("an open breaker is skipped without a request",
                facts(vec![down, None], true), vec![Outcome::Answered], vec![ask(1), Finished]),
            ("all skipped: the first reason explains the failover",
                facts(vec![no_key, down], true), vec![], vec![local(Start::Fresh, Some(Blame::Skipped(0, Skip::NoKey)))]),
            ("a real failure explains it rather than a skip before it",
                facts(vec![no_key, None], true), vec![fail(Outage)], vec![ask(1), local(Start::Fresh, Some(Blame::Failed(1)))]),
            ("a bad request is not failed over",
                facts(vec![None, None], true), vec![fail(Request)], vec![ask(0), error(Blame::Failed(0), false)]),
            ("a short Retry-After is waited for once",
                facts(vec![None, None], true), vec![limited(2), Outcome::Answered], vec![ask(0), Ask { provider: 0, wait: Duration::from_secs(2) }, Finished]),
            ("a second rate limit moves on",
                facts(vec![None, None], true), vec![limited(1), limited(1)], vec![ask(0), Ask { provider: 0, wait: Duration::from_secs(1) }, ask(1)]),
            ("each provider gets its own wait",
                facts(vec![None, None], true), vec![limited(1), limited(1), limited(1)],
                vec![ask(0), Ask { provider: 0, wait: Duration::from_secs(1) }, ask(1), Ask { provider: 1, wait: Duration::from_secs(1) }]),
            ("a long Retry-After is not waited for",
                facts(vec![None], true), vec![limited(3)], vec![ask(0), local(Start::Fresh, Some(Blame::Failed(0)))]),
            ("a cut answer is continued offline",
                facts(vec![None, None], true), vec![cut(false)], vec![ask(0), local(Start::Continue, Some(Blame::Failed(0)))]),
            ("a cut inside a tool call is restarted whole",
                facts(vec![None], true), vec![cut(true)], vec![ask(0), local(Start::Restart, Some(Blame::Failed(0)))]),
            ("a cut answer without an offline model is an error, not a retry elsewhere",
                facts(vec![None, None], false), vec![cut(false)], vec![ask(0), error(Blame::Failed(0), false)]),
            ("an outage without an offline model offers one",
                facts(vec![None], false), vec![fail(Outage)], vec![ask(0), error(Blame::Failed(0), true)]),
            ("an account problem without an offline model does not",
                facts(vec![None], false), vec![fail(Account)], vec![ask(0), error(Blame::Failed(0), false)]),
            ("a provider skipped as down, no offline model: offers one",
                facts(vec![down], false), vec![], vec![error(Blame::Skipped(0, Skip::Down), true)]),
            ("no key, no offline model: the key is the problem",
                facts(vec![no_key], false), vec![], vec![error(Blame::Skipped(0, Skip::NoKey), false)]),
            ("no cloud provider at all", facts(vec![], true), vec![], vec![GiveUp(Unanswered::NoCloud)]),
        ];
        for (name, facts, outcomes, expected) in table {
            assert_eq!(run(facts, &outcomes), expected, "{name}");
        }
    }

    #[test]
    fn modes_and_pins() {
        let refused = |f: Facts| Facts { offline_refused: true, ..f };
        let mode = |mode, f: Facts| Facts { mode, ..f };
        let pinned = |p, f: Facts| Facts { pinned: Some(p), ..f };
        #[rustfmt::skip]
        let table: Vec<(&str, Facts, Vec<Outcome>, Vec<Action>)> = vec![
            ("local only never asks a cloud", mode(Mode::LocalOnly, facts(vec![None], true)), vec![], vec![Local { start: Start::Fresh, blame: None }]),
            ("pinned to the offline model", pinned(Pinned::Local, facts(vec![None], true)), vec![], vec![Local { start: Start::Fresh, blame: None }]),
            ("local only, a request it cannot take", refused(mode(Mode::LocalOnly, facts(vec![None], true))), vec![],
                vec![RefuseOffline { blame: None, mid_answer: false }]),
            ("cloud only never answers locally", mode(Mode::CloudOnly, facts(vec![None], true)), vec![fail(Outage)],
                vec![ask(0), GiveUp(Unanswered::Error { blame: Blame::Failed(0), offer_model: false })]),
            ("a pinned cloud provider is the only one asked", pinned(Pinned::Cloud, facts(vec![None], true)), vec![fail(Outage)],
                vec![ask(0), GiveUp(Unanswered::Error { blame: Blame::Failed(0), offer_model: false })]),
            ("a pinned provider the chain does not have", pinned(Pinned::Unknown, facts(vec![], true)), vec![], vec![GiveUp(Unanswered::UnknownProvider)]),
            ("failover with a request the offline model cannot take", refused(facts(vec![None], true)), vec![fail(Outage)],
                vec![ask(0), RefuseOffline { blame: Some(Blame::Failed(0)), mid_answer: false }]),
            ("a cut answer the offline model cannot take", refused(facts(vec![None], true)), vec![cut(false)],
                vec![ask(0), RefuseOffline { blame: Some(Blame::Failed(0)), mid_answer: true }]),
            ("skipped, then refused offline: no provider failed", refused(facts(vec![Some(Skip::Down)], true)), vec![],
                vec![RefuseOffline { blame: Some(Blame::Skipped(0, Skip::Down)), mid_answer: false }]),
        ];
        for (name, facts, outcomes, expected) in table {
            assert_eq!(run(facts, &outcomes), expected, "{name}");
        }
    }
}
