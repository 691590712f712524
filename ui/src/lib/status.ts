import type { AppInfo } from "../api/app";
import type { HealthSnapshot } from "../api/health";

/** The status bar dot's health colour, the same states the tray shows. */
export type Health = "healthy" | "degraded" | "outage" | "nothing" | "local-only";

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

/** Health in words from the router's snapshot; null until the first snapshot arrives. */
export function healthLine(s: HealthSnapshot, now: Date = new Date()): { health: Health; words: string } {
  if (s.mode === "local-only") return s.local_model ? { health: "local-only", words: "Answering locally by choice" } : { health: "nothing", words: "Local only, but no offline model is set up" };
  const primary = s.providers[0];
  if (!primary) return { health: s.route === "local" ? "local-only" : "nothing", words: s.route === "local" ? "Answering locally" : "Nothing can answer yet" };
  const since = new Date(primary.since);
  const when = since.toDateString() === now.toDateString() ? since.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) : since.toLocaleString();
  // A backup cloud provider answers for the primary: amber, naming it (as the tray does).
  const backup = s.providers.find((p, i) => i > 0 && p.id === s.route);
  if (primary.health === "outage") {
    if (backup) return { health: "degraded", words: `${primary.label} outage since ${when} — answering with ${backup.label}` };
    return s.route === "local"
      ? { health: "outage", words: `${primary.label} outage since ${when} — answering with ${s.local_model}` }
      : { health: "nothing", words: `${primary.label} outage since ${when} — no offline model to answer` };
  }
  if (backup) return { health: "degraded", words: `${primary.label} cannot answer — answering with ${backup.label}` };
  if (primary.health === "degraded") return { health: "degraded", words: `${primary.label} degraded${primary.last_error ? `: ${primary.last_error}` : ""}` };
  return s.route === "none" ? { health: "nothing", words: "Nothing can answer yet" } : { health: "healthy", words: "Ready" };
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
