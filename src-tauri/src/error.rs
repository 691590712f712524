//! How errors cross IPC: `{ "code": "...", "message": "..." }`. The UI's `ApiError` relies on
//! this shape (ui/src/api/call.ts), so it is pinned by a test.

use serde::Serialize;
use understudy_router::{ChatError, ConversationError};
use understudy_store::StoreError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct IpcError {
    /// Stable, machine-readable (`config`, `io`, `busy`, ...); the UI branches on it.
    pub code: &'static str,
    /// For people; never contains a secret.
    pub message: String,
}

impl IpcError {
    pub fn new(code: &'static str, message: impl std::fmt::Display) -> IpcError {
        IpcError { code, message: message.to_string() }
    }
}

impl From<ConversationError> for IpcError {
    fn from(e: ConversationError) -> Self {
        let code = match &e {
            ConversationError::Busy => "busy",
            ConversationError::Empty => "empty",
            ConversationError::NotEditable => "not_editable",
            ConversationError::NothingToAnswer => "nothing_to_answer",
            ConversationError::Store(StoreError::NotFound(_)) => "not_found",
            _ => "store",
        };
        IpcError::new(code, e)
    }
}

impl From<understudy_core::ConfigError> for IpcError {
    fn from(e: understudy_core::ConfigError) -> Self {
        IpcError::new("config", e)
    }
}

/// A failed connection test: the code is the failure class, the message says what to do.
impl From<ChatError> for IpcError {
    fn from(e: ChatError) -> Self {
        let code = match e.class.as_str() {
            "outage" => "outage",
            "rate-limit" => "rate_limit",
            "account" => "account",
            "request" => "request",
            "local" => "local",
            _ => "setup",
        };
        IpcError::new(code, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_as_code_and_message() {
        let e = IpcError { code: "config", message: "bad".into() };
        assert_eq!(serde_json::to_value(&e).unwrap(), serde_json::json!({ "code": "config", "message": "bad" }));
        let busy = IpcError::from(ConversationError::Busy);
        assert_eq!(busy.code, "busy");
        assert!(busy.message.contains("stop it first"));
    }
}
