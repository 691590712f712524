import { call } from "./call";

export type Mode = "auto" | "cloud-only" | "local-only";

/** A config file problem; the app runs on defaults meanwhile. */
export interface ConfigProblem {
  file: string;
  line: number | null;
  key: string | null;
  message: string;
}

/** What is set up (Rust: understudy_core::Overview). */
export interface AppInfo {
  version: string;
  mode: Mode;
  data_dir: string;
  config_path: string;
  config_problem: ConfigProblem | null;
  /** Where the OpenAI key comes from; "none" = not configured. */
  openai_key: "none" | "env" | "keyring" | "file";
  openai_base_url: string;
  openai_model: string;
  /** Configured offline model (catalog id or path), null if none. */
  local_model: string | null;
  /** No OpenAI key and no local model: nothing can answer yet. */
  first_run: boolean;
}

export function getAppInfo(): Promise<AppInfo> {
  return call<AppInfo>("app_info");
}

/** Opens a web or mail link from an answer in the system browser. */
export const openLink = (url: string) => call<void>("open_link", { url });

/** Pages the app itself can ask the window to show. */
export type RequestedPage = "models" | "settings";

/** Calls `open` when the app asks the window for a page (a click on a notification: "Download a
 * model", "Open Settings"); resolves to an unsubscribe. */
export async function onOpenPage(open: (page: RequestedPage) => void): Promise<() => void> {
  const { listen } = await import("@tauri-apps/api/event");
  return listen<string>("open-page", (e) => {
    if (e.payload === "models" || e.payload === "settings") open(e.payload);
  });
}
