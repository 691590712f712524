//! Conversations: the router's answers made durable. The user's message is committed before
//! the request starts, the answer is saved while it streams (at least every 500 ms) and its end
//! recorded with who wrote it; Stop keeps the partial text. The desktop app's chat commands
//! are one line each on top of this.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;
use tokio_util::sync::CancellationToken;
use understudy_store::{AnswerEnd, Conversation, Message, Part, Provenance, Status, Store, StoreError, StreamingMessage};

use understudy_router::{Because, ChatRequest, Event, FinishReason, Role, Router, Turn};

/// A conversation's title until the first message names it.
pub const UNTITLED: &str = "New chat";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConversationError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("an answer is already being written in this conversation; stop it first")]
    Busy,
    #[error("the message is empty")]
    Empty,
    #[error("only your own messages can be edited")]
    NotEditable,
    #[error("there is no question to answer in this conversation")]
    NothingToAnswer,
}

/// What the window hears during a turn, in order: `user_message` (the saved message, when the
/// turn has one), `answer_started`, `token`s, then `finished` with the stored answer; when the
/// disk refuses a save, `not_saved` (each failed try) and `saved` (it worked again) in between.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TurnEvent {
    UserMessage {
        message: Message,
    },
    /// `message_id` is None when the answer could not be stored yet (see `NotSaved`).
    AnswerStarted {
        message_id: Option<i64>,
        provider: String,
        label: String,
        model: String,
        failover: Option<String>,
        /// Who failed before and how, as data (the badge's words are built from it).
        because: Option<Because>,
    },
    Token {
        text: String,
    },
    /// Thinking of a reasoning model, shown collapsed while it streams; not stored.
    Reasoning {
        text: String,
    },
    /// The provider failed mid-answer and `provider` continues it from where it stopped.
    Switched {
        provider: String,
        label: String,
        model: String,
        reason: String,
        because: Because,
    },
    /// Saving the answer failed (a full or read-only disk): it streams on, the text is kept in
    /// memory and the save is tried again every 500 ms; sent after each failed try, `reason`
    /// for the log and a tooltip.
    NotSaved {
        reason: String,
    },
    /// A save worked again after `NotSaved`: everything so far is stored.
    Saved,
    /// The answer as stored: status `complete`, `interrupted` (stopped; text kept) or `error`
    /// (with the reason and next step in `error`).
    Finished {
        message: Message,
    },
}

#[derive(Debug)]
struct Inner {
    store: Mutex<Store>,
    router: Router,
    /// Answers in progress by conversation, for Stop.
    running: Mutex<HashMap<i64, CancellationToken>>,
}

/// Cheap to clone; clones share the store and the router.
#[derive(Debug, Clone)]
pub struct Conversations(Arc<Inner>);

impl Conversations {
    pub fn new(store: Store, router: Router) -> Conversations {
        Conversations(Arc::new(Inner { store: Mutex::new(store), router, running: Mutex::default() }))
    }

    pub fn router(&self) -> &Router {
        &self.0.router
    }

    /// Runs `f` with the store. Calls are short (one statement or transaction).
    pub fn with_store<T>(&self, f: impl FnOnce(&Store) -> Result<T, StoreError>) -> Result<T, ConversationError> {
        let store = self.0.store.lock().expect("store lock");
        Ok(f(&store)?)
    }

    pub fn list(&self) -> Result<Vec<Conversation>, ConversationError> {
        self.with_store(Store::conversations)
    }

    pub fn create(&self) -> Result<Conversation, ConversationError> {
        self.with_store(|s| s.create_conversation(UNTITLED))
    }

    pub fn messages(&self, id: i64) -> Result<Vec<Message>, ConversationError> {
        self.with_store(|s| {
            s.conversation(id)?;
            s.messages(id)
        })
    }

    pub fn is_running(&self, id: i64) -> bool {
        self.0.running.lock().expect("running lock").contains_key(&id)
    }

    /// Stops the conversation's answer in progress; returns whether there was one. The turn
    /// then ends with the partial text saved as `interrupted`.
    pub fn stop(&self, id: i64) -> bool {
        match self.0.running.lock().expect("running lock").get(&id) {
            Some(token) => {
                token.cancel();
                true
            }
            None => false,
        }
    }

