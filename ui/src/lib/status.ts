import type { AppInfo } from "../api/app";

/** Tray-like health colour of the status bar dot (the tray itself arrives later). */
export type Health = "healthy" | "nothing" | "local-only";

export interface StatusLine {
  health: Health;
  /** OpenAI in words. */
  cloud: string;
  /** The offline model in words. */
  local: string;
  mode: string;
}

const MODE_WORDS: Record<AppInfo["mode"], string> = {
  auto: "Auto",
  "cloud-only": "Cloud only",
  "local-only": "Local only",
};

const KEY_WORDS: Record<AppInfo["openai_key"], string> = {
  none: "nowhere",
  env: "environment",
  keyring: "keyring",
  file: "private file",
};

/** What the status bar says, from what is set up. */
export function describe(info: AppInfo): StatusLine {
  const cloud =
    info.openai_key === "none"
      ? "OpenAI: not configured"
      : `OpenAI: key from ${KEY_WORDS[info.openai_key]} · ${info.openai_model}`;
  const local = info.local_model ? `Offline model: ${baseName(info.local_model)}` : "No offline model";
  const canAnswer = info.mode === "local-only" ? info.local_model !== null : !info.first_run;
  const health: Health = !canAnswer ? "nothing" : info.mode === "local-only" ? "local-only" : "healthy";
  return { health, cloud, local, mode: MODE_WORDS[info.mode] };
}

/** The file name of a path, or a catalog id unchanged. */
export function baseName(pathOrId: string): string {
  const parts = pathOrId.split(/[\\/]/);
  return parts[parts.length - 1] || pathOrId;
}

/** Why the composer is disabled ("" when something can answer). */
export function composerHint(info: AppInfo): string {
  if (info.first_run) return "Add an OpenAI API key or an offline model to start chatting.";
  if (describe(info).health === "nothing") return "Local-only mode needs an offline model. Add one in Settings to start chatting.";
  return "";
}
