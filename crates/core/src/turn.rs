//! What one answer is made of, as every layer names it: a conversation's [`Turn`]s and who
//! wrote each ([`Role`]), why the answer ended ([`FinishReason`]) and who failed before the one
//! that wrote it ([`Because`]). Plain data, so the window's glue, the gateway and
//! `understudy-alerts` read it without the router. Each layer's own message type (the store's,
//! the OpenAI client's, the offline worker's) converts from or into a `Turn` with a `From` impl
//! next to that type.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Who wrote a message, in OpenAI's words on every wire (`system`, `user`, `assistant`, `tool`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
    /// A tool's result, answering an assistant's tool call.
    Tool,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role word that is none of [`Role`]'s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown message role {0:?}")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(word: &str) -> Result<Role, UnknownRole> {
        match word {
            "system" => Ok(Role::System),
            "user" => Ok(Role::User),
            "assistant" => Ok(Role::Assistant),
            "tool" => Ok(Role::Tool),
            other => Err(UnknownRole(other.to_string())),
        }
    }
}

/// A message of the conversation sent to a provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Turn {
    pub role: Role,
    pub content: String,
}

impl Turn {
    pub fn new(role: Role, content: &str) -> Turn {
        Turn { role, content: content.into() }
    }
}

/// Why the provider before in the chain did not write an answer, as data: the window, the CLI
/// and `alerts::words` put it into words ("because OpenAI timed out"), nobody parses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum FailoverReason {
    /// No first token within the first-token timeout.
    TimedOut,
    /// Stopped sending mid-answer for the stall timeout.
    Stalled,
    /// No connection: refused, DNS, TLS, connect timeout.
    Unreachable,
    /// A 5xx (or other status that is not the account's or the request's).
    ServerError,
    RateLimited,
    /// The key was rejected, no quota, no access to the model.
    AccountProblem,
    /// The connection broke or the stream ended early mid-answer.
    CutOff,
    /// A chunk that is not the expected JSON, or an error chunk.
    BadStream,
    /// Its breaker is open: skipped at no cost until it recovers.
    Down,
    NoKey,
    /// Its base URL moved to another host since the key was saved.
    KeyNeededForHost,
    /// Anything else that kept it from answering.
    Failed,
}

/// The provider before in the chain and why it did not answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Because {
    pub provider: String,
    pub label: String,
    pub reason: FailoverReason,
}

/// Why an answer ended, in OpenAI's words (`stop`, `length`, `tool_calls`, `content_filter`, or
/// whatever a provider sends, kept as it came), plus `cancelled`: the user stopped it and the
/// text so far stands.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(type = "string"))]
pub enum FinishReason {
    Stop,
    Length,
    ToolCalls,
    ContentFilter,
    Cancelled,
    Other(String),
}

impl FinishReason {
    pub fn from_wire(reason: &str) -> Self {
        match reason {
            "stop" => Self::Stop,
            "length" => Self::Length,
            "tool_calls" => Self::ToolCalls,
            "content_filter" => Self::ContentFilter,
            "cancelled" => Self::Cancelled,
            other => Self::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Stop => "stop",
            Self::Length => "length",
            Self::ToolCalls => "tool_calls",
            Self::ContentFilter => "content_filter",
            Self::Cancelled => "cancelled",
            Self::Other(reason) => reason,
        }
    }
}

impl Serialize for FinishReason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_role_goes_out_and_comes_back_as_the_same_word() {
        for (role, word) in [(Role::System, "system"), (Role::User, "user"), (Role::Assistant, "assistant"), (Role::Tool, "tool")] {
            assert_eq!((role.as_str(), role.to_string(), serde_json::to_value(role).unwrap()), (word, word.to_string(), serde_json::json!(word)));
            assert_eq!((word.parse::<Role>(), serde_json::from_value::<Role>(serde_json::json!(word)).unwrap()), (Ok(role), role));
        }
        assert_eq!("developer".parse::<Role>(), Err(UnknownRole("developer".into())));
        assert!(serde_json::from_value::<Role>(serde_json::json!("User")).is_err(), "the wire words are lower case");
    }

    #[test]
    fn a_finish_reason_goes_out_as_it_came_in_even_one_we_do_not_know() {
        for wire in ["stop", "length", "tool_calls", "content_filter", "cancelled", "function_call", "something_new"] {
            let reason = FinishReason::from_wire(wire);
            assert_eq!((reason.as_str(), serde_json::to_value(&reason).unwrap()), (wire, serde_json::json!(wire)));
        }
        assert_eq!(FinishReason::from_wire("something_new"), FinishReason::Other("something_new".into()));
        assert_eq!(FinishReason::from_wire("cancelled"), FinishReason::Cancelled);
    }
}
