//! How errors cross IPC: `{ "code": "...", "message": "..." }`. The UI's `ApiError` relies on
//! this shape (ui/src/api/call.ts), so it is pinned by a test; both types' TypeScript is
//! generated (src/ts.rs).

use serde::Serialize;
use understudy_conversations::ConversationError;
use understudy_router::{ChatError, ErrorClass};
use understudy_store::StoreError;

/// What went wrong, machine-readable: `ApiError.code` in the UI, typed there (generated), for
/// code to branch on. Today no screen needs to: each shows the message, which is for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum IpcCode {
    Config,
    Io,
    Busy,
    Empty,
    NotEditable,
    NothingToAnswer,
    NotFound,
    Store,
    Autostart,
    Hub,
    ModelId,
    Import,
    Remove,
    Link,
    TooLarge,
    InvalidKey,
    InvalidName,
    Secrets,
    // A failed connection test: its failure class.
    Outage,
    RateLimit,
    Account,
    Request,
    Local,
    Setup,
}

impl std::fmt::Display for IpcCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = serde_json::to_value(self).map_err(|_| std::fmt::Error)?;
        f.write_str(v.as_str().unwrap_or_default())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[error("{code}: {message}")]
pub struct IpcError {
    pub code: IpcCode,
    /// For people; never contains a secret.
    pub message: String,
}

impl IpcError {
    pub fn new(code: IpcCode, message: impl std::fmt::Display) -> IpcError {
        IpcError { code, message: message.to_string() }
    }
}

impl From<ConversationError> for IpcError {
    fn from(e: ConversationError) -> Self {
        let code = match &e {
            ConversationError::Busy => IpcCode::Busy,
            ConversationError::Empty => IpcCode::Empty,
            ConversationError::NotEditable => IpcCode::NotEditable,
            ConversationError::NothingToAnswer => IpcCode::NothingToAnswer,
            ConversationError::Store(StoreError::NotFound(_)) => IpcCode::NotFound,
            _ => IpcCode::Store,
        };
        IpcError::new(code, e)
    }
}

impl From<understudy_core::ConfigError> for IpcError {
    fn from(e: understudy_core::ConfigError) -> Self {
        IpcError::new(IpcCode::Config, e)
    }
}

/// A Settings write refused (the file to fix first) or failed.
impl From<understudy_services::WriteError> for IpcError {
    fn from(e: understudy_services::WriteError) -> Self {
        IpcError::new(IpcCode::Config, e)
    }
}

/// A failed connection test: the code is the failure class, the message says what to do.
impl From<ChatError> for IpcError {
    fn from(e: ChatError) -> Self {
        let code = match e.class {
            ErrorClass::Outage => IpcCode::Outage,
            ErrorClass::RateLimit => IpcCode::RateLimit,
            ErrorClass::Account => IpcCode::Account,
            ErrorClass::Request => IpcCode::Request,
            ErrorClass::Local => IpcCode::Local,
            ErrorClass::Busy => IpcCode::Busy,
            ErrorClass::Setup => IpcCode::Setup,
        };
        IpcError::new(code, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_as_code_and_message() {
        let e = IpcError { code: IpcCode::Config, message: "bad".into() };
        assert_eq!(serde_json::to_value(&e).unwrap(), serde_json::json!({ "code": "config", "message": "bad" }));
        let busy = IpcError::from(ConversationError::Busy);
        assert_eq!(serde_json::to_value(&busy).unwrap()["code"], "busy");
        assert!(busy.message.contains("stop it first"));
        assert_eq!(IpcCode::NothingToAnswer.to_string(), "nothing_to_answer");
    }
}
