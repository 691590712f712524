//! Routes answers over the provider chain (cloud providers, then the local engine): `chain` (who
//! may answer), `policy` (the pure breaker), `health` (the monitor that publishes it), `probe` and
//! `status_page` (background checks), `chat` (one answer with failover, mid-stream continuation
//! included). The stored history on top of it is `understudy-conversations`. See ARCHITECTURE.md.

pub mod chain;
pub mod chat;
pub mod health;
pub mod liveness;
pub mod plan;
pub mod policy;
pub mod probe;
pub mod status_page;

pub use chain::{Chain, Keys, LocalModel, StoredKeys};
pub use chat::{Answer, Because, ChatError, ChatRequest, ConnectionReport, Event, FailoverReason, FinishReason, Router, Sampling, Turn};
pub use health::{HealthSnapshot, Monitor, ProviderHealth, Route};
pub use policy::{Breaker, Health};
pub use understudy_core::{ErrorClass, NextAction, Role};
