use super::*;
use understudy_core::health::ProviderHealth;

fn snap(health: Health, breaker: Breaker, local: bool) -> HealthSnapshot {
    let route = match (breaker, local) {
        (Breaker::Closed, _) => "openai",
        (_, true) => "local",
        (_, false) => "none",
    };
    HealthSnapshot {
        mode: Mode::Auto,
        route: route.into(),
        local_model: local.then(|| "qwen2.5-1.5b".to_string()),
        providers: vec![ProviderHealth {
            id: "openai".into(),
            label: "OpenAI".into(),
            model: "gpt-4o-mini".into(),
            key_problem: None,
            health,
            breaker,
            since: 0,
            last_error: (health != Health::Healthy).then(|| "OpenAI could not be reached".to_string()),
            account_problem: None,
            answered_since_close: breaker == Breaker::Closed,
        }],
    }
}
fn healthy() -> HealthSnapshot {
    snap(Health::Healthy, Breaker::Closed, true)
}
fn degraded() -> HealthSnapshot {
    snap(Health::Degraded, Breaker::Closed, true)
}
fn outage() -> HealthSnapshot {
    snap(Health::Outage, Breaker::Open { until_ms: 0 }, true)
}
fn s(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

fn notifier() -> Notifier {
    Notifier::new(NotifierConfig { enabled: true, recovery_after: s(120), reopen_window: s(600) })
}

/// Feeds (time, snapshot) and returns (time, slot, replace, summary) of every notice.
fn run(n: &mut Notifier, steps: &[(u64, HealthSnapshot)]) -> Vec<(u64, Slot, bool, String)> {
    steps.iter().flat_map(|(t, sn)| n.update(s(*t), sn).into_iter().map(move |x| (*t, x.slot, x.replace, x.summary))).collect()
}

#[test]
fn an_outage_and_its_recovery_are_told_once_each() {
    let mut n = notifier();
    let mut steps = vec![(0, healthy()), (10, degraded()), (20, outage())];
    // A long outage: snapshots keep coming for an hour.
    steps.extend((1..60).map(|m| (20 + m * 60, outage())));
    steps.extend([(3700, healthy()), (3760, healthy()), (3820, healthy()), (4000, healthy())]);
    assert_eq!(
        run(&mut n, &steps),
        [
            (20, Slot::Outage, false, "OpenAI is unreachable (OpenAI could not be reached)".to_string()),
            (3820, Slot::Recovery, false, "OpenAI is back".to_string()),
        ]
    );
}

#[test]
fn single_errors_and_degraded_spells_are_never_notified() {
    let mut n = notifier();
    assert!(run(&mut n, &[(0, healthy()), (5, degraded()), (30, healthy()), (40, degraded()), (400, healthy())]).is_empty());
}

#[test]
fn a_flap_is_one_outage_and_a_reopen_soon_after_recovery_updates_it_in_place() {
    let mut n = notifier();
    let got = run(
        &mut n,
        &[
            (0, outage()),
            (30, healthy()), // closed, but not for 2 min
            (60, outage()),  // flap: still the same outage
            (90, healthy()),
            (300, healthy()), // 210 s closed: recovered
            (500, outage()),  // within 10 min of the recovery: update in place
            (2000, healthy()),
            (2200, healthy()),
            (4000, outage()), // long after: a new notification
        ],
    );
    let got: Vec<_> = got.iter().map(|(t, slot, replace, _)| (*t, *slot, *replace)).collect();
    assert_eq!(
        got,
        [(0, Slot::Outage, false), (300, Slot::Recovery, false), (500, Slot::Outage, true), (2200, Slot::Recovery, false), (4000, Slot::Outage, false)]
    );
}

#[test]
fn recovery_waits_for_a_real_answer() {
    let mut n = notifier();
    let mut closed_no_answer = healthy();
    closed_no_answer.providers[0].answered_since_close = false;
    let got = run(&mut n, &[(0, outage()), (10, closed_no_answer.clone()), (200, closed_no_answer), (210, healthy())]);
    assert_eq!(got.iter().map(|(t, slot, ..)| (*t, *slot)).collect::<Vec<_>>(), [(0, Slot::Outage), (210, Slot::Recovery)]);
}

#[test]
fn an_account_problem_is_told_once_pointing_to_settings() {
    let mut n = notifier();
    let mut bad_key = healthy();
    bad_key.providers[0].account_problem = Some("OpenAI rejected the API key (401)".into());
    let got = run(&mut n, &[(0, bad_key.clone()), (10, bad_key.clone()), (20, bad_key.clone()), (30, healthy()), (40, bad_key)]);
    assert_eq!(
        got.iter().map(|(t, slot, _, summary)| (*t, *slot, summary.as_str())).collect::<Vec<_>>(),
        [(0, Slot::Account, "OpenAI needs attention in Settings"), (40, Slot::Account, "OpenAI needs attention in Settings")]
    );
    let mut n = notifier();
    let mut bad = healthy();
    bad.providers[0].account_problem = Some("the OpenAI account has no quota left (429)".into());
    let notices = n.update(s(0), &bad);
    assert_eq!(notices[0].body, "the OpenAI account has no quota left (429). Meanwhile the offline model answers when one is installed.");
    assert_eq!(notices[0].opens, Some(Page::Settings));
    assert_eq!((Page::Settings.name(), Page::Settings.action_label()), ("settings", "Open Settings"));
}

#[test]
fn without_an_offline_model_the_outage_offers_a_download() {
    let mut n = notifier();
    let notices = n.update(s(0), &snap(Health::Outage, Breaker::Open { until_ms: 0 }, false));
    assert_eq!(notices.len(), 1);
    assert_eq!(notices[0].opens, Some(Page::Models));
    assert_eq!((Page::Models.name(), Page::Models.action_label()), ("models", "Download a model"));
    assert!(notices[0].body.starts_with("No offline model is installed"));
    let notices = Notifier::new(NotifierConfig { enabled: true, recovery_after: s(120), reopen_window: s(600) }).update(s(0), &outage());
    assert_eq!((notices[0].opens, notices[0].body.as_str()), (None, "Answering with qwen2.5-1.5b until it is back."));
}

#[test]
fn notifications_can_be_turned_off() {
    let mut n = Notifier::new(NotifierConfig { enabled: false, recovery_after: s(120), reopen_window: s(600) });
    assert!(run(&mut n, &[(0, outage()), (500, healthy()), (700, healthy())]).is_empty());
}

#[test]
fn the_tray_shows_worse_news_at_once_and_holds_a_colour_before_flipping_back() {
    let mut i = Indicator::new(s(60));
    let steps = [
        (0, healthy(), Some(TrayState::Healthy)),
        (10, outage(), Some(TrayState::Outage)),
        (15, healthy(), None), // flapping: red is held
        (20, outage(), None),
        (25, healthy(), None),
        (69, healthy(), None),
        (70, healthy(), Some(TrayState::Healthy)), // 60 s after red: green
        (80, degraded(), Some(TrayState::Degraded)),
        (90, snap(Health::Outage, Breaker::Open { until_ms: 0 }, false), Some(TrayState::Nothing)),
    ];
    for (t, sn, expect) in steps {
        assert_eq!(i.update(s(t), &sn), expect, "at {t}s");
    }
    assert_eq!(i.next_check(s(100)), Some(s(50)));
    let mut local = healthy();
    local.mode = Mode::LocalOnly;
    local.route = "local".into();
    assert_eq!(i.update(s(100), &local), Some(TrayState::LocalOnly), "the user's mode choice shows at once");
}

#[test]
fn the_state_in_words() {
    let clock = |_ms: u64| "14:02".to_string();
    assert_eq!(words(TrayState::Healthy, &healthy(), &clock), "OpenAI is healthy — answering with OpenAI");
    assert_eq!(words(TrayState::Outage, &outage(), &clock), "OpenAI unreachable since 14:02 — answering with qwen2.5-1.5b");
    assert_eq!(words(TrayState::Degraded, &degraded(), &clock), "OpenAI degraded since 14:02 (OpenAI could not be reached)");
    let none = snap(Health::Outage, Breaker::Open { until_ms: 0 }, false);
    assert_eq!(words(state_of(&none), &none, &clock), "Nothing can answer: OpenAI is down since 14:02 and no offline model is installed");
}

#[test]
fn the_retry_item_names_the_primary() {
    assert_eq!(retry_words(&healthy()), "Retry OpenAI now");
    let mut groq_first = chain((Health::Healthy, false), (Health::Healthy, false), true);
    groq_first.providers.swap(0, 1);
    assert_eq!(retry_words(&groq_first), "Retry Groq now");
}

/// A chain of OpenAI (primary) and Groq (backup): each (health, breaker open), and whether an
/// offline model is installed; the route is where the monitor would send the next request.
fn chain(primary: (Health, bool), backup: (Health, bool), local: bool) -> HealthSnapshot {
    let p = |id: &str, label: &str, (health, open): (Health, bool)| ProviderHealth {
        id: id.into(),
        label: label.into(),
        model: "m".into(),
        key_problem: None,
        health,
        breaker: if open { Breaker::Open { until_ms: 0 } } else { Breaker::Closed },
        since: 0,
        last_error: (health != Health::Healthy).then(|| format!("{label} could not be reached")),
        account_problem: None,
        answered_since_close: !open,
    };
    let route = match (primary.1, backup.1, local) {
        (false, _, _) => "openai",
        (true, false, _) => "groq",
        (true, true, true) => "local",
        (true, true, false) => "none",
    };
    HealthSnapshot {
        mode: Mode::Auto,
        route: route.into(),
        local_model: local.then(|| "qwen2.5-1.5b".to_string()),
        providers: vec![p("openai", "OpenAI", primary), p("groq", "Groq", backup)],
    }
}

#[test]
fn the_tray_speaks_of_the_chain_red_only_when_the_offline_model_answers() {
    let clock = |_ms: u64| "14:02".to_string();
    let (up, down, shaky) = ((Health::Healthy, false), (Health::Outage, true), (Health::Degraded, false));
    let table = [
        (chain(up, up, true), TrayState::Healthy, "OpenAI is healthy — answering with OpenAI"),
        (chain(up, down, true), TrayState::Healthy, "OpenAI is healthy — answering with OpenAI"),
        (chain(shaky, up, true), TrayState::Degraded, "OpenAI degraded since 14:02 (OpenAI could not be reached)"),
        (chain(down, up, true), TrayState::Backup, "OpenAI unreachable since 14:02 — answering with Groq"),
        (chain(down, shaky, false), TrayState::Backup, "OpenAI unreachable since 14:02 — answering with Groq"),
        (chain(down, down, true), TrayState::Outage, "OpenAI unreachable since 14:02 — answering with qwen2.5-1.5b"),
        (chain(down, down, false), TrayState::Nothing, "Nothing can answer: OpenAI is down since 14:02 and no offline model is installed"),
    ];
    for (snapshot, state, text) in table {
        assert_eq!(state_of(&snapshot), state, "{snapshot:?}");
        assert_eq!(words(state, &snapshot, &clock), text);
    }
    // Amber for a backup, red for the offline model, whichever came first.
    let mut i = Indicator::new(s(60));
    assert_eq!(i.update(s(0), &chain(up, up, true)), Some(TrayState::Healthy));
    assert_eq!(i.update(s(1), &chain(down, up, true)), Some(TrayState::Backup));
    assert_eq!(i.update(s(2), &chain(down, down, true)), Some(TrayState::Outage));
    assert_eq!(i.update(s(3), &chain(down, up, true)), None, "red is held before going back to amber");
}

#[test]
fn one_notice_per_primary_outage_naming_who_took_over_and_none_for_a_flapping_backup() {
    let (up, down) = ((Health::Healthy, false), (Health::Outage, true));
    let mut n = notifier();
    // The backup flaps while the primary is healthy: nothing to tell.
    let flaps: Vec<_> = (0..10).map(|t| (t * 10, if t % 2 == 0 { chain(up, down, true) } else { chain(up, up, true) })).collect();
    assert!(run(&mut n, &flaps).is_empty());
    // The primary goes down, Groq takes over; then Groq fails too and the offline model answers;
    // then Groq is back: still the one outage.
    let notices = n.update(s(200), &chain(down, up, true));
    assert_eq!(notices.len(), 1);
    assert_eq!(
        (notices[0].summary.as_str(), notices[0].body.as_str()),
        ("OpenAI is unreachable (OpenAI could not be reached)", "Answering with Groq until it is back.")
    );
    assert!(run(&mut n, &[(210, chain(down, down, true)), (220, chain(down, up, true)), (230, chain(down, down, true))]).is_empty());
    let back = run(&mut n, &[(300, chain(up, up, true)), (500, chain(up, up, true))]);
    assert_eq!(back, [(500, Slot::Recovery, false, "OpenAI is back".to_string())]);
    // With Groq down already, the offline model takes over.
    let mut n = notifier();
    assert_eq!(n.update(s(0), &chain(down, down, true))[0].body, "Answering with qwen2.5-1.5b until it is back.");
}

#[test]
fn who_wrote_an_answer_in_words() {
    use understudy_core::turn::{Because, FailoverReason};
    let b = |label: &str, reason| Because { provider: label.to_lowercase(), label: label.into(), reason };
    assert_eq!(answered_by("OpenAI", "gpt-4o-mini", None), "OpenAI · gpt-4o-mini");
    assert_eq!(answered_by("Groq", "llama-3.3-70b", Some(&b("OpenAI", FailoverReason::TimedOut))), "Groq · llama-3.3-70b, because OpenAI timed out");
    assert_eq!(
        answered_by("Local model", "qwen2.5-1.5b", Some(&b("Groq", FailoverReason::Unreachable))),
        "Local model · qwen2.5-1.5b, because Groq was unreachable"
    );
    assert_eq!(reason_words(&b("OpenAI", FailoverReason::Down)), "OpenAI is down");
    assert_eq!(reason_words(&b("Groq", FailoverReason::KeyNeededForHost)), "Groq needs its key for a new host");
}
