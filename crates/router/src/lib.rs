//! Routes answers over the provider chain (cloud providers, then the local engine) and makes
//! conversations durable. The failover policy — health monitor, circuit breaker, status-page
//! hint, mid-stream continuation — lands here with the "Automatic failover" issue; until then
//! an answer comes from the provider the mode and the request name (see ARCHITECTURE.md).

pub mod chain;
pub mod chat;
pub mod conversation;
pub mod health;
pub mod policy;
pub mod probe;
pub mod status_page;

pub use chain::{Chain, Keys, LocalModel, StoredKeys};
pub use chat::{Answer, Because, ChatError, ChatRequest, ConnectionReport, Event, FailoverReason, Router, Sampling, Turn};
pub use conversation::{ConversationError, Conversations, TurnEvent};
pub use health::{HealthSnapshot, Monitor, ProviderHealth};
pub use policy::{Breaker, Health};
pub use understudy_core::{ErrorClass, NextAction};
