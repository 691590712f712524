import { describe, it, expect, vi, beforeEach } from "vitest";
import { render, screen, fireEvent, waitFor, within } from "@testing-library/svelte";
import App from "../App.svelte";
import type { AppInfo } from "../api/app";
import { appInfo } from "../test-fixtures";
import { fakeBackend } from "../test-chat-backend";

const getAppInfo = vi.fn<() => Promise<AppInfo>>();
vi.mock("../api/app", () => ({ getAppInfo: () => getAppInfo(), onOpenPage: async () => () => {} }));
const holder = vi.hoisted(() => ({ api: {} as Record<string, (...x: unknown[]) => unknown> }));
vi.mock("../api/chat", () => {
  const names = ["listConversations", "createConversation", "renameConversation", "deleteConversation", "restoreConversation", "searchMessages", "getMessages", "setConversationOptions", "sendMessage", "regenerate", "editAndResend", "stopAnswer", "exportConversation"];
  return Object.fromEntries(names.map((n) => [n, (...a: unknown[]) => holder.api[n](...a)]));
});
const healthFeed = vi.hoisted(() => ({ push: (_s: unknown) => {} }));
vi.mock("../api/health", () => ({ watchHealth: async (on: (s: unknown) => void) => void (healthFeed.push = on) }));
let backend = fakeBackend();

beforeEach(() => {
  backend = fakeBackend();
  holder.api = backend.api as unknown as Record<string, (...x: unknown[]) => unknown>;
  getAppInfo.mockResolvedValue(appInfo({ first_run: false, openai_key: "keyring" }));
});

async function send(text: string) {
  const input = await screen.findByTestId("composer-input");
  await fireEvent.input(input, { target: { value: text } });
  await fireEvent.keyDown(input, { key: "Enter" });
}

