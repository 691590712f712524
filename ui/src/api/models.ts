import { Channel } from "@tauri-apps/api/core";
import { call } from "./call";
import type { SettingsView } from "./settings";

export type Fit = "fits" | "tight" | "will-not-fit";
export type Source = "downloaded" | "imported" | "hf-cache" | "lm-studio" | "ollama";

/** Rust: understudy_models::library::Details. */
export interface Details {
  architecture: string;
  name: string | null;
  parameters: number;
  quantization: string;
  context_length: number | null;
  chat_template: boolean;
  kv_cache_bytes: number;
}

/** Rust: understudy_models::library::Model (details: Ok/Err as serde writes a Result). */
export interface InstalledModel {
  id: string;
  label: string;
  source: Source;
  path: string;
  size: number;
  details: { Ok: Details } | { Err: string };
  needs_bytes: number;
  fit: Fit;
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
  | { type: "failed"; message: string };

export const modelsOverview = () => call<Shelf>("models_overview");
export const searchModels = (query: string) => call<Repo[]>("models_search", { query });
export const repoFiles = (repo: string) => call<RepoFile[]>("models_files", { repo });
export const pauseDownload = (name: string) => call<boolean>("models_pause", { name });
export const cancelDownload = (name: string) => call<boolean>("models_cancel", { name });
export const importModel = (path: string) => call<string>("models_import", { path });
export const removeModel = (id: string) => call<void>("models_remove", { id });
export const chooseModel = (id: string) => call<SettingsView>("models_choose", { id });

/** Downloads (or resumes) a catalog id or owner/repo/file.gguf; resolves with the outcome. */
export function downloadModel(id: string, onEvent: (e: DownloadEvent) => void): Promise<DownloadEvent> {
  const ch = new Channel<DownloadEvent>();
  ch.onmessage = onEvent;
  return call<DownloadEvent>("models_download", { id, onEvent: ch });
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
