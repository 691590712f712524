import { describe, it, expect, vi, beforeEach } from "vitest";
import { render, screen, fireEvent, within } from "@testing-library/svelte";
import Models from "./Models.svelte";
import { ApiError } from "../api/call";

const api = vi.hoisted(() => ({
  modelsOverview: vi.fn(), searchModels: vi.fn(), repoFiles: vi.fn(), downloadModel: vi.fn(), pauseDownload: vi.fn(), cancelDownload: vi.fn(),
  importModel: vi.fn(), removeModel: vi.fn(), chooseModel: vi.fn(), onFilesDropped: vi.fn(),
}));
vi.mock("../api/models", () => api);

const details = { architecture: "qwen2", name: "Qwen2.5", parameters: 1.54e9, quantization: "Q4_K_M", context_length: 32768, chat_template: true, kv_cache_bytes: 117440512 };
const shelf = (over = {}) => ({
  installed: [
    { id: "qwen2.5-1.5b-instruct-q4_k_m", label: "Qwen2.5 1.5B Instruct", source: "downloaded", path: "/d/models/qwen2.5-1.5b-instruct-q4_k_m.gguf", size: 1117320736, details, problem: null, needs_bytes: 1.55e9, fit: "fits", verified: true },
    { id: "/home/u/.lmstudio/models/p/r/big.gguf", label: "p/r/big.gguf", source: "lm-studio", path: "/home/u/.lmstudio/models/p/r/big.gguf", size: 9e9, details: { ...details, parameters: 14e9 }, problem: null, needs_bytes: 11e9, fit: "will-not-fit", verified: null },
    { id: "/home/u/broken.gguf", label: "broken.gguf", source: "imported", path: "/home/u/broken.gguf", size: 10, details: null, problem: "/home/u/broken.gguf is not a GGUF file (bad magic)", needs_bytes: 0, fit: "fits", verified: null },
  ],
  catalog: [
    { id: "qwen2.5-1.5b-instruct-q4_k_m", name: "Qwen2.5 1.5B Instruct", repo: "Qwen/Qwen2.5-1.5B-Instruct-GGUF", file: "qwen2.5-1.5b-instruct-q4_k_m.gguf", size: 1117320736, quantization: "Q4_K_M", parameters: "1.5B", context: 32768, architecture: "qwen2", ram_gb: 2, sha256: null, license: "Apache-2.0", good_for: "The best first download.", recommended: true, downloaded: true, partial: null, downloading: false, fit: "fits" },
    { id: "gemma-3-1b-it-q4_k_m", name: "Gemma 3 1B it", repo: "bartowski/google_gemma-3-1b-it-GGUF", file: "google_gemma-3-1b-it-Q4_K_M.gguf", size: 806058240, quantization: "Q4_K_M", parameters: "1B", context: 32768, architecture: "gemma3", ram_gb: 2, sha256: null, license: "Gemma", good_for: "Small.", recommended: false, downloaded: false, partial: [403029120, 806058240], downloading: false, fit: "fits" },
  ],
  chosen: "qwen2.5-1.5b-instruct-q4_k_m",
  memory: { available: 6e9, total: 16e9 },
  ...over,
});

beforeEach(() => {
  Object.values(api).forEach((f) => f.mockReset());
  api.onFilesDropped.mockResolvedValue(() => {});
  api.modelsOverview.mockResolvedValue(shelf());
});

