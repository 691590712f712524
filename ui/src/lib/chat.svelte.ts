// The chat window's state: the conversation list, the open conversation and the answer being
// written. Components read it and call its methods; only ui/src/api talks to Rust.
import * as api from "../api/chat";
import type { Because, Conversation, Hit, Message, TurnEvent } from "../api/chat";
import { ApiError } from "../api/call";

/** The answer being written right now, shown live until it is stored. */
export interface Live {
  conversationId: number;
  messageId: number | null;
  provider: string | null;
  label: string | null;
  model: string | null;
  failover: string | null;
  /** The same as data: who failed before and how (the badge's words are built from it). */
  because?: Because | null;
  text: string;
  /** A reasoning model's thinking so far (shown collapsed; not part of the stored answer). */
  reasoning: string;
  /** Set when the answer switched provider mid-stream: where, to whom, why. */
  switched: { at: number; label: string; model: string; reason: string } | null;
  /** Why the answer could not be saved (a full or read-only disk; retried); null when saved. */
  unsaved?: string | null;
}

/** A deleted conversation that can still be brought back. */
export interface Undo {
  conversation: Conversation;
  timer: ReturnType<typeof setTimeout>;
}

export const UNDO_MS = 8000;
export const FOLLOW_MS = 1000;

function words(e: unknown): string {
  return e instanceof ApiError || e instanceof Error ? e.message : String(e);
}

export class Chat {
  conversations = $state<Conversation[]>([]);
  activeId = $state<number | null>(null);
  messages = $state<Message[]>([]);
  live = $state<Live | null>(null);
  /** A problem with the last action, in words ("" = none). */
  problem = $state("");
  /** A one-line confirmation ("Saved to …"). */
  notice = $state("");
  query = $state("");
  hits = $state<Hit[]>([]);
  undo = $state<Undo | null>(null);

  readonly active = $derived(this.conversations.find((c) => c.id === this.activeId) ?? null);
  readonly busy = $derived(this.live !== null && this.live.conversationId === this.activeId);

  /** Lists the conversations and opens `prefer` (the one open before the window was released)
   * if it still exists, else the newest. */
  async load(prefer: number | null = null): Promise<void> {
    try {
      this.conversations = await api.listConversations();
      const again = this.conversations.find((c) => c.id === prefer);
      if (this.activeId === null && (again || this.conversations.length > 0)) await this.open((again ?? this.conversations[0]).id);
    } catch (e) {
      this.problem = `Could not load your conversations: ${words(e)}`;
    }
  }

  async open(id: number): Promise<void> {
    this.activeId = id;
    this.problem = "";
    try {
      const messages = await api.getMessages(id);
      if (this.activeId === id) this.messages = messages;
      this.follow(id);
    } catch (e) {
      this.problem = `Could not open the conversation: ${words(e)}`;
    }
  }

  /** An answer the app is still writing with no channel to this window (the window was rebuilt
   * after its web view was released): read it from the store every `FOLLOW_MS` until it ends. */
  private follow(id: number) {
    const last = this.messages.at(-1);
    if (this.activeId !== id || last?.status !== "streaming" || this.live?.conversationId === id) return;
    setTimeout(async () => {
      if (this.activeId !== id || this.live?.conversationId === id) return;
      try {
        const messages = await api.getMessages(id);
        if (this.activeId !== id || this.live?.conversationId === id) return;
        this.messages = messages;
        this.follow(id);
      } catch {
        // the next open reads it again
      }
    }, FOLLOW_MS);
  }

  async newChat(): Promise<void> {
    try {
      const c = await api.createConversation();
      this.conversations = [c, ...this.conversations];
      this.activeId = c.id;
      this.messages = [];
      this.problem = "";
    } catch (e) {
      this.problem = `Could not start a conversation: ${words(e)}`;
    }
  }

  private onEvent(conversationId: number) {
    return (e: TurnEvent) => {
      const showing = this.activeId === conversationId;
      switch (e.type) {
        case "user_message":
          if (showing) {
            const at = this.messages.findIndex((m) => m.id === e.message.id);
            if (at >= 0) this.messages = [...this.messages.slice(0, at), e.message];
            else this.messages = [...this.messages, e.message];
          }
          break;
        case "answer_started":
          this.live = { conversationId, messageId: e.message_id, provider: e.provider, label: e.label, model: e.model, failover: e.failover, because: e.because, text: "", reasoning: "", switched: null };
          break;
        case "token":
          if (this.live) this.live.text += e.text;
          break;
        case "reasoning":
          if (this.live) this.live.reasoning += e.text;
          break;
        case "switched":
          if (this.live) this.live.switched = { at: [...this.live.text].length, label: e.label, model: e.model, reason: e.reason };
          break;
        case "not_saved":
          if (this.live) this.live.unsaved = e.reason;
          break;
        case "saved":
          if (this.live) this.live.unsaved = null;
          break;
        case "finished":
          this.live = null;
          if (showing) this.messages = [...this.messages.filter((m) => m.id !== e.message.id), e.message];
          break;
      }
    };
  }

