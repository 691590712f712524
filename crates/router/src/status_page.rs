//! OpenAI's status page as a hint: an incident on the API marks the provider degraded (and so
//! pre-warms the offline model) but never opens the breaker on its own. Two formats are read:
//! incident.io's (status.openai.com now): its public widget API `{base}/api/v1/summary`, or the
//! page's own `{base}/proxy/{host}` feed, which wraps the same lists in `summary`; and the legacy
//! Atlassian Statuspage API (`{base}/api/v2/summary.json`, or `status.json`).
//! Anything unexpected is an error, never an incident.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Operational,
    /// An incident affecting the API, in the page's words.
    Incident(String),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum StatusPageError {
    #[error("the status page sent something that is not JSON: {0}")]
    NotJson(String),
    #[error("the status page's JSON has an unknown shape")]
    Shape,
}

/// A component that serves the API (not ChatGPT, Sora, ...).
fn is_api(name: &str) -> bool {
    name.split(|c: char| !c.is_alphanumeric()).any(|w| w == "API" || w == "APIs")
}

fn json(body: &str) -> Result<Value, StatusPageError> {
    serde_json::from_str(body).map_err(|e| StatusPageError::NotJson(e.to_string()))
}

/// Atlassian Statuspage: `summary.json` (components + incidents) or `status.json` (indicator).
pub fn parse_statuspage(body: &str) -> Result<Verdict, StatusPageError> {
    let v = json(body)?;
    if let Some(components) = v.get("components").and_then(Value::as_array) {
        for c in components {
            let (Some(name), Some(status)) = (c.get("name").and_then(Value::as_str), c.get("status").and_then(Value::as_str)) else {
                return Err(StatusPageError::Shape);
            };
            if is_api(name) && status != "operational" {
                return Ok(Verdict::Incident(format!("{name}: {}", status.replace('_', " "))));
            }
        }
        for i in v.get("incidents").and_then(Value::as_array).into_iter().flatten() {
            let resolved = matches!(i.get("status").and_then(Value::as_str), Some("resolved" | "postmortem"));
            let on_api = i.get("components").and_then(Value::as_array).into_iter().flatten().filter_map(|c| c.get("name").and_then(Value::as_str)).any(is_api);
            if !resolved && on_api {
                return Ok(Verdict::Incident(i.get("name").and_then(Value::as_str).unwrap_or("incident").to_string()));
            }
        }
        return Ok(Verdict::Operational);
    }
    let status = v.get("status").ok_or(StatusPageError::Shape)?;
    match status.get("indicator").and_then(Value::as_str).ok_or(StatusPageError::Shape)? {
        "none" => Ok(Verdict::Operational),
        // Without components the page cannot say which product is hit; a page-wide incident
        // is taken as a hint, which is all it ever is.
        _ => Ok(Verdict::Incident(status.get("description").and_then(Value::as_str).unwrap_or("incident").to_string())),
    }
}

/// incident.io: the widget API's `{"ongoing_incidents": [...], "in_progress_maintenances": ...}`,
/// or the page feed's `{"summary": {"ongoing_incidents": [...], "structure": ...}}`. An incident
/// counts when one of its components, or the group holding it ("APIs"), is part of the API; with
/// no components listed, when its title names the API. Maintenance is not an incident.
pub fn parse_incident_io(body: &str) -> Result<Verdict, StatusPageError> {
    let v = json(body)?;
    let summary = v.get("summary").unwrap_or(&v);
    let incidents = summary.get("ongoing_incidents").and_then(Value::as_array).ok_or(StatusPageError::Shape)?;
    // Component ids → names, from the page structure (groups nest components).
    let mut names = std::collections::HashMap::new();
    collect_names(summary.get("structure").unwrap_or(&Value::Null), None, &mut names);
    let names_of = |c: &Value| -> Vec<String> {
        let own = [c.get("name"), c.get("group_name")].into_iter().flatten().filter_map(Value::as_str).map(str::to_string).collect::<Vec<_>>();
        if !own.is_empty() {
            return own;
        }
        let id = c.get("component_id").or_else(|| c.get("id")).and_then(Value::as_str);
        id.and_then(|id| names.get(id)).cloned().unwrap_or_default()
    };
    for i in incidents {
        let title = i.get("name").and_then(Value::as_str).unwrap_or("incident");
        let affected: Vec<String> = i.get("affected_components").and_then(Value::as_array).into_iter().flatten().flat_map(names_of).collect();
        if affected.iter().any(|n| is_api(n)) || (affected.is_empty() && is_api(title)) {
            return Ok(Verdict::Incident(title.to_string()));
        }
    }
    Ok(Verdict::Operational)
}

