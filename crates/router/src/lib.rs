//! Routes answers over the provider chain (cloud providers, then the local engine) and makes
//! conversations durable: `chain` (who may answer), `policy` (the pure breaker), `health` (the
//! monitor that publishes it), `probe` and `status_page` (background checks), `chat` (one answer
//! with failover, mid-stream continuation included), `conversation` (the stored history).
//! See ARCHITECTURE.md.

pub mod chain;
pub mod chat;
pub mod conversation;
pub mod health;
pub mod plan;
pub mod policy;
pub mod probe;
pub mod status_page;

pub use chain::{Chain, Keys, LocalModel, StoredKeys};
pub use chat::{Answer, Because, ChatError, ChatRequest, ConnectionReport, Event, FailoverReason, FinishReason, Router, Sampling, Turn};
pub use conversation::{ConversationError, Conversations, TurnEvent};
pub use health::{HealthSnapshot, Monitor, ProviderHealth, Route};
pub use policy::{Breaker, Health};
pub use understudy_core::{ErrorClass, NextAction};
