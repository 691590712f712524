//! SQLite store (rusqlite, bundled SQLite, WAL): conversations, messages, settings, full-text
//! search (FTS5), with versioned migrations.
//!
//! Durability rules: a user message is committed before its request starts
//! ([`Store::add_message`]); an assistant answer is created as `streaming` and its text saved
//! while it streams ([`StreamingMessage`] saves at least every 500 ms); opening the store marks
//! any answer still `streaming` from a crashed run as `interrupted`, keeping its text.

use std::path::Path;

pub mod export;
mod recover;
pub use recover::{Opened, StoreNotice};
// Keys live apart from the history (understudy-secrets); re-exported for the app's glue.
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
pub use understudy_secrets::{Backend, SecretError, Secrets};

use rusqlite::{params, Connection, OptionalExtension};
use rusqlite_migration::{Migrations, M};
use serde::Serialize;
use understudy_core::Turn;
pub use understudy_core::{ErrorClass, NextAction, Role};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("database {path}: {source}")]
    Open { path: String, source: rusqlite::Error },
    /// The database file or its permissions could not be set up.
    #[error("database {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("database migration failed: {0}")]
    Migrate(#[from] rusqlite_migration::Error),
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("no such {0}")]
    NotFound(&'static str),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// The state of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(rename = "MessageStatus"))]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Being written by a provider right now.
    Streaming,
    Complete,
    /// The app or the stream stopped before the answer ended; the text so far is kept.
    Interrupted,
    Error,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Streaming => "streaming",
            Status::Complete => "complete",
            Status::Interrupted => "interrupted",
            Status::Error => "error",
        }
    }
    fn parse(s: &str) -> Status {
        match s {
            "streaming" => Status::Streaming,
            "complete" => Status::Complete,
            "error" => Status::Error,
            _ => Status::Interrupted,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Conversation {
    pub id: i64,
    pub title: String,
    pub system_prompt: Option<String>,
    pub model: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Who wrote an answer and how it went.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Provenance {
    pub provider: Option<String>,
    pub model: Option<String>,
    pub failover_reason: Option<String>,
}

/// A stretch of an answer written by one provider; `start` is a char offset into the text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Part {
    pub provider: String,
    pub model: String,
    pub start: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Message {
    pub id: i64,
    pub conversation_id: i64,
    pub role: Role,
    pub content: String,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub failover_reason: Option<String>,
    pub prompt_tokens: Option<i64>,
    pub completion_tokens: Option<i64>,
    pub first_token_ms: Option<i64>,
    pub total_ms: Option<i64>,
    pub status: Status,
    pub error: Option<String>,
    /// The failure's kind and what the window offers to do about it, when `status` is `error`.
    pub error_class: Option<ErrorClass>,
    pub next_action: Option<NextAction>,
    pub created_at: i64,
    /// More than one entry when the answer switched provider mid-stream; empty otherwise.
    pub parts: Vec<Part>,
    /// Oldest messages the offline model left out of this answer's prompt (they did not fit).
    pub left_out: Option<i64>,
}

/// The message as a provider is sent it: who wrote it and its text.
impl From<&Message> for Turn {
    fn from(m: &Message) -> Turn {
        Turn::new(m.role, &m.content)
    }
}

/// A full-text search hit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Hit {
    pub conversation_id: i64,
    pub message_id: i64,
    pub title: String,
    /// The matching passage with `[` `]` around matched words.
    pub snippet: String,
}

fn migrations() -> Migrations<'static> {
    Migrations::new(migration_list())
}

/// The schema version this build writes (`PRAGMA user_version` after migrating).
pub fn schema_version() -> i64 {
    i64::try_from(migration_list().len()).unwrap_or(i64::MAX)
}

fn migration_list() -> Vec<M<'static>> {
    vec![
        M::up(
            "CREATE TABLE conversations (
            id INTEGER PRIMARY KEY,
            title TEXT NOT NULL,
            system_prompt TEXT,
            model TEXT,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            deleted_at INTEGER
        );
        CREATE TABLE messages (
            id INTEGER PRIMARY KEY,
            conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            role TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
            content TEXT NOT NULL,
            provider TEXT,
            model TEXT,
            failover_reason TEXT,
            prompt_tokens INTEGER,
            completion_tokens INTEGER,
            first_token_ms INTEGER,
            total_ms INTEGER,
            status TEXT NOT NULL,
            error TEXT,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL
        );
        CREATE INDEX messages_by_conversation ON messages(conversation_id, id);
        CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE VIRTUAL TABLE messages_fts USING fts5(content, content='messages', content_rowid='id', tokenize='unicode61 remove_diacritics 2');
        CREATE TRIGGER messages_ai AFTER INSERT ON messages BEGIN
            INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content);
        END;
        CREATE TRIGGER messages_ad AFTER DELETE ON messages BEGIN
            INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
        END;
        CREATE TRIGGER messages_au AFTER UPDATE OF content ON messages BEGIN
            INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
            INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content);
        END;",
        ),
        // Answers that switched provider mid-stream: which provider wrote which part.
        M::up("ALTER TABLE messages ADD COLUMN parts TEXT"),
        // How many of the oldest messages an offline answer had to leave out (its context).
        M::up("ALTER TABLE messages ADD COLUMN left_out INTEGER"),
        // A failed answer's class and next action as data, so the window branches on them, not on its words.
        M::up("ALTER TABLE messages ADD COLUMN error_class TEXT; ALTER TABLE messages ADD COLUMN next_action TEXT;"),
    ]
}