/// Component ids → their name and their group's name (a component in the "APIs" group is part
/// of the API whatever it is called).
fn collect_names(v: &Value, group: Option<&str>, out: &mut std::collections::HashMap<String, Vec<String>>) {
    match v {
        Value::Object(map) => {
            let id = map.get("component_id").or_else(|| map.get("id")).and_then(Value::as_str);
            let name = map.get("name").and_then(Value::as_str);
            if let (Some(id), Some(name)) = (id, name) {
                out.insert(id.to_string(), [Some(name), group].into_iter().flatten().map(str::to_string).collect());
            }
            // A group's members inherit its name.
            let inner = if map.contains_key("components") { name.or(group) } else { group };
            map.values().for_each(|x| collect_names(x, inner, out));
        }
        Value::Array(items) => items.iter().for_each(|x| collect_names(x, group, out)),
        _ => {}
    }
}

/// Which API a status page speaks, when known (a vendor preset says).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageKind {
    Statuspage,
    IncidentIo,
}

/// A provider's status page: read as a hint for that provider only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub url: String,
    /// `None`: a page set in the config, every format is tried.
    pub kind: Option<PageKind>,
}

impl Page {
    /// The provider's page: its vendor preset's (by host), or for OpenAI `[failover]
    /// status_page` (a mirror or a test page). `configured` empty turns every page off. A
    /// provider with no known page has none: it is skipped quietly.
    pub fn for_provider(provider: &understudy_core::config::ProviderConfig, configured: &str) -> Option<Page> {
        use understudy_core::providers::{preset_for_url, StatusPage};
        let configured = configured.trim();
        if configured.is_empty() {
            return None;
        }
        let preset = preset_for_url(&provider.base_url);
        let known = |sp: StatusPage| match sp {
            StatusPage::Statuspage { page } => Page { url: page.to_string(), kind: Some(PageKind::Statuspage) },
            StatusPage::IncidentIo { page } => Page { url: page.to_string(), kind: Some(PageKind::IncidentIo) },
        };
        let is_openai = preset.map_or(provider.id == "openai", |p| p.id == "openai");
        if is_openai {
            let default = understudy_core::providers::PRESETS[0].status_page.map(known);
            return match default {
                Some(d) if d.url == configured.trim_end_matches('/') => Some(d),
                _ => Some(Page { url: configured.to_string(), kind: None }),
            };
        }
        preset.and_then(|p| p.status_page).map(known)
    }
}

/// No format of the page could be read: each URL tried and why, in words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.join("; "))]
pub struct Unreadable(pub Vec<String>);

