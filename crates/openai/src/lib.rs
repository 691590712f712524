//! OpenAI-compatible client: reqwest + eventsource-stream, streaming chat completions,
//! connect / first-token / stall timeouts and the failure classification the router acts on.
//!
//! Empty until the "Cloud chat" issue lands; the crate exists so the workspace layout and
//! dependency seams are fixed from the start (see ARCHITECTURE.md).
