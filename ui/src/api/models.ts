import { Channel } from "@tauri-apps/api/core";
import { call } from "./call";
import type { SettingsView } from "./settings";
import type { Details, DownloadEvent, DownloadStage, Fit, InstalledModel, ModelSource, Offer, Repo, RepoFile, Shelf } from "./generated/types";

// Generated from the Rust types (src-tauri/src/ts.rs). Fit "unknown": the header does not allow
// an estimate; an installed model's `details` is null when it cannot be used, and `problem` says why.
export type { Details, DownloadEvent, DownloadStage, Fit, InstalledModel, ModelSource, Offer, Repo, RepoFile, Shelf };

export const modelsOverview = () => call("models_overview");
export const searchModels = (query: string) => call("models_search", { query });
export const repoFiles = (repo: string) => call("models_files", { repo });
/** False when no download runs under that name; rejects (ApiError "model_id") for a name that is not a model file name. */
export const pauseDownload = (name: string) => call("models_pause", { name });
/** Cancels a download or discards a paused one's partial; false when there was neither; rejects for an unsafe name. */
export const cancelDownload = (name: string) => call("models_cancel", { name });
export const importModel = (path: string) => call("models_import", { path });
export const removeModel = (id: string) => call("models_remove", { id });
export const chooseModel = (id: string) => call("models_choose", { id });

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
  return call("models_download", { id, allowUnverified: options.allowUnverified === true, onEvent: ch });
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
