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
    { id: "qwen2.5-1.5b-instruct-q4_k_m", label: "Qwen2.5 1.5B Instruct", source: "downloaded", path: "/d/models/qwen2.5-1.5b-instruct-q4_k_m.gguf", size: 1117320736, details: { Ok: details }, needs_bytes: 1.55e9, fit: "fits" },
    { id: "/home/u/.lmstudio/models/p/r/big.gguf", label: "p/r/big.gguf", source: "lm-studio", path: "/home/u/.lmstudio/models/p/r/big.gguf", size: 9e9, details: { Ok: { ...details, parameters: 14e9 } }, needs_bytes: 11e9, fit: "will-not-fit" },
    { id: "/home/u/broken.gguf", label: "broken.gguf", source: "imported", path: "/home/u/broken.gguf", size: 10, details: { Err: "/home/u/broken.gguf is not a GGUF file (bad magic)" }, needs_bytes: 0, fit: "fits" },
  ],
  catalog: [
    { id: "qwen2.5-1.5b-instruct-q4_k_m", name: "Qwen2.5 1.5B Instruct", repo: "Qwen/Qwen2.5-1.5B-Instruct-GGUF", file: "qwen2.5-1.5b-instruct-q4_k_m.gguf", size: 1117320736, quantization: "Q4_K_M", parameters: "1.5B", context: 32768, license: "Apache-2.0", good_for: "The best first download.", recommended: true, downloaded: true, partial: null, downloading: false, fit: "fits" },
    { id: "gemma-3-1b-it-q4_k_m", name: "Gemma 3 1B it", repo: "bartowski/google_gemma-3-1b-it-GGUF", file: "google_gemma-3-1b-it-Q4_K_M.gguf", size: 806058240, quantization: "Q4_K_M", parameters: "1B", context: 32768, license: "Gemma", good_for: "Small.", recommended: false, downloaded: false, partial: [403029120, 806058240], downloading: false, fit: "fits" },
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
});