  /** Runs a turn; the list moves the conversation to the top and takes its new title. */
  private async turn(conversationId: number, run: (onEvent: (e: TurnEvent) => void) => Promise<Message>): Promise<void> {
    this.problem = "";
    this.live = { conversationId, messageId: null, provider: null, label: null, model: null, failover: null, text: "", reasoning: "", switched: null };
    try {
      await run(this.onEvent(conversationId));
    } catch (e) {
      this.problem = words(e);
    } finally {
      if (this.live?.conversationId === conversationId) this.live = null;
      await this.refreshList();
    }
  }

  async send(text: string): Promise<void> {
    if (this.activeId === null) await this.newChat();
    const id = this.activeId;
    if (id === null || this.busy) return;
    await this.turn(id, (on) => api.sendMessage(id, text, on));
  }

  /** Answers the last question again; `provider` = "openai" for "Ask OpenAI again". */
  async regenerate(provider: string | null = null): Promise<void> {
    const id = this.activeId;
    if (id === null || this.busy) return;
    const lastUser = this.messages.findLastIndex((m) => m.role === "user");
    this.messages = this.messages.slice(0, lastUser + 1);
    await this.turn(id, (on) => api.regenerate(id, on, provider));
  }

  async editAndResend(messageId: number, text: string): Promise<void> {
    const id = this.activeId;
    if (id === null || this.busy) return;
    await this.turn(id, (on) => api.editAndResend(messageId, text, on));
  }

  /** Stop: the answer ends with its text so far kept. */
  async stop(): Promise<void> {
    if (this.live) await api.stopAnswer(this.live.conversationId).catch((e: unknown) => (this.problem = words(e)));
  }

  async refreshList(): Promise<void> {
    try {
      this.conversations = await api.listConversations();
    } catch (e) {
      this.problem = words(e);
    }
  }

  async rename(id: number, title: string): Promise<void> {
    const t = title.trim();
    if (!t) return;
    try {
      await api.renameConversation(id, t);
      this.conversations = this.conversations.map((c) => (c.id === id ? { ...c, title: t } : c));
    } catch (e) {
      this.problem = `Could not rename: ${words(e)}`;
    }
  }

  async remove(id: number): Promise<void> {
    const conversation = this.conversations.find((c) => c.id === id);
    if (!conversation) return;
    try {
      await api.deleteConversation(id);
    } catch (e) {
      this.problem = `Could not delete: ${words(e)}`;
      return;
    }
    this.conversations = this.conversations.filter((c) => c.id !== id);
    if (this.activeId === id) {
      this.activeId = null;
      this.messages = [];
    }
    if (this.undo) clearTimeout(this.undo.timer);
    this.undo = { conversation, timer: setTimeout(() => (this.undo = null), UNDO_MS) };
  }

  async undoRemove(): Promise<void> {
    const u = this.undo;
    if (!u) return;
    clearTimeout(u.timer);
    this.undo = null;
    try {
      await api.restoreConversation(u.conversation.id);
      await this.refreshList();
      await this.open(u.conversation.id);
    } catch (e) {
      this.problem = `Could not restore: ${words(e)}`;
    }
  }

  async search(query: string): Promise<void> {
    this.query = query;
    if (!query.trim()) {
      this.hits = [];
      return;
    }
    try {
      const hits = await api.searchMessages(query);
      if (this.query === query) this.hits = hits;
    } catch (e) {
      this.problem = `Search failed: ${words(e)}`;
    }
  }

  async setOptions(systemPrompt: string, model: string): Promise<void> {
    const id = this.activeId;
    if (id === null) return;
    try {
      const c = await api.setConversationOptions(id, systemPrompt.trim() || null, model.trim() || null);
      this.conversations = this.conversations.map((x) => (x.id === id ? c : x));
    } catch (e) {
      this.problem = `Could not save the conversation's settings: ${words(e)}`;
    }
  }

  async export(format: "markdown" | "json"): Promise<void> {
    const id = this.activeId;
    if (id === null) return;
    try {
      this.notice = `Saved to ${await api.exportConversation(id, format)}`;
    } catch (e) {
      this.problem = `Could not export: ${words(e)}`;
    }
  }
}
