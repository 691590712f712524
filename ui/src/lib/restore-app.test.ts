// The window rebuilt after its web view was released in the tray: a fresh App starts from the
// snapshot the last one saved (kept in Rust, here in memory) and the store's messages.
import { describe, it, expect, vi, beforeEach } from "vitest";
import { render, screen, fireEvent, waitFor, within, cleanup } from "@testing-library/svelte";
import App from "../App.svelte";
import type { AppInfo } from "../api/app";
import { appInfo } from "../test-fixtures";
import { fakeBackend } from "../test-chat-backend";

const getAppInfo = vi.fn<() => Promise<AppInfo>>();
vi.mock("../api/app", () => ({ getAppInfo: () => getAppInfo(), onOpenPage: async () => () => {} }));
const holder = vi.hoisted(() => ({ api: {} as Record<string, (...x: unknown[]) => unknown>, saved: null as string | null, page: null as string | null }));
vi.mock("../api/chat", () => {
  const names = ["listConversations", "createConversation", "renameConversation", "deleteConversation", "restoreConversation", "searchMessages", "getMessages", "setConversationOptions", "sendMessage", "regenerate", "editAndResend", "stopAnswer", "exportConversation"];
  return Object.fromEntries(names.map((n) => [n, (...a: unknown[]) => holder.api[n](...a)]));
});
vi.mock("../api/health", () => ({ watchHealth: async () => {} }));
vi.mock("../api/ui-state", () => ({
  saveUiState: async (s: string) => void (holder.saved = s),
  loadUiState: async () => ({ state: holder.saved, page: holder.page }),
}));

let backend = fakeBackend();

beforeEach(() => {
  backend = fakeBackend();
  holder.api = backend.api as unknown as Record<string, (...x: unknown[]) => unknown>;
  holder.saved = null;
  holder.page = null;
  getAppInfo.mockResolvedValue(appInfo({ first_run: false, openai_key: "keyring" }));
});

async function send(text: string) {
  const input = await screen.findByTestId("composer-input");
  await fireEvent.input(input, { target: { value: text } });
  await fireEvent.keyDown(input, { key: "Enter" });
}

describe("a window rebuilt after release", () => {
  it("opens the conversation that was open, with the half-typed message", async () => {
    render(App);
    await send("first conversation");
    await waitFor(() => expect(screen.getAllByTestId("conversation")).toHaveLength(1));
    await fireEvent.click(screen.getByTestId("new-chat"));
    await send("second conversation");
    await waitFor(() => expect(screen.getAllByTestId("conversation")).toHaveLength(2));
    // The older one (listed second) is open; a fresh window would open the newest.
    const older = screen.getAllByTestId("conversation")[1];
    await fireEvent.click(within(older).getByTestId("conversation-title"));
    await waitFor(() => expect(screen.getAllByTestId("message")[0]).toHaveTextContent("first conversation"));
    await fireEvent.input(screen.getByTestId("composer-input"), { target: { value: "half a quest" } });
    await waitFor(() => expect(JSON.parse(holder.saved ?? "{}")).toMatchObject({ draft: "half a quest", conversationId: Number(older.dataset.id) }));

    cleanup(); // the web view is gone
    render(App);
    await waitFor(() => expect(screen.getByTestId("composer-input")).toHaveValue("half a quest"));
    await waitFor(() => expect(screen.getAllByTestId("message")[0]).toHaveTextContent("first conversation"));
    expect(screen.getAllByTestId("conversation").find((c) => c.classList.contains("active"))?.dataset.id).toBe(older.dataset.id);
  });

  it("a page a notification asked for opens instead of the chat", async () => {
    holder.page = "settings";
    render(App);
    expect(await screen.findByTestId("settings")).toBeVisible();
  });

  it("without a snapshot it opens the newest conversation as before", async () => {
    render(App);
    await send("only one");
    cleanup();
    holder.saved = null;
    render(App);
    await waitFor(() => expect(screen.getAllByTestId("message")[0]).toHaveTextContent("only one"));
    expect(screen.getByTestId("composer-input")).toHaveValue("");
  });

  it("an answer still being written when the window comes back is followed from the store until it ends", async () => {
    backend.setScript({ tokens: ["Half ", "an answer"], hold: true });
    render(App);
    await send("keep writing while I am away");
    await screen.findByTestId("stop-button");
    cleanup(); // released mid-answer: the app keeps writing it, the channel is gone
    render(App);
    const answer = () => screen.getAllByTestId("message").find((m) => m.dataset.role === "assistant");
    await waitFor(() => expect(answer()).toHaveAttribute("data-status", "streaming"));
    await backend.api.stopAnswer(); // the app finishes it (here: stopped, text kept)
    await waitFor(() => expect(answer()).toHaveAttribute("data-status", "interrupted"), { timeout: 3_000 });
    expect(answer()).toHaveTextContent("Half an answer");
  });
});
