use std::time::Duration;

use understudy_store::{AnswerEnd, ErrorClass, NextAction, Provenance, Role, Status, Store, StreamingMessage};

fn by(provider: &str) -> Provenance {
    Provenance { provider: Some(provider.into()), model: Some("m".into()), failover_reason: None }
}

#[test]
fn conversations_messages_and_settings_round_trip() {
    let s = Store::open_in_memory().unwrap();
    let a = s.create_conversation("First").unwrap();
    let b = s.create_conversation("Second").unwrap();
    s.add_message(a.id, Role::User, "hello").unwrap();
    assert_eq!(s.conversations().unwrap()[0].id, a.id, "most recently active first");
    s.rename_conversation(b.id, "Renamed").unwrap();
    s.set_system_prompt(b.id, Some("Be terse.")).unwrap();
    s.set_conversation_model(b.id, Some("gpt-4o")).unwrap();
    let b2 = s.conversation(b.id).unwrap();
    assert_eq!((b2.title.as_str(), b2.system_prompt.as_deref(), b2.model.as_deref()), ("Renamed", Some("Be terse."), Some("gpt-4o")));
    let mut m = StreamingMessage::begin(&s, a.id, &by("openai")).unwrap();
    m.push(&s, "Hi ").unwrap();
    m.push(&s, "there").unwrap();
    let end = AnswerEnd {
        status: Status::Complete,
        error: None,
        error_class: None,
        next_action: None,
        prompt_tokens: Some(5),
        completion_tokens: Some(2),
        first_token_ms: Some(300),
        total_ms: Some(900),
        by: Provenance { provider: Some("local".into()), model: Some("gemma".into()), failover_reason: Some("OpenAI stalled".into()) },
        parts: vec![
            understudy_store::Part { provider: "openai".into(), model: "gpt-4o-mini".into(), start: 0 },
            understudy_store::Part { provider: "local".into(), model: "gemma".into(), start: 3 },
        ],
        left_out: Some(4),
    };
    m.finish(&s, &end).unwrap();
    let msgs = s.messages(a.id).unwrap();
    assert_eq!(msgs.last().unwrap().left_out, Some(4));
    assert_eq!(msgs.last().unwrap().parts.iter().map(|p| (p.provider.as_str(), p.start)).collect::<Vec<_>>(), [("openai", 0), ("local", 3)]);
    assert_eq!(msgs.len(), 2);
    assert_eq!((msgs[0].role.as_str(), msgs[0].status), ("user", Status::Complete));
    let ans = &msgs[1];
    assert_eq!(
        (ans.content.as_str(), ans.status, ans.provider.as_deref(), ans.failover_reason.as_deref()),
        ("Hi there", Status::Complete, Some("local"), Some("OpenAI stalled"))
    );
    assert_eq!((ans.completion_tokens, ans.first_token_ms), (Some(2), Some(300)));
    assert_eq!(s.setting("mode").unwrap(), None);
    s.set_setting("mode", "auto").unwrap();
    s.set_setting("mode", "local-only").unwrap();
    assert_eq!(s.setting("mode").unwrap().as_deref(), Some("local-only"));
    assert!(s.remove_setting("mode").unwrap());
    assert_eq!(s.setting("mode").unwrap(), None);
    assert!(!s.remove_setting("mode").unwrap());
    assert!(s.rename_conversation(999, "x").is_err());
}

#[test]
fn a_failed_answer_keeps_its_class_and_next_action() {
    let s = Store::open_in_memory().unwrap();
    let c = s.create_conversation("Offline").unwrap();
    s.add_message(c.id, Role::User, "hello").unwrap();
    let mut m = StreamingMessage::begin(&s, c.id, &by("openai")).unwrap();
    let end = AnswerEnd {
        error: Some("OpenAI is down. No offline model is installed.".into()),
        error_class: Some(ErrorClass::Outage),
        next_action: Some(NextAction::DownloadModel),
        ..AnswerEnd::new(Status::Error)
    };
    m.finish(&s, &end).unwrap();
    let ans = s.messages(c.id).unwrap().pop().unwrap();
    assert_eq!((ans.status, ans.error_class, ans.next_action), (Status::Error, Some(ErrorClass::Outage), Some(NextAction::DownloadModel)));
    let json = serde_json::to_value(&ans).unwrap();
    assert_eq!((json["error_class"].as_str(), json["next_action"].as_str()), (Some("outage"), Some("download_model")));
}