/// Asks the page in the formats its kind allows: incident.io's widget API, then its page feed;
/// the Statuspage API's summary, then status.
pub async fn check(http: &reqwest::Client, page: &Page) -> Result<Verdict, Unreadable> {
    let base = page.url.trim_end_matches('/');
    let host = base.split("://").nth(1).unwrap_or(base).split('/').next().unwrap_or_default();
    let mut problems = Vec::new();
    let io = page.kind != Some(PageKind::Statuspage);
    let sp = page.kind != Some(PageKind::IncidentIo);
    for (url, parse) in [
        (io.then(|| format!("{base}/api/v1/summary")), parse_incident_io as fn(&str) -> Result<Verdict, StatusPageError>),
        (io.then(|| format!("{base}/proxy/{host}")), parse_incident_io),
        (sp.then(|| format!("{base}/api/v2/summary.json")), parse_statuspage),
        (sp.then(|| format!("{base}/api/v2/status.json")), parse_statuspage),
    ] {
        let Some(url) = url else { continue };
        match http.get(&url).send().await {
            Ok(r) if r.status().is_success() => match r.text().await.map_err(|e| e.to_string()).and_then(|t| parse(&t).map_err(|e| e.to_string())) {
                Ok(v) => return Ok(v),
                Err(e) => problems.push(format!("{url}: {e}")),
            },
            Ok(r) => problems.push(format!("{url}: HTTP {}", r.status().as_u16())),
            Err(e) => problems.push(format!("{url}: {e}")),
        }
    }
    Err(Unreadable(problems))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_sp(body: &str, expect: Result<Verdict, StatusPageError>) {
        assert_eq!(parse_statuspage(body), expect, "{body}");
    }
    fn check_io(body: &str, expect: Result<Verdict, StatusPageError>) {
        assert_eq!(parse_incident_io(body), expect, "{body}");
    }
    fn incident(s: &str) -> Result<Verdict, StatusPageError> {
        Ok(Verdict::Incident(s.into()))
    }

    #[test]
    fn each_vendor_has_its_own_page_and_unknown_ones_none() {
        use understudy_core::config::{ApiKeySource, ProviderConfig};
        let p = |id: &str, url: &str| ProviderConfig { id: id.into(), base_url: url.into(), model: "m".into(), api_key: ApiKeySource::Keyring };
        let default = "https://status.openai.com";
        let page = |url: &str, kind| Some(Page { url: url.into(), kind });
        assert_eq!(Page::for_provider(&p("openai", "https://api.openai.com/v1"), default), page(default, Some(PageKind::IncidentIo)));
        assert_eq!(Page::for_provider(&p("groq", "https://api.groq.com/openai/v1"), default), page("https://groqstatus.com", Some(PageKind::Statuspage)));
        assert_eq!(
            Page::for_provider(&p("backup", "https://api.anthropic.com/v1"), default),
            page("https://status.anthropic.com", Some(PageKind::Statuspage)),
            "by host, not by id"
        );
        assert_eq!(Page::for_provider(&p("gemini", "https://generativelanguage.googleapis.com/v1beta/openai"), default), None, "no known page: skipped");
        assert_eq!(Page::for_provider(&p("ollama", "http://127.0.0.1:11434/v1"), default), None);
        // The config's page is OpenAI's (a mirror, or a test's); "" turns every page off.
        assert_eq!(Page::for_provider(&p("openai", "http://127.0.0.1:5/v1"), "http://127.0.0.1:6"), page("http://127.0.0.1:6", None));
        assert_eq!(Page::for_provider(&p("groq", "https://api.groq.com/openai/v1"), ""), None);
        assert_eq!(
            Page::for_provider(&p("groq", "https://api.groq.com/openai/v1"), "http://127.0.0.1:6"),
            page("https://groqstatus.com", Some(PageKind::Statuspage))
        );
    }

    #[test]
    fn statuspage_summary_and_status() {
        let ok = r#"{"page":{"id":"x"},"status":{"indicator":"none","description":"All Systems Operational"},"components":[{"name":"API","status":"operational"},{"name":"ChatGPT","status":"operational"}],"incidents":[]}"#;
        check_sp(ok, Ok(Verdict::Operational));
        check_sp(&ok.replace(r#""name":"API","status":"operational""#, r#""name":"API","status":"partial_outage""#), incident("API: partial outage"));
        check_sp(&ok.replace(r#""name":"ChatGPT","status":"operational""#, r#""name":"ChatGPT","status":"major_outage""#), Ok(Verdict::Operational));
        check_sp(
            &ok.replace(
                r#""incidents":[]"#,
                r#""incidents":[{"name":"Elevated errors on Chat Completions","status":"investigating","components":[{"name":"API"}]}]"#,
            ),
            incident("Elevated errors on Chat Completions"),
        );
        check_sp(
            &ok.replace(r#""incidents":[]"#, r#""incidents":[{"name":"Fixed","status":"resolved","components":[{"name":"API"}]}]"#),
            Ok(Verdict::Operational),
        );
        check_sp(r#"{"status":{"indicator":"major","description":"Major Service Outage"}}"#, incident("Major Service Outage"));
        check_sp(r#"{"status":{"indicator":"none"}}"#, Ok(Verdict::Operational));
        check_sp("<html>gateway timeout</html>", Err(StatusPageError::NotJson("expected value at line 1 column 1".into())));
        check_sp(r#"{"components":[{"title":"API"}]}"#, Err(StatusPageError::Shape));
        check_sp(r#"[1,2]"#, Err(StatusPageError::Shape));
    }

    #[test]
    fn incident_io_widget() {
        let structure = r#""structure":{"items":[{"group":{"name":"APIs","components":[{"component_id":"c1","name":"Chat Completions API"},{"component_id":"c2","name":"Responses API"}]}},{"component":{"component_id":"c3","name":"ChatGPT"}}]}"#;
        let page =
            |incidents: &str| format!(r#"{{"summary":{{"id":"p","name":"OpenAI",{structure},"ongoing_incidents":[{incidents}],"affected_components":[]}}}}"#);
        check_io(&page(""), Ok(Verdict::Operational));
        check_io(
            &page(r#"{"name":"Increased latency","status":"investigating","affected_components":[{"component_id":"c1"}]}"#),
            incident("Increased latency"),
        );
        check_io(&page(r#"{"name":"Login issues","status":"identified","affected_components":[{"component_id":"c3"}]}"#), Ok(Verdict::Operational));
        check_io(&page(r#"{"name":"API errors","status":"investigating"}"#), incident("API errors"));
        // A component named for what it is, in the APIs group.
        let grouped = r#""structure":{"items":[{"group":{"name":"APIs","components":[{"component_id":"c4","name":"Batch"}]}}]}"#;
        check_io(
            &format!(r#"{{"summary":{{{grouped},"ongoing_incidents":[{{"name":"Batch delays","affected_components":[{{"component_id":"c4"}}]}}]}}}}"#),
            incident("Batch delays"),
        );
        check_io(r#"{"summary":{"name":"OpenAI"}}"#, Err(StatusPageError::Shape));
        check_io(r#"{"unexpected":true}"#, Err(StatusPageError::Shape));
        assert!(matches!(parse_incident_io("{"), Err(StatusPageError::NotJson(_))));
    }

    #[test]
    fn incident_io_widget_api() {
        let page = |incidents: &str, maintenance: &str| {
            format!(
                r#"{{"page_title":"OpenAI","page_url":"https://status.openai.com","ongoing_incidents":[{incidents}],"in_progress_maintenances":[{maintenance}],"scheduled_maintenances":[]}}"#
            )
        };
        let incident_on = |name: &str, component: &str, group: &str| {
            format!(
                r#"{{"id":"01J","name":"{name}","status":"investigating","url":"https://status.openai.com/incidents/01J","last_update_at":"2026-11-30T08:00:00Z","last_update_message":"We are investigating.","current_worst_impact":"partial_outage","affected_components":[{{"id":"c1","name":"{component}","group_name":"{group}","current_status":"partial_outage"}}]}}"#
            )
        };
        check_io(&page("", ""), Ok(Verdict::Operational));
        check_io(&page(&incident_on("Elevated error rates", "Chat Completions", "APIs"), ""), incident("Elevated error rates"));
        check_io(&page(&incident_on("Conversation history missing", "Conversations", "ChatGPT"), ""), Ok(Verdict::Operational));
        let maintenance = r#"{"id":"m1","name":"Database upgrade","status":"maintenance_in_progress","affected_components":[{"id":"c1","name":"Chat Completions","group_name":"APIs","current_status":"under_maintenance"}]}"#;
        check_io(&page("", maintenance), Ok(Verdict::Operational));
        check_io(
            &page(&format!("{},{}", incident_on("Sora slow", "Video generation", "Sora"), incident_on("Fine-tuning jobs stuck", "Fine-tuning", "APIs")), ""),
            incident("Fine-tuning jobs stuck"),
        );
    }
}
