// Settings → Providers: the ordered chain of cloud providers in the config file.
import { call } from "./call";
import type { ConnectionReport, KeyProblem, Preset, ProviderEntry, ProviderView, StatusPage } from "./generated/types";

// Generated from the Rust types (src-tauri/src/ts.rs). KeyProblem `other_host`: the base URL
// moved; ask for the key again.
export type { KeyProblem, Preset, ProviderEntry, ProviderView, StatusPage };

export const providerPresets = () => call("provider_presets");
export const getProviders = () => call("get_providers");
export const saveProviders = (providers: ProviderEntry[]) => call("save_providers", { providers });
export const saveProviderKey = (id: string, key: string) => call("save_provider_key", { id, key });
/** Resolves with the latency report, or rejects with ApiError. */
export const testProvider = (id: string) => call("test_provider", { id });
export const providerModels = (id: string) => call("provider_models", { id });
/** Environment variables allowed as `api_key = "env:NAME"` beyond each vendor's usual one (kept in the app, not the config file). */
export const getKeyEnvAllowed = () => call("get_key_env_allowed");
export const setKeyEnvAllowed = (names: string[]) => call("set_key_env_allowed", { names });

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
