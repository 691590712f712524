import { Channel } from "@tauri-apps/api/core";
import { call } from "./call";
import type { ErrorClass, NextAction } from "./generated/failure";

// A failure's kind and what the window offers about it, generated from Rust (crates/core/src/failure.rs).
export type { ErrorClass, NextAction };

/** Rust: understudy_store::Conversation. */
export interface Conversation {
  id: number;
  title: string;
  system_prompt: string | null;
  model: string | null;
  created_at: number;
  updated_at: number;
}

export type MessageStatus = "streaming" | "complete" | "interrupted" | "error";

/** Rust: understudy_store::Message. */
export interface Message {
  id: number;
  conversation_id: number;
  role: "user" | "assistant" | "system";
  content: string;
  provider: string | null;
  model: string | null;
  failover_reason: string | null;
  prompt_tokens: number | null;
  completion_tokens: number | null;
  first_token_ms: number | null;
  total_ms: number | null;
  status: MessageStatus;
  /** Why it failed or stopped, in words, with the next step. For people: nothing branches on it. */
  error: string | null;
  /** A failed answer's kind (null unless `status` is "error", and for answers stored before it was kept). */
  error_class: ErrorClass | null;
  /** What the window offers for a failed answer (e.g. the model library for "download_model"). */
  next_action: NextAction | null;
  created_at: number;
  /** Who wrote which part (char offsets) when the answer switched provider mid-stream. */
  parts: { provider: string; model: string; start: number }[];
  /** How many of the oldest messages the offline model left out (they did not fit its context). */
  left_out: number | null;
}

/** A search hit; `snippet` marks matched words with [ and ]. */
export interface Hit {
  conversation_id: number;
  message_id: number;
  title: string;
  snippet: string;
}

/** Why the provider before did not answer (Rust: understudy_router::FailoverReason). */
export type FailoverReason =
  | "timed_out"
  | "stalled"
  | "unreachable"
  | "server_error"
  | "rate_limited"
  | "account_problem"
  | "cut_off"
  | "bad_stream"
  | "down"
  | "no_key"
  | "key_needed_for_host"
  | "failed";

/** Who failed before the provider that answers, and how (Rust: understudy_router::Because). */
export interface Because {
  provider: string;
  label: string;
  reason: FailoverReason;
}

/** What arrives while an answer is written (Rust: understudy_router::TurnEvent). */
export type TurnEvent =
  | { type: "user_message"; message: Message }
  | { type: "answer_started"; message_id: number | null; provider: string; label: string; model: string; failover: string | null; because?: Because | null }
  | { type: "token"; text: string }
  | { type: "reasoning"; text: string }
  | { type: "switched"; provider: string; label: string; model: string; reason: string; because?: Because }
  /** A save failed (full or read-only disk): the answer streams on and the save is retried. */
  | { type: "not_saved"; reason: string }
  /** Saving works again after `not_saved`. */
  | { type: "saved" }
  | { type: "finished"; message: Message };

function channel(onEvent: (e: TurnEvent) => void): Channel<TurnEvent> {
  const ch = new Channel<TurnEvent>();
  ch.onmessage = onEvent;
  return ch;
}

export const listConversations = () => call<Conversation[]>("list_conversations");
export const createConversation = () => call<Conversation>("create_conversation");
export const renameConversation = (id: number, title: string) => call<void>("rename_conversation", { id, title });
export const deleteConversation = (id: number) => call<void>("delete_conversation", { id });
export const restoreConversation = (id: number) => call<void>("restore_conversation", { id });
export const searchMessages = (query: string) => call<Hit[]>("search_messages", { query });
export const getMessages = (id: number) => call<Message[]>("get_messages", { id });
export const setConversationOptions = (id: number, systemPrompt: string | null, model: string | null) =>
  call<Conversation>("set_conversation_options", { id, systemPrompt, model });

/** Sends a message; events stream to `onEvent`; resolves with the stored answer. */
export const sendMessage = (id: number, text: string, onEvent: (e: TurnEvent) => void) =>
  call<Message>("send_message", { id, text, channel: channel(onEvent) });
/** Answers the last question again; `provider` pins who answers ("openai" for "Ask OpenAI again"). */
export const regenerate = (id: number, onEvent: (e: TurnEvent) => void, provider: string | null = null) =>
  call<Message>("regenerate", { id, provider, channel: channel(onEvent) });
export const editAndResend = (messageId: number, text: string, onEvent: (e: TurnEvent) => void) =>
  call<Message>("edit_and_resend", { messageId, text, channel: channel(onEvent) });
/** Stops the answer being written; its text so far is kept. */
export const stopAnswer = (id: number) => call<boolean>("stop_answer", { id });
/** Saves the conversation into Downloads; resolves with the file path. */
export const exportConversation = (id: number, format: "markdown" | "json") => call<string>("export_conversation", { id, format });