describe("chat", () => {
  it("Enter sends; the answer streams in and stays with the provider and model that wrote it", async () => {
    backend.setScript({ tokens: ["The capital ", "is **Paris**."] });
    render(App);
    await send("Capital of France?");
    const answer = await screen.findByText((_, el) => el?.getAttribute("data-role") === "assistant" && el.getAttribute("data-status") === "complete");
    expect(within(answer).getByTestId("message-badge")).toHaveTextContent("OpenAI · gpt-4o-mini");
    expect(within(answer).getByTestId("message-text").querySelector("strong")).toHaveTextContent("Paris");
    expect(screen.getAllByTestId("message")[0]).toHaveTextContent("Capital of France?");
    // The conversation got its title from the first message and is listed.
    await waitFor(() => expect(screen.getByTestId("conversation-title")).toHaveTextContent("Capital of France?"));
    expect(backend.api.sendMessage).toHaveBeenCalledWith(expect.any(Number), "Capital of France?", expect.any(Function));
    expect(screen.getByTestId("composer-input")).toHaveValue("");
  });

  it("Shift+Enter does not send", async () => {
    render(App);
    const input = await screen.findByTestId("composer-input");
    await fireEvent.input(input, { target: { value: "line one" } });
    await fireEvent.keyDown(input, { key: "Enter", shiftKey: true });
    expect(backend.api.sendMessage).not.toHaveBeenCalled();
  });

  it("Stop and Esc stop the answer and keep its partial text", async () => {
    backend.setScript({ tokens: ["Partial ", "answer"], hold: true });
    render(App);
    await send("Tell me a long story");
    expect(await screen.findByTestId("live-text")).toHaveTextContent("Partial answer");
    expect(screen.queryByTestId("send-button")).toBeNull();
    await fireEvent.keyDown(window, { key: "Escape" });
    expect(backend.api.stopAnswer).toHaveBeenCalledTimes(1);
    const stopped = await screen.findByText((_, el) => el?.getAttribute("data-status") === "interrupted");
    expect(stopped).toHaveTextContent("Partial answer");
    expect(within(stopped).getByTestId("message-note")).toHaveTextContent("Stopped by you.");
    expect(await screen.findByTestId("send-button")).toBeVisible();

    backend.setScript({ tokens: ["More"], hold: true });
    await send("again");
    await fireEvent.click(await screen.findByTestId("stop-button"));
    expect(backend.api.stopAnswer).toHaveBeenCalledTimes(2);
  });

  it("an error is shown on the answer, in words, and Regenerate answers again", async () => {
    backend.setScript({ tokens: [], error: "OpenAI rejected the API key (401): Incorrect API key provided. Check the API key in Settings." });
    render(App);
    await send("hi");
    expect(await screen.findByTestId("message-error")).toHaveTextContent("OpenAI rejected the API key (401)");
    expect(screen.getByTestId("message-error")).toHaveTextContent("Check the API key in Settings.");
    backend.setScript({ tokens: ["Hello!"], provider: "local", label: "Local model", model: "qwen2.5-0.5b", failover: "OpenAI could not be reached" });
    await fireEvent.click(screen.getByTestId("regenerate-button"));
    const answer = await screen.findByText((_, el) => el?.getAttribute("data-status") === "complete" && el.getAttribute("data-role") === "assistant");
    expect(within(answer).getByTestId("message-badge")).toHaveTextContent("Local model · qwen2.5-0.5b");
    expect(within(answer).getByTestId("failover-reason")).toHaveTextContent("Answered here because OpenAI could not be reached.");
    expect(screen.queryByTestId("message-error")).toBeNull();
  });

  it("edit and resend replaces the question and its answer", async () => {
    render(App);
    await send("first try");
    await screen.findByText((_, el) => el?.getAttribute("data-status") === "complete" && el.getAttribute("data-role") === "assistant");
    await fireEvent.click(screen.getByTestId("edit-button"));
    const edit = screen.getByTestId("edit-input");
    expect(edit).toHaveValue("first try");
    backend.setScript({ tokens: ["Better."] });
    await fireEvent.input(edit, { target: { value: "second try" } });
    await fireEvent.click(screen.getByTestId("edit-save"));
    await waitFor(() => expect(screen.getAllByTestId("message").map((m) => m.textContent)).toEqual([expect.stringContaining("second try"), expect.stringContaining("Better.")]));
    expect(backend.api.editAndResend).toHaveBeenCalledWith(expect.any(Number), "second try", expect.any(Function));
  });

  it("delete can be undone, rename changes the title, search finds messages", async () => {
    render(App);
    await send("zebra facts");
    await waitFor(() => expect(screen.getByTestId("conversation-title")).toHaveTextContent("zebra facts"));
    await fireEvent.click(screen.getByTestId("rename-button"));
    const input = screen.getByTestId("rename-input");
    await fireEvent.input(input, { target: { value: "Zebras" } });
    await fireEvent.keyDown(input, { key: "Enter" });
    await waitFor(() => expect(screen.getByTestId("conversation-title")).toHaveTextContent("Zebras"));
    expect(backend.api.renameConversation).toHaveBeenCalledWith(expect.any(Number), "Zebras");

    await fireEvent.input(screen.getByTestId("search-input"), { target: { value: "zebra" } });
    const hit = await screen.findByTestId("search-hit");
    expect(hit.querySelector("mark")).toHaveTextContent("zebra");

    await fireEvent.input(screen.getByTestId("search-input"), { target: { value: "" } });
    await fireEvent.click(await screen.findByTestId("delete-button"));
    expect(await screen.findByTestId("undo-toast")).toHaveTextContent("Deleted “Zebras”");
    expect(screen.queryByTestId("conversation")).toBeNull();
    await fireEvent.click(screen.getByTestId("undo-button"));
    await waitFor(() => expect(screen.getByTestId("conversation-title")).toHaveTextContent("Zebras"));
    expect(await screen.findAllByTestId("message")).toHaveLength(2);
  });

  it("per-conversation system prompt and model, and export", async () => {
    render(App);
    await send("hello");
    await fireEvent.click(await screen.findByTestId("conversation-options"));
    await fireEvent.input(screen.getByTestId("system-prompt"), { target: { value: "Answer in French." } });
    await fireEvent.input(screen.getByTestId("conversation-model"), { target: { value: "gpt-4.1" } });
    await fireEvent.click(screen.getByTestId("options-save"));
    expect(backend.api.setConversationOptions).toHaveBeenCalledWith(expect.any(Number), "Answer in French.", "gpt-4.1");
    expect(await screen.findByText("gpt-4.1")).toBeVisible();
    await fireEvent.click(screen.getByTestId("export-markdown"));
    expect(await screen.findByTestId("notice")).toHaveTextContent("Saved to /home/u/Downloads/chat.md");
  });

  it("an answer that switched provider mid-stream shows where, and Ask OpenAI again once it is healthy", async () => {
    backend.setScript({ tokens: ["One ", "two ", "three ", "four."], switchAfter: 2 });
    render(App);
    await send("count");
    const answer = await screen.findByText((_, el) => el?.getAttribute("data-role") === "assistant" && el.getAttribute("data-status") === "complete");
    expect(within(answer).getByTestId("switch-divider")).toHaveTextContent("Local model · qwen2.5-0.5b continued from here");
    expect(within(answer).getByTestId("message-text").textContent).toMatch(/One two\s*Local model · qwen2.5-0.5b continued from here\s*three four\./);
    expect(within(answer).getByTestId("failover-reason")).toHaveTextContent("OpenAI stopped sending for 30 s");
    // OpenAI is in an outage: no offer yet; once healthy, the offer appears and pins OpenAI.
    const snap = (health: string) => ({ mode: "auto", route: health === "healthy" ? "openai" : "local", local_model: "qwen2.5-0.5b", providers: [{ id: "openai", label: "OpenAI", health, breaker: { state: "closed" }, since: Date.now(), last_error: null }] });
    healthFeed.push(snap("outage"));
    await waitFor(() => expect(screen.getByTestId("status-health")).toHaveTextContent("OpenAI outage since"));
    expect(screen.getByTestId("status-health")).toHaveTextContent("answering with qwen2.5-0.5b");
    expect(screen.getByTestId("status-dot")).toHaveAttribute("data-health", "outage");
    expect(screen.queryByTestId("ask-cloud-again")).toBeNull();
    healthFeed.push(snap("healthy"));
    await fireEvent.click(await screen.findByTestId("ask-cloud-again"));
    expect(backend.api.regenerate).toHaveBeenCalledWith(expect.any(Number), expect.any(Function), "openai");
  });
});
