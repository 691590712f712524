// Settings → Providers: the ordered chain of cloud providers in the config file.
import { call } from "./call";
import type { ConnectionReport } from "./settings";

/** Rust: understudy_core::providers::StatusPage. */
export type StatusPage = { kind: "statuspage"; page: string } | { kind: "incident_io"; page: string };

/** Rust: understudy_core::providers::Preset. */
export interface Preset {
  id: string;
  name: string;
  kind: "cloud" | "local_server" | "custom";
  /** May hold `{resource}` for the user to fill in (Azure). */
  base_url: string;
  model: string;
  key_env: string | null;
  status_page: StatusPage | null;
}

/** Rust: understudy_core::providers::KeyProblem. `other_host`: the base URL moved; ask for the key again. */
export type KeyProblem =
  | { kind: "missing" }
  | { kind: "other_host"; saved_for: string; now: string }
  | { kind: "env_not_allowed"; name: string }
  | { kind: "env_unset"; name: string }
  | { kind: "unreadable"; message: string };

/** Rust: understudy_core::settings::ProviderEntry. */
export interface ProviderEntry {
  id: string;
  base_url: string;
  model: string;
  /** `keyring` or `env:NAME`. */
  api_key: string;
  enabled: boolean;
}

/** Rust: src-tauri setup::ProviderView. */
export interface ProviderView extends ProviderEntry {
  label: string;
  /** Why no key can be sent to it; null when it has one. */
  key_problem: KeyProblem | null;
}

export const providerPresets = () => call<Preset[]>("provider_presets");
export const getProviders = () => call<ProviderView[]>("get_providers");
export const saveProviders = (providers: ProviderEntry[]) => call<ProviderView[]>("save_providers", { providers });
export const saveProviderKey = (id: string, key: string) => call<ProviderView[]>("save_provider_key", { id, key });
/** Resolves with the latency report, or rejects with ApiError. */
export const testProvider = (id: string) => call<ConnectionReport>("test_provider", { id });
export const providerModels = (id: string) => call<string[]>("provider_models", { id });
/** Environment variables allowed as `api_key = "env:NAME"` beyond each vendor's usual one (kept in the app, not the config file). */
export const getKeyEnvAllowed = () => call<string[]>("get_key_env_allowed");
export const setKeyEnvAllowed = (names: string[]) => call<ProviderView[]>("set_key_env_allowed", { names });

/** A key problem in words, for the row (Rust's words are KeyProblem's Display). */
export function keyWords(p: KeyProblem | null, label: string, apiKey = "keyring"): string {
  if (!p) return apiKey.startsWith("env:") ? `Key from ${apiKey.slice(4)}.` : "Key saved.";
  switch (p.kind) {
    case "missing":
      return "No key yet.";
    case "other_host":
      return `The key was saved for ${p.saved_for}; enter the key for ${p.now}.`;
    case "env_not_allowed":
      return `${p.name} is not ${label}'s usual key variable; enter the key here instead.`;
    case "env_unset":
      return `${p.name} is not set.`;
    case "unreadable":
      return `The secret store cannot be read: ${p.message}`;
  }
}