    /// Sends a user message and streams the answer into the store and `sink`.
    pub async fn send(&self, id: i64, text: &str, sink: impl FnMut(TurnEvent) + Send) -> Result<Message, ConversationError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(ConversationError::Empty);
        }
        let slot = self.claim(id)?;
        let mut sink = sink;
        let message = self.with_store(|s| {
            let c = s.conversation(id)?;
            let mid = s.add_message(id, Role::User, text)?;
            if c.title == UNTITLED {
                s.rename_conversation(id, &title_from(text))?;
            }
            s.message(mid)
        })?;
        sink(TurnEvent::UserMessage { message });
        self.turn(id, slot, sink).await
    }

    /// Answers the last user message again, replacing the answer(s) after it. `provider` pins
    /// who answers ("Ask OpenAI again" on a locally answered message); None = by mode.
    pub async fn regenerate(&self, id: i64, provider: Option<String>, sink: impl FnMut(TurnEvent) + Send) -> Result<Message, ConversationError> {
        let slot = self.claim(id)?;
        self.with_store(|s| {
            let last_user = s.messages(id)?.into_iter().rev().find(|m| m.role == Role::User);
            match last_user {
                Some(m) => s.delete_messages_after(id, m.id).map(|_| true),
                None => Ok(false),
            }
        })
        .and_then(|found| if found { Ok(()) } else { Err(ConversationError::NothingToAnswer) })?;
        self.turn_with(id, slot, provider, sink).await
    }

    /// Replaces a user message's text, drops everything after it and answers again.
    pub async fn edit_and_resend(&self, message_id: i64, text: &str, sink: impl FnMut(TurnEvent) + Send) -> Result<Message, ConversationError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(ConversationError::Empty);
        }
        let original = self.with_store(|s| s.message(message_id))?;
        if original.role != Role::User {
            return Err(ConversationError::NotEditable);
        }
        let id = original.conversation_id;
        let slot = self.claim(id)?;
        let mut sink = sink;
        let message = self.with_store(|s| {
            s.edit_message(message_id, text)?;
            s.delete_messages_after(id, message_id)?;
            s.message(message_id)
        })?;
        sink(TurnEvent::UserMessage { message });
        self.turn(id, slot, sink).await
    }

    /// Marks the conversation busy until the returned slot is dropped.
    fn claim(&self, id: i64) -> Result<Slot, ConversationError> {
        self.with_store(|s| s.conversation(id))?;
        let mut running = self.0.running.lock().expect("running lock");
        if running.contains_key(&id) {
            return Err(ConversationError::Busy);
        }
        let token = CancellationToken::new();
        running.insert(id, token.clone());
        Ok(Slot { owner: self.clone(), id, token })
    }

    /// The conversation as the provider sees it: the system prompt, then every message with
    /// text (a stopped answer's partial text included; failed answers left out).
    fn request(&self, id: i64) -> Result<ChatRequest, ConversationError> {
        self.with_store(|s| {
            let c = s.conversation(id)?;
            let mut messages = Vec::new();
            if let Some(p) = c.system_prompt.as_deref().filter(|p| !p.trim().is_empty()) {
                messages.push(Turn::new(Role::System, p));
            }
            for m in s.messages(id)? {
                if !m.content.is_empty() && m.status != Status::Error {
                    messages.push(Turn::from(&m));
                }
            }
            Ok(ChatRequest { messages, model: c.model.clone(), ..ChatRequest::default() })
        })
    }

    async fn turn(&self, id: i64, slot: Slot, sink: impl FnMut(TurnEvent) + Send) -> Result<Message, ConversationError> {
        self.turn_with(id, slot, None, sink).await
    }

    async fn turn_with(&self, id: i64, slot: Slot, provider: Option<String>, mut sink: impl FnMut(TurnEvent) + Send) -> Result<Message, ConversationError> {
        let mut request = self.request(id)?;
        request.provider = provider;
        if request.messages.last().is_none_or(|m| m.role != Role::User) {
            return Err(ConversationError::NothingToAnswer);
        }
        let mut r = Receiving::new(id);
        let mut answer = self.0.router.chat(request);
        loop {
            // Text that arrived is stored within SAVE_EVERY even when nothing follows it (a
            // stalled stream): a crash then still finds it.
            let due = r.streaming.as_ref().and_then(StreamingMessage::flush_due);
            let event = tokio::select! {
                e = answer.next() => e,
                () = slot.token.cancelled() => {
                    answer.cancel();
                    answer.next().await
                }
                () = async {
                    match due {
                        Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
                        None => std::future::pending().await,
                    }
                } => {
                    if let Some(m) = r.streaming.as_mut() {
                        let stored = self.with_store(|s| m.flush(s));
                        r.saving.track(stored, m, &mut sink);
                    }
                    continue;
                }
            };
            let Some(event) = event else {
                r.end.status = Status::Error;
                r.end.error = Some("The answer ended without a result.".into());
                break;
            };
            if r.take(self, event, &mut sink) {
                break;
            }
        }
        let message_id = self.store_answer(r, &mut sink).await;
        drop(slot);
        let message = self.with_store(|s| s.message(message_id))?;
        // This conversation is the one most likely to continue: what the offline model
        // pre-warms when OpenAI turns degraded.
        if let Ok(next) = self.request(id) {
            self.0.router.remember_context(next.messages);
        }
        sink(TurnEvent::Finished { message: message.clone() });
        Ok(message)
    }

    /// Stores how the answer ended, retrying until the disk takes it; its message id.
    async fn store_answer(&self, r: Receiving, sink: &mut (impl FnMut(TurnEvent) + Send)) -> i64 {
        let Receiving { id, started, streaming, mut saving, mut end, .. } = r;
        end.total_ms = Some(i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX));
        // Failed (or stopped) before any provider started: the failure is still recorded where
        // it happened, so the history shows it after a restart too.
        let mut m = streaming.unwrap_or_else(|| StreamingMessage::new(id, &end.by));
        // The answer is on screen; it is stored once the disk takes it. Until then the
        // conversation stays busy and a quit leaves the last saved text, `interrupted` at the
        // next start.
        loop {
            let stored = self.with_store(|s| m.finish(s, &end));
            let done = stored.as_ref().ok().copied();
            saving.track(stored.map(|_| ()), &m, sink);
            match done {
                Some(mid) => return mid,
                None => tokio::time::sleep(StreamingMessage::SAVE_EVERY).await,
            }
        }
    }
}

