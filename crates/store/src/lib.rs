//! SQLite store (rusqlite, WAL): conversations, messages, settings, full-text search; the OS
//! keyring (with a user-only file fallback) for the API key.
//!
//! Empty until the "Cloud chat" issue lands (see ARCHITECTURE.md).
