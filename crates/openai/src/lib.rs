//! OpenAI-compatible client: reqwest (rustls) + eventsource-stream, streamed and complete chat
//! completions, `GET /models`, connect / first-token / stall timeouts, and the failure
//! classification (design.md section 3) the router acts on. Any base URL that speaks the API
//! works (OpenAI, Groq, Mistral, OpenRouter, local servers).

mod client;
mod error;
mod headers;

pub use client::{
    carries_tool_call, decode_chunk, decode_value, reasons_silently, request_body, ChatMessage, ChatRequest, ChatResponse, ChatStream, ChunkError, Client,
    ClientConfig, Decoded, ModelInfo, StreamEvent, Usage, WholeAnswer,
};
pub use error::{classify, Error, ErrorKind, FailureClass};
pub use headers::{AnswerHeaders, ANSWER_HEADERS};