#[test]
fn delete_can_be_undone_until_purged() {
    let s = Store::open_in_memory().unwrap();
    let c = s.create_conversation("Doomed").unwrap();
    s.add_message(c.id, Role::User, "remember the platypus").unwrap();
    s.delete_conversation(c.id).unwrap();
    assert!(s.conversations().unwrap().is_empty());
    assert!(s.search("platypus", 10).unwrap().is_empty(), "deleted conversations are not searched");
    s.restore_conversation(c.id).unwrap();
    assert_eq!(s.conversations().unwrap().len(), 1);
    s.delete_conversation(c.id).unwrap();
    assert_eq!(s.purge_deleted(Duration::ZERO).unwrap(), 1);
    assert!(s.restore_conversation(c.id).is_err());
    assert!(s.messages(c.id).unwrap().is_empty(), "messages went with it");
}

#[test]
fn full_text_search_finds_words_across_conversations() {
    let s = Store::open_in_memory().unwrap();
    let a = s.create_conversation("Rust").unwrap();
    let b = s.create_conversation("Cooking").unwrap();
    s.add_message(a.id, Role::User, "How do lifetimes work in Rust?").unwrap();
    s.add_message(b.id, Role::User, "A recipe for crème brûlée please").unwrap();
    let mut m = StreamingMessage::begin(&s, b.id, &by("openai")).unwrap();
    m.push(&s, "Caramelise the sugar with a torch.").unwrap();
    m.flush(&s).unwrap();
    let hits = s.search("lifetime", 10).unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!((hits[0].conversation_id, hits[0].title.as_str()), (a.id, "Rust"));
    assert!(hits[0].snippet.contains("[lifetimes]"), "{}", hits[0].snippet);
    assert_eq!(s.search("creme brulee", 10).unwrap().len(), 1, "diacritics are folded");
    assert_eq!(s.search("caramel", 10).unwrap()[0].conversation_id, b.id, "partial answers are indexed as they stream");
    // user input is never FTS syntax
    for q in ["\"", "AND OR NOT", "sugar)", "*", "", "NEAR(", "col:val"] {
        s.search(q, 10).unwrap();
    }
}

#[test]
fn streaming_text_is_saved_at_least_every_half_second() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("u.db");
    let s = Store::open(&path).unwrap();
    let c = s.create_conversation("c").unwrap();
    let mut m = StreamingMessage::begin(&s, c.id, &by("openai")).unwrap();
    m.push(&s, "first").unwrap();
    let other = Store::open(&path).unwrap(); // a second connection sees only what was saved
    assert_eq!(other.messages(c.id).unwrap()[0].content, "");
    std::thread::sleep(StreamingMessage::SAVE_EVERY);
    m.push(&s, " second").unwrap();
    let seen = other.messages(c.id).unwrap();
    assert_eq!(seen[0].content, "first second");
    assert_eq!(seen[0].status, Status::Interrupted, "opening a second store recovered the streaming answer as interrupted");
}

#[test]
fn kill_9_mid_stream_keeps_the_user_message_and_the_partial_answer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("understudy.db");
    for round in 0..3 {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_understudy-store-writer")).arg(&path).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(700 + round * 150));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    let s = Store::open(&path).unwrap();
    assert_eq!(s.integrity_check().unwrap(), "ok");
    let convos = s.conversations().unwrap();
    assert_eq!(convos.len(), 3);
    for c in convos {
        let msgs = s.messages(c.id).unwrap();
        assert_eq!(msgs.len(), 2, "user message and answer");
        assert_eq!((msgs[0].role.as_str(), msgs[0].content.as_str()), ("user", "Tell me a very long story."));
        assert_eq!(msgs[1].status, Status::Interrupted);
        assert!(msgs[1].content.starts_with("word0 word1 "), "partial text kept: {:?}", msgs[1].content);
        assert_eq!(msgs[1].provider.as_deref(), Some("openai"));
    }
}

#[test]
fn edit_and_resend_replaces_the_text_and_drops_what_followed() {
    let s = Store::open_in_memory().unwrap();
    let c = s.create_conversation("t").unwrap();
    let first = s.add_message(c.id, Role::User, "old question about zebras").unwrap();
    let answer = s.begin_answer(c.id, &by("openai")).unwrap();
    s.save_partial(answer, "an answer").unwrap();
    s.add_message(c.id, Role::User, "follow-up").unwrap();
    s.edit_message(first, "new question about giraffes").unwrap();
    assert_eq!(s.delete_messages_after(c.id, first).unwrap(), 2);
    let msgs = s.messages(c.id).unwrap();
    assert_eq!(msgs.len(), 1);
    assert_eq!(s.message(first).unwrap().content, "new question about giraffes");
    // The search index follows the edit and the deletions.
    assert!(s.search("zebras", 10).unwrap().is_empty());
    assert!(s.search("follow", 10).unwrap().is_empty());
    assert_eq!(s.search("giraffes", 10).unwrap().len(), 1);
    assert!(s.edit_message(9999, "x").is_err());
}
