//! The error contract between the engine and its clients (window, CLI, gateway): what kind of
//! failure it was and what the user can do about it, as data. The words travel alongside; no
//! client reads them to decide anything.

use serde::{Deserialize, Serialize};

/// The kind of failure an answer ended with (design.md section 3, plus `local`, `setup`, `busy`).
/// The wire strings are the ones the CLI's JSON and the store have always used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// The provider is down or unreachable.
    Outage,
    #[serde(rename = "rate-limit")]
    RateLimit,
    /// The key, the quota or the project's access.
    Account,
    /// The request itself (too long, bad parameters).
    Request,
    /// The offline model failed.
    Local,
    /// Nothing is set up to answer: no key, no provider, no offline model.
    Setup,
    /// The offline model's queue is full; try again shortly.
    Busy,
}

impl ErrorClass {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Outage => "outage",
            ErrorClass::RateLimit => "rate-limit",
            ErrorClass::Account => "account",
            ErrorClass::Request => "request",
            ErrorClass::Local => "local",
            ErrorClass::Setup => "setup",
            ErrorClass::Busy => "busy",
        }
    }

    /// The stored form back; `None` for a string this build does not know.
    pub fn parse(s: &str) -> Option<ErrorClass> {
        serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
    }
}

/// What the user can do next, as the window offers it (a button) and the CLI words it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum NextAction {
    /// Add (or re-enter) a provider's API key: Settings → Providers, or the environment on the CLI.
    AddKey,
    /// Get an offline model: the window offers the model library.
    DownloadModel,
    /// Something else in Settings (base URL, model name, the key's access, the offline model).
    OpenSettings,
    /// Try again (now, or after a wait).
    Retry,
    /// Nothing to offer beyond the words (change the request).
    #[default]
    None,
}

impl NextAction {
    pub fn as_str(self) -> &'static str {
        match self {
            NextAction::AddKey => "add_key",
            NextAction::DownloadModel => "download_model",
            NextAction::OpenSettings => "open_settings",
            NextAction::Retry => "retry",
            NextAction::None => "none",
        }
    }

    /// The stored form back; `None` for a string this build does not know.
    pub fn parse(s: &str) -> Option<NextAction> {
        serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_strings_round_trip_and_match_as_str() {
        let classes =
            [ErrorClass::Outage, ErrorClass::RateLimit, ErrorClass::Account, ErrorClass::Request, ErrorClass::Local, ErrorClass::Setup, ErrorClass::Busy];
        let wire: Vec<String> = classes.iter().map(|c| serde_json::to_value(c).unwrap().as_str().unwrap().to_string()).collect();
        assert_eq!(wire, ["outage", "rate-limit", "account", "request", "local", "setup", "busy"]);
        for c in classes {
            assert_eq!(ErrorClass::parse(c.as_str()), Some(c));
        }
        let actions = [NextAction::AddKey, NextAction::DownloadModel, NextAction::OpenSettings, NextAction::Retry, NextAction::None];
        let wire: Vec<String> = actions.iter().map(|a| serde_json::to_value(a).unwrap().as_str().unwrap().to_string()).collect();
        assert_eq!(wire, ["add_key", "download_model", "open_settings", "retry", "none"]);
        for a in actions {
            assert_eq!(NextAction::parse(a.as_str()), Some(a));
        }
        assert_eq!(ErrorClass::parse("rate_limit"), None);
        assert_eq!(NextAction::parse("reboot"), None);
    }
}
