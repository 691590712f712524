//! A conversation as Markdown or JSON, every answer labelled with the provider and model that
//! wrote it. Built only from the store's rows, which never hold a secret.

use serde::Serialize;
use understudy_core::providers;

use crate::{Conversation, Message, Role, Status};

fn author(m: &Message) -> String {
    match m.role {
        Role::User => "You".to_string(),
        Role::System => "System".to_string(),
        _ => {
            let provider = m.provider.as_deref().map(providers::label_of_id).unwrap_or_else(|| "Assistant".to_string());
            match &m.model {
                Some(model) => format!("{provider} · {model}"),
                None => provider,
            }
        }
    }
}

fn note(m: &Message) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(reason) = &m.failover_reason {
        parts.push(format!("answered here because {reason}"));
    }
    match m.status {
        Status::Interrupted => parts.push("stopped before the end".to_string()),
        Status::Error => parts.push(format!("failed: {}", m.error.as_deref().unwrap_or("unknown error"))),
        Status::Streaming => parts.push("still being written".to_string()),
        Status::Complete => {}
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

pub fn markdown(c: &Conversation, messages: &[Message]) -> String {
    let mut out = format!("# {}\n\n", c.title);
    if let Some(prompt) = c.system_prompt.as_deref().filter(|p| !p.trim().is_empty()) {
        out.push_str(&format!("> System prompt: {}\n\n", prompt.replace('\n', "\n> ")));
    }
    for m in messages {
        out.push_str(&format!("## {}\n\n", author(m)));
        if let Some(note) = note(m) {
            out.push_str(&format!("_({note})_\n\n"));
        }
        if !m.content.is_empty() {
            out.push_str(m.content.trim_end());
            out.push_str("\n\n");
        }
    }
    out
}

#[derive(Serialize)]
struct JsonExport<'a> {
    title: &'a str,
    system_prompt: Option<&'a str>,
    model: Option<&'a str>,
    created_at: i64,
    messages: Vec<JsonMessage<'a>>,
}

#[derive(Serialize)]
struct JsonMessage<'a> {
    role: Role,
    content: &'a str,
    /// "OpenAI · gpt-4o-mini" for answers; "You" for the user.
    author: String,
    provider: Option<&'a str>,
    model: Option<&'a str>,
    failover_reason: Option<&'a str>,
    status: Status,
    error: Option<&'a str>,
    prompt_tokens: Option<i64>,
    completion_tokens: Option<i64>,
    created_at: i64,
}

pub fn json(c: &Conversation, messages: &[Message]) -> String {
    let doc = JsonExport {
        title: &c.title,
        system_prompt: c.system_prompt.as_deref(),
        model: c.model.as_deref(),
        created_at: c.created_at,
        messages: messages
            .iter()
            .map(|m| JsonMessage {
                role: m.role,
                content: &m.content,
                author: author(m),
                provider: m.provider.as_deref(),
                model: m.model.as_deref(),
                failover_reason: m.failover_reason.as_deref(),
                status: m.status,
                error: m.error.as_deref(),
                prompt_tokens: m.prompt_tokens,
                completion_tokens: m.completion_tokens,
                created_at: m.created_at,
            })
            .collect(),
    };
    serde_json::to_string_pretty(&doc).expect("plain data serialises")
}

/// The two export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(rename = "ExportFormat"))]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Markdown,
    Json,
}