/// An answer being received: its message as it streams into the store, and how it ends.
struct Receiving {
    /// The conversation.
    id: i64,
    started: Instant,
    streaming: Option<StreamingMessage>,
    saving: Saving,
    /// Who began the answer, for the first part when it switches provider mid-stream.
    first_by: (String, String),
    end: AnswerEnd,
}

impl Receiving {
    fn new(id: i64) -> Receiving {
        Receiving {
            id,
            started: Instant::now(),
            streaming: None,
            saving: Saving::default(),
            first_by: (String::new(), String::new()),
            end: AnswerEnd::new(Status::Complete),
        }
    }

    /// Stores and passes on one event of the router's answer; true when it was the last.
    fn take(&mut self, c: &Conversations, event: Event, sink: &mut impl FnMut(TurnEvent)) -> bool {
        let end = &mut self.end;
        match event {
            Event::Started { provider, label, model, failover, because, .. } => {
                let by = Provenance { provider: Some(provider.clone()), model: Some(model.clone()), failover_reason: failover.clone() };
                let mut m = StreamingMessage::new(self.id, &by);
                let stored = c.with_store(|s| m.flush(s));
                self.first_by = (provider.clone(), model.clone());
                sink(TurnEvent::AnswerStarted { message_id: m.id(), provider, label, model, failover, because });
                self.saving.track(stored, &m, sink);
                self.streaming = Some(m);
            }
            Event::Token { text } => {
                if end.first_token_ms.is_none() {
                    end.first_token_ms = Some(i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX));
                }
                let stored = self.streaming.as_mut().map(|m| c.with_store(|s| m.push(s, &text)));
                sink(TurnEvent::Token { text });
                if let (Some(stored), Some(m)) = (stored, self.streaming.as_ref()) {
                    self.saving.track(stored, m, sink);
                }
            }
            Event::Switched { provider, label, model, reason, because } => {
                let at = self.streaming.as_ref().map_or(0, |m| m.text().chars().count());
                if end.parts.is_empty() {
                    end.parts.push(Part { provider: self.first_by.0.clone(), model: self.first_by.1.clone(), start: 0 });
                }
                end.parts.push(Part { provider: provider.clone(), model: model.clone(), start: at });
                end.by.failover_reason = Some(format!("{reason}; {label} continued the answer"));
                sink(TurnEvent::Switched { provider, label, model, reason, because });
            }
            Event::Usage { prompt_tokens, completion_tokens } => {
                end.prompt_tokens = Some(i64::from(prompt_tokens));
                end.completion_tokens = Some(i64::from(completion_tokens));
            }
            Event::LeftOut { messages } => end.left_out = Some(i64::from(messages)),
            Event::Reasoning { text } => sink(TurnEvent::Reasoning { text }),
            Event::Upstream { .. } | Event::Whole { .. } => {}
            Event::Done { finish_reason, model } => {
                match finish_reason {
                    FinishReason::Cancelled => {
                        end.status = Status::Interrupted;
                        end.error = Some("Stopped by you.".into());
                    }
                    FinishReason::Length => end.error = Some("The answer reached the length limit.".into()),
                    _ => {}
                }
                match end.parts.last_mut() {
                    Some(last) if !model.is_empty() => last.model = model,
                    None if !model.is_empty() => end.by.model = Some(model),
                    _ => {}
                }
                return true;
            }
            Event::Error { error } => {
                end.status = Status::Error;
                end.error = Some(error.to_string());
                end.error_class = Some(error.class);
                end.next_action = Some(error.next_action);
                return true;
            }
        }
        false
    }
}

