// A bad disk never hides the app: the history notice from start-up (damaged, newer, locked) and
// an answer the disk refused to save while it streamed.
import { describe, it, expect, vi, beforeEach } from "vitest";
import { render, screen, fireEvent, waitFor, cleanup } from "@testing-library/svelte";
import App from "../App.svelte";
import StoreBanner from "./StoreBanner.svelte";
import type { StoreNotice } from "../api/storage";
import type { Message, TurnEvent } from "../api/chat";
import { appInfo } from "../test-fixtures";

vi.mock("../api/app", () => ({ getAppInfo: async () => appInfo({ first_run: false, openai_key: "keyring" }), onOpenPage: async () => () => {} }));
vi.mock("../api/health", () => ({ watchHealth: async () => {} }));
vi.mock("../api/ui-state", () => ({ loadUiState: async () => ({ state: null, page: null }), saveUiState: async () => {} }));
const storage = vi.hoisted(() => ({ notice: null as unknown, dismissed: 0 }));
vi.mock("../api/storage", () => ({
  getStoreNotice: async () => storage.notice,
  dismissStoreNotice: async () => void storage.dismissed++,
}));
const turn = vi.hoisted(() => ({ on: null as ((e: unknown) => void) | null, end: null as ((m: unknown) => void) | null }));
vi.mock("../api/chat", () => ({
  listConversations: async () => [],
  createConversation: async () => ({ id: 7, title: "New chat", system_prompt: null, model: null, created_at: 0, updated_at: 0 }),
  getMessages: async () => [],
  sendMessage: (_id: number, _text: string, on: (e: unknown) => void) => new Promise((resolve) => ((turn.on = on), (turn.end = resolve))),
}));

const damaged: StoreNotice = { kind: "damaged", path: "/home/u/.local/share/understudy/understudy.db", kept_as: "/home/u/.local/share/understudy/understudy-damaged-20261201-071500.db", detail: "not an SQLite database" };

beforeEach(() => {
  storage.notice = null;
  storage.dismissed = 0;
});

describe("a history that could not be opened as it was", () => {
  it("the window opens and says the old file is kept, and where; OK dismisses it for good", async () => {
    storage.notice = damaged;
    render(App);
    const banner = await screen.findByTestId("store-notice");
    expect(banner).toHaveTextContent("Your chat history file was damaged — a new one was started");
    expect(screen.getByTestId("store-notice-kept")).toHaveTextContent(damaged.kept_as);
    expect(banner).toHaveTextContent("not an SQLite database");
    expect(screen.getByTestId("composer-input")).toBeEnabled();
    await fireEvent.click(screen.getByTestId("store-notice-dismiss"));
    expect(screen.queryByTestId("store-notice")).toBeNull();
    expect(storage.dismissed).toBe(1);
  });

  it("says nothing when the history opened as it was", async () => {
    render(App);
    await screen.findByTestId("composer-input");
    await waitFor(() => expect(screen.queryByTestId("store-notice")).toBeNull());
  });

  it("words each kind: kept for a newer version, or not saved this session", () => {
    const newer = render(StoreBanner, { notice: { kind: "newer", path: damaged.path, kept_as: "/d/understudy-newer-20261201-071500.db", found: 9, supported: 3 } });
    expect(newer.getByTestId("store-notice")).toHaveTextContent("written by a newer Understudy");
    expect(newer.getByTestId("store-notice-kept")).toHaveTextContent("/d/understudy-newer-20261201-071500.db");
    expect(newer.getByTestId("store-notice")).toHaveTextContent("the newer Understudy can open it again");
    cleanup();
    const locked = render(StoreBanner, { notice: { kind: "locked", path: damaged.path, waited_secs: 5 } });
    expect(locked.getByTestId("store-notice")).toHaveTextContent("in use by another program");
    expect(locked.getByTestId("store-notice-path")).toHaveTextContent(damaged.path);
    expect(locked.getByTestId("store-notice")).toHaveTextContent("stayed locked for 5 s");
    expect(locked.getByTestId("store-notice")).toHaveTextContent("Chats of this session are not saved");
    expect(locked.queryByTestId("store-notice-kept")).toBeNull();
    cleanup();
    const unavailable = render(StoreBanner, { notice: { kind: "unavailable", path: damaged.path, detail: "Permission denied" } });
    expect(unavailable.getByTestId("store-notice")).toHaveTextContent("could not be opened");
    expect(unavailable.getByTestId("store-notice")).toHaveTextContent("Permission denied");
  });
});

describe("an answer the disk refuses to save", () => {
  it("keeps streaming on screen, says it could not be saved, and clears that once it is saved", async () => {
    render(App);
    const input = await screen.findByTestId("composer-input");
    await fireEvent.input(input, { target: { value: "Count to three" } });
    await fireEvent.keyDown(input, { key: "Enter" });
    await waitFor(() => expect(turn.on).not.toBeNull());
    const on = (e: TurnEvent) => turn.on!(e);
    on({ type: "answer_started", message_id: 2, provider: "openai", label: "OpenAI", model: "gpt-4o-mini", failover: null, because: null });
    on({ type: "token", text: "One, " });
    on({ type: "not_saved", reason: "database error: database or disk is full" });
    on({ type: "token", text: "two, three." });
    const warning = await screen.findByTestId("live-unsaved");
    expect(warning).toHaveTextContent("Could not save this answer");
    expect(warning).toHaveAttribute("title", "database error: database or disk is full");
    expect(screen.getByTestId("live-text")).toHaveTextContent("One, two, three.");
    on({ type: "saved" });
    await waitFor(() => expect(screen.queryByTestId("live-unsaved")).toBeNull());
    const stored: Message = {
      id: 2, conversation_id: 7, role: "assistant", content: "One, two, three.", provider: "openai", model: "gpt-4o-mini", failover_reason: null, prompt_tokens: null,
      completion_tokens: null, first_token_ms: null, total_ms: null, status: "complete", error: null, error_class: null, next_action: null, created_at: 0, parts: [], left_out: null,
    };
    on({ type: "finished", message: stored });
    turn.end!(stored);
    await waitFor(() => expect(screen.queryByTestId("live-answer")).toBeNull());
    expect(screen.getByTestId("message-text")).toHaveTextContent("One, two, three.");
  });
});