/// Writes the conversation into `dir` as `<title>.md` / `.json` (never replacing a file: a
/// number is added; owner-only, 0600 on Unix) and returns the path.
pub fn save(dir: &std::path::Path, c: &Conversation, messages: &[Message], format: Format) -> std::io::Result<std::path::PathBuf> {
    let (text, ext) = match format {
        Format::Markdown => (markdown(c, messages), "md"),
        Format::Json => (json(c, messages), "json"),
    };
    std::fs::create_dir_all(dir)?;
    let stem = file_stem(&c.title);
    for n in 1..1000 {
        let name = if n == 1 { format!("{stem}.{ext}") } else { format!("{stem} ({n}).{ext}") };
        let path = dir.join(name);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(&path) {
            Ok(mut f) => {
                // Owner-only whatever the umask: a conversation is private (Downloads is often
                // readable by others).
                #[cfg(unix)]
                f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
                std::io::Write::write_all(&mut f, text.as_bytes())?;
                return Ok(path);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::new(std::io::ErrorKind::AlreadyExists, "too many exports with this name"))
}

/// A title made safe as a file name on every OS: no separators or reserved characters.
fn file_stem(title: &str) -> String {
    let s: String = title.chars().map(|c| if c.is_control() || "/\\:*?\"<>|".contains(c) { '_' } else { c }).collect();
    let s = s.trim().trim_start_matches('.').trim();
    let s: String = s.chars().take(80).collect();
    if s.is_empty() {
        "conversation".into()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AnswerEnd, Provenance, Store};

    fn sample() -> (Conversation, Vec<Message>) {
        let s = Store::open_in_memory().unwrap();
        let c = s.create_conversation("Trip").unwrap();
        s.set_system_prompt(c.id, Some("Be brief")).unwrap();
        s.add_message(c.id, Role::User, "Capital of France?").unwrap();
        let by = Provenance { provider: Some("openai".into()), model: Some("gpt-4o-mini".into()), failover_reason: None };
        let a = s.begin_answer(c.id, &by).unwrap();
        s.finish_answer(a, "Paris.", &AnswerEnd { prompt_tokens: Some(9), completion_tokens: Some(2), ..AnswerEnd::new(Status::Complete) }).unwrap();
        s.add_message(c.id, Role::User, "And Italy?").unwrap();
        let local =
            Provenance { provider: Some("local".into()), model: Some("gemma-3-270m".into()), failover_reason: Some("OpenAI could not be reached".into()) };
        let b = s.begin_answer(c.id, &local).unwrap();
        s.finish_answer(b, "Rome", &AnswerEnd::new(Status::Interrupted)).unwrap();
        let c = s.conversation(c.id).unwrap();
        let m = s.messages(c.id).unwrap();
        (c, m)
    }

    #[test]
    fn markdown_labels_each_answer_with_its_provider_and_model() {
        let (c, m) = sample();
        let md = markdown(&c, &m);
        assert!(md.starts_with("# Trip\n\n> System prompt: Be brief\n"), "{md}");
        assert!(md.contains("## You\n\nCapital of France?"), "{md}");
        assert!(md.contains("## OpenAI · gpt-4o-mini\n\nParis."), "{md}");
        assert!(md.contains("## Local model · gemma-3-270m\n\n_(answered here because OpenAI could not be reached; stopped before the end)_\n\nRome"), "{md}");
    }

    #[test]
    fn save_never_overwrites_and_keeps_names_inside_the_folder() {
        let (mut c, m) = sample();
        let dir = tempfile::tempdir().unwrap();
        c.title = "../../etc/passwd: a *plan*?".into();
        let a = save(dir.path(), &c, &m, Format::Markdown).unwrap();
        let b = save(dir.path(), &c, &m, Format::Markdown).unwrap();
        let j = save(dir.path(), &c, &m, Format::Json).unwrap();
        assert_eq!(a.parent().unwrap(), dir.path());
        assert_eq!(a.file_name().unwrap(), "_.._etc_passwd_ a _plan__.md");
        assert_eq!(b.file_name().unwrap(), "_.._etc_passwd_ a _plan__ (2).md");
        assert!(std::fs::read_to_string(&a).unwrap().contains("## OpenAI · gpt-4o-mini"));
        assert!(serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(j).unwrap()).is_ok());
    }

    #[test]
    fn json_keeps_roles_text_and_provenance() {
        let (c, m) = sample();
        let v: serde_json::Value = serde_json::from_str(&json(&c, &m)).unwrap();
        assert_eq!(v["title"], "Trip");
        assert_eq!(v["messages"].as_array().unwrap().len(), 4);
        assert_eq!(v["messages"][1]["author"], "OpenAI · gpt-4o-mini");
        assert_eq!(v["messages"][1]["completion_tokens"], 2);
        assert_eq!(v["messages"][3]["provider"], "local");
        assert_eq!(v["messages"][3]["status"], "interrupted");
        assert_eq!(v["messages"][3]["failover_reason"], "OpenAI could not be reached");
    }
}
