import { Channel } from "@tauri-apps/api/core";
import { call } from "./call";
import type { Because, Conversation, ErrorClass, ExportFormat, FailoverReason, Hit, Message, MessageStatus, NextAction, TurnEvent } from "./generated/types";

// Generated from the Rust types (src-tauri/src/ts.rs): a conversation, its stored messages (a
// failure's kind and what the window offers about it included), a search hit (`snippet` marks
// matched words with [ and ]), and what arrives while an answer is written.
export type { Because, Conversation, ErrorClass, FailoverReason, Hit, Message, MessageStatus, NextAction, TurnEvent };

function channel(onEvent: (e: TurnEvent) => void): Channel<TurnEvent> {
  const ch = new Channel<TurnEvent>();
  ch.onmessage = onEvent;
  return ch;
}

export const listConversations = () => call("list_conversations");
export const createConversation = () => call("create_conversation");
export const renameConversation = (id: number, title: string) => call("rename_conversation", { id, title });
export const deleteConversation = (id: number) => call("delete_conversation", { id });
export const restoreConversation = (id: number) => call("restore_conversation", { id });
export const searchMessages = (query: string) => call("search_messages", { query });
export const getMessages = (id: number) => call("get_messages", { id });
export const setConversationOptions = (id: number, systemPrompt: string | null, model: string | null) =>
  call("set_conversation_options", { id, systemPrompt, model });

/** Sends a message; events stream to `onEvent`; resolves with the stored answer. */
export const sendMessage = (id: number, text: string, onEvent: (e: TurnEvent) => void) =>
  call("send_message", { id, text, channel: channel(onEvent) });
/** Answers the last question again; `provider` pins who answers ("openai" for "Ask OpenAI again"). */
export const regenerate = (id: number, onEvent: (e: TurnEvent) => void, provider: string | null = null) =>
  call("regenerate", { id, provider, channel: channel(onEvent) });
export const editAndResend = (messageId: number, text: string, onEvent: (e: TurnEvent) => void) =>
  call("edit_and_resend", { messageId, text, channel: channel(onEvent) });
/** Stops the answer being written; its text so far is kept. */
export const stopAnswer = (id: number) => call("stop_answer", { id });
/** Saves the conversation into Downloads; resolves with the file path. */
export const exportConversation = (id: number, format: ExportFormat) => call("export_conversation", { id, format });
