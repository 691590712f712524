import { describe, it, expect, vi } from "vitest";

const invoke = vi.fn();
vi.mock("@tauri-apps/api/core", () => ({ invoke: (...a: unknown[]) => invoke(...a) }));

const { call, ApiError } = await import("./call");
const { getAppInfo } = await import("./app");
const { saveApiKey } = await import("./settings");

describe("call()", () => {
  it("passes the command and arguments through and returns the result", async () => {
    invoke.mockResolvedValueOnce({ ok: 1 });
    await expect(call("rename_conversation", { id: 1, title: "a" })).resolves.toEqual({ ok: 1 });
    expect(invoke).toHaveBeenLastCalledWith("rename_conversation", { id: 1, title: "a" });
  });

  it("turns a Rust { code, message } error into ApiError", async () => {
    invoke.mockRejectedValueOnce({ code: "config", message: "bad file" });
    const err = await call("get_settings").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({ code: "config", message: "bad file", name: "ApiError" });
  });

  it("wraps anything else as code ipc", async () => {
    invoke.mockRejectedValueOnce("command app_info not found");
    await expect(call("app_info")).rejects.toMatchObject({ code: "ipc", message: "command app_info not found" });
    invoke.mockRejectedValueOnce(new Error("boom"));
    await expect(call("get_settings")).rejects.toMatchObject({ code: "ipc", message: "boom" });
  });

  it("saveApiKey invokes save_api_key with the key", async () => {
    invoke.mockResolvedValueOnce({ kind: "file", path: "/d/secrets.json", why: "no keyring" });
    await expect(saveApiKey("sk-x")).resolves.toEqual({ kind: "file", path: "/d/secrets.json", why: "no keyring" });
    expect(invoke).toHaveBeenLastCalledWith("save_api_key", { key: "sk-x" });
  });

  it("getAppInfo invokes app_info", async () => {
    invoke.mockResolvedValueOnce({ version: "0.1.0" });
    await getAppInfo();
    expect(invoke).toHaveBeenLastCalledWith("app_info", undefined);
  });
});
