import { describe, it, expect, vi, beforeEach } from "vitest";
import { render, screen, fireEvent } from "@testing-library/svelte";
import App from "./App.svelte";
import type { AppInfo } from "./api/app";
import { appInfo } from "./test-fixtures";

const getAppInfo = vi.fn<() => Promise<AppInfo>>();
let openPage: ((page: "models" | "settings") => void) | null = null;
vi.mock("./api/app", () => ({
  getAppInfo: () => getAppInfo(),
  onOpenPage: async (open: (page: "models" | "settings") => void) => {
    openPage = open;
    return () => {};
  },
}));
const saveApiKey = vi.fn();
vi.mock("./api/settings", () => ({ saveApiKey: (k: string) => saveApiKey(k), getSettings: () => new Promise(() => {}), getDesktopPrefs: () => new Promise(() => {}) }));
vi.mock("./api/chat", () => ({ listConversations: async () => [] }));
vi.mock("./api/health", () => ({ watchHealth: async () => {} }));
vi.mock("./api/ui-state", () => ({ loadUiState: async () => ({ state: null, page: null }), saveUiState: async () => {} }));

const info = appInfo;

beforeEach(() => getAppInfo.mockReset());

describe("App", () => {
  it("shows the first-run screen with the three set-up actions when nothing is set up", async () => {
    getAppInfo.mockResolvedValue(info());
    render(App);
    expect(await screen.findByTestId("first-run")).toBeVisible();
    expect(screen.getByRole("heading", { name: "Welcome to Understudy" })).toBeVisible();
    expect(screen.getByTestId("action-add-key")).toHaveTextContent("Add OpenAI API key");
    expect(screen.getByTestId("action-download-model")).toHaveTextContent("Download an offline model");
    expect(screen.getByTestId("action-use-gguf")).toHaveTextContent("Use a GGUF file");
    // the shell is there around it
    for (const id of ["sidebar", "composer", "status-bar"]) expect(screen.getByTestId(id)).toBeVisible();
    expect(screen.queryByTestId("message-area")).toBeNull();
    expect(screen.getByTestId("composer-input")).toBeDisabled();
    expect(screen.getByTestId("composer-hint")).toHaveTextContent("Add an OpenAI API key or an offline model");
    expect(screen.getByTestId("status-health")).toHaveTextContent("Nothing can answer yet");
  });

  it("each first-run action opens its own panel, and a second click closes it", async () => {
    getAppInfo.mockResolvedValue(info());
    render(App);
    await screen.findByTestId("first-run");
    for (const id of ["add-key", "download-model", "use-gguf"]) {
      await fireEvent.click(screen.getByTestId(`action-${id}`));
      expect(screen.getByTestId(`panel-${id}`)).toBeVisible();
      expect(screen.getByTestId(`action-${id}`)).toHaveAttribute("aria-expanded", "true");
      for (const other of ["add-key", "download-model", "use-gguf"].filter((o) => o !== id)) {
        expect(screen.queryByTestId(`panel-${other}`)).toBeNull();
      }
    }
    await fireEvent.click(screen.getByTestId("action-use-gguf"));
    expect(screen.queryByTestId("panel-use-gguf")).toBeNull();
  });

  it("saving a key stores it and leaves the first-run screen", async () => {
    getAppInfo.mockResolvedValueOnce(info()).mockResolvedValueOnce(info({ first_run: false, openai_key: "keyring" }));
    saveApiKey.mockResolvedValueOnce({ kind: "keyring" });
    render(App);
    await fireEvent.click(await screen.findByTestId("action-add-key"));
    const input = screen.getByLabelText("OpenAI API key");
    expect(input).toHaveAttribute("type", "password");
    expect(screen.getByTestId("api-key-save")).toBeDisabled();
    await fireEvent.input(input, { target: { value: "sk-test-123456789" } });
    await fireEvent.click(screen.getByTestId("api-key-save"));
    expect(saveApiKey).toHaveBeenCalledWith("sk-test-123456789");
    expect(await screen.findByTestId("message-area")).toBeVisible();
    expect(screen.queryByTestId("first-run")).toBeNull();
    expect(screen.getByTestId("status-bar")).toHaveTextContent("OpenAI: key from keyring");
  });

  it("a rejected key shows why and stays on the panel", async () => {
    getAppInfo.mockResolvedValue(info());
    saveApiKey.mockRejectedValueOnce(new Error("that does not look like an API key (wrong length)"));
    render(App);
    await fireEvent.click(await screen.findByTestId("action-add-key"));
    await fireEvent.input(screen.getByLabelText("OpenAI API key"), { target: { value: "short" } });
    await fireEvent.click(screen.getByTestId("api-key-save"));
    expect(await screen.findByTestId("api-key-error")).toHaveTextContent("wrong length");
    expect(screen.getByTestId("first-run")).toBeVisible();
  });

  it("shows the chat shell, not first-run, once a key or a model exists", async () => {
    getAppInfo.mockResolvedValue(info({ first_run: false, openai_key: "env" }));
    render(App);
    expect(await screen.findByTestId("message-area")).toBeVisible();
    expect(screen.queryByTestId("first-run")).toBeNull();
    expect(screen.getByTestId("status-bar")).toHaveTextContent("OpenAI: key from environment · gpt-4o-mini");
    expect(screen.getByTestId("status-bar")).toHaveTextContent("No offline model");
    expect(screen.getByTestId("status-health")).toHaveTextContent("Ready");
    // Something can answer: the composer is ready, Send waits for text.
    expect(screen.getByTestId("composer-input")).toBeEnabled();
    expect(screen.getByTestId("send-button")).toBeDisabled();
    expect(screen.queryByTestId("composer-hint")).toBeNull();
  });

  it("a notification's Download a model or Open Settings brings up that page", async () => {
    getAppInfo.mockResolvedValue(info({ first_run: false, openai_key: "env" }));
    render(App);
    expect(await screen.findByTestId("message-area")).toBeVisible();
    expect(openPage).not.toBeNull();
    openPage!("models");
    expect(await screen.findByTestId("models")).toBeVisible();
    expect(screen.queryByTestId("message-area")).toBeNull();
    openPage!("settings");
    expect(await screen.findByTestId("settings")).toBeVisible();
    expect(screen.queryByTestId("models")).toBeNull();
  });

  it("shows a config problem with file:line, key and message next to the first-run screen", async () => {
    getAppInfo.mockResolvedValue(
      info({ config_problem: { file: "/c/config.toml", line: 3, key: "failover.stall_timout", message: "unknown field `stall_timout`" } }),
    );
    render(App);
    const banner = await screen.findByRole("alert");
    expect(banner).toHaveTextContent("Your config file has a problem — using defaults");
    expect(screen.getByTestId("config-problem-where")).toHaveTextContent("/c/config.toml:3");
    expect(screen.getByTestId("config-problem-key")).toHaveTextContent("failover.stall_timout");
    expect(screen.getByTestId("config-problem-message")).toHaveTextContent("unknown field `stall_timout`");
    expect(screen.getByTestId("first-run")).toBeVisible();
  });

  it("a config problem without a line or key shows just the file", async () => {
    getAppInfo.mockResolvedValue(info({ config_problem: { file: "/c/missing.toml", line: null, key: null, message: "No such file" } }));
    render(App);
    expect(await screen.findByTestId("config-problem-where")).toHaveTextContent(/^\/c\/missing\.toml$/);
    expect(screen.queryByTestId("config-problem-key")).toBeNull();
  });

  it("shows loading, then an error with Retry that loads again", async () => {
    let reject!: (e: unknown) => void;
    getAppInfo.mockImplementationOnce(() => new Promise((_, r) => (reject = r)));
    render(App);
    expect(screen.getByTestId("loading")).toHaveTextContent("Starting Understudy");
    reject(new Error("ipc down"));
    expect(await screen.findByTestId("load-error")).toHaveTextContent("ipc down");
    getAppInfo.mockResolvedValueOnce(info());
    await fireEvent.click(screen.getByRole("button", { name: "Retry" }));
    expect(await screen.findByTestId("first-run")).toBeVisible();
    expect(getAppInfo).toHaveBeenCalledTimes(2);
  });
});
