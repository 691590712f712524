// An in-memory stand-in for the Rust conversation commands (ui/src/api/chat.ts), so component
// tests drive the real Chat state and components. Streaming is scripted per test.
import { vi } from "vitest";
import type { Conversation, Hit, Message, TurnEvent } from "./api/chat";

export interface Script {
  /** Tokens of the next answer. */
  tokens: string[];
  provider?: string;
  label?: string;
  model?: string;
  failover?: string | null;
  /** End with this error instead of completing. */
  error?: string;
  /** Hold the answer open until stopAnswer() (for Stop tests). */
  hold?: boolean;
  /** Switch to the local model after this many tokens (a mid-stream failover). */
  switchAfter?: number;
}

export function fakeBackend() {
  let nextId = 1;
  const conversations: Conversation[] = [];
  const messages: Message[] = [];
  const deleted = new Set<number>();
  let script: Script = { tokens: ["Hello", " there."] };
  let release: (() => void) | null = null;

  const msg = (conversation_id: number, role: Message["role"], content: string, over: Partial<Message> = {}): Message => ({
    id: nextId++, conversation_id, role, content, provider: null, model: null, failover_reason: null, prompt_tokens: null,
    completion_tokens: null, first_token_ms: null, total_ms: null, status: "complete", error: null, error_class: null, next_action: null, created_at: Date.now(), parts: [], left_out: null, ...over,
  });

  async function answer(id: number, on: (e: TurnEvent) => void): Promise<Message> {
    const s = script;
    const a = msg(id, "assistant", "", { provider: s.provider ?? "openai", model: s.model ?? "gpt-4o-mini", failover_reason: s.failover ?? null, status: "streaming" });
    messages.push(a);
    on({ type: "answer_started", message_id: a.id, provider: a.provider!, label: s.label ?? "OpenAI", model: a.model!, failover: a.failover_reason, because: null });
    let stopped = false;
    s.tokens.forEach((t, i) => {
      if (i === s.switchAfter) {
        a.parts = [{ provider: a.provider!, model: a.model!, start: 0 }, { provider: "local", model: "qwen2.5-0.5b", start: [...a.content].length }];
        a.failover_reason = "OpenAI stopped sending for 30 s; Local model continued the answer";
        on({ type: "switched", provider: "local", label: "Local model", model: "qwen2.5-0.5b", reason: "OpenAI stopped sending for 30 s", because: { provider: "openai", label: "OpenAI", reason: "stalled" } });
      }
      a.content += t;
      on({ type: "token", text: t });
    });
    if (s.hold) {
      await new Promise<void>((r) => (release = () => { stopped = true; r(); }));
    }
    a.status = s.error ? "error" : stopped ? "interrupted" : "complete";
    a.error = s.error ?? (stopped ? "Stopped by you." : null);
    on({ type: "finished", message: { ...a } });
    return { ...a };
  }

  const api = {
    listConversations: vi.fn(async () => conversations.filter((c) => !deleted.has(c.id)).map((c) => ({ ...c }))),
    createConversation: vi.fn(async () => {
      const c: Conversation = { id: nextId++, title: "New chat", system_prompt: null, model: null, created_at: 0, updated_at: 0 };
      conversations.unshift(c);
      return { ...c };
    }),
    renameConversation: vi.fn(async (id: number, title: string) => void (conversations.find((c) => c.id === id)!.title = title)),
    deleteConversation: vi.fn(async (id: number) => void deleted.add(id)),
    restoreConversation: vi.fn(async (id: number) => void deleted.delete(id)),
    searchMessages: vi.fn(async (q: string): Promise<Hit[]> =>
      messages.filter((m) => m.content.toLowerCase().includes(q.toLowerCase())).map((m) => ({
        conversation_id: m.conversation_id, message_id: m.id, title: conversations.find((c) => c.id === m.conversation_id)!.title,
        snippet: m.content.replace(new RegExp(q, "i"), (w) => `[${w}]`),
      }))),
    getMessages: vi.fn(async (id: number) => messages.filter((m) => m.conversation_id === id).map((m) => ({ ...m }))),
    setConversationOptions: vi.fn(async (id: number, system_prompt: string | null, model: string | null) => {
      const c = conversations.find((x) => x.id === id)!;
      Object.assign(c, { system_prompt, model });
      return { ...c };
    }),
    sendMessage: vi.fn(async (id: number, text: string, on: (e: TurnEvent) => void) => {
      const u = msg(id, "user", text);
      messages.push(u);
      const c = conversations.find((x) => x.id === id)!;
      if (c.title === "New chat") c.title = text;
      on({ type: "user_message", message: { ...u } });
      return answer(id, on);
    }),
    regenerate: vi.fn(async (id: number, on: (e: TurnEvent) => void, _provider: string | null = null) => {
      const lastUser = messages.findLastIndex((m) => m.conversation_id === id && m.role === "user");
      messages.splice(lastUser + 1);
      return answer(id, on);
    }),
    editAndResend: vi.fn(async (messageId: number, text: string, on: (e: TurnEvent) => void) => {
      const at = messages.findIndex((m) => m.id === messageId);
      messages[at].content = text;
      messages.splice(at + 1);
      on({ type: "user_message", message: { ...messages[at] } });
      return answer(messages[at].conversation_id, on);
    }),
    stopAnswer: vi.fn(async () => {
      const r = release;
      release = null;
      r?.();
      return r !== null;
    }),
    exportConversation: vi.fn(async (_id: number, format: string) => `/home/u/Downloads/chat.${format === "json" ? "json" : "md"}`),
  };
  return { api, setScript: (s: Script) => (script = s), messages, conversations };
}
