import { describe, it, expect, vi, beforeEach } from "vitest";
import { render, screen, fireEvent, within } from "@testing-library/svelte";
import Providers from "./Providers.svelte";
import { ApiError } from "../api/call";

const api = vi.hoisted(() => ({
  providerPresets: vi.fn(),
  getProviders: vi.fn(),
  saveProviders: vi.fn(),
  saveProviderKey: vi.fn(),
  testProvider: vi.fn(),
  providerModels: vi.fn(),
  getKeyEnvAllowed: vi.fn(),
  setKeyEnvAllowed: vi.fn(),
}));
vi.mock("../api/providers", async (orig) => ({ ...(await orig<typeof import("../api/providers")>()), ...api }));

const presets = [
  { id: "openai", name: "OpenAI", kind: "cloud", base_url: "https://api.openai.com/v1", model: "gpt-4o-mini", key_env: "OPENAI_API_KEY", status_page: { kind: "incident_io", page: "https://status.openai.com" } },
  { id: "groq", name: "Groq", kind: "cloud", base_url: "https://api.groq.com/openai/v1", model: "llama-3.3-70b-versatile", key_env: "GROQ_API_KEY", status_page: null },
  { id: "ollama", name: "Ollama", kind: "local_server", base_url: "http://127.0.0.1:11434/v1", model: "", key_env: null, status_page: null },
];
const openai = { id: "openai", base_url: "https://api.openai.com/v1", model: "gpt-4o-mini", api_key: "keyring", enabled: true, label: "OpenAI", key_problem: null };
const groq = { id: "groq", base_url: "https://api.groq.com/openai/v1", model: "llama-3.3-70b-versatile", api_key: "keyring", enabled: true, label: "Groq", key_problem: { kind: "missing" } };

/** The saved list comes back as the views the backend would return. */
function echo() {
  api.saveProviders.mockImplementation(async (list: { id: string }[]) => list.map((e) => ({ ...[openai, groq].find((r) => r.id === e.id), ...e })));
}

const ids = () => screen.getAllByTestId("provider-row").map((r) => r.dataset.id);

beforeEach(() => {
  Object.values(api).forEach((f) => f.mockReset());
  api.providerPresets.mockResolvedValue(presets);
  api.getKeyEnvAllowed.mockResolvedValue([]);
  echo();
});

