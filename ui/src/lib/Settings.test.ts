import { describe, it, expect, vi, beforeEach } from "vitest";
import { render, screen, fireEvent } from "@testing-library/svelte";
import Settings from "./Settings.svelte";
import { ApiError } from "../api/call";

const api = vi.hoisted(() => ({ getSettings: vi.fn(), saveSettings: vi.fn(), saveApiKey: vi.fn(), testConnection: vi.fn(), getDesktopPrefs: vi.fn(), setDesktopPrefs: vi.fn(), gatewayAccess: vi.fn() }));
vi.mock("../api/settings", () => api);

const view = (over = {}) => ({
  settings: { mode: "auto", base_url: "https://api.openai.com/v1", model: "gpt-4o-mini", local_model: null, notifications: true, gateway: false },
  key: "file",
  backend: { kind: "file", path: "/home/u/.local/share/understudy/secrets.json", why: "no Secret Service" },
  config_path: "/home/u/.config/understudy/config.toml",
  gateway: { listen: "127.0.0.1:8321", running: false, error: null },
  ...over,
});

beforeEach(() => {
  Object.values(api).forEach((f) => f.mockReset());
  api.getDesktopPrefs.mockResolvedValue({ start_at_login: false, start_minimized: false });
});

describe("Settings", () => {
  it("shows the running gateway's token as the exact env lines, with a copy button", async () => {
    const lines = "OPENAI_BASE_URL=http://127.0.0.1:8321/v1\nOPENAI_API_KEY=understudy-0123abcd";
    api.getSettings.mockResolvedValue(view({ settings: { ...view().settings, gateway: true }, gateway: { listen: "127.0.0.1:8321", running: true, error: null } }));
    api.gatewayAccess.mockResolvedValue({ base_url: "http://127.0.0.1:8321/v1", token: "understudy-0123abcd", env_lines: lines });
    const writeText = vi.fn().mockResolvedValue(undefined);
    Object.defineProperty(navigator, "clipboard", { value: { writeText }, configurable: true });
    render(Settings);
    expect((await screen.findByTestId("gateway-env")).textContent).toBe(lines);
    await fireEvent.click(screen.getByTestId("gateway-copy"));
    expect(writeText).toHaveBeenCalledWith(lines);
  });

  it("shows the token lines as soon as the gateway is switched on and saved", async () => {
    const lines = "OPENAI_BASE_URL=http://127.0.0.1:8321/v1\nOPENAI_API_KEY=understudy-0123abcd";
    api.getSettings.mockResolvedValue(view());
    api.saveSettings.mockResolvedValue(view({ settings: { ...view().settings, gateway: true }, gateway: { listen: "127.0.0.1:8321", running: true, error: null } }));
    api.gatewayAccess.mockResolvedValue({ base_url: "http://127.0.0.1:8321/v1", token: "understudy-0123abcd", env_lines: lines });
    render(Settings);
    await fireEvent.click(await screen.findByTestId("settings-gateway"));
    await fireEvent.click(screen.getByTestId("settings-save"));
    expect((await screen.findByTestId("gateway-env")).textContent).toBe(lines);
  });

  it("asks for no token while the gateway is off", async () => {
    api.getSettings.mockResolvedValue(view());
    render(Settings);
    await screen.findByTestId("settings-save");
    expect(api.gatewayAccess).not.toHaveBeenCalled();
    expect(screen.queryByTestId("gateway-env")).toBeNull();
  });

  it("says where the key is kept and never shows it", async () => {
    api.getSettings.mockResolvedValue(view());
    render(Settings);
    expect(await screen.findByTestId("key-state")).toHaveTextContent("A key is saved in a private file.");
    expect(screen.getByTestId("key-backend")).toHaveTextContent("No keyring service is running (no Secret Service), so keys are kept in /home/u/.local/share/understudy/secrets.json, readable only by you.");
    const input = screen.getByTestId("settings-key-input");
    expect(input).toHaveAttribute("type", "password");
    expect(input).toHaveValue("");
  });

  it("test connection shows the classified result", async () => {
    api.getSettings.mockResolvedValue(view({ key: "keyring", backend: { kind: "keyring" } }));
    api.testConnection.mockResolvedValueOnce({ provider: "openai", label: "OpenAI", latency_ms: 87, models: 40, model: "gpt-4o-mini", model_listed: true });
    render(Settings);
    await fireEvent.click(await screen.findByTestId("test-connection"));
    expect(await screen.findByTestId("test-result")).toHaveTextContent("Connected to OpenAI in 87 ms; gpt-4o-mini is available.");
    api.testConnection.mockRejectedValueOnce(new ApiError("account", "OpenAI rejected the API key (401): Incorrect API key provided Check the API key in Settings."));
    await fireEvent.click(screen.getByTestId("test-connection"));
    expect(await screen.findByTestId("test-result")).toHaveTextContent("OpenAI rejected the API key (401)");
    expect(screen.queryByTestId("key-backend")).toBeNull();
  });

  it("saves base URL, model, offline model and mode", async () => {
    api.getSettings.mockResolvedValue(view());
    api.saveSettings.mockImplementation(async (s) => view({ settings: s }));
    const onchanged = vi.fn();
    render(Settings, { onchanged });
    await fireEvent.input(await screen.findByTestId("settings-base-url"), { target: { value: "http://127.0.0.1:4000/v1" } });
    await fireEvent.input(screen.getByTestId("settings-model"), { target: { value: "gpt-4.1-mini" } });
    await fireEvent.input(screen.getByTestId("settings-local-model"), { target: { value: " /m/qwen.gguf " } });
    await fireEvent.click(screen.getByTestId("mode-local-only"));
    await fireEvent.click(screen.getByTestId("settings-notifications"));
    await fireEvent.click(screen.getByTestId("settings-save"));
    expect(api.saveSettings).toHaveBeenCalledWith({ mode: "local-only", base_url: "http://127.0.0.1:4000/v1", model: "gpt-4.1-mini", local_model: "/m/qwen.gguf", notifications: false, gateway: false });
    expect(await screen.findByTestId("settings-saved")).toHaveTextContent("Saved to /home/u/.config/understudy/config.toml.");
    expect(onchanged).toHaveBeenCalled();
  });

  it("the gateway switch saves, then says where it serves or why it cannot", async () => {
    api.getSettings.mockResolvedValue(view());
    api.saveSettings.mockImplementationOnce(async (s) => view({ settings: s, gateway: { listen: "127.0.0.1:8321", running: true, error: null } }));
    render(Settings);
    expect(screen.queryByTestId("gateway-state")).toBeNull();
    await fireEvent.click(await screen.findByTestId("settings-gateway"));
    await fireEvent.click(screen.getByTestId("settings-save"));
    expect(api.saveSettings).toHaveBeenLastCalledWith(expect.objectContaining({ gateway: true }));
    expect(await screen.findByTestId("gateway-state")).toHaveTextContent("Serving at http://127.0.0.1:8321/v1");
    api.saveSettings.mockImplementationOnce(async (s) => view({ settings: s, gateway: { listen: "127.0.0.1:8321", running: false, error: "cannot listen on 127.0.0.1:8321: Address in use" } }));
    await fireEvent.click(screen.getByTestId("settings-save"));
    expect(await screen.findByTestId("gateway-state")).toHaveTextContent("The gateway is not running: cannot listen on 127.0.0.1:8321: Address in use");
  });

  it("a refused value is shown with its key", async () => {
    api.getSettings.mockResolvedValue(view());
    api.saveSettings.mockRejectedValueOnce(new ApiError("config", "/c/config.toml: key `providers[0].base_url`: must be an http(s) URL"));
    render(Settings);
    await fireEvent.click(await screen.findByTestId("settings-save"));
    expect(await screen.findByTestId("settings-problem")).toHaveTextContent("providers[0].base_url");
  });

  it("start at login and start minimized apply at once", async () => {
    api.getSettings.mockResolvedValue(view());
    api.setDesktopPrefs.mockImplementation(async (p) => p);
    render(Settings);
    await fireEvent.click(await screen.findByTestId("start-at-login"));
    expect(api.setDesktopPrefs).toHaveBeenLastCalledWith({ start_at_login: true, start_minimized: false });
    await fireEvent.click(screen.getByTestId("start-minimized"));
    expect(api.setDesktopPrefs).toHaveBeenLastCalledWith({ start_at_login: true, start_minimized: true });
  });
});
