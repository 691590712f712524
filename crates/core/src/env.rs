//! A snapshot of the environment, taken once at start, so that configuration, keys and path
//! resolution are testable without mutating the process environment and nothing reads the
//! process environment later.

use std::collections::BTreeMap;

/// The variables of design.md section 2, and the cloud vendors' conventional key variables
/// (`crate::providers`): the ones `Debug` shows (keys redacted); the snapshot holds them all,
/// since a user may allow any name as `api_key = "env:NAME"`.
pub const VARS: &[&str] = &[
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "UNDERSTUDY_CONFIG",
    "UNDERSTUDY_DATA_DIR",
    "UNDERSTUDY_GATEWAY_TOKEN",
    "UNDERSTUDY_LOCAL_MODEL",
    "UNDERSTUDY_LOG",
    "AZURE_OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "GEMINI_API_KEY",
    "OPENROUTER_API_KEY",
    "GROQ_API_KEY",
    "MISTRAL_API_KEY",
    "DEEPSEEK_API_KEY",
    "TOGETHER_API_KEY",
];

#[derive(Clone, Default, PartialEq, Eq)]
pub struct Env {
    vars: BTreeMap<String, String>,
}

// Hand-written so that OPENAI_API_KEY never reaches a log through `{:?}`, nor any variable
// outside [`VARS`] (it may hold anything).
impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut m = f.debug_map();
        for (k, v) in self.vars.iter().filter(|(k, _)| VARS.contains(&k.as_str())) {
            if k.contains("KEY") || k.contains("TOKEN") {
                m.entry(k, &"<redacted>");
            } else {
                m.entry(k, v);
            }
        }
        m.finish()
    }
}

impl Env {
    /// Reads the process environment. Non-UTF-8 names and values are ignored.
    pub fn from_process() -> Env {
        Env::from_pairs(std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))))
    }

    pub fn from_pairs<I, K, V>(pairs: I) -> Env
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Env { vars: pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect() }
    }

    /// The value, or `None` when unset.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    /// The value when set and not blank.
    pub fn non_empty(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.trim().is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_redacts_keys() {
        let env = Env::from_pairs([("OPENAI_API_KEY", "sk-SECRET"), ("UNDERSTUDY_LOG", "debug"), ("MY_PASSWORD", "hunter2")]);
        let shown = format!("{env:?}");
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(!shown.contains("hunter2") && !shown.contains("MY_PASSWORD"), "{shown}");
        assert!(shown.contains("debug"), "{shown}");
    }
}
