//! Provider health as the tray, the notifier, the window and `GET /understudy/status` see it:
//! plain data published by the router's monitor, so readers (`understudy-alerts`, the gateway,
//! the UI layer) need not link the router to read it.

use serde::Serialize;

use crate::config::Mode;

/// The circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum Breaker {
    Closed,
    /// Requests skip the provider until `until`.
    Open {
        until_ms: u64,
    },
    /// Probes decide: `successes` of the two needed so far.
    HalfOpen {
        successes: u8,
    },
}

/// What the tray and the status bar show for one provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "kebab-case")]
pub enum Health {
    Healthy,
    /// Recent errors or slow first tokens below the open threshold, or a status-page incident.
    Degraded,
    /// The breaker is open or half-open: requests go to the next provider.
    Outage,
}

/// One provider's health as shown to people.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ProviderHealth {
    pub id: String,
    pub label: String,
    /// The model it is asked for, and why no key can be sent to it (then it is never tried).
    pub model: String,
    pub key_problem: Option<crate::providers::KeyProblem>,
    pub health: Health,
    pub breaker: Breaker,
    /// Unix ms when `health` last changed.
    pub since: u64,
    /// The last failure, in words.
    pub last_error: Option<String>,
    /// A configuration problem (401, 403, 404 model, no quota) in words, until an answer succeeds.
    pub account_problem: Option<String>,
    /// Whether a real answer succeeded since the breaker last closed (recovery is only
    /// announced after one). Flips once per outage, so healthy traffic publishes nothing.
    pub answered_since_close: bool,
}

/// Where the next request goes: a cloud provider (by id), the offline model, or nowhere. On the
/// wire (status endpoint, the window) it is the provider's id, `local` or `none`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(type = "string"))]
pub enum Route {
    Provider(String),
    Local,
    Nothing,
}

impl Route {
    pub fn as_str(&self) -> &str {
        match self {
            Route::Provider(id) => id,
            Route::Local => "local",
            Route::Nothing => "none",
        }
    }

    /// Whether the next request goes to this cloud provider.
    pub fn is_provider(&self, id: &str) -> bool {
        matches!(self, Route::Provider(p) if p == id)
    }
}

impl From<&str> for Route {
    fn from(wire: &str) -> Self {
        match wire {
            "local" => Route::Local,
            "none" => Route::Nothing,
            id => Route::Provider(id.to_string()),
        }
    }
}

impl Serialize for Route {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Everything the tray, notifier, UI and status endpoint show.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct HealthSnapshot {
    pub mode: Mode,
    pub providers: Vec<ProviderHealth>,
    /// Where the next request goes.
    pub route: Route,
    /// The offline model's name, if one is installed.
    pub local_model: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::Route;

    #[test]
    fn a_route_goes_out_as_the_provider_id_local_or_none_and_comes_back() {
        for (route, wire) in [(Route::Provider("groq".into()), "groq"), (Route::Local, "local"), (Route::Nothing, "none")] {
            assert_eq!(serde_json::to_value(&route).unwrap(), serde_json::json!(wire));
            assert_eq!(Route::from(wire), route);
        }
        assert!(Route::Provider("openai".into()).is_provider("openai") && !Route::Local.is_provider("local"));
    }
}
