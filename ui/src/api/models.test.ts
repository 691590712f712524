import { describe, it, expect, vi, beforeEach } from "vitest";

const invoke = vi.fn();
class FakeChannel {
  onmessage: (m: unknown) => void = () => {};
}
vi.mock("@tauri-apps/api/core", () => ({ invoke: (...a: unknown[]) => invoke(...a), Channel: FakeChannel }));

const { downloadModel, pauseDownload, cancelDownload } = await import("./models");

beforeEach(() => invoke.mockReset());

describe("models api", () => {
  it("downloadModel does not allow an unverified file unless asked, and passes events through the channel", async () => {
    invoke.mockResolvedValueOnce({ type: "unverified", message: "x.gguf cannot be verified" });
    const seen: unknown[] = [];
    await expect(downloadModel("o/r/x.gguf", (e) => seen.push(e))).resolves.toEqual({ type: "unverified", message: "x.gguf cannot be verified" });
    const [cmd, args] = invoke.mock.lastCall!;
    expect(cmd).toBe("models_download");
    expect(args).toMatchObject({ id: "o/r/x.gguf", allowUnverified: false });
    (args.onEvent as FakeChannel).onmessage({ type: "paused" });
    expect(seen).toEqual([{ type: "paused" }]);
  });

  it("downloadModel passes allowUnverified: true once the user confirmed", async () => {
    invoke.mockResolvedValueOnce({ type: "done", path: "/d/models/x.gguf", size: 1, sha256: "ab", verified: false, resumed_bytes: 0 });
    await downloadModel("o/r/x.gguf", () => {}, { allowUnverified: true });
    expect(invoke.mock.lastCall![1]).toMatchObject({ id: "o/r/x.gguf", allowUnverified: true });
  });

  it("pause and cancel reject an unsafe name as ApiError", async () => {
    invoke.mockRejectedValueOnce({ code: "model_id", message: "../victim is not a model file name" });
    await expect(cancelDownload("../victim")).rejects.toMatchObject({ name: "ApiError", code: "model_id" });
    expect(invoke).toHaveBeenLastCalledWith("models_cancel", { name: "../victim" });
    invoke.mockResolvedValueOnce(false);
    await expect(pauseDownload("x.gguf")).resolves.toBe(false);
    expect(invoke).toHaveBeenLastCalledWith("models_pause", { name: "x.gguf" });
  });
});