describe("Settings → Providers", () => {
  it("adds a provider from a preset at the end of the chain, before the offline model", async () => {
    api.getProviders.mockResolvedValue([openai]);
    render(Providers);
    await vi.waitFor(() => expect(ids()).toEqual(["openai"]));
    await fireEvent.change(screen.getByTestId("provider-preset"), { target: { value: "groq" } });
    await fireEvent.click(screen.getByTestId("provider-add"));
    expect(api.saveProviders).toHaveBeenLastCalledWith([
      { id: "openai", base_url: "https://api.openai.com/v1", model: "gpt-4o-mini", api_key: "keyring", enabled: true },
      { id: "groq", base_url: "https://api.groq.com/openai/v1", model: "llama-3.3-70b-versatile", api_key: "keyring", enabled: true },
    ]);
    await vi.waitFor(() => expect(ids()).toEqual(["openai", "groq"]));
    const items = screen.getByTestId("providers").querySelectorAll("li");
    expect(items[items.length - 1]).toHaveTextContent("Offline model");
  });

  it("reorders with the buttons and with Alt+arrow keys, and removes", async () => {
    api.getProviders.mockResolvedValue([openai, groq]);
    render(Providers);
    await vi.waitFor(() => expect(ids()).toEqual(["openai", "groq"]));
    await fireEvent.click(screen.getAllByTestId("provider-up")[1]);
    await vi.waitFor(() => expect(ids()).toEqual(["groq", "openai"]));
    await fireEvent.keyDown(screen.getAllByTestId("provider-handle")[0], { key: "ArrowDown", altKey: true });
    await vi.waitFor(() => expect(ids()).toEqual(["openai", "groq"]));
    expect(api.saveProviders.mock.calls.map((c) => c[0].map((e: { id: string }) => e.id))).toEqual([
      ["groq", "openai"],
      ["openai", "groq"],
    ]);
    await fireEvent.click(within(screen.getAllByTestId("provider-row")[1]).getByTestId("provider-remove"));
    await vi.waitFor(() => expect(ids()).toEqual(["openai"]));
  });

  it("tests a provider and shows its latency; a failure in words", async () => {
    api.getProviders.mockResolvedValue([openai, groq]);
    api.testProvider.mockResolvedValueOnce({ provider: "openai", label: "OpenAI", latency_ms: 123, models: 5, model: "gpt-4o-mini", model_listed: true });
    api.testProvider.mockRejectedValueOnce(new ApiError("setup", "No API key is set for Groq. Add the key in Settings."));
    render(Providers);
    await vi.waitFor(() => expect(ids()).toEqual(["openai", "groq"]));
    const [a, b] = screen.getAllByTestId("provider-row");
    await fireEvent.click(within(a).getByTestId("provider-test"));
    expect(await within(a).findByTestId("provider-test-result")).toHaveTextContent("Connected to OpenAI in 123 ms.");
    await fireEvent.click(within(b).getByTestId("provider-test"));
    expect(await within(b).findByTestId("provider-test-result")).toHaveTextContent("No API key is set for Groq.");
    expect(api.testProvider.mock.calls).toEqual([["openai"], ["groq"]]);
  });

  it("asks for the key again when the base URL moved to another host, and stores it for that provider", async () => {
    const moved = { ...groq, base_url: "https://proxy.example/v1", key_problem: { kind: "other_host", saved_for: "https://api.groq.com", now: "https://proxy.example" } };
    api.getProviders.mockResolvedValue([openai, moved]);
    api.saveProviderKey.mockResolvedValue([openai, { ...moved, key_problem: null }]);
    render(Providers);
    const row = (await screen.findAllByTestId("provider-row"))[1];
    expect(within(row).getByTestId("provider-key-state")).toHaveTextContent("The key was saved for https://api.groq.com; enter the key for https://proxy.example.");
    await fireEvent.input(within(row).getByTestId("provider-key-input"), { target: { value: "gsk-new-0123456789" } });
    await fireEvent.click(within(row).getByTestId("provider-key-save"));
    expect(api.saveProviderKey).toHaveBeenCalledWith("groq", "gsk-new-0123456789");
    await vi.waitFor(() => expect(within(screen.getAllByTestId("provider-row")[1]).getByTestId("provider-key-state")).toHaveTextContent("Key saved."));
    expect(document.body.textContent).not.toContain("gsk-new-0123456789");
  });

  it("disables a provider without removing it", async () => {
    api.getProviders.mockResolvedValue([openai, groq]);
    render(Providers);
    await vi.waitFor(() => expect(ids()).toEqual(["openai", "groq"]));
    await fireEvent.click(within(screen.getAllByTestId("provider-row")[0]).getByTestId("provider-enabled"));
    expect(api.saveProviders).toHaveBeenLastCalledWith([expect.objectContaining({ id: "openai", enabled: false }), expect.objectContaining({ id: "groq", enabled: true })]);
  });

  it("allows an environment variable as a key in the app, never in the config file", async () => {
    const mine = { ...groq, id: "mine", label: "mine", base_url: "http://127.0.0.1:9000/v1", api_key: "env:MY_PROXY_KEY", key_problem: { kind: "env_not_allowed", name: "MY_PROXY_KEY" } };
    api.getProviders.mockResolvedValue([openai, mine]);
    api.setKeyEnvAllowed.mockResolvedValue([openai, { ...mine, key_problem: null }]);
    render(Providers);
    await vi.waitFor(() => expect(ids()).toEqual(["openai", "mine"]));
    expect(within(screen.getAllByTestId("provider-row")[1]).getByTestId("provider-key-state")).toHaveTextContent("MY_PROXY_KEY is not mine's usual key variable");
    await fireEvent.input(screen.getByTestId("key-env-allowed"), { target: { value: "MY_PROXY_KEY, OTHER_KEY" } });
    await fireEvent.click(screen.getByTestId("key-env-allowed-save"));
    expect(api.setKeyEnvAllowed).toHaveBeenCalledWith(["MY_PROXY_KEY", "OTHER_KEY"]);
    expect(api.saveProviders).not.toHaveBeenCalled();
    await vi.waitFor(() => expect(within(screen.getAllByTestId("provider-row")[1]).getByTestId("provider-key-state")).toHaveTextContent("Key from MY_PROXY_KEY."));
  });
});
