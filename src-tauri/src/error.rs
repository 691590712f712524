//! How errors cross IPC: `{ "code": "...", "message": "..." }`. The UI's `ApiError` relies on
//! this shape (ui/src/api/call.ts), so it is pinned by a test.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct IpcError {
    /// Stable, machine-readable (`config`, `io`, ...); the UI branches on it.
    pub code: &'static str,
    /// For people; never contains a secret.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_as_code_and_message() {
        let e = IpcError { code: "config", message: "bad".into() };
        assert_eq!(serde_json::to_value(&e).unwrap(), serde_json::json!({ "code": "config", "message": "bad" }));
    }
}