/// Whether the answer's saves are failing, to tell the window each failure and the recovery.
#[derive(Default)]
struct Saving {
    failing: bool,
}

impl Saving {
    /// `stored`: the outcome of a push, flush or finish of `m` (a push may not have saved).
    fn track(&mut self, stored: Result<(), ConversationError>, m: &StreamingMessage, sink: &mut impl FnMut(TurnEvent)) {
        match stored {
            Ok(()) if self.failing && m.flush_due().is_none() => {
                self.failing = false;
                tracing::info!("the answer is saved again");
                sink(TurnEvent::Saved);
            }
            Ok(()) => {}
            Err(e) => {
                if !self.failing {
                    tracing::warn!("cannot save the answer, retrying: {e}");
                }
                self.failing = true;
                sink(TurnEvent::NotSaved { reason: e.to_string() });
            }
        }
    }
}

/// A conversation marked busy; dropping it (turn over, or the caller went away) frees it.
struct Slot {
    owner: Conversations,
    id: i64,
    token: CancellationToken,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.owner.0.running.lock().expect("running lock").remove(&self.id);
    }
}

/// The first line of the first message, shortened at a word boundary.
pub fn title_from(text: &str) -> String {
    const MAX: usize = 48;
    let line = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or(UNTITLED);
    if line.chars().count() <= MAX {
        return line.to_string();
    }
    let cut: String = line.chars().take(MAX).collect();
    let cut = match cut.rfind(' ') {
        Some(i) if i > MAX / 2 => &cut[..i],
        _ => cut.as_str(),
    };
    format!("{}…", cut.trim_end_matches(|c: char| c.is_whitespace() || c.is_ascii_punctuation()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_come_from_the_first_line() {
        assert_eq!(title_from("Hello there"), "Hello there");
        assert_eq!(title_from("\n\n  Plan a trip \nto Rome"), "Plan a trip");
        assert_eq!(title_from("Explain how the circuit breaker in Understudy decides to fail over"), "Explain how the circuit breaker in Understudy…");
        assert_eq!(title_from("   "), UNTITLED);
        let long_word = "x".repeat(80);
        assert_eq!(title_from(&long_word).chars().count(), 49);
    }
}