/// A `SELECT id, title, system_prompt, model, created_at, updated_at` row.
fn conversation_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Conversation> {
    Ok(Conversation { id: r.get(0)?, title: r.get(1)?, system_prompt: r.get(2)?, model: r.get(3)?, created_at: r.get(4)?, updated_at: r.get(5)? })
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[derive(Debug)]
pub struct Store {
    conn: Connection,
}

/// Creates the database file 0600 if missing and sets it and any `-wal` / `-shm` beside it to
/// 0600 (Unix).
fn private_files(db: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        std::fs::OpenOptions::new().write(true).create(true).truncate(false).mode(0o600).open(db)?;
        for suffix in ["", "-wal", "-shm"] {
            let mut p = db.as_os_str().to_owned();
            p.push(suffix);
            match std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
    }
    #[cfg(not(unix))]
    let _ = db;
    Ok(())
}

impl Store {
    /// Opens (creating and migrating) the database, and marks answers left `streaming` by a
    /// previous run as `interrupted`.
    ///
    /// The database is owner-only (0600 on Unix, whatever the umask; a file an older version
    /// made is tightened). SQLite gives its `-wal` and `-shm` files the database's mode.
    pub fn open(path: &Path) -> Result<Store> {
        if let Some(parent) = path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        private_files(path).map_err(|source| StoreError::Io { path: path.display().to_string(), source })?;
        let conn = Connection::open(path).map_err(|source| StoreError::Open { path: path.display().to_string(), source })?;
        Store::init(conn)
    }

    /// [`Store::open`] that also checks the file (`quick_check`, the schema version) and says
    /// why it could not open, for [`Store::open_or_recover`].
    pub(crate) fn open_checked(path: &Path, lock_wait: Duration) -> std::result::Result<Store, recover::Problem> {
        if let Some(parent) = path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        // A directory (or anything but a file) where the database belongs is as unreadable as garbage.
        if std::fs::metadata(path).is_ok_and(|m| !m.is_file()) {
            return Err(recover::Problem::Damaged("not a file".into()));
        }
        // Checked before SQLite sees the file: closing a connection to a file it rejects deletes
        // the `-wal` and `-shm` beside it, and a `-wal` may hold the latest answers.
        if let Some(why) = recover::bad_header(path) {
            return Err(recover::Problem::Damaged(why));
        }
        private_files(path).map_err(|source| StoreError::Io { path: path.display().to_string(), source })?;
        let mut conn = Connection::open(path).map_err(|source| StoreError::Open { path: path.display().to_string(), source })?;
        Store::configure(&conn, lock_wait)?;
        let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(StoreError::from)?;
        if found > schema_version() {
            return Err(recover::Problem::Newer(found));
        }
        let check: String = conn.query_row("PRAGMA quick_check(1)", [], |r| r.get(0)).map_err(StoreError::from)?;
        if check != "ok" {
            return Err(recover::Problem::Damaged(check));
        }
        migrations().to_latest(&mut conn).map_err(StoreError::from)?;
        let store = Store { conn };
        store.recover()?;
        Ok(store)
    }

    /// An in-memory store, for tests and previews.
    pub fn open_in_memory() -> Result<Store> {
        Store::init(Connection::open_in_memory()?)
    }

    fn init(mut conn: Connection) -> Result<Store> {
        Store::configure(&conn, Duration::from_secs(5))?;
        migrations().to_latest(&mut conn)?;
        let store = Store { conn };
        store.recover()?;
        Ok(store)
    }

    fn configure(conn: &Connection, lock_wait: Duration) -> Result<()> {
        conn.busy_timeout(lock_wait)?;
        // WAL: readers never block the writer; NORMAL sync is durable across app crashes
        // (only an OS crash can lose the last transactions), which is the failure we design for.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        Ok(())
    }

    fn recover(&self) -> Result<usize> {
        Ok(self.conn.execute("UPDATE messages SET status = 'interrupted', updated_at = ?1 WHERE status = 'streaming'", params![now_ms()])?)
    }

    /// `PRAGMA integrity_check`: "ok" when the file is sound.
    pub fn integrity_check(&self) -> Result<String> {
        Ok(self.conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?)
    }

    pub fn create_conversation(&self, title: &str) -> Result<Conversation> {
        let now = now_ms();
        self.conn.execute(
            "INSERT INTO conversations (title, created_at, updated_at) VALUES (?1, ?2, MAX(?2, (SELECT COALESCE(MAX(updated_at), 0) FROM conversations) + 1))",
            params![title, now],
        )?;
        self.conversation(self.conn.last_insert_rowid())
    }

    pub fn conversation(&self, id: i64) -> Result<Conversation> {
        self.conn
            .query_row(
                "SELECT id, title, system_prompt, model, created_at, updated_at FROM conversations WHERE id = ?1 AND deleted_at IS NULL",
                params![id],
                conversation_row,
            )
            .optional()?
            .ok_or(StoreError::NotFound("conversation"))
    }

    /// Most recently active (created or written to) first; deleted ones are left out.
    pub fn conversations(&self) -> Result<Vec<Conversation>> {
        let mut stmt = self.conn.prepare(
            "SELECT id, title, system_prompt, model, created_at, updated_at FROM conversations WHERE deleted_at IS NULL ORDER BY updated_at DESC, id DESC",
        )?;
        let rows = stmt.query_map([], conversation_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn rename_conversation(&self, id: i64, title: &str) -> Result<()> {
        self.touch_conversation("title", id, Some(title))
    }

    pub fn set_system_prompt(&self, id: i64, prompt: Option<&str>) -> Result<()> {
        self.touch_conversation("system_prompt", id, prompt)
    }

    pub fn set_conversation_model(&self, id: i64, model: Option<&str>) -> Result<()> {
        self.touch_conversation("model", id, model)
    }

    fn touch_conversation(&self, column: &'static str, id: i64, value: Option<&str>) -> Result<()> {
        // Editing a conversation's settings is not activity: its place in the list stays.
        let sql = format!("UPDATE conversations SET {column} = ?1 WHERE id = ?2 AND deleted_at IS NULL");
        match self.conn.execute(&sql, params![value, id])? {
            0 => Err(StoreError::NotFound("conversation")),
            _ => Ok(()),
        }
    }

    /// Hides a conversation; [`Store::restore_conversation`] undoes it until
    /// [`Store::purge_deleted`] removes it for good.
    pub fn delete_conversation(&self, id: i64) -> Result<()> {
        match self.conn.execute("UPDATE conversations SET deleted_at = ?1 WHERE id = ?2 AND deleted_at IS NULL", params![now_ms(), id])? {
            0 => Err(StoreError::NotFound("conversation")),
            _ => Ok(()),
        }
    }

    pub fn restore_conversation(&self, id: i64) -> Result<()> {
        match self.conn.execute("UPDATE conversations SET deleted_at = NULL WHERE id = ?1 AND deleted_at IS NOT NULL", params![id])? {
            0 => Err(StoreError::NotFound("deleted conversation")),
            _ => Ok(()),
        }
    }

    /// Removes conversations deleted more than `older_than` ago, with their messages.
    pub fn purge_deleted(&self, older_than: Duration) -> Result<usize> {
        let cutoff = now_ms().saturating_sub(i64::try_from(older_than.as_millis()).unwrap_or(i64::MAX));
        Ok(self.conn.execute("DELETE FROM conversations WHERE deleted_at IS NOT NULL AND deleted_at <= ?1", params![cutoff])?)
    }

    /// Commits a finished message (the user's, before its request starts). Returns its id.
    pub fn add_message(&self, conversation_id: i64, role: Role, content: &str) -> Result<i64> {
        self.insert_message(conversation_id, role, content, Status::Complete, &Provenance::default())
    }

    /// Creates an assistant answer in the `streaming` state; fill it with [`StreamingMessage`].
    pub fn begin_answer(&self, conversation_id: i64, by: &Provenance) -> Result<i64> {
        self.insert_message(conversation_id, Role::Assistant, "", Status::Streaming, by)
    }

    fn insert_message(&self, conversation_id: i64, role: Role, content: &str, status: Status, by: &Provenance) -> Result<i64> {
        let now = now_ms();
        let tx = self.conn.unchecked_transaction()?;
        tx.execute(
            "INSERT INTO messages (conversation_id, role, content, provider, model, failover_reason, status, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
            params![conversation_id, role.as_str(), content, by.provider, by.model, by.failover_reason, status.as_str(), now],
        )?;
        let id = tx.last_insert_rowid();
        // Strictly increasing, so "most recently active" is exact even within one millisecond.
        tx.execute(
            "UPDATE conversations SET updated_at = MAX(?1, (SELECT MAX(updated_at) FROM conversations) + 1) WHERE id = ?2",
            params![now, conversation_id],
        )?;
        tx.commit()?;
        Ok(id)
    }

    /// Saves the text streamed so far.
    pub fn save_partial(&self, message_id: i64, content: &str) -> Result<()> {
        self.conn.execute("UPDATE messages SET content = ?1, updated_at = ?2 WHERE id = ?3", params![content, now_ms(), message_id])?;
        Ok(())
    }

    /// Records how an answer ended.
    pub fn finish_answer(&self, message_id: i64, content: &str, end: &AnswerEnd) -> Result<()> {
        self.conn.execute(
            "UPDATE messages SET content = ?1, status = ?2, error = ?3, prompt_tokens = ?4, completion_tokens = ?5,
             first_token_ms = ?6, total_ms = ?7, provider = COALESCE(?8, provider), model = COALESCE(?9, model),
             failover_reason = COALESCE(?10, failover_reason), updated_at = ?11, parts = ?13, left_out = ?14,
             error_class = ?15, next_action = ?16 WHERE id = ?12",
            params![
                content,
                end.status.as_str(),
                end.error,
                end.prompt_tokens,
                end.completion_tokens,
                end.first_token_ms,
                end.total_ms,
                end.by.provider,
                end.by.model,
                end.by.failover_reason,
                now_ms(),
                message_id,
                (!end.parts.is_empty()).then(|| serde_json::to_string(&end.parts).expect("parts serialise")),
                end.left_out,
                end.error_class.map(ErrorClass::as_str),
                end.next_action.map(NextAction::as_str),
            ],
        )?;
        Ok(())
    }

    pub fn messages(&self, conversation_id: i64) -> Result<Vec<Message>> {
        self.messages_where("conversation_id = ?1", conversation_id)
    }

    fn messages_where(&self, filter: &'static str, value: i64) -> Result<Vec<Message>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT id, conversation_id, role, content, provider, model, failover_reason, prompt_tokens, completion_tokens,
                    first_token_ms, total_ms, status, error, created_at, parts, left_out, error_class, next_action
             FROM messages WHERE {filter} ORDER BY id"
        ))?;
        let rows = stmt.query_map(params![value], |r| {
            Ok(Message {
                id: r.get(0)?,
                conversation_id: r.get(1)?,
                role: r.get::<_, String>(2)?.parse().map_err(|e| rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, Box::new(e)))?,
                content: r.get(3)?,
                provider: r.get(4)?,
                model: r.get(5)?,
                failover_reason: r.get(6)?,
                prompt_tokens: r.get(7)?,
                completion_tokens: r.get(8)?,
                first_token_ms: r.get(9)?,
                total_ms: r.get(10)?,
                status: Status::parse(&r.get::<_, String>(11)?),
                error: r.get(12)?,
                created_at: r.get(13)?,
                parts: r.get::<_, Option<String>>(14)?.and_then(|j| serde_json::from_str(&j).ok()).unwrap_or_default(),
                left_out: r.get(15)?,
                error_class: r.get::<_, Option<String>>(16)?.as_deref().and_then(ErrorClass::parse),
                next_action: r.get::<_, Option<String>>(17)?.as_deref().and_then(NextAction::parse),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn message(&self, id: i64) -> Result<Message> {
        self.messages_where("id = ?1", id)?.pop().ok_or(StoreError::NotFound("message"))
    }

    /// Replaces a user message's text (edit and resend); the search index follows.
    pub fn edit_message(&self, id: i64, content: &str) -> Result<()> {
        match self.conn.execute("UPDATE messages SET content = ?1, updated_at = ?2 WHERE id = ?3", params![content, now_ms(), id])? {
            0 => Err(StoreError::NotFound("message")),
            _ => Ok(()),
        }
    }

    /// Removes every message of the conversation that came after `message_id` (regenerate,
    /// edit and resend). Returns how many went.
    pub fn delete_messages_after(&self, conversation_id: i64, message_id: i64) -> Result<usize> {
        Ok(self.conn.execute("DELETE FROM messages WHERE conversation_id = ?1 AND id > ?2", params![conversation_id, message_id])?)
    }

    /// Full-text search over all messages of conversations not deleted. Words are matched as
    /// prefixes; the query's punctuation is ignored, so user input is never FTS syntax.
    pub fn search(&self, query: &str, limit: usize) -> Result<Vec<Hit>> {
        let terms: Vec<String> = query.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(|w| format!("\"{w}\"*")).collect();
        if terms.is_empty() {
            return Ok(Vec::new());
        }
        let mut stmt = self.conn.prepare(
            "SELECT m.conversation_id, m.id, c.title, snippet(messages_fts, 0, '[', ']', '…', 12)
             FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid JOIN conversations c ON c.id = m.conversation_id
             WHERE messages_fts MATCH ?1 AND c.deleted_at IS NULL ORDER BY rank LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![terms.join(" "), limit as i64], |r| {
            Ok(Hit { conversation_id: r.get(0)?, message_id: r.get(1)?, title: r.get(2)?, snippet: r.get(3)? })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn setting(&self, key: &str) -> Result<Option<String>> {
        Ok(self.conn.query_row("SELECT value FROM settings WHERE key = ?1", params![key], |r| r.get(0)).optional()?)
    }

    pub fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        self.conn.execute("INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value", params![key, value])?;
        Ok(())
    }

    /// Forgets a setting (one that moved elsewhere); true when there was one.
    pub fn remove_setting(&self, key: &str) -> Result<bool> {
        Ok(self.conn.execute("DELETE FROM settings WHERE key = ?1", params![key])? > 0)
    }
}

/// How an answer ended, for [`Store::finish_answer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerEnd {
    pub status: Status,
    pub error: Option<String>,
    pub error_class: Option<ErrorClass>,
    pub next_action: Option<NextAction>,
    pub prompt_tokens: Option<i64>,
    pub completion_tokens: Option<i64>,
    pub first_token_ms: Option<i64>,
    pub total_ms: Option<i64>,
    /// Set fields replace what `begin_answer` recorded (a mid-stream switch changes them).
    pub by: Provenance,
    /// Who wrote which part, when the answer switched provider mid-stream.
    pub parts: Vec<Part>,
    pub left_out: Option<i64>,
}

impl AnswerEnd {
    /// Ended with `status`; nothing else known yet.
    pub fn new(status: Status) -> AnswerEnd {
        AnswerEnd {
            status,
            error: None,
            error_class: None,
            next_action: None,
            prompt_tokens: None,
            completion_tokens: None,
            first_token_ms: None,
            total_ms: None,
            by: Provenance::default(),
            parts: Vec::new(),
            left_out: None,
        }
    }
}

/// An answer being streamed into the store: text accumulates in memory and is saved at least
/// every `every` (500 ms by default), so a crash loses at most that much. A save that fails (a
/// full or read-only disk) keeps the text in memory and is due again one interval later; even
/// the answer's row may be created late ([`StreamingMessage::new`]).
#[derive(Debug)]
pub struct StreamingMessage {
    id: Option<i64>,
    conversation_id: i64,
    by: Provenance,
    text: String,
    dirty: bool,
    last_save: Instant,
    every: Duration,
}

impl StreamingMessage {
    pub const SAVE_EVERY: Duration = Duration::from_millis(500);

    /// Creates the answer's row (`streaming`) at once.
    pub fn begin(store: &Store, conversation_id: i64, by: &Provenance) -> Result<StreamingMessage> {
        let mut m = StreamingMessage::new(conversation_id, by);
        m.flush(store)?;
        Ok(m)
    }

    /// An answer not in the store yet: the first [`StreamingMessage::flush`] that works creates
    /// its row, so it can stream on while the disk refuses writes.
    pub fn new(conversation_id: i64, by: &Provenance) -> StreamingMessage {
        StreamingMessage { id: None, conversation_id, by: by.clone(), text: String::new(), dirty: true, last_save: Instant::now(), every: Self::SAVE_EVERY }
    }

    /// The stored message's id, once its row exists.
    pub fn id(&self) -> Option<i64> {
        self.id
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// Appends a delta; saves when the last save is older than the interval. On an error the
    /// delta is kept all the same.
    pub fn push(&mut self, store: &Store, delta: &str) -> Result<()> {
        self.text.push_str(delta);
        self.dirty = true;
        if self.last_save.elapsed() >= self.every {
            self.flush(store)?;
        }
        Ok(())
    }

    /// When unsaved text must be written so that it is stored within the interval of arriving
    /// even if no more comes (a stalled stream), or a failed save is tried again: `None` when
    /// everything is saved.
    pub fn flush_due(&self) -> Option<Instant> {
        self.dirty.then(|| self.last_save.checked_add(self.every).unwrap_or(self.last_save))
    }

    pub fn flush(&mut self, store: &Store) -> Result<()> {
        if self.dirty {
            // A failed save is tried again an interval later, not in a busy loop.
            self.last_save = Instant::now();
            let id = self.row(store)?;
            store.save_partial(id, &self.text)?;
            self.dirty = false;
        }
        Ok(())
    }

    /// Records how the answer ended (creating its row if no save worked yet); returns its id.
    /// May be called again after an error.
    pub fn finish(&mut self, store: &Store, end: &AnswerEnd) -> Result<i64> {
        let id = self.row(store)?;
        store.finish_answer(id, &self.text, end)?;
        self.dirty = false;
        Ok(id)
    }

    fn row(&mut self, store: &Store) -> Result<i64> {
        match self.id {
            Some(id) => Ok(id),
            None => {
                let id = store.begin_answer(self.conversation_id, &self.by)?;
                self.id = Some(id);
                Ok(id)
            }
        }
    }
}
