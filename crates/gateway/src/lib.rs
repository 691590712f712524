//! The router served as a loopback OpenAI-compatible HTTP API (axum): chat completions,
//! models, status; provider headers, Host checks, optional bearer token.
//!
//! Empty until the "Gateway" issue lands (see ARCHITECTURE.md).
