import { Channel } from "@tauri-apps/api/core";
import { call } from "./call";
import type { SettingsView } from "./settings";

/** Rust: understudy_models::library::Fit; "unknown" when the header does not allow an estimate. */
export type Fit = "fits" | "tight" | "will-not-fit" | "unknown";
export type Source = "downloaded" | "imported" | "hf-cache" | "lm-studio" | "ollama";

/** Rust: understudy_models::library::Details. */
export interface Details {
  architecture: string;
  name: string | null;
  parameters: number;
  quantization: string;
  context_length: number | null;
  chat_template: boolean;
  /** Null when the header gives no usable shape (missing, absurd or overflowing values). */
  kv_cache_bytes: number | null;
}

/** Rust: understudy_models::library::Model (details: Ok/Err as serde writes a Result). */
export interface InstalledModel {
  id: string;
  label: string;
  source: Source;
  path: string;
  size: number;
  details: { Ok: Details } | { Err: string };
  /** Weights + KV cache + runtime; null (and fit "unknown") when the KV cache cannot be estimated. */
  needs_bytes: number | null;
  fit: Fit;
  /** Downloaded files: whether the sha256 was checked (false: "not verified"); null: not ours to judge. */
  verified: boolean | null;
}

/** A catalog entry with its download state. */
export interface Offer {
  id: string;
  name: string;
  repo: string;
  file: string;
  size: number;
  quantization: string;
  parameters: string;
  context: number;
  /** GGUF architecture (one the bundled llama.cpp runs). */
  architecture: string;
  /** Memory needed while answering at the default context, GB. */
  ram_gb: number;
  /** Pinned by the catalog; null when only the hub's header verifies it. */
  sha256: string | null;
  license: string;
  good_for: string;
  recommended: boolean;
  downloaded: boolean;
  partial: [number, number] | null;
  downloading: boolean;
  fit: Fit;
}

export interface Shelf {
  installed: InstalledModel[];
  catalog: Offer[];
  chosen: string | null;
  memory: { available: number; total: number };
}

export interface Repo {
  id: string;
  downloads: number;
  likes: number;
}

export interface RepoFile {
  path: string;
  size: number;
  quantization: string | null;
  sha256: string | null;
}

/** Rust: understudy_models::manager::Event. */
export type DownloadEvent =
  | { type: "progress"; stage: "downloading" | "verifying"; done: number; total: number | null; bytes_per_sec: number; eta_s: number | null }
  | { type: "done"; path: string; size: number; sha256: string; verified: boolean; resumed_bytes: number }
  | { type: "paused" }
  | { type: "cancelled" }
  /** Refused before any byte: no sha256 is known (no X-Linked-Etag, none in the catalog). Ask, then retry with allowUnverified. */
  | { type: "unverified"; message: string }
  | { type: "failed"; message: string };

export const modelsOverview = () => call<Shelf>("models_overview");
export const searchModels = (query: string) => call<Repo[]>("models_search", { query });
export const repoFiles = (repo: string) => call<RepoFile[]>("models_files", { repo });
/** False when no download runs under that name; rejects (ApiError "model_id") for a name that is not a model file name. */
export const pauseDownload = (name: string) => call<boolean>("models_pause", { name });
/** Cancels a download or discards a paused one's partial; false when there was neither; rejects for an unsafe name. */
export const cancelDownload = (name: string) => call<boolean>("models_cancel", { name });
export const importModel = (path: string) => call<string>("models_import", { path });
export const removeModel = (id: string) => call<void>("models_remove", { id });
export const chooseModel = (id: string) => call<SettingsView>("models_choose", { id });

export interface DownloadOptions {
  /** Keep a file no sha256 is known for: only after the user confirmed an "unverified" outcome. */
  allowUnverified?: boolean;
}

/**
 * Downloads (or resumes) a catalog id or owner/repo/file.gguf; resolves with the outcome. A file
 * no sha256 is known for ends in `{ type: "unverified" }` unless `allowUnverified` is set.
 */
export function downloadModel(id: string, onEvent: (e: DownloadEvent) => void, options: DownloadOptions = {}): Promise<DownloadEvent> {
  const ch = new Channel<DownloadEvent>();
  ch.onmessage = onEvent;
  return call<DownloadEvent>("models_download", { id, allowUnverified: options.allowUnverified === true, onEvent: ch });
}

/** Calls `onDrop` with the paths of files dropped on the window; resolves to an unsubscribe. */
export async function onFilesDropped(onDrop: (paths: string[]) => void, onHover?: (over: boolean) => void): Promise<() => void> {
  const { getCurrentWebview } = await import("@tauri-apps/api/webview");
  return getCurrentWebview().onDragDropEvent((e) => {
    if (e.payload.type === "drop") {
      onHover?.(false);
      onDrop(e.payload.paths);
    } else if (e.payload.type === "enter" || e.payload.type === "over") onHover?.(true);
    else onHover?.(false);
  });
}