describe("Models", () => {
  it("shows each model's details, memory verdict and which one is in use; broken files say why", async () => {
    render(Models);
    const items = await screen.findAllByTestId("installed-model");
    expect(items).toHaveLength(3);
    expect(items[0]).toHaveTextContent("qwen2 · 1.5B parameters · Q4_K_M · context 32768 · chat template · 1.1 GB");
    expect(within(items[0]).getByTestId("chosen")).toHaveTextContent("In use");
    expect(within(items[0]).getByTestId("fit")).toHaveTextContent("Fits in memory");
    expect(within(items[1]).getByTestId("fit")).toHaveTextContent("Will not fit in memory");
    expect(items[1]).toHaveTextContent("LM Studio");
    expect(within(items[2]).getByTestId("model-problem")).toHaveTextContent("Cannot be used: /home/u/broken.gguf is not a GGUF file (bad magic)");
    expect(screen.getByText("This computer has 16.0 GB of memory, 6.0 GB free now.", { exact: false })).toBeInTheDocument();
    const offers = screen.getAllByTestId("catalog-model");
    expect(offers[0]).toHaveTextContent("Recommended first download");
    expect(offers[1]).toHaveTextContent("1B · Q4_K_M · 806 MB · needs 2 GB of RAM · Gemma");
    expect(within(offers[1]).getByTestId("download-model")).toHaveTextContent("Resume (50 % done)");
  });

  it("a download shows a progress bar with speed and time left, then the model is listed", async () => {
    let report: (e: unknown) => void = () => {};
    let finish: (e: unknown) => void = () => {};
    api.downloadModel.mockImplementation((_id: string, on: (e: unknown) => void) => {
      report = on;
      return new Promise((r) => (finish = r));
    });
    render(Models);
    const offers = await screen.findAllByTestId("catalog-model");
    await fireEvent.click(within(offers[1]).getByTestId("download-model"));
    expect(api.downloadModel).toHaveBeenCalledWith("gemma-3-1b-it-q4_k_m", expect.any(Function));
    report({ type: "progress", stage: "downloading", done: 500e6, total: 806058240, bytes_per_sec: 25e6, eta_s: 75 });
    const bar = await screen.findByRole("progressbar");
    await vi.waitFor(() => expect(bar).toHaveAttribute("value", "500000000"));
    expect(screen.getByTestId("download-figures")).toHaveTextContent("500 MB of 806 MB · 25.0 MB/s · 1 min 15 s left");
    await fireEvent.click(screen.getByTestId("download-pause"));
    expect(api.pauseDownload).toHaveBeenCalledWith("gemma-3-1b-it-q4_k_m.gguf");
    api.modelsOverview.mockResolvedValue(shelf({ catalog: shelf().catalog.map((o) => ({ ...o, downloaded: true, partial: null })) }));
    finish({ type: "done", path: "/d/models/gemma-3-1b-it-q4_k_m.gguf", size: 806058240, sha256: "ab", verified: true, resumed_bytes: 0 });
    expect(await screen.findByTestId("models-notice")).toHaveTextContent("Downloaded /d/models/gemma-3-1b-it-q4_k_m.gguf (sha256 verified).");
    expect(screen.queryByRole("progressbar")).toBeNull();
  });

  it("a failed download says why where it happened", async () => {
    api.downloadModel.mockResolvedValue({ type: "failed", message: "not enough disk space in /d/models: 806 MB needed, 120 MB free" });
    render(Models);
    const offers = await screen.findAllByTestId("catalog-model");
    await fireEvent.click(within(offers[1]).getByTestId("download-model"));
    expect(await screen.findByTestId("download-error")).toHaveTextContent("not enough disk space");
  });

  it("choosing, importing and searching call the backend; refusals are shown", async () => {
    api.chooseModel.mockResolvedValue({});
    api.importModel.mockRejectedValueOnce(new ApiError("import", "/tmp/x.gguf is not a GGUF file (bad magic)"));
    const onchanged = vi.fn();
    render(Models, { onchanged });
    const items = await screen.findAllByTestId("installed-model");
    await fireEvent.click(within(items[1]).getByTestId("use-model"));
    expect(api.chooseModel).toHaveBeenCalledWith("/home/u/.lmstudio/models/p/r/big.gguf");
    await vi.waitFor(() => expect(onchanged).toHaveBeenCalled());

    await fireEvent.input(screen.getByTestId("import-path"), { target: { value: "/tmp/x.gguf" } });
    await fireEvent.click(screen.getByTestId("import-button"));
    expect(await screen.findByTestId("models-problem")).toHaveTextContent("bad magic");

    api.searchModels.mockResolvedValue([{ id: "bartowski/Qwen2.5-7B-Instruct-GGUF", downloads: 120000, likes: 1 }]);
    api.repoFiles.mockResolvedValue([{ path: "Qwen2.5-7B-Instruct-Q4_K_M.gguf", size: 4.68e9, quantization: "Q4_K_M", sha256: null }]);
    api.downloadModel.mockResolvedValue({ type: "paused" });
    await fireEvent.input(screen.getByTestId("hub-query"), { target: { value: "qwen 7b" } });
    await fireEvent.click(screen.getByTestId("hub-search"));
    await fireEvent.click(await screen.findByTestId("hub-repo"));
    const file = await screen.findByTestId("hub-file");
    expect(file).toHaveTextContent("Q4_K_M Qwen2.5-7B-Instruct-Q4_K_M.gguf 4.7 GB");
    await fireEvent.click(within(file).getByTestId("hub-download"));
    expect(api.downloadModel).toHaveBeenCalledWith("bartowski/Qwen2.5-7B-Instruct-GGUF/Qwen2.5-7B-Instruct-Q4_K_M.gguf", expect.any(Function));
  });

  it("an unverifiable download asks first; a yes downloads it with allowUnverified and it is listed as not verified", async () => {
    const message = "https://huggingface.co/bartowski/google_gemma-3-1b-it-GGUF/resolve/main/google_gemma-3-1b-it-Q4_K_M.gguf cannot be verified: the server gives no sha256 for it and none is known; download it only if you trust the source";
    api.downloadModel
      .mockResolvedValueOnce({ type: "unverified", message })
      .mockResolvedValueOnce({ type: "done", path: "/d/models/gemma-3-1b-it-q4_k_m.gguf", size: 806058240, sha256: "ab", verified: false, resumed_bytes: 0 });
    render(Models);
    const offers = await screen.findAllByTestId("catalog-model");
    await fireEvent.click(within(offers[1]).getByTestId("download-model"));
    const ask = await screen.findByTestId("unverified-confirm");
    expect(ask).toHaveAttribute("role", "alertdialog");
    expect(ask).toHaveTextContent("gemma-3-1b-it-q4_k_m.gguf cannot be verified: the hub gave no checksum and the catalog pins none. Download anyway?");
    expect(ask).toHaveTextContent("it will be listed as not verified");
    expect(ask).toHaveTextContent("the server gives no sha256 for it");
    expect(api.downloadModel).toHaveBeenCalledTimes(1);
    expect(api.downloadModel).toHaveBeenLastCalledWith("gemma-3-1b-it-q4_k_m", expect.any(Function));
    expect(screen.queryByTestId("download-error")).toBeNull();

    const downloaded = shelf().installed[0];
    api.modelsOverview.mockResolvedValue(
      shelf({ installed: [{ ...downloaded, id: "gemma-3-1b-it-q4_k_m", label: "Gemma 3 1B it", path: "/d/models/gemma-3-1b-it-q4_k_m.gguf", verified: false }] }),
    );
    await fireEvent.click(within(ask).getByTestId("unverified-download"));
    expect(api.downloadModel).toHaveBeenCalledTimes(2);
    expect(api.downloadModel).toHaveBeenLastCalledWith("gemma-3-1b-it-q4_k_m", expect.any(Function), { allowUnverified: true });
    expect(await screen.findByTestId("models-notice")).toHaveTextContent("Downloaded /d/models/gemma-3-1b-it-q4_k_m.gguf (not verified).");
    expect(screen.queryByTestId("unverified-confirm")).toBeNull();
    const item = await vi.waitFor(() => {
      const found = screen.getAllByTestId("installed-model").find((li) => li.dataset.id === "gemma-3-1b-it-q4_k_m");
      expect(found).toBeDefined();
      return found!;
    });
    expect(within(item).getByTestId("not-verified")).toHaveTextContent("not verified");
  });

  it("declining an unverifiable download does not download it", async () => {
    api.downloadModel.mockResolvedValue({ type: "unverified", message: "https://hf.example/x.gguf cannot be verified: the server gives no sha256 for it and none is known" });
    api.searchModels.mockResolvedValue([{ id: "someone/Odd-GGUF", downloads: 3, likes: 0 }]);
    api.repoFiles.mockResolvedValue([{ path: "odd-Q4_K_M.gguf", size: 4e9, quantization: "Q4_K_M", sha256: null }]);
    render(Models);
    await fireEvent.input(await screen.findByTestId("hub-query"), { target: { value: "odd" } });
    await fireEvent.click(screen.getByTestId("hub-search"));
    await fireEvent.click(await screen.findByTestId("hub-repo"));
    await fireEvent.click(within(await screen.findByTestId("hub-file")).getByTestId("hub-download"));
    const ask = await screen.findByTestId("unverified-confirm");
    expect(ask).toHaveTextContent("odd-Q4_K_M.gguf cannot be verified");
    await fireEvent.click(within(ask).getByTestId("unverified-decline"));
    expect(screen.queryByTestId("unverified-confirm")).toBeNull();
    expect(await screen.findByTestId("models-notice")).toHaveTextContent("Not downloaded: odd-Q4_K_M.gguf could not be verified.");
    // Give a stray retry every chance to happen.
    await new Promise((r) => setTimeout(r, 20));
    expect(api.downloadModel).toHaveBeenCalledTimes(1);
    expect(api.downloadModel).toHaveBeenCalledWith("someone/Odd-GGUF/odd-Q4_K_M.gguf", expect.any(Function));
    expect(within(screen.getByTestId("hub-file")).getByTestId("hub-download")).toBeInTheDocument();
  });

  it("marks downloads that were not verified, and only those", async () => {
    const [ok, other] = shelf().installed;
    api.modelsOverview.mockResolvedValue(shelf({ installed: [ok, { ...ok, id: "hand-put", label: "hand-put.gguf", path: "/d/models/hand-put.gguf", verified: false }, other] }));
    render(Models);
    const items = await screen.findAllByTestId("installed-model");
    expect(within(items[0]).queryByTestId("not-verified")).toBeNull();
    expect(within(items[1]).getByTestId("not-verified")).toHaveTextContent("not verified");
    expect(within(items[2]).queryByTestId("not-verified")).toBeNull();
  });

  it("an unknown memory need says so, without NaN or a size", async () => {
    const [ok] = shelf().installed;
    const hostile = { ...ok, id: "/scan/odd.gguf", label: "odd.gguf", source: "hf-cache", path: "/scan/odd.gguf", details: { ...details, kv_cache_bytes: null }, needs_bytes: null, fit: "unknown", verified: null };
    api.modelsOverview.mockResolvedValue(shelf({ installed: [hostile], catalog: shelf().catalog.map((o) => ({ ...o, fit: "unknown" })) }));
    render(Models);
    const [item] = await screen.findAllByTestId("installed-model");
    const fit = within(item).getByTestId("fit");
    expect(fit).toHaveTextContent("Memory need unknown");
    expect(fit).not.toHaveTextContent("needs about");
    expect(fit).toHaveClass("unknown");
    expect(screen.getByTestId("models")).not.toHaveTextContent(/NaN|undefined|null/);
    expect(screen.getAllByTestId("catalog-model")[0]).toHaveTextContent("Memory need unknown");
  });

  it("a refused pause or cancel is shown", async () => {
    api.downloadModel.mockReturnValue(new Promise(() => {}));
    api.pauseDownload.mockRejectedValue(new ApiError("model_id", "../x.gguf is not a model file name"));
    api.cancelDownload.mockRejectedValue(new ApiError("model_id", "../y.gguf is not a model file name"));
    render(Models);
    const offers = await screen.findAllByTestId("catalog-model");
    await fireEvent.click(within(offers[1]).getByTestId("download-model"));
    await fireEvent.click(await screen.findByTestId("download-pause"));
    expect(await screen.findByTestId("models-problem")).toHaveTextContent("../x.gguf is not a model file name");
    await fireEvent.click(screen.getByTestId("download-cancel"));
    await vi.waitFor(() => expect(screen.getByTestId("models-problem")).toHaveTextContent("../y.gguf is not a model file name"));
  });
});
